"""Demo data: referrals in every state between the demo agencies, made through the services,
a transfer waiting for the receiving agency and requests for the national coordinator's
status decision at every step; loaded once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from casework.models import Case, NrmStatus
from casework.supervision import TransferRequest, TransferStatus
from casework.timeline import TimelineEvent
from core import demo
from core.audit import AuditEntry
from core.db import utcnow
from core.demo import DEMO_REFERRALS, DEMO_STATUS_DECISIONS, load_demo_data
from core.models import Agency, User
from core.notifications import Notification
from referrals.decision_views import waiting_count
from referrals.decisions import Decision
from referrals.models import DisclosureReceipt, Referral, ReferralNote, ReferralTransition
from referrals.workflow import State
from tests.factories import client_for

STATUS_DECISION = "status_decision"
# Enough for every demo referral, request and transfer to get an adult case of its own.
CASES = 60


# Issue 7's demo paths add referrals of their own (a legal-aid referral for a return sign-off,
# reconsiderations, more status decisions); they have their own tests. Here the demo's
# referral set is checked on its own.
NRM_PATH_SEEDERS = (
    "referrals.reconsiderations.seed_demo_refusals_and_reconsiderations",
    "casework.contacts.seed_demo_contacts",
    "casework.child_protection.seed_demo_child_path",
    "casework.returns.seed_demo_returns",
    "reports.nrm_demo.seed_demo_status_decisions",
)


@pytest.fixture(autouse=True)
def referral_demo_only():
    # A patch of its own, so a test's monkeypatch.undo() leaves these off.
    with pytest.MonkeyPatch.context() as patch:
        for target in NRM_PATH_SEEDERS:
            patch.setattr(target, lambda users: 0)
        yield


@pytest.fixture
def loaded(db):
    return load_demo_data(case_count=CASES)


def referrals(db) -> list[Referral]:
    """Return the demo referrals for a service (the status-decision requests are a set apart)."""
    return db.session.scalars(
        select(Referral).where(Referral.service_type != STATUS_DECISION)
    ).all()


def status_requests(db) -> list[Referral]:
    return db.session.scalars(
        select(Referral).where(Referral.service_type == STATUS_DECISION)
    ).all()


def user(db, email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def test_the_demo_has_a_referral_in_every_state(db, loaded):
    found = referrals(db)
    assert loaded.referrals == len(DEMO_REFERRALS) == len(found)
    assert {referral.state for referral in found} == {state.value for state in State}
    overdue = [r for r in found if r.state == State.SENT.value and r.is_overdue]
    waiting = [r for r in found if r.state == State.SENT.value and not r.is_overdue]
    assert len(overdue) == 1 and len(waiting) == 1
    declined = next(r for r in found if r.state == State.DECLINED.value)
    assert declined.decline_reason
    completed = next(r for r in found if r.state == State.COMPLETED.value)
    assert completed.outcome and completed.outcome_note
    # Between several demo agencies, in both directions of the NGO.
    names = {(r.sending_agency.name, r.receiving_agency.name) for r in found}
    senders = {sender for sender, _receiver in names}
    receivers = {receiver for _sender, receiver in names}
    assert len(senders) >= 2 and len(receivers) >= 5
    assert senders & receivers


def test_the_demo_referrals_went_through_the_services(db, loaded):
    found = referrals(db) + status_requests(db)
    sent = [r for r in found if r.sent_at is not None]
    receipts = db.session.scalar(select(func.count(DisclosureReceipt.id)))
    assert receipts == len(sent) == len(found) - 1
    steps = db.session.scalar(select(func.count(ReferralTransition.id)))
    # Recording a decision starts and completes the accepted request: two steps.
    assert steps == sum(
        len(demo.steps) + (demo.outcome is not None)
        for demo in (*DEMO_REFERRALS, *DEMO_STATUS_DECISIONS)
    )
    events = db.session.scalar(
        select(func.count(TimelineEvent.id)).where(TimelineEvent.kind.like("referral.%"))
    )
    assert events >= len(found) + steps
    audited = db.session.scalar(
        select(func.count(AuditEntry.id)).where(AuditEntry.action == "referral.created")
    )
    assert audited == len(found)
    assert db.session.scalar(select(func.count(ReferralNote.id))) == 2
    # The clock of the services: moments in the past, in order.
    for referral in found:
        assert referral.created_at < utcnow() - timedelta(hours=1)
        if referral.sent_at:
            assert referral.created_at <= referral.sent_at < referral.response_due_at
    assert db.session.scalar(
        select(func.count(Notification.id)).where(Notification.kind == "referral.received")
    )


def test_the_demo_has_a_transfer_waiting_for_acceptance(db, loaded):
    [transfer] = db.session.scalars(select(TransferRequest)).all()
    assert transfer.status == TransferStatus.APPROVED.value
    assert transfer.to_agency.name == "Ümid Evi Shelter"
    assert transfer.case.owner_agency_id == transfer.from_agency_id
    incoming = db.session.scalars(
        select(Notification).where(Notification.kind == "transfer.incoming")
    ).all()
    assert incoming and all(n.agency_id == transfer.to_agency_id for n in incoming)


def test_loading_again_adds_no_referral_or_transfer(db, loaded):
    again = load_demo_data(case_count=CASES)
    assert (again.referrals, again.transfers, again.status_decisions) == (0, 0, 0)
    assert len(referrals(db)) == len(DEMO_REFERRALS)
    assert len(status_requests(db)) == len(DEMO_STATUS_DECISIONS)
    assert db.session.scalar(select(func.count(TransferRequest.id))) == 1
    assert db.session.scalar(select(func.count(Decision.id))) == 2


def test_too_few_cases_load_no_referrals(db):
    summary = load_demo_data(case_count=3)
    assert (summary.referrals, summary.transfers, summary.status_decisions) == (0, 0, 0)
    assert referrals(db) == [] and status_requests(db) == []
    assert db.session.scalar(select(func.count(Agency.id)))


# Status decisions --------------------------------------------------------------------------


def test_the_demo_asks_the_coordinator_for_status_decisions_at_every_step(db, loaded):
    found = status_requests(db)
    assert loaded.status_decisions == len(DEMO_STATUS_DECISIONS) == len(found) == 5
    coordinator = user(db, "coordinator@nrm.demo")
    assert {r.receiving_agency_id for r in found} == {coordinator.agency_id}
    assert {r.sending_agency.name for r in found} == {
        "Təmiz Dünya NGO",
        "Xəzər Regional Police — Counter-Trafficking Unit",
    }
    by_state = Counter(r.state for r in found)
    assert by_state == {State.SENT.value: 1, State.ACCEPTED.value: 2, State.COMPLETED.value: 2}
    [waiting] = [r for r in found if r.state == State.SENT.value]
    assert not waiting.is_overdue
    # Accepted and waiting for the decision: one past its 24 hours, one well within them.
    now = utcnow()
    late, recent = sorted(
        (r for r in found if r.state == State.ACCEPTED.value), key=lambda r: r.sent_at
    )
    assert late.response_due_at - late.sent_at == timedelta(hours=24)
    assert late.responded_at < late.response_due_at <= now
    assert recent.response_due_at > now + timedelta(hours=12)
    for referral in (waiting, late, recent):
        assert referral.case.nrm_status == NrmStatus.PENDING_DECISION.value
    # The coordinator's list counts the three open requests.
    assert waiting_count(coordinator) == 3


def test_the_demo_decisions_set_the_case_status(db, loaded):
    decisions = {d.outcome: d for d in db.session.scalars(select(Decision))}
    assert set(decisions) == {NrmStatus.RECOGNISED.value, NrmStatus.NOT_RECOGNISED.value}
    recognised = decisions[NrmStatus.RECOGNISED.value]
    negative = decisions[NrmStatus.NOT_RECOGNISED.value]
    assert recognised.reason_code is None and recognised.reason
    assert negative.reason_code == "insufficient_indicators" and negative.reason
    coordinator = user(db, "coordinator@nrm.demo")
    for decision in (recognised, negative):
        case = decision.case
        assert case.nrm_status == decision.outcome
        assert case.nrm_decided_on == decision.decided_on
        assert case.nrm_decided_by_id == decision.decided_by_user_id == coordinator.id
        assert decision.referral.state == State.COMPLETED.value
        # On the services' clock: decided days ago, after the request was accepted.
        assert decision.referral.responded_at < decision.recorded_at < utcnow() - timedelta(days=1)
        assert decision.decided_on >= case.identified_on
    # Every NRM status is in the demo: the cases nobody asked about stay presumed.
    statuses = set(db.session.scalars(select(Case.nrm_status).distinct()))
    assert statuses == {status.value for status in NrmStatus}
    # Recorded as the UI records it.
    for kind, count in (("nrm.pending", 5), ("nrm.decided", 2)):
        events = select(func.count(TimelineEvent.id)).where(TimelineEvent.kind == kind)
        assert db.session.scalar(events) == count
    recorded = select(func.count(AuditEntry.id)).where(AuditEntry.action == "nrm.decision_recorded")
    assert db.session.scalar(recorded) == 2
    told = db.session.scalars(select(Notification).where(Notification.kind == "nrm.decided"))
    assert {n.reference for n in told} == {recognised.case.reference, negative.case.reference}


def test_the_coordinator_sees_the_demo_requests(app, db, loaded):
    open_requests = [r for r in status_requests(db) if r.state != State.COMPLETED.value]
    references = [r.case.reference for r in open_requests]
    db.session.commit()
    page = client_for(app, user(db, "coordinator@nrm.demo")).get("/nrm/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert all(reference in text for reference in references)
    assert "No case is waiting for a status decision." not in text


def test_a_demo_loaded_before_the_status_decisions_gets_them_on_the_next_load(db, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_STATUS_DECISIONS", ())
    first = load_demo_data(case_count=CASES)
    assert (first.referrals, first.status_decisions) == (len(DEMO_REFERRALS), 0)
    monkeypatch.undo()
    second = load_demo_data(case_count=CASES)
    assert (second.referrals, second.status_decisions) == (0, len(DEMO_STATUS_DECISIONS))
    # Each request on a case of its own, none already referred or being transferred.
    cases = {r.case_id for r in status_requests(db)}
    assert len(cases) == len(DEMO_STATUS_DECISIONS)
    assert not cases & {r.case_id for r in referrals(db)}
    assert not cases & set(db.session.scalars(select(TransferRequest.case_id)))
