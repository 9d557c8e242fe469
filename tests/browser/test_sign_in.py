"""Sign-in as a person does it: password, authenticator code, language switch, errors."""

from __future__ import annotations

import re

import pyotp
import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import Page, expect

from core.models import AgencyType, Role
from tests.factories import DEFAULT_PASSWORD, make_agency, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def caseworker(db):
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    user = make_user(agency, Role.CASEWORKER, email="leyla@example.org")
    db.session.commit()
    return user


def sign_in_with_password(page: Page, live_server: str, email: str, password: str) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_it_signs_in_with_password_and_authenticator_code(page: Page, live_server, caseworker):
    sign_in_with_password(page, live_server, "leyla@example.org", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Enter your sign-in code")).to_be_visible()

    page.get_by_label("Code from your authenticator").fill(pyotp.TOTP(caseworker.totp_secret).now())
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_text("Təmiz Dünya").first).to_be_visible()


def test_it_shows_the_error_for_a_wrong_password_and_keeps_the_email(
    page: Page, live_server, caseworker
):
    sign_in_with_password(page, live_server, "leyla@example.org", "not the right password")

    expect(page.get_by_role("alert")).to_contain_text("E-mail or password is incorrect")
    expect(page.get_by_label("E-mail")).to_have_value("leyla@example.org")
    expect(page.get_by_label("Password")).to_have_value("")
    assert "/login" in page.url


def test_it_shows_a_translated_page_after_switching_to_azerbaijani(
    page: Page, live_server, app, caseworker
):
    with app.test_request_context(), force_locale("az"):
        heading_az = gettext("Sign in to Haven")
        sign_in_az = gettext("Sign in")
    assert heading_az != "Sign in to Haven", "the Azerbaijani catalog is not compiled"

    page.goto(f"{live_server}/login")
    page.get_by_label("Language").select_option("az")

    expect(page.get_by_role("heading", name=heading_az)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "az")
    expect(page.get_by_role("button", name=sign_in_az, exact=True)).to_be_visible()


def test_a_new_user_enrols_an_authenticator_with_the_qr_code(page: Page, live_server, db):
    agency = make_agency(AgencyType.SHELTER)
    make_user(agency, Role.CASEWORKER, email="new@example.org", with_totp=False)
    db.session.commit()

    sign_in_with_password(page, live_server, "new@example.org", DEFAULT_PASSWORD)
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    qr_code = page.locator("img.qr-code")
    expect(qr_code).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    assert qr_code.evaluate("image => image.naturalWidth") > 0, "the QR code did not render"

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from your authenticator").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_text(re.compile("recovery code", re.IGNORECASE)).first).to_be_visible()
    codes = page.locator(".recovery-codes li")
    expect(codes).to_have_count(10)


def test_a_language_chosen_before_signing_in_is_kept_and_saved(
    page: Page, live_server, app, db, caseworker
):
    with app.test_request_context(), force_locale("ru"):
        heading_ru = gettext("Enter your sign-in code")

    page.goto(f"{live_server}/login")
    page.get_by_label("Language").select_option("ru")
    page.locator("#email").fill("leyla@example.org")
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()

    expect(page.get_by_role("heading", name=heading_ru)).to_be_visible()
    db.session.expire_all()
    assert db.session.get(type(caseworker), caseworker.id).language == "ru"
