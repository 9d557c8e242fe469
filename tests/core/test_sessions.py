"""Server-side sessions: the login gate on every route, rotation, replay, timeouts, epochs."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import select
from werkzeug.routing.converters import AnyConverter, NumberConverter, UUIDConverter

from core.models import UserSession
from core.sessions import (
    OPEN_ENDPOINTS,
    SECOND_FACTOR_ENDPOINTS,
    SESSION_KEY,
    create_session,
    end_all_sessions,
)
from tests.factories import DEFAULT_PASSWORD, login_as, make_agency, make_user

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
# Methods whose requests a browser may send without a form.
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@pytest.fixture
def agency(db):
    return make_agency(name="NGO North")


@pytest.fixture
def alice(db, agency):
    user = make_user(agency, email="alice@example.org")
    db.session.commit()
    return user


def cookie_name(app) -> str:
    return app.config["SESSION_COOKIE_NAME"]


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(cookie_name(client.application))
    return cookie.value if cookie else None


def example_path(rule) -> str:
    """Build a URL for a rule with example values its converters accept."""
    values = {}
    for name in rule.arguments:
        converter = rule._converters.get(name)
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
        elif isinstance(converter, NumberConverter):
            values[name] = 1
        elif isinstance(converter, UUIDConverter):
            values[name] = uuid.UUID(int=1)
        else:
            values[name] = "x"
    built = rule.build(values)
    assert built is not None, rule
    return built[1]


def rules_with(app, methods: set[str]):
    return [rule for rule in app.url_map.iter_rules() if rule.methods & methods]


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response.location.split("?")[0] == "/login"


def test_every_route_needs_login_except_the_open_ones(app, client, db):
    checked, wrong = 0, []
    for rule in rules_with(app, {"GET"}):
        path = example_path(rule)
        response = client.get(path)
        if rule.endpoint in OPEN_ENDPOINTS:
            if is_login_redirect(response):
                wrong.append(f"{rule.endpoint} {path}: open, but sent to login")
            continue
        checked += 1
        if not is_login_redirect(response):
            wrong.append(f"{rule.endpoint} {path}: {response.status_code} {response.location}")
    assert not wrong, "\n".join(wrong)
    # Not vacuous: the other areas' routes are in the map and were checked.
    assert checked >= 5
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200
    with client.get("/static/css/haven.css") as stylesheet:
        assert stylesheet.status_code == 200
    # Even an unknown URL says nothing but "sign in".
    assert is_login_redirect(client.get("/no/such/page"))


def test_every_form_action_needs_login_except_the_open_ones(app, client, db):
    token = client.csrf_token()
    checked, wrong = 0, []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - SAFE_METHODS):
            if rule.endpoint in OPEN_ENDPOINTS:
                continue
            checked += 1
            path = example_path(rule)
            response = client.open(path, method=method, data={"csrf_token": token})
            if not is_login_redirect(response):
                wrong.append(f"{method} {rule.endpoint} {path}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 3


def test_a_half_done_session_opens_only_the_second_factor_pages(app, client, db, alice):
    _row, token = create_session(alice, second_factor_done=False)
    db.session.commit()
    with client.session_transaction() as cookie_session:
        cookie_session[SESSION_KEY] = token
    wrong = []
    for rule in rules_with(app, {"GET"}):
        if rule.endpoint in OPEN_ENDPOINTS | SECOND_FACTOR_ENDPOINTS:
            continue
        response = client.get(example_path(rule))
        if (response.status_code, response.location) != (302, "/login/totp"):
            wrong.append(f"{rule.endpoint}: {response.status_code} {response.location}")
    assert not wrong, "\n".join(wrong)
    assert client.get("/login/totp").status_code == 200


def test_it_rotates_the_session_id_at_each_login_step(app, client, db, alice):
    client.get("/login")
    anonymous = session_cookie(client)
    response = client.post_form("/login", {"email": alice.email, "password": DEFAULT_PASSWORD})
    assert response.location == "/login/totp"
    half_done = session_cookie(client)
    code = pyotp.TOTP(alice.totp_secret).now()
    assert client.post_form("/login/totp", {"code": code}).location == "/"
    signed_in = session_cookie(client)
    assert len({anonymous, half_done, signed_in}) == 3
    assert client.get("/").status_code == 200

    replay = app.test_client()
    replay.set_cookie(cookie_name(app), half_done)
    assert is_login_redirect(replay.get("/"))
    # Only the SHA-256 of the token is stored.
    with client.session_transaction() as cookie_session:
        token = cookie_session[SESSION_KEY]
    [row] = db.session.scalars(select(UserSession))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash


def test_signing_in_again_ends_the_session_the_browser_had(client, db, alice):
    login_as(client, alice)
    before = session_cookie(client)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=40), tick=False):
        client.post_form("/login", {"email": alice.email, "password": DEFAULT_PASSWORD})
    db.session.expire_all()
    rows = db.session.scalars(select(UserSession).order_by(UserSession.id)).all()
    assert [row.ended_at is not None for row in rows] == [True, False]
    assert session_cookie(client) != before


def test_a_cookie_replayed_after_logout_is_refused(app, client, db, alice):
    login_as(client, alice)
    assert client.get("/").status_code == 200
    stolen = session_cookie(client)
    assert client.post_form("/logout").location == "/login"
    assert is_login_redirect(client.get("/"))

    thief = app.test_client()
    thief.set_cookie(cookie_name(app), stolen)
    assert is_login_redirect(thief.get("/"))
    db.session.expire_all()
    [row] = db.session.scalars(select(UserSession))
    assert row.ended_at is not None


def test_ending_all_sessions_refuses_every_browser(app, db, alice):
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        login_as(browser, alice)
        assert browser.get("/").status_code == 200
    end_all_sessions(alice)
    db.session.commit()
    for browser in browsers:
        assert is_login_redirect(browser.get("/"))
    db.session.expire_all()
    assert alice.session_epoch == 1
    assert all(row.ended_at for row in db.session.scalars(select(UserSession)))


def test_a_session_of_an_older_epoch_is_refused(client, db, alice):
    login_as(client, alice)
    # Bumped without touching the rows, as a concurrent role change might.
    alice.session_epoch += 1
    db.session.commit()
    assert is_login_redirect(client.get("/"))


def test_it_ends_the_session_after_15_idle_minutes(app, client, db, alice):
    assert app.config["HAVEN_IDLE_TIMEOUT"] == timedelta(minutes=15)
    with time_machine.travel(NOON, tick=False) as clock:
        login_as(client, alice)
        clock.shift(timedelta(minutes=14))
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=14))
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=15, seconds=1))
        response = client.get("/")
        assert is_login_redirect(response)
        assert "Your session has ended" in client.get(response.location).get_data(as_text=True)


def test_it_ends_the_session_after_8_hours_however_busy(app, client, db, alice):
    assert app.config["HAVEN_ABSOLUTE_TIMEOUT"] == timedelta(hours=8)
    with time_machine.travel(NOON, tick=False) as clock:
        login_as(client, alice)
        for _ in range(48):
            clock.shift(timedelta(minutes=10))
            assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=1))
        assert is_login_redirect(client.get("/"))


def test_it_writes_last_seen_at_most_once_a_minute(client, db, alice):
    with time_machine.travel(NOON, tick=False) as clock:
        login_as(client, alice)
        clock.shift(timedelta(seconds=30))
        client.get("/")
        [row] = db.session.scalars(select(UserSession))
        assert row.last_seen_at == NOON
        clock.shift(timedelta(seconds=31))
        client.get("/")
        db.session.expire_all()
        assert row.last_seen_at == NOON + timedelta(seconds=61)


def test_a_deactivated_user_is_refused_on_the_next_request(client, db, alice):
    login_as(client, alice)
    assert client.get("/").status_code == 200
    alice.active = False
    db.session.commit()
    assert is_login_redirect(client.get("/"))
    db.session.expire_all()
    [row] = db.session.scalars(select(UserSession))
    assert row.ended_at is not None


def test_a_user_of_a_deactivated_agency_is_refused(client, db, agency, alice):
    login_as(client, alice)
    agency.active = False
    db.session.commit()
    assert is_login_redirect(client.get("/"))


def test_the_cookie_is_http_only_lax_and_ends_with_the_browser(app, client, db, alice):
    assert app.config["SESSION_REFRESH_EACH_REQUEST"] is False
    client.get("/login")
    response = client.post_form("/login", {"email": alice.email, "password": DEFAULT_PASSWORD})
    header = next(
        value
        for value in response.headers.getlist("Set-Cookie")
        if value.startswith(cookie_name(app) + "=")
    )
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Expires" not in header
    # Once the page has its CSRF token, signed-in page views do not re-send the cookie.
    login_as(client, alice)
    client.get("/")
    assert "Set-Cookie" not in client.get("/").headers
