"""Steps browser tests share."""

from __future__ import annotations

import pyotp
from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD


def sign_in(page: Page, live_server: str, user) -> None:
    """Sign in through the real forms: password, then the authenticator code."""
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code from your authenticator").fill(pyotp.TOTP(user.totp_secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
