"""The national coordinator's status decision: who reaches it, what the coordinator sees and
when, what a decision changes, its validation, the 24-hour rule and the NRM status moves."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from casework.models import Case, local_today
from casework.services import open_case
from casework.timeline import TimelineEvent
from core import policy
from core.audit import AuditEntry
from core.db import utcnow
from core.models import AgencyType, Role
from core.notifications import Notification
from referrals import decisions, services
from referrals.decision_views import waiting_count
from referrals.decisions import Decision, DecisionError
from referrals.models import Referral
from tests.factories import client_for, make_agency, make_user
from tests.referrals.builders import SECRETS, build_world, consent_to

SHARED = ("identity", "exploitation")


@pytest.fixture
def world(db):
    built = build_world(db)
    police = make_agency(AgencyType.POLICE, name="Police CTU")
    # The coordinator role outside the national coordinator agency counts for nothing.
    built["stray_coordinator"] = make_user(police, Role.COORDINATOR)
    db.session.commit()
    return built


def request_decision(world, *, sections=SHARED, now=None):
    """Draft and send Alice's request to the NRM Office for the status decision."""
    consent_to(world, world["nrm"])
    referral = services.create_referral(
        world["alice"],
        world["case"],
        receiving_agency=world["nrm"],
        service_type="status_decision",
        urgency="urgent",
        reason="Presumed victim identified in a raid.",
        sections=sections,
    )
    services.send_referral(world["alice"], referral, now=now)
    return referral


def in_state(db, world, state: str) -> Referral:
    referral = request_decision(world)
    coordinator = world["coordinator"]
    if state in ("accepted", "in_progress", "completed"):
        services.accept_referral(coordinator, referral)
    if state in ("in_progress",):
        services.start_referral(coordinator, referral)
    if state == "completed":
        decisions.record_status_decision(coordinator, referral, "recognised", local_today())
    if state == "declined":
        services.decline_referral(coordinator, referral, "Send the indicators first.")
    if state == "cancelled":
        services.cancel_referral(world["alice"], referral)
    db.session.commit()
    return referral


def reload_case(db, world) -> Case:
    db.session.expire_all()
    return db.session.get(Case, world["case_id"])


# Access ------------------------------------------------------------------------------------

ROUTES = {
    "index": ("GET", "/nrm/"),
    "decide": ("GET", "/nrm/referrals/{referral_id}/decision"),
    "record": ("POST", "/nrm/referrals/{referral_id}/decision"),
    "case": ("GET", "/nrm/cases/{case_id}"),
    "case_page": ("GET", "/cases/{case_id}"),
}
NOBODY = {"index": 404, "decide": 404, "record": 404, "case": 404, "case_page": 404}
EXPECTED = {
    # The case page sends the coordinator to the decision page: never the whole file.
    "coordinator": {"index": 200, "decide": 200, "record": 400, "case": 302, "case_page": 302},
    "stray_coordinator": NOBODY,
    # The sender sees the referral (403 for the coordinator's action) and owns the case.
    "alice": {"index": 404, "decide": 403, "record": 403, "case": 404, "case_page": 200},
    "bob": {"index": 404, "decide": 403, "record": 403, "case": 404, "case_page": 200},
    "charlie": NOBODY,
    "hana": NOBODY,
    "admin": NOBODY,
    "analyst": NOBODY,
    "auditor": NOBODY,
}


@pytest.mark.parametrize(
    ("persona", "route", "expected"),
    [(p, r, s) for p, statuses in EXPECTED.items() for r, s in statuses.items()],
)
def test_access_matrix(app, db, world, persona, route, expected):
    referral = in_state(db, world, "accepted")
    method, url = ROUTES[route]
    url = url.format(referral_id=referral.id, case_id=world["case_id"])
    client = client_for(app, world[persona])
    # An empty form: the coordinator gets it back with errors, nobody else gets that far.
    response = client.get(url) if method == "GET" else client.post_form(url, {})
    assert response.status_code == expected


def test_the_case_page_sends_the_coordinator_to_the_decision(app, db, world):
    referral = in_state(db, world, "accepted")
    client = client_for(app, world["coordinator"])
    response = client.get(f"/cases/{world['case_id']}", follow_redirects=True)
    assert response.status_code == 200
    assert response.request.path == f"/nrm/referrals/{referral.id}/decision"


