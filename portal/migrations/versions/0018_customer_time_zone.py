"""customer time zone: the zone a customer's browser reported, and the one each request was filed in

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 12:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
    # Requests filed before browsers reported a zone were shown (and emailed) in UTC.
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False))


def downgrade():
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
