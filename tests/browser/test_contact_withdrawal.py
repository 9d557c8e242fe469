"""In the browser: a consulate withdraws a notification sent to the wrong agency before it
was acknowledged; the receiver sees it withdrawn. A case opened from a hotline call names
the call it came from."""

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

CIRCUMSTANCES = "Seasonal worker in Antalya, passport held by the farm owner."


@pytest.fixture
def world(db):
    seed_reference_lists()
    ngo = make_agency(AgencyType.NGO, name="Təmiz Dünya NGO")
    consulate = make_agency(AgencyType.CONSULAR, name="Consular Desk Istanbul")
    consulate.keeps_case_files = False
    make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "aysel": make_user(ngo, Role.CASEWORKER, email="aysel@example.org"),
        "elcin": make_user(consulate, Role.CASEWORKER, email="elcin@example.org"),
    }
    db.session.commit()
    return people


def signed_in(browser: Browser, live_server: str, user) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, live_server, user)
    return page


def test_the_consulate_withdraws_a_notification_not_yet_acknowledged(
    browser: Browser, live_server, world
):
    elcin = signed_in(browser, live_server, world["elcin"])
    elcin.goto(f"{live_server}/contacts/notifications/new")
    moment = (utcnow() - timedelta(hours=2)).astimezone(ZoneInfo("Asia/Baku"))
    elcin.get_by_label("Identified at (date and time)").fill(moment.strftime("%Y-%m-%dT%H:%M"))
    elcin.get_by_label("Circumstances").fill(CIRCUMSTANCES)
    elcin.get_by_label("Country where it happened or where the person is").select_option("TR")
    elcin.get_by_label("Sex", exact=True).select_option("Masculine")
    elcin.get_by_label("Forced labour", exact=True).check()
    elcin.get_by_label("Send to").select_option(label="Təmiz Dünya NGO")
    elcin.get_by_role("button", name="Send the notification").click()
    expect(elcin.locator(".flash")).to_contain_text("sent to Təmiz Dünya NGO")
    reference = re.search(r"INR-\d{4}-\d{6}", elcin.locator(".flash").inner_text()).group(0)

    status_url = elcin.url
    elcin.get_by_role("button", name="Withdraw the notification").click()
    expect(elcin.locator(".flash")).to_contain_text(f"{reference} withdrawn")
    expect(elcin.locator(".lead .badge")).to_have_text("Withdrawn")
    expect(elcin.get_by_role("button", name="Withdraw the notification")).to_have_count(0)
    elcin.goto(f"{live_server}/contacts/sent")
    expect(elcin.get_by_role("row", name=re.compile(reference))).to_contain_text("Withdrawn")

    # The receiver finds it withdrawn, with nothing left to do.
    aysel = signed_in(browser, live_server, world["aysel"])
    aysel.goto(status_url)
    expect(aysel.locator(".lead .badge")).to_have_text("Withdrawn")
    expect(aysel.get_by_text("Withdrawn by the sender")).to_be_visible()
    expect(aysel.get_by_role("button", name="Acknowledge")).to_have_count(0)
