"""Refusals and status decisions on the statistics dashboard, as an analyst reads them."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import Page, expect

from core.db import db
from reports.statistics import refresh_statistics
from tests.browser.pages import sign_in
from tests.browser.test_statistics import table_cells
from tests.reports import test_nrm_statistics as nrm

# The statistics tests' world: 12 refusals and 20 decisions in 2025, small cells included.
world = nrm.world

pytestmark = pytest.mark.browser


def test_an_analyst_reads_refusals_and_decisions_and_downloads_one(
    page: Page,
    live_server,
    world,
    tmp_path,
):
    refresh_statistics()
    db.session.commit()
    sign_in(page, live_server, world["analyst"])
    page.goto(f"{live_server}/statistics/?grain=quarter&first=2025&last=2025")
    expect(page.get_by_role("heading", name="Refusals to enter the NRM")).to_be_visible()
    reasons = page.get_by_role("region", name="Refusals: Reason for refusal")
    # The two small reasons are "<5" on the chart and in the table.
    small = reasons.locator("svg.chart text.chart__value--suppressed", has_text="<5")
    expect(small).to_have_count(2)
    shown = table_cells(page, "Refusals: Reason for refusal")
    assert ["Pressure from the family", "0", "x", "0", "0", "<5"] in shown
    with page.expect_download() as info:
        reasons.get_by_role("link", name="Refusals: Reason for refusal as CSV").click()
    download = info.value
    assert download.suggested_filename == (
        "haven-statistics-refusals-reason-2025-2025-by-quarter.csv"
    )
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows[2:] == shown[1:]

    expect(page.get_by_role("heading", name="Status decisions")).to_be_visible()
    decisions = table_cells(page, "Decisions by outcome and stage")
    assert decisions[-1][-1] == "20"
    times = table_cells(page, "Days from identification to decision")
    assert times[1][:3] == ["2025", "All decisions", "20"]
