"""The statistics dashboard as an analyst uses it: period, cross-tab, chart, a CSV download."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from casework.services import open_case
from core.models import AgencyType, Role
from reports.statistics import refresh_statistics
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def analyst(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    police = make_agency(AgencyType.POLICE, name="Police Unit")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    caseworker = make_user(north, Role.CASEWORKER)
    officer = make_user(police, Role.CASEWORKER)
    # 2025: 15 at the NGO and 3 by the police (a small cell); 2024: 12 at the NGO.
    for number in range(30):
        year = 2025 if number < 18 else 2024
        open_case(
            officer if 15 <= number < 18 else caseworker,
            {
                "given_name": f"Person{number}",
                "family_name": "Testova",
                "sex": "Feminine" if number % 2 else "Masculine",
                "identified_on": date(year, 1 + number % 12, 10),
                "estimated_age": "30" if number % 3 else "16",
                "exploitation_form": ["ForcedLabour"] if number % 2 else ["SexualExploitation"],
            },
        )
    db.session.commit()
    refresh_statistics()
    user = make_user(nrm, Role.ANALYST)
    db.session.commit()
    return user


def table_cells(page: Page, caption: str) -> list[list[str]]:
    """Return the cell texts of the page's table with that caption, row by row."""
    table = page.locator("table.stat-table").filter(has=page.locator("caption", has_text=caption))
    return table.first.evaluate(
        "t => [...t.rows].map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def test_an_analyst_reads_the_statistics_and_downloads_a_table(
    page: Page, live_server, analyst, tmp_path
):
    sign_in(page, live_server, analyst)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Statistics").click()
    expect(page.get_by_role("heading", name="Statistics", exact=True)).to_be_visible()

    # The period: 2025 alone, by quarter.
    page.get_by_label("Shown by").select_option("quarter")
    page.get_by_label("From year").select_option("2025")
    page.get_by_label("To year").select_option("2025")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"grain=quarter&first=2025&last=2025"))
    sex = page.get_by_role("region", name="Sex", exact=True)
    expect(sex.get_by_role("columnheader", name="2025 Q1")).to_be_visible()
    # The chart is server-rendered SVG beside the table, with a bar per published row.
    chart = sex.locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.chart__bar").first).to_be_visible()
    # The police's 3 cases are a small cell, on the chart and in the table.
    agency = page.get_by_role("region", name="Identifying agency type")
    small = agency.locator("svg.chart text.chart__value--suppressed", has_text="<5")
    expect(small).to_have_count(1)

    # The sex table as CSV: the same cells as on the page.
    shown = table_cells(page, "Sex")
    with page.expect_download() as info:
        sex.get_by_role("link", name="Sex as CSV").click()
    download = info.value
    assert download.suggested_filename == "haven-statistics-sex-2025-2025-by-quarter.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["Sex"]
    assert rows[1][0] == "Sex / Quarter"
    assert rows[1][1:] == shown[0][1:]
    assert rows[2:] == shown[1:]

    # A cross-tab of two dimensions.
    page.get_by_role("link", name="Cross-tabulate two dimensions").click()
    page.get_by_label("Rows").select_option(label="Sex")
    page.get_by_label("Columns").select_option(label="Identifying agency type")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Cross-tabulation")).to_be_visible()
    crosstab = table_cells(page, "Sex × Identifying agency type")
    assert crosstab[0][0] == "Sex"
    assert any(cell.startswith("Police") for cell in crosstab[0])
    assert crosstab[-1][0] == "Total"
    with page.expect_download() as info:
        page.get_by_role("link", name="Sex × Identifying agency type as CSV").click()
    assert info.value.suggested_filename == "haven-statistics-sex-by-agency-type-2025-2025.csv"
