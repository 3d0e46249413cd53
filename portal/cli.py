"""The ``portal`` command: Flask's CLI with the portal's own commands added."""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
import structlog
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from portal import create_app
from portal.accounts.models import PERMISSIONS, STAFF_API, ApiToken
from portal.accounts.sessions import Event, record
from portal.accounts.staff import AccountError, create_api_token, create_staff, revoke_api_token
from portal.config import ConfigError
from portal.core import metrics
from portal.core.database import utcnow
from portal.core.idempotency import prune
from portal.core.vocabulary import OutboxStatus, RefundStatus, StaffRole
from portal.demo import DEMO_STAFF, seed_demo
from portal.documents.models import Document
from portal.documents.storage import StorageError, migrate_files
from portal.documents.uploads import document_key, sweep_staging
from portal.inbound import privacy as inbound_privacy
from portal.insights import decisions as decision_rollups
from portal.insights import rollups
from portal.orders.importing import import_orders
from portal.orders.magic import process_requests
from portal.outbox.export import export_kit
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import resend, to_erased_address
from portal.outbox.worker import StopFlag
from portal.policy import PolicyError, load_policy
from portal.policy.automation import load_automation
from portal.policy.loading import DEFAULT_POLICY
from portal.refunds import privacy
from portal.refunds.automation.runner import set_paused
from portal.refunds.automation.simulation import simulate
from portal.refunds.decisions import send_reminders
from portal.refunds.export import write_refunds_csv
from portal.refunds.models import Receipt, Refund
from portal.refunds.routine import close_unanswered
from portal.web import automation
from portal.web.extensions import db
from portal.web.inbound import EX_TEMPFAIL, exit_code, listener, receive_message
from portal.web.links import links as web_links
from portal.web.mail import DatabaseUnavailable, email_kit, receipt_for, run_worker, transport
from portal.web.policy import current_policy
from portal.web.storage import storage, storage_from_config
from portal.web.telemetry import outbox_collector


def _create_app() -> Flask:
    return create_app()


def main() -> None:
    """The ``portal`` command. A misconfiguration is one line on stderr and exit status 2, an
    unreachable database one line and status 1: never a traceback for an operator to decode."""
    cli = FlaskGroup(
        create_app=_create_app, add_version_option=False, load_dotenv=False, help="Run and manage the refund portal."
    )
    try:
        cli.main(prog_name="portal")
    except (ConfigError, ArgumentError) as error:
        click.echo(f"portal: configuration error: {error}", err=True)
        sys.exit(2)
    except (OperationalError, InterfaceError) as error:
        first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        click.echo(
            f"portal: the database did not answer ({type(error).__name__}: {first}); "
            "check PORTAL_DATABASE_URL and that the server is up",
            err=True,
        )
        sys.exit(1)


orders_cli = click.Group("orders", help="Orders from the billing system.")


