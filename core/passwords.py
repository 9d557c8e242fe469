"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from wtforms.validators import ValidationError

MIN_LENGTH = 12
MAX_LENGTH = 128
# Shorter e-mail local parts ("al") would forbid too many good passwords.
MIN_EMAIL_PART = 3
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"

# Above OWASP's minimum (m=19 MiB, t=2, p=1): RFC 9106's second recommendation with one lane,
# about 150 ms and 64 MiB per hash on a 2-core server. Changing these makes every stored
# hash "need rehash", and it is upgraded at its owner's next successful login.
_hasher = PasswordHasher(
    time_cost=3, memory_cost=64 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


def hash_password(password: str) -> str:
    """Return an argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Check a password against a stored hash.

    Returns ``(matches, new_hash)``: ``new_hash`` is set when the password matched but the
    stored hash uses older parameters, so the caller stores the upgraded hash. Without a
    stored hash (unknown account) a dummy hash is verified, so that timing does not tell
    whether an account exists.
    """
    if not password_hash:
        _verify(_dummy_hash(), password)
        return False, None
    if not _verify(password_hash, password):
        return False, None
    if _hasher.check_needs_rehash(password_hash):
        return True, hash_password(password)
    return True, None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return hash_password("haven dummy password for unknown accounts")


@functools.cache
def common_passwords() -> frozenset[str]:
    """Return the shipped list of breached passwords, lower-cased, loaded once per process."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as handle:
        return frozenset(line.strip().lower() for line in handle if line.strip())


def password_problems(password: str, *, user=None, email: str | None = None) -> list[str]:
    """Return what is wrong with a new password (translated messages), or an empty list.

    No composition rules (NIST SP 800-63B): length, the breached-password list and the
    owner's e-mail name only. ``email`` is for accounts not created yet.
    """
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(_("Use at least %(number)d characters.", number=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        problems.append(_("Use at most %(number)d characters.", number=MAX_LENGTH))
    folded = password.lower()
    if folded.strip() in common_passwords():
        problems.append(_("This password is on a list of common passwords. Choose another."))
    address = email or (user.email if user is not None else None)
    local_part = address.split("@", 1)[0].lower() if address else ""
    if len(local_part) >= MIN_EMAIL_PART and local_part in folded:
        problems.append(_("The password must not contain your e-mail name."))
    return problems


class PasswordPolicy:
    """WTForms validator applying ``password_problems``.

    The account comes from ``form.policy_user`` (set by the view) or, for a new account,
    from the form's ``email`` field.
    """

    def __call__(self, form, field) -> None:
        if not field.data:
            return
        email_field = getattr(form, "email", None)
        problems = password_problems(
            field.data,
            user=getattr(form, "policy_user", None),
            email=email_field.data if email_field is not None else None,
        )
        if problems:
            raise ValidationError(" ".join(problems))
