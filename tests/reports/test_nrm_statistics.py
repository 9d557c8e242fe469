"""Statistics of anonymous refusals and status decisions (issue 7): counts, the same
suppression attacks as for cases, medians withheld under k, freshness, downloads, the
annual report."""

from __future__ import annotations

import io
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask_babel import force_locale
from pypdf import PdfReader
from sqlalchemy import delete, func, select

from casework.reference import seed_reference_lists
from casework.refusals import NrmRefusal
from casework.services import open_case
from core.db import db as database
from core.models import AgencyType, Role
from referrals.decisions import Decision, median_and_p90
from reports import recurring
from reports.disclosure import COUNT, TOTAL, combine
from reports.statistics import (
    DECISION,
    DECISION_REASON,
    DECISION_SUBJECT,
    REFUSAL_SUBJECT,
    DecisionCount,
    DirtyMonth,
    Margin,
    Period,
    Statistics,
    refresh_if_stale,
    refresh_statistics,
)
from tests.factories import client_for, make_agency, make_user
from tests.reports.nrm_builders import add_decision, add_refusal
from tests.reports.test_disclosure import determined_by_linear_algebra, recover_by_subtraction
from tests.reports.test_recurring import _small_numbers
from tests.reports.test_table_exports import page_tables, plain, read_csv, read_xlsx

K = 5
SECRET_NAME = "Zebulonia"
SECRET_REASON = "Quietly-kept-reason-Xylo"
IDENTIFIED = date(2025, 2, 10)
# Days from identification to decision of the 2025 decisions, by outcome.
RECOGNISED_DAYS = [20, 22, 25, 25, 30, 31, 33, 35, 40, 41, 45, 60]
NEGATIVE_DAYS = [15, 18, 21, 28, 29, 50]
RECONSIDERED_DAYS = [120, 130]
PERSONAS = ("caseworker", "police", "admin", "auditor", "analyst", "coordinator")
ALLOWED = {"analyst", "coordinator"}


@pytest.fixture
def world(db):
    """2025: 12 refusals (7 fear, 3 wanting to go home, 2 family pressure: the two small
    reasons in April) and 20 decisions (12 recognised and 6 not on first decision, 2
    recognised on reconsideration: a small cell); 2024: 3 refusals, 3 decisions (too few)."""
    seed_reference_lists()
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
    for _ in range(7):
        add_refusal(people["caseworker"], date(2025, 3, 14))
    for _ in range(3):
        add_refusal(people["caseworker"], date(2025, 4, 2), refusal_reason="wants_to_go_home")
    for _ in range(2):
        add_refusal(
            people["police"],
            date(2025, 4, 20),
            refusal_reason="family_pressure",
            sex="Masculine",
            age_band="12-17",
            exploitation_form=["ForcedLabour", "ForcedBegging"],
        )
    for _ in range(3):
        add_refusal(people["caseworker"], date(2024, 6, 1))
    cases = [
        open_case(
            people["caseworker"],
            {
                "given_name": SECRET_NAME if number == 0 else f"Person{number}",
                "sex": "Feminine",
                "estimated_age": "30",
                "identified_on": IDENTIFIED,
            },
        )
        for number in range(18)
    ]
    for case, days in zip(cases[:12], RECOGNISED_DAYS, strict=True):
        add_decision(case, IDENTIFIED + timedelta(days=days))
    for number, (case, days) in enumerate(zip(cases[12:], NEGATIVE_DAYS, strict=True)):
        reason = "other_crime" if number < 2 else "insufficient_indicators"
        decision = add_decision(case, IDENTIFIED + timedelta(days=days), "not_recognised", reason)
        decision.reason = SECRET_REASON
    for case, days in zip(cases[12:14], RECONSIDERED_DAYS, strict=True):
        add_decision(case, IDENTIFIED + timedelta(days=days), stage="reconsideration")
    for number in range(3):
        case = open_case(
            people["caseworker"],
            {"given_name": f"Early{number}", "sex": "Masculine", "identified_on": date(2024, 1, 5)},
        )
        add_decision(case, date(2024, 3, 1))
    database.session.commit()
    refresh_statistics()
    database.session.commit()
    people["cases"] = cases
    return people


def refusals(first=2025, last=2025, grain="year") -> Statistics:
    return Statistics(Period(first, last, grain), k=K, subject=REFUSAL_SUBJECT)


def decisions(first=2025, last=2025, grain="year") -> Statistics:
    return Statistics(Period(first, last, grain), k=K, subject=DECISION_SUBJECT)


# Counts --------------------------------------------------------------------------------------


