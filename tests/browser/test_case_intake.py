"""Intake in the browser: open a case, read it, edit it, and meet a concurrent edit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from casework.reference import seed_reference_lists
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def people(db):
    seed_reference_lists()
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    alice = make_user(agency, Role.CASEWORKER, email="alice@example.org")
    bob = make_user(agency, Role.SUPERVISOR, email="bob@example.org")
    db.session.commit()
    return {"alice": alice, "bob": bob}



def test_intake_view_edit_and_conflict(browser: Browser, live_server, people):
    alice_context, bob_context = browser.new_context(), browser.new_context()
    alice, bob = alice_context.new_page(), bob_context.new_page()
    sign_in(alice, live_server, people["alice"])
    sign_in(bob, live_server, people["bob"])

    # Intake: open without the required fields first, then complete the form.
    alice.goto(f"{live_server}/cases/new")
    alice.get_by_label("Given name").fill("Nərmin")
    alice.get_by_label("Family name").fill("Əliyeva")
    alice.get_by_label("Medical notes").fill("Needs glasses")
    alice.get_by_role("button", name="Open the case").click()
    expect(alice.get_by_role("alert")).to_contain_text("Required to open the case.")
    expect(alice.get_by_label("Given name")).to_have_value("Nərmin")
    alice.get_by_label("Date of identification").fill("2026-01-15")
    alice.get_by_label("Region of identification").select_option("ganja_dashkasan")
    alice.get_by_label("Forced labour", exact=True).check()
    alice.get_by_label("Sex", exact=True).select_option("Feminine")
    alice.get_by_label("Citizenship").select_option("AZ")
    alice.get_by_label("Countries of destination").select_option(["RU", "TR"])
    alice.get_by_role("button", name="Open the case").click()

    # View.
    expect(alice.get_by_role("heading", name=re.compile(r"Case HVN-"))).to_be_visible()
    expect(alice.get_by_text("Nərmin")).to_be_visible()
    expect(
        alice.get_by_text("Gəncə-Daşkəsən").or_(alice.get_by_text("Ganja-Dashkasan"))
    ).to_be_visible()
    expect(alice.get_by_text("Presumed victim")).to_be_visible()
    case_url = alice.url

    # Both open the edit form on the same version.
    alice.goto(f"{case_url}/edit")
    bob.goto(f"{case_url}/edit")
    alice.get_by_label("Medical notes").fill("Alice: new glasses ordered")
    alice.get_by_role("button", name="Save", exact=True).click()
    expect(alice.get_by_text("Alice: new glasses ordered")).to_be_visible()

    bob.get_by_label("Medical notes").fill("Bob: eye test booked")
    bob.get_by_label("Languages spoken").fill("Azərbaycan, rus")
    bob.get_by_role("button", name="Save", exact=True).click()

    # Bob sees both values and keeps everything he typed.
    expect(bob.get_by_text("Someone else saved this case")).to_be_visible()
    table = bob.locator("table")
    expect(table).to_contain_text("Alice: new glasses ordered")
    expect(table).to_contain_text("Bob: eye test booked")
    expect(bob.get_by_label("Medical notes")).to_have_value("Bob: eye test booked")
    expect(bob.get_by_label("Languages spoken")).to_have_value("Azərbaycan, rus")

    bob.get_by_role("button", name="Save my version").click()
    expect(bob.get_by_text("Bob: eye test booked")).to_be_visible()
    alice_context.close()
    bob_context.close()
