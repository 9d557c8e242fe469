"""The case list: filters and keyset pages; the blind-index search (POST, audited, re-checked)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from casework import search
from casework.models import Case, CaseBlindIndex, CaseStatus
from casework.reference import seed_reference_lists
from casework.search import CaseCriteria, CaseSort, case_page, search_cases
from casework.services import open_case
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

REFERENCE = re.compile(r"HVN-\d{4}-\d{6}")


@pytest.fixture
def world(db):
    """Alice and Bob work at NGO North; Charlie at Shelter South holds a case of his own."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
    }
    seed_reference_lists()
    db.session.commit()
    return people



def open_as(db, user, **data) -> Case:
    case = open_case(user, data)
    db.session.commit()
    return case


def references(page: str) -> list[str]:
    """Return the case references in the list's table, in order."""
    table = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return REFERENCE.findall(table)


# Filters ---------------------------------------------------------------------------------------


@pytest.fixture
def filter_world(db, world):
    """Five NGO North cases that differ in one filterable respect each, and Charlie's case."""
    alice, bob = world["alice"], world["bob"]
    cases = {
        "plain": open_as(db, alice, given_name="Aysel", identified_on=date(2026, 1, 10)),
        "bobs": open_as(db, bob, given_name="Bahar", identified_on=date(2026, 2, 10)),
        "minor": open_as(
            db,
            alice,
            given_name="Cəmilə",
            date_of_birth=date(2015, 5, 1),
            identified_on=date(2026, 3, 10),
        ),
        "labour": open_as(
            db,
            alice,
            given_name="Dünya",
            exploitation_form=["ForcedLabour"],
            identified_on=date(2025, 6, 1),
        ),
        "closed": open_as(db, alice, given_name="Elnarə"),
    }
    cases["closed"].status = CaseStatus.CLOSED.value
    cases["labour"].nrm_status = "recognised"
    # Opened long ago: only the "opened" period filter tells it apart.
    cases["plain"].created_at = datetime(2025, 1, 15, 12, tzinfo=UTC)
    cases["other_agency"] = open_as(db, world["charlie"], given_name="Fidan")
    db.session.commit()
    return {name: case.reference for name, case in cases.items()}


FILTERS = [
    ({"status": "closed"}, {"closed"}),
    ({"status": "open"}, {"plain", "bobs", "minor", "labour"}),
    ({"nrm_status": "recognised"}, {"labour"}),
    ({"mine": "me"}, {"plain", "minor", "labour", "closed"}),
    ({"exploitation": "ForcedLabour"}, {"labour"}),
    ({"minor": "yes"}, {"minor"}),
    ({"period": "identified", "date_from": "2026-02-01"}, {"bobs", "minor"}),
    ({"period": "identified", "date_to": "2026-01-31"}, {"plain", "labour"}),
    (
        {"period": "identified", "date_from": "2026-01-01", "date_to": "2026-02-10"},
        {"plain", "bobs"},
    ),
    ({"period": "opened", "date_to": "2025-12-31"}, {"plain"}),
    ({}, {"plain", "bobs", "minor", "labour", "closed"}),
]


@pytest.mark.parametrize(("args", "expected"), FILTERS)
def test_each_filter_narrows_the_list(app, world, filter_world, args, expected):
    response = client_for(app, world["alice"]).get("/cases/", query_string=args)
    assert response.status_code == 200
    shown = set(references(response.get_data(as_text=True)))
    assert shown == {filter_world[name] for name in expected}


def test_minor_no_means_known_adults_only(app, db, world, filter_world):
    # Without a birth date or an estimate the age is unknown: neither minor nor adult.
    adult = open_as(db, world["alice"], given_name="Gülnar", date_of_birth=date(1990, 1, 1))
    page = client_for(app, world["alice"]).get("/cases/?minor=no").get_data(as_text=True)
    assert references(page) == [adult.reference]


def test_another_agencys_cases_never_appear(app, world, filter_world):
    client = client_for(app, world["alice"])
    for args, _expected in FILTERS:
        page = client.get("/cases/", query_string=args).get_data(as_text=True)
        assert filter_world["other_agency"] not in page
        assert "Fidan" not in page
    charlie_page = client_for(app, world["charlie"]).get("/cases/").get_data(as_text=True)
    assert references(charlie_page) == [filter_world["other_agency"]]