@pytest.mark.parametrize("page", ["notes", "services", "attachments", "consent", "edit"])
def test_the_coordinator_never_opens_the_case_file(app, db, world, page):
    in_state(db, world, "accepted")
    client = client_for(app, world["coordinator"])
    assert client.get(f"/cases/{world['case_id']}/{page}").status_code == 404


def test_the_record_action_rejects_get(app, db, world):
    referral = in_state(db, world, "accepted")
    client = client_for(app, world["coordinator"])
    # GET on the same address is the form, never a change.
    client.get(f"/nrm/referrals/{referral.id}/decision")
    assert reload_case(db, world).nrm_status == "pending_decision"


def test_a_referral_that_is_no_status_decision_has_no_decision_page(app, db, world):
    consent_to(world, world["nrm"])
    referral = services.create_referral(
        world["alice"],
        world["case"],
        receiving_agency=world["nrm"],
        service_type="legal_aid",
        urgency="urgent",
        reason="Advice.",
        sections=SHARED,
    )
    services.send_referral(world["alice"], referral)
    services.accept_referral(world["coordinator"], referral)
    db.session.commit()
    client = client_for(app, world["coordinator"])
    assert client.get(f"/nrm/referrals/{referral.id}/decision").status_code == 404
    # Nor does it share the case with the NRM.
    assert not policy.can_view_case(world["coordinator"], world["case"])


# What the coordinator sees, and when -------------------------------------------------------


def test_the_coordinator_sees_only_the_shared_sections(app, db, world):
    referral = in_state(db, world, "accepted")
    page = client_for(app, world["coordinator"]).get(f"/nrm/referrals/{referral.id}/decision")
    text = page.get_data(as_text=True)
    for section, secret in SECRETS.items():
        assert (secret in text) is (section in SHARED), section
    read = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "referral.case_viewed")
    ).all()
    assert read and "case.given_name" in read[-1].field_names


@pytest.mark.parametrize("state", ["sent", "accepted", "in_progress", "completed", "declined"])
def test_the_case_is_shared_with_the_nrm_only_while_the_request_is_worked(db, world, state):
    referral = in_state(db, world, state)
    coordinator = world["coordinator"]
    sharing = state in ("accepted", "in_progress")
    assert policy.can_view_case(coordinator, world["case"]) is sharing
    assert not policy.can_read_case_file(coordinator, world["case"])
    assert bool(policy.referral_sections(coordinator, referral)) is sharing


def test_after_the_decision_the_coordinator_no_longer_reads_the_sections(app, db, world):
    referral = in_state(db, world, "completed")
    client = client_for(app, world["coordinator"])
    assert client.get(f"/nrm/referrals/{referral.id}/decision").status_code == 403
    text = client.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert SECRETS["identity"] not in text
    assert client.get(f"/cases/{world['case_id']}").status_code == 404


SCOPE_PERSONAS = ["coordinator", "stray_coordinator", "alice", "bob", "hana", "charlie"]
SCOPE_PERSONAS += ["admin", "analyst", "auditor"]


@pytest.mark.parametrize(
    "state", ["sent", "accepted", "in_progress", "completed", "declined", "cancelled"]
)
def test_policy_and_scope_agree(db, world, state):
    in_state(db, world, state)
    # A case nobody referred to the NRM: never the coordinator's.
    open_case(world["charlie"], {"given_name": "Unreferred"})
    cases = db.session.scalars(select(Case)).all()
    for persona in SCOPE_PERSONAS:
        user = world[persona]
        scoped = set(db.session.scalars(policy.visible_cases(user).with_only_columns(Case.id)))
        for case in cases:
            assert (case.id in scoped) is policy.can_view_case(user, case), (persona, state)


# The decision ------------------------------------------------------------------------------


