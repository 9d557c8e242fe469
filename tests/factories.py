"""Plain functions that build agencies and users for tests."""

from __future__ import annotations

import itertools

import pyotp

from core.db import db
from core.models import Agency, AgencyType, Role, User

DEFAULT_PASSWORD = "correct horse battery staple 42"
_counter = itertools.count(1)
_password_hash_cache: dict[str, str] = {}


def password_hash(password: str = DEFAULT_PASSWORD) -> str:
    """Hash once per password: argon2id is deliberately slow."""
    if password not in _password_hash_cache:
        from core.passwords import hash_password

        _password_hash_cache[password] = hash_password(password)
    return _password_hash_cache[password]


def make_agency(
    type: AgencyType = AgencyType.NGO, name: str | None = None, coordinator: bool = False
) -> Agency:
    agency = Agency(
        name=name or f"{type.value} agency {next(_counter)}",
        type=type.value,
        is_national_coordinator=coordinator,
    )
    db.session.add(agency)
    db.session.flush()
    return agency


def make_user(
    agency: Agency,
    *roles: Role,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    with_totp: bool = True,
    language: str = "en",
) -> User:
    """Create a user; with_totp gives them a confirmed TOTP secret (user.totp_secret)."""
    number = next(_counter)
    user = User(
        agency=agency,
        email=email or f"user{number}@example.org",
        display_name=f"Test User {number}",
        password_hash=password_hash(password),
        language=language,
    )
    user.set_roles(list(roles) or [Role.CASEWORKER])
    db.session.add(user)
    db.session.flush()
    if with_totp:
        from core.db import utcnow

        user.totp_secret = pyotp.random_base32()
        user.totp_confirmed_at = utcnow()
    db.session.flush()
    return user


def login_as(client, user: User) -> None:
    """Sign a test client in as the user, password and second factor done.

    Creates the server-side session directly and puts its token in the client's cookie
    session, so tests do not pay for argon2 and TOTP on every sign-in. Commits.
    """
    from core.sessions import SESSION_KEY, create_session

    _row, token = create_session(user, second_factor_done=True)
    db.session.commit()
    with client.session_transaction() as cookie_session:
        cookie_session.clear()
        cookie_session[SESSION_KEY] = token
        cookie_session["language"] = user.language


def client_for(app, user):
    """Return a new test client signed in as the user."""
    client = app.test_client()
    login_as(client, user)
    return client
