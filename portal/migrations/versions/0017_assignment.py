"""assignment: an assignee per request, the service-level clock, saved views, presence, search

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 12:00:00

"""

import sqlalchemy as sa
from alembic import op

import portal.core.database

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OPEN = "state NOT IN ('closed_unanswered', 'declined', 'refunded', 'resolved_with_offer', 'withdrawn')"
WAITING_ON_STAFF = "awaiting_staff_since IS NOT NULL"

# What the staff search reads: reference, order number, product, customer name and email, lowercased.
BODY = "lower(r.reference || ' ' || o.order_number || ' ' || o.product || ' ' || c.name || ' ' || c.email)"
SOURCE = 'FROM refund_request r JOIN "order" o ON o.id = r.order_id JOIN customer c ON c.id = o.customer_id'

# SQLite: an FTS5 table with the trigram tokenizer (case-insensitive substrings of 3+ characters),
# its rowid the request's id, kept in step by triggers on the three tables it reads.
SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE request_search USING fts5(body, tokenize='trigram')",
    f"INSERT INTO request_search (rowid, body) SELECT r.id, {BODY} {SOURCE}",
    f"""CREATE TRIGGER request_search_insert AFTER INSERT ON refund_request BEGIN
        INSERT INTO request_search (rowid, body) SELECT r.id, {BODY} {SOURCE} WHERE r.id = new.id;
    END""",
    """CREATE TRIGGER request_search_delete AFTER DELETE ON refund_request BEGIN
        DELETE FROM request_search WHERE rowid = old.id;
    END""",
    f"""CREATE TRIGGER request_search_request AFTER UPDATE OF reference, order_id ON refund_request BEGIN
        DELETE FROM request_search WHERE rowid = old.id;
        INSERT INTO request_search (rowid, body) SELECT r.id, {BODY} {SOURCE} WHERE r.id = new.id;
    END""",
    f"""CREATE TRIGGER request_search_order AFTER UPDATE OF order_number, product, customer_id ON "order" BEGIN
        DELETE FROM request_search WHERE rowid IN (SELECT id FROM refund_request WHERE order_id = new.id);
        INSERT INTO request_search (rowid, body) SELECT r.id, {BODY} {SOURCE} WHERE r.order_id = new.id;
    END""",
    f"""CREATE TRIGGER request_search_customer AFTER UPDATE OF name, email ON customer BEGIN
        DELETE FROM request_search WHERE rowid IN
            (SELECT r.id FROM refund_request r JOIN "order" o ON o.id = r.order_id WHERE o.customer_id = new.id);
        INSERT INTO request_search (rowid, body) SELECT r.id, {BODY} {SOURCE} WHERE o.customer_id = new.id;
    END""",
]

