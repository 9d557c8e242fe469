"""`flask cases`: case maintenance from the command line (the retention purge)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from casework.models import Case
from casework.supervision import PURGE_BATCH_SIZE, erase_expired_batch, expired_cases_query
from core.db import db

cases_cli = AppGroup("cases", help="Case maintenance.")


@cases_cli.command("purge-expired")
@click.option("--dry-run", is_flag=True, help="List what would be erased; change nothing.")
@click.option("--batch-size", default=PURGE_BATCH_SIZE, show_default=True, type=click.IntRange(1))
def purge_expired_command(dry_run: bool, batch_size: int) -> None:
    """Erase (crypto-shred) cases closed longer than HAVEN_RETENTION_DAYS.

    Runs in batches, committing after each, so an interrupted run keeps what it did and the
    next run goes on from there. Each erasure is audited as the system (no user).
    """
    days = current_app.config["HAVEN_RETENTION_DAYS"]
    if dry_run:
        query = expired_cases_query()
        count = db.session.scalar(select(func.count()).select_from(query.subquery()))
        for reference in db.session.scalars(query.with_only_columns(Case.reference)):
            click.echo(f"would erase {reference}")
        click.echo(f"{count} case(s) closed more than {days} days ago would be erased (dry run)")
        return
    total = 0
    while True:
        references = erase_expired_batch(batch_size)
        if not references:
            break
        db.session.commit()
        total += len(references)
        click.echo(f"erased {len(references)} case(s) ({total} so far)")
    click.echo(f"{total} case(s) closed more than {days} days ago erased")
