"""processor status and failure reason on refunds and timeline events, staff alerts, email threads

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00

"""

import sqlalchemy as sa
from alembic import op

import portal.core.database

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refund") as batch:
        batch.add_column(sa.Column("processor_status", sa.String(length=32), server_default="", nullable=False))
        batch.add_column(sa.Column("failure_reason", sa.String(length=64), server_default="", nullable=False))
    with op.batch_alter_table("status_event") as batch:
        batch.add_column(sa.Column("processor_status", sa.String(length=32), server_default="", nullable=False))
        batch.add_column(sa.Column("failure_reason", sa.String(length=64), server_default="", nullable=False))
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("thread_root", sa.String(length=255), server_default="", nullable=False))
    op.create_table(
        "staff_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("refund_request_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", portal.core.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["order.id"], name=op.f("fk_staff_alert_order_id_order")),
        sa.ForeignKeyConstraint(
            ["refund_request_id"], ["refund_request.id"], name=op.f("fk_staff_alert_refund_request_id_refund_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_alert")),
    )
    with op.batch_alter_table("staff_alert") as batch:
        batch.create_index(batch.f("ix_staff_alert_kind"), ["kind"], unique=False)
        batch.create_index(batch.f("ix_staff_alert_refund_request_id"), ["refund_request_id"], unique=False)


def downgrade():
    with op.batch_alter_table("staff_alert") as batch:
        batch.drop_index(batch.f("ix_staff_alert_refund_request_id"))
        batch.drop_index(batch.f("ix_staff_alert_kind"))
    op.drop_table("staff_alert")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("thread_root")
    with op.batch_alter_table("status_event") as batch:
        batch.drop_column("failure_reason")
        batch.drop_column("processor_status")
    with op.batch_alter_table("refund") as batch:
        batch.drop_column("failure_reason")
        batch.drop_column("processor_status")
