"""Refusals and reconsideration in the browser: a consular officer records an anonymous
refusal and finds it in the agency's list; a caseworker asks for the reconsideration of a
negative decision, the coordinator accepts it, reads the new information and recognises the
person, and the case follows."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from casework.casefile_services import record_consent
from casework.models import local_today
from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from referrals import decisions, services
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user
from tests.referrals.builders import CONSENT

pytestmark = pytest.mark.browser

NEW_INFORMATION = "She now names the recruiter who kept her passport in Antalya."


@pytest.fixture
def world(db):
    """Leyla's case at an NGO, refused by the coordinator today; a consular officer."""
    seed_reference_lists()
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    consulate = make_agency(AgencyType.CONSULAR, name="Consulate Istanbul")
    consulate.keeps_case_files = False
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    leyla = make_user(ngo, Role.CASEWORKER, email="leyla@example.org")
    elchin = make_user(consulate, Role.CASEWORKER, email="elchin@example.org")
    zaur = make_user(nrm, Role.COORDINATOR, email="zaur@example.org")
    case = open_case(leyla, {"given_name": "Gülnarə", "family_name": "Əliyeva"})
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
    services.send_referral(leyla, referral)
    services.accept_referral(zaur, referral)
    decisions.record_status_decision(
        zaur, referral, "not_recognised", local_today(), "insufficient_indicators"
    )
    db.session.commit()
    return {
        "leyla": leyla,
        "elchin": elchin,
        "zaur": zaur,
        "case_id": case.id,
        "reference": case.reference,
    }


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def test_a_consular_officer_records_a_refusal(browser: Browser, live_server, world):
    page = signed_in(browser, live_server, world["elchin"])
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("Refusals")
    ).click()
    page.get_by_role("link", name="Record a refusal").click()
    page.get_by_label("Month identified").fill("2026-01")
    page.get_by_label("Main reason for refusing").select_option("wants_to_go_home")
    page.get_by_label("Yes").check()
    page.get_by_label("Intake channel").select_option("consular_abroad")
    page.get_by_label("Forced labour").check()
    page.get_by_role("button", name="Record the refusal").click()
    expect(page.locator(".flash")).to_contain_text("recorded, without any personal data")
    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Wants to go home")
    expect(row).to_contain_text("Forced labour")


def test_a_negative_decision_is_reconsidered_and_overturned(browser: Browser, live_server, world):
    case_url = f"{live_server}/cases/{world['case_id']}"

    leyla = signed_in(browser, live_server, world["leyla"])
    leyla.goto(case_url)
    leyla.get_by_role("link", name="Ask for reconsideration").click()
    leyla.get_by_label("New information").fill(NEW_INFORMATION)
    leyla.get_by_label("Health").check()
    leyla.get_by_role("button", name="Ask for reconsideration").click()
    expect(leyla.locator(".flash")).to_contain_text("Reconsideration of")
    expect(leyla.locator(".reconsideration")).to_contain_text("Reconsideration requested")
    expect(leyla.locator(".nrm-status")).to_contain_text("Not recognised")

    zaur = signed_in(browser, live_server, world["zaur"])
    zaur.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("Status decisions")
    ).click()
    zaur.get_by_role("link", name=world["reference"]).click()
    zaur.get_by_role("button", name="Accept").click()
    expect(zaur.locator(".flash")).to_contain_text("Referral accepted.")
    zaur.get_by_role("link", name="Record the status decision").click()
    expect(zaur.locator(".reconsideration")).to_contain_text(NEW_INFORMATION)
    zaur.get_by_label("Recognised as a victim of trafficking").check()
    zaur.get_by_label("Date of the decision").fill(local_today().isoformat())
    zaur.get_by_role("button", name="Record the decision").click()
    expect(zaur.locator(".flash")).to_contain_text("Status decision recorded.")

    leyla.goto(case_url)
    expect(leyla.locator(".nrm-status")).to_contain_text("Recognised as a victim")
    expect(leyla.locator(".reconsideration")).to_contain_text("Reconsidered: decision overturned")
