"""Writes to referrals: create, send, answer, work, close, expire, and the receiver's notes.

Services take model objects and plain data (never ``request``), check the workflow table
and the referral's requirements, flush, and write the audit entry, the case's timeline event
and the transition row in the caller's transaction. They never commit. Authorisation (which
user may press which button) is the access policy's job; the services still refuse a user
of the wrong agency, so no caller can move a referral for the other side.

Only ``transition`` assigns ``referral.state``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from casework import casefile_services
from casework.casefile import ConsentPurpose, ServiceType
from casework.models import CaseStatus
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.db import db, utcnow
from core.models import Role
from core.notifications import notify, register_notification_kind
from referrals import workflow
from referrals.models import (
    ConsentException,
    DisclosureReceipt,
    Referral,
    ReferralNote,
    ReferralOutcome,
    ReferralTransition,
    SharedSection,
)
from referrals.workflow import Action, Requirement, Side, State, Urgency

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import Agency, User

REASON_MAX = 4000

# The timeline kind (and audit action) each workflow action writes.
EVENT_KINDS: dict[Action, str] = {
    Action.SEND: "referral.sent",
    Action.ACCEPT: "referral.accepted",
    Action.DECLINE: "referral.declined",
    Action.START: "referral.started",
    Action.COMPLETE: "referral.completed",
    Action.CANCEL: "referral.cancelled",
    Action.EXPIRE: "referral.expired",
    Action.WITHDRAW_CONSENT: "referral.consent_withdrawn",
}
for _kind, _label in {
    "referral.created": _l("Referral drafted"),
    "referral.sent": _l("Referral sent"),
    "referral.accepted": _l("Referral accepted"),
    "referral.declined": _l("Referral declined"),
    "referral.started": _l("Referred service started"),
    "referral.completed": _l("Referral completed"),
    "referral.cancelled": _l("Referral cancelled"),
    "referral.expired": _l("Referral expired without an answer"),
    "referral.consent_withdrawn": _l("Referral cancelled: consent withdrawn"),
    "referral.note_added": _l("Service note added to a referral"),
}.items():
    register_timeline_kind(_kind, _label)

# The notification each action sends: its kind, and whether it goes to the receiving agency
# (otherwise to the sending side, see ``_notify``). Starting the service notifies nobody.
NOTIFIED_ACTIONS: dict[Action, tuple[str, Side]] = {
    Action.SEND: ("referral.received", Side.RECEIVER),
    Action.ACCEPT: ("referral.accepted", Side.SENDER),
    Action.DECLINE: ("referral.declined", Side.SENDER),
    Action.COMPLETE: ("referral.completed", Side.SENDER),
    Action.CANCEL: ("referral.cancelled", Side.SENDER),
    Action.WITHDRAW_CONSENT: ("referral.cancelled", Side.SENDER),
    Action.EXPIRE: ("referral.expired", Side.SENDER),
}
for _kind, _label in {
    "referral.received": _l("New referral received"),
    "referral.accepted": _l("Your referral was accepted"),
    "referral.declined": _l("Your referral was declined"),
    "referral.completed": _l("Your referral was completed"),
    "referral.cancelled": _l("A referral was cancelled"),
    "referral.expired": _l("Your referral expired without an answer"),
}.items():
    register_notification_kind(_kind, _label)
# Who hears of a referral at an agency when no one in particular is responsible.
REFERRAL_ROLES = (Role.CASEWORKER, Role.SUPERVISOR)


class ReferralError(ValueError):
    """A referral change the rules refuse; the message is a lazy translation for the user."""


class StaleReferral(ReferralError):
    """The referral changed since the user loaded it."""


# The one place that moves a referral -------------------------------------------------------


def side_of(user: User | None, referral: Referral) -> Side | None:
    """Return which side of the referral the user's agency is on (None: neither)."""
    if user is None:
        return Side.SYSTEM
    if user.agency_id == referral.sending_agency_id:
        return Side.SENDER
    if user.agency_id == referral.receiving_agency_id:
        return Side.RECEIVER
    return None


