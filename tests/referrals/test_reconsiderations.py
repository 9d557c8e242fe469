"""Reconsideration of a negative status decision: who may ask and see it, the period with a
controlled clock, once per case, the whole path to a second decision, the coded reasons and
the figures statistics read (time to decision)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from casework.models import Case, local_today
from casework.timeline import TimelineEvent
from core.audit import AuditEntry
from core.models import AgencyType, Role
from core.notifications import Notification
from referrals import decisions, reconsiderations, services
from referrals.decision_views import waiting_count
from referrals.decisions import Decision, DecisionError, decision_durations, median_and_p90
from referrals.models import Referral
from referrals.reconsiderations import Reconsideration, ReconsiderationError
from tests.factories import client_for, make_agency, make_user
from tests.referrals.builders import build_world, consent_to

SHARED = ("identity", "exploitation")
NEW_INFORMATION = "She now names the recruiter who kept her passport in Antalya."


@pytest.fixture
def world(db):
    built = build_world(db)
    police = make_agency(AgencyType.POLICE, name="Police CTU")
    built["stray_coordinator"] = make_user(police, Role.COORDINATOR)
    db.session.commit()
    return built


def decide_first(db, world, outcome="not_recognised", reason="insufficient_indicators"):
    """Alice asks the NRM Office for the decision; the coordinator decides it today."""
    consent_to(world, world["nrm"])
    referral = services.create_referral(
        world["alice"],
        world["case"],
        receiving_agency=world["nrm"],
        service_type="status_decision",
        urgency="urgent",
        reason="Presumed victim identified in a raid.",
        sections=SHARED,
    )
    services.send_referral(world["alice"], referral)
    services.accept_referral(world["coordinator"], referral)
    decision = decisions.record_status_decision(
        world["coordinator"], referral, outcome, local_today(), reason if outcome else None
    )
    db.session.commit()
    return decision


def ask(db, world, **kwargs) -> Reconsideration:
    item = reconsiderations.request_reconsideration(
        world["alice"], world["case"], NEW_INFORMATION, ["health"], **kwargs
    )
    db.session.commit()
    return item


def reload_case(db, world) -> Case:
    db.session.expire_all()
    return db.session.get(Case, world["case_id"])


def accept(db, world, item: Reconsideration) -> Referral:
    referral = db.session.get(Referral, item.referral_id)
    services.accept_referral(world["coordinator"], referral)
    db.session.commit()
    return referral


# Access -----------------------------------------------------------------------------------

ROUTES = {
    "form": ("GET", "/nrm/cases/{case_id}/reconsideration"),
    "request": ("POST", "/nrm/cases/{case_id}/reconsideration"),
    "withdraw": ("POST", "/nrm/reconsiderations/{item_id}/withdraw"),
    "case_page": ("GET", "/cases/{case_id}"),
}
NOBODY = {"form": 404, "request": 404, "withdraw": 404, "case_page": 404}
OWNER = {"form": 200, "request": 400, "withdraw": 302, "case_page": 200}
EXPECTED = {
    "alice": OWNER,
    "bob": OWNER,
    # The coordinator sees the request (403 for the owner's withdrawal), never the case file;
    # its case page sends it to the decision page of the request it works on.
    "coordinator": {"form": 404, "request": 404, "withdraw": 403, "case_page": 302},
    "stray_coordinator": NOBODY,
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
    decide_first(db, world)
    item = ask(db, world)
    accept(db, world, item)
    method, url = ROUTES[route]
    url = url.format(case_id=world["case_id"], item_id=item.id)
    client = client_for(app, world[persona])
    response = client.get(url) if method == "GET" else client.post_form(url, {})
    assert response.status_code == expected
    state = db.session.scalar(select(Reconsideration.state))
    assert state == ("withdrawn" if expected == 302 and route == "withdraw" else "under_review")


def test_nobody_may_ask_before_a_negative_decision(app, db, world):
    decide_first(db, world, outcome="recognised", reason=None)
    client = client_for(app, world["alice"])
    url = f"/nrm/cases/{world['case_id']}/reconsideration"
    assert client.get(url).status_code == 403
    with pytest.raises(ReconsiderationError):
        reconsiderations.request_reconsideration(world["alice"], world["case"], "New.")


# The period, with a controlled clock -------------------------------------------------------


def test_a_request_on_the_last_allowed_day_works(db, world, monkeypatch):
    decision = decide_first(db, world)
    last = decision.decided_on + timedelta(days=30)
    monkeypatch.setattr(reconsiderations, "local_today", lambda: last)
    assert reconsiderations.request_problem(world["case"]) is None
    item = ask(db, world)
    assert item.state == "requested"


def test_the_day_after_the_period_is_refused_with_a_clear_error(app, db, world, monkeypatch):
    decision = decide_first(db, world)
    late = decision.decided_on + timedelta(days=31)
    monkeypatch.setattr(reconsiderations, "local_today", lambda: late)
    with pytest.raises(ReconsiderationError, match="period for asking for reconsideration ended"):
        reconsiderations.request_reconsideration(world["alice"], world["case"], NEW_INFORMATION)
    db.session.rollback()
    client = client_for(app, world["alice"])
    response = client.post_form(
        f"/nrm/cases/{world['case_id']}/reconsideration",
        {"new_information": NEW_INFORMATION, "sections": ["identity"]},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The period for asking for reconsideration ended on" in page
    # What was typed is shown again.
    assert "names the recruiter" in page
    assert db.session.scalar(select(Reconsideration.id)) is None


def test_the_period_is_configurable(app, db, world, monkeypatch):
    decision = decide_first(db, world)
    monkeypatch.setitem(app.config, "HAVEN_RECONSIDERATION_DAYS", 10)
    monkeypatch.setattr(
        reconsiderations, "local_today", lambda: decision.decided_on + timedelta(days=11)
    )
    assert reconsiderations.request_problem(world["case"]) is not None
    monkeypatch.setattr(
        reconsiderations, "local_today", lambda: decision.decided_on + timedelta(days=10)
    )
    assert reconsiderations.request_problem(world["case"]) is None


# Once per case ------------------------------------------------------------------------------


def test_a_case_is_reconsidered_once(db, world):
    decide_first(db, world)
    item = ask(db, world)
    with pytest.raises(ReconsiderationError, match="already reconsidered"):
        ask(db, world)
    db.session.rollback()
    referral = accept(db, world, item)
    decisions.record_status_decision(
        world["coordinator"], referral, "not_recognised", local_today(), "no_means_or_act"
    )
    db.session.commit()
    assert db.session.get(Reconsideration, item.id).state == "upheld"
    with pytest.raises(ReconsiderationError, match="already reconsidered"):
        ask(db, world)


def test_a_withdrawn_request_does_not_use_up_the_reconsideration(app, db, world):
    decide_first(db, world)
    item = ask(db, world)
    client = client_for(app, world["alice"])
    response = client.post_form(f"/nrm/reconsiderations/{item.id}/withdraw", {})
    assert response.status_code == 302
    db.session.expire_all()
    item = db.session.get(Reconsideration, item.id)
    assert item.state == "withdrawn"
    assert item.closed_at is not None
    assert db.session.get(Referral, item.referral_id).state == "cancelled"
    # Repeating the POST changes nothing.
    assert client.post_form(f"/nrm/reconsiderations/{item.id}/withdraw", {}).status_code == 403
    assert ask(db, world).state == "requested"


def test_a_request_the_coordinator_declines_lapses(db, world):
    decide_first(db, world)
    item = ask(db, world)
    referral = db.session.get(Referral, item.referral_id)
    services.decline_referral(world["coordinator"], referral, "Nothing new in substance.")
    db.session.commit()
    assert db.session.get(Reconsideration, item.id).state == "lapsed"
    # The negative decision stands.
    assert reload_case(db, world).nrm_status == "not_recognised"


# The whole path ---------------------------------------------------------------------------


def test_negative_then_reconsidered_and_recognised(app, db, world):
    first = decide_first(db, world)
    assert first.stage == "first"
    client = client_for(app, world["alice"])
    case_page = client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "Ask for reconsideration" in case_page
    response = client.post_form(
        f"/nrm/cases/{world['case_id']}/reconsideration",
        {"new_information": NEW_INFORMATION, "sections": ["identity", "health"]},
    )
    assert response.status_code == 302
    item = db.session.scalars(select(Reconsideration)).one()
    assert item.state == "requested"
    assert item.decision_id == first.id
    referral = db.session.get(Referral, item.referral_id)
    # The first request's sections and the new one; the new information is the reason.
    assert {section.value for section in referral.sections} == {
        "identity",
        "exploitation",
        "health",
    }
    assert referral.reason == NEW_INFORMATION
    # The first decision stands meanwhile; the case page shows the reconsideration.
    assert reload_case(db, world).nrm_status == "not_recognised"
    case_page = client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "Reconsideration requested" in case_page
    # The coordinator is told and sees it in the queue.
    told = db.session.scalars(
        select(Notification).where(Notification.kind == "nrm.reconsideration_requested")
    ).all()
    assert [note.user_id for note in told] == [world["coordinator"].id]
    assert waiting_count(world["coordinator"]) == 1
    coordinator = client_for(app, world["coordinator"])
    queue = coordinator.get("/nrm/").get_data(as_text=True)
    assert world["case"].reference in queue and "Reconsideration" in queue
    # Accepting puts it under review; the decision page shows the new information.
    referral = accept(db, world, item)
    assert db.session.get(Reconsideration, item.id).state == "under_review"
    page = coordinator.get(f"/nrm/referrals/{referral.id}/decision").get_data(as_text=True)
    assert NEW_INFORMATION in page
    viewed = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "nrm.reconsideration_viewed")
    ).all()
    assert [entry.user_id for entry in viewed] == [world["coordinator"].id]
    assert viewed[0].field_name_list == ["new_information"]
    response = coordinator.post_form(
        f"/nrm/referrals/{referral.id}/decision",
        {
            "outcome": "recognised",
            "decided_on": local_today().isoformat(),
            "reason_text": "The recruiter's identity confirms deception.",
            "version": str(referral.version),
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    case = reload_case(db, world)
    assert case.nrm_status == "recognised"
    item = db.session.get(Reconsideration, item.id)
    assert item.state == "overturned"
    second = item.second_decision
    assert second.stage == "reconsideration" and second.outcome == "recognised"
    assert [d.stage for d in decisions.decisions_of(case)] == ["reconsideration", "first"]
    kinds = [
        event.kind
        for event in db.session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.case_id == case.id)
            .order_by(TimelineEvent.occurred_at, TimelineEvent.sequence)
        )
    ]
    assert kinds.count("nrm.decided") == 2
    for kind in (
        "nrm.reconsideration_requested",
        "nrm.reconsideration_under_review",
        "nrm.reconsideration_overturned",
    ):
        assert kind in kinds
    owners = db.session.scalars(
        select(Notification).where(Notification.kind == "nrm.reconsidered")
    ).all()
    assert {note.user_id for note in owners} == {world["alice"].id, world["bob"].id}
    timeline = client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "Reconsidered: decision overturned" in timeline
    # Decided: the coordinator no longer reads the new information.
    assert coordinator.get(f"/nrm/referrals/{referral.id}/decision").status_code == 403


def test_the_second_decision_is_not_dated_before_the_first(db, world, monkeypatch):
    decide_first(db, world)
    item = ask(db, world)
    referral = accept(db, world, item)
    case = world["case"]
    problems = decisions.check_decision(
        case,
        "recognised",
        local_today() - timedelta(days=1),
        None,
        None,
        not_before=local_today(),
    )
    assert [name for name, _message in problems] == ["decided_on"]
    case.identified_on = local_today() - timedelta(days=5)
    with pytest.raises(DecisionError):
        decisions.record_status_decision(
            world["coordinator"], referral, "recognised", local_today() - timedelta(days=1)
        )


def test_the_new_information_is_not_stored_in_plaintext(db, world):
    decide_first(db, world)
    ask(db, world)
    raw = repr(db.session.execute(text("SELECT * FROM nrm_reconsiderations")).all())
    raw += repr(db.session.execute(text("SELECT * FROM audit_entries")).all())
    assert "recruiter" not in raw and "Antalya" not in raw


# Coded reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "insufficient_indicators",
        "no_exploitation_element",
        "no_means_or_act",
        "other_crime",
        "person_withdrew",
        "not_reachable",
    ],
)
def test_every_negative_reason_is_accepted_for_an_adult(db, world, code):
    assert decisions.check_decision(world["case"], "not_recognised", local_today(), code, "") == []


def test_a_negative_decision_needs_a_known_coded_reason(db, world):
    check = decisions.check_decision
    for code in (None, "", "made_up"):
        problems = check(world["case"], "not_recognised", local_today(), code, "x")
        assert [name for name, _message in problems] == ["reason_code"]


def test_no_means_is_not_a_reason_for_a_child(db, world):
    case = world["case"]
    case.is_minor = True
    problems = decisions.check_decision(
        case, "not_recognised", local_today(), "no_means_or_act", ""
    )
    assert [name for name, _message in problems] == ["reason_code"]


# For statistics ---------------------------------------------------------------------------


def test_decision_durations_count_days_from_identification(db, world):
    world["case"].identified_on = local_today() - timedelta(days=12)
    db.session.commit()
    decide_first(db, world)
    item = ask(db, world)
    referral = accept(db, world, item)
    decisions.record_status_decision(world["coordinator"], referral, "recognised", local_today())
    db.session.commit()
    rows = decision_durations()
    assert [(row.stage, row.outcome, row.days) for row in rows] == [
        ("first", "not_recognised", 12),
        ("reconsideration", "recognised", 12),
    ]
    assert rows[0].reason_code == "insufficient_indicators"
    assert [row.stage for row in decision_durations(stage="first")] == ["first"]
    assert decision_durations(since=local_today() + timedelta(days=1)) == []
    assert decision_durations(until=local_today() - timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], (None, None)),
        ([7], (7, 7)),
        ([1, 2, 3, 4], (2.5, 3.7)),
        ([10, 1, 5], (5, 9)),
        (list(range(1, 11)), (5.5, 9.1)),
    ],
)
def test_median_and_p90(values, expected):
    median, p90 = median_and_p90(values)
    if expected[0] is None:
        assert (median, p90) == expected
    else:
        assert median == pytest.approx(expected[0])
        assert p90 == pytest.approx(expected[1])


def test_decision_stage_is_in_the_model(db, world):
    decision = decide_first(db, world)
    assert db.session.get(Decision, decision.id).stage_label == "First decision"
    assert date.today()  # the clock is the app's; nothing here depends on the machine's
