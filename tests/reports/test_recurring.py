"""Recurring reports: the annual and quarterly PDFs, their protected numbers, rates, languages."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from flask_babel import force_locale
from pypdf import PdfReader
from sqlalchemy import select

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.audit import AuditEntry
from core.db import db as database
from core.models import AgencyType, Role
from reports import recurring
from reports.disclosure import TOTAL
from reports.jobs import REPORT_KINDS, ReportError, ReportJob
from reports.population import POPULATION_AGE_BANDS, POPULATION_SEXES, save_population
from reports.statistics import Period, Statistics, refresh_statistics
from tests.factories import client_for, make_agency, make_user

K = 5
SOURCE = "Dövlət Statistika Komitəsi (Госкомстат), 1 yanvar 2026"
# 100,000 women and 200,000 men per age band.
FIGURES = {
    (sex, band): (100_000 if sex == "Feminine" else 200_000)
    for sex in POPULATION_SEXES
    for band in POPULATION_AGE_BANDS
}
# The rate the 3 boys would have (3 / 300,000 × 100,000): it must never be printed.
HIDDEN_RATE = "1.00"


@pytest.fixture
def world(db):
    """2025: 20 women aged 30 in February; 10 men aged 30 and 3 boys aged 16 in May."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "caseworker": make_user(north, Role.CASEWORKER),
        "analyst": make_user(nrm, Role.ANALYST),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(nrm, Role.ADMIN),
    }
    seed_reference_lists()
    for number in range(33):
        female = number < 20
        open_case(
            people["caseworker"],
            {
                "given_name": f"Person{number}",
                "sex": "Feminine" if female else "Masculine",
                "estimated_age": "16" if number >= 30 else "30",
                "identified_on": date(2025, 2 if female else 5, 10),
                "exploitation_form": ["ForcedLabour"],
            },
        )
    save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    refresh_statistics()
    database.session.commit()
    return people


def _text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def _build(app, builder, *args, language="en"):
    with app.test_request_context(), force_locale(language):
        return builder(*args)


# Lines that legitimately hold small numbers: headers, footers, titles, the method note.
_NOT_COUNTS = re.compile(r"Page \d|Generated|HVN-|Quarter|quarters|Q\d|^\d+\.\d* |^Population:")
_INTEGER = re.compile(r"^\d{1,3}(,\d{3})*$")


def _small_numbers(text: str) -> list[str]:
    """Return every line that shows a whole number from 1 to k-1 outside the method note."""
    body = text.split("Method and disclosure control")[0]
    found = []
    for line in body.splitlines():
        if _NOT_COUNTS.search(line):
            continue
        for token in line.split():
            if _INTEGER.match(token) and 0 < int(token.replace(",", "")) < K:
                found.append(line)
    return found


def test_the_annual_report_shows_its_sections_and_no_small_number(app, world):
    filename, content_type, body = _build(
        app, recurring.build_annual_report, 2025, world["analyst"]
    )
    assert filename == "haven-annual-2025.pdf"
    assert content_type == "application/pdf"
    text = _text(body)
    for heading in (
        "Annual national report on trafficking in",
        "Year 2025",
        "Key figures",
        "Victims per 100,000 population",
        "Form of exploitation",
        "Citizenship of victims",
        "Referrals and their outcomes",
        "Services delivered",
        "Method and disclosure control",
        "Confidential",
        "HVN-NR-2025",
    ):
        assert heading in text, heading
    assert "<5" in text
    # The women's rate (20 / 600,000) is published; the boys' (3 cases) is not.
    assert "3.33" in text
    assert HIDDEN_RATE not in text
    assert _small_numbers(text) == []
    entry = database.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "report.annual_generated")
    ).one()
    assert entry.object_id == "HVN-NR-2025"
    assert entry.user_id == world["analyst"].id


def test_the_small_number_check_finds_a_leak():
    assert _small_numbers("Male 3 10\nPage 1 of 2\nFemale 20") == ["Male 3 10"]


def test_the_quarterly_report_gives_the_quarter_and_the_year_to_date(app, world):
    filename, _type, body = _build(
        app, recurring.build_quarterly_report, 2025, 2, world["coordinator"]
    )
    assert filename == "haven-quarterly-2025-q2.pdf"
    text = _text(body)
    for heading in (
        "Quarterly report on the national action plan",
        "Quarter 2 of 2025",
        "Year to date (quarters 1 to 2)",
        "Victims identified, by quarter",
        "HVN-AP-2025-Q2",
    ):
        assert heading in text, heading
    assert HIDDEN_RATE not in text
    assert _small_numbers(text) == []


