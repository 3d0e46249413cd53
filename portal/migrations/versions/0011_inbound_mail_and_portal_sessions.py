"""inbound mail, portal sessions, token permissions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 09:45:45.009890

"""

import sqlalchemy as sa
from alembic import op

import portal.core.database

# revision identifiers, used by Alembic.
revision = "0011"
# Other branches add 0008-0010; this one follows whichever of them lands last (set on merge).
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "portal_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_token_id", sa.Integer(), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("return_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.Column("expires_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.Column("used_at", portal.core.database.UTCDateTime(), nullable=True),
        sa.Column("used_by_client", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_token_id"], ["api_token.id"], name=op.f("fk_portal_session_api_token_id_api_token")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["order.id"], name=op.f("fk_portal_session_order_id_order")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_session_token_hash")),
    )
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_session_order_id"), ["order_id"], unique=False)

    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("refund_request_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("refused_attachments", sa.JSON(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("received_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_request.id"],
            name=op.f("fk_inbound_message_refund_request_id_refund_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_message")),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_message_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbound_message_refund_request_id"), ["refund_request_id"], unique=False)
        batch_op.create_index("ix_inbound_message_sender_received", ["sender", "received_at"], unique=False)

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("permissions", sa.JSON(), server_default='["staff_api"]', nullable=False))

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_undeliverable_at", portal.core.database.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("email_undeliverable_reason", sa.Text(), server_default="", nullable=False))


def downgrade():
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("email_undeliverable_reason")
        batch_op.drop_column("email_undeliverable_at")

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("permissions")

    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_message_sender_received")
        batch_op.drop_index(batch_op.f("ix_inbound_message_refund_request_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_message_message_id"))

    op.drop_table("inbound_message")
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_session_order_id"))

    op.drop_table("portal_session")