def transition(
    referral: Referral,
    action: Action | str,
    actor: User | None,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    expected_version: int | None = None,
    changes: dict[str, Any] | None = None,
    field_names: Iterable[str] = (),
) -> ReferralTransition:
    """Move the referral by one action of the table and record the step.

    ``changes`` are set on the referral together with the state (so CHECK constraints that
    tie a column to the state hold at every flush). ``actor`` is None for Haven's own moves.

    :raises workflow.InvalidTransition: when the table has no such move from the state.
    :raises ReferralError: when the actor is on the wrong side, or a requirement is missing.
    :raises StaleReferral: when the referral is no longer at ``expected_version``.
    """
    action = Action(action)
    move = workflow.transition_for(referral.state, action)
    if move.actor is not Side.SYSTEM and side_of(actor, referral) is not move.actor:
        raise ReferralError(_l("Only the other agency may do this."))
    if Requirement.REASON in move.requires and not (reason and reason.strip()):
        raise ReferralError(_l("Give a reason."))
    if expected_version is not None and referral.version != expected_version:
        raise StaleReferral(_l("Someone changed this referral meanwhile. Look at it again."))
    now = now or utcnow()
    from_state = referral.state
    with db.session.no_autoflush:
        referral.state = move.next_state.value
        for name, value in (changes or {}).items():
            setattr(referral, name, value)
    step = ReferralTransition(
        referral=referral,
        case=referral.case,
        from_state=from_state,
        to_state=move.next_state.value,
        action=action.value,
        actor_user_id=actor.id if actor is not None else None,
        actor_agency_id=actor.agency_id if actor is not None else None,
        occurred_at=now,
    )
    db.session.add(step)
    fields = ["state", *(changes or {}), *field_names]
    if reason and reason.strip():
        step.reason = reason.strip()
        fields.append("reason")
    db.session.flush()
    _record(referral, EVENT_KINDS[action], actor, fields, occurred_at=now)
    _notify(referral, action, actor, from_state, now)
    for listener in TRANSITION_LISTENERS:
        listener(referral, action, actor, from_state, now)
    return step


def _notify(
    referral: Referral, action: Action, actor: User | None, from_state: str, now: datetime
) -> None:
    """Tell the other side (and, for a cancellation, the receiver too) that the referral
    moved: the case reference and the referral's link only, never names or texts.

    The sending side is the case's assigned caseworker when they still work at the sending
    agency, else its caseworkers and supervisors. Nobody is told of their own step, nor an
    agency of what one of its own people did.
    """
    notified = NOTIFIED_ACTIONS.get(action)
    # A draft given up never left the sending agency: nobody to tell.
    if notified is None or (from_state == State.DRAFT.value and action is not Action.SEND):
        return
    kind, side = notified
    reference, link = referral.case.reference, f"/referrals/{referral.id}"
    agencies: list[Agency] = []
    if side is Side.RECEIVER:
        agencies.append(referral.receiving_agency)
    else:
        assignee = referral.case.assigned_user
        if (
            assignee is not None
            and assignee.active
            and assignee.agency_id == referral.sending_agency_id
        ):
            if actor is None or assignee.id != actor.id:
                notify(users=[assignee], kind=kind, reference=reference, link=link, now=now)
        elif actor is None or actor.agency_id != referral.sending_agency_id:
            agencies.append(referral.sending_agency)
        # A cancelled referral the receiver had in hand: it must stop working on it.
        if kind == "referral.cancelled":
            agencies.append(referral.receiving_agency)
    for agency in agencies:
        # The national coordinator's office works its referrals through its coordinators.
        roles = (
            (*REFERRAL_ROLES, Role.COORDINATOR)
            if agency.is_national_coordinator
            else REFERRAL_ROLES
        )
        notify(agency=agency, roles=roles, kind=kind, reference=reference, link=link, now=now)