@orders_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def orders_import(file: str) -> None:
    """Import orders from a CSV export: every row valid, or nothing changes."""

    with open(file, encoding="utf-8-sig", newline="") as stream:
        result = import_orders(db.session(), stream)
    if not result.ok:
        db.session.rollback()
        click.echo(f"Refused: {len(result.errors)} problem(s) found; nothing was imported.", err=True)
        for error in result.errors:
            click.echo(f"  {error.render()}", err=True)
        sys.exit(1)
    db.session.commit()
    click.echo(
        f"Imported: {result.created} created, {result.updated} updated, {result.unchanged} unchanged "
        f"({result.customers_created} new customers)."
    )


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Seed demo data on an empty database and print the staff logins."""

    if current_app.config["ENV"] == "production":
        raise click.ClickException("demo data is not for production")
    links = web_links()
    result = seed_demo(db.session(), policy=current_policy(), links=links, storage=storage())
    if result.seeded:
        click.echo("Demo data seeded.")
        click.echo(f"  orders: {result.orders}, refund requests filed: {result.requests}")
    else:
        click.echo(f"Demo data already present: {result.orders} orders kept; the staff logins get a new password.")
    for email, _, role in DEMO_STAFF:
        click.echo(f"  staff login ({role.value}): {email} / {result.admin_password}")
    click.echo(f"  staff console: {current_app.config['BASE_URL']}/staff/")
    click.echo("  try a customer lookup with order DEMO-1001 and emily.clark@example.com")
    click.echo(
        f"  JSON API: {current_app.config['BASE_URL']}/api/v1/reference; make a token with "
        f"`portal staff token {result.admin_email} --name demo`"
    )


policy_cli = click.Group("policy", help="The refund policy file.")


@policy_cli.command("check")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@with_appcontext
def policy_check(file: str | None) -> None:
    """Validate a policy file and name each problem (without FILE: the one this portal serves)."""
    # Checking the policy in force is the common case, so it needs no path; PORTAL_POLICY_FILE
    # or the bundled sample, as the portal itself loads it.
    file = file or current_app.config.get("POLICY_FILE") or str(DEFAULT_POLICY)
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        click.echo(f"{file}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    latest = policy.versions[-1]
    click.echo(
        f"{file}: valid; {len(policy.versions)} version(s), latest {latest.id} effective "
        f"{latest.effective_from.isoformat()} with {len(latest.clauses)} clauses."
    )


def sweep_uploads() -> int:
    return sweep_staging(
        storage(), max_age_seconds=float(current_app.config["STAGING_MAX_AGE_MINUTES"]) * 60, now=time.time()
    )


uploads_cli = click.Group("uploads", help="Customer documents.")


@uploads_cli.command("sweep")
@with_appcontext
def uploads_sweep() -> None:
    """Delete staged documents (from forms never sent) older than PORTAL_STAGING_MAX_AGE_MINUTES."""
    click.echo(f"Deleted {sweep_uploads()} expired staged upload(s).")


outbox_cli = click.Group("outbox", help="Emails waiting to go out.")


@outbox_cli.command("send")
@click.option("--watch", is_flag=True, help="Keep running and send new messages as they are queued.")
@click.option("--interval", type=float, default=None, help="Seconds between rounds with --watch.")
@click.option(
    "--metrics-port", type=int, default=None, help="Serve this worker's Prometheus figures on this port (with --watch)."
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@with_appcontext
def outbox_send(watch: bool, interval: float | None, metrics_port: int | None, metrics_host: str) -> None:
    """Deliver every due message (retries with backoff; dead after too many attempts).

    Each round also queues the reminders for information requests unanswered for three days,
    forgets API idempotency keys older than a day, sends the links customers asked for and deletes
    staged uploads older than PORTAL_STAGING_MAX_AGE_MINUTES; with --watch the retention rules
    are applied when it starts and once a day. With --watch, SIGTERM (or Ctrl-C) lets the message
    being delivered finish, then the worker exits; a database outage is waited out.
    """
    log = structlog.get_logger("portal.outbox")
    interval = interval if interval is not None else float(current_app.config["OUTBOX_POLL_SECONDS"])
    links = web_links()
    stop = StopFlag()

    # With --watch, retention runs when the worker starts and then once a day.
    retention_due = [time.monotonic()] if watch else []

    def chores() -> None:
        # Each chore is its own unit of work, committed on its own.
        now = datetime.now(UTC)
        if retention_due and time.monotonic() >= retention_due[0]:
            # Retention is idempotent, and with several workers each request is taken by one of them.
            try:
                report = run_retention(dry_run=False)
            except StorageError as error:  # the storage is away: nothing committed, tried again next round
                db.session.rollback()
                log.warning("retention postponed: storage unavailable", error=str(error))
            else:
                log.info(
                    "retention applied",
                    documents=len(report.documents),
                    requests=len(report.requests),
                    receipts=len(report.receipts),
                )
                retention_due[0] = time.monotonic() + RETENTION_EVERY
        close_after = timedelta(days=float(current_app.config["AWAITING_CLOSE_DAYS"]))
        reminded = send_reminders(db.session(), now=now, links=links, close_after=close_after)
        db.session.commit()
        closed = close_unanswered(db.session(), now=now, links=links, after=close_after)
        db.session.commit()
        if closed:
            log.info("unanswered requests closed", count=closed, after_days=close_after.days)
            if not watch:
                click.echo(f"closed {closed} request(s) left unanswered for {close_after.days} days")
        automated = automation.run_round()
        if automated.approved or automated.problems:
            log.info("automation round", summary=automated.describe())
            if not watch:
                click.echo(automated.describe())
        prune(db.session(), now=now)
        db.session.commit()
        process_requests(db.session(), base_url=current_app.config["BASE_URL"], now=now)
        db.session.commit()
        try:
            swept = sweep_uploads()
        except StorageError as error:  # the storage is away: the files wait for a later round
            log.warning("staged uploads not swept: storage unavailable", error=str(error))
            swept = 0
        if swept:
            log.info("expired staged uploads deleted", count=swept)
            if not watch:
                click.echo(f"deleted {swept} expired staged upload(s)")
        if reminded:
            log.info("reminders queued", count=reminded)
            if not watch:
                click.echo(f"queued {reminded} reminder(s) for unanswered information requests")

    received: list[str] = []

    def request_stop(signum: int, _frame: object) -> None:
        # Only a flag: writing a log line here could re-enter a write to stderr in progress.
        received.append(signal.Signals(signum).name)
        stop.set()

    if watch:
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if metrics_port is not None:
            engine = db.engine
            metrics.serve(metrics_port, metrics_host, outbox_collector(lambda: Session(engine)))
            log.info("outbox worker metrics", address=f"http://{metrics_host}:{metrics_port}/metrics")
    log.info("outbox worker started", transport=transport().describe(), watch=watch, interval_s=interval)
    try:
        report = run_worker(watch=watch, interval=interval, stop=stop, chores=chores)
    except DatabaseUnavailable as error:
        raise click.ClickException(f"the database did not answer: {error}") from None
    if watch:
        log.info(
            "outbox worker stopped",
            signal=received[0] if received else None,
            sent=report.sent,
            retried=report.retried,
            dead=report.dead,
        )
    else:
        click.echo(f"sent {report.sent}, to retry {report.retried}, dead {report.dead}")


@outbox_cli.command("list")
@click.option("--status", type=click.Choice(["pending", "sent", "dead"]), default=None)
@with_appcontext
def outbox_list(status: str | None) -> None:
    """List messages, newest first."""

    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    if status:
        query = query.where(OutboxMessage.status == OutboxStatus(status))
    messages = list(db.session.scalars(query))
    if not messages:
        # An empty answer reads like a hang or a crash; say what was looked for.
        click.echo(f"No {status} messages in the outbox." if status else "The outbox is empty.")
    for m in messages:
        click.echo(
            f"{m.id:>6} {m.status.value:<7} {m.message:<20} {m.locale} {m.recipient} "
            f"attempts={m.attempts} {m.last_error[:80]}"
        )


@outbox_cli.command("resend")
@click.argument("message_id", type=int)
@with_appcontext
def outbox_resend(message_id: int) -> None:
    """Queue a dead (or already sent) message again, with the same Message-ID."""

    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise click.ClickException(f"no outbox message {message_id}")
    if to_erased_address(message):
        raise click.ClickException(f"message {message_id} was to a customer whose data was erased")
    resend(db.session(), message, now=datetime.now(UTC))
    db.session.commit()
    click.echo(f"message {message_id} queued again")


emails_cli = click.Group("emails", help="The email kit.")


@emails_cli.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--merge-tags",
    type=click.Choice(["mailchimp", "handlebars"]),
    default=None,
    help="Write the templates with an ESP's merge tags in place of our variables.",
)
@with_appcontext
def emails_export(folder: str, merge_tags: str | None) -> None:
    """Write the kit: every message rendered per language, the sources, the brand file, the variables."""

    try:
        written = export_kit(email_kit(), Path(folder), merge_tags=merge_tags)
    except OSError as error:
        raise click.ClickException(f"cannot write the kit to {folder}: {error.strerror or error}") from None
    click.echo(f"Wrote {len(written)} files to {folder}.")


staff_cli = click.Group("staff", help="Staff accounts.")


@staff_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["agent", "admin", "marketing"]), required=True)
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
@with_appcontext
def staff_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a staff account; the password is asked for (or read from stdin), never an argument."""

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_staff(db.session(), email, StaffRole(role), password, name)
    except AccountError as error:
        raise click.ClickException(error.message) from None
    record(db.session(), Event.ACCOUNT_CREATED, now=utcnow(), subject=user, ip="command line", detail=user.role.value)
    db.session.commit()
    click.echo(f"Created {user.role.value} {user.email}.")