def test_an_invalid_filter_value_is_ignored_and_shown(app, world, filter_world):
    response = client_for(app, world["alice"]).get("/cases/?status=nonsense&date_from=yesterday")
    assert response.status_code == 200
    assert len(references(response.get_data(as_text=True))) == 5
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_the_filter_form_is_a_get_search_form(app, world):
    page = client_for(app, world["alice"]).get("/cases/").get_data(as_text=True)
    assert re.search(r'<form[^>]*method="get"[^>]*role="search"', page)
    assert re.search(r'<form[^>]*method="post"[^>]*role="search"', page)


# Sorting and keyset pages ------------------------------------------------------------------------


@pytest.fixture
def many(db, world):
    """Seven cases, three of them opened in the very same instant (the id breaks the tie)."""
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    cases = []
    for number in range(7):
        case = open_as(db, world["alice"], given_name=f"Person {number}")
        case.created_at = start + timedelta(minutes=min(number, 3))
        cases.append(case)
    open_as(db, world["charlie"], given_name="Elsewhere")
    db.session.commit()
    return cases


def walk(app, user, size, **args) -> list[str]:
    """Follow the "Next page" links from the first page; return the references in order."""
    client = client_for(app, user)
    seen, url, pages = [], "/cases/", 0
    while url:
        page = client.get(url, query_string=args if pages == 0 else None).get_data(as_text=True)
        seen += references(page)
        pages += 1
        match = re.search(r'href="([^"]*after=[^"]*)">Next page', page)
        url = match.group(1).replace("&amp;", "&") if match else None
        assert pages < 20
    return seen


@pytest.mark.parametrize("sort", list(CaseSort))
def test_pages_cover_every_case_once_in_order(app, db, world, many, monkeypatch, sort):
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    shown = walk(app, world["alice"], 2, sort=sort.value)
    newest = sorted(many, key=lambda case: (case.created_at, case.id), reverse=True)
    expected = {
        CaseSort.NEWEST: [case.reference for case in newest],
        CaseSort.OLDEST: [case.reference for case in reversed(newest)],
        CaseSort.REFERENCE: sorted(case.reference for case in many),
    }[sort]
    assert shown == expected


def test_pages_keep_the_filter(app, db, world, many, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    for case in many[:5]:
        case.status = CaseStatus.CLOSED.value
    db.session.commit()
    shown = walk(app, world["alice"], 2, status="closed", sort="reference")
    assert shown == sorted(case.reference for case in many[:5])


def test_a_page_is_stable_when_a_newer_case_arrives(app, db, world, many):
    first = case_page(world["alice"], CaseCriteria(), None, size=3)
    open_as(db, world["alice"], given_name="Latecomer")
    second = case_page(world["alice"], CaseCriteria(), first.next_after, size=3)
    newest = sorted(many, key=lambda case: (case.created_at, case.id), reverse=True)
    assert [case.id for case in first.cases + second.cases] == [case.id for case in newest[:6]]


def test_another_agencys_case_cannot_anchor_a_page(app, db, world, many):
    theirs = open_as(db, world["charlie"], given_name="Anchor")
    client = client_for(app, world["alice"])
    assert client.get(f"/cases/?after={theirs.id}").status_code == 404


# Search ------------------------------------------------------------------------------------------


@pytest.fixture
def people(db, world):
    alice, charlie = world["alice"], world["charlie"]
    return {
        "leyla": open_as(
            db,
            alice,
            given_name="LEYLA",
            family_name="MƏMMƏDOVA",
            date_of_birth=date(1996, 2, 3),
            document_number="AA 4417265",
            phone="+994 50 321 77 18",
        ),
        "lyudmila": open_as(
            db,
            alice,
            given_name="Людмила",
            family_name="Гусейнова",
            date_of_birth=date(1989, 7, 9),
        ),
        "cyrillic_az": open_as(
            db, alice, given_name="Ләман", family_name="Мәммәдова", date_of_birth=date(2001, 1, 1)
        ),
        # The same person at another agency: never found by Alice.
        "theirs": open_as(
            db,
            charlie,
            given_name="Leyla",
            family_name="Məmmədova",
            date_of_birth=date(1996, 2, 3),
            document_number="AA4417265",
        ),
    }


def search_page(client, **terms):
    return client.post_form("/cases/", terms)


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"given_name": "leyla", "family_name": "mammadova", "birth_year": "1996"}, "leyla"),
        ({"given_name": "Leyla", "family_name": "Məmmədova", "birth_year": "1996"}, "leyla"),
        ({"given_name": "lyudmila", "family_name": "guseynova", "birth_year": "1989"}, "lyudmila"),
        ({"given_name": "LAMAN", "family_name": "Mammadova", "birth_year": "2001"}, "cyrillic_az"),
        ({"document_number": "aa4417-265"}, "leyla"),
        ({"phone": "050 321 77 18"}, "leyla"),
    ],
)
def test_blind_index_search_matches_across_case_accents_and_alphabets(
    app, world, people, terms, expected
):
    response = search_page(client_for(app, world["alice"]), **terms)
    assert response.status_code == 200
    assert references(response.get_data(as_text=True)) == [people[expected].reference]


