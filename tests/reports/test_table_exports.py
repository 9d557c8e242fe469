"""Table downloads: CSV and XLSX hold the page's cells exactly; analysts and coordinators only."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from html.parser import HTMLParser

import pytest
from flask_babel import force_locale
from openpyxl import load_workbook
from sqlalchemy import select

from casework.casefile_services import add_service_record
from casework.services import open_case
from core.audit import AuditEntry
from core.db import db as database
from core.i18n import format_number
from core.models import AgencyType, Role
from reports.statistics import ReferralCount, refresh_statistics
from tests.factories import client_for, make_agency, make_user
from tests.reports.nrm_builders import add_decision, add_refusal

SECRET_NAME = "Zebulonia"
PERSONAS = ("caseworker", "police", "admin", "auditor", "analyst", "coordinator")
ALLOWED = {"analyst", "coordinator"}


@pytest.fixture
def world(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    police = make_agency(AgencyType.POLICE, name="Police Unit")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "caseworker": make_user(north, Role.CASEWORKER),
        "police": make_user(police, Role.CASEWORKER),
        "analyst": make_user(nrm, Role.ANALYST),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(north, Role.ADMIN),
        "auditor": make_user(nrm, Role.AUDITOR),
    }
    # 2025: 15 cases at the NGO and 3 by the police (a small cell); 2024: 12 at the NGO.
    cases = []
    for number in range(30):
        user = people["police"] if 15 <= number < 18 else people["caseworker"]
        year = 2025 if number < 18 else 2024
        data = {
            "given_name": SECRET_NAME if number == 0 else f"Person{number}",
            "family_name": "Testova",
            "sex": "Feminine" if number % 2 else "Masculine",
            "identified_on": date(year, 1 + number % 12, 10),
            "estimated_age": "30" if number % 3 else "16",
            "exploitation_form": ["ForcedLabour"] if number % 2 else ["SexualExploitation"],
        }
        cases.append(open_case(user, data))
    for case in cases[:12]:
        add_service_record(
            people["caseworker"],
            case,
            service_type="shelter",
            provider_agency_id=north.id,
            started_on=date(2025, 3, 1),
        )
    for case in cases[12:15]:
        add_service_record(
            people["caseworker"],
            case,
            service_type="medical",
            provider_agency_id=north.id,
            started_on=date(2025, 4, 1),
        )
    # 2025: 6 refusals (2 of them for a small reason) and 8 status decisions, 5 negative
    # (issue 7).
    for number in range(6):
        reason = "family_pressure" if number < 2 else "fear_of_traffickers"
        add_refusal(people["police"], date(2025, 3 + number, 1), refusal_reason=reason)
    for number, case in enumerate(cases[3:11]):
        outcome = "not_recognised" if number < 5 else "recognised"
        add_decision(case, date(2025, 11, 20), outcome, "insufficient_indicators")
    database.session.commit()
    refresh_statistics()
    # Referral outcomes are read from their pre-aggregated counts only.
    for state, hours, count in (("accepted", 20, 8), ("declined", 30, 4), ("sent", None, 2)):
        database.session.add(
            ReferralCount(
                month="2025-05",
                service_type="shelter",
                state=state,
                response_hours=hours,
                count=count,
            )
        )
    return people


# Reading the page and the files --------------------------------------------------------------


class TableParser(HTMLParser):
    """Collect every ``stat-table`` of a page: its caption and its rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows: list[list[str]] | None = None
        self._caption: str | None = None
        self._text: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and "stat-table" in classes:
            self._rows, self._caption = [], ""
        elif self._rows is None:
            return
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._text = []

    def handle_endtag(self, tag):
        if self._rows is None:
            return
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._text is not None:
            self._rows[-1].append("".join(self._text).strip())
            self._text = None
        elif tag == "table":
            self.tables[self._caption.strip()] = self._rows
            self._rows = None

    def handle_data(self, data):
        if self._in_caption:
            self._caption += data
        elif self._text is not None:
            self._text.append(data)


def page_tables(html: str) -> dict[str, list[list[str]]]:
    parser = TableParser()
    parser.feed(html)
    return parser.tables


# Digit grouping of en (1,234), az (1.234) and ru (1 234 with a no-break space).
GROUPING = re.compile(r"(?<=\d)[,.\u00a0\u202f ](?=\d{3}(?!\d))")


def plain(cell: str) -> str:
    """Return a page cell as the export writes it: digits without grouping."""
    return GROUPING.sub("", cell)


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(body: bytes) -> list[list[str]]:
    sheet = load_workbook(io.BytesIO(body)).active
    rows = []
    for row in sheet.iter_rows(values_only=True):
        values = ["" if value is None else str(value) for value in row]
        while values and values[-1] == "":
            values.pop()
        rows.append(values)
    return rows


