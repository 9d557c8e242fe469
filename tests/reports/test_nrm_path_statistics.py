"""Statistics of the rest of the NRM path (issue 7): incoming reports, return plans,
reintegration measures, follow-up visits and guardian appointment delay. Counts, one
suppression attack per subject, dirty months, the dashboard and its downloads, access."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casework import child_protection, reintegration, returns
from casework.contacts import IncomingReport, record_hotline_call
from casework.models import local_today
from casework.reference import seed_reference_lists
from casework.reintegration import FollowUpVisit, ReintegrationMeasure
from casework.returns import ReturnPlan
from casework.services import open_case
from core.db import db as database
from core.models import AgencyType, Role
from reports import nrm_path
from reports.disclosure import COUNT, TOTAL
from reports.statistics import (
    DirtyMonth,
    Margin,
    Period,
    Statistics,
    refresh_if_stale,
    refresh_statistics,
)
from tests.casework.aftercare_builders import PLAN, RISK_SECRET
from tests.casework.test_contacts import CALL_CODES, CALL_SECRETS
from tests.factories import client_for, make_agency, make_user
from tests.reports.test_disclosure import determined_by_linear_algebra, recover_by_subtraction
from tests.reports.test_table_exports import page_tables, plain, read_csv

K = 5
PERSONAS = ("caseworker", "admin", "auditor", "analyst", "coordinator")
ALLOWED = {"analyst", "coordinator"}
SECRET = "Günay Səfərova"
MINOR_IDENTIFIED = date(2025, 2, 3)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture
def world(db, monkeypatch):
    """2025: 7 hotline calls in March (5 routed, 2 closed as advice: small), 7 return plans
    created in May (5 waiting for sign-off, 2 signed off: small), 7 measures starting in
    June (5 training, 2 grants: small), 7 follow-up visits done in July (5 stable, 2
    re-trafficked: small), 7 minors identified in February (5 guardians in time, 2 none:
    overdue)."""
    monkeypatch.setattr("casework.models.local_today", lambda: date(2026, 11, 26))
    seed_reference_lists()
    hotline = make_agency(AgencyType.HOTLINE, name="Helpline")
    ngo = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "operator": make_user(hotline, Role.CASEWORKER),
        "caseworker": make_user(ngo, Role.CASEWORKER),
        "analyst": make_user(nrm, Role.ANALYST),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(ngo, Role.ADMIN),
        "auditor": make_user(nrm, Role.AUDITOR),
        "ngo": ngo,
    }
    for number in range(7):
        record_hotline_call(
            people["operator"],
            {**CALL_CODES, **CALL_SECRETS},
            receiving_agency=ngo if number < 5 else None,
            now=_at(date(2025, 3, 10)),
        )
    alice = people["caseworker"]
    for number in range(7):
        case = open_case(alice, {"given_name": f"Adult{number}", "estimated_age": "30"})
        plan = returns.start_return_plan(alice, case, PLAN)
        returns.assess_return_risk(alice, plan, "medium", RISK_SECRET)
        if number >= 5:
            returns.sign_off_return(people["coordinator"], plan, "Safe")
        plan.created_at = _at(date(2025, 5, 4))
        started = reintegration.start_reintegration_plan(alice, case, date(2025, 1, 2))
        reintegration.add_measure(
            alice,
            started,
            {
                "measure_type": "vocational_training" if number < 5 else "grant",
                "status": "in_progress",
                "starts_on": date(2025, 6, 1),
                "amount": "1500" if number >= 5 else None,
            },
        )
        visit = database.session.scalars(
            select(FollowUpVisit)
            .where(FollowUpVisit.case_id == case.id)
            .order_by(FollowUpVisit.due_on)
        ).first()
        reintegration.record_follow_up(
            alice,
            visit,
            done_on=date(2025, 7, 8),
            method="visit",
            outcome="stable" if number < 5 else "re_trafficked",
        )
    for number in range(7):
        minor = open_case(
            alice,
            {
                "given_name": f"Child{number}",
                "estimated_age": "15",
                "identified_on": MINOR_IDENTIFIED,
            },
        )
        if number < 5:
            child_protection.record_guardian(
                alice,
                minor,
                guardian_name="A guardian",
                role="state_guardian",
                appointing_body="guardianship_authority",
                appointed_on=date(2025, 2, 4),
            )
    database.session.commit()
    refresh_statistics()
    database.session.commit()
    return people


def stats(subject, grain="year", first=2025, last=2025) -> Statistics:
    return Statistics(Period(first, last, grain), k=K, subject=subject)


CASES = [
    (nrm_path.INCOMING_SUBJECT, "outcome", "open", "closed:advice_given", "2025-03"),
    (nrm_path.RETURN_SUBJECT, "state", "risk_assessed", "signed_off", "2025-05"),
    (nrm_path.MEASURE_SUBJECT, "type", "vocational_training", "grant", "2025-06"),
    (nrm_path.VISIT_SUBJECT, "outcome", "stable", "re_trafficked", "2025-07"),
    (nrm_path.GUARDIAN_SUBJECT, "guardian", "in_time", "overdue", "2025-02"),
]
IDS = [subject.name for subject, *_rest in CASES]


# Counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "dimension", "big", "small", "month"), CASES, ids=IDS)
def test_each_subject_counts_its_items_by_its_month(world, subject, dimension, big, small, month):
    margins = {
        (m, code): count
        for m, code, count in database.session.execute(
            select(Margin.month, Margin.code, Margin.count).where(
                Margin.subject == subject.name, Margin.dimension == dimension
            )
        )
    }
    assert margins == {(month, big): 5, (month, small): 2}
    total = stats(subject).totals_by_month(2025)
    assert total.value(month, COUNT) == 7


def test_the_other_dimensions_are_counted_too(world):
    incoming = stats(nrm_path.INCOMING_SUBJECT).dimension_table("kind")
    assert incoming.value("hotline_call", "2025") == 7
    sender = stats(nrm_path.INCOMING_SUBJECT).dimension_table("agency_type")
    assert sender.value("hotline", "2025") == 7
    anonymous = stats(nrm_path.INCOMING_SUBJECT).dimension_table("anonymous")
    assert anonymous.value("no", "2025") == 7
    plans = stats(nrm_path.RETURN_SUBJECT)
    assert plans.dimension_table("destination").value("AZ", "2025") == 7
    assert plans.dimension_table("risk").value("medium", "2025") == 7
    # 5 not signed and 2 approved: the 5 is the complement of a small cell, hidden too.
    assert plans.dimension_table("sign_off").value("not_signed", "2025") is None
    visits = stats(nrm_path.VISIT_SUBJECT)
    assert visits.dimension_table("method").value("visit", "2025") == 7
    assert visits.dimension_table("retrafficked").value("no", "2025") is None
    assert (
        stats(nrm_path.MEASURE_SUBJECT).dimension_table("status").value("in_progress", "2025") == 7
    )


def test_the_guardian_delay_follows_the_modules_deadline(db):
    case = type("C", (), {"identified_on": date(2026, 3, 2), "created_at": None})()
    due = child_protection.guardian_due_on(case)
    assert nrm_path.guardian_delay(case, due, due) == nrm_path.IN_TIME
    assert nrm_path.guardian_delay(case, date(2026, 12, 1), due) == nrm_path.LATE
    assert nrm_path.guardian_delay(case, None, due) == nrm_path.PENDING
    assert nrm_path.guardian_delay(case, None, date(2026, 12, 1)) == nrm_path.OVERDUE


# Disclosure control ----------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "dimension", "big", "small", "month"), CASES, ids=IDS)
def test_a_small_cell_is_hidden_and_cannot_be_worked_out(
    world, subject, dimension, big, small, month
):
    base = stats(subject).base(dimension, 2025)
    assert base.value(small, month) is None
    assert base.value(small, TOTAL) is None
    # Its complement is hidden too: the locked total minus it would give the small cell.
    assert base.value(big, month) is None or base.value(TOTAL, month) is None
    assert recover_by_subtraction(base) == {}
    assert determined_by_linear_algebra(base) == set()
    for number in base.published_numbers():
        assert number == 0 or number >= K
    # Differencing two periods: the year and each quarter give the same hidden cells.
    year = stats(subject, "year").dimension_table(dimension)
    quarters = stats(subject, "quarter").dimension_table(dimension)
    months = stats(subject, "month").dimension_table(dimension)
    for table in (year, quarters, months):
        for code, _label in table.rows:
            for column, _label in table.columns:
                value = table.value(code, column)
                assert value is None or value == 0 or value >= K, (code, column, value)
    shown_year = year.value(big, "2025")
    shown_parts = [quarters.value(big, column) for column, _label in quarters.columns]
    if shown_year is not None and None not in shown_parts:
        assert shown_year == sum(shown_parts)


@pytest.mark.parametrize(("subject", "dimension", "big", "small", "month"), CASES, ids=IDS)
def test_the_csv_hides_what_the_page_hides(app, world, subject, dimension, big, small, month):
    client = client_for(app, world["coordinator"])
    period = "grain=quarter&first=2025&last=2025"
    name = f"{subject.name}_{dimension}"
    tables = page_tables(client.get(f"/statistics/?{period}").get_data(as_text=True))
    response = client.get(f"/statistics/exports/table.csv?table={name}&{period}")
    assert response.status_code == 200
    rows = read_csv(response.get_data())
    assert [[plain(cell) for cell in row] for row in tables[rows[0][0]][1:]] == rows[2:]
    cells = {cell for row in rows[2:] for cell in row[1:]}
    assert not any(re.fullmatch(r"[1-4]", cell) for cell in cells), cells


def test_a_year_of_too_few_items_publishes_nothing(world):
    for subject, *_rest in CASES:
        table = stats(subject, first=2024, last=2024).base(subject.dimensions[0], 2024)
        assert table.too_few


# Dirty months --------------------------------------------------------------------------------


def _dirty() -> set[str]:
    return set(database.session.scalars(select(DirtyMonth.month)))


def test_a_closed_incoming_report_marks_its_month(world):
    report = database.session.scalars(
        select(IncomingReport).where(IncomingReport.state == "sent")
    ).first()
    report.state = "closed"
    report.closure_reason = "not_trafficking"
    database.session.commit()
    assert "2025-03" in _dirty()
    refresh_if_stale()
    database.session.commit()
    margins = dict(
        database.session.execute(
            select(Margin.code, Margin.count).where(
                Margin.subject == "incoming", Margin.dimension == "outcome"
            )
        ).all()
    )
    assert margins == {"open": 4, "closed:advice_given": 2, "closed:not_trafficking": 1}


def test_a_changed_return_plan_marks_its_month(world):
    plan = database.session.scalars(
        select(ReturnPlan).where(ReturnPlan.state == "risk_assessed")
    ).first()
    plan.state = "cancelled"
    plan.cancel_reason = "other"
    database.session.commit()
    assert "2025-05" in _dirty()
    refresh_if_stale()
    database.session.commit()
    counts = dict(
        database.session.execute(
            select(Margin.code, Margin.count).where(
                Margin.subject == "returns", Margin.dimension == "state"
            )
        ).all()
    )
    assert counts == {"risk_assessed": 4, "signed_off": 2, "cancelled": 1}


def test_a_moved_measure_marks_both_months(world):
    measure = database.session.scalars(select(ReintegrationMeasure)).first()
    measure.starts_on = date(2025, 9, 1)
    database.session.commit()
    assert {"2025-06", "2025-09"} <= _dirty()
    refresh_if_stale()
    database.session.commit()
    months = stats(nrm_path.MEASURE_SUBJECT)._margins["measures"]
    assert months[(COUNT, "2025-06")] == 6
    assert months[(COUNT, "2025-09")] == 1


def test_a_recorded_visit_marks_its_month(world):
    visit = database.session.scalars(
        select(FollowUpVisit).where(FollowUpVisit.done_on.is_(None))
    ).first()
    reintegration.record_follow_up(
        world["caseworker"], visit, done_on=date(2025, 8, 2), method="phone", outcome="stable"
    )
    database.session.commit()
    assert "2025-08" in _dirty()
    refresh_if_stale()
    database.session.commit()
    months = stats(nrm_path.VISIT_SUBJECT)._margins["visits"]
    assert months[(COUNT, "2025-08")] == 1


def test_a_new_guardian_marks_the_month_identified_and_turns_overdue_into_late(world):
    from casework.models import Case

    minor = database.session.scalars(
        select(Case)
        .where(Case.is_minor.is_(True))
        .where(~Case.id.in_(select(child_protection.GuardianAppointment.case_id)))
    ).first()
    child_protection.record_guardian(
        world["caseworker"],
        minor,
        guardian_name="Late guardian",
        role="state_guardian",
        appointing_body="court",
        appointed_on=date(2025, 6, 1),
    )
    database.session.commit()
    assert "2025-02" in _dirty()
    refresh_if_stale()
    database.session.commit()
    counts = dict(
        database.session.execute(
            select(Margin.code, Margin.count).where(Margin.subject == "guardians")
        ).all()
    )
    assert counts.get("late") == 1
    assert counts.get("overdue") == 1


def test_a_pending_guardian_turns_overdue_the_next_day(world, monkeypatch):
    today = {"value": date(2026, 11, 26)}
    monkeypatch.setattr("casework.models.local_today", lambda: today["value"])
    open_case(
        world["caseworker"],
        {"given_name": "Newchild", "estimated_age": "14", "identified_on": date(2026, 11, 25)},
    )
    database.session.commit()
    refresh_if_stale()
    database.session.commit()
    month = "2026-11"
    codes = dict(
        database.session.execute(
            select(Margin.code, Margin.count).where(
                Margin.subject == "guardians", Margin.month == month
            )
        ).all()
    )
    assert codes == {"pending": 1, COUNT: 1}
    today["value"] = date(2027, 1, 15)
    refresh_if_stale()  # no row changed: the day did
    database.session.commit()
    codes = dict(
        database.session.execute(
            select(Margin.code, Margin.count).where(
                Margin.subject == "guardians", Margin.month == month
            )
        ).all()
    )
    assert codes == {"overdue": 1, COUNT: 1}


def test_a_full_rebuild_equals_month_refreshes(world):
    def snapshot():
        return sorted(
            database.session.execute(
                select(Margin.subject, Margin.month, Margin.dimension, Margin.code, Margin.count)
            ).all()
        )

    before = snapshot()
    refresh_statistics({"2025-02", "2025-03", "2025-05", "2025-06", "2025-07"})
    assert snapshot() == before


def test_the_aggregates_hold_codes_only(world):
    for row in database.session.scalars(select(Margin)):
        assert SECRET not in f"{row.code} {row.dimension}"
        assert "1500" not in f"{row.code} {row.dimension}"


# The dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_the_path_sections(app, world):
    client = client_for(app, world["analyst"])
    page = client.get("/statistics/?first=2025&last=2025").get_data(as_text=True)
    tables = page_tables(page)
    for title in (
        "Incoming reports: Outcome",
        "Incoming reports: Sending agency type",
        "Return plans: Destination country",
        "Return plans: Sign-off decision",
        "Reintegration measures: Type of measure",
        "Follow-up visits: Signs of re-trafficking",
        "Minors' cases: Guardian appointment",
    ):
        assert title in tables, title
    assert SECRET not in page
    assert "1500" not in page
    guardians = {row[0]: row[1:] for row in tables["Minors' cases: Guardian appointment"]}
    assert guardians["Not yet appointed, overdue"] == ["<5", "<5"]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", ["incoming_outcome", "returns_state", "guardians_guardian"])
def test_access_matrix_for_the_path_tables(app, world, persona, name):
    client = client_for(app, world[persona])
    response = client.get(f"/statistics/exports/table.csv?table={name}&first=2025&last=2025")
    assert response.status_code == (200 if persona in ALLOWED else 404)


def test_the_page_links_every_path_table_to_its_downloads(app, world):
    client = client_for(app, world["analyst"])
    page = client.get("/statistics/?grain=quarter&first=2025&last=2025").get_data(as_text=True)
    links = set(re.findall(r'href="(/statistics/exports/table\.(?:csv|xlsx)\?[^"]+)"', page))
    names = {re.search(r"table=(\w+)", link).group(1) for link in links}
    expected = {
        f"{subject.name}_{dimension}"
        for subject in nrm_path.PATH_SUBJECTS
        for dimension in subject.dimensions
    }
    assert len(expected) == 15
    assert expected <= names


# The annual and quarterly reports --------------------------------------------------------------


def _report_text(app, world, build, *args) -> tuple[str, bytes]:
    import io

    from flask_babel import force_locale
    from pypdf import PdfReader

    with app.test_request_context(), force_locale("en"):
        _name, _type, body = build(*args, world["analyst"])
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    return text, body


def test_the_annual_report_has_a_section_per_path_subject_and_no_small_cell(app, world):
    from reports import recurring

    text, body = _report_text(app, world, recurring.build_annual_report, 2025)
    keep = os.environ.get("HAVEN_KEEP_REPORT_PDF")
    if keep:
        Path(keep).write_bytes(body)
    for heading in (
        "7. Incoming reports",
        "8. Return plans",
        "9. Reintegration measures",
        "10. Follow-up visits",
        "11. Guardian appointment for children",
        "Incoming reports: Outcome",
        "Return plans: Destination country",
        "Reintegration measures: Type of measure",
        "Follow-up visits: Signs of re-trafficking",
        "Minors' cases: Guardian appointment",
        "12. Referrals and their outcomes",
        "14. Method and disclosure control",
    ):
        assert heading in text, heading
    assert SECRET not in text
    assert "1500" not in text
    assert "amounts are not published" in text


def test_the_quarterly_report_has_the_refusal_and_decision_sections(app, world):
    from reports import recurring

    text, _body = _report_text(app, world, recurring.build_quarterly_report, 2025, 2)
    assert "7. Refusals to enter the NRM, year to date" in text
    assert "8. Status decisions, year to date" in text
    # This world has no refusal and no decision: the sections say so.
    assert "Fewer than 5 decisions were recorded" in text
    assert "9. Method and disclosure control" in text


# The reader's decimal separator ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "shown"),
    [("en", "27.5"), ("ru", "27,5"), ("az", "27,5"), ("en", "1,234.25"), ("ru", "1\xa0234,25")],
)
def test_a_median_takes_the_readers_decimal_separator(app, language, shown):
    from flask_babel import force_locale

    from core.i18n import format_number

    value = "27.5" if shown.startswith("27") else "1234.25"
    with app.test_request_context(), force_locale(language):
        assert format_number(value) == shown
        assert format_number("<5") == "<5"
        assert format_number("12%") == "12%"
        assert format_number("12") == "12"


def test_the_dashboard_median_uses_the_separator_and_the_csv_a_point(app, world):
    from tests.reports.nrm_builders import add_decision

    cases = [
        open_case(world["caseworker"], {"given_name": f"D{n}", "identified_on": date(2025, 1, 1)})
        for n in range(6)
    ]
    for case, days in zip(cases, (10, 11, 12, 13, 14, 15), strict=True):
        add_decision(case, date(2025, 1, 1) + timedelta(days=days))
    database.session.commit()
    refresh_statistics()
    database.session.commit()
    client = client_for(app, world["analyst"])
    with client.session_transaction() as state:
        state["language"] = "ru"
    world["analyst"].language = "ru"
    database.session.commit()
    page = client.get("/statistics/?first=2025&last=2025").get_data(as_text=True)
    assert re.search(r'class="num">12,5<', page), "median 12.5 with a comma"
    body = client.get("/statistics/exports/table.csv?table=decision_times&first=2025&last=2025")
    assert "12.5" in body.get_data(as_text=True)


def test_the_demo_data_renders_the_path_sections(app, db):
    """The demo's incoming reports, returns, measures, visits and minors are counted (the
    demo seeds them through the services of their modules); the page renders them."""
    from core.demo import load_demo_data

    load_demo_data()
    refresh_statistics()
    database.session.commit()
    totals = dict(
        database.session.execute(
            select(Margin.subject, func.sum(Margin.count))
            .where(Margin.dimension == Margin.subject)
            .group_by(Margin.subject)
        ).all()
    )
    for subject in nrm_path.PATH_SUBJECTS:
        assert totals.get(subject.name, 0) > 0, subject.name
    # The demo hotline calls: enough for the incoming reports of the last year to publish,
    # and a second load adds none.
    from reports.nrm_path_demo import DEMO_CALL_COUNT, seed_demo_hotline_calls

    calls = database.session.scalar(
        select(func.count(IncomingReport.id)).where(IncomingReport.kind == "hotline_call")
    )
    assert calls >= DEMO_CALL_COUNT
    assert seed_demo_hotline_calls({}) == 0
    load_demo_data()
    assert (
        database.session.scalar(
            select(func.count(IncomingReport.id)).where(IncomingReport.kind == "hotline_call")
        )
        == calls
    )
    year = local_today().year
    incoming = Statistics(
        Period(year - 1, year, "year"), k=K, subject=nrm_path.INCOMING_SUBJECT
    ).dimension_table("kind")
    assert not incoming.too_few
