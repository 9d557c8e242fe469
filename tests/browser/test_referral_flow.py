"""A referral in the browser: an NGO caseworker finds a health provider in the directory and
refers with the person's consent, sharing some sections; the provider's caseworker answers
from the inbox, sees exactly what was shared, works and completes it; the NGO sees the outcome.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import Browser, Page, expect

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from referrals import directory_services
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser

GIVEN_NAME, FAMILY_NAME = "Səadət", "Quliyeva"
MEDICAL_NOTES = "Allergic to penicillin"
ADDRESS = "Füzuli küçəsi 12, mənzil 4"
NARRATIVE = "Kept in a hostel near the port"
REASON = "Needs a medical check-up; speaks Azerbaijani."
OUTCOME_NOTE = "Check-up done; no treatment needed."


@pytest.fixture
def agencies(db):
    """Leyla (caseworker, NGO) owns the case; Elnarə is a caseworker of the health centre,
    which lists medical care in the directory for Baku; another clinic serves Ganja only."""
    seed_reference_lists()
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya NGO")
    health = make_agency(AgencyType.HEALTH, name="Şəfa Health Centre")
    ganja = make_agency(AgencyType.HEALTH, name="Gəncə Clinic")
    leyla = make_user(ngo, Role.CASEWORKER, email="leyla@example.org")
    elnara = make_user(health, Role.CASEWORKER, email="elnara@example.org")
    leyla.display_name, elnara.display_name = "Leyla Hüseynova", "Elnarə Rzayeva"
    for agency, region in ((health, "baku"), (ganja, "ganja_dashkasan")):
        directory_services.create_service(
            agency,
            service_type="medical",
            regions=[region],
            languages=["az", "ru"],
            accepts=["women", "men", "children", "families"],
            contact_hours="Mon-Sat 08:00-20:00",
        )
    case = open_case(
        leyla,
        {
            "given_name": GIVEN_NAME,
            "family_name": FAMILY_NAME,
            "date_of_birth": date(1996, 5, 17),
            "medical_notes": MEDICAL_NOTES,
            "address": ADDRESS,
            "exploitation_narrative": NARRATIVE,
        },
    )
    db.session.commit()
    return {"leyla": leyla, "elnara": elnara, "case_id": case.id, "reference": case.reference}


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def main_nav(page: Page):
    return page.get_by_role("navigation", name="Main")


def test_an_ngo_refers_to_a_health_provider_who_completes_it(
    browser: Browser, live_server, agencies
):
    reference = agencies["reference"]

    # The NGO caseworker records the person's consent to a referral to the health centre.
    ngo = signed_in(browser, live_server, agencies["leyla"])
    ngo.goto(f"{live_server}/cases/{agencies['case_id']}")
    ngo.get_by_role("navigation", name="Case file").get_by_role("link", name="Consent").click()
    ngo.get_by_label("Purpose", exact=True).select_option(label="Referral to a named agency")
    ngo.get_by_label("Agency the referral may go to").select_option(label="Şəfa Health Centre")
    ngo.get_by_label("Given", exact=True).check()
    ngo.get_by_label("In writing").check()
    ngo.get_by_role("button", name="Record decision").click()
    expect(ngo.get_by_text("Consent recorded.")).to_be_visible()

    # New referral: the service first, then the directory, filtered by region.
    ngo.goto(f"{live_server}/cases/{agencies['case_id']}")
    ngo.get_by_role("link", name="New referral").click()
    find = ngo.get_by_role("search")
    find.get_by_label("Service").select_option(label="Medical care")
    find.get_by_label("Region").select_option(label="Baku")
    find.get_by_role("button", name="Find providers").click()
    expect(ngo).to_have_url(re.compile(r"service_type=medical.*region=baku"))
    providers = ngo.get_by_role("group", name="Providers in the directory")
    expect(providers.get_by_role("radio")).to_have_count(2)  # the centre, and "another agency"
    expect(providers.get_by_role("table")).not_to_contain_text("Gəncə Clinic")
    expect(providers).to_contain_text("Mon-Sat 08:00-20:00")
    providers.get_by_label("Şəfa Health Centre").check()

    ngo.get_by_label("Urgent (answer within a day)").check()
    ngo.get_by_label("Why you refer the person").fill(REASON)
    ngo.get_by_label("Identity", exact=True).check()
    ngo.get_by_label("Health", exact=True).check()
    ngo.get_by_role("button", name="Save the draft").click()
    expect(ngo.get_by_text("Referral drafted.")).to_be_visible()
    referral_url = ngo.url
    ngo.get_by_role("button", name="Send").click()
    expect(ngo.get_by_text("Referral sent.")).to_be_visible()
    expect(ngo.locator("p.lead")).to_contain_text("Sent, waiting for an answer")

    # The health centre's caseworker sees it waiting, counted in the navigation.
    clinic = signed_in(browser, live_server, agencies["elnara"])
    referrals_link = main_nav(clinic).get_by_role("link", name=re.compile("Referrals"))
    expect(referrals_link).to_contain_text("1")
    referrals_link.click()
    clinic.get_by_role("link", name=reference).click()
    expect(clinic.get_by_text(REASON)).to_be_visible()
    expect(clinic.locator("main")).not_to_contain_text(MEDICAL_NOTES)
    clinic.get_by_role("button", name="Accept").click()
    expect(clinic.get_by_text("Referral accepted.")).to_be_visible()

    # Exactly the shared sections: identity and health; never the address or the story.
    shared = clinic.get_by_role("region", name="Shared case sections")
    expect(shared.get_by_role("heading", level=3)).to_have_count(2)
    expect(shared).to_contain_text(GIVEN_NAME)
    expect(shared).to_contain_text(MEDICAL_NOTES)
    main = clinic.locator("main")
    expect(main).not_to_contain_text(ADDRESS)
    expect(main).not_to_contain_text(NARRATIVE)
    assert ADDRESS not in clinic.content() and NARRATIVE not in clinic.content()

    clinic.get_by_role("button", name="Start the service").click()
    expect(clinic.get_by_text("Service started.")).to_be_visible()
    clinic.get_by_label("Outcome", exact=True).select_option(label="Service provided")
    clinic.get_by_label("Outcome note (the sending agency reads it)").fill(OUTCOME_NOTE)
    clinic.get_by_role("button", name="Complete").click()
    expect(clinic.get_by_text("Referral completed.")).to_be_visible()
    expect(clinic.locator("main")).not_to_contain_text(MEDICAL_NOTES)

    # The NGO caseworker has a notification and reads the outcome.
    ngo.goto(f"{live_server}/")
    # Accepted, then completed: two unread, counted next to the user menu.
    notifications = ngo.locator("header a.notification-count")
    expect(notifications).to_contain_text("2")
    notifications.click()
    item = ngo.locator("main").get_by_role("link", name=re.compile(reference)).first
    expect(ngo.locator("main")).to_contain_text("Your referral was completed")
    item.click()
    expect(ngo).to_have_url(referral_url)
    expect(ngo.locator("p.lead")).to_contain_text("Completed")
    expect(ngo.locator("main")).to_contain_text("Service provided")
    expect(ngo.locator("main")).to_contain_text(OUTCOME_NOTE)