def test_refusals_are_counted_by_reason_sex_age_and_form(world):
    stats = refusals()
    reason = stats.dimension_table("reason")
    assert reason.value("fear_of_traffickers", TOTAL) == 7
    assert reason.display("wants_to_go_home", TOTAL) == "<5"
    assert reason.display("family_pressure", TOTAL) == "<5"
    assert reason.value(TOTAL, TOTAL) == 12
    sex = stats.dimension_table("sex")
    # 12 - 10 would give the 2 back: the 10 is withheld too, as for cases.
    assert sex.display("Feminine", TOTAL) == "x"
    assert sex.display("Masculine", TOTAL) == "<5"
    assert sex.value(TOTAL, TOTAL) == 12
    minor = stats.dimension_table("minor")
    assert minor.display("yes", TOTAL) == "<5"
    assert minor.display("no", TOTAL) == "x"
    agency = stats.dimension_table("agency_type")
    assert agency.display("ngo", TOTAL) == "x"
    assert agency.display("police", TOTAL) == "<5"
    assert agency.value("hotline", TOTAL) == 0
    forms = stats.dimension_table("exploitation_form")
    # A refusal may have two forms: forms are counted, the population is refusals.
    assert forms.display("ForcedBegging", TOTAL) == "<5"
    assert forms.display("ForcedLabour", TOTAL) == "x"
    assert forms._values[("ForcedLabour", TOTAL)] == 12
    assert stats.year_population(2025) == 12


def test_refusals_are_not_cases_and_cases_are_not_refusals(world):
    cases = Statistics(Period(2025, 2025, "year"), k=K)
    assert cases.dimension_table("sex").value(TOTAL, TOTAL) == 18
    assert refusals().dimension_table("sex").value(TOTAL, TOTAL) == 12


def test_decisions_are_counted_by_outcome_stage_and_reason(world):
    stats = decisions()
    table = stats.dimension_table(DECISION)
    assert table.value("recognised:first", TOTAL) == 12
    assert table.display("recognised:reconsideration", TOTAL) == "<5"
    # 20 - 12 - 6 would give the 2 back: the 6 is withheld too.
    assert table.display("not_recognised:first", TOTAL) == "x"
    assert table.value("not_recognised:reconsideration", TOTAL) == 0
    assert table.value(TOTAL, TOTAL) == 20
    reasons = stats.dimension_table(DECISION_REASON)
    assert reasons.display("other_crime", TOTAL) == "<5"
    assert reasons.display("insufficient_indicators", TOTAL) == "<5"
    # The negative decisions (6) are withheld in the decisions table: so here too.
    assert reasons.grand_total == "x"
    assert reasons._values[(TOTAL, TOTAL)] == 6


def test_the_decisions_table_has_a_row_per_outcome_and_stage():
    from referrals.decisions import DecisionOutcome, DecisionStage
    from reports.statistics import DECISION_ROW_LABELS

    codes = {
        f"{outcome.value}:{stage.value}" for outcome in DecisionOutcome for stage in DecisionStage
    }
    assert set(DECISION_ROW_LABELS) == codes


def test_the_negative_reasons_total_follows_the_decisions_table(world):
    stats = decisions(grain="month")
    whole = stats.base(DECISION, 2025)
    part = stats.base(DECISION_REASON, 2025)
    for month in [f"2025-{m:02d}" for m in range(1, 13)]:
        negative = [whole.value(f"not_recognised:{s}", month) for s in ("first", "reconsideration")]
        if None in negative:
            assert part.value(TOTAL, month) is None, month
        else:
            assert part.value(TOTAL, month) in (sum(negative), None), month


def test_a_year_with_fewer_than_k_refusals_or_decisions_publishes_nothing(world):
    assert refusals(2024, 2024).dimension_table("reason").too_few
    assert refusals(2024, 2024).dimension_table("reason").published_numbers() == []
    assert decisions(2024, 2024).dimension_table(DECISION).too_few


# Suppression attacks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "dimension"),
    [
        (refusals, "reason"),
        (refusals, "sex"),
        (refusals, "age_band"),
        (refusals, "minor"),
        (refusals, "agency_type"),
        (refusals, "exploitation_form"),
        (decisions, DECISION),
        (decisions, DECISION_REASON),
    ],
)
def test_no_small_cell_can_be_worked_out_from_a_base_table(world, build, dimension):
    base = build().base(dimension, 2025)
    assert recover_by_subtraction(base) == {}
    assert determined_by_linear_algebra(base) == set()
    for number in base.published_numbers():
        assert number == 0 or number >= K


