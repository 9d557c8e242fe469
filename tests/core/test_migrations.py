"""`flask db upgrade` on an empty database gives exactly the schema the models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect

from core import create_app
from core.db import db
from tests.conftest import TEST_DB


@pytest.fixture
def empty_database_url(tmp_path):
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    from tests.postgres_server import create_test_database, postgres_url

    url, drop = create_test_database(postgres_url())
    yield url
    drop()


def test_upgrade_on_an_empty_database_matches_the_models(empty_database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "migration-test-secret-key-long-enough-123",
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "HAVEN_KEYRING_FILE": str(tmp_path / "keyring.json"),
            "HAVEN_AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        }
    )
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()

    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            assert set(db.metadata.tables) <= tables
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, db.metadata)
    finally:
        engine.dispose()
    assert differences == []
