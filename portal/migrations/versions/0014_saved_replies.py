"""saved replies: text modules in three languages, and where each was used

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:00:00

"""

import sqlalchemy as sa
from alembic import op

import portal.core.database

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "saved_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body_en", sa.Text(), nullable=False),
        sa.Column("body_zh", sa.Text(), nullable=False),
        sa.Column("body_nl", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.Column("updated_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["staff_user.id"], name=op.f("fk_saved_reply_updated_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_reply")),
    )
    op.create_table(
        "saved_reply_use",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("saved_reply_id", sa.Integer(), nullable=False),
        sa.Column("refund_request_id", sa.Integer(), nullable=False),
        sa.Column("used_in", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["saved_reply_id"], ["saved_reply.id"], name=op.f("fk_saved_reply_use_saved_reply_id_saved_reply")
        ),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_request.id"],
            name=op.f("fk_saved_reply_use_refund_request_id_refund_request"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_saved_reply_use_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_reply_use")),
    )
    with op.batch_alter_table("saved_reply_use", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_reply_use_refund_request_id"), ["refund_request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_saved_reply_use_saved_reply_id"), ["saved_reply_id"], unique=False)


def downgrade():
    with op.batch_alter_table("saved_reply_use", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_reply_use_saved_reply_id"))
        batch_op.drop_index(batch_op.f("ix_saved_reply_use_refund_request_id"))
    op.drop_table("saved_reply_use")
    op.drop_table("saved_reply")