def assert_same_cells(page: list[list[str]], export: list[list[str]], title: str) -> None:
    """The export is the title, then the page's table cell for cell (digits ungrouped)."""
    assert export[0] == [title]
    body = export[1:]
    assert len(body) == len(page)
    # The corner names the rows' dimension (and the columns' in the file: "Sex / Year").
    assert body[0][0].startswith(page[0][0])
    assert body[0][1:] == page[0][1:]
    assert body[1:] == [[plain(cell) for cell in row] for row in page[1:]]


def download(client, url: str, fmt: str):
    response = client.get(url.replace("table.csv", f"table.{fmt}"))
    assert response.status_code == 200, url
    return response, (read_csv if fmt == "csv" else read_xlsx)(response.get_data())


# The export is the page ----------------------------------------------------------------------


PANELS = ("sex", "agency_type", "exploitation_form", "age_band", "services")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("grain", ["year", "quarter", "month"])
def test_every_panel_export_equals_the_page(app, world, fmt, grain):
    client = client_for(app, world["analyst"])
    period = f"grain={grain}&first=2024&last=2025"
    tables = page_tables(client.get(f"/statistics/?{period}").get_data(as_text=True))
    for name in PANELS:
        _response, rows = download(
            client, f"/statistics/exports/table.csv?table={name}&{period}", fmt
        )
        title = rows[0][0]
        assert title in tables, (name, list(tables))
        assert_same_cells(tables[title], rows, title)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_crosstab_export_equals_the_page(app, world, fmt):
    client = client_for(app, world["coordinator"])
    args = "first=2024&last=2025&rows=sex&columns=agency_type"
    page = client.get(f"/statistics/crosstab?{args}").get_data(as_text=True)
    assert f"/statistics/exports/table.{fmt}?" in page
    tables = page_tables(page)
    _response, rows = download(client, f"/statistics/exports/table.csv?{args}", fmt)
    assert rows[0][0] in tables
    assert_same_cells(tables[rows[0][0]], rows, rows[0][0])


def test_the_referral_outcomes_export_equals_the_page(app, world):
    client = client_for(app, world["analyst"])
    tables = page_tables(client.get("/statistics/?first=2025&last=2025").get_data(as_text=True))
    _response, rows = download(
        client, "/statistics/exports/table.csv?table=referrals&first=2025&last=2025", "csv"
    )
    page = tables[rows[0][0]]
    assert rows[1:] == page
    assert rows[2] == ["Shelter", "14", "57%", "x", "0%", "20"]


def test_the_page_links_every_table_to_its_downloads(app, world):
    client = client_for(app, world["analyst"])
    page = client.get("/statistics/?grain=quarter&first=2024&last=2025").get_data(as_text=True)
    links = set(re.findall(r'href="(/statistics/exports/table\.(?:csv|xlsx)\?[^"]+)"', page))
    names = {re.search(r"table=(\w+)", link).group(1) for link in links}
    assert names == {
        "exploitation_form",
        "sex",
        "age_band",
        "minor",
        "citizenship",
        "region",
        "intake_channel",
        "agency_type",
        "nrm_status",
        "services",
        "referrals",
        # Refusals to enter the NRM and status decisions (issue 7).
        "refusals_reason",
        "refusals_sex",
        "refusals_age_band",
        "refusals_minor",
        "refusals_citizenship",
        "refusals_region",
        "refusals_agency_type",
        "refusals_intake_channel",
        "refusals_exploitation_form",
        "decisions",
        "decision_reasons",
        "decision_times",
        # The rest of the NRM path (issue 7): this world's minors' cases count in the
        # guardian table; it has no incoming report, return plan, measure or visit.
        "guardians_guardian",
    }
    # A panel per table of the rest of the NRM path, links only where published
    # (tests/reports/test_nrm_path_statistics.py checks the links with records).
    from reports.views import SUBJECT_TABLES

    path = {name for name in SUBJECT_TABLES if not name.startswith(("refusals_", "decision"))}
    assert len(path) == 15
    for name in path:
        assert f'id="panel-{name}"' in page, name
    assert len(links) == 2 * len(names)
    assert all("grain=quarter" in link and "first=2024" in link for link in links)
    for link in links:
        assert client.get(link.replace("&amp;", "&")).status_code == 200


@pytest.mark.parametrize("language", ["az", "ru"])
def test_the_export_speaks_the_readers_language_as_the_page_does(app, world, language):
    world["analyst"].language = language
    database.session.commit()
    client = client_for(app, world["analyst"])
    tables = page_tables(client.get("/statistics/?first=2024&last=2025").get_data(as_text=True))
    _response, rows = download(
        client, "/statistics/exports/table.csv?table=sex&first=2024&last=2025", "csv"
    )
    assert rows[0][0] != "Sex"
    assert_same_cells(tables[rows[0][0]], rows, rows[0][0])


