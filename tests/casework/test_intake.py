"""Intake: drafts, the full sectioned form, coded fields, minors, NRM and reflection period."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select, text

from casework.models import Case, CaseCode, CaseStatus, age_band
from casework.reference import seed_reference_lists
from casework.services import PERSON_FIELDS, open_case
from casework.timeline import TimelineEvent
from core.models import AgencyType, Role
from tests.factories import client_for, login_as, make_agency, make_user

VERSION_PATTERN = re.compile(r'name="version"[^>]*value="([0-9]+)"')

# Every encrypted field with a value no other field or code contains.
SECRETS = {
    "given_name": "Gülnarə",
    "family_name": "Sirrova",
    "aliases": "Gülü-Alias",
    "date_of_birth": "1997-06-14",
    "estimated_age": "",
    "place_of_birth": "Şamaxı-Birthplace",
    "document_type": "Passport-Doctype",
    "document_number": "P77120394",
    "phone": "+994 70 412 55 81",
    "address": "Nizami küç. 101-Addr",
    "contact_person": "Bacısı Aynur-Contact",
    "languages_spoken": "Azərbaycan-Lang, Rus",
    "identification_circumstances": "Found at the border-IdCirc",
    "circumstances": "Summary-Circ of what happened",
    "exploitation_narrative": "Worked 16 hours-ExplNarr",
    "recruitment_narrative": "Met on Instagram-RecrNarr",
    "medical_notes": "Untreated fracture-MedNotes",
}
CODES = {
    "sex": "Feminine",
    "citizenship": "AZ",
    "identification_region": "lankaran_astara",
    "identified_on": "2026-02-10",
    "industry": "I",
    "recruitment_type": "ThroughOnlineSocialNetworks",
    "interpreter_needed": "y",
    "exploitation_form": ["ForcedLabour", "Servitude"],
    "origin_country": ["AZ"],
    "transit_country": ["GE", "TR"],
    "destination_country": ["AE"],
    "means_of_control": ["WithholdsDocuments", "DebtBondage"],
}


@pytest.fixture
def world(db):
    seed_reference_lists()
    north = make_agency(AgencyType.POLICE, name="Police North")
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
    }
    db.session.commit()
    return people



def only_case(db) -> Case:
    db.session.expire_all()
    return db.session.scalars(select(Case)).one()


# Drafts ----------------------------------------------------------------------------------


def test_a_draft_is_saved_without_required_fields_and_is_not_open(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/cases/new", {"medical_notes": "Needs a doctor", "action": "draft"}
    )
    assert response.status_code == 302
    case = only_case(db)
    assert case.status == CaseStatus.DRAFT
    assert case.medical_notes == "Needs a doctor"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'class="badge badge--warn">Draft<' in page
    assert ">Open<" not in page
    kinds = db.session.scalars(select(TimelineEvent.kind)).all()
    assert kinds == ["case.draft_saved"]


def test_a_draft_still_refuses_a_malformed_date_and_keeps_the_input(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/cases/new",
        {"given_name": "Səbinə", "identified_on": "10.02.2026", "action": "draft"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Please enter a real date" in page
    assert 'value="Səbinə"' in page
    assert 'value="10.02.2026"' in page
    assert db.session.scalar(select(Case.id)) is None


def test_opening_needs_the_required_fields_and_keeps_the_input(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/cases/new", {"family_name": "Tələbova", "medical_notes": "Asthma", "action": "open"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    # Once in the error summary, once at each field.
    assert page.count("Required to open the case.") == 8
    assert 'value="Tələbova"' in page
    assert re.search(r">\s*Asthma</textarea>", page)
    assert db.session.scalar(select(Case.id)) is None


def test_a_draft_is_opened_from_the_edit_form(app, db, world):
    client = client_for(app, world["alice"])
    client.post_form("/cases/new", {"given_name": "Lalə", "action": "draft"})
    case = only_case(db)
    url = f"/cases/{case.id}/edit"
    version = VERSION_PATTERN.search(client.get(url).get_data(as_text=True)).group(1)
    incomplete = client.post_form(url, {"given_name": "Lalə", "version": version, "action": "open"})
    assert incomplete.status_code == 400
    assert only_case(db).status == CaseStatus.DRAFT

    data = {"given_name": "Lalə", "version": version, "action": "open", **CODES}
    response = client.post_form(url, data)
    assert response.status_code == 302
    case = only_case(db)
    assert case.status == CaseStatus.OPEN
    assert case.codes_in("exploitation_form") == ["ForcedLabour", "Servitude"]
    kinds = db.session.scalars(select(TimelineEvent.kind).order_by(TimelineEvent.occurred_at))
    assert list(kinds) == ["case.draft_saved", "case.intake_completed"]


# The full intake -------------------------------------------------------------------------


def test_the_full_intake_encrypts_every_person_field_and_keeps_codes_in_clear(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form("/cases/new", {**SECRETS, **CODES, "action": "open"})
    assert response.status_code == 302
    case = only_case(db)
    assert case.status == CaseStatus.OPEN
    for name in PERSON_FIELDS:
        expected = SECRETS[name] or None
        if name == "date_of_birth":
            expected = date(1997, 6, 14)
        assert getattr(case, name) == expected, name

    rows = db.session.execute(text("SELECT * FROM cases")).mappings().all()
    # Ids are random hex and could hold "1997" by chance: leave them out of the dump.
    dump = repr([{key: val for key, val in row.items() if not key.endswith("id")} for row in rows])
    for row in rows:
        for value in row.values():
            if isinstance(value, bytes | memoryview):
                dump += bytes(value).decode("latin-1")
    for secret in SECRETS.values():
        if secret:
            assert secret not in dump
            assert secret.encode("utf-8").decode("latin-1") not in dump
    assert "1997" not in dump  # the birth date, in any form

    row = rows[0]
    assert row["sex"] == "Feminine"
    assert row["citizenship"] == "AZ"
    assert row["identification_region"] == "lankaran_astara"
    assert str(row["identified_on"]).startswith("2026-02-10")
    assert row["industry"] == "I"
    assert row["recruitment_type"] == "ThroughOnlineSocialNetworks"
    assert row["age_band"] == "25-34"
    assert not row["is_minor"]
    assert row["identifying_agency_type"] == "police"
    assert row["nrm_status"] == "presumed"
    assert str(row["reflection_period_ends_on"]).startswith("2026-03-12")
    assert bool(row["interpreter_needed"]) is True
    codes = set(db.session.execute(text("SELECT list_name, code FROM case_codes")).all())
    assert codes == {
        ("exploitation_form", "ForcedLabour"),
        ("exploitation_form", "Servitude"),
        ("origin_country", "AZ"),
        ("transit_country", "GE"),
        ("transit_country", "TR"),
        ("destination_country", "AE"),
        ("means_of_control", "WithholdsDocuments"),
        ("means_of_control", "DebtBondage"),
    }

    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    for label in (
        "Domestic servitude",
        "Georgia, Türkiye",
        "United Arab Emirates",
        "Lankaran-Astara",
    ):
        assert label in page
    assert "Untreated fracture-MedNotes" in page
    assert "Presumed victim" in page


def test_an_unknown_code_is_refused(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/cases/new", {"given_name": "X", "citizenship": "EU", "action": "draft"}
    )
    assert response.status_code == 400
    assert db.session.scalar(select(Case.id)) is None


def test_removing_a_code_alone_is_a_new_version(app, db, world):
    client = client_for(app, world["alice"])
    client.post_form("/cases/new", {**SECRETS, **CODES, "action": "open"})
    case = only_case(db)
    url = f"/cases/{case.id}/edit"
    version = VERSION_PATTERN.search(client.get(url).get_data(as_text=True)).group(1)
    response = client.post_form(
        url, {**SECRETS, **CODES, "transit_country": ["GE"], "version": version}
    )
    assert response.status_code == 302
    case = only_case(db)
    assert case.codes_in("transit_country") == ["GE"]
    assert case.version == int(version) + 1


# Minors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "minor", "band"),
    [
        (date(2008, 2, 10), False, "18-24"),  # 18 exactly on the identification day
        (date(2008, 2, 11), True, "12-17"),  # 18 the day after
        (date(2014, 2, 11), True, "0-11"),
    ],
)
def test_the_minor_flag_comes_from_the_birth_date_on_identification(db, world, birth, minor, band):
    case = open_case(
        world["alice"],
        {"given_name": "Uşaq", "date_of_birth": birth, "identified_on": date(2026, 2, 10)},
    )
    assert case.is_minor is minor
    assert case.age_band == band


@pytest.mark.parametrize(("estimate", "minor"), [("17", True), ("18", False), (16, True)])
def test_the_minor_flag_comes_from_the_estimated_age(db, world, estimate, minor):
    case = open_case(
        world["alice"],
        {"given_name": "Təxmini", "estimated_age": estimate, "identified_on": date(2026, 2, 10)},
    )
    assert case.is_minor is minor


def test_no_age_means_no_minor_flag_and_no_band(db, world):
    case = open_case(world["alice"], {"given_name": "Naməlum"})
    assert case.is_minor is None
    assert case.age_band is None
    assert age_band(50) == "50+"
    assert age_band(49) == "35-49"


def test_a_minor_case_shows_the_safeguarding_banner_and_asks_for_the_guardian(app, db, world):
    case = open_case(
        world["alice"],
        {"given_name": "Aysel", "estimated_age": "15", "identified_on": date(2026, 2, 10)},
    )
    adult = open_case(world["alice"], {"given_name": "Böyük", "estimated_age": "30"})
    db.session.commit()
    client = client_for(app, world["alice"])
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Child safeguarding" in page
    assert "No guardian or contact person is recorded." in page
    assert "Child safeguarding" not in client.get(f"/cases/{adult.id}").get_data(as_text=True)

    case = db.session.get(Case, case.id)
    case.contact_person = "Anası Səbinə, +994 50 000 00 00"
    db.session.commit()
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Child safeguarding" in page
    assert "No guardian or contact person is recorded." not in page


# NRM status and reflection period --------------------------------------------------------


def test_the_reflection_period_runs_from_identification_and_warns_near_its_end(app, db, world):
    case = open_case(world["alice"], {"given_name": "Elnur", "identified_on": date(2026, 3, 1)})
    db.session.commit()
    assert case.reflection_period_ends_on == date(2026, 3, 31)
    client = client_for(app, world["alice"])

    def page_on(day: datetime) -> str:
        with time_machine.travel(day, tick=False):
            login_as(client, world["alice"])
            return client.get(f"/cases/{case.id}").get_data(as_text=True)

    running = page_on(datetime(2026, 3, 25, 8, 0, tzinfo=UTC))
    assert "Reflection and recovery period ends" in running
    assert "31" in running
    assert "reflection-warning" not in running
    ending = page_on(datetime(2026, 3, 26, 8, 0, tzinfo=UTC))
    assert "The reflection and recovery period ends on" in ending
    last_day = page_on(datetime(2026, 3, 31, 8, 0, tzinfo=UTC))
    assert "The reflection and recovery period ends on" in last_day
    ended = page_on(datetime(2026, 4, 1, 8, 0, tzinfo=UTC))
    assert "ended on" in ended

    assert case.reflection_state(date(2026, 3, 25)) == "running"
    assert case.reflection_state(date(2026, 3, 26)) == "ending"
    assert case.reflection_state(date(2026, 4, 1)) == "ended"
    # Once the NRM decided, the period needs no more warnings.
    case.nrm_status = "recognised"
    assert case.reflection_state(date(2026, 4, 1)) == "none"


def test_the_reflection_period_length_is_configurable(app, db, world, monkeypatch):
    monkeypatch.setitem(app.config, "HAVEN_REFLECTION_PERIOD_DAYS", 60)
    case = open_case(world["alice"], {"given_name": "Kamal", "identified_on": date(2026, 3, 1)})
    assert case.reflection_period_ends_on == date(2026, 4, 30)


def test_the_nrm_status_is_checked_by_the_database(db, world):
    case = open_case(world["alice"], {"given_name": "Yoxla"})
    db.session.commit()
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        db.session.execute(
            text("UPDATE cases SET nrm_status = 'maybe' WHERE id = :id"), {"id": case.id}
        )
    db.session.rollback()
    assert db.session.scalars(select(CaseCode)).all() == []


# Edit conflicts on the new fields --------------------------------------------------------


def test_an_edit_conflict_on_new_fields_shows_both_values_and_keeps_the_input(app, db, world):
    alice, bob = client_for(app, world["alice"]), client_for(app, world["bob"])
    alice.post_form("/cases/new", {**SECRETS, **CODES, "action": "open"})
    case = only_case(db)
    url = f"/cases/{case.id}/edit"
    alice_version = VERSION_PATTERN.search(alice.get(url).get_data(as_text=True)).group(1)
    bob_version = VERSION_PATTERN.search(bob.get(url).get_data(as_text=True)).group(1)

    saved = alice.post_form(
        url,
        {
            **SECRETS,
            **CODES,
            "medical_notes": "Alpha medical",
            "citizenship": "GE",
            "exploitation_form": ["SexualExploitation"],
            "version": alice_version,
        },
    )
    assert saved.status_code == 302
    conflict = bob.post_form(
        url,
        {
            **SECRETS,
            **CODES,
            "medical_notes": "Bravo medical",
            "citizenship": "UA",
            "exploitation_form": ["ForcedBegging"],
            "version": bob_version,
        },
    )
    page = conflict.get_data(as_text=True)
    assert conflict.status_code == 409
    assert "Alpha medical" in page
    assert re.search(r">\s*Bravo medical</textarea>", page)
    # Both values of the coded fields, as labels, and Bob's choice still selected.
    for label in ("Georgia", "Ukraine", "Sexual exploitation", "Forced begging"):
        assert label in page
    assert re.search(
        r'<option[^>]*selected[^>]*value="UA"|<option[^>]*value="UA"[^>]*selected', page
    )
    assert re.search(r'value="ForcedBegging"[^>]*checked|checked[^>]*value="ForcedBegging"', page)
    case = only_case(db)
    assert case.medical_notes == "Alpha medical"
    assert case.citizenship == "GE"
