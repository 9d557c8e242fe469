"""The child path in the browser: a child's case cannot be closed before a best-interests
determination is recorded; once the caseworker records one, the closure goes through."""

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

CLOSURE_NOTE = "The child lives with her aunt in Sumqayıt now."


@pytest.fixture
def team(db):
    """An NGO with a supervisor and a caseworker; a 15-year-old's open case."""
    seed_reference_lists()
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    sabina = make_user(agency, Role.SUPERVISOR, email="sabina@example.org")
    leyla = make_user(agency, Role.CASEWORKER, email="leyla@example.org")
    sabina.display_name, leyla.display_name = "Sabina Quliyeva", "Leyla Hüseynova"
    case = open_case(
        leyla,
        {
            "given_name": "Aygün",
            "family_name": "Məmmədova",
            "estimated_age": "15",
            "identified_on": date(2026, 3, 2),
        },
    )
    db.session.commit()
    assert case.is_minor
    return {"sabina": sabina, "leyla": leyla, "case_id": case.id}


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def request_closure(page: Page, case_url: str) -> None:
    page.goto(case_url)
    page.get_by_role("link", name=re.compile("request closure", re.I)).click()
    page.locator("select[name=reason_code]").select_option("services_completed")
    page.locator("textarea[name=note]").fill(CLOSURE_NOTE)
    page.locator("form[method=post]").filter(has=page.locator("[name=reason_code]")).get_by_role(
        "button"
    ).click()


def test_a_childs_case_is_closed_only_after_a_best_interests_determination(
    browser: Browser, live_server, team
):
    case_url = f"{live_server}/cases/{team['case_id']}"
    sabina = signed_in(browser, live_server, team["sabina"])

    # The supervisor's closure is refused, on the form, with what she typed.
    request_closure(sabina, case_url)
    expect(sabina).to_have_url(f"{case_url}/closure")
    expect(sabina.locator(".field__error")).to_contain_text(
        "it cannot be closed until a best-interests determination is recorded"
    )
    expect(sabina.locator("textarea[name=note]")).to_have_value(CLOSURE_NOTE)

    # The caseworker sees the child-protection panel and records a determination.
    leyla = signed_in(browser, live_server, team["leyla"])
    leyla.goto(case_url)
    panel = leyla.get_by_role("region", name="Child protection")
    expect(panel).to_contain_text(re.compile("none recorded", re.I))
    panel.get_by_role("link", name="Child protection records").click()
    expect(leyla).to_have_url(f"{case_url}/child")
    bid = leyla.locator("form[action$='/child/best-interests']")
    bid.locator("select[name=deciding_body]").select_option("multidisciplinary_panel")
    bid.locator("input[name=decided_on]").fill("2026-03-20")
    bid.get_by_label("Family reunification in Azerbaijan").first.check()
    bid.get_by_label("Foster or kinship care").first.check()
    bid.locator("input[name=decision][value=reunification_azerbaijan]").check()
    bid.locator("textarea[name=reasoning]").fill("Her aunt can care for her; she wants that.")
    bid.locator("input[name=child_heard][value=yes]").check()
    bid.locator("select[name=heard_how]").select_option("with_psychologist")
    expect(bid).not_to_contain_text("Detention")
    bid.get_by_role("button").click()
    expect(leyla.locator(".flash")).to_contain_text("Best-interests determination recorded.")
    expect(leyla.locator("#best-interests")).to_contain_text("Family reunification in Azerbaijan")

    # Now the closure goes through: requested, then approved.
    request_closure(sabina, case_url)
    expect(sabina).to_have_url(case_url)
    expect(sabina.locator(".flash")).to_contain_text(re.compile("closure requested", re.I))
    sabina.goto(f"{case_url}/supervision")
    sabina.locator("form[action$='/approve']").get_by_role("button").click()
    expect(sabina.locator(".flash")).to_contain_text(re.compile("closed", re.I))
    sabina.goto(case_url)
    expect(sabina.locator("p.lead .badge")).to_have_text("Closed")
    leyla.context.close()
    sabina.context.close()
