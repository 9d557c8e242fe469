"""Test fixtures: one app per run on SQLite or PostgreSQL (HAVEN_TEST_DB), clean tables per test."""

from __future__ import annotations

import os
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

import reports.all_models  # noqa: F401  (every table exists in the test database)
from core import create_app
from core.db import db as database

TEST_DB = os.environ.get("HAVEN_TEST_DB", "sqlite")
CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def pytest_report_header(config):
    return f"haven database: {TEST_DB}"


class HavenClient(FlaskClient):
    """A test client that submits forms the way a browser does, CSRF token included.

    Each request runs in its own app context, as in production; otherwise it would reuse
    the test's context and share ``g`` and the database session with the test.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        page = self.get("/", follow_redirects=True).get_data(as_text=True)
        match = CSRF_PATTERN.search(page)
        assert match, "no CSRF token on the start page"
        return match.group(1)

    def post_form(self, url: str, data: dict | None = None, **kwargs):
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token())
        return self.post(url, data=data, **kwargs)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'haven-test.sqlite3'}"
        return
    if TEST_DB != "postgresql":
        raise RuntimeError(f"HAVEN_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")
    from tests.postgres_server import create_test_database, postgres_url

    # No skip: without PostgreSQL this fixture fails loudly, which CI must see.
    url, drop = create_test_database(postgres_url())
    yield url
    for engine in _engines:
        engine.dispose()
    drop()


_engines: list = []


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    application = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-for-haven",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "HAVEN_KEYRING_FILE": str(keys / "keyring.json"),
            "HAVEN_AUDIT_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("checkpoints")),
            "RATELIMIT_STORAGE_URI": "memory://",
            "SERVER_NAME": None,
            # Link after every response, so tests see the chain without waiting.
            "HAVEN_AUDIT_LINK_INTERVAL": 0,
        }
    )
    application.test_client_class = HavenClient
    with application.app_context():
        database.create_all()
        _keep_insertion_order()
        _engines.append(database.engine)
    yield application
    with application.app_context():
        database.session.remove()
        database.drop_all()


@pytest.fixture
def app_context(app):
    with app.app_context():
        yield app


@pytest.fixture
def db(app_context, tmp_path):
    """The database handle, with every table emptied after the test."""
    # Checkpoints live outside the database: a fresh directory for each fresh database.
    app_context.config["HAVEN_AUDIT_CHECKPOINT_DIR"] = str(tmp_path / "audit-checkpoints")
    yield database
    database.session.rollback()
    database.session.remove()
    _empty_tables()


@pytest.fixture
def client(app, db) -> HavenClient:
    from core.extensions import limiter

    limiter.reset()
    return app.test_client()


def _empty_tables() -> None:
    """Delete every row, children first, and restart the id sequences.

    DELETE, not TRUNCATE, on PostgreSQL too: a TRUNCATE of every table makes new files for
    each of them, about 130 ms per test against a few ms for deleting the few rows a test
    wrote (6 minutes of the PostgreSQL half).
    """
    tables = list(reversed(database.metadata.sorted_tables))
    with database.engine.begin() as connection:
        for table in tables:
            connection.execute(table.delete())
        if connection.dialect.name == "postgresql":
            for sequence in _sequences(connection):
                connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))


def _keep_insertion_order() -> None:
    """Keep a table's rows in the order they were inserted, as after a TRUNCATE.

    Tables are emptied with DELETE (``_empty_tables``); a vacuum running at some moment
    would let later rows fill the freed space, and a query without ORDER BY would then
    return rows in an order that changes from run to run.
    """
    with database.engine.begin() as connection:
        if connection.dialect.name != "postgresql":
            return
        for table in database.metadata.sorted_tables:
            connection.execute(
                text(
                    f'ALTER TABLE "{table.name}" SET '
                    "(autovacuum_enabled = false, toast.autovacuum_enabled = false)"
                )
            )


_SEQUENCES: list[str] = []


def _sequences(connection) -> list[str]:
    if not _SEQUENCES:
        query = "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        _SEQUENCES.extend(connection.execute(text(query)).scalars())
    return _SEQUENCES
