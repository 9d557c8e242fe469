"""Command-line entry points: `flask keys`, `flask audit`, `flask demo` and `flask init-dev`."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from core.config import is_production


@click.command("init-dev")
@click.option("--demo/--no-demo", default=True, help="Load demo agencies, users and cases.")
@with_appcontext
def init_dev_command(demo: bool) -> None:
    """Create or upgrade the development database and load demo data."""
    if is_production(current_app):
        raise click.ClickException("init-dev is for development; use `flask db upgrade`.")
    upgrade()
    from casework.reference import seed_reference_data
    from core.db import db

    seed_reference_data()
    db.session.commit()
    if demo:
        from core.demo import load_demo_data

        summary = load_demo_data()
        click.echo(f"demo data: {summary}")


def register_cli(app: Flask) -> None:
    from core.audit import audit_cli
    from core.crypto import keys_cli
    from core.demo import demo_cli

    app.cli.add_command(init_dev_command)
    app.cli.add_command(keys_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_cli)
    from casework.cli import cases_cli
    from casework.reference import reference_cli

    app.cli.add_command(reference_cli)
    app.cli.add_command(cases_cli)
    from referrals.cli import referrals_cli

    app.cli.add_command(referrals_cli)
    from reports.statistics import cli as reports_cli

    app.cli.add_command(reports_cli)
    from reports.jobs import register_sweep_command, register_worker_command

    register_worker_command(reports_cli)
    register_sweep_command(reports_cli)
