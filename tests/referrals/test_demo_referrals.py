"""Demo data: referrals in every state between the demo agencies, made through the services,
and a transfer waiting for the receiving agency; loaded once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from casework.supervision import TransferRequest, TransferStatus
from casework.timeline import TimelineEvent
from core.audit import AuditEntry
from core.db import utcnow
from core.demo import DEMO_REFERRALS, load_demo_data
from core.models import Agency
from core.notifications import Notification
from referrals.models import DisclosureReceipt, Referral, ReferralNote, ReferralTransition
from referrals.workflow import State


@pytest.fixture
def loaded(db):
    return load_demo_data(case_count=40)


def referrals(db) -> list[Referral]:
    return db.session.scalars(select(Referral)).all()


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
    found = referrals(db)
    sent = [r for r in found if r.sent_at is not None]
    receipts = db.session.scalar(select(func.count(DisclosureReceipt.id)))
    assert receipts == len(sent) == len(found) - 1
    steps = db.session.scalar(select(func.count(ReferralTransition.id)))
    assert steps == sum(len(demo.steps) for demo in DEMO_REFERRALS)
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
    again = load_demo_data(case_count=40)
    assert (again.referrals, again.transfers) == (0, 0)
    assert len(referrals(db)) == len(DEMO_REFERRALS)
    assert db.session.scalar(select(func.count(TransferRequest.id))) == 1


def test_too_few_cases_load_no_referrals(db):
    summary = load_demo_data(case_count=3)
    assert (summary.referrals, summary.transfers) == (0, 0)
    assert referrals(db) == []
    assert db.session.scalar(select(func.count(Agency.id)))
