"""Reintegration: the follow-up schedule and overdue visits with a controlled clock, measures
with amounts and optimistic locking, the case list's overdue filter, access, storage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from casework import reintegration
from casework.reintegration import (
    FollowUpVisit,
    ReintegrationError,
    ReintegrationMeasure,
    add_months,
    follow_up_months,
    follow_up_schedule,
)
from casework.services import EditConflict, open_case
from casework.timeline import TimelineEvent
from tests.casework.aftercare_builders import (
    GOALS_SECRET,
    MEASURE_SECRET,
    VISIT_SECRET,
    build_world,
)
from tests.casework.test_casefile import assert_no_plaintext, raw_dump
from tests.factories import client_for

START = date(2026, 1, 31)


@pytest.fixture
def world(app, db):
    return build_world(db)


@pytest.fixture
def today(monkeypatch):
    """Control the working clock of the follow-up rules: set ``today.value``."""

    class Clock:
        value = date(2026, 3, 15)

    monkeypatch.setattr(reintegration, "local_today", lambda: Clock.value)
    return Clock


def started(world, day: date = START):
    return reintegration.start_reintegration_plan(world["alice"], world["case"], day, GOALS_SECRET)


# The schedule ------------------------------------------------------------------------------


def test_the_schedule_keeps_the_day_or_takes_the_months_last_day():
    assert follow_up_schedule(START) == [
        (1, date(2026, 2, 28)),
        (3, date(2026, 4, 30)),
        (6, date(2026, 7, 31)),
        (12, date(2027, 1, 31)),
    ]
    assert follow_up_schedule(date(2026, 3, 15)) == [
        (1, date(2026, 4, 15)),
        (3, date(2026, 6, 15)),
        (6, date(2026, 9, 15)),
        (12, date(2027, 3, 15)),
    ]


@pytest.mark.parametrize(
    ("start", "months", "due"),
    [
        (date(2027, 11, 30), 3, date(2028, 2, 29)),  # leap year
        (date(2026, 12, 31), 1, date(2027, 1, 31)),  # across the year
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 1, 1), 24, date(2028, 1, 1)),
    ],
)
def test_add_months(start, months, due):
    assert add_months(start, months) == due


def test_the_months_are_configurable(app_context):
    assert follow_up_months() == (1, 3, 6, 12)
    assert follow_up_months("2, 6,6") == (2, 6)
    app_context.config["HAVEN_FOLLOW_UP_MONTHS"] = "1,2"
    try:
        assert follow_up_months() == (1, 2)
    finally:
        app_context.config["HAVEN_FOLLOW_UP_MONTHS"] = "1,3,6,12"
    for bad in ("", "0,3", "one"):
        with pytest.raises(ValueError):
            follow_up_months(bad)


def test_starting_reintegration_schedules_the_visits_once(db, world):
    started(world)
    due = list(db.session.scalars(select(FollowUpVisit.due_on).order_by(FollowUpVisit.due_on)))
    assert due == [date(2026, 2, 28), date(2026, 4, 30), date(2026, 7, 31), date(2027, 1, 31)]
    # A later return finds the schedule made: nothing is added.
    assert reintegration.schedule_follow_ups(world["alice"], world["case"], date(2026, 6, 1)) == []
    assert len(reintegration.visits_of(world["case"])) == 4
    with pytest.raises(ReintegrationError):
        started(world)


# Overdue, with a controlled clock ------------------------------------------------------------


def test_a_visit_is_overdue_the_day_after_it_was_due(db, world, today):
    started(world)
    first = reintegration.visits_of(world["case"])[0]
    today.value = date(2026, 2, 28)
    assert not first.is_overdue(today.value)
    assert reintegration.cases_with_overdue_follow_up([world["case_id"]]) == set()
    today.value = date(2026, 3, 1)
    assert first.is_overdue(today.value)
    assert reintegration.cases_with_overdue_follow_up([world["case_id"]]) == {world["case_id"]}
    summary = reintegration.follow_up_summary(world["case"])
    assert summary.overdue == 1
    assert summary.next_due.due_on == date(2026, 2, 28)


def test_a_done_visit_is_never_overdue(db, world, today):
    started(world)
    first = reintegration.visits_of(world["case"])[0]
    reintegration.record_follow_up(
        world["alice"], first, done_on=date(2026, 3, 2), method="phone", outcome="stable"
    )
    today.value = date(2026, 3, 10)
    assert reintegration.cases_with_overdue_follow_up([world["case_id"]]) == set()
    summary = reintegration.follow_up_summary(world["case"])
    assert summary.next_due.due_on == date(2026, 4, 30)
    assert summary.done == 1 and summary.overdue == 0


# Visits ------------------------------------------------------------------------------------


def test_re_trafficked_sets_the_flag_and_warns_on_the_timeline(db, world):
    started(world)
    visit = reintegration.visits_of(world["case"])[0]
    reintegration.record_follow_up(
        world["alice"],
        visit,
        done_on=date(2026, 3, 1),
        method="visit",
        outcome="re_trafficked",
        notes=VISIT_SECRET,
    )
    db.session.commit()
    assert visit.retrafficked is True
    assert reintegration.follow_up_summary(world["case"]).retrafficked
    kinds = set(db.session.scalars(select(TimelineEvent.kind)))
    assert "follow_up.retrafficked" in kinds


def test_the_flag_may_be_set_with_another_outcome(db, world):
    started(world)
    visit = reintegration.visits_of(world["case"])[0]
    reintegration.record_follow_up(
        world["alice"],
        visit,
        done_on=date(2026, 3, 1),
        method="phone",
        outcome="needs_support",
        retrafficked=True,
    )
    assert visit.outcome == "needs_support" and visit.retrafficked


def test_a_visit_edited_on_an_old_version_is_refused(db, world):
    started(world)
    visit = reintegration.visits_of(world["case"])[0]
    with pytest.raises(EditConflict):
        reintegration.record_follow_up(
            world["alice"],
            visit,
            done_on=date(2026, 3, 1),
            method="phone",
            outcome="stable",
            expected_version=visit.version + 1,
        )


# Measures ----------------------------------------------------------------------------------


def test_measures_carry_amounts_in_a_currency(db, world):
    plan = started(world)
    grant = reintegration.add_measure(
        world["alice"],
        plan,
        {"measure_type": "grant", "amount": "1500.5", "status": "planned", "notes": MEASURE_SECRET},
    )
    training = reintegration.add_measure(
        world["alice"],
        plan,
        {
            "measure_type": "vocational_training",
            "amount": Decimal("300"),
            "currency": "USD",
            "provider_agency_id": world["east"].id,
        },
    )
    db.session.commit()
    db.session.expire_all()
    grant = db.session.get(ReintegrationMeasure, grant.id)
    assert grant.amount == Decimal("1500.50")
    assert grant.currency == "AZN"
    assert grant.notes == MEASURE_SECRET
    assert db.session.get(ReintegrationMeasure, training.id).currency == "USD"


def test_a_negative_amount_or_backwards_dates_are_refused(db, world):
    plan = started(world)
    with pytest.raises(ReintegrationError):
        reintegration.add_measure(world["alice"], plan, {"measure_type": "grant", "amount": -1})
    with pytest.raises(ReintegrationError):
        reintegration.add_measure(
            world["alice"],
            plan,
            {"measure_type": "housing", "starts_on": date(2026, 3, 1), "ends_on": date(2026, 2, 1)},
        )


def test_a_measure_edited_on_an_old_version_is_refused(db, world):
    plan = started(world)
    measure = reintegration.add_measure(world["alice"], plan, {"measure_type": "education"})
    db.session.commit()
    changed = reintegration.update_measure(
        world["alice"], measure, {"status": "in_progress"}, expected_version=measure.version
    )
    assert changed == ["status"]
    with pytest.raises(EditConflict):
        reintegration.update_measure(
            world["alice"], measure, {"status": "delivered"}, expected_version=1
        )


def test_a_concurrent_measure_edit_answers_409_keeping_what_was_typed(app, db, world):
    plan = started(world)
    measure = reintegration.add_measure(world["alice"], plan, {"measure_type": "grant"})
    db.session.commit()
    address = f"/cases/{world['case_id']}/aftercare/measures/{measure.id}/edit"
    alice, bob = client_for(app, world["alice"]), client_for(app, world["bob"])
    form = {"measure_type": "grant", "currency": "AZN", "status": "delivered", "version": "1"}
    assert bob.post_form(address, {**form, "amount": "200"}).status_code == 302
    response = alice.post_form(address, {**form, "amount": "999", "notes": "Alice typed this"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Alice typed this" in page and "999" in page
    db.session.expire_all()
    assert db.session.get(ReintegrationMeasure, measure.id).amount == Decimal("200.00")


# Pages -------------------------------------------------------------------------------------


def test_the_pages_start_the_plan_add_a_measure_and_record_a_visit(app, db, world):
    alice = client_for(app, world["alice"])
    base = f"/cases/{world['case_id']}/aftercare"
    response = alice.post_form(f"{base}/reintegration", {"started_on": "2026-01-31", "goals": ""})
    assert response.status_code == 302
    response = alice.post_form(
        f"{base}/measures",
        {"measure_type": "grant", "amount": "250.00", "currency": "AZN", "status": "planned"},
    )
    assert response.status_code == 302
    visit = reintegration.visits_of(world["case"])[0]
    response = alice.post_form(
        f"{base}/visits/{visit.id}",
        {
            "done_on": "2026-02-27",
            "method": "phone",
            "outcome": "stable",
            "notes": VISIT_SECRET,
            "version": str(visit.version),
        },
    )
    assert response.status_code == 302
    page = alice.get(base).get_data(as_text=True)
    assert "250" in page and "Stable" in page


def test_a_bad_measure_re_renders_with_what_was_typed(app, db, world):
    started(world)
    db.session.commit()
    alice = client_for(app, world["alice"])
    response = alice.post_form(
        f"/cases/{world['case_id']}/aftercare/measures",
        {"measure_type": "grant", "amount": "-5", "notes": "Typed note", "currency": "AZN"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Typed note" in page and "-5" in page
    assert db.session.scalars(select(ReintegrationMeasure)).first() is None


def test_the_case_page_shows_the_next_visit_and_the_re_trafficking_warning(app, db, world, today):
    started(world)
    visit = reintegration.visits_of(world["case"])[0]
    reintegration.record_follow_up(
        world["alice"], visit, done_on=date(2026, 3, 1), method="visit", outcome="re_trafficked"
    )
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "signs that the person was trafficked again" in page
    assert "Next follow-up visit" in page
    assert "30 Apr 2026" in page or "Apr 30, 2026" in page


def test_the_case_list_marks_and_filters_overdue_follow_ups(app, db, world, today):
    started(world)
    other = open_case(world["alice"], {"given_name": "Səbinə", "family_name": "Quliyeva"})
    reintegration.start_reintegration_plan(world["alice"], other, date(2026, 3, 1))
    db.session.commit()
    today.value = date(2026, 3, 15)  # the first case's 28 February visit is overdue
    alice = client_for(app, world["alice"])
    listed = alice.get("/cases/").get_data(as_text=True)
    assert listed.count("Follow-up overdue</span>") == 1
    filtered = alice.get("/cases/?follow_up=overdue").get_data(as_text=True)
    assert world["case"].reference in filtered
    assert other.reference not in filtered
    today.value = date(2026, 2, 1)
    assert world["case"].reference not in alice.get("/cases/?follow_up=overdue").get_data(
        as_text=True
    )


def test_the_filter_never_widens_the_list_to_another_agency(app, db, world, today):
    started(world)
    db.session.commit()
    today.value = date(2026, 6, 1)
    page = client_for(app, world["charlie"]).get("/cases/?follow_up=overdue").get_data(as_text=True)
    assert world["case"].reference not in page


PERSONAS = ("alice", "bob", "charlie", "lena", "admin", "analyst", "auditor", "coordinator")
ROUTES = {
    "visit": "/cases/{case_id}/aftercare/visits/{visit_id}",
    "measure": "/cases/{case_id}/aftercare/measures/{measure_id}/edit",
}
POSTS = {
    "reintegration": "/cases/{case_id}/aftercare/reintegration",
    "measures": "/cases/{case_id}/aftercare/measures",
    "visit": "/cases/{case_id}/aftercare/visits/{visit_id}",
    "measure": "/cases/{case_id}/aftercare/measures/{measure_id}/edit",
}


def _addresses(db, world) -> dict:
    plan = started(world)
    measure = reintegration.add_measure(world["alice"], plan, {"measure_type": "grant"})
    db.session.commit()
    visit = reintegration.visits_of(world["case"])[0]
    return {"case_id": world["case_id"], "visit_id": visit.id, "measure_id": measure.id}


@pytest.mark.parametrize(
    ("persona", "route"), [(persona, route) for persona in PERSONAS for route in ROUTES]
)
def test_access_matrix(app, db, world, persona, route):
    address = ROUTES[route].format(**_addresses(db, world))
    response = client_for(app, world[persona]).get(address)
    assert response.status_code == (200 if persona in ("alice", "bob") else 404)


@pytest.mark.parametrize(
    ("persona", "route"),
    [
        (p, r)
        for p in ("charlie", "lena", "admin", "analyst", "auditor", "coordinator")
        for r in POSTS
    ],
)
def test_changes_by_outsiders_are_not_found_and_change_nothing(app, db, world, persona, route):
    address = POSTS[route].format(**_addresses(db, world))
    data = {
        "started_on": "2026-01-31",
        "measure_type": "housing",
        "currency": "AZN",
        "status": "planned",
        "done_on": "2026-02-01",
        "method": "phone",
        "outcome": "stable",
        "version": "1",
    }
    response = client_for(app, world[persona]).post_form(address, data)
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.scalars(select(FollowUpVisit.done_on)).all() == [None] * 4
    assert len(db.session.scalars(select(ReintegrationMeasure)).all()) == 1


def test_a_closed_case_is_read_but_not_changed(app, db, world):
    ids = _addresses(db, world)
    world["case"].status = "closed"
    db.session.commit()
    client = client_for(app, world["alice"])
    assert client.get(ROUTES["visit"].format(**ids)).status_code == 200
    response = client.post_form(
        POSTS["visit"].format(**ids),
        {"done_on": "2026-02-01", "method": "phone", "outcome": "stable", "version": "1"},
    )
    assert response.status_code == 403


def test_raw_rows_hold_no_plaintext(db, world):
    plan = started(world)
    reintegration.add_measure(
        world["alice"], plan, {"measure_type": "grant", "notes": MEASURE_SECRET}
    )
    visit = reintegration.visits_of(world["case"])[0]
    reintegration.record_follow_up(
        world["alice"],
        visit,
        done_on=date(2026, 3, 1),
        method="visit",
        outcome="stable",
        notes=VISIT_SECRET,
    )
    db.session.commit()
    for table in (
        "reintegration_plans",
        "reintegration_measures",
        "follow_up_visits",
        "case_events",
        "audit_entries",
    ):
        assert_no_plaintext(raw_dump(db, table), GOALS_SECRET, MEASURE_SECRET, VISIT_SECRET)


def test_reading_the_page_is_audited_with_field_names(app, db, world):
    from core.audit import AuditEntry

    started(world)
    db.session.commit()
    assert (
        client_for(app, world["alice"]).get(f"/cases/{world['case_id']}/aftercare").status_code
        == 200
    )
    db.session.expire_all()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "aftercare.viewed")
    ).one()
    assert "follow_up_visit.notes" in entry.field_names
    assert GOALS_SECRET not in entry.field_names


def test_starting_reintegration_twice_is_refused_and_changes_nothing(app, db, world):
    alice = client_for(app, world["alice"])
    address = f"/cases/{world['case_id']}/aftercare/reintegration"
    assert alice.post_form(address, {"started_on": "2026-01-31"}).status_code == 302
    response = alice.post_form(address, {"started_on": "2026-02-15"})
    assert response.status_code == 400
    assert "already has a reintegration plan" in response.get_data(as_text=True)
    assert len(reintegration.visits_of(world["case"])) == 4


def test_the_overdue_badge_follows_the_controlled_clock_on_the_case_page(app, db, world, today):
    started(world)
    db.session.commit()
    alice = client_for(app, world["alice"])
    today.value = date(2026, 2, 28)
    assert "Overdue</span>" not in alice.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    today.value = date(2026, 3, 1)
    assert "Overdue</span>" in alice.get(f"/cases/{world['case_id']}").get_data(as_text=True)
