"""Return plans: sign-off rules, the steps as services and pages, access, what is stored."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy
from sqlalchemy import select, text

from casework import child_protection, returns
from casework.reintegration import FollowUpVisit
from casework.return_workflow import Action, InvalidTransition, State
from casework.returns import ReturnError, ReturnPlan, ReturnTransition
from casework.services import open_case
from casework.timeline import TimelineEvent
from core.audit import AuditEntry
from core.notifications import Notification
from tests.casework.aftercare_builders import (
    PLAN,
    RISK_SECRET,
    SIGNER_SECRET,
    assessed_plan,
    build_world,
    signed_plan,
)
from tests.casework.test_casefile import assert_no_plaintext, raw_dump
from tests.factories import client_for


@pytest.fixture
def world(app, db):
    return build_world(db)


def reload(db, plan_id: str) -> ReturnPlan:
    db.session.expire_all()
    return db.session.get(ReturnPlan, plan_id)


# Sign-off rules ----------------------------------------------------------------------------


def test_without_a_sign_off_the_plan_cannot_become_ready(db, world):
    plan = assessed_plan(world)
    with pytest.raises(InvalidTransition):
        returns.mark_return_ready(world["alice"], plan)
    with pytest.raises(InvalidTransition):
        returns.record_return(world["alice"], plan, date(2026, 3, 2))
    assert plan.state == State.RISK_ASSESSED


def test_the_coordinator_signs_off_and_the_return_goes_ahead(db, world):
    plan = signed_plan(world)
    assert plan.state == State.SIGNED_OFF
    assert plan.sign_off_decision == "approved"
    assert plan.signed_off_by_user_id == world["coordinator"].id
    returns.mark_return_ready(world["alice"], plan)
    returns.record_return(world["alice"], plan, date(2026, 3, 2), "Met by her brother")
    db.session.commit()
    plan = reload(db, plan.id)
    assert plan.state == State.RETURNED
    assert plan.returned_on == date(2026, 3, 2)
    assert plan.closed_at is not None
    steps = [step.action for step in returns.transitions_of(plan)]
    assert steps == ["assess_risk", "sign_off", "mark_ready", "record_return"]
    # The return starts the follow-up visits.
    due = sorted(db.session.scalars(select(FollowUpVisit.due_on)))
    assert due == [date(2026, 4, 2), date(2026, 6, 2), date(2026, 9, 2), date(2027, 3, 2)]


def test_a_legal_aid_agency_working_a_referral_on_the_case_may_sign(db, world):
    plan = assessed_plan(world)
    assert returns.side_of(world["lena"], plan) is returns.Side.SIGNER
    returns.sign_off_return(world["lena"], plan)
    assert plan.state == State.SIGNED_OFF
    assert plan.signed_off_by_agency_id == world["east"].id


def test_a_legal_aid_agency_without_an_accepted_referral_cannot_sign(db, world):
    plan = assessed_plan(world)
    assert returns.side_of(world["larry"], plan) is None
    with pytest.raises(ReturnError):
        returns.sign_off_return(world["larry"], plan)
    assert plan.state == State.RISK_ASSESSED


def test_a_legal_aid_agency_loses_the_right_when_its_referral_ends(db, world):
    from referrals import services as referral_services

    plan = assessed_plan(world)
    referral_services.cancel_referral(world["alice"], world["referral"], "No longer needed")
    with pytest.raises(ReturnError):
        returns.sign_off_return(world["lena"], plan)


@pytest.mark.parametrize("persona", ["alice", "bob", "charlie", "admin", "analyst", "auditor"])
def test_nobody_else_signs_off_not_even_the_owner(db, world, persona):
    plan = assessed_plan(world)
    with pytest.raises(ReturnError):
        returns.sign_off_return(world[persona], plan)


@pytest.mark.parametrize("persona", ["coordinator", "lena", "charlie", "larry"])
def test_the_signing_side_and_outsiders_cannot_take_the_owners_steps(db, world, persona):
    plan = signed_plan(world)
    with pytest.raises(ReturnError):
        returns.mark_return_ready(world[persona], plan)
    assert plan.state == State.SIGNED_OFF


def test_a_high_risk_can_only_be_answered_not_advised(db, world):
    plan = assessed_plan(world, risk="high")
    with pytest.raises(ReturnError):
        returns.sign_off_return(world["coordinator"], plan)
    returns.advise_against_return(world["coordinator"], plan, "Recruiters are in her village")
    assert plan.state == State.NOT_ADVISED
    # Not advised blocks the return: no way to ready or returned from here.
    for step in (returns.mark_return_ready, lambda u, p: returns.record_return(u, p, date.today())):
        with pytest.raises(InvalidTransition):
            step(world["alice"], plan)


def test_not_advised_needs_a_reason(db, world):
    plan = assessed_plan(world)
    with pytest.raises(ReturnError):
        returns.advise_against_return(world["coordinator"], plan, "  ")
    assert plan.state == State.RISK_ASSESSED


def test_the_database_refuses_an_approved_high_risk(db, world):
    plan = assessed_plan(world, risk="high")
    db.session.commit()
    with pytest.raises(sqlalchemy.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE return_plans SET state = 'signed_off', sign_off_decision = 'approved',"
                " signed_off_at = created_at WHERE id = :id"
            ),
            {"id": plan.id},
        )


def test_the_database_refuses_ready_without_a_sign_off(db, world):
    plan = assessed_plan(world)
    db.session.commit()
    with pytest.raises(sqlalchemy.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(
            text("UPDATE return_plans SET state = 'ready' WHERE id = :id"), {"id": plan.id}
        )


def test_a_new_assessment_voids_the_sign_off(db, world):
    plan = signed_plan(world)
    returns.assess_return_risk(world["alice"], plan, "high", "The recruiter was released")
    assert plan.state == State.RISK_ASSESSED
    assert plan.sign_off_decision is None
    assert plan.signed_off_at is None
    assert plan.sign_off_note is None
    with pytest.raises(InvalidTransition):
        returns.mark_return_ready(world["alice"], plan)


def test_a_not_advised_plan_can_be_reassessed_and_signed_off(db, world):
    plan = assessed_plan(world, risk="high")
    returns.advise_against_return(world["coordinator"], plan, "Not safe now")
    returns.assess_return_risk(world["alice"], plan, "low", "The trafficker is in prison")
    returns.sign_off_return(world["coordinator"], plan)
    assert plan.state == State.SIGNED_OFF


def test_ready_needs_a_travel_document_and_a_date(db, world):
    plan = signed_plan(world, travel_document_status="needed", planned_on=None)
    with pytest.raises(ReturnError) as error:
        returns.mark_return_ready(world["alice"], plan)
    assert "travel document" in str(error.value)
    problems = returns.return_problems(plan, Action.MARK_READY)
    assert len(problems) == 2
    returns.update_return_plan(
        world["alice"],
        plan,
        {"travel_document_status": "issued", "planned_on": date(2026, 5, 1)},
        expected_version=plan.version,
    )
    returns.mark_return_ready(world["alice"], plan)
    assert plan.state == State.READY


def test_a_new_destination_after_sign_off_needs_a_new_assessment(db, world):
    plan = signed_plan(world)
    with pytest.raises(ReturnError):
        returns.update_return_plan(
            world["alice"],
            plan,
            {"destination_country": "TR", "destination_region": None},
            expected_version=plan.version,
        )


def test_an_edit_on_an_old_version_is_refused(db, world):
    from casework.services import EditConflict

    plan = assessed_plan(world)
    with pytest.raises(EditConflict):
        returns.update_return_plan(
            world["alice"], plan, {"escort": "family"}, expected_version=plan.version - 1
        )


def test_one_open_plan_per_case(db, world):
    plan = assessed_plan(world)
    with pytest.raises(ReturnError):
        returns.start_return_plan(world["alice"], world["case"], PLAN)
    returns.record_choice_to_stay(world["alice"], plan, "She wants to stay in Baku")
    assert plan.state == State.STAYED
    second = returns.start_return_plan(world["alice"], world["case"], PLAN)
    assert second.state == State.DRAFT


def test_cancelling_needs_a_coded_reason(db, world):
    plan = assessed_plan(world)
    with pytest.raises(ValueError):
        returns.cancel_return(world["alice"], plan, "")
    returns.cancel_return(world["alice"], plan, "family_not_safe", "Father threatened her")
    assert plan.state == State.CANCELLED
    assert plan.cancel_reason == "family_not_safe"


def test_a_region_only_for_azerbaijan(db, world):
    plan = returns.start_return_plan(
        world["alice"], world["case"], {**PLAN, "destination_country": "TR"}
    )
    assert plan.destination_region is None


# Children ----------------------------------------------------------------------------------


@pytest.fixture
def child_world(world, db):
    case = open_case(
        world["alice"],
        {
            "given_name": "Aytən",
            "date_of_birth": date(2012, 5, 1),
            "identified_on": date(2026, 1, 5),
        },
    )
    db.session.commit()
    assert case.is_minor
    return {**world, "case": case, "case_id": case.id}


def test_a_child_without_best_interests_is_not_returned(db, child_world, monkeypatch):
    calls = []

    def blocked(case, purpose):
        calls.append(purpose)
        return "No best-interests determination yet."

    monkeypatch.setattr(child_protection, "best_interests_problem", blocked)
    plan = signed_plan(child_world)
    with pytest.raises(ReturnError) as error:
        returns.mark_return_ready(child_world["alice"], plan)
    assert "best-interests" in str(error.value)
    assert calls and set(calls) == {"return"}
    assert plan.state == State.SIGNED_OFF


def test_a_child_with_a_best_interests_decision_may_be_returned(db, child_world, monkeypatch):
    monkeypatch.setattr(child_protection, "best_interests_problem", lambda case, purpose: None)
    plan = signed_plan(child_world)
    returns.mark_return_ready(child_world["alice"], plan)
    returns.record_return(child_world["alice"], plan, date(2026, 3, 2))
    assert plan.state == State.RETURNED


def test_an_adults_return_does_not_ask_the_child_path(db, world, monkeypatch):
    monkeypatch.setattr(
        child_protection, "best_interests_problem", lambda case, purpose: pytest.fail("asked")
    )
    plan = signed_plan(world)
    returns.mark_return_ready(world["alice"], plan)


# Audit, timeline, notifications, storage ---------------------------------------------------


def test_every_step_is_audited_and_on_the_timeline(db, world):
    plan = signed_plan(world)
    returns.mark_return_ready(world["alice"], plan)
    db.session.commit()
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"return.created", "return.risk_assessed", "return.signed_off", "return.ready"} <= (
        actions
    )
    kinds = set(
        db.session.scalars(
            select(TimelineEvent.kind).where(TimelineEvent.case_id == world["case_id"])
        )
    )
    assert {"return.created", "return.risk_assessed", "return.signed_off", "return.ready"} <= (
        kinds
    )
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "return.risk_assessed")
    ).one()
    assert RISK_SECRET not in entry.field_names


def test_the_signers_are_notified_and_the_owner_hears_back(db, world):
    plan = assessed_plan(world)
    db.session.commit()
    notified = set(
        db.session.scalars(
            select(Notification.user_id).where(Notification.kind == "return.sign_off_requested")
        )
    )
    assert world["coordinator"].id in notified
    assert world["lena"].id in notified
    assert world["larry"].id not in notified
    returns.sign_off_return(world["coordinator"], plan)
    db.session.commit()
    told = set(
        db.session.scalars(
            select(Notification.user_id).where(Notification.kind == "return.signed_off")
        )
    )
    assert world["alice"].id in told


def test_raw_rows_hold_no_plaintext(db, world):
    plan = assessed_plan(world, risk="high")
    returns.advise_against_return(world["coordinator"], plan, SIGNER_SECRET)
    db.session.commit()
    for table in ("return_plans", "return_plan_transitions", "case_events", "audit_entries"):
        assert_no_plaintext(raw_dump(db, table), RISK_SECRET, SIGNER_SECRET)
    assert reload(db, plan.id).risk_notes == RISK_SECRET
    assert db.session.scalars(select(ReturnTransition.id)).first() is not None


# Pages: access -----------------------------------------------------------------------------

PERSONAS = (
    "alice",
    "bob",
    "charlie",
    "lena",
    "larry",
    "admin",
    "analyst",
    "auditor",
    "coordinator",
)
CASE_PAGE = {"alice": 200, "bob": 200}
PLAN_PAGE = {"alice": 200, "bob": 200, "lena": 200, "coordinator": 200}
QUEUE_PAGE = {"lena": 200, "larry": 200, "coordinator": 200}
ROUTES = {
    "aftercare": ("/cases/{case_id}/aftercare", CASE_PAGE),
    "edit_return": ("/cases/{case_id}/aftercare/return/edit", CASE_PAGE),
    "plan": ("/aftercare/returns/{plan_id}", PLAN_PAGE),
    "queue": ("/aftercare/returns", QUEUE_PAGE),
}
MATRIX = [
    (persona, route, ROUTES[route][1].get(persona, 404)) for route in ROUTES for persona in PERSONAS
]


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, db, world, persona, route, expected):
    plan = assessed_plan(world)
    db.session.commit()
    address = ROUTES[route][0].format(case_id=world["case_id"], plan_id=plan.id)
    response = client_for(app, world[persona]).get(address)
    assert response.status_code == expected
    if expected == 200:
        assert response.headers["Cache-Control"] == "no-store"
        page = response.get_data(as_text=True)
        # The signing side reads the plan, never the person's name.
        if persona in ("lena", "coordinator", "larry"):
            assert "Gülnarə" not in page


def test_a_draft_is_not_shown_to_the_signing_side(app, db, world):
    plan = returns.start_return_plan(world["alice"], world["case"], PLAN)
    db.session.commit()
    for persona in ("coordinator", "lena"):
        response = client_for(app, world[persona]).get(f"/aftercare/returns/{plan.id}")
        assert response.status_code == 404


def test_a_refused_plan_read_is_audited_as_denied(app, db, world):
    plan = assessed_plan(world)
    db.session.commit()
    client_for(app, world["charlie"]).get(f"/aftercare/returns/{plan.id}")
    db.session.expire_all()
    denied = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "return_plan.view_denied")
    ).all()
    assert [entry.outcome for entry in denied] == ["denied"]


OWNER_POSTS = {
    "create": "/cases/{case_id}/aftercare/return",
    "assess": "/cases/{case_id}/aftercare/return/assess",
    "ready": "/cases/{case_id}/aftercare/return/ready",
    "returned": "/cases/{case_id}/aftercare/return/returned",
    "cancel": "/cases/{case_id}/aftercare/return/cancel",
    "stay": "/cases/{case_id}/aftercare/return/stay",
}


@pytest.mark.parametrize(
    ("persona", "route"),
    [
        (p, r)
        for p in ("charlie", "lena", "admin", "analyst", "auditor", "coordinator")
        for r in OWNER_POSTS
    ],
)
def test_owner_steps_by_others_are_not_found_and_change_nothing(app, db, world, persona, route):
    plan = assessed_plan(world)
    db.session.commit()
    data = {"risk_level": "low", "risk_notes": "x", "cancel_reason": "other", **PLAN_FORM}
    response = client_for(app, world[persona]).post_form(
        OWNER_POSTS[route].format(case_id=world["case_id"]), data
    )
    assert response.status_code == 404
    assert reload(db, plan.id).state == State.RISK_ASSESSED


@pytest.mark.parametrize("persona", ["alice", "bob", "charlie", "larry", "admin", "analyst"])
def test_sign_off_by_anyone_but_the_signing_side_is_refused(app, db, world, persona):
    plan = assessed_plan(world)
    db.session.commit()
    response = client_for(app, world[persona]).post_form(f"/aftercare/returns/{plan.id}/sign-off")
    # The case's own staff see the plan (403: not theirs to sign); others do not (404).
    assert response.status_code == (403 if persona in ("alice", "bob") else 404)
    assert reload(db, plan.id).state == State.RISK_ASSESSED


def test_steps_reject_get(app, db, world):
    client = client_for(app, world["alice"])
    for route in OWNER_POSTS.values():
        assert client.get(route.format(case_id=world["case_id"])).status_code == 405


# Pages: doing things -----------------------------------------------------------------------

PLAN_FORM = {
    "destination_country": "AZ",
    "destination_region": "lankaran_astara",
    "travel_document_status": "valid_passport",
    "escort": "ngo",
    "planned_on": "2026-03-01",
}


@pytest.fixture
def seeded(world, db):
    from casework.reference import seed_reference_lists

    seed_reference_lists()
    db.session.commit()
    return world


def test_the_whole_return_through_the_pages(app, db, seeded):
    world = seeded
    alice = client_for(app, world["alice"])
    base = f"/cases/{world['case_id']}/aftercare"
    assert alice.post_form(f"{base}/return", PLAN_FORM).status_code == 302
    response = alice.post_form(
        f"{base}/return/assess", {"risk_level": "medium", "risk_notes": RISK_SECRET}
    )
    assert response.status_code == 302
    plan = db.session.scalars(select(ReturnPlan)).one()
    zaur = client_for(app, world["coordinator"])
    page = zaur.get(f"/aftercare/returns/{plan.id}").get_data(as_text=True)
    assert RISK_SECRET in page
    assert zaur.post_form(f"/aftercare/returns/{plan.id}/sign-off", {"note": ""}).status_code == 302
    assert alice.post_form(f"{base}/return/ready").status_code == 302
    response = alice.post_form(f"{base}/return/returned", {"returned_on": "2026-03-01"})
    assert response.status_code == 302
    assert reload(db, plan.id).state == State.RETURNED
    page = alice.get(base).get_data(as_text=True)
    assert "Returned" in page
    assert "Follow-up visits" in page


def test_bad_input_re_renders_with_what_was_typed(app, db, seeded):
    world = seeded
    alice = client_for(app, world["alice"])
    base = f"/cases/{world['case_id']}/aftercare"
    typed = {**PLAN_FORM, "destination_country": "TR", "planned_on": "not a date"}
    response = alice.post_form(f"{base}/return", typed)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'value="TR" selected' in page or 'selected value="TR"' in page
    assert "not a date" in page
    assert db.session.scalars(select(ReturnPlan)).first() is None


def test_not_advised_without_a_reason_is_refused_on_the_page(app, db, seeded):
    plan = assessed_plan(seeded, risk="high")
    db.session.commit()
    zaur = client_for(app, seeded["coordinator"])
    response = zaur.post_form(f"/aftercare/returns/{plan.id}/not-advised", {"reason": ""})
    assert response.status_code == 400
    page = zaur.get(f"/aftercare/returns/{plan.id}").get_data(as_text=True)
    assert "the only possible answer" in page
    response = zaur.post_form(
        f"/aftercare/returns/{plan.id}/not-advised", {"reason": "Family is involved"}
    )
    assert response.status_code == 302
    assert reload(db, plan.id).state == State.NOT_ADVISED


def test_the_case_page_shows_the_panel(app, db, seeded):
    signed_plan(seeded)
    db.session.commit()
    page = (
        client_for(app, seeded["alice"]).get(f"/cases/{seeded['case_id']}").get_data(as_text=True)
    )
    assert "Return and reintegration" in page
    assert "Signed off" in page


# Demo data ---------------------------------------------------------------------------------


def test_the_demo_has_every_return_path(app, db):
    from casework.reintegration import ReintegrationMeasure, ReintegrationPlan
    from core.demo import load_demo_data

    load_demo_data(case_count=60)
    db.session.expire_all()
    plans = db.session.scalars(select(ReturnPlan)).all()
    assert {plan.state for plan in plans} == {state.value for state in State}
    returned = next(plan for plan in plans if plan.state == State.RETURNED)
    assert returned.signed_off_by.email == "coordinator@nrm.demo"
    signed = next(plan for plan in plans if plan.state == State.SIGNED_OFF)
    assert signed.signed_off_by.email == "caseworker@legal.demo"
    assert {plan.case.owner_agency.name for plan in plans} == {
        "Təmiz Dünya NGO",
        "Ümid Evi Shelter",
    }
    assert len(db.session.scalars(select(ReintegrationPlan)).all()) == 2
    measures = db.session.scalars(select(ReintegrationMeasure)).all()
    assert len(measures) >= 6 and sum(1 for m in measures if m.amount) >= 5
    visits = db.session.scalars(select(FollowUpVisit)).all()
    from casework.models import local_today

    assert any(visit.done_on for visit in visits)
    assert any(visit.is_overdue(local_today()) for visit in visits)
    assert any(not visit.done_on and visit.due_on >= local_today() for visit in visits)
    assert sum(visit.retrafficked for visit in visits) == 1
    # Idempotent: a second load adds nothing.
    load_demo_data(case_count=60)
    assert len(db.session.scalars(select(ReturnPlan)).all()) == len(plans)


def test_the_coordinator_sees_the_waiting_plans_in_the_navigation(app, db, world):
    assessed_plan(world)
    db.session.commit()
    page = client_for(app, world["coordinator"]).get("/aftercare/returns").get_data(as_text=True)
    assert 'Return sign-offs <span class="badge badge--warn">1</span>' in page
    assert world["case"].reference in page
    # Legal-aid staff reach the list from their notification, not from the navigation.
    page = client_for(app, world["lena"]).get("/aftercare/returns").get_data(as_text=True)
    assert world["case"].reference in page
    page = client_for(app, world["larry"]).get("/aftercare/returns").get_data(as_text=True)
    assert world["case"].reference not in page


def test_a_child_is_blocked_by_the_real_child_path_without_a_determination(db, child_world):
    plan = signed_plan(child_world)
    problems = returns.return_problems(plan, Action.MARK_READY)
    assert problems and "best-interests" in " ".join(problems)
    with pytest.raises(ReturnError):
        returns.mark_return_ready(child_world["alice"], plan)


def test_a_closed_cases_plan_is_not_signed_any_more(db, world):
    plan = assessed_plan(world)
    world["case"].status = "closed"
    db.session.flush()
    with pytest.raises(ReturnError):
        returns.sign_off_return(world["coordinator"], plan)