def _record(
    referral: Referral,
    kind: str,
    actor: User | None,
    fields: Iterable[str],
    *,
    object_type: str = "referral",
    object_id: str | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Write the audit entry (field names only) and the case's timeline event."""
    names = sorted(set(fields))
    object_id = object_id or referral.id
    audit.record(kind, object_type=object_type, object_id=object_id, field_names=names, user=actor)
    add_timeline_event(
        referral.case,
        kind,
        actor=actor,
        object_type=object_type,
        object_id=object_id,
        field_names=names,
        occurred_at=occurred_at,
    )


# Creating ----------------------------------------------------------------------------------


def create_referral(
    user: User,
    case: Case,
    *,
    receiving_agency: Agency,
    service_type: ServiceType | str,
    urgency: Urgency | str,
    reason: str,
    sections: Iterable[SharedSection | str] = (),
    consent_exception: ConsentException | str | None = None,
    exception_note: str | None = None,
    previous: Referral | None = None,
    now: datetime | None = None,
) -> Referral:
    """Draft a referral of the case to another agency; ``send_referral`` sends it.

    :raises ReferralError: for a case that cannot be referred, the own or an inactive
        agency, a missing reason, or an exception without its explanation.
    """
    if case.is_erased or case.status != CaseStatus.OPEN.value:
        raise ReferralError(_l("Only an open case can be referred."))
    if user.agency_id != case.owner_agency_id:
        raise ReferralError(_l("Only the agency that owns the case can refer it."))
    if receiving_agency.id == user.agency_id or not receiving_agency.active:
        raise ReferralError(_l("Choose another, active agency."))
    service_type = ServiceType(service_type)
    if service_type is ServiceType.STATUS_DECISION and not receiving_agency.is_national_coordinator:
        raise ReferralError(_l("Only the national coordinator takes the formal status decision."))
    urgency = Urgency(urgency)
    reason = (reason or "").strip()
    if not reason:
        raise ReferralError(_l("Say why you refer the person."))
    exception = ConsentException(consent_exception) if consent_exception else None
    note = (exception_note or "").strip() or None
    _check_exception(case, urgency, exception, note)
    referral = Referral(
        case=case,
        sending_agency_id=user.agency_id,
        created_by_user_id=user.id,
        receiving_agency_id=receiving_agency.id,
        service_type=service_type.value,
        urgency=urgency.value,
        created_at=now or utcnow(),
        consent_exception=exception.value if exception else None,
        previous_referral_id=previous.id if previous is not None else None,
    )
    referral.sections = sections
    db.session.add(referral)
    referral.reason = reason
    fields = ["receiving_agency_id", "service_type", "urgency", "sections", "reason"]
    if exception is not None:
        referral.exception_note = note
        fields += ["consent_exception", "exception_note"]
    if previous is not None:
        fields.append("previous_referral_id")
    db.session.flush()
    _record(referral, "referral.created", user, fields, occurred_at=referral.created_at)
    return referral


def _check_exception(
    case: Case, urgency: Urgency, exception: ConsentException | None, note: str | None
) -> None:
    if exception is None:
        return
    if not note:
        raise ReferralError(_l("Explain why the referral goes without the person's consent."))
    if exception is ConsentException.MINOR and not case.is_minor:
        raise ReferralError(_l("The child exception applies to a child's case only."))
    if exception is ConsentException.EMERGENCY and urgency is not Urgency.EMERGENCY:
        raise ReferralError(_l("The emergency exception applies to emergency referrals only."))


def rerefer_referral(
    user: User,
    referral: Referral,
    *,
    receiving_agency: Agency,
    service_type: ServiceType | str | None = None,
    urgency: Urgency | str | None = None,
    reason: str | None = None,
    sections: Iterable[SharedSection | str] | None = None,
    consent_exception: ConsentException | str | None = None,
    exception_note: str | None = None,
) -> Referral:
    """Draft a new referral to another agency, prefilled from a declined or expired one.

    :raises ReferralError: when the referral was not declined or expired, or goes to the
        agency that already declined it.
    """
    if referral.state_enum not in workflow.REREFERABLE_STATES:
        raise ReferralError(_l("Only a declined or expired referral can be sent elsewhere."))
    if side_of(user, referral) is not Side.SENDER:
        raise ReferralError(_l("Only the sending agency can refer the person elsewhere."))
    if receiving_agency.id == referral.receiving_agency_id:
        raise ReferralError(_l("Choose an agency other than the one that did not take it."))
    return create_referral(
        user,
        referral.case,
        receiving_agency=receiving_agency,
        service_type=service_type or referral.service_type,
        urgency=urgency or referral.urgency,
        reason=reason if reason is not None else referral.reason,
        sections=referral.sections if sections is None else sections,
        consent_exception=consent_exception,
        exception_note=exception_note,
        previous=referral,
    )


def rerefer_values(referral: Referral) -> dict[str, Any]:
    """Return the form values a re-referral starts from (everything but the agency)."""
    return {
        "service_type": referral.service_type,
        "urgency": referral.urgency,
        "reason": referral.reason,
        "sections": [section.value for section in referral.sections],
    }


# Hooks for referrals.decisions (the national coordinator's status decision) -------------
# Registered at import time; kept here so this module needs nothing from decisions.

# Called after every step, in its transaction: (referral, action, actor, from_state, now).
TRANSITION_LISTENERS: list[Callable[[Referral, Action, Any, str, datetime], None]] = []
# Tried in order when a referral is sent; the first that returns a time sets the deadline.
DEADLINE_RULES: list[Callable[[Referral, datetime], datetime | None]] = []


def response_due_for(referral: Referral, sent_at: datetime) -> datetime:
    """Return the referral's answer deadline: a registered rule's, else by urgency."""
    for rule in DEADLINE_RULES:
        due = rule(referral, sent_at)
        if due is not None:
            return due
    return workflow.response_due(sent_at, referral.urgency, deadline_config())


# Sending -----------------------------------------------------------------------------------


def deadline_config() -> Any:
    """Return the configured answer deadlines (HAVEN_REFERRAL_DEADLINE_HOURS), if any."""
    if has_app_context():
        return current_app.config.get("HAVEN_REFERRAL_DEADLINE_HOURS")
    return None


def disclosed_field_names(sections: Iterable[SharedSection]) -> list[str]:
    """Return the names of the fields the sections disclose, sorted."""
    return sorted({name for section in sections for name in section.field_names})


def send_referral(
    user: User,
    referral: Referral,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Send a draft: check the consent (or the recorded exception), set the deadline and
    keep the disclosure receipt.

    :raises ReferralError: without a current given referral consent for the receiving
        agency and without a valid exception, or when the case is no longer open.
    """
    case = referral.case
    if case.is_erased or case.status != CaseStatus.OPEN.value:
        raise ReferralError(_l("Only an open case can be referred."))
    now = now or utcnow()
    exception = ConsentException(referral.consent_exception) if referral.consent_exception else None
    consent = None
    if exception is not None:
        _check_exception(case, Urgency(referral.urgency), exception, referral.exception_note)
    else:
        consent = casefile_services.current_consent(
            case, ConsentPurpose.REFERRAL, referral.receiving_agency_id
        )
        if consent is None or not consent.is_given:
            raise ReferralError(
                _l(
                    "The person has not consented to a referral to this agency. Record the "
                    "consent first, or record why the referral goes without it."
                )
            )
    transition(
        referral,
        Action.SEND,
        user,
        now=now,
        expected_version=expected_version,
        changes={
            "sent_at": now,
            "sent_by_user_id": user.id,
            "response_due_at": response_due_for(referral, now),
            "consent_record_id": consent.id if consent is not None else None,
        },
    )
    receipt = DisclosureReceipt(
        referral_id=referral.id,
        case_id=case.id,
        receiving_agency_id=referral.receiving_agency_id,
        disclosed_by_user_id=user.id,
        disclosed_at=now,
        section_codes=referral.section_codes,
        field_names=json.dumps(disclosed_field_names(referral.sections)),
        consent_record_id=consent.id if consent is not None else None,
        consent_exception=exception.value if exception else None,
    )
    db.session.add(receipt)
    db.session.flush()
    return referral


# Answering and working ---------------------------------------------------------------------


def accept_referral(
    user: User,
    referral: Referral,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Accept a sent referral: the shared sections open to the receiver."""
    now = now or utcnow()
    transition(
        referral,
        Action.ACCEPT,
        user,
        now=now,
        expected_version=expected_version,
        changes={"responded_at": now},
    )
    return referral


def decline_referral(
    user: User,
    referral: Referral,
    reason: str,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Decline a sent referral with a written reason; the sender may refer elsewhere.

    :raises ReferralError: without a reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReferralError(_l("Give a reason."))
    now = now or utcnow()
    transition(
        referral,
        Action.DECLINE,
        user,
        reason=reason,
        now=now,
        expected_version=expected_version,
        changes={"decline_reason": reason, "responded_at": now, "closed_at": now},
    )
    return referral


def start_referral(
    user: User,
    referral: Referral,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Mark an accepted referral's service as started."""
    transition(referral, Action.START, user, now=now, expected_version=expected_version)
    return referral


def complete_referral(
    user: User,
    referral: Referral,
    outcome: ReferralOutcome | str,
    note: str | None = None,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Close a referral in progress with its coded outcome and an optional note."""
    now = now or utcnow()
    changes: dict[str, Any] = {"outcome": ReferralOutcome(outcome).value, "closed_at": now}
    if note and note.strip():
        changes["outcome_note"] = note.strip()
    transition(
        referral, Action.COMPLETE, user, now=now, expected_version=expected_version, changes=changes
    )
    return referral


def cancel_referral(
    user: User,
    referral: Referral,
    reason: str | None = None,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Referral:
    """Withdraw a referral (the sender), with an optional reason for the receiver."""
    now = now or utcnow()
    changes: dict[str, Any] = {"closed_at": now}
    if reason and reason.strip():
        changes["cancel_reason"] = reason.strip()
    transition(
        referral,
        Action.CANCEL,
        user,
        reason=reason,
        now=now,
        expected_version=expected_version,
        changes=changes,
    )
    return referral


def expire_overdue_referrals(
    now: datetime | None = None, *, agency_id: int | None = None
) -> list[Referral]:
    """Move every sent referral past its deadline to ``expired`` (of one agency, if given).

    Haven itself makes the move (no actor on the transition row); the audit entry names
    the signed-in user whose request ran the check, if any.
    """
    now = now or utcnow()
    query = select(Referral).where(
        Referral.state == State.SENT.value, Referral.response_due_at <= now
    )
    if agency_id is not None:
        query = query.where(
            or_(Referral.sending_agency_id == agency_id, Referral.receiving_agency_id == agency_id)
        )
    expired = list(db.session.scalars(query.order_by(Referral.response_due_at, Referral.id)))
    for referral in expired:
        transition(referral, Action.EXPIRE, None, now=now, changes={"closed_at": now})
    return expired


def cancel_referrals_relying_on(
    case: Case, purpose: ConsentPurpose, *, agency_id: int | None = None
) -> list[Referral]:
    """Cancel the case's open referrals that were sent on a consent now withdrawn.

    Registered with the consent service; runs in the withdrawal's transaction. Referrals
    sent on a recorded exception did not rely on the consent and stay.
    """
    if ConsentPurpose(purpose) is not ConsentPurpose.REFERRAL or agency_id is None:
        return []
    open_states = [state.value for state in workflow.OPEN_STATES]
    referrals = list(
        db.session.scalars(
            select(Referral).where(
                Referral.case_id == case.id,
                Referral.receiving_agency_id == agency_id,
                Referral.state.in_(open_states),
                Referral.consent_record_id.is_not(None),
            )
        )
    )
    now = utcnow()
    for referral in referrals:
        transition(referral, Action.WITHDRAW_CONSENT, None, now=now, changes={"closed_at": now})
    return referrals


casefile_services.register_consent_withdrawn_handler(cancel_referrals_relying_on)


# The receiver's notes ----------------------------------------------------------------------


def add_service_note(
    user: User, referral: Referral, body: str, *, shared_with_sender: bool = False
) -> ReferralNote:
    """Add the receiving agency's service note, shared with the sender or kept internal.

    :raises ReferralError: from anyone but the receiver, or outside accepted/in progress.
    """
    if side_of(user, referral) is not Side.RECEIVER:
        raise ReferralError(_l("Only the receiving agency writes service notes."))
    if referral.state_enum not in workflow.SHARING_STATES:
        raise ReferralError(_l("Service notes are written while the referral is worked on."))
    body = (body or "").strip()
    if not body:
        raise ReferralError(_l("Write the note."))
    note = ReferralNote(
        referral=referral,
        case=referral.case,
        author_user_id=user.id,
        agency_id=user.agency_id,
        created_at=utcnow(),
        shared_with_sender=bool(shared_with_sender),
    )
    db.session.add(note)
    note.body = body
    db.session.flush()
    _record(
        referral,
        "referral.note_added",
        user,
        ["body", "shared_with_sender"],
        object_type="referral_note",
        object_id=note.id,
    )
    return note


# Reading -----------------------------------------------------------------------------------


def record_shared_read(user: User, referral: Referral, sections: Iterable[SharedSection]) -> None:
    """Audit the receiver's read of the shared case sections (field names only)."""
    names = [f"case.{name}" for name in disclosed_field_names(sections)]
    audit.record(
        "referral.case_viewed",
        object_type="referral",
        object_id=referral.id,
        field_names=names,
        user=user,
    )


def transitions_of(referral: Referral) -> list[ReferralTransition]:
    """Return the referral's steps, oldest first."""
    return list(
        db.session.scalars(
            select(ReferralTransition)
            .where(ReferralTransition.referral_id == referral.id)
            .order_by(ReferralTransition.occurred_at, ReferralTransition.id)
        )
    )


def receipts_of(referral: Referral) -> list[DisclosureReceipt]:
    """Return the referral's disclosure receipts, oldest first."""
    return list(
        db.session.scalars(
            select(DisclosureReceipt)
            .where(DisclosureReceipt.referral_id == referral.id)
            .order_by(DisclosureReceipt.disclosed_at)
        )
    )