def test_the_monthly_refusals_are_the_locked_margins_of_every_refusal_table(world):
    stats = refusals(grain="month")
    months = stats.totals_by_month(2025)
    for dimension in ("reason", "sex", "age_band", "minor", "region", "intake_channel"):
        base = stats.base(dimension, 2025)
        for m in range(1, 13):
            month = f"2025-{m:02d}"
            assert base.value(TOTAL, month) == months.value(month, COUNT), (dimension, month)


def test_differencing_two_periods_gives_no_small_refusal_cell_back(world):
    # April holds the 3 and the 2; the year and the first quarter are published.
    year = refusals(grain="year").dimension_table("reason")
    quarters = refusals(grain="quarter").dimension_table("reason")
    months = refusals(grain="month").dimension_table("reason")
    base = refusals().base("reason", 2025)
    for row in ("wants_to_go_home", "family_pressure", "fear_of_traffickers"):
        whole = year.value(row, "2025")
        for column, _label in quarters.columns:
            part = quarters.value(row, column)
            # Either is withheld, or the difference is a sum of published base entries.
            if whole is not None and part is not None:
                rest = [base.value(row, f"2025-{m:02d}") for m in range(1, 13)]
                assert None not in rest
        assert months.value(row, "2025-04") in (None, 0) or months.value(row, "2025-04") >= K
    # A range over a year of too few refusals withholds every sum that includes it.
    both = refusals(2024, 2025).dimension_table("reason")
    assert both.value("fear_of_traffickers", TOTAL) is None
    assert both.value("fear_of_traffickers", "2025") == 7


def test_a_period_sum_is_published_only_when_every_base_entry_is(world):
    stats = refusals(grain="quarter")
    base = stats.base("reason", 2025)
    groups = [("h1", "h1", [("2025", f"2025-{m:02d}") for m in range(1, 7)])]
    half = combine("t", {"2025": base}, groups, k=K)
    for code, _label in base.rows:
        entries = [base.value(code, f"2025-{m:02d}") for m in range(1, 7)]
        expected = None if None in entries else sum(entries)
        assert half.value(code, "h1") == expected


# Days to decision -----------------------------------------------------------------------------


def test_the_median_and_90th_percentile_come_from_the_aggregate(world):
    rows = {(row["year"], row["outcome"]): row for row in decisions().decision_times()}
    median, p90 = median_and_p90(RECOGNISED_DAYS + RECONSIDERED_DAYS)
    assert rows[(2025, "recognised")]["median"] == f"{median:g}"
    assert rows[(2025, "recognised")]["p90"] == f"{p90:g}"
    median, p90 = median_and_p90(NEGATIVE_DAYS)
    assert rows[(2025, "not_recognised")]["median"] == f"{median:g}"
    everything = median_and_p90(RECOGNISED_DAYS + RECONSIDERED_DAYS + NEGATIVE_DAYS)
    assert rows[(2025, TOTAL)]["median"] == f"{everything[0]:g}"
    assert rows[(2025, TOTAL)]["decisions"] == "20"
    # The recognised are 12 + 2: the 2 is withheld, so the sum is not shown either; the
    # negative decisions are withheld in the decisions table, so here too.
    assert rows[(2025, "recognised")]["decisions"] == "x"
    assert rows[(2025, "not_recognised")]["decisions"] == "x"


def test_the_median_is_withheld_under_k_decisions(world):
    rows = {(row["year"], row["outcome"]): row for row in decisions(2024, 2025).decision_times()}
    assert rows[(2024, TOTAL)]["median"] == "<5"
    assert rows[(2024, TOTAL)]["p90"] == "<5"
    assert rows[(2024, TOTAL)]["decisions"] == "<5"
    assert (2024, "not_recognised") not in rows


def test_k_applies_to_the_median_too(world):
    stats = Statistics(Period(2025, 2025, "year"), k=7, subject=DECISION_SUBJECT)
    rows = {(row["year"], row["outcome"]): row for row in stats.decision_times()}
    assert rows[(2025, "not_recognised")]["median"] == "<7"
    assert rows[(2025, "recognised")]["median"] != "<7"


# Freshness ------------------------------------------------------------------------------------


def test_a_new_refusal_marks_its_month_and_the_next_refresh_counts_it(world):
    add_refusal(world["caseworker"], date(2025, 9, 3))
    database.session.commit()
    assert "2025-09" in database.session.scalars(select(DirtyMonth.month)).all()
    assert refusals().dimension_table("reason").value(TOTAL, TOTAL) == 12
    refresh_if_stale()
    database.session.commit()
    assert refusals().dimension_table("reason").value(TOTAL, TOTAL) == 13
    assert database.session.scalars(select(DirtyMonth.month)).all() == []


