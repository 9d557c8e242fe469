"""Signing in with password and TOTP, recovery codes, lockout, rate limits, password change."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine
from flask_babel import force_locale
from sqlalchemy import select

from core.audit import AuditEntry
from core.auth import LOGIN_FAILED, issue_recovery_codes
from core.models import RecoveryCode, User, UserSession
from core.passwords import verify_password
from core.security import ERROR_TITLES
from core.sessions import SESSION_KEY, create_session
from tests.factories import DEFAULT_PASSWORD, login_as, make_agency, make_user

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
NEW_PASSWORD = "seven quiet rivers at dawn"


@pytest.fixture
def agency(db):
    return make_agency(name="NGO North")


@pytest.fixture
def alice(db, agency):
    user = make_user(agency, email="alice@example.org")
    db.session.commit()
    return user


def code_for(user: User, at: datetime | None = None) -> str:
    return pyotp.TOTP(user.totp_secret).at(at or datetime.now(UTC))


def wrong_codes(user: User, count: int) -> list[str]:
    """Return codes that match none of the steps accepted now."""
    now = datetime.now(UTC)
    valid = {code_for(user, now + timedelta(seconds=30 * offset)) for offset in (-1, 0, 1)}
    candidates = (f"{number:06d}" for number in range(0, 1_000_000, 111_111))
    return [code for code in candidates if code not in valid][:count]


def sign_in_password(client, email: str, password: str = DEFAULT_PASSWORD, **data):
    return client.post_form("/login", {"email": email, "password": password, **data})


def sign_in(client, user: User, password: str = DEFAULT_PASSWORD):
    """Sign in through the real forms: password, then a fresh TOTP code."""
    response = sign_in_password(client, user.email, password)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.location == "/login/totp"
    return client.post_form("/login/totp", {"code": code_for(user)})


def actions(db, action: str) -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    return list(db.session.scalars(query))


def in_english(app, message) -> str:
    with app.test_request_context():
        return str(message)


def error_text(response) -> str:
    return " ".join(
        re.findall(r'class="field__error"[^>]*>\s*(.*?)\s*</p>', response.get_data(as_text=True))
    )


def test_it_signs_in_with_password_and_totp(client, db, alice):
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html

    response = sign_in_password(client, "Alice@Example.org ", DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert response.location == "/login/totp"
    html = client.get("/login/totp").get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in html
    assert 'inputmode="numeric"' in html

    response = client.post_form("/login/totp", {"code": code_for(alice)})
    assert response.status_code == 302
    assert response.location == "/"
    start = client.get("/")
    assert start.status_code == 200
    assert "Welcome, Test User" in start.get_data(as_text=True)

    db.session.expire_all()
    assert alice.last_login_at is not None
    [row] = db.session.scalars(select(UserSession).where(UserSession.ended_at.is_(None)))
    assert row.second_factor_done
    [entry] = actions(db, "auth.login")
    assert (entry.user_id, entry.outcome) == (alice.id, "allowed")


def test_it_gives_one_generic_message_for_a_wrong_password_or_unknown_email(app, client, db, alice):
    wrong = sign_in_password(client, alice.email, "not the right password")
    unknown = sign_in_password(client, "nobody@example.org", DEFAULT_PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert error_text(response) == in_english(app, LOGIN_FAILED)
        # What was typed comes back, the password never.
        assert "not the right password" not in response.get_data(as_text=True)
    assert 'value="nobody@example.org"' in unknown.get_data(as_text=True)

    entries = actions(db, "auth.login_failed")
    assert {(e.user_id, e.outcome, e.reason) for e in entries} == {
        (alice.id, "denied", "wrong_password"),
        (None, "denied", "unknown_account"),
    }
    db.session.expire_all()
    assert alice.failed_logins == 1
    assert client.get("/").location.startswith("/login")


def test_it_refuses_a_wrong_totp_code(client, db, alice):
    sign_in_password(client, alice.email)
    [wrong] = wrong_codes(alice, 1)
    response = client.post_form("/login/totp", {"code": wrong})
    assert response.status_code == 400
    assert "The code is not correct" in error_text(response)
    [entry] = actions(db, "auth.totp_failed")
    assert (entry.user_id, entry.outcome) == (alice.id, "denied")
    assert client.get("/").location == "/login/totp"


def test_it_refuses_a_replayed_totp_code(client, db, alice):
    with time_machine.travel(NOON, tick=False):
        code = code_for(alice)
        sign_in_password(client, alice.email)
        assert client.post_form("/login/totp", {"code": code}).location == "/"
        client.post_form("/logout")

        sign_in_password(client, alice.email)
        response = client.post_form("/login/totp", {"code": code})
        assert response.status_code == 400
        assert client.get("/").location == "/login/totp"
    # The code of the next 30-second step works.
    with time_machine.travel(NOON + timedelta(seconds=30), tick=False):
        assert client.post_form("/login/totp", {"code": code_for(alice)}).location == "/"


def test_a_recovery_code_works_once(client, db, alice):
    codes = issue_recovery_codes(alice)
    db.session.commit()
    assert len(codes) == 10

    sign_in_password(client, alice.email)
    response = client.post_form("/login/totp", {"recovery_code": codes[3].upper()})
    assert response.location == "/"
    assert client.get("/").status_code == 200
    client.post_form("/logout")

    sign_in_password(client, alice.email)
    response = client.post_form("/login/totp", {"recovery_code": codes[3]})
    assert response.status_code == 400
    assert "The code is not correct" in error_text(response)
    assert len(actions(db, "auth.recovery_code_used")) == 1
    [failed] = actions(db, "auth.totp_failed")
    assert failed.reason == "recovery_code"
    # Another code still works.
    assert client.post_form("/login/totp", {"recovery_code": codes[4]}).location == "/"


def test_it_locks_the_account_after_5_failures_and_lifts_it_later(app, client, db, alice):
    assert app.config["HAVEN_LOCKOUT_THRESHOLD"] == 5
    with time_machine.travel(NOON, tick=False):
        for _ in range(5):
            assert sign_in_password(client, alice.email, "wrong password here").status_code == 400
        [locked] = actions(db, "auth.locked")
        assert (locked.user_id, locked.outcome) == (alice.id, "denied")

        right = sign_in_password(client, alice.email, DEFAULT_PASSWORD)
        assert right.status_code == 400
        # Locked or wrong: the same words, so the page does not confirm the account.
        assert error_text(right) == in_english(app, LOGIN_FAILED)
        assert actions(db, "auth.login_failed")[-1].reason == "locked"

    with time_machine.travel(NOON + timedelta(minutes=14), tick=False):
        assert sign_in_password(client, alice.email).status_code == 400
    with time_machine.travel(NOON + timedelta(minutes=16), tick=False):
        assert sign_in_password(client, alice.email).location == "/login/totp"
        assert client.post_form("/login/totp", {"code": code_for(alice)}).location == "/"
        db.session.expire_all()
        assert alice.failed_logins == 0
        assert alice.locked_until is None


def test_wrong_totp_codes_lock_the_account_too(client, db, alice):
    with time_machine.travel(NOON, tick=False):
        sign_in_password(client, alice.email)
        wrong = wrong_codes(alice, 5)
        for code in wrong[:4]:
            assert client.post_form("/login/totp", {"code": code}).status_code == 400
        response = client.post_form("/login/totp", {"code": wrong[4]})
        assert response.location == "/login"
        assert "sign-in is paused" in client.get("/login").get_data(as_text=True)
        # The half-done session ended; even the right password and code are refused now.
        assert sign_in_password(client, alice.email).status_code == 400
        assert len(actions(db, "auth.locked")) == 1


def test_it_rate_limits_sign_in_attempts_with_a_translated_page(app, client):
    assert app.config["HAVEN_LOGIN_LIMIT"].startswith("10 per minute")
    headers = {"Accept-Language": "ru"}
    with time_machine.travel(NOON, tick=False):
        for _ in range(10):
            response = client.post_form(
                "/login", {"email": "x@example.org", "password": "whatever you like"}
            )
            assert response.status_code == 400
        response = client.post_form(
            "/login", {"email": "x@example.org", "password": "whatever"}, headers=headers
        )
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert '<html lang="ru">' in html
    with app.test_request_context(), force_locale("ru"):
        assert str(ERROR_TITLES[429]) in html
    assert "Traceback" not in html
    # Looking at the form is not limited.
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize(
    ("path", "signed_in", "with_totp"),
    [
        ("/login", None, True),
        ("/login/totp", False, True),
        ("/login/enrol", False, False),
        ("/account/password", True, True),
        ("/account/recovery-codes", True, True),
    ],
)
def test_each_attempt_route_is_rate_limited(client, db, agency, path, signed_in, with_totp):
    user = make_user(agency, with_totp=with_totp)
    if not with_totp:
        user.totp_secret = pyotp.random_base32()
    with time_machine.travel(NOON, tick=False):
        if signed_in is not None:
            _row, token = create_session(user, second_factor_done=signed_in)
            db.session.commit()
            with client.session_transaction() as cookie_session:
                cookie_session[SESSION_KEY] = token
        csrf = client.csrf_token()
        statuses = [client.post(path, data={"csrf_token": csrf}).status_code for _ in range(11)]
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429


def test_other_routes_are_not_rate_limited(client):
    with time_machine.travel(NOON, tick=False):
        token = client.csrf_token()
        statuses = {
            client.post("/logout", data={"csrf_token": token}).status_code for _ in range(12)
        }
    assert statuses == {302}


def test_a_deactivated_account_cannot_sign_in(app, client, db, agency):
    carol = make_user(agency)
    carol.active = False
    db.session.commit()
    response = sign_in_password(client, carol.email)
    assert response.status_code == 400
    assert error_text(response) == in_english(app, LOGIN_FAILED)
    assert actions(db, "auth.login_failed")[0].reason == "inactive"


def test_it_asks_for_enrolment_and_shows_a_qr_code_and_10_recovery_codes(client, db, agency):
    bob = make_user(agency, email="bob@example.org", with_totp=False)
    db.session.commit()

    response = sign_in_password(client, bob.email)
    assert response.location == "/login/enrol"
    assert client.get("/").location == "/login/enrol"
    assert client.get("/login/totp").location == "/login/enrol"
    page = client.get("/login/enrol")
    html = page.get_data(as_text=True)
    match = re.search(r'<img class="qr-code" src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert match, html
    assert base64.b64decode(match.group(1)).lstrip().startswith(b"<svg")
    assert "<script" not in html.split("</head>", 1)[1]
    db.session.expire_all()
    secret = bob.totp_secret
    assert secret and secret[:4] in html
    assert bob.totp_confirmed_at is None

    assert client.post_form("/login/enrol", {"code": "12345"}).status_code == 400
    response = client.post_form("/login/enrol", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</li>", response.get_data(True))
    assert len(set(codes)) == 10
    db.session.expire_all()
    assert bob.totp_confirmed_at is not None
    stored = set(db.session.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10
    assert not stored.intersection(codes)  # only hashes are kept
    assert len(actions(db, "auth.totp_enrolled")) == 1
    assert len(actions(db, "auth.login")) == 1
    assert client.get("/").status_code == 200
    assert client.get("/login/enrol").location == "/"


def test_a_half_done_session_reaches_only_the_second_factor(client, db, alice):
    sign_in_password(client, alice.email)
    for url in ("/", "/account/password", "/account/recovery-codes", "/login/enrol"):
        assert client.get(url).location == "/login/totp", url
    assert client.get("/login/totp").status_code == 200
    response = client.post_form("/logout")
    assert response.location == "/login"
    assert client.get("/login/totp").location == "/login"


def test_it_returns_to_the_page_asked_for_but_never_off_site(client, db, alice):
    response = client.get("/account/password?x=1")
    assert response.location == "/login?next=/account/password?x%3D1"
    page = client.get(response.location).get_data(as_text=True)
    assert 'value="/account/password?x=1"' in page
    sign_in_password(client, alice.email, next="/account/password?x=1")
    assert client.post_form("/login/totp", {"code": code_for(alice)}).location == (
        "/account/password?x=1"
    )

    other = client.application.test_client()
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=31), tick=False):
        sign_in_password(other, alice.email, next="//evil.example/")
        response = other.post_form("/login/totp", {"code": code_for(alice)})
    assert response.location == "/"


def test_it_puts_the_users_language_in_the_session(client, db, agency):
    aysel = make_user(agency, language="az")
    db.session.commit()
    sign_in(client, aysel)
    with client.session_transaction() as cookie_session:
        assert cookie_session["language"] == "az"
    assert '<html lang="az">' in client.get("/").get_data(as_text=True)


def test_it_upgrades_an_old_password_hash_at_sign_in(client, db, alice):
    from argon2 import PasswordHasher

    alice.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(DEFAULT_PASSWORD)
    db.session.commit()
    assert sign_in_password(client, alice.email).location == "/login/totp"
    db.session.expire_all()
    assert "m=65536" in alice.password_hash


def test_logout_is_audited_and_needs_post(client, db, alice):
    login_as(client, alice)
    assert client.get("/logout").status_code == 405
    response = client.post_form("/logout")
    assert response.location == "/login"
    [entry] = actions(db, "auth.logout")
    assert entry.user_id == alice.id
    assert client.get("/").location.startswith("/login")


class TestPasswordChange:
    def test_it_changes_the_password_and_ends_other_sessions(self, app, client, db, alice):
        other_browser = app.test_client()
        login_as(other_browser, alice)
        login_as(client, alice)
        assert other_browser.get("/").status_code == 200
        old_cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value

        page = client.get("/account/password").get_data(as_text=True)
        assert 'autocomplete="new-password"' in page
        response = client.post_form(
            "/account/password",
            {
                "current_password": DEFAULT_PASSWORD,
                "new_password": NEW_PASSWORD,
                "repeat_password": NEW_PASSWORD,
            },
        )
        assert response.status_code == 302
        assert response.location == "/"
        # This browser goes on with a new session id; the other one is signed out.
        assert client.get("/").status_code == 200
        assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value != old_cookie
        assert other_browser.get("/").location.startswith("/login")

        replay = app.test_client()
        replay.set_cookie(app.config["SESSION_COOKIE_NAME"], old_cookie)
        assert replay.get("/").location.startswith("/login")

        db.session.expire_all()
        assert verify_password(alice.password_hash, NEW_PASSWORD)[0]
        assert alice.password_changed_at is not None
        [entry] = actions(db, "auth.password_changed")
        assert entry.field_name_list == ["password_hash"]

    @pytest.mark.parametrize(
        ("new_password", "message"),
        [
            ("too short", "Use at least 12 characters."),
            ("password1234", "This password is on a list of common passwords."),
            ("alice in wonderland", "The password must not contain your e-mail name."),
        ],
    )
    def test_it_applies_the_policy(self, client, db, alice, new_password, message):
        login_as(client, alice)
        response = client.post_form(
            "/account/password",
            {
                "current_password": DEFAULT_PASSWORD,
                "new_password": new_password,
                "repeat_password": new_password,
            },
        )
        assert response.status_code == 400
        assert message in error_text(response)
        assert 'class="error-summary"' in response.get_data(as_text=True)
        db.session.expire_all()
        assert verify_password(alice.password_hash, DEFAULT_PASSWORD)[0]

    def test_it_needs_the_current_password_and_the_same_repeat(self, client, db, alice):
        login_as(client, alice)
        response = client.post_form(
            "/account/password",
            {
                "current_password": "not my password",
                "new_password": NEW_PASSWORD,
                "repeat_password": NEW_PASSWORD,
            },
        )
        assert response.status_code == 400
        assert "The current password is not correct." in error_text(response)
        response = client.post_form(
            "/account/password",
            {
                "current_password": DEFAULT_PASSWORD,
                "new_password": NEW_PASSWORD,
                "repeat_password": NEW_PASSWORD + "x",
            },
        )
        assert response.status_code == 400
        assert "The two new passwords are not the same." in error_text(response)
        assert len(actions(db, "auth.password_change_failed")) == 1


def test_it_issues_new_recovery_codes_after_a_totp_code(client, db, alice):
    old = issue_recovery_codes(alice)
    login_as(client, alice)
    assert client.get("/account/recovery-codes").status_code == 200
    assert client.post_form("/account/recovery-codes", {"code": "abc"}).status_code == 400
    response = client.post_form("/account/recovery-codes", {"code": code_for(alice)})
    assert response.status_code == 200
    new = re.findall(r"<li>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</li>", response.get_data(True))
    assert len(new) == 10
    assert not set(new).intersection(old)
    assert len(db.session.scalars(select(RecoveryCode)).all()) == 10
