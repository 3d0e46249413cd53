"""order tax: the original invoice number, the tax included in the charge and its rate (all optional)

The receipt (credit note) names the invoice it corrects and the tax share of what it refunds,
when the billing export carries them. The rate is kept
in hundredths of a percent (2100 for 21 %), a whole number like the amounts: exact on SQLite too. Existing orders keep NULL: their receipts stay as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 12:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_number", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tax_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("tax_rate_basis_points", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(op.f("ck_order_tax_not_negative"), "tax_minor >= 0")


def downgrade():
    with op.batch_alter_table("order", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_order_tax_not_negative"), type_="check")
        batch_op.drop_column("tax_rate_basis_points")
        batch_op.drop_column("tax_minor")
        batch_op.drop_column("invoice_number")
