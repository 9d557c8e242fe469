"""A caseworker records a follow-up visit (outcome and notes) and sees it on the case page."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import Page, expect

from casework.reference import seed_reference_lists
from casework.reintegration import start_reintegration_plan
from casework.services import open_case
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser

NOTE = "Works at the bakery; her employer pays on time."


@pytest.fixture
def returnee(db):
    """An NGO caseworker and her case, reintegration started two months ago."""
    seed_reference_lists()
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    aysel = make_user(agency, Role.CASEWORKER, email="aysel@example.org")
    case = open_case(aysel, {"given_name": "Günay", "family_name": "Məmmədova"})
    start_reintegration_plan(aysel, case, date(2026, 1, 10))
    db.session.commit()
    return {"aysel": aysel, "case_id": case.id, "reference": case.reference}


def test_a_caseworker_records_a_follow_up_visit(page: Page, live_server, returnee):
    sign_in(page, live_server, returnee["aysel"])
    page.goto(f"{live_server}/cases/{returnee['case_id']}")
    panel = page.get_by_role("region", name="Return and reintegration")
    expect(panel.get_by_text("Overdue", exact=True)).to_be_visible()
    panel.get_by_role("link", name="Return and reintegration").click()
    expect(page.get_by_role("heading", level=1, name="Return and reintegration")).to_be_visible()

    visits = page.get_by_role("region", name="Follow-up visits")
    visits.get_by_role("link", name="Record").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Follow-up visit due")
    page.get_by_label("Done on").fill("2026-02-11")
    page.get_by_label("Phone call").check()
    page.get_by_label("Outcome").select_option(label="Needs support")
    page.get_by_label("Notes").fill(NOTE)
    page.get_by_role("button", name="Save the visit").click()

    expect(page.get_by_text("Follow-up visit recorded.")).to_be_visible()
    row = page.get_by_role("region", name="Follow-up visits").get_by_role("row").nth(1)
    expect(row).to_contain_text("Needs support")
    expect(row).to_contain_text("Phone call")

    # The case page shows the next visit due and the visit on the timeline.
    page.goto(f"{live_server}/cases/{returnee['case_id']}")
    panel = page.get_by_role("region", name="Return and reintegration")
    expect(panel).to_contain_text("Next follow-up visit")
    expect(panel).to_contain_text("Needs support")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("Follow-up visit recorded")

    # The notes were saved: the return and reintegration page shows them with the visit.
    page.get_by_role("region", name="Return and reintegration").get_by_role("link").click()
    expect(page.get_by_role("region", name="Follow-up visits")).to_contain_text(NOTE)