def test_a_decision_updates_the_case_timeline_audit_and_owner(app, db, world):
    referral = in_state(db, world, "accepted")
    coordinator = world["coordinator"]
    decided = local_today()
    decision = decisions.record_status_decision(
        coordinator, referral, "recognised", decided, reason_text="Indicators are clear."
    )
    db.session.commit()
    case = reload_case(db, world)
    assert case.nrm_status == "recognised"
    assert case.nrm_decided_on == decided
    assert case.nrm_decided_by_id == coordinator.id
    # Decided: the reflection period is no longer warned about.
    assert case.reflection_state(today=case.reflection_period_ends_on + timedelta(days=3)) == (
        "none"
    )
    referral = db.session.get(Referral, referral.id)
    assert referral.state == "completed"
    assert referral.outcome == "service_provided"
    stored = db.session.get(Decision, decision.id)
    assert stored.reason == "Indicators are clear."
    assert stored.referral_id == referral.id
    kinds = [event.kind for event in db.session.scalars(select(TimelineEvent))]
    assert "nrm.decided" in kinds
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action.in_(["nrm.decided", "nrm.decision_recorded"]))
    ).all()
    assert {entry.action for entry in entries} == {"nrm.decided", "nrm.decision_recorded"}
    for entry in entries:
        assert "Indicators" not in (entry.field_names or "")
    recorded = next(e for e in entries if e.action == "nrm.decision_recorded")
    assert "decision.reason" in recorded.field_names
    notified = db.session.scalars(
        select(Notification).where(Notification.kind == "nrm.decided")
    ).all()
    assert {note.user_id for note in notified} == {world["alice"].id, world["bob"].id}
    assert {note.reference for note in notified} == {case.reference}


def test_a_negative_decision_needs_a_reason_code(db, world):
    referral = in_state(db, world, "in_progress")
    coordinator = world["coordinator"]
    with pytest.raises(DecisionError):
        decisions.record_status_decision(coordinator, referral, "not_recognised", local_today())
    with pytest.raises(DecisionError):
        decisions.record_status_decision(
            coordinator, referral, "not_recognised", local_today(), "other"
        )
    decisions.record_status_decision(
        coordinator, referral, "not_recognised", local_today(), "insufficient_indicators"
    )
    db.session.commit()
    case = reload_case(db, world)
    assert case.nrm_status == "not_recognised"
    assert decisions.decisions_of(case)[0].reason_code == "insufficient_indicators"


def test_a_recognition_takes_no_negative_reason(db, world):
    case = world["case"]
    problems = decisions.check_decision(case, "recognised", local_today(), "other", "x")
    assert [name for name, _message in problems] == ["reason_code"]


def test_the_decision_date_is_neither_in_the_future_nor_before_identification(db, world):
    case = world["case"]
    case.identified_on = date(2026, 1, 5)
    today = date(2026, 2, 1)
    check = decisions.check_decision
    assert check(case, "recognised", date(2026, 1, 5), None, None, today=today) == []
    assert check(case, "recognised", today, None, None, today=today) == []
    future = check(case, "recognised", today + timedelta(days=1), None, None, today=today)
    before = check(case, "recognised", date(2026, 1, 4), None, None, today=today)
    assert [name for name, _message in future] == ["decided_on"]
    assert [name for name, _message in before] == ["decided_on"]