# Disclosure control ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_small_cell_is_less_than_k_on_the_page_and_in_the_files(app, world, fmt):
    client = client_for(app, world["analyst"])
    period = "first=2025&last=2025"
    tables = page_tables(client.get(f"/statistics/?{period}").get_data(as_text=True))
    _response, rows = download(
        client, f"/statistics/exports/table.csv?table=agency_type&{period}", fmt
    )
    page_police = next(row for row in tables[rows[0][0]] if row[0].startswith("Police"))
    file_police = next(row for row in rows if row and row[0].startswith("Police"))
    assert page_police[-1] == file_police[-1] == "<5"
    # Neither the 3 nor the 15 that would give it back by difference is in the file.
    assert "3" not in file_police and "15" not in [cell for row in rows for cell in row]


def test_a_range_of_too_few_cases_exports_no_figure(app, world):
    client = client_for(app, world["analyst"])
    database.session.query(ReferralCount).delete()
    database.session.commit()
    _response, rows = download(
        client, "/statistics/exports/table.csv?table=sex&first=2024&last=2024", "csv"
    )
    assert any(cell.isdigit() for row in rows for cell in row)  # 12 cases in 2024: shown
    _response, rows = download(
        client, "/statistics/exports/table.csv?table=services&first=2024&last=2024", "csv"
    )
    assert rows[1] == ["Too few cases to show any figures."]
    assert not any(cell.isdigit() for row in rows for cell in row)


# Access, audit, names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/statistics/exports/table.{fmt}?table=sex&first=2025&last=2025",
        "/statistics/exports/table.{fmt}?rows=sex&columns=minor",
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("persona", PERSONAS)
def test_access_matrix(app, world, persona, fmt, url):
    response = client_for(app, world[persona]).get(url.format(fmt=fmt))
    assert response.status_code == (200 if persona in ALLOWED else 404)


def test_a_visitor_not_signed_in_is_sent_to_sign_in(client, world):
    response = client.get("/statistics/exports/table.csv?table=sex")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "query",
    [
        "table=cases",
        "table=../../etc",
        "",
        "rows=sex&columns=sex",
        "rows=sex&columns=given_name",
        "rows=sex",
    ],
)
def test_a_table_the_pages_do_not_show_is_not_found(app, world, query):
    response = client_for(app, world["analyst"]).get(f"/statistics/exports/table.csv?{query}")
    assert response.status_code == 404


def test_the_download_is_audited_not_cached_and_named_without_personal_data(app, db, world):
    client = client_for(app, world["analyst"])
    response = client.get("/statistics/exports/table.xlsx?table=sex&first=2024&last=2025")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype.endswith("spreadsheetml.sheet")
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="haven-statistics-sex-2024-2025.xlsx"'
    text = " ".join(cell for row in read_xlsx(response.get_data()) for cell in row)
    assert SECRET_NAME not in text and "Testova" not in text

    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export.table")).one()
    assert entry.user_id == world["analyst"].id
    assert entry.outcome == "allowed"
    assert entry.object_id == "xlsx:sex:2024-2025:year"
    assert json.loads(entry.field_names) == ["format_xlsx", "sex"]


def test_the_crosstab_file_is_named_by_its_two_dimensions_and_years(app, db, world):
    client = client_for(app, world["coordinator"])
    response = client.get(
        "/statistics/exports/table.csv?grain=month&first=2025&last=2025&rows=sex&columns=minor"
    )
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="haven-statistics-sex-by-minor-2025-2025.csv"'
    response = client.get(
        "/statistics/exports/table.csv?grain=month&first=2025&last=2025&table=sex"
    )
    assert response.headers["Content-Disposition"].endswith('-sex-2025-2025-by-month.csv"')
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "export.table").order_by(AuditEntry.id)
    )
    assert [entry.object_id for entry in entries] == [
        "csv:sex-by-minor:2025-2025:year",
        "csv:sex:2025-2025:month",
    ]


def test_a_refused_download_is_audited(app, db, world):
    client_for(app, world["caseworker"]).get("/statistics/exports/table.csv?table=sex")
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export.open")).one()
    assert entry.outcome == "denied"
    assert not db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "export.table")
    ).all()


# Number formatting ---------------------------------------------------------------------------


def test_counts_are_grouped_per_language_and_markers_stay(app):
    with app.test_request_context():
        for language, expected in (("en", "12,345"), ("az", "12.345"), ("ru", "12\u00a0345")):
            with force_locale(language):
                assert format_number(12345) == expected
                assert format_number("12345") == expected
                assert format_number("<5") == "<5"
                assert format_number("x") == "x"
                assert format_number("57%") == "57%"
                assert format_number(None) == ""
