"""Server-side login sessions and the gate that makes every page but a few need one.

The signed Flask cookie holds only a random token; the ``user_sessions`` row holds its
SHA-256, the user's session epoch at creation, the timestamps and whether the second
factor was passed. Every request looks the row up and refuses it when it was ended, when
the user's epoch moved on (password change, deactivation, role change, 2FA reset), when
the user or agency was deactivated, or after the idle or absolute timeout.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import logout_user
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from core.db import db, utcnow
from core.extensions import login_manager
from core.models import User, UserSession

# The key in the signed cookie session that carries the token.
SESSION_KEY = "sid"
# last_seen_at is written at most this often, so most requests only read. The idle timeout
# is therefore enforced up to this much early, never late.
TOUCH_INTERVAL = timedelta(seconds=60)

# Reachable without a session. Everything else needs one: a new route cannot forget it.
OPEN_ENDPOINTS = frozenset({"auth.login", "static", "main.healthz", "main.set_language"})
# Reachable with a half-done session (password checked, second factor not yet).
SECOND_FACTOR_ENDPOINTS = frozenset({"auth.login_totp", "auth.enrol_totp", "auth.logout"})
# Kept in the cookie session when it is cleared to rotate the token.
_KEPT_ON_ROTATION = ("language",)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(user: User, *, second_factor_done: bool = False) -> tuple[UserSession, str]:
    """Add a session row for the user and return it with its token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = UserSession(
        token_hash=hash_token(token),
        user=user,
        epoch=user.session_epoch or 0,
        created_at=now,
        last_seen_at=now,
        second_factor_done=second_factor_done,
    )
    db.session.add(row)
    return row, token


def start_session(user: User, *, second_factor_done: bool = False) -> UserSession:
    """Sign the user in on this browser with a new session id (and a new CSRF token).

    The session this browser presented, if any, is ended: a cookie planted before login
    (session fixation) never becomes a signed-in one.
    """
    previous = current_session()
    if previous is not None:
        previous.ended_at = utcnow()
    row, token = create_session(user, second_factor_done=second_factor_done)
    chosen = session.get("language")
    _store_token(token)
    if chosen in current_app.config["HAVEN_LANGUAGES"] and chosen != user.language:
        # A language picked on the sign-in page is the person telling us: keep it.
        user.language = chosen
    session["language"] = user.language
    g.haven_session = row
    g.session_verified = row.second_factor_done
    return row


def complete_second_factor() -> UserSession:
    """Mark the current session as fully signed in, rotating its id once more.

    :raises RuntimeError: without a current session.
    """
    row = current_session()
    if row is None:
        raise RuntimeError("no session to complete")
    token = secrets.token_urlsafe(32)
    row.token_hash = hash_token(token)
    row.second_factor_done = True
    _store_token(token)
    g.session_verified = True
    return row


def current_session() -> UserSession | None:
    """Return this request's valid session row, loading and checking it once."""
    if "haven_session" not in g:
        g.haven_session = _load_session()
        g.session_verified = bool(g.haven_session and g.haven_session.second_factor_done)
    return g.haven_session


def end_session() -> None:
    """Sign this browser out: end its row and clear the cookie session."""
    row = current_session()
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
    session.clear()
    g.haven_session = None
    g.session_verified = False
    logout_user()


def end_all_sessions(user: User) -> None:
    """End every session of the user, on every browser, from their next request on."""
    user.session_epoch = (user.session_epoch or 0) + 1
    db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def refusal_reason(row: UserSession, now: datetime) -> str | None:
    """Return why a session row may not be used any more, or None."""
    user = row.user
    if row.ended_at is not None:
        return "ended"
    if row.epoch != user.session_epoch:
        return "epoch"
    if not user.is_active:
        return "inactive"
    if now - row.last_seen_at > _timeout("HAVEN_IDLE_TIMEOUT"):
        return "idle"
    if now - row.created_at > _timeout("HAVEN_ABSOLUTE_TIMEOUT"):
        return "absolute"
    return None


def second_factor_endpoint(user: User) -> str:
    """Return where a half-signed-in user continues: the code, or enrolment."""
    return "auth.login_totp" if user.has_totp else "auth.enrol_totp"


def _store_token(token: str) -> None:
    kept = {key: session[key] for key in _KEPT_ON_ROTATION if key in session}
    session.clear()
    session.update(kept)
    session[SESSION_KEY] = token
    # Flask-WTF caches the signed CSRF token per request; drop it with the old session.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def _load_session() -> UserSession | None:
    token = session.get(SESSION_KEY)
    if not token or not isinstance(token, str):
        return None
    # One indexed query for the row, its user, the user's agency and roles: every request
    # runs it, so no second round trip for the roles.
    row = (
        db.session.execute(
            select(UserSession)
            .options(joinedload(UserSession.user).joinedload(User.role_rows))
            .where(UserSession.token_hash == hash_token(token))
        )
        .unique()
        .scalar_one_or_none()
    )
    if row is None:
        # Rotated away or deleted: the cookie is worthless, drop it.
        session.clear()
        return None
    now = utcnow()
    if refusal_reason(row, now) is not None:
        if row.ended_at is None:
            row.ended_at = now
            db.session.commit()
        session.clear()
        flash(_("Your session has ended. Please sign in again."), "warning")
        return None
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        row.last_seen_at = now
        db.session.commit()
    return row


def _timeout(key: str) -> timedelta:
    value = current_app.config[key]
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def _load_user(_request) -> User | None:
    row = current_session()
    return row.user if row is not None else None


def _login_url() -> str:
    endpoint = request.endpoint
    if request.method == "GET" and endpoint and endpoint not in SECOND_FACTOR_ENDPOINTS:
        target = request.full_path.rstrip("?")
        if target != "/":
            return url_for("auth.login", next=target)
    return url_for("auth.login")


def _gate():
    """Let a request through only with the session its endpoint needs."""
    endpoint = request.endpoint
    if endpoint == "static":
        return None
    row = current_session()
    if endpoint in OPEN_ENDPOINTS:
        return None
    if row is None:
        return redirect(_login_url())
    if row.second_factor_done or endpoint in SECOND_FACTOR_ENDPOINTS:
        return None
    return redirect(url_for(second_factor_endpoint(row.user)))


def init_app(app: Flask) -> None:
    # The cookie is a browser-session cookie that only names the server-side row; the
    # timeouts are enforced on the row, so there is nothing to refresh on each response.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    # Flask-Login's session protection would rewrite the cookie on requests; the row
    # replaces it. Flask-Login only learns the user from the row (no user_loader, no
    # remember cookie).
    app.config["SESSION_PROTECTION"] = None
    login_manager.session_protection = None
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.request_loader(_load_user)
    app.before_request(_gate)
