"""offer set up: when (and by whom) staff set up the alternative a customer took instead of a refund

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 12:00:00

"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import portal.core.database

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

OFFER_TO_SET_UP = "state = 'resolved_with_offer' AND awaiting_staff_since IS NOT NULL"


FK = "fk_refund_request_offer_set_up_by_id_staff_user"


def upgrade():
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offer_set_up_at", portal.core.database.UTCDateTime(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # A foreign key through Alembic would rebuild the table, which SQLite refuses while the search
        # triggers of 0017 name it; a column with its reference is added in place.
        op.execute(
            f"ALTER TABLE refund_request ADD COLUMN offer_set_up_by_id INTEGER CONSTRAINT {FK} REFERENCES staff_user (id)"
        )
    else:
        op.add_column("refund_request", sa.Column("offer_set_up_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK, "refund_request", "staff_user", ["offer_set_up_by_id"], ["id"])
    # The offers taken before this revision were never set up as far as the portal knows (nobody was
    # told of them): they wait on staff from the moment they were taken, like every offer from now on.
    op.execute(
        "UPDATE refund_request SET awaiting_staff_since = COALESCE(resolved_at, updated_at), "
        "sla_clock_at = COALESCE(resolved_at, updated_at), sla_paused_at = NULL "
        "WHERE state = 'resolved_with_offer' AND offer_id IS NOT NULL"
    )
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_refund_request_offer_to_set_up",
            ["sla_clock_at", "id"],
            unique=False,
            sqlite_where=sa.text(OFFER_TO_SET_UP),
            postgresql_where=sa.text(OFFER_TO_SET_UP),
        )


def downgrade():
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.drop_index("ix_refund_request_offer_to_set_up")
    op.execute("UPDATE refund_request SET awaiting_staff_since = NULL WHERE state = 'resolved_with_offer'")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(FK, "refund_request", type_="foreignkey")
        op.drop_column("refund_request", "offer_set_up_by_id")
        op.drop_column("refund_request", "offer_set_up_at")
        return
    # SQLite drops a column with a reference only by rebuilding the table. The triggers on other
    # tables that name refund_request are left as they are while it is renamed into place (legacy
    # renaming); its own triggers go with the old table and are made again as 0017 made them.
    op.execute("PRAGMA legacy_alter_table = ON")
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.drop_column("offer_set_up_by_id")
        batch_op.drop_column("offer_set_up_at")
    op.execute("PRAGMA legacy_alter_table = OFF")
    spec = importlib.util.spec_from_file_location("assignment_0017", Path(__file__).with_name("0017_assignment.py"))
    assert spec is not None and spec.loader is not None
    assignment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assignment)
    for statement in assignment.SQLITE_SEARCH:
        if "CREATE TRIGGER" in statement and " ON refund_request " in statement:
            op.execute(statement)
