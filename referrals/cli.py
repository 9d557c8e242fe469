"""`flask referrals`: referral maintenance from the command line (expiry, for cron)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.db import db
from referrals.services import expire_overdue_referrals

referrals_cli = AppGroup("referrals", help="Referral maintenance.")


@referrals_cli.command("expire")
def expire_command() -> None:
    """Move every sent referral past its answer deadline to `expired`.

    Run it from cron every few minutes; the referral pages run the same check for the
    agencies of the people using them.
    """
    expired = expire_overdue_referrals()
    db.session.commit()
    click.echo(f"{len(expired)} referral(s) expired")
