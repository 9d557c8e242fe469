"""The coordinator's duplicate queue as a person uses it: reason, comparison, decision."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from casework.duplicates import DuplicateFlag, DuplicateStatus
from casework.services import open_case
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def two_agencies_one_person(db):
    """An NGO and the police each opened a case of the same person, spelled differently."""
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    police = make_agency(AgencyType.POLICE, name="Police Unit East")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    leyla = make_user(ngo, Role.CASEWORKER, email="leyla@example.org")
    pavel = make_user(police, Role.CASEWORKER, email="pavel@example.org")
    coordinator = make_user(nrm, Role.COORDINATOR, email="nrm@example.org")
    ngo_case = open_case(
        leyla,
        {"given_name": "Aygün", "family_name": "Məmmədova", "date_of_birth": date(1999, 9, 9)},
    )
    police_case = open_case(
        pavel,
        {"given_name": "AYGUN", "family_name": "MAMMADOVA", "date_of_birth": date(1999, 9, 9)},
    )
    db.session.commit()
    return {
        "leyla": leyla,
        "coordinator": coordinator,
        "ngo_case": (ngo_case.id, ngo_case.reference),
        "police_case": (police_case.id, police_case.reference),
    }



def test_the_owner_sees_only_a_notice(page: Page, live_server, two_agencies_one_person):
    world = two_agencies_one_person
    sign_in(page, live_server, world["leyla"])
    case_id, _reference = world["ngo_case"]
    page.goto(f"{live_server}/cases/{case_id}")

    expect(
        page.get_by_text("Possible duplicate — contact the national coordinator.")
    ).to_be_visible()
    content = page.content()
    assert world["police_case"][1] not in content
    assert "Police Unit East" not in content


def test_the_coordinator_compares_with_a_reason_and_marks_the_same_person(
    page: Page, live_server, db, two_agencies_one_person
):
    world = two_agencies_one_person
    ngo_reference, police_reference = world["ngo_case"][1], world["police_case"][1]
    sign_in(page, live_server, world["coordinator"])
    page.goto(f"{live_server}/duplicates/")

    expect(page.get_by_role("heading", name="Possible duplicates")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=ngo_reference)
    expect(row).to_contain_text(police_reference)
    expect(row).not_to_contain_text("MAMMADOVA")
    row.get_by_role("link", name="Compare").click()

    # No personal data before the reason is written; an empty reason is refused.
    expect(page.get_by_text("Məmmədova")).to_have_count(0)
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("alert")).to_contain_text("Write the reason for the comparison.")
    page.get_by_label("Why do you need to compare these cases?").fill(
        "The police asked for an NRM decision on their case"
    )
    page.get_by_role("button", name="Compare").click()

    table = page.get_by_role("table")
    expect(table).to_contain_text("Məmmədova")
    expect(table).to_contain_text("MAMMADOVA")
    expect(table).to_contain_text("Police Unit East")
    page.get_by_role("button", name="Same person").click()

    expect(page.get_by_text("Recorded: Same person.")).to_be_visible()
    expect(page.get_by_text("No possible duplicates are waiting.")).to_be_visible()
    db.session.expire_all()
    flag = db.session.scalar(select(DuplicateFlag))
    assert flag.status == DuplicateStatus.SAME_PERSON