def test_a_changed_or_deleted_refusal_moves_the_counts(world):
    refusal = database.session.scalars(
        select(NrmRefusal).where(NrmRefusal.refusal_reason == "fear_of_traffickers")
    ).first()
    refusal.month = date(2025, 10, 1)
    database.session.commit()
    refresh_if_stale()
    database.session.commit()
    counts = dict(
        database.session.execute(
            select(Margin.month, Margin.count).where(
                Margin.subject == "refusals", Margin.dimension == "refusals"
            )
        ).all()
    )
    assert counts["2025-03"] == 6
    assert counts["2025-10"] == 1
    # One refusal in October: the month shows "<5", and March (6) is withheld with it.
    months = refusals(grain="month").totals_by_month(2025)
    assert months.display("2025-10", COUNT) == "<5"
    assert months.display("2025-03", COUNT) == "x"
    database.session.delete(refusal)
    database.session.commit()
    refresh_if_stale()
    database.session.commit()
    assert refusals().dimension_table("reason").value(TOTAL, TOTAL) == 11


def test_a_new_decision_marks_its_month_and_the_next_refresh_counts_it(world):
    add_decision(world["cases"][14], date(2025, 8, 1), stage="reconsideration")
    database.session.commit()
    assert "2025-08" in database.session.scalars(select(DirtyMonth.month)).all()
    refresh_if_stale()
    database.session.commit()
    table = decisions().dimension_table(DECISION)
    assert table.value(TOTAL, TOTAL) == 21
    assert table.display("recognised:reconsideration", TOTAL) == "<5"


def test_a_changed_identification_day_changes_the_days_to_decision(world):
    case = world["cases"][0]
    decided = database.session.scalar(
        select(Decision.decided_on).where(Decision.case_id == case.id)
    )
    case.identified_on = decided - timedelta(days=400)
    database.session.commit()
    refresh_if_stale()
    database.session.commit()
    days = database.session.scalars(select(DecisionCount.days)).all()
    assert 400 in days


def test_the_aggregates_hold_codes_and_numbers_only(world):
    """The statistics tables never hold a name or a decision's reason text."""
    for model in (Margin, DecisionCount):
        for row in database.session.scalars(select(model)):
            text = " ".join(str(getattr(row, c.key)) for c in model.__table__.columns)
            assert SECRET_NAME not in text
            assert SECRET_REASON not in text
    codes = set(database.session.scalars(select(DecisionCount.reason_code)))
    assert codes == {"none", "other_crime", "insufficient_indicators"}


def test_a_full_rebuild_gives_the_same_counts_as_month_refreshes(world):
    before = sorted(
        database.session.execute(
            select(Margin.subject, Margin.month, Margin.dimension, Margin.code, Margin.count)
        ).all()
    )
    database.session.execute(delete(Margin))
    refresh_statistics({f"2025-{m:02d}" for m in range(1, 13)} | {"2024-03", "2024-06", "2024-01"})
    after = sorted(
        database.session.execute(
            select(Margin.subject, Margin.month, Margin.dimension, Margin.code, Margin.count)
        ).all()
    )
    assert after == before


# The dashboard and its downloads ------------------------------------------------------------


