"""`flask keys`: create the key ring, rotate key-encryption keys, retire old ones, check."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.crypto import (
    DataKey,
    KeyRing,
    KeyRingError,
    KeyRotationError,
    check_keys,
    current_keyring,
    keyring_file_in_use,
    keyring_path,
    rotate_data_keys,
    use_keyring,
    write_keyring_file,
)
from core.db import db

keys_cli = AppGroup("keys", help="Manage the key ring and the data keys it wraps.")


def _file_or_fail() -> Path:
    path = keyring_file_in_use(current_app)
    if path is None:
        raise click.ClickException(
            "the key ring comes from HAVEN_KEYRING: change it there, restart every instance,"
            " then run `flask keys rotate`"
        )
    return path


@keys_cli.command("init")
def init_command() -> None:
    """Create a key ring file with fresh keys (refuses to overwrite one)."""
    path = keyring_path(current_app)
    if path.exists():
        raise click.ClickException(f"{path} already exists")
    write_keyring_file(path, KeyRing.generate())
    click.echo(f"key ring written to {path} (mode 0600); back it up somewhere safe")


@keys_cli.command("rotate")
@click.option("--new-kek", is_flag=True, help="Add a new key-encryption key and make it current.")
@click.option("--batch-size", default=500, show_default=True, help="Data keys per commit.")
def rotate_command(new_kek: bool, batch_size: int) -> None:
    """Rewrap every data key under the current key-encryption key (online, resumable)."""
    if new_kek:
        path = _file_or_fail()
        ring = current_keyring().with_new_kek()
        # The file first: if rewrapping is interrupted, the new KEK is already safe on disk.
        write_keyring_file(path, ring)
        use_keyring(current_app, ring)
        click.echo(f"new key-encryption key {ring.current_kek_id} written to {path}")
    try:
        count = rotate_data_keys(batch_size)
    except KeyRotationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rewrapped {count} data keys under {current_keyring().current_kek_id}")


@keys_cli.command("retire")
@click.argument("kek_id")
def retire_command(kek_id: str) -> None:
    """Remove an old key-encryption key once no live data key is wrapped by it."""
    path = _file_or_fail()
    still_used = db.session.scalar(
        select(func.count())
        .select_from(DataKey)
        .where(DataKey.kek_id == kek_id, DataKey.destroyed_at.is_(None))
    )
    if still_used:
        raise click.ClickException(
            f"{still_used} data keys are still wrapped by {kek_id}: run `flask keys rotate`"
        )
    try:
        ring = current_keyring().without_kek(kek_id)
    except KeyRingError as exc:
        raise click.ClickException(str(exc)) from None
    write_keyring_file(path, ring)
    use_keyring(current_app, ring)
    click.echo(f"key-encryption key {kek_id} removed from {path}")


@keys_cli.command("check")
def check_command() -> None:
    """Report data keys per KEK and exit non-zero if any fails to unwrap or the file is open."""
    report = check_keys()
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise SystemExit(1)


def register_cli(app: Flask) -> None:
    """Add `flask keys` to the app."""
    app.cli.add_command(keys_cli)
