"""automation: actions per request, the pause switch, decisions per day by rules and by people

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00

"""

import sqlalchemy as sa
from alembic import op

import portal.core.database

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "automation_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("refund_request_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "done", "left_for_staff", "cancelled", name="actionstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("rule_id", sa.String(length=48), nullable=True),
        sa.Column("rules_version", sa.String(length=32), nullable=True),
        sa.Column("policy_version", sa.String(length=32), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_at", portal.core.database.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.Column("done_at", portal.core.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_request.id"],
            name=op.f("fk_automation_action_refund_request_id_refund_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_action")),
        sa.UniqueConstraint("refund_request_id", name=op.f("uq_automation_action_refund_request_id")),
    )
    with op.batch_alter_table("automation_action", schema=None) as batch_op:
        batch_op.create_index("ix_automation_action_due", ["status", "due_at"], unique=False)

    op.create_table(
        "automation_switch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", portal.core.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_automation_switch_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_switch")),
    )

    op.create_table(
        "insight_decision_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("made_by", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "decision", "made_by", name=op.f("pk_insight_decision_day")),
    )


def downgrade():
    op.drop_table("insight_decision_day")
    op.drop_table("automation_switch")
    with op.batch_alter_table("automation_action", schema=None) as batch_op:
        batch_op.drop_index("ix_automation_action_due")
    op.drop_table("automation_action")
