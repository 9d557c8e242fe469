"""The status decision in the browser: an NGO caseworker sends the request for the formal
decision, the national coordinator accepts it, reads the shared sections and records
"recognised", and the caseworker sees the case's NRM status follow."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from casework.casefile_services import record_consent
from casework.models import local_today
from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from referrals import services
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user
from tests.referrals.builders import CONSENT

pytestmark = pytest.mark.browser

NAME = "Gülnarə"
ADDRESS = "Nizami küçəsi 77"


@pytest.fixture
def world(db):
    """Leyla's case at an NGO and her draft request to the national coordinator, sharing the
    identity section only."""
    seed_reference_lists()
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    leyla = make_user(ngo, Role.CASEWORKER, email="leyla@example.org")
    zaur = make_user(nrm, Role.COORDINATOR, email="zaur@example.org")
    case = open_case(leyla, {"given_name": NAME, "family_name": "Əliyeva", "address": ADDRESS})
    record_consent(leyla, case, "referral", CONSENT, agency_id=nrm.id)
    referral = services.create_referral(
        leyla,
        case,
        receiving_agency=nrm,
        service_type="status_decision",
        urgency="urgent",
        reason="Presumed victim identified yesterday.",
        sections=["identity"],
    )
    db.session.commit()
    return {
        "leyla": leyla,
        "zaur": zaur,
        "case_id": case.id,
        "reference": case.reference,
        "referral_id": referral.id,
    }


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def test_the_coordinator_decides_and_the_case_follows(browser: Browser, live_server, world):
    case_url = f"{live_server}/cases/{world['case_id']}"

    # The caseworker sends the request from the case page.
    leyla = signed_in(browser, live_server, world["leyla"])
    leyla.goto(case_url)
    leyla.get_by_role("link", name=re.compile("Formal status decision")).click()
    leyla.get_by_role("button", name="Send").click()
    expect(leyla.locator(".flash")).to_contain_text("Referral sent.")
    leyla.goto(case_url)
    expect(leyla.locator(".nrm-status")).to_contain_text("Decision pending")

    # The coordinator finds it among the status decisions, accepts it and decides.
    zaur = signed_in(browser, live_server, world["zaur"])
    zaur.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("Status decisions")
    ).click()
    zaur.get_by_role("link", name=world["reference"]).click()
    zaur.get_by_role("button", name="Accept").click()
    expect(zaur.locator(".flash")).to_contain_text("Referral accepted.")
    zaur.get_by_role("link", name="Record the status decision").click()
    shared = zaur.locator("section", has=zaur.get_by_role("heading", name="Shared case sections"))
    expect(shared).to_contain_text(NAME)
    expect(zaur.locator("main")).not_to_contain_text(ADDRESS)
    zaur.get_by_label("Recognised as a victim of trafficking").check()
    zaur.get_by_label("Date of the decision").fill(local_today().isoformat())
    zaur.get_by_role("button", name="Record the decision").click()
    expect(zaur.locator(".flash")).to_contain_text("Status decision recorded.")
    expect(zaur.locator("main")).not_to_contain_text(NAME)

    # The caseworker sees the case recognised.
    leyla.goto(case_url)
    expect(leyla.locator(".nrm-status")).to_contain_text("Recognised as a victim")