def test_quarter_tables_are_sums_of_the_published_months(world):
    stats = Statistics(Period(2025, 2025, "quarter"), k=K)
    table = recurring._year_to_date(stats, "sex", 2025, 2)
    assert [code for code, _label in table.columns] == ["2025-Q1", "2025-Q2"]
    assert table.value("Feminine", "2025-Q1") == 20
    assert table.value("Masculine", "2025-Q2") == 13
    assert table.value(TOTAL, TOTAL) == 33
    # Q1 alone has no men: the year to date is not the year's total when later months count.
    q1 = recurring._year_to_date(stats, "sex", 2025, 1)
    assert q1.value(TOTAL, TOTAL) == 20
    ages = recurring._year_to_date(stats, "age_band", 2025, 2)
    # A quarter sums three months: one hidden month hides the sum ("x").
    assert ages.display("12-17", "2025-Q2") == "x"
    assert ages.value("12-17", "2025-Q2") is None
    assert ages.value("12-17", TOTAL) is None


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("az", ["Qadın", "Kişi", "Cəmi", "Məxfi"]),
        ("ru", ["Женский", "Мужской", "Конфиденциально", "Страница"]),
    ],
)
def test_azerbaijani_and_russian_text_round_trips(app, world, language, words):
    for builder, args in (
        (recurring.build_annual_report, (2025,)),
        (recurring.build_quarterly_report, (2025, 1)),
    ):
        _name, _type, body = _build(app, builder, *args, world["analyst"], language=language)
        text = _text(body)
        assert SOURCE in text.replace("\n", " ")
        for word in words:
            assert word in text, word


@pytest.mark.parametrize(
    ("builder", "args"),
    [
        (recurring.build_annual_report, ("1999",)),
        (recurring.build_annual_report, ("2025; drop",)),
        (recurring.build_annual_report, (date.today().year + 1,)),
        (recurring.build_quarterly_report, (2025, 5)),
        (recurring.build_quarterly_report, (2025, "Q1")),
    ],
)
def test_invalid_periods_are_refused(app, world, builder, args):
    with pytest.raises(ReportError):
        _build(app, builder, *args, world["analyst"])


def test_both_kinds_are_registered_for_the_statistics_roles(world):
    for code in (recurring.ANNUAL, recurring.QUARTERLY):
        kind = REPORT_KINDS[code]
        assert kind.may_request(world["analyst"])
        assert kind.may_request(world["coordinator"])
        assert not kind.may_request(world["caseworker"])
        assert not kind.may_request(world["admin"])


def test_an_analyst_requests_the_annual_report_from_the_reports_page(app, world):
    client = client_for(app, world["analyst"])
    response = client.post_form(
        "/reports/",
        {"kind": recurring.ANNUAL, "first": "2025", "last": "2025", "grain": "year"},
    )
    assert response.status_code == 302
    job = database.session.scalar(select(ReportJob))
    assert job.status == "done", job.error_code
    assert job.file.filename == "haven-annual-2025.pdf"
    assert "Year 2025" in _text(job.file.content)


def test_a_caseworker_cannot_request_them(app, world):
    client = client_for(app, world["caseworker"])
    response = client.post_form(
        "/reports/",
        {"kind": recurring.QUARTERLY, "first": "2025", "last": "2025", "grain": "year"},
    )
    assert response.status_code == 404
    assert database.session.scalar(select(ReportJob)) is None


def test_an_analyst_requests_the_second_quarter_from_the_reports_page(app, world):
    client = client_for(app, world["analyst"])
    form = client.get("/reports/").get_data(as_text=True)
    assert 'name="quarter"' in form
    assert f'data-shown-for="kind:{recurring.QUARTERLY}"' in form
    response = client.post_form(
        "/reports/",
        {"kind": recurring.QUARTERLY, "first": "2025", "last": "2025", "grain": "year"}
        | {"quarter": "2"},
    )
    assert response.status_code == 302
    job = database.session.scalar(select(ReportJob))
    assert job.status == "done", job.error_code
    assert job.params["quarter"] == 2
    assert job.file.filename == "haven-quarterly-2025-q2.pdf"
    text = _text(job.file.content)
    assert "Quarter 2 of 2025" in text
    assert "Year to date (quarters 1 to 2)" in text
    # The tables' quarter columns: Q1 and Q2, nothing later.
    assert "Q1" in text and "Q2" in text
    assert not re.search(r"Q[34]\b|Quarter [34]|quarters 1 to [134]", text)


@pytest.mark.parametrize("quarter", ["5", "0", "Q2", "", None])
def test_a_quarter_outside_1_to_4_is_refused_by_the_form(app, world, quarter):
    client = client_for(app, world["analyst"])
    data = {"kind": recurring.QUARTERLY, "first": "2025", "last": "2025", "grain": "year"}
    if quarter is not None:
        data["quarter"] = quarter
    response = client.post_form("/reports/", data)
    assert response.status_code == 400
    assert 'id="quarter-error"' in response.get_data(as_text=True)
    assert database.session.scalar(select(ReportJob)) is None


def test_other_kinds_do_not_carry_the_quarter(app, world):
    client = client_for(app, world["analyst"])
    client.post_form(
        "/reports/",
        {"kind": recurring.ANNUAL, "first": "2025", "last": "2025", "grain": "year"}
        | {"quarter": "3"},
    )
    job = database.session.scalar(select(ReportJob))
    assert "quarter" not in job.params
