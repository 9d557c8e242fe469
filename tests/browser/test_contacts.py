"""Incoming reports in the browser: a hotline operator's quick intake becomes a case at the
agency it was routed to; a consulate's notification reaches the national coordinator, who
opens a case for an assistance agency while the consulate sees only the status."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from casework.reference import seed_reference_lists
from core.db import utcnow
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser

STORY = "Kept in a flat in Sumqayıt; her passport is with the 'employer'."
RETURNEE = "Construction worker in Istanbul, unpaid for months, asked for a travel document."


@pytest.fixture
def world(db):
    seed_reference_lists()
    hotline = make_agency(AgencyType.HOTLINE, name="Səs Ver Helpline")
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya NGO")
    consulate = make_agency(AgencyType.CONSULAR, name="Consular Desk Istanbul")
    consulate.keeps_case_files = False
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "lala": make_user(hotline, Role.CASEWORKER, email="lala@example.org"),
        "aysel": make_user(ngo, Role.CASEWORKER, email="aysel@example.org"),
        "elcin": make_user(consulate, Role.CASEWORKER, email="elcin@example.org"),
        "zaur": make_user(nrm, Role.COORDINATOR, email="zaur@example.org"),
    }
    db.session.commit()
    return people


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def nav(page: Page, name: str):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(name))


def test_a_hotline_call_becomes_a_case_at_the_routed_agency(browser: Browser, live_server, world):
    lala = signed_in(browser, live_server, world["lala"])
    nav(lala, "Hotline calls").click()
    lala.get_by_role("link", name="Record a call").click()
    lala.locator("#call_language-0").check()  # Azerbaijani
    lala.locator("#caller_relation-0").check()  # the person concerned
    lala.get_by_label("Name of the person concerned, if given").fill("Günay Səfərova")
    lala.get_by_label("What happened").fill(STORY)
    lala.locator("#callback_consent-0").check()  # yes
    lala.get_by_label("How to call back safely").fill("+994 55 210 44 17 after 19:00")
    lala.get_by_label("Country where it happened or where the person is").select_option("AZ")
    lala.get_by_label("Region (in Azerbaijan)").select_option("absheron_khizi")
    lala.get_by_label("Sex", exact=True).select_option("Feminine")
    lala.get_by_label("Forced labour", exact=True).check()
    lala.get_by_label("Route to").select_option(label="Təmiz Dünya NGO")
    lala.get_by_role("button", name="Save the call").click()
    expect(lala.locator(".flash")).to_contain_text("routed to Təmiz Dünya NGO")
    reference = re.search(r"INR-\d{4}-\d{6}", lala.locator(".flash").inner_text()).group(0)

    aysel = signed_in(browser, live_server, world["aysel"])
    expect(nav(aysel, "Incoming reports")).to_contain_text("1")
    nav(aysel, "Incoming reports").click()
    aysel.get_by_role("link", name=reference).click()
    expect(aysel.get_by_text(STORY)).to_be_visible()
    aysel.get_by_role("link", name="Open a case").click()
    expect(aysel.get_by_label("Given name")).to_have_value("Günay")
    expect(aysel.get_by_label("Intake channel")).to_have_value("hotline")
    aysel.get_by_role("button", name="Open the case").click()
    expect(aysel.locator(".flash")).to_contain_text("opened")
    expect(aysel.get_by_role("heading", level=1)).to_contain_text("HVN-")
    expect(aysel.get_by_text("Hotline or call centre")).to_be_visible()

    # The operator's list shows the call became a case.
    lala.goto(f"{live_server}/contacts/calls")
    expect(lala.get_by_role("row", name=re.compile(reference))).to_contain_text("Case opened")


def test_a_consulate_notification_reaches_the_coordinator_who_opens_a_case(
    browser: Browser, live_server, world
):
    elcin = signed_in(browser, live_server, world["elcin"])
    expect(nav(elcin, "Cases")).to_have_count(0)
    nav(elcin, "Notifications sent").click()
    elcin.get_by_role("link", name="Notify a presumed victim").click()
    moment = (utcnow() - timedelta(hours=3)).astimezone(ZoneInfo("Asia/Baku"))
    elcin.get_by_label("Identified at (date and time)").fill(moment.strftime("%Y-%m-%dT%H:%M"))
    elcin.get_by_label("Incoming returnee").check()
    elcin.get_by_label("Name, if known").fill("Rövşən Məmmədov")
    elcin.get_by_label("Circumstances").fill(RETURNEE)
    elcin.get_by_label("Country where it happened or where the person is").select_option("TR")
    elcin.get_by_label("Sex", exact=True).select_option("Masculine")
    elcin.get_by_label("Forced labour", exact=True).check()
    elcin.get_by_role("button", name="Send the notification").click()
    expect(elcin.locator(".flash")).to_contain_text("sent to NRM Office")
    reference = re.search(r"INR-\d{4}-\d{6}", elcin.locator(".flash").inner_text()).group(0)
    status_url = elcin.url

    zaur = signed_in(browser, live_server, world["zaur"])
    nav(zaur, "Incoming reports").click()
    zaur.get_by_role("link", name=reference).click()
    expect(zaur.get_by_text(RETURNEE)).to_be_visible()
    zaur.get_by_role("button", name="Acknowledge").click()
    expect(zaur.locator(".flash")).to_contain_text("acknowledged")
    zaur.get_by_role("link", name="Open a case").click()
    expect(zaur.get_by_label("Family name")).to_have_value("Məmmədov")
    zaur.get_by_label("Agency that will hold the case").select_option(label="Təmiz Dünya NGO")
    zaur.get_by_role("button", name="Open the case").click()
    expect(zaur.locator(".flash")).to_contain_text("opened")
    expect(zaur.locator(".lead")).to_contain_text("Case opened")

    # The consulate sees the status, not the case nor what it became.
    elcin.goto(status_url)
    expect(elcin.locator(".lead")).to_contain_text("Case opened")
    expect(elcin.get_by_text(RETURNEE)).to_have_count(0)
    expect(elcin.get_by_role("link", name="Open the case")).to_have_count(0)