@staff_cli.command("token")
@click.argument("email")
@click.option("--name", required=True, help="What will use the token, such as 'helpdesk'.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice(list(PERMISSIONS)),
    default=[STAFF_API],
    show_default=True,
    help="What the token may do; repeat for several. portal_sessions: POST /api/v1/portal-sessions.",
)
@with_appcontext
def staff_token(email: str, name: str, permissions: tuple[str, ...]) -> None:
    """Make an API token that acts as this staff member; it is printed once and stored hashed."""

    try:
        made, token = create_api_token(db.session(), email, name, now=utcnow(), permissions=permissions)
    except AccountError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(
        f"Token {made.id} ({made.name}) for {made.staff_user.email}, "
        f"role {made.staff_user.role.value}, may {', '.join(made.permissions)}. It is shown only now:",
        err=True,
    )
    click.echo(token)


@staff_cli.command("tokens")
@with_appcontext
def staff_tokens() -> None:
    """List API tokens (their first characters only) and whether they are revoked."""
    for token in db.session.scalars(select(ApiToken).order_by(ApiToken.id)):
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        click.echo(
            f"{token.id}\t{token.prefix}…\t{token.staff_user.email}\t{token.name}\t"
            f"{','.join(token.permissions)}\t{state}\tlast used {used}"
        )


