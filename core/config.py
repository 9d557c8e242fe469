"""Configuration: defaults, then instance/config.py, then HAVEN_* environment variables."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigurationError(RuntimeError):
    """Raised when the app must not start with the configuration it was given."""


DEFAULTS: dict[str, object] = {
    "HAVEN_ENV": "development",
    "SQLALCHEMY_DATABASE_URI": None,  # filled in from the instance folder
    # hide_parameters: database errors in logs never carry the values of the failed statement.
    # No pool_pre_ping: it costs a round trip on every request; after a database restart
    # the first statement on a dead connection fails instead, and SQLAlchemy then drops
    # every pooled connection, so one request per worker sees the error page, once.
    "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
    # Attachments may be 20 MB; multipart overhead and other fields need a little more.
    "MAX_CONTENT_LENGTH": 21 * 1024 * 1024,
    "MAX_FORM_MEMORY_SIZE": 2 * 1024 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "haven_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    "HAVEN_IDLE_TIMEOUT": timedelta(minutes=15),
    "HAVEN_ABSOLUTE_TIMEOUT": timedelta(hours=8),
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session, which is bounded
    "BABEL_DEFAULT_LOCALE": "en",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Baku",
    "HAVEN_LANGUAGES": ("en", "az", "ru"),
    "HAVEN_REDIS_URL": None,
    "HAVEN_LOGIN_LIMIT": "10 per minute;50 per hour",
    "HAVEN_LOCKOUT_THRESHOLD": 5,
    "HAVEN_LOCKOUT_MINUTES": 15,
    "HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES": 1000,
    "HAVEN_AUDIT_CHECKPOINT_EVERY_SECONDS": 300,
    # Link new audit entries into the hash chain after each response (plus `flask audit link`
    # from cron every minute, so checkpoints are written while no requests come in).
    "HAVEN_AUDIT_LINK_AFTER_REQUEST": True,
    # Seconds between two linker runs of one process after responses.
    "HAVEN_AUDIT_LINK_INTERVAL": 2.0,
    "HAVEN_LOAD_DEMO_DATA": False,
    # Reflection and recovery period from identification, and the warning before it ends.
    "HAVEN_REFLECTION_PERIOD_DAYS": 30,
    "HAVEN_REFLECTION_WARNING_DAYS": 5,
    # A minor's guardian is appointed within this many working days of identification
    # (core.working_days: weekends and the admin's public holidays do not count), warned
    # about in the last HAVEN_GUARDIAN_WARNING_DAYS working days.
    "HAVEN_GUARDIAN_DAYS": 15,
    "HAVEN_GUARDIAN_WARNING_DAYS": 3,
    "HAVEN_ATTACHMENT_MAX_BYTES": 20 * 1024 * 1024,
    # Closed cases are crypto-shredded this many days after closing (`flask cases purge-expired`).
    "HAVEN_RETENTION_DAYS": 5 * 365,
    # Notification e-mail (core.notifications): none while HAVEN_SMTP_HOST is unset. Links in
    # mails start with HAVEN_BASE_URL, never with the Host header a client sends.
    "HAVEN_SMTP_HOST": None,
    "HAVEN_SMTP_PORT": 587,
    "HAVEN_SMTP_USER": None,
    "HAVEN_SMTP_PASSWORD": None,
    "HAVEN_SMTP_STARTTLS": True,
    "HAVEN_SMTP_TIMEOUT": 10,
    "HAVEN_MAIL_FROM": "haven@localhost",
    "HAVEN_BASE_URL": None,
    # Hours a receiving agency has to answer a referral, by urgency (referrals.workflow);
    # from the environment as text: "emergency=4,urgent=24,routine=120".
    "HAVEN_REFERRAL_DEADLINE_HOURS": {"emergency": 4, "urgent": 24, "routine": 120},
    # Country rule: a presumed victim is notified to the national coordinator within this
    # many hours of identification; the status-decision referral's deadline runs from then.
    "HAVEN_NRM_NOTIFICATION_HOURS": 24,
    # Days after a negative status decision within which the case owner may ask for its
    # reconsideration (once per case; referrals.reconsiderations).
    "HAVEN_RECONSIDERATION_DAYS": 30,
    # Incoming reports (casework.contacts) show a warning this many hours before the
    # notification deadline above.
    "HAVEN_NRM_NOTIFICATION_WARNING_HOURS": 6,
    # Follow-up visits after reintegration starts or the person returns, in months
    # (casework.reintegration); from the environment as text: "1,3,6,12".
    "HAVEN_FOLLOW_UP_MONTHS": "1,3,6,12",
    # Disclosure control (reports.disclosure): counts of 1 .. k-1 are shown as "<k".
    "HAVEN_DISCLOSURE_K": 5,
    # Finished report files are deleted this many days after they were built
    # (``flask reports sweep``); a queued report no worker took within this many hours fails.
    "HAVEN_REPORT_RETENTION_DAYS": 30,
    "HAVEN_REPORT_QUEUE_WAIT_HOURS": 24,
}

# Environment variables read as strings and the config keys they set.
ENVIRONMENT_KEYS = {
    "HAVEN_ENV": "HAVEN_ENV",
    "HAVEN_SECRET_KEY": "SECRET_KEY",
    "HAVEN_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "HAVEN_REDIS_URL": "HAVEN_REDIS_URL",
    "HAVEN_KEYRING_FILE": "HAVEN_KEYRING_FILE",
    "HAVEN_AUDIT_CHECKPOINT_DIR": "HAVEN_AUDIT_CHECKPOINT_DIR",
    "HAVEN_SMTP_HOST": "HAVEN_SMTP_HOST",
    "HAVEN_SMTP_PORT": "HAVEN_SMTP_PORT",
    "HAVEN_SMTP_USER": "HAVEN_SMTP_USER",
    "HAVEN_SMTP_PASSWORD": "HAVEN_SMTP_PASSWORD",
    "HAVEN_SMTP_STARTTLS": "HAVEN_SMTP_STARTTLS",
    "HAVEN_MAIL_FROM": "HAVEN_MAIL_FROM",
    "HAVEN_BASE_URL": "HAVEN_BASE_URL",
    "HAVEN_PROXY_COUNT": "HAVEN_PROXY_COUNT",
    "HAVEN_REFERRAL_DEADLINE_HOURS": "HAVEN_REFERRAL_DEADLINE_HOURS",
    "HAVEN_NRM_NOTIFICATION_HOURS": "HAVEN_NRM_NOTIFICATION_HOURS",
    "HAVEN_NRM_NOTIFICATION_WARNING_HOURS": "HAVEN_NRM_NOTIFICATION_WARNING_HOURS",
    "HAVEN_RECONSIDERATION_DAYS": "HAVEN_RECONSIDERATION_DAYS",
    "HAVEN_FOLLOW_UP_MONTHS": "HAVEN_FOLLOW_UP_MONTHS",
    "HAVEN_DISCLOSURE_K": "HAVEN_DISCLOSURE_K",
}


def load_config(app: Flask, overrides: dict | None = None) -> None:
    """Fill app.config from defaults, the instance folder, the environment and overrides."""
    app.config.update(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for variable, key in ENVIRONMENT_KEYS.items():
        if os.environ.get(variable):
            app.config[key] = os.environ[variable]
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    app.config.setdefault("HAVEN_KEYRING_FILE", str(instance / "keys" / "keyring.json"))
    app.config.setdefault("HAVEN_AUDIT_CHECKPOINT_DIR", str(instance / "audit-checkpoints"))
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'haven.sqlite3'}"
    if app.config["HAVEN_REDIS_URL"]:
        app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["HAVEN_REDIS_URL"])
    else:
        app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")

    if is_production(app):
        _configure_production(app)
    else:
        _configure_development(app, instance)


def is_production(app: Flask) -> bool:
    return app.config["HAVEN_ENV"] == "production"


def _configure_production(app: Flask) -> None:
    if not app.config.get("SECRET_KEY"):
        raise ConfigurationError("HAVEN_SECRET_KEY is required in production")
    if len(str(app.config["SECRET_KEY"])) < 32:
        raise ConfigurationError("HAVEN_SECRET_KEY must be at least 32 characters")
    if not (os.environ.get("HAVEN_KEYRING") or Path(app.config["HAVEN_KEYRING_FILE"]).exists()):
        raise ConfigurationError("a key ring is required in production (HAVEN_KEYRING)")
    if app.config.get("HAVEN_SMTP_HOST") and not app.config.get("HAVEN_BASE_URL"):
        raise ConfigurationError("HAVEN_BASE_URL is required for notification e-mail")
    app.config["SESSION_COOKIE_SECURE"] = True
    # The __Host- prefix pins the cookie to this host, https and path /.
    app.config["SESSION_COOKIE_NAME"] = "__Host-haven_session"
    app.config["PREFERRED_URL_SCHEME"] = "https"


def _configure_development(app: Flask, instance: Path) -> None:
    """Create the secret key and key ring on first run, readable by this user only."""
    from core.crypto import KeyRing, write_keyring_file

    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        key_file = instance / "secret_key"
        if not key_file.exists():
            _write_private(key_file, secrets.token_urlsafe(48))
        app.config["SECRET_KEY"] = key_file.read_text().strip()
    database = instance / "haven.sqlite3"
    if app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}" and not database.exists():
        # SQLite creates its -wal and -shm files with the database file's mode.
        _write_private(database, "")
    keyring_file = Path(app.config["HAVEN_KEYRING_FILE"])
    if not os.environ.get("HAVEN_KEYRING") and not keyring_file.exists():
        write_keyring_file(keyring_file, KeyRing.generate())


def _write_private(path: Path, content: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
