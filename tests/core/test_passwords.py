"""Password hashing and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from flask_babel import force_locale
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import EmailField, PasswordField

import core.passwords
from core.passwords import (
    MAX_LENGTH,
    PasswordPolicy,
    common_passwords,
    hash_password,
    password_problems,
    verify_password,
)

GOOD = "violet harbour lantern 1987"


def test_it_hashes_with_argon2id_at_least_at_owasp_parameters():
    stored = hash_password(GOOD)
    parameters = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert parameters.type is Type.ID
    # OWASP: m=19 MiB, t=2, p=1 at least (or a higher memory cost with t=1).
    assert parameters.memory_cost >= 19 * 1024
    assert parameters.time_cost >= 2
    assert parameters.parallelism >= 1
    assert hash_password(GOOD) != stored  # salted


def test_it_verifies_the_right_password_only():
    stored = hash_password(GOOD)
    assert verify_password(stored, GOOD) == (True, None)
    assert verify_password(stored, GOOD.upper()) == (False, None)
    assert verify_password(stored, "") == (False, None)


def test_it_refuses_garbage_and_missing_hashes():
    assert verify_password("not a hash", GOOD) == (False, None)
    # No account: a dummy hash is verified so the timing matches, and the answer is no.
    assert verify_password(None, GOOD) == (False, None)


def test_it_returns_an_upgraded_hash_for_old_parameters():
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(GOOD)
    matches, new_hash = verify_password(weak, GOOD)
    assert matches
    assert new_hash is not None
    assert extract_parameters(new_hash).memory_cost >= 19 * 1024
    assert verify_password(new_hash, GOOD) == (True, None)
    # A wrong password never produces a new hash.
    assert verify_password(weak, "wrong password!!") == (False, None)


@pytest.fixture
def request_context(app):
    with app.test_request_context():
        yield


@pytest.mark.usefixtures("request_context")
class TestPolicy:
    def test_it_accepts_a_long_password_without_composition_rules(self):
        assert password_problems("all lower case words only") == []
        assert password_problems("a" * 11 + "b") == []

    def test_it_refuses_fewer_than_12_characters(self):
        problems = password_problems("short pass!")
        assert problems == ["Use at least 12 characters."]

    def test_it_allows_64_and_up_to_128_characters(self):
        assert password_problems("x" * 64 + "y" * 64) == []
        assert password_problems("x" * (MAX_LENGTH + 1)) == ["Use at most 128 characters."]

    @pytest.mark.parametrize("password", ["password1234", "PASSWORD1234", " Password1234 "])
    def test_it_refuses_a_common_password_in_any_case(self, password):
        assert password_problems(password) == [
            "This password is on a list of common passwords. Choose another."
        ]

    def test_it_refuses_the_email_local_part(self):
        from types import SimpleNamespace

        user = SimpleNamespace(email="Gulnara.Aliyeva@example.org")
        problems = password_problems("my name is gulnara.aliyeva ok", user=user)
        assert problems == ["The password must not contain your e-mail name."]
        assert password_problems("xxGULNARAxx-long", email="gulnara@example.org") == [
            "The password must not contain your e-mail name."
        ]
        # A very short local part would forbid too much.
        assert password_problems("a good long passphrase", email="al@example.org") == []

    def test_it_reports_every_problem(self):
        problems = password_problems("password", email="password@example.org")
        assert len(problems) == 3

    def test_it_loads_the_shipped_list_once(self):
        common = common_passwords()
        assert isinstance(common, frozenset)
        assert len(common) > 19_000
        assert common_passwords() is common

    def test_its_messages_are_translated(self, monkeypatch):
        calls = []

        def fake_gettext(message, **variables):
            calls.append(message)
            return "[az] " + message % variables

        monkeypatch.setattr(core.passwords, "_", fake_gettext)
        problems = password_problems("password", email="password@example.org")
        assert problems and all(problem.startswith("[az] ") for problem in problems)
        assert len(calls) == len(problems)

    def test_it_translates_in_the_current_locale(self):
        with force_locale("ru"):
            from flask_babel import gettext

            expected = gettext("Use at least %(number)d characters.", number=12)
            assert password_problems("short") == [expected]


class _NewAccountForm(FlaskForm):
    class Meta:
        csrf = False

    email = EmailField()
    password = PasswordField(validators=[PasswordPolicy()])


def test_the_validator_applies_the_policy(app):
    with app.test_request_context():
        form = _NewAccountForm(
            formdata=MultiDict({"email": "farid@example.org", "password": "farid is here 2026"})
        )
        assert not form.validate()
        assert form.password.errors == ["The password must not contain your e-mail name."]

        form = _NewAccountForm(formdata=MultiDict({"email": "x@y.org", "password": GOOD}))
        assert form.validate(), form.errors