@staff_cli.command("revoke-token")
@click.argument("token_id", type=int)
@with_appcontext
def staff_revoke_token(token_id: int) -> None:
    """Revoke an API token at once (see `portal staff tokens` for the ids)."""

    if revoke_api_token(db.session(), token_id, now=utcnow()) is None:
        raise click.ClickException(f"There is no token {token_id}.")
    db.session.commit()
    click.echo(f"Token {token_id} is revoked.")


refunds_cli = click.Group("refunds", help="Refunds made.")


@refunds_cli.command("export")
@click.option("--since", required=True, help="First day to include, YYYY-MM-DD (UTC).")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@with_appcontext
def refunds_export(since: str, output) -> None:
    """Write a CSV of the refunds made since a day, with their business costs, for accounting."""

    try:
        day = date.fromisoformat(since)
    except ValueError:
        raise click.BadParameter("use the form YYYY-MM-DD", param_hint="--since") from None
    count = write_refunds_csv(db.session(), day, output)
    record(db.session(), Event.EXPORT, now=utcnow(), ip="command line", detail=f"refunds since {day.isoformat()}")
    db.session.commit()
    click.echo(f"{count} refund(s) since {day.isoformat()}", err=True)


RETENTION_EVERY = 24 * 3600

retention_cli = click.Group("retention", help="The data lifecycle's retention rules.")


def run_retention(*, dry_run: bool) -> privacy.RetentionReport:
    report = privacy.apply_retention(
        db.session(),
        storage(),
        now=datetime.now(UTC),
        dry_run=dry_run,
        document_days=int(current_app.config["DOCUMENT_RETENTION_DAYS"]),
        financial_years=int(current_app.config["FINANCIAL_RETENTION_YEARS"]),
    )
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    return report