def test_the_form_keeps_what_was_typed_and_answers_400(app, db, world):
    referral = in_state(db, world, "accepted")
    client = client_for(app, world["coordinator"])
    future = (local_today() + timedelta(days=2)).isoformat()
    response = client.post_form(
        f"/nrm/referrals/{referral.id}/decision",
        {"outcome": "not_recognised", "decided_on": future, "reason_text": "Typed reason"},
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Typed reason" in text
    assert future in text
    assert "Choose why the person was not recognised." in text
    assert "cannot be in the future" in text
    assert reload_case(db, world).nrm_status == "pending_decision"


def test_the_decision_goes_through_the_real_form(app, db, world):
    referral = in_state(db, world, "accepted")
    client = client_for(app, world["coordinator"])
    response = client.post_form(
        f"/nrm/referrals/{referral.id}/decision",
        {
            "outcome": "not_recognised",
            "decided_on": local_today().isoformat(),
            "reason_code": "other_crime",
            "reason_text": "Labour dispute, referred to the labour inspectorate.",
            "version": str(referral.version),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/referrals/{referral.id}")
    assert reload_case(db, world).nrm_status == "not_recognised"
    # Repeating the POST changes nothing: the referral is completed.
    again = client.post_form(
        f"/nrm/referrals/{referral.id}/decision",
        {"outcome": "recognised", "decided_on": local_today().isoformat()},
    )
    assert again.status_code == 403
    assert reload_case(db, world).nrm_status == "not_recognised"
    assert len(decisions.decisions_of(reload_case(db, world))) == 1


def test_the_sender_sees_the_status_on_the_case_page(app, db, world):
    in_state(db, world, "completed")
    text = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}").get_data(True)
    assert "Recognised as a victim" in text


def test_the_generic_complete_is_not_offered_for_a_status_decision(db, world):
    referral = in_state(db, world, "in_progress")
    assert not policy.can_complete_referral(world["coordinator"], referral)
    assert policy.can_record_status_decision(world["coordinator"], referral)
    assert not policy.can_record_status_decision(world["alice"], referral)
    assert not policy.can_record_status_decision(world["stray_coordinator"], referral)


# The NRM status follows the request --------------------------------------------------------


def test_sending_makes_the_status_pending_and_a_decline_makes_it_presumed_again(db, world):
    referral = request_decision(world)
    db.session.commit()
    assert reload_case(db, world).nrm_status == "pending_decision"
    referral = db.session.get(Referral, referral.id)
    services.decline_referral(world["coordinator"], referral, "Incomplete.")
    db.session.commit()
    assert reload_case(db, world).nrm_status == "presumed"
    kinds = [event.kind for event in db.session.scalars(select(TimelineEvent))]
    assert "nrm.pending" in kinds and "nrm.request_ended" in kinds


def test_the_list_shows_the_waiting_requests_oldest_first(app, db, world):
    first = request_decision(world, now=utcnow() - timedelta(hours=2))
    case_one = world["case"].reference
    second_case = open_case(world["alice"], {"given_name": "Second"})
    world["case"] = second_case
    request_decision(world)
    db.session.commit()
    text = client_for(app, world["coordinator"]).get("/nrm/").get_data(as_text=True)
    assert text.index(case_one) < text.index(second_case.reference)
    assert f"/referrals/{first.id}" in text
    assert waiting_count(world["coordinator"]) == 2
    assert waiting_count(world["alice"]) == 0


# The 24-hour rule --------------------------------------------------------------------------


def test_the_deadline_runs_from_identification_not_from_sending(app, db, world):
    case = world["case"]
    identified = utcnow() - timedelta(hours=5)
    case.created_at = identified
    db.session.commit()
    referral = request_decision(world, now=identified + timedelta(hours=3))
    assert referral.response_due_at == identified + timedelta(hours=24)


def test_the_notification_period_is_configurable(app, db, world):
    app.config["HAVEN_NRM_NOTIFICATION_HOURS"] = 48
    try:
        case = world["case"]
        identified = utcnow() - timedelta(hours=1)
        case.created_at = identified
        referral = request_decision(world, now=identified + timedelta(hours=30))
        assert referral.response_due_at == identified + timedelta(hours=48)
    finally:
        app.config["HAVEN_NRM_NOTIFICATION_HOURS"] = 24


def test_a_late_notification_gets_the_ordinary_deadline_instead_of_expiring(db, world):
    case = world["case"]
    identified = utcnow() - timedelta(hours=40)
    case.created_at = identified
    sent_at = identified + timedelta(hours=30)
    referral = request_decision(world, now=sent_at)
    assert referral.response_due_at == sent_at + timedelta(hours=24)


def test_an_earlier_identification_day_counts_to_its_end(db, world):
    case = world["case"]
    case.created_at = utcnow()
    case.identified_on = local_today() - timedelta(days=3)
    due = decisions.notification_due(case)
    assert due < case.created_at
    assert due.astimezone(decisions._zone()).date() == local_today() - timedelta(days=1)


def test_the_case_page_warns_when_the_coordinator_was_not_notified(app, db, world):
    case = world["case"]
    identified = utcnow() - timedelta(hours=25)
    case.created_at = identified
    db.session.commit()
    assert decisions.needs_notification(case)
    assert not decisions.needs_notification(case, now=identified + timedelta(hours=23))
    client = client_for(app, world["alice"])
    warning = "Not yet notified to the national coordinator"
    assert warning in client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    request_decision(world)
    db.session.commit()
    assert not decisions.needs_notification(reload_case(db, world))
    assert warning not in client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