# PostgreSQL: a plain table with a pg_trgm GIN index (ILIKE '%…%' and LIKE on the lowercased text use
# it), kept in step by one trigger function.
UPSERT = "ON CONFLICT (request_id) DO UPDATE SET body = EXCLUDED.body"
POSTGRESQL_SEARCH = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE request_search (request_id integer PRIMARY KEY REFERENCES refund_request (id) ON DELETE CASCADE, "
    "body text NOT NULL)",
    "CREATE INDEX ix_request_search_trgm ON request_search USING gin (body gin_trgm_ops)",
    f"INSERT INTO request_search (request_id, body) SELECT r.id, {BODY} {SOURCE}",
    f"""CREATE FUNCTION request_search_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'refund_request' THEN
            INSERT INTO request_search (request_id, body) SELECT r.id, {BODY} {SOURCE} WHERE r.id = NEW.id {UPSERT};
        ELSIF TG_TABLE_NAME = 'order' THEN
            INSERT INTO request_search (request_id, body) SELECT r.id, {BODY} {SOURCE} WHERE r.order_id = NEW.id {UPSERT};
        ELSE
            INSERT INTO request_search (request_id, body) SELECT r.id, {BODY} {SOURCE} WHERE o.customer_id = NEW.id {UPSERT};
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER request_search_request AFTER INSERT OR UPDATE OF reference, order_id ON refund_request "
    "FOR EACH ROW EXECUTE FUNCTION request_search_refresh()",
    'CREATE TRIGGER request_search_order AFTER UPDATE OF order_number, product, customer_id ON "order" '
    "FOR EACH ROW EXECUTE FUNCTION request_search_refresh()",
    "CREATE TRIGGER request_search_customer AFTER UPDATE OF name, email ON customer "
    "FOR EACH ROW EXECUTE FUNCTION request_search_refresh()",
]


def upgrade():
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sla_clock_at", portal.core.database.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sla_paused_at", portal.core.database.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_refund_request_assignee_id_staff_user"), "staff_user", ["assignee_id"], ["id"]
        )
    # The clock of the requests already filed: from their filing; paused since their last change if
    # they wait on the customer now.
    op.execute("UPDATE refund_request SET sla_clock_at = created_at")
    op.execute("UPDATE refund_request SET sla_paused_at = updated_at WHERE state = 'awaiting_customer'")
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_refund_request_needs_action",
            ["sla_clock_at", "id"],
            unique=False,
            sqlite_where=sa.text(WAITING_ON_STAFF),
            postgresql_where=sa.text(WAITING_ON_STAFF),
        )
        batch_op.create_index(
            "ix_refund_request_open_assignee",
            ["assignee_id", "sla_clock_at", "id"],
            unique=False,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )
        batch_op.create_index(
            "ix_refund_request_open_due",
            ["sla_clock_at", "id"],
            unique=False,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )
        batch_op.create_index("ix_refund_request_state_due", ["state", "sla_clock_at", "id"], unique=False)

    op.create_table(
        "assignment_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("refund_request_id", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["staff_user.id"], name=op.f("fk_assignment_event_assignee_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["staff_user.id"], name=op.f("fk_assignment_event_previous_id_staff_user")
        ),
        sa.ForeignKeyConstraint(["by_id"], ["staff_user.id"], name=op.f("fk_assignment_event_by_id_staff_user")),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_request.id"],
            name=op.f("fk_assignment_event_refund_request_id_refund_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_event")),
    )
    with op.batch_alter_table("assignment_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignment_event_refund_request_id"), ["refund_request_id"], unique=False)

    op.create_table(
        "saved_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=False),
        sa.Column("created_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_saved_view_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view")),
        sa.UniqueConstraint("staff_user_id", "name", name=op.f("uq_saved_view_staff_user_id")),
    )
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_view_staff_user_id"), ["staff_user_id"], unique=False)

    op.create_table(
        "request_presence",
        sa.Column("refund_request_id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", portal.core.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_request.id"],
            name=op.f("fk_request_presence_refund_request_id_refund_request"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_request_presence_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("refund_request_id", "staff_user_id", name=op.f("pk_request_presence")),
    )

    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_SEARCH if postgresql else SQLITE_SEARCH:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("request_search_request", "refund_request"),
            ("request_search_order", '"order"'),
            ("request_search_customer", "customer"),
        ):
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.execute("DROP FUNCTION request_search_refresh()")
        op.execute("DROP TABLE request_search")
    else:
        for trigger in (
            "request_search_insert",
            "request_search_delete",
            "request_search_request",
            "request_search_order",
            "request_search_customer",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE request_search")
    op.drop_table("request_presence")
    with op.batch_alter_table("saved_view", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_view_staff_user_id"))
    op.drop_table("saved_view")
    with op.batch_alter_table("assignment_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_event_refund_request_id"))
    op.drop_table("assignment_event")
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.drop_index("ix_refund_request_state_due")
        batch_op.drop_index("ix_refund_request_open_due")
        batch_op.drop_index("ix_refund_request_open_assignee")
        batch_op.drop_index("ix_refund_request_needs_action")
        batch_op.drop_constraint(batch_op.f("fk_refund_request_assignee_id_staff_user"), type_="foreignkey")
        batch_op.drop_column("sla_paused_at")
        batch_op.drop_column("sla_clock_at")
        batch_op.drop_column("assignee_id")
