"""The application shell: configuration modes, health check, headers and error pages."""

from __future__ import annotations

import pytest
from flask import abort
from sqlalchemy import create_engine, text

from core import create_app
from core.config import ConfigurationError
from core.models import AgencyType, Role
from tests.factories import login_as, make_agency, make_user


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("HAVEN_SECRET_KEY", raising=False)
    monkeypatch.delenv("HAVEN_KEYRING", raising=False)
    with pytest.raises(ConfigurationError, match="HAVEN_SECRET_KEY"):
        create_app({"HAVEN_ENV": "production", "HAVEN_KEYRING_FILE": str(tmp_path / "k.json")})


def test_production_refuses_to_start_without_a_key_ring(monkeypatch, tmp_path):
    monkeypatch.delenv("HAVEN_KEYRING", raising=False)
    with pytest.raises(ConfigurationError, match="key ring"):
        create_app(
            {
                "HAVEN_ENV": "production",
                "SECRET_KEY": "a-production-secret-key-of-sufficient-length",
                "HAVEN_KEYRING_FILE": str(tmp_path / "missing.json"),
            }
        )


def test_production_sets_secure_host_cookies_and_hsts(monkeypatch, tmp_path):
    from core.crypto import KeyRing

    monkeypatch.setenv("HAVEN_KEYRING", KeyRing.generate().to_json())
    app = create_app(
        {
            "HAVEN_ENV": "production",
            "SECRET_KEY": "a-production-secret-key-of-sufficient-length",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    response = app.test_client().get("/login")
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_development_mode_creates_keys_readable_by_the_owner_only(app):
    from pathlib import Path

    keyring = Path(app.config["HAVEN_KEYRING_FILE"])
    assert keyring.exists()
    assert keyring.stat().st_mode & 0o777 == 0o600


def test_healthz_checks_the_database_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "health-check-secret-key-long-enough-000",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
            "HAVEN_KEYRING_FILE": str(tmp_path / "keyring.json"),
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "error"


def test_pages_carry_the_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # development over http


def test_pages_have_no_inline_scripts_or_styles(client, db):
    user = make_user(make_agency(AgencyType.NGO), Role.CASEWORKER)
    login_as(client, user)
    page = client.get("/").get_data(as_text=True)
    assert "<script>" not in page
    assert "style=" not in page
    assert "<script src=" in page


def test_static_files_are_public_and_cacheable(client):
    response = client.get("/static/css/haven.css")
    response.close()
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"


def test_a_too_large_request_gets_the_translated_413_page(client):
    response = client.post(
        "/login",
        data=b"x" * (22 * 1024 * 1024),
        content_type="application/octet-stream",
    )
    assert response.status_code == 413
    assert "The upload is too large" in response.get_data(as_text=True)


@pytest.mark.parametrize("status", [400, 403, 404, 413, 429, 500])
def test_error_pages_are_translated_and_show_no_stack_trace(app, db, status):
    user = make_user(make_agency(AgencyType.NGO), Role.CASEWORKER, language="ru")
    client = app.test_client()
    login_as(client, user)

    endpoint = f"error_probe_{status}"
    if endpoint not in app.view_functions:
        was_setup = app._got_first_request
        app._got_first_request = False  # registering a probe route after the first request

        def probe(status=status):
            if status == 500:
                raise RuntimeError("secret internal detail")
            abort(status)

        app.add_url_rule(f"/__probe/{status}", endpoint, probe)
        app._got_first_request = was_setup

    app.testing = False  # let the 500 handler run instead of re-raising
    try:
        response = client.get(f"/__probe/{status}")
    finally:
        app.testing = True
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert 'lang="ru"' in page
    assert "Traceback" not in page
    assert "secret internal detail" not in page
    assert "RuntimeError" not in page


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path):
    # Its own SQLite engine, so the PostgreSQL run checks the embedded default too.
    engine = create_engine(f"sqlite:///{tmp_path / 'pragmas.sqlite3'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()


def test_wtforms_own_messages_are_translated_into_azerbaijani(app):
    from flask_babel import force_locale, gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import DataRequired

    from core.forms import HavenForm

    class ProbeForm(HavenForm):
        class Meta:
            csrf = False

        name = StringField(validators=[DataRequired()])
        count = IntegerField()

    request = app.test_request_context(method="POST", data={"name": "", "count": "many"})
    with request, force_locale("az"):
        form = ProbeForm()
        assert not form.validate()
        required = gettext("This field is required.")
        not_integer = gettext("Not a valid integer value.")
    assert required != "This field is required."
    assert form.errors["name"] == [required]
    assert form.errors["count"] == [not_integer]
    assert not_integer != "Not a valid integer value."


def test_database_errors_do_not_carry_the_values_of_the_statement(db):
    from sqlalchemy.exc import IntegrityError

    from core.models import Agency

    db.session.add(Agency(name="Sirr Agency Name", type="ngo"))
    db.session.add(Agency(name="Sirr Agency Name", type="ngo"))
    with pytest.raises(IntegrityError) as error:
        db.session.flush()
    db.session.rollback()
    # The bound values are left out; PostgreSQL's own DETAIL may still name the clashing key,
    # which is why no personal field carries a unique constraint.
    message = str(error.value)
    assert "[SQL parameters hidden due to hide_parameters=True]" in message
    assert "[parameters:" not in message
