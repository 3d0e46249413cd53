"""receipts move from a database column to file storage (PORTAL_STORAGE_URL), bytes unchanged

Every existing PDF is written to storage under receipts/…, read back and compared with its
recorded SHA-256 before the column is dropped; a mismatch stops the migration with nothing
dropped. Downgrading reads each file back (hash checked) into the column.

Numbered 0012 because other branches added 0008–0011; it follows the last of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 10:00:00

"""

import hashlib
import io

import sqlalchemy as sa
from alembic import op
from flask import current_app

from portal.documents.storage import new_key, read_verified
from portal.web.storage import storage_from_config

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

receipt = sa.table(
    "receipt",
    sa.column("id", sa.Integer),
    sa.column("pdf", sa.LargeBinary),
    sa.column("sha256", sa.String),
    sa.column("storage_key", sa.String),
    sa.column("size", sa.BigInteger),
)


def upgrade():
    with op.batch_alter_table("receipt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("size", sa.BigInteger(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(receipt.c.id, receipt.c.sha256)).all()
    if rows:
        storage = storage_from_config(current_app.config)
        for row_id, sha256 in rows:
            pdf = connection.execute(sa.select(receipt.c.pdf).where(receipt.c.id == row_id)).scalar_one()
            if hashlib.sha256(pdf).hexdigest() != sha256:
                raise RuntimeError(f"receipt {row_id}: the stored PDF does not match its SHA-256; nothing migrated")
            key = new_key("receipts", ".pdf")
            storage.put(key, io.BytesIO(pdf))
            read_verified(storage, key, sha256)
            connection.execute(receipt.update().where(receipt.c.id == row_id).values(storage_key=key, size=len(pdf)))
    with op.batch_alter_table("receipt", schema=None) as batch_op:
        batch_op.alter_column("storage_key", existing_type=sa.String(length=128), nullable=False)
        batch_op.alter_column("size", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_receipt_storage_key"), ["storage_key"])
        batch_op.drop_column("pdf")


def downgrade():
    with op.batch_alter_table("receipt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pdf", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(receipt.c.id, receipt.c.storage_key, receipt.c.sha256)).all()
    if rows:
        storage = storage_from_config(current_app.config)
        for row_id, key, sha256 in rows:
            connection.execute(
                receipt.update().where(receipt.c.id == row_id).values(pdf=read_verified(storage, key, sha256))
            )
    with op.batch_alter_table("receipt", schema=None) as batch_op:
        batch_op.alter_column("pdf", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_receipt_storage_key"), type_="unique")
        batch_op.drop_column("size")
        batch_op.drop_column("storage_key")