def test_the_dashboard_shows_the_refusal_and_decision_sections(app, world):
    client = client_for(app, world["analyst"])
    page = client.get("/statistics/?first=2025&last=2025").get_data(as_text=True)
    assert "Refusals to enter the NRM" in page
    assert "Status decisions" in page
    tables = page_tables(page)
    for title in (
        "Refusals: Reason for refusal",
        "Refusals: Sex",
        "Refusals: Form of exploitation",
        "Decisions by outcome and stage",
        "Negative decisions by reason",
        "Days from identification to decision",
    ):
        assert title in tables, title
    assert SECRET_NAME not in page
    assert SECRET_REASON not in page
    reasons = {row[0]: row[1:] for row in tables["Refusals: Reason for refusal"]}
    assert reasons["Pressure from the family"] == ["<5", "<5"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(
    "name", ["refusals_reason", "refusals_sex", "decisions", "decision_reasons", "decision_times"]
)
def test_the_downloads_equal_the_page_and_hide_the_small_cells(app, world, fmt, name):
    client = client_for(app, world["coordinator"])
    period = "grain=quarter&first=2025&last=2025"
    tables = page_tables(client.get(f"/statistics/?{period}").get_data(as_text=True))
    response = client.get(f"/statistics/exports/table.{fmt}?table={name}&{period}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    rows = (read_csv if fmt == "csv" else read_xlsx)(response.get_data())
    title = rows[0][0]
    page = tables[title]
    assert [[plain(cell) for cell in row] for row in page[1:]] == rows[2:]
    cells = {cell for row in rows[2:] for cell in row[1:]}
    assert not any(re.fullmatch(r"[1-4]", cell) for cell in cells), cells


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", ["refusals_reason", "decisions", "decision_times"])
def test_access_matrix_for_the_new_tables(app, world, persona, name):
    client = client_for(app, world[persona])
    response = client.get(f"/statistics/exports/table.csv?table={name}&first=2025&last=2025")
    assert response.status_code == (200 if persona in ALLOWED else 404)


def test_an_unknown_subject_table_is_not_found(app, world):
    client = client_for(app, world["analyst"])
    response = client.get("/statistics/exports/table.csv?table=refusals_nrm_status")
    assert response.status_code == 404


# The annual national report ------------------------------------------------------------------


def _annual_text(app, world, year=2025, language="en") -> str:
    with app.test_request_context(), force_locale(language):
        _name, _type, body = recurring.build_annual_report(year, world["analyst"])
    keep = os.environ.get("HAVEN_KEEP_REPORT_PDF")
    if keep and language == "en" and year == 2025:
        # To look at the pages: HAVEN_KEEP_REPORT_PDF=/some/file.pdf pytest ...
        Path(keep).write_bytes(body)
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def test_the_annual_report_shows_refusals_and_decisions_and_no_small_cell(app, world):
    text = _annual_text(app, world)
    for heading in (
        "Refusals to enter the NRM",
        "Refusals: Reason for refusal",
        "Refusals: Sex",
        "Refusals: Age at identification",
        "Status decisions",
        "Decisions by outcome and stage",
        "Negative decisions by reason",
        "Days from identification to decision",
    ):
        assert heading in text, heading
    assert SECRET_NAME not in text
    assert SECRET_REASON not in text
    assert _small_numbers(text) == []
    median, _p90 = median_and_p90(NEGATIVE_DAYS)
    assert f"{median:g}" in text


def test_the_annual_report_of_a_year_of_too_few_refusals_says_so(app, world):
    text = _annual_text(app, world, 2024)
    assert "Fewer than 5 refusals were recorded" in text
    assert "Fewer than 5 decisions were recorded" in text
    assert _small_numbers(text) == []


def test_the_statistics_report_pdf_has_the_new_sections_and_no_small_cell(app, world):
    from reports.jobs import submit_report

    with app.test_request_context():
        job = submit_report(
            "statistics_report", {"first": 2025, "last": 2025, "grain": "quarter"}, world["analyst"]
        )
    database.session.commit()
    body = job.file.content
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    for heading in (
        "Refusals to enter the NRM",
        "Refusals: Reason for refusal",
        "Decisions by outcome and stage",
        "Negative decisions by reason",
        "Days from identification to decision",
    ):
        assert heading in text, heading
    assert SECRET_NAME not in text
    assert SECRET_REASON not in text


# Demo data ----------------------------------------------------------------------------------


def test_the_demo_data_fills_the_refusal_and_decision_sections(db):
    from casework.models import local_today
    from core.demo import load_demo_data
    from reports.nrm_demo import DEMO_DECISION_COUNT

    load_demo_data()
    count = database.session.scalar(select(func.count(Decision.id)))
    assert count >= DEMO_DECISION_COUNT
    load_demo_data()
    assert database.session.scalar(select(func.count(Decision.id))) == count
    refresh_if_stale()
    database.session.commit()
    # Demo cases are identified up to the end of 2025: most decisions fall in that year.
    stats = Statistics(Period(2025, 2025, "year"), subject=DECISION_SUBJECT)
    table = stats.dimension_table(DECISION)
    assert not table.too_few
    assert table.value(TOTAL, TOTAL) >= 20
    assert not stats.dimension_table(DECISION_REASON).too_few
    times = {row["outcome"]: row for row in stats.decision_times()}
    assert times[TOTAL]["median"] not in ("<5", "x")
    assert times["not_recognised"]["median"] not in ("<5", "x")
    # The demo refusals fall in the last twelve months.
    year = local_today().year
    # Whenever the decisions table of a year is withheld as a whole, so is its part.
    for each in range(2023, year + 1):
        one = Statistics(Period(each, each, "year"), subject=DECISION_SUBJECT)
        if one.dimension_table(DECISION).too_few:
            assert one.dimension_table(DECISION_REASON).too_few, each
    recent = Statistics(Period(year - 1, year, "year"), subject=REFUSAL_SUBJECT)
    assert not recent.dimension_table("reason").too_few
