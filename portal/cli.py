"""The ``portal`` command: Flask's CLI with the portal's own commands added."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from portal.extensions import db


def _create_app():
    from portal import create_app

    return create_app()


def main() -> None:
    cli = FlaskGroup(create_app=_create_app, add_version_option=False, load_dotenv=False,
                     help="Run and manage the refund portal.")
    cli.main(prog_name="portal")


orders_cli = click.Group("orders", help="Orders from the billing system.")


@orders_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def orders_import(file: str) -> None:
    """Import orders from a CSV export: every row valid, or nothing changes."""
    from portal.orders.importing import import_orders

    with open(file, encoding="utf-8-sig", newline="") as stream:
        result = import_orders(db.session, stream)
    if not result.ok:
        click.echo(f"Refused: {len(result.errors)} problem(s) found; nothing was imported.", err=True)
        for error in result.errors:
            click.echo(f"  {error.render()}", err=True)
        sys.exit(1)
    click.echo(f"Imported: {result.created} created, {result.updated} updated, {result.unchanged} unchanged "
               f"({result.customers_created} new customers).")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Seed demo data on an empty database and print the staff login."""
    from portal.demo import seed_demo

    if current_app.config["ENV"] == "production":
        raise click.ClickException("demo data is not for production")
    result = seed_demo(db.session)
    click.echo("Demo data seeded." if result.seeded else "Demo data already present; orders kept.")
    click.echo(f"  orders: {result.orders}")
    click.echo(f"  staff login: {result.admin_email} / {result.admin_password}")
    click.echo("  try a customer lookup with order DEMO-1001 and emily.clark@example.com")


policy_cli = click.Group("policy", help="The refund policy file.")


@policy_cli.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Validate a policy file and name each problem."""
    from portal.policy import PolicyError, load_policy

    try:
        policy = load_policy(file)
    except PolicyError as exc:
        click.echo(f"{file}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    latest = policy.versions[-1]
    click.echo(f"{file}: valid; {len(policy.versions)} version(s), latest {latest.id} effective "
               f"{latest.effective_from.isoformat()} with {len(latest.clauses)} clauses.")


def init_app(app) -> None:
    app.cli.add_command(orders_cli)
    app.cli.add_command(policy_cli)
    app.cli.add_command(demo)