def describe_retention(report: privacy.RetentionReport, *, dry_run: bool) -> str:
    verb = "would delete" if dry_run else "deleted"
    lines = [
        f"retention: {verb} {len(report.documents)} document(s) of {len(report.requests)} closed request(s) "
        f"and {len(report.receipts)} receipt(s) past the financial retention"
    ]
    lines += [f"  {reference}: {name}" for reference, name in report.documents]
    lines += [f"  receipt {number}" for number in report.receipts]
    return "\n".join(lines)


@retention_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted and delete nothing.")
@with_appcontext
def retention_run(dry_run: bool) -> None:
    """Delete documents PORTAL_DOCUMENT_RETENTION_DAYS after their request closed, and receipts after
    PORTAL_FINANCIAL_RETENTION_YEARS (the outbox worker does this daily)."""

    click.echo(describe_retention(run_retention(dry_run=dry_run), dry_run=dry_run))


customers_cli = click.Group("customers", help="A customer's data: erasure and export on request.")


def _customer(email: str):
    customer = privacy.find_customer(db.session(), email)
    if customer is None:
        raise click.ClickException(f"no customer with the address {email}")
    return customer


@customers_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def customers_erase(email: str, yes: bool) -> None:
    """Erase a customer's personal data and documents (financial records kept); they are told by email."""

    customer = _customer(email)
    if not yes:
        click.confirm(f"Erase {customer.name} <{customer.email}> and delete their documents?", abort=True)
    domain = current_app.config["BASE_URL"].split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    report = privacy.erase_customer(
        db.session(), storage(), customer, now=datetime.now(UTC), actor="command line", domain=domain
    )
    report.steps.append(f"{inbound_privacy.erase_replies(db.session(), customer)} email(s) from the customer cleared")
    record(
        db.session(),
        Event.CUSTOMER_ERASED,
        now=utcnow(),
        ip="command line",
        detail=f"customer {report.customer_id}: " + "; ".join(report.steps),
    )
    db.session.commit()
    for line in report.steps:
        click.echo(f"  {line}")
    click.echo(f"Customer {report.customer_id} erased.")


@customers_cli.command("export")
@click.argument("email")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="The zip to write (default: customer-ID.zip in the current folder).",
)
@with_appcontext
def customers_export(email: str, output: str | None) -> None:
    """Everything held about a customer as JSON, with their documents and receipts, in one zip."""

    customer = _customer(email)
    path = Path(output or f"customer-{customer.id}.zip")
    with open(path, "wb") as out:
        privacy.export_customer(
            db.session(), storage(), customer, out, more=inbound_privacy.export_sections(db.session(), customer)
        )
    privacy.security_log.info("export of customer %s by the command line", customer.id)
    record(db.session(), Event.EXPORT, now=utcnow(), ip="command line", detail=f"customer {customer.id}")
    db.session.commit()
    click.echo(f"Wrote {path}.")


storage_cli = click.Group("storage", help="File storage: documents, staged uploads and receipts.")


@storage_cli.command("migrate")
@click.option("--to", "target_url", required=True, help="file:///folder or s3://bucket/prefix")
@with_appcontext
def storage_migrate(target_url: str) -> None:
    """Copy every stored file to another storage and verify each hash; then set PORTAL_STORAGE_URL to it."""

    source = storage()
    try:
        target = storage_from_config({**current_app.config, "STORAGE_URL": target_url})
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--to") from None
    if target.url == source.url:
        raise click.ClickException(f"{target_url} is the storage in use already")
    recorded = {
        document_key(name): sha for name, sha in db.session.execute(select(Document.stored_name, Document.sha256))
    }
    recorded |= {key: sha for key, sha in db.session.execute(select(Receipt.storage_key, Receipt.sha256))}
    db.session.rollback()
    click.echo(f"Copying {source.url} to {target.url} …")
    report = migrate_files(source, target, recorded)
    size = sum(c.size for c in report.copied)
    click.echo(f"{len(report.copied)} file(s) copied and verified ({size} bytes).")
    for key, problem in sorted(report.failed.items()):
        click.echo(f"  FAILED {key}: {problem}", err=True)
    for key in report.missing:
        click.echo(f"  MISSING {key}: recorded in the database but not in {source.url}", err=True)
    if report.failed or report.missing:
        sys.exit(1)
    click.echo(f"Done. Set PORTAL_STORAGE_URL={target.url} (and restart the web servers and workers).")