def test_it_finds_a_reference_ignoring_case(app, world, people):
    client = client_for(app, world["alice"])
    page = search_page(client, reference=people["leyla"].reference.lower()).get_data(as_text=True)
    assert references(page) == [people["leyla"].reference]
    theirs = search_page(client, reference=people["theirs"].reference).get_data(as_text=True)
    assert references(theirs) == []
    assert "No case matches." in theirs


def test_a_name_without_a_birth_year_searches_nothing(app, world, people):
    page = search_page(
        client_for(app, world["alice"]), given_name="Leyla", family_name="Mammadova"
    ).get_data(as_text=True)
    assert references(page) == []
    assert "Nothing to search for" in page


def test_the_year_must_match(app, world, people):
    terms = {"given_name": "leyla", "family_name": "mammadova", "birth_year": "1997"}
    assert references(search_page(client_for(app, world["alice"]), **terms).get_data(True)) == []


def test_false_positive_candidates_are_dropped_after_decryption(app, db, world, monkeypatch):
    # One bit: every index value is shared by about half of all cases.
    monkeypatch.setitem(app.config, "HAVEN_BLIND_INDEX_BITS", 1)
    alice = world["alice"]
    wanted = open_as(
        db, alice, given_name="Nigar", family_name="Əliyeva", date_of_birth=date(1990, 1, 1)
    )
    for number in range(12):
        open_as(
            db,
            alice,
            given_name=f"Other{number}",
            family_name="Əliyeva",
            date_of_birth=date(1990, 1, 1),
        )
    value = db.session.scalar(
        select(CaseBlindIndex.value).where(
            CaseBlindIndex.case_id == wanted.id, CaseBlindIndex.index_name == "name_birth_year"
        )
    )
    sharing = db.session.scalar(
        select(func.count()).where(
            CaseBlindIndex.index_name == "name_birth_year", CaseBlindIndex.value == value
        )
    )
    assert sharing > 1, "the tiny index should give false positives"

    result = search_cases(
        alice, {"given_name": "nigar", "family_name": "aliyeva", "birth_year": 1990}
    )
    assert [case.id for case in result.cases] == [wanted.id]


def test_search_terms_stay_out_of_urls_audit_and_logs(app, db, world, people, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(app, world["alice"])
    terms = {"given_name": "Leyla", "family_name": "mammadova", "birth_year": "1996"}
    response = search_page(client, **terms, phone="0503217718")

    assert response.status_code == 200
    assert response.request.path == "/cases/"
    assert not response.request.query_string
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert references(page) == [people["leyla"].reference]
    # No link on the page carries the terms either.
    for href in re.findall(r'href="([^"]*)"', page):
        assert "mammadova" not in href.lower() and "1996" not in href

    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.searched")
    ).all()
    assert len(entries) == 1
    assert {"name_birth_year", "phone"} <= set(entries[0].field_name_list)
    dump = repr([(e.object_id, e.field_names, e.reason) for e in entries]).lower()
    for term in ("leyla", "mammadova", "1996", "0503217718", "321"):
        assert term not in dump
        assert term not in caplog.text.lower()


def test_a_search_that_finds_nothing_is_not_audited(app, db, world, people):
    search_page(client_for(app, world["alice"]), phone="+994 70 000 00 00")
    count = db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.searched")
    )
    assert count == 0


def test_a_search_needs_the_csrf_token(app, world, people):
    client = client_for(app, world["alice"])
    response = client.post("/cases/", data={"phone": "050 321 77 18"})
    assert response.status_code == 400
    assert people["leyla"].reference not in response.get_data(as_text=True)


def test_search_terms_in_the_query_string_search_nothing(app, world, people):
    page = client_for(app, world["alice"]).get(
        "/cases/?family_name=mammadova&given_name=leyla&birth_year=1996&status=closed"
    )
    assert references(page.get_data(as_text=True)) == []


@pytest.mark.parametrize("persona", ["charlie"])
def test_another_agency_never_finds_the_case(app, world, people, persona):
    terms = {"given_name": "leyla", "family_name": "mammadova", "birth_year": "1996"}
    page = search_page(client_for(app, world[persona]), **terms).get_data(as_text=True)
    assert references(page) == [people["theirs"].reference]
    assert people["leyla"].reference not in page
