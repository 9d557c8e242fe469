"""Demo data: every agency type and role, idempotent loading, and the `flask demo` commands."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import func, select

from casework.models import Case
from core import demo
from core.audit import AuditEntry
from core.demo import (
    DEMO_AGENCIES,
    DEMO_PASSWORD,
    DEMO_TOTP_SECRET,
    DEMO_USERS,
    generate_cases,
    load_demo_data,
    synthetic_people,
)
from core.models import Agency, AgencyType, Role, User
from core.passwords import common_passwords, password_problems, verify_password
from tests.factories import make_agency, make_user

DOCUMENTED_EMAILS = (
    "caseworker@ngo.demo",
    "supervisor@ngo.demo",
    "caseworker@shelter.demo",
    "caseworker@health.demo",
    "coordinator@nrm.demo",
    "analyst@ministry.demo",
    "admin@haven.demo",
    "auditor@haven.demo",
)


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _from_reports():
    """The cases the demo opened from hotline calls and notifications (casework.contacts)."""
    from casework.contacts import IncomingReport

    return select(IncomingReport.case_id).where(IncomingReport.case_id.is_not(None))


def report_cases(db) -> int:
    """Count the cases opened from demo reports."""
    return db.session.scalar(select(func.count()).select_from(_from_reports().subquery()))


def people_cases(db) -> int:
    """Count the cases of synthetic people (not those opened from demo reports)."""
    return db.session.scalar(
        select(func.count()).select_from(Case).where(Case.id.not_in(_from_reports()))
    )


@pytest.fixture
def loaded(db):
    return load_demo_data()


def test_it_creates_an_agency_of_every_type_and_one_national_coordinator(db, loaded):
    agencies = db.session.scalars(select(Agency)).all()
    assert {agency.type for agency in agencies} == {member.value for member in AgencyType}
    coordinators = [agency for agency in agencies if agency.is_national_coordinator]
    assert len(coordinators) == 1
    assert coordinators[0].type == AgencyType.MINISTRY.value
    assert coordinators[0].name == "National Coordinator — Office for Combating Trafficking"
    assert loaded.agencies == len(DEMO_AGENCIES) == len(agencies)


def test_it_creates_an_account_for_every_role_that_can_sign_in(db, loaded):
    users = db.session.scalars(select(User)).all()
    assert set().union(*(user.roles for user in users)) == set(Role)
    assert {user.email for user in users} >= set(DOCUMENTED_EMAILS)
    assert loaded.users == len(DEMO_USERS) == len(users)
    for user in users:
        assert user.has_totp
        assert user.totp_secret == DEMO_TOTP_SECRET
        assert user.agency.active and user.active
        assert password_problems(DEMO_PASSWORD, user=user) == []
    assert verify_password(users[0].password_hash, DEMO_PASSWORD)[0]
    by_email = {user.email: user for user in users}
    assert by_email["coordinator@nrm.demo"].agency.is_national_coordinator
    assert by_email["supervisor@ngo.demo"].agency == by_email["caseworker@ngo.demo"].agency
    assert by_email["caseworker@shelter.demo"].agency.type == AgencyType.SHELTER.value
    assert by_email["caseworker@health.demo"].agency.type == AgencyType.HEALTH.value


def test_the_demo_password_and_secret_are_usable():
    assert DEMO_PASSWORD.lower() not in common_passwords()
    assert len(DEMO_PASSWORD) >= 12
    # A valid base32 secret of at least 128 bits, as authenticator apps expect.
    assert re.fullmatch(r"[A-Z2-7]{32}", DEMO_TOTP_SECRET)
    assert re.fullmatch(r"\d{6}", pyotp.TOTP(DEMO_TOTP_SECRET).now())


def test_it_opens_the_demo_cases_through_the_service(db, loaded):
    assert loaded.cases == demo.DEMO_CASE_COUNT == people_cases(db)
    holders = {
        agency.id
        for agency in db.session.scalars(select(Agency))
        if agency.name
        in {demo_agency.name for demo_agency in DEMO_AGENCIES if demo_agency.holds_cases}
    }
    owners = set(db.session.scalars(select(Case.owner_agency_id).distinct()))
    assert owners <= holders
    assert len(owners) >= 8
    # Through open_case: every case has its reference, its audit entry and readable fields.
    assert count(db, AuditEntry) >= demo.DEMO_CASE_COUNT
    assert db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.created")
    ) == demo.DEMO_CASE_COUNT + report_cases(db)
    case = db.session.scalars(select(Case).order_by(Case.reference)).first()
    assert re.fullmatch(r"HVN-\d{4}-000001", case.reference)
    assert case.given_name and case.circumstances


def test_loading_twice_creates_nothing_more(db, loaded):
    counts = (count(db, Agency), count(db, User), people_cases(db))
    again = load_demo_data()
    assert (again.agencies, again.users, again.cases) == (0, 0, 0)
    assert (count(db, Agency), count(db, User), people_cases(db)) == counts


def test_an_interrupted_load_is_topped_up(db):
    first = load_demo_data(case_count=5)
    second = load_demo_data(case_count=8)
    assert (first.cases, second.cases) == (5, 3)
    assert people_cases(db) == 8


def test_synthetic_people_are_the_same_every_time():
    first = list(synthetic_people(30))
    assert first == list(synthetic_people(30))
    assert list(synthetic_people(30, skip=10)) == first[10:]
    assert first != list(synthetic_people(30, seed=1))
    names = " ".join(str(person["family_name"]) for _key, person in first)
    # Azerbaijani, Russian and English names.
    assert re.search(r"[əğıöüşçƏĞİÖÜŞÇ]", names)
    assert re.search(r"[а-яА-Я]", names)
    assert re.search(r"\b[A-Z][a-z]+\b", names)


def test_generate_cases_adds_cases_in_batches(db):
    assert generate_cases(5, batch_size=2) == 5
    assert people_cases(db) == 5
    assert generate_cases(3, batch_size=10) == 3
    assert people_cases(db) == 8


# flask demo ----------------------------------------------------------------------------


def test_demo_code_prints_the_current_code_of_a_demo_account(app, db):
    load_demo_data(case_count=0)
    result = app.test_cli_runner().invoke(args=["demo", "code", "caseworker@ngo.demo"])
    assert result.exit_code == 0, result.output
    code = result.output.strip()
    assert pyotp.TOTP(DEMO_TOTP_SECRET).verify(code, valid_window=1)


def test_demo_code_refuses_other_accounts(app, db):
    load_demo_data(case_count=0)
    real = make_user(make_agency(AgencyType.NGO), Role.CASEWORKER, email="real@example.org")
    # A copy of a demo e-mail's domain is not enough, nor a demo account whose secret changed.
    lookalike = make_user(real.agency, Role.CASEWORKER, email="someone@ngo.demo")
    changed = db.session.scalar(select(User).where(User.email == "caseworker@shelter.demo"))
    changed.totp_secret = pyotp.random_base32()
    db.session.commit()
    runner = app.test_cli_runner()
    for email in (real.email, lookalike.email, changed.email, "nobody@ngo.demo"):
        result = runner.invoke(args=["demo", "code", email])
        assert result.exit_code != 0
        assert "not a demo account" in result.output
        assert not re.search(r"^\d{6}$", result.output, re.MULTILINE)


@pytest.mark.parametrize(
    "args",
    [["demo", "load"], ["demo", "code", "caseworker@ngo.demo"], ["demo", "cases", "--count", "1"]],
)
def test_demo_commands_refuse_to_run_in_production(app, db, monkeypatch, args):
    monkeypatch.setattr(demo, "is_production", lambda _app: True)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert "development and test systems only" in result.output
    assert count(db, Agency) == 0


def test_demo_load_command_loads_the_data(app, db):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--cases", "3"])
    assert result.exit_code == 0, result.output
    assert "demo data:" in result.output
    assert people_cases(db) == 3
    assert count(db, Agency) == len(DEMO_AGENCIES)


# Bulk generation (flask demo cases) ----------------------------------------------------

BULK_COUNT = 200


@pytest.fixture
def bulk(db):
    """Three cases opened through the service, then BULK_COUNT generated in bulk."""
    load_demo_data(case_count=3)
    assert generate_cases(BULK_COUNT, batch_size=64, seed=7) == BULK_COUNT
    db.session.expire_all()
    return db.session.scalars(
        select(Case).where(Case.id.not_in(_from_reports())).order_by(Case.reference)
    ).all()


def _numbers_by_year(references: list[str]) -> dict[str, list[int]]:
    by_year: dict[str, list[int]] = {}
    for reference in sorted(references):
        _prefix, year, number = reference.split("-")
        by_year.setdefault(year, []).append(int(number))
    return by_year


def test_bulk_generation_numbers_cases_after_the_existing_ones(db, bulk):
    from zoneinfo import ZoneInfo

    from flask import current_app

    assert len(bulk) == 3 + BULK_COUNT
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    # Each case is opened on its identification day, under that year's references...
    for case in bulk:
        assert case.reference[4:8] == str(case.created_at.astimezone(zone).year)
    identified = [case for case in bulk if case.identified_on is not None]
    assert len(identified) >= BULK_COUNT // 2
    # Only the three cases opened through the service were opened later than identified.
    opened_later = [
        c for c in identified if c.created_at.astimezone(zone).date() != c.identified_on
    ]
    assert len(opened_later) <= 3
    # ...so a large run spreads over several years instead of exhausting one.
    by_year = _numbers_by_year([case.reference for case in bulk])
    assert len(by_year) >= 3
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in by_year.values())
    # A second run continues each year's sequence, without gaps or clashes.
    generate_cases(5, batch_size=2, seed=8)
    after = _numbers_by_year(db.session.scalars(select(Case.reference)).all())
    assert sum(map(len, after.values())) == 3 + BULK_COUNT + 5 + report_cases(db)
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in after.values())


def test_bulk_cases_decrypt_and_are_found_by_their_blind_indexes(db, bulk):
    from casework.models import CaseBlindIndex
    from core.crypto import name_birth_year_index

    generated = bulk[3:]
    with_index = 0
    for case in generated:
        assert case.given_name and case.family_name and case.circumstances
        stored = {row.index_name: row.value for row in case.blind_indexes}
        # Recomputed from the decrypted fields, exactly what the service would have written.
        assert stored == case.blind_index_values()
        if case.date_of_birth is None:
            continue
        with_index += 1
        wanted = name_birth_year_index(
            case.given_name.upper(),
            case.family_name,
            case.date_of_birth.year,
            table="cases",
            bits=_bits(),
        )
        found = db.session.scalars(
            select(CaseBlindIndex.case_id).where(
                CaseBlindIndex.index_name == "name_birth_year", CaseBlindIndex.value == wanted
            )
        ).all()
        assert case.id in found
    assert with_index > BULK_COUNT // 2


def _bits() -> int:
    from core.crypto import configured_index_bits

    return configured_index_bits()


def test_bulk_cases_have_the_rows_the_service_writes(db, bulk):
    from casework import models

    generated = bulk[3:]
    assert {case.status for case in generated} == {"open"}
    holders = {agency.name for agency in DEMO_AGENCIES if agency.holds_cases}
    assert {case.owner_agency.name for case in generated} <= holders
    assert len({case.owner_agency_id for case in generated}) >= 8
    assert all(case.assigned_user.email.startswith("caseworker@") for case in generated)
    assert len({case.data_key_id for case in generated}) == BULK_COUNT
    created = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.created")
    ).all()
    assert {entry.object_id for entry in created} >= {case.id for case in generated}
    if hasattr(models.Case, "derive_coded_fields"):
        for case in generated:
            # Derived codes agree with the decrypted fields: deriving again changes nothing.
            assert case.derive_coded_fields() == []
            assert case.sex in ("Feminine", "Masculine")
            assert case.codes_in("exploitation_form")
        assert {case.is_minor for case in generated} >= {True, False}
    db.session.rollback()


def test_bulk_rows_hold_no_plaintext(db, bulk):
    generated = bulk[3:]
    secrets_ = {
        case.id: [
            str(value)
            for value in (case.given_name, case.family_name, case.phone, case.document_number)
            if value
        ]
        for case in generated
    }
    raw = db.session.execute(Case.__table__.select()).mappings().all()
    assert len(raw) == len(bulk) + report_cases(db)
    for row in raw:
        # Ids are random hex: a short name such as "Baba" can occur in one by chance.
        dump = repr({key: value for key, value in row.items() if not key.endswith("id")}).lower()
        for value in secrets_.get(row["id"], []):
            assert value.lower() not in dump
        assert row["given_name_enc"] is not None


def test_bulk_generation_is_deterministic_for_a_seed():
    first = list(demo.pooled_people(40, seed=3))
    assert first == list(demo.pooled_people(40, seed=3))
    assert first != list(demo.pooled_people(40, seed=4))


def test_bulk_generation_leaves_the_demo_accounts_alone(db):
    load_demo_data(case_count=0)
    before = {
        user.email: (user.password_hash, user.totp_secret, user.roles, user.agency_id)
        for user in db.session.scalars(select(User))
    }
    generate_cases(10, seed=1)
    again = load_demo_data(case_count=0)
    assert (again.agencies, again.users, again.cases) == (0, 0, 0)
    db.session.expire_all()
    after = {
        user.email: (user.password_hash, user.totp_secret, user.roles, user.agency_id)
        for user in db.session.scalars(select(User))
    }
    assert after == before
