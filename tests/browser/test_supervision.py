"""Supervision in the browser: assignment, closure on request, restriction and break-the-glass.

The supervision templates' wording is still moving, so their buttons and fields are found
through their form's action and their role, not their text.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import Browser, Page, expect

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser

FAMILY_NAME = "Məmmədova"


@pytest.fixture
def team(db):
    """An NGO with a supervisor and two caseworkers; Leyla's open case."""
    seed_reference_lists()
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    sabina = make_user(agency, Role.SUPERVISOR, email="sabina@example.org")
    leyla = make_user(agency, Role.CASEWORKER, email="leyla@example.org")
    kamran = make_user(agency, Role.CASEWORKER, email="kamran@example.org")
    sabina.display_name, leyla.display_name = "Sabina Quliyeva", "Leyla Hüseynova"
    kamran.display_name = "Kamran Həsənov"
    case = open_case(
        leyla,
        {"given_name": "Aygün", "family_name": FAMILY_NAME, "date_of_birth": date(1999, 9, 9)},
    )
    db.session.commit()
    return {
        "sabina": sabina,
        "leyla": leyla,
        "kamran": kamran,
        "case_id": case.id,
        "reference": case.reference,
    }



def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def form(page: Page, action_ends_with: str):
    return page.locator(f"form[action$='{action_ends_with}']")


def case_heading(page: Page, reference: str):
    return page.get_by_role("heading", level=1, name=re.compile(re.escape(reference)))


def test_a_supervisor_assigns_the_case_to_a_colleague(page: Page, live_server, team):
    sign_in(page, live_server, team["sabina"])
    case_url = f"{live_server}/cases/{team['case_id']}"
    page.goto(case_url)
    page.get_by_role("main").get_by_role("link", name=re.compile("supervision", re.I)).click()
    expect(page).to_have_url(f"{case_url}/supervision")
    lead = page.locator("p.lead")
    expect(lead).to_contain_text("Leyla Hüseynova")

    assign = form(page, "/assign")
    expect(assign.get_by_role("combobox")).to_have_value(str(team["leyla"].id))
    assign.get_by_role("combobox").select_option(label="Kamran Həsənov")
    assign.get_by_role("button").click()

    expect(page.locator(".flash")).to_contain_text("Kamran Həsənov")
    expect(lead).to_contain_text("Kamran Həsənov")
    expect(lead).not_to_contain_text("Leyla Hüseynova")
    expect(form(page, "/assign").get_by_role("combobox")).to_have_value(str(team["kamran"].id))

    # The case page records the assignment on its timeline.
    page.goto(case_url)
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.locator(".timeline__event").first).to_contain_text("Case assigned")
    expect(timeline.locator(".timeline__event").first).to_contain_text("Sabina Quliyeva")


def test_closure_requested_by_the_caseworker_and_approved(browser: Browser, live_server, team):
    case_url = f"{live_server}/cases/{team['case_id']}"
    leyla = signed_in(browser, live_server, team["leyla"])
    leyla.goto(case_url)
    leyla.get_by_role("link", name=re.compile("request closure", re.I)).click()
    expect(leyla).to_have_url(f"{case_url}/closure")
    leyla.locator("select[name=reason_code]").select_option("services_completed")
    leyla.locator("textarea[name=note]").fill("Back home with her family since March.")
    leyla.locator("form[method=post]").filter(has=leyla.locator("[name=reason_code]")).get_by_role(
        "button"
    ).click()

    expect(leyla).to_have_url(case_url)
    expect(leyla.locator(".flash")).to_contain_text(re.compile("closure requested", re.I))
    expect(leyla.locator("p.lead .badge")).to_have_text("Open")

    sabina = signed_in(browser, live_server, team["sabina"])
    sabina.goto(f"{case_url}/supervision")
    closure = sabina.get_by_role("heading", name=re.compile("closure", re.I)).locator("..")
    expect(closure).to_contain_text("Leyla Hüseynova")
    expect(closure).to_contain_text("Support completed")
    expect(closure).to_contain_text("Back home with her family since March.")
    form(sabina, "/approve").get_by_role("button").click()

    expect(sabina.locator(".flash")).to_contain_text(re.compile("closed", re.I))
    expect(sabina.locator("p.lead")).to_contain_text("Closed")
    expect(form(sabina, "/approve")).to_have_count(0)

    for page in (sabina, leyla):
        page.goto(case_url)
        expect(page.locator("p.lead .badge")).to_have_text("Closed")
    # A closed case is read, not changed: no edit and no closure request any more.
    expect(leyla.get_by_role("link", name=re.compile("request closure", re.I))).to_have_count(0)
    expect(leyla.get_by_role("link", name="Edit")).to_have_count(0)
    leyla.context.close()
    sabina.context.close()


def test_restricted_case_hidden_from_colleague_and_opened_by_breaking_the_glass(
    browser: Browser, live_server, team
):
    case_url = f"{live_server}/cases/{team['case_id']}"
    sabina = signed_in(browser, live_server, team["sabina"])
    sabina.goto(f"{case_url}/supervision")
    restrict = form(sabina, "/restrict")
    restrict.get_by_role("textbox").fill("A relative of a staff member of the agency")
    restrict.get_by_role("button").click()
    expect(sabina.locator("p.lead .badge")).to_have_text(re.compile("restricted", re.I))
    expect(form(sabina, "/unrestrict")).to_have_count(1)

    # Kamran, a colleague not assigned to the case, is told it does not exist.
    kamran = signed_in(browser, live_server, team["kamran"])
    response = kamran.goto(case_url)
    assert response is not None and response.status == 404
    expect(kamran.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(kamran.get_by_text(team["reference"])).to_have_count(0)
    assert FAMILY_NAME not in kamran.content()
    kamran.goto(f"{live_server}/cases/")
    expect(kamran.get_by_text(team["reference"])).to_have_count(0)

    # Leyla, assigned, still reads it.
    leyla = signed_in(browser, live_server, team["leyla"])
    leyla.goto(case_url)
    expect(case_heading(leyla, team["reference"])).to_be_visible()
    expect(leyla.get_by_text(FAMILY_NAME)).to_be_visible()

    # The supervisor is not assigned either: no direct read, only the glass.
    response = sabina.goto(case_url)
    assert response is not None and response.status == 404
    sabina.goto(f"{case_url}/supervision")
    sabina.get_by_role("link", name=re.compile("break the glass", re.I)).click()
    expect(sabina).to_have_url(f"{case_url}/break-glass")
    reason = sabina.locator("textarea[name=reason]")
    submit = sabina.locator("form[method=post]").filter(has=reason).get_by_role("button")

    reason.fill("x")
    submit.click()
    expect(sabina.get_by_role("alert")).to_be_visible()
    expect(sabina).to_have_url(f"{case_url}/break-glass")
    expect(sabina.get_by_text(FAMILY_NAME)).to_have_count(0)

    reason.fill("Court hearing tomorrow; the prosecutor asked for the file")
    submit.click()
    expect(sabina).to_have_url(case_url)
    expect(case_heading(sabina, team["reference"])).to_be_visible()
    expect(sabina.get_by_text(FAMILY_NAME)).to_be_visible()
    timeline = sabina.get_by_role("region", name="Timeline")
    expect(timeline.locator(".timeline__event").first).to_contain_text(
        re.compile("break-the-glass", re.I)
    )

    # The grant is the supervisor's alone: Kamran still gets "not found".
    response = kamran.goto(case_url)
    assert response is not None and response.status == 404
    for page in (sabina, kamran, leyla):
        page.context.close()
