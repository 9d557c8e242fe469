"""Referral services: each action's state, transition row, audit entry and timeline event;
consent and its exceptions; decline reasons; re-referral; expiry with a controlled clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from casework.casefile_services import withdraw_consent
from casework.timeline import TimelineEvent
from core.audit import AuditEntry
from referrals import services
from referrals.models import DisclosureReceipt, Referral, ReferralNote, ReferralTransition
from referrals.services import ReferralError
from referrals.workflow import InvalidTransition, State
from tests.referrals.builders import (
    REASON,
    WITHDRAWN,
    build_world,
    consent_to,
    draft,
    sent,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(db):
    return build_world(db)


def transitions(db, referral) -> list[tuple[str, str, str]]:
    rows = db.session.scalars(
        select(ReferralTransition)
        .where(ReferralTransition.referral_id == referral.id)
        .order_by(ReferralTransition.occurred_at, ReferralTransition.id)
    )
    return [(row.from_state, row.action, row.to_state) for row in rows]


def audit_actions(db, referral) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == "referral", AuditEntry.object_id == referral.id)
            .order_by(AuditEntry.id)
        )
    )


def timeline_kinds(db, case) -> list[str]:
    return list(
        db.session.scalars(
            select(TimelineEvent.kind).where(
                TimelineEvent.case_id == case.id, TimelineEvent.kind.like("referral.%")
            )
        )
    )


def test_it_drafts_a_referral_with_audit_and_timeline(db, world):
    referral = draft(world)
    db.session.commit()
    assert referral.state == State.DRAFT.value
    assert [section.value for section in referral.sections] == ["identity", "health"]
    assert referral.reason == REASON
    assert audit_actions(db, referral) == ["referral.created"]
    assert timeline_kinds(db, world["case"]) == ["referral.created"]
    assert transitions(db, referral) == []


def test_it_sends_on_consent_and_keeps_a_disclosure_receipt(db, world):
    consent_to(world, world["east"])
    referral = draft(world)
    services.send_referral(world["alice"], referral, now=NOW)
    db.session.commit()
    assert referral.state == "sent"
    assert referral.response_due_at == NOW + timedelta(hours=24)
    assert referral.consent_record_id is not None
    assert transitions(db, referral) == [("draft", "send", "sent")]
    assert audit_actions(db, referral) == ["referral.created", "referral.sent"]
    assert "referral.sent" in timeline_kinds(db, world["case"])
    receipt = db.session.scalars(select(DisclosureReceipt)).one()
    assert receipt.receiving_agency_id == world["east"].id
    assert receipt.section_codes == "health,identity"
    assert receipt.consent_record_id == referral.consent_record_id
    assert "medical_notes" in receipt.field_name_list
    assert "given_name" in receipt.field_name_list
    assert "address" not in receipt.field_name_list
    # Names only: no value of the case is in the receipt.
    assert "Zümrüd" not in receipt.field_names


def test_sending_needs_consent_for_that_agency(db, world):
    consent_to(world, world["south"])  # consent to another agency does not count
    referral = draft(world)
    with pytest.raises(ReferralError):
        services.send_referral(world["alice"], referral)
    assert referral.state == "draft"


def test_a_refused_consent_does_not_allow_sending(db, world):
    from casework.casefile_services import ConsentDecision, record_consent

    refused = ConsentDecision("refused", NOW.date(), "oral", "2026-1")
    record_consent(world["alice"], world["case"], "referral", refused, agency_id=world["east"].id)
    with pytest.raises(ReferralError):
        services.send_referral(world["alice"], draft(world))


def test_an_emergency_exception_is_recorded_instead_of_consent(db, world):
    referral = draft(
        world,
        urgency="emergency",
        consent_exception="emergency",
        exception_note="Bleeding; the person is unconscious.",
    )
    services.send_referral(world["alice"], referral, now=NOW)
    db.session.commit()
    assert referral.state == "sent"
    assert referral.consent_record_id is None
    assert referral.response_due_at == NOW + timedelta(hours=4)
    receipt = db.session.scalars(select(DisclosureReceipt)).one()
    assert receipt.consent_exception == "emergency"


def test_the_emergency_exception_needs_an_emergency_and_a_note(db, world):
    with pytest.raises(ReferralError):
        draft(world, urgency="urgent", consent_exception="emergency", exception_note="Hurry.")
    with pytest.raises(ReferralError):
        draft(world, urgency="emergency", consent_exception="emergency", exception_note=" ")


def test_the_minor_exception_applies_to_a_childs_case_only(db, world):
    with pytest.raises(ReferralError):
        draft(world, consent_exception="minor", exception_note="Best interests decided.")
    world["case"].is_minor = True
    referral = draft(world, consent_exception="minor", exception_note="Best interests decided.")
    services.send_referral(world["alice"], referral)
    assert referral.state == "sent"


def test_it_accepts_starts_and_completes_with_an_outcome(db, world):
    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    services.start_referral(world["hana"], referral)
    services.complete_referral(world["hugo"], referral, "service_provided", "Treated and well.")
    db.session.commit()
    assert referral.state == "completed"
    assert referral.outcome == "service_provided"
    assert referral.outcome_note == "Treated and well."
    assert transitions(db, referral) == [
        ("draft", "send", "sent"),
        ("sent", "accept", "accepted"),
        ("accepted", "start", "in_progress"),
        ("in_progress", "complete", "completed"),
    ]
    assert audit_actions(db, referral)[-3:] == [
        "referral.accepted",
        "referral.started",
        "referral.completed",
    ]
    kinds = timeline_kinds(db, world["case"])
    for kind in ("referral.accepted", "referral.started", "referral.completed"):
        assert kind in kinds


def test_it_declines_with_reason(db, world):
    referral = sent(world)
    services.decline_referral(world["hana"], referral, "No free beds this week.")
    db.session.commit()
    assert referral.state == "declined"
    assert referral.decline_reason == "No free beds this week."
    assert transitions(db, referral)[-1] == ("sent", "decline", "declined")
    assert audit_actions(db, referral)[-1] == "referral.declined"


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_declining_needs_a_reason(db, world, reason):
    referral = sent(world)
    with pytest.raises(ReferralError):
        services.decline_referral(world["hana"], referral, reason)
    assert referral.state == "sent"


def test_the_database_refuses_a_declined_referral_without_reason(db, world):
    referral = sent(world)
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(
            text("UPDATE referrals SET state = 'declined' WHERE id = :id"), {"id": referral.id}
        )
        db.session.flush()
    db.session.rollback()


def test_the_sender_cannot_answer_its_own_referral(db, world):
    referral = sent(world)
    with pytest.raises(ReferralError):
        services.accept_referral(world["alice"], referral)
    with pytest.raises(ReferralError):
        services.accept_referral(world["charlie"], referral)
    with pytest.raises(ReferralError):
        services.cancel_referral(world["hana"], referral)
    assert referral.state == "sent"


def test_an_action_not_in_the_table_raises(db, world):
    referral = sent(world)
    with pytest.raises(InvalidTransition):
        services.complete_referral(world["hana"], referral, "service_provided")
    with pytest.raises(InvalidTransition):
        services.send_referral(world["alice"], referral)


def test_the_sender_cancels(db, world):
    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    services.cancel_referral(world["alice"], referral, "The person moved abroad.")
    db.session.commit()
    assert referral.state == "cancelled"
    assert referral.cancel_reason == "The person moved abroad."
    assert transitions(db, referral)[-1] == ("accepted", "cancel", "cancelled")


def test_a_stale_version_is_refused(db, world):
    referral = sent(world)
    version = referral.version
    services.accept_referral(world["hana"], referral, expected_version=version)
    with pytest.raises(services.StaleReferral):
        services.start_referral(world["hana"], referral, expected_version=version)


def test_it_rerefers_elsewhere_after_a_decline(db, world):
    referral = sent(world)
    services.decline_referral(world["hana"], referral, "Not our speciality.")
    with pytest.raises(ReferralError):
        services.rerefer_referral(world["alice"], referral, receiving_agency=world["east"])
    again = services.rerefer_referral(world["alice"], referral, receiving_agency=world["south"])
    db.session.commit()
    assert again.state == "draft"
    assert again.previous_referral_id == referral.id
    assert again.receiving_agency_id == world["south"].id
    assert again.reason == REASON
    assert again.sections == referral.sections
    assert again.service_type == referral.service_type


def test_only_a_declined_or_expired_referral_is_rereferred(db, world):
    referral = sent(world)
    with pytest.raises(ReferralError):
        services.rerefer_referral(world["alice"], referral, receiving_agency=world["south"])


def test_it_expires_overdue_referrals_with_a_controlled_clock(db, world):
    consent_to(world, world["east"])
    emergency = draft(
        world, urgency="emergency", consent_exception="emergency", exception_note="Hurt."
    )
    routine = draft(world, urgency="routine")
    services.send_referral(world["alice"], emergency, now=NOW)
    services.send_referral(world["alice"], routine, now=NOW)
    db.session.commit()
    assert services.expire_overdue_referrals(NOW + timedelta(hours=3, minutes=59)) == []
    assert services.expire_overdue_referrals(NOW + timedelta(hours=4)) == [emergency]
    assert emergency.state == "expired" and routine.state == "sent"
    assert services.expire_overdue_referrals(NOW + timedelta(days=4, hours=23)) == []
    assert services.expire_overdue_referrals(NOW + timedelta(days=5)) == [routine]
    db.session.commit()
    step = db.session.scalars(
        select(ReferralTransition).where(
            ReferralTransition.referral_id == routine.id, ReferralTransition.action == "expire"
        )
    ).one()
    assert step.actor_user_id is None
    assert step.occurred_at == NOW + timedelta(days=5)
    assert "referral.expired" in timeline_kinds(db, world["case"])


def test_an_answered_referral_never_expires(db, world):
    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    assert services.expire_overdue_referrals(NOW + timedelta(days=365)) == []
    assert referral.state == "accepted"


def test_configured_deadlines_apply(app, db, world):
    app.config["HAVEN_REFERRAL_DEADLINE_HOURS"] = "urgent=2"
    try:
        consent_to(world, world["east"])
        referral = draft(world)
        services.send_referral(world["alice"], referral, now=NOW)
    finally:
        app.config["HAVEN_REFERRAL_DEADLINE_HOURS"] = {"emergency": 4, "urgent": 24}
    assert referral.response_due_at == NOW + timedelta(hours=2)


def test_withdrawing_consent_cancels_the_referrals_that_relied_on_it(db, world):
    relying = sent(world)
    services.accept_referral(world["hana"], relying)
    on_exception = draft(
        world, urgency="emergency", consent_exception="emergency", exception_note="Hurt."
    )
    services.send_referral(world["alice"], on_exception)
    db.session.commit()
    withdraw_consent(
        world["alice"], world["case"], "referral", WITHDRAWN, agency_id=world["east"].id
    )
    db.session.commit()
    assert relying.state == "cancelled"
    assert transitions(db, relying)[-1] == ("accepted", "withdraw_consent", "cancelled")
    assert "referral.consent_withdrawn" in timeline_kinds(db, world["case"])
    # A referral sent on a recorded exception did not rely on the consent.
    assert on_exception.state == "sent"


def test_service_notes_are_the_receivers_while_it_works_the_referral(db, world):
    referral = sent(world)
    with pytest.raises(ReferralError):
        services.add_service_note(world["hana"], referral, "Too early.")
    services.accept_referral(world["hana"], referral)
    with pytest.raises(ReferralError):
        services.add_service_note(world["alice"], referral, "Sender notes are case notes.")
    note = services.add_service_note(world["hana"], referral, "First visit done.")
    shared = services.add_service_note(
        world["hana"], referral, "Doing well.", shared_with_sender=True
    )
    db.session.commit()
    assert (note.shared_with_sender, shared.shared_with_sender) == (False, True)
    assert note.agency_id == world["east"].id
    assert "referral.note_added" in timeline_kinds(db, world["case"])


def raw_dump(db, table: str) -> str:
    dump = ""
    for row in db.session.execute(text(f"SELECT * FROM {table}")).all():
        for column in row:
            if isinstance(column, bytes | memoryview):
                dump += bytes(column).decode("latin-1")
            else:
                dump += repr(column)
    return dump


def test_referral_texts_are_not_stored_in_plaintext(db, world):
    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    services.add_service_note(world["hana"], referral, "Visited at the Xətai flat.")
    services.start_referral(world["hana"], referral)
    services.complete_referral(world["hana"], referral, "service_provided", "Dr. Məmmədov saw her")
    other = sent(world, agency=world["south"])
    services.decline_referral(world["charlie"], other, "Bed taken by Günel yesterday")
    db.session.commit()
    secrets = [REASON, "Xətai flat", "Məmmədov", "Günel"]
    for table in ("referrals", "referral_transitions", "referral_notes", "case_events"):
        dump = raw_dump(db, table)
        for secret in secrets:
            assert secret not in dump
            assert secret.encode("utf-8").decode("latin-1") not in dump
    receipts = raw_dump(db, "referral_disclosure_receipts")
    assert "Zümrüd".encode().decode("latin-1") not in receipts
    assert "medical_notes" in receipts
    assert json.loads(db.session.scalars(select(DisclosureReceipt.field_names)).first())


def test_erasing_the_case_makes_referral_texts_unreadable(db, world):
    from casework.supervision import erase_case
    from core.crypto import CryptoError

    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    services.add_service_note(world["hana"], referral, "Visited.")
    db.session.commit()
    erase_case(world["case"], world["bob"])
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Referral, referral.id)
    with pytest.raises(CryptoError):
        _ = stored.reason
    note = db.session.scalars(select(ReferralNote)).one()
    with pytest.raises(CryptoError):
        _ = note.body