receipts_cli = click.Group("receipts", help="PDF receipts of refunds.")


@receipts_cli.command("issue")
@with_appcontext
def receipts_issue() -> None:
    """Issue the receipt of every succeeded refund that has none yet (the outbox worker does it too)."""

    missing = db.session.scalars(
        select(Refund)
        .outerjoin(Receipt, Receipt.refund_id == Refund.id)
        .where(Refund.status == RefundStatus.SUCCEEDED, Receipt.id.is_(None))
    ).all()
    for refund in missing:
        receipt = receipt_for(refund.refund_request)
        assert receipt is not None  # the refund succeeded, so it has one now
        db.session.commit()
        click.echo(f"{receipt.number} for {refund.refund_request.reference}")
    click.echo(f"{len(missing)} receipt(s) issued")


insights_cli = click.Group("insights", help="The figures behind /staff/insights.")


@insights_cli.command("rebuild")
@with_appcontext
def insights_rebuild() -> None:
    """Recount the daily rollups from the requests, orders and refunds (after loading data by hand)."""

    rollups.rebuild(db.session())
    decision_rollups.rebuild(db.session())
    db.session.commit()
    click.echo("Rollups rebuilt.")


mail_cli = click.Group("mail", help="Customers' replies by email.")


@mail_cli.command("receive")
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="The envelope recipient (Postfix: ${recipient}); the message's headers otherwise.",
)
@with_appcontext
def mail_receive(recipients: tuple[str, ...]) -> None:
    """Receive one RFC 5322 message on standard input (an MTA's pipe transport).

    Exit codes (sysexits): 0 accepted (auto-replies, bounces and loops included, so nothing
    bounces back), 67 unknown or forged reply address, 65 malformed or too large, 75 try again.
    """
    raw = sys.stdin.buffer.read(int(current_app.config["INBOUND_MAX_BYTES"]) + 1)
    try:
        received = receive_message(raw, recipients)
    except Exception as error:  # the database is down: the MTA keeps the message and retries
        click.echo(f"temporary failure: {type(error).__name__}: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(f"{received.outcome.value}: {received.detail}", err=True)
    sys.exit(exit_code(received))


@mail_cli.command("serve")
@click.option("--host", default=None, help="Address to listen on (PORTAL_INBOUND_LISTEN_HOST).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port to listen on (PORTAL_INBOUND_LISTEN_PORT)."
)
@click.option(
    "--protocol",
    type=click.Choice(["lmtp", "smtp"]),
    default=None,
    help="LMTP behind an MTA, or SMTP for setups without one (PORTAL_INBOUND_PROTOCOL).",
)
@with_appcontext
def mail_serve(host: str | None, port: int | None, protocol: str | None) -> None:
    """Listen for replies over LMTP or SMTP (aiosmtpd) until interrupted."""
    config = current_app.config
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the proxy's documented way to the app
    controller = listener(
        app,
        host=host or config["INBOUND_LISTEN_HOST"],
        port=port if port is not None else int(config["INBOUND_LISTEN_PORT"]),
        protocol=protocol or config["INBOUND_PROTOCOL"],
    )
    controller.start()
    click.echo(
        f"Receiving {(protocol or config['INBOUND_PROTOCOL']).upper()} on "
        f"{controller.hostname}:{controller.port} for @{config['INBOUND_DOMAIN'] or '(any domain)'}."
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


automation_cli = click.Group("automation", help="Rules that approve and refund routine requests.")


@automation_cli.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def automation_check(file: str) -> None:
    """Validate an automation rules file and name each problem."""
    try:
        rules = load_automation(file)
    except PolicyError as exc:
        click.echo(f"{file}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    count = sum(len(v.rules) for v in rules.versions)
    click.echo(f"{file}: valid; {len(rules.versions)} version(s), {count} rule(s), latest {rules.versions[-1].id}")


@automation_cli.command("run")
@with_appcontext
def automation_run() -> None:
    """One round: look at new requests, then approve and refund the due ones by their rules; also
    close the requests left unanswered (PORTAL_AWAITING_CLOSE_DAYS) after their reminder."""
    closed = close_unanswered(
        db.session(),
        now=utcnow(),
        links=web_links(),
        after=timedelta(days=float(current_app.config["AWAITING_CLOSE_DAYS"])),
    )
    db.session.commit()
    click.echo(automation.run_round().describe() + (f"; closed {closed} unanswered request(s)" if closed else ""))


@automation_cli.command("simulate")
@click.option("--since", default=None, help="First day of filing to replay, YYYY-MM-DD (UTC); a year ago by default.")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A rules file to judge instead of the one in force (its newest version), e.g. before saving it.",
)
@with_appcontext
def automation_simulate(since: str | None, rules_file: str | None) -> None:
    """Replay the rules over past requests: how many they would have automated, the money, and the
    requests staff declined or reduced (false positives), by rule."""
    try:
        rules = load_automation(rules_file) if rules_file else automation.current_rules()
    except PolicyError as exc:
        raise click.ClickException("; ".join(exc.problems)) from None
    try:
        start = (
            datetime.combine(date.fromisoformat(since), datetime.min.time(), tzinfo=UTC)
            if since
            else utcnow() - timedelta(days=365)
        )
    except ValueError:
        raise click.BadParameter("use the form YYYY-MM-DD", param_hint="--since") from None
    result = simulate(db.session(), rules, since=start)
    db.session.rollback()
    click.echo(
        f"rules {rules.source} (version {result.version}) over {result.requests} request(s) filed since "
        f"{start.date().isoformat()}:"
    )
    money = ", ".join(f"{m.amount} {m.currency}" for m in result.money()) or "nothing"
    click.echo(f"  would have automated {result.automated} ({money}); false positives {result.false_positives}")
    for figures in result.by_rule.values():
        amounts = ", ".join(f"{m.amount} {m.currency}" for m in figures.amounts()) or "nothing"
        click.echo(
            f"  rule {figures.rule}: {figures.requests} request(s), {amounts}; "
            f"staff declined {figures.declined}, reduced {figures.reduced}"
        )
        for kind, examples in (("declined", figures.declined_examples), ("reduced", figures.reduced_examples)):
            if examples:
                click.echo(f"    {kind}: {' '.join(examples)}")
    if result.misses:
        click.echo(
            "  left for staff, by the first condition that failed: "
            + ", ".join(f"{k} {v}" for k, v in result.misses.most_common())
        )


@automation_cli.command("pause")
@with_appcontext
def automation_pause() -> None:
    """Pause all automation at once (the console's switch)."""
    set_paused(db.session(), True, staff_user_id=None, now=utcnow())
    db.session.commit()
    click.echo("automation paused")


@automation_cli.command("resume")
@with_appcontext
def automation_resume() -> None:
    """Let automation run again."""
    set_paused(db.session(), False, staff_user_id=None, now=utcnow())
    db.session.commit()
    click.echo("automation resumed")


def init_app(app) -> None:
    app.cli.add_command(mail_cli)
    app.cli.add_command(automation_cli)
    app.cli.add_command(insights_cli)
    app.cli.add_command(receipts_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(retention_cli)
    app.cli.add_command(customers_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(refunds_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(uploads_cli)
    app.cli.add_command(emails_cli)
    app.cli.add_command(orders_cli)
    app.cli.add_command(policy_cli)
    app.cli.add_command(demo)
