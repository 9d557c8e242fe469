"""Supervisor actions on cases: assignment, closure, transfer requests, restriction with
break-the-glass reads, and erasure (crypto-shredding) with its retention purge.

Models and services live together here because they are one small area. Services follow
casework.services: they take model objects and plain data, flush, write the audit entry and
the timeline event, and never commit.

Coded values versus encrypted notes: every free-text note here (closure note, transfer
reason, restriction reason, erasure note, break-the-glass reason) is encrypted under the
case's data key, so crypto-shredding the case makes it unreadable too. What must survive an
erasure (why a case was closed or erased) is kept as a *code* in clear, never as text.

The break-the-glass reason is also written in clear to the audit log (``reason=``): DESIGN
says the auditors read it there. The form asks users not to put personal data in it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework import reference
from casework.duplicates import close_flags_of_erased_case
from casework.models import Case, CaseRecord, CaseStatus
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField, forget_plaintext
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.models import Agency, Role, User
from core.notifications import notify, register_notification_kind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# How long a break-the-glass read lasts.
BREAK_GLASS_DURATION = timedelta(hours=1)
# A written reason must say something; "x" is not a reason.
MIN_REASON_LENGTH = 10
# Cases erased per transaction by the retention purge.
PURGE_BATCH_SIZE = 100

# Closure reasons: the codes of the reference list "closure_reason" (casework/reference.py)
# are used; this fallback serves only while that list is not seeded.
CLOSURE_REASONS: dict[str, Any] = {
    "services_completed": _l("Support completed"),
    "reintegrated": _l("Person reintegrated"),
    "voluntary_return": _l("Returned to the country of origin"),
    "transferred": _l("Transferred to another agency"),
    "consent_withdrawn": _l("Person withdrew consent"),
    "lost_contact": _l("Contact lost"),
    "not_trafficking": _l("Not a trafficking case"),
    "deceased": _l("Person deceased"),
    "other": _l("Other"),
}

# Why a case is erased: a code that stays readable after the erasure.
ERASURE_REASONS: dict[str, Any] = {
    "subject_request": _l("The person asked for erasure"),
    "consent_withdrawn": _l("Consent to processing withdrawn"),
    "created_in_error": _l("Case opened in error"),
    "legal_order": _l("Court or legal order"),
    "retention_expired": _l("Retention period expired"),
    "other": _l("Other"),
}

for _kind, _label in {
    "case.assigned": _l("Case assigned"),
    "case.closure_requested": _l("Closure requested"),
    "case.closure_approved": _l("Closure approved, case closed"),
    "case.closure_rejected": _l("Closure request rejected"),
    "case.transfer_requested": _l("Transfer requested"),
    "case.transfer_approved": _l("Transfer approved by the supervisor"),
    "case.transfer_rejected": _l("Transfer request rejected"),
    "case.transfer_cancelled": _l("Transfer request cancelled"),
    "case.transfer_accepted": _l("Transfer accepted, the case moved to the receiving agency"),
    "case.transfer_declined": _l("Transfer declined by the receiving agency"),
    "case.closure_lapsed": _l("Closure request lapsed with the transfer"),
    "case.break_glass_lapsed": _l("Break-the-glass reads ended with the transfer"),
    "case.restricted": _l("Access restricted"),
    "case.unrestricted": _l("Access restriction lifted"),
    "case.break_glass": _l("Break-the-glass read opened"),
    "case.erasure_requested": _l("Erasure requested"),
    "case.erasure_rejected": _l("Erasure request rejected"),
    "case.erased": _l("Personal data erased"),
}.items():
    register_timeline_kind(_kind, _label)

# Transfer notifications go to supervisors: they answer transfers and assign the cases.
for _kind, _label in {
    "transfer.incoming": _l("A case transfer waits for your agency's answer"),
    "transfer.accepted": _l("Your case transfer was accepted"),
    "transfer.declined": _l("Your case transfer was declined"),
}.items():
    register_notification_kind(_kind, _label)


class SupervisionError(Exception):
    """The action is not possible in the case's or request's current state."""


class BestInterestsRequired(SupervisionError):
    """A minor's case needs a best-interests determination first; the message (translated)
    says what is missing, and the views show it on the form."""


def _require_best_interests(case: Case, purpose: str) -> None:
    from casework.child_protection import best_interests_problem  # the child path

    problem = best_interests_problem(case, purpose)
    if problem:
        raise BestInterestsRequired(problem)


def closure_reason_choices() -> list[tuple[str, str]]:
    """Return (code, label) pairs of closure reasons: the reference list, once seeded.

    Falls back to ``CLOSURE_REASONS`` while the "closure_reason" list is empty (a fresh
    database before `seed_reference_lists`).
    """
    choices = reference.choices_for("closure_reason")
    if choices:
        return choices
    return [(code, str(label)) for code, label in CLOSURE_REASONS.items()]


class RequestStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return str(REQUEST_STATUS_LABELS[self])


REQUEST_STATUS_LABELS = {
    RequestStatus.REQUESTED: _l("Requested"),
    RequestStatus.APPROVED: _l("Approved"),
    RequestStatus.REJECTED: _l("Rejected"),
    RequestStatus.CANCELLED: _l("Cancelled"),
}


class TransferStatus(enum.StrEnum):
    """A transfer: requested, approved by the sender's supervisor, then answered by the
    receiving agency (accepted moves the case; declined returns it with a reason)."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ACCEPTED = "accepted"
    DECLINED = "declined"

    @property
    def label(self) -> str:
        return str(TRANSFER_STATUS_LABELS[self])


TRANSFER_STATUS_LABELS = {
    TransferStatus.REQUESTED: _l("Requested"),
    TransferStatus.APPROVED: _l("Waiting for the receiving agency"),
    TransferStatus.REJECTED: _l("Rejected"),
    TransferStatus.CANCELLED: _l("Cancelled"),
    TransferStatus.ACCEPTED: _l("Accepted"),
    TransferStatus.DECLINED: _l("Declined by the receiving agency"),
}
# A transfer still on its way: no second one may start meanwhile.
OPEN_TRANSFER_STATUSES = (TransferStatus.REQUESTED.value, TransferStatus.APPROVED.value)


def _decided_check(name: str) -> CheckConstraint:
    # A request is decided exactly when it left the "requested" state.
    return CheckConstraint("(status = 'requested') = (decided_at IS NULL)", name=name)


class ClosureRequest(CaseRecord, db.Model):
    """A caseworker's request to close a case, approved or rejected by a supervisor."""

    __tablename__ = "case_closure_requests"
    __table_args__ = (
        enum_check("status", RequestStatus),
        _decided_check("decided"),
        Index("ix_case_closure_requests_case", "case_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    reason_code: Mapped[str] = mapped_column(String(40))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(
        enum_string(RequestStatus), default=RequestStatus.REQUESTED.value
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note = EncryptedField()
    rejection_reason = EncryptedField()

    case: Mapped[Case] = relationship()
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def reason_label(self) -> str:
        return dict(closure_reason_choices()).get(self.reason_code, self.reason_code)

    @property
    def status_enum(self) -> RequestStatus:
        return RequestStatus(self.status)


class TransferRequest(CaseRecord, db.Model):
    """A request to move a case to another agency.

    A supervisor's approval is the sending side's half; a supervisor of the receiving agency
    then accepts (the case changes owner) or declines with a reason (DESIGN: a transfer
    needs its acceptance). Until then an approved request changes no ownership.
    """

    __tablename__ = "case_transfer_requests"
    __table_args__ = (
        enum_check("status", TransferStatus),
        _decided_check("decided"),
        # Answered by the receiving agency exactly when accepted or declined.
        CheckConstraint(
            "(status IN ('accepted', 'declined')) = (answered_at IS NOT NULL)", name="answered"
        ),
        Index("ix_case_transfer_requests_case", "case_id", "status"),
        Index("ix_case_transfer_requests_to_agency", "to_agency_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    to_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    # The owner when the transfer was asked for: the case's owner changes on acceptance.
    from_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(
        enum_string(TransferStatus), default=TransferStatus.REQUESTED.value
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The receiving agency's answer.
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason = EncryptedField()
    decision_note = EncryptedField()
    decline_reason = EncryptedField()

    case: Mapped[Case] = relationship()
    to_agency: Mapped[Agency] = relationship(foreign_keys=[to_agency_id])
    from_agency: Mapped[Agency | None] = relationship(foreign_keys=[from_agency_id])
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    @property
    def status_enum(self) -> TransferStatus:
        return TransferStatus(self.status)


class CaseRestriction(CaseRecord, db.Model):
    """Marks a case restricted: only its assigned user reads it, others break the glass.

    Kept beside the case rather than as a column on it: the access policy checks it in
    ``visible_cases`` and ``can_view_case``.
    """

    __tablename__ = "case_restrictions"

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    restricted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    restricted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason = EncryptedField()

    case: Mapped[Case] = relationship()
    restricted_by: Mapped[User] = relationship()


class BreakGlassGrant(CaseRecord, db.Model):
    """A supervisor's time-limited read of a restricted case, opened with a written reason."""

    __tablename__ = "case_break_glass_grants"
    __table_args__ = (
        Index("ix_case_break_glass_grants_lookup", "case_id", "user_id", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason = EncryptedField()

    case: Mapped[Case] = relationship()
    user: Mapped[User] = relationship()


class ErasureStatus(enum.StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class ErasureRequest(CaseRecord, db.Model):
    """A supervisor's request to crypto-shred a case, confirmed or rejected by an admin.

    The reason is a code (``ERASURE_REASONS``) kept in clear, because the optional note is
    encrypted under the case's key and becomes unreadable once the erasure is confirmed.
    """

    __tablename__ = "case_erasure_requests"
    __table_args__ = (
        enum_check("status", ErasureStatus),
        _decided_check("decided"),
        Index("ix_case_erasure_requests_status", "status", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    reason_code: Mapped[str] = mapped_column(String(40))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(
        enum_string(ErasureStatus), default=ErasureStatus.REQUESTED.value
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note = EncryptedField()

    case: Mapped[Case] = relationship()
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def reason_label(self) -> str:
        return str(ERASURE_REASONS.get(self.reason_code, self.reason_code))


# Queries ---------------------------------------------------------------------------------


def restriction_of(case: Case) -> CaseRestriction | None:
    return case.restriction


def active_grant(case: Case, user: User, now: datetime | None = None) -> BreakGlassGrant | None:
    """Return the user's unexpired break-the-glass grant on the case, if any."""
    now = now or utcnow()
    return db.session.scalars(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.case_id == case.id,
            BreakGlassGrant.user_id == user.id,
            BreakGlassGrant.expires_at > now,
        )
        .order_by(BreakGlassGrant.expires_at.desc())
    ).first()


def pending_closure(case: Case) -> ClosureRequest | None:
    return _pending(ClosureRequest, case)


def pending_transfer(case: Case) -> TransferRequest | None:
    """Return the transfer request waiting for the own supervisor's approval, if any."""
    return _pending(TransferRequest, case)


def awaiting_transfer(case: Case) -> TransferRequest | None:
    """Return the approved transfer waiting for the receiving agency's answer, if any."""
    return db.session.scalars(
        select(TransferRequest).where(
            TransferRequest.case_id == case.id,
            TransferRequest.status == TransferStatus.APPROVED.value,
        )
    ).first()


def last_declined_transfer(case: Case) -> TransferRequest | None:
    """Return the most recent transfer the receiving agency declined, if any."""
    return db.session.scalars(
        select(TransferRequest)
        .where(
            TransferRequest.case_id == case.id,
            TransferRequest.status == TransferStatus.DECLINED.value,
        )
        .order_by(TransferRequest.answered_at.desc())
    ).first()


def confirmed_erasure(case: Case) -> ErasureRequest | None:
    """Return the confirmed request the case was erased on (None after a retention purge)."""
    return db.session.scalars(
        select(ErasureRequest)
        .where(
            ErasureRequest.case_id == case.id,
            ErasureRequest.status == ErasureStatus.CONFIRMED.value,
        )
        .order_by(ErasureRequest.decided_at.desc())
    ).first()


def pending_erasure(case: Case) -> ErasureRequest | None:
    return db.session.scalars(
        select(ErasureRequest).where(
            ErasureRequest.case_id == case.id,
            ErasureRequest.status == ErasureStatus.REQUESTED.value,
        )
    ).first()


def _pending(model: type, case: Case) -> Any:
    return db.session.scalars(
        select(model).where(model.case_id == case.id, model.status == RequestStatus.REQUESTED.value)
    ).first()


def agency_overview(agency_id: int, now: datetime | None = None) -> dict[str, list]:
    """Return what waits for the agency's supervisors, oldest first, by kind.

    Pending closure, transfer and erasure requests of the agency's cases, approved transfers
    waiting for the receiving agency, active break-the-glass reads and restricted cases.
    Rows carry references, people and dates only: the page shows no personal data.
    """
    now = now or utcnow()
    own = Case.owner_agency_id == agency_id

    def rows(model: type, *where: Any, order: Any) -> list:
        query = select(model).join(Case, model.case_id == Case.id).where(own, *where)
        return list(db.session.scalars(query.order_by(order)))

    return {
        "closures": rows(
            ClosureRequest,
            ClosureRequest.status == RequestStatus.REQUESTED.value,
            order=ClosureRequest.requested_at,
        ),
        "transfers": rows(
            TransferRequest,
            TransferRequest.status.in_(OPEN_TRANSFER_STATUSES),
            order=TransferRequest.requested_at,
        ),
        "erasures": rows(
            ErasureRequest,
            ErasureRequest.status == ErasureStatus.REQUESTED.value,
            order=ErasureRequest.requested_at,
        ),
        "grants": rows(
            BreakGlassGrant, BreakGlassGrant.expires_at > now, order=BreakGlassGrant.granted_at
        ),
        "restrictions": rows(CaseRestriction, order=CaseRestriction.restricted_at),
    }


def assignable_users(case: Case) -> list[User]:
    """Return the active caseworkers and supervisors of the case's agency, by name."""
    users = db.session.scalars(
        select(User).where(User.agency_id == case.owner_agency_id).order_by(User.display_name)
    ).all()
    return [user for user in users if _may_be_assigned(user, case)]


def _may_be_assigned(user: User, case: Case) -> bool:
    return (
        user.agency_id == case.owner_agency_id
        and user.is_active
        and user.has_role(Role.CASEWORKER, Role.SUPERVISOR)
        and not user.has_role(Role.ADMIN)
    )


# Assignment ------------------------------------------------------------------------------


def assign_case(case: Case, assignee: User, actor: User) -> Case:
    """Assign the case to a caseworker or supervisor of its agency.

    :raises SupervisionError: when the assignee may not work the case.
    """
    _require_not_erased(case)
    if not _may_be_assigned(assignee, case):
        raise SupervisionError("the case can only be assigned to its agency's case staff")
    if case.assigned_user_id == assignee.id:
        return case
    case.assigned_user_id = assignee.id
    db.session.flush()
    audit.record(
        "case.assigned",
        object_type="case",
        object_id=case.id,
        field_names=["assigned_user_id"],
        user=actor,
    )
    add_timeline_event(
        case,
        "case.assigned",
        actor=actor,
        object_type="user",
        object_id=str(assignee.id),
        field_names=["assigned_user_id"],
    )
    return case


# Closure ---------------------------------------------------------------------------------


def request_closure(case: Case, actor: User, reason_code: str, note: str | None) -> ClosureRequest:
    """Ask a supervisor to close the case for a coded reason, with an optional note.

    :raises SupervisionError: when the case is not open, a request is pending, or the code
        is unknown.
    """
    _require_not_erased(case)
    if case.status != CaseStatus.OPEN.value:
        raise SupervisionError("only an open case can be closed")
    if reason_code not in dict(closure_reason_choices()):
        raise SupervisionError(f"unknown closure reason {reason_code!r}")
    if pending_closure(case) is not None:
        raise SupervisionError("a closure request is already waiting for a supervisor")
    _require_best_interests(case, "closure")
    request = ClosureRequest(
        case=case, reason_code=reason_code, requested_by_id=actor.id, requested_at=utcnow()
    )
    db.session.add(request)
    if note and note.strip():
        request.note = note.strip()
    db.session.flush()
    fields = ["reason_code", *(["note"] if request.note else [])]
    _record(case, actor, "case.closure_requested", "closure_request", request.id, fields)
    return request


def approve_closure(request: ClosureRequest, actor: User) -> Case:
    """Close the case for the requested reason.

    :raises SupervisionError: when the request was already decided or the case is not open.
    """
    case = request.case
    _require_pending(request)
    if case.status != CaseStatus.OPEN.value:
        raise SupervisionError("only an open case can be closed")
    _require_best_interests(case, "closure")
    now = utcnow()
    _mark_decided(request, RequestStatus.APPROVED, actor, now)
    case.status = CaseStatus.CLOSED.value
    case.closed_at = now
    case.closure_reason = request.reason_code
    db.session.flush()
    _record(
        case,
        actor,
        "case.closure_approved",
        "closure_request",
        request.id,
        ["status", "closed_at", "closure_reason"],
    )
    return case


def reject_closure(request: ClosureRequest, actor: User, reason: str) -> ClosureRequest:
    """Refuse a closure request with a written reason; the case stays open."""
    _require_pending(request)
    _require_reason(reason)
    _mark_decided(request, RequestStatus.REJECTED, actor)
    request.rejection_reason = reason.strip()
    db.session.flush()
    _record(request.case, actor, "case.closure_rejected", "closure_request", request.id, ["status"])
    return request


# Transfer --------------------------------------------------------------------------------


def request_transfer(case: Case, actor: User, to_agency: Agency, reason: str) -> TransferRequest:
    """Ask to move the case to another active agency, with a written reason.

    :raises SupervisionError: for the own or an inactive agency, a closed case, or when a
        request is already pending.
    """
    _require_not_erased(case)
    if case.status != CaseStatus.OPEN.value:
        raise SupervisionError("only an open case can be transferred")
    if to_agency.id == case.owner_agency_id or not to_agency.active:
        raise SupervisionError("choose another, active agency")
    _require_reason(reason)
    if pending_transfer(case) is not None or awaiting_transfer(case) is not None:
        raise SupervisionError("a transfer request is already pending")
    _require_best_interests(case, "transfer")
    request = TransferRequest(
        case=case,
        to_agency_id=to_agency.id,
        from_agency_id=case.owner_agency_id,
        requested_by_id=actor.id,
        requested_at=utcnow(),
    )
    db.session.add(request)
    request.reason = reason.strip()
    db.session.flush()
    _record(
        case,
        actor,
        "case.transfer_requested",
        "transfer_request",
        request.id,
        ["to_agency_id", "reason"],
    )
    return request


def approve_transfer(request: TransferRequest, actor: User) -> TransferRequest:
    """Approve the transfer on the sending side; the receiving agency accepts it later."""
    _decide_transfer(request, actor, TransferStatus.APPROVED, None)
    _notify_transfer(request, "transfer.incoming", request.to_agency, "/transfers/incoming")
    return request


def _notify_transfer(request: TransferRequest, kind: str, agency: Agency | None, link: str) -> None:
    """Tell the agency's supervisors: the case reference and a link, nothing else."""
    if agency is not None:
        notify(
            agency=agency,
            roles=[Role.SUPERVISOR],
            kind=kind,
            reference=request.case.reference,
            link=link,
        )


def reject_transfer(request: TransferRequest, actor: User, note: str) -> TransferRequest:
    """Refuse a transfer request with a written reason."""
    _require_reason(note)
    return _decide_transfer(request, actor, TransferStatus.REJECTED, note)


def cancel_transfer(request: TransferRequest, actor: User) -> TransferRequest:
    """Withdraw a transfer request, pending or approved but not yet answered."""
    if request.status == TransferStatus.APPROVED.value:
        _require_not_erased(request.case)
        # Approved already: it was decided then; cancelling only changes the status.
        request.status = TransferStatus.CANCELLED.value
        db.session.flush()
        _record(
            request.case,
            actor,
            "case.transfer_cancelled",
            "transfer_request",
            request.id,
            ["status"],
        )
        return request
    return _decide_transfer(request, actor, TransferStatus.CANCELLED, None)


def _decide_transfer(
    request: TransferRequest, actor: User, status: TransferStatus, note: str | None
) -> TransferRequest:
    _require_pending(request)
    _require_not_erased(request.case)
    _mark_decided(request, status, actor)
    fields = ["status"]
    if note:
        request.decision_note = note.strip()
        fields.append("decision_note")
    db.session.flush()
    _record(
        request.case, actor, f"case.transfer_{status.value}", "transfer_request", request.id, fields
    )
    return request


def accept_transfer(request: TransferRequest, actor: User) -> Case:
    """Hand the case over to the receiving agency, whose supervisor ``actor`` is.

    The owner changes, the assignee is cleared (the new agency assigns its own staff), the
    sending agency's pending closure requests and break-the-glass reads lapse. Access
    follows the owner agency, so the sending agency loses it with this transaction. A
    restriction stays: the new owner's supervisors see it and decide.

    :raises SupervisionError: when the transfer is not waiting for an answer, the actor is
        not of the receiving agency, or the case is no longer open.
    """
    case = request.case
    _require_answerable(request, actor)
    if case.status != CaseStatus.OPEN.value:
        raise SupervisionError("only an open case can be transferred")
    if not request.to_agency.active:
        raise SupervisionError("the receiving agency is no longer active")
    now = utcnow()
    _mark_answered(request, TransferStatus.ACCEPTED, actor, now)
    case.owner_agency_id = request.to_agency_id
    case.assigned_user_id = None
    # Pending decisions of the old owner are moot: the new owner decides anew.
    for closure in db.session.scalars(
        select(ClosureRequest).where(
            ClosureRequest.case_id == case.id,
            ClosureRequest.status == RequestStatus.REQUESTED.value,
        )
    ):
        _mark_decided(closure, RequestStatus.CANCELLED, actor, now)
        _record(case, actor, "case.closure_lapsed", "closure_request", closure.id, ["status"])
    grants = db.session.scalars(
        select(BreakGlassGrant).where(
            BreakGlassGrant.case_id == case.id, BreakGlassGrant.expires_at > now
        )
    ).all()
    for grant in grants:
        grant.expires_at = now
    if grants:
        _record(case, actor, "case.break_glass_lapsed", "case", case.id, ["expires_at"])
    db.session.flush()
    # Audited against the case like every supervision step; the agencies are ids, not data.
    audit.record(
        "case.transfer_accepted",
        object_type="case",
        object_id=case.id,
        field_names=["owner_agency_id", "assigned_user_id", "status"],
        user=actor,
    )
    add_timeline_event(
        case,
        "case.transfer_accepted",
        actor=actor,
        object_type="transfer_request",
        object_id=request.id,
        field_names=["owner_agency_id", "assigned_user_id"],
    )
    # The sending agency no longer reads the case: the link is its supervision overview.
    _notify_transfer(request, "transfer.accepted", request.from_agency, "/supervision")
    return case


def decline_transfer(request: TransferRequest, actor: User, reason: str) -> TransferRequest:
    """Refuse to take the case over, with a written reason the sending agency reads.

    :raises SupervisionError: when the transfer is not waiting for an answer, the actor is
        not of the receiving agency, or the reason is too short.
    """
    _require_answerable(request, actor)
    _require_reason(reason)
    _mark_answered(request, TransferStatus.DECLINED, actor)
    request.decline_reason = reason.strip()
    db.session.flush()
    _record(
        request.case,
        actor,
        "case.transfer_declined",
        "transfer_request",
        request.id,
        ["status", "decline_reason"],
    )
    _notify_transfer(
        request, "transfer.declined", request.from_agency, f"/cases/{request.case_id}/supervision"
    )
    return request


def _require_answerable(request: TransferRequest, actor: User) -> None:
    if request.status != TransferStatus.APPROVED.value:
        raise SupervisionError("this transfer is not waiting for an answer")
    if actor.agency_id != request.to_agency_id:
        raise SupervisionError("only the receiving agency answers a transfer")
    _require_not_erased(request.case)


def _mark_answered(
    request: TransferRequest, status: TransferStatus, actor: User, now: datetime | None = None
) -> None:
    """Set the receiving agency's answer with who gave it and when, together (see CHECK)."""
    actor_id = actor.id
    with db.session.no_autoflush:
        request.status = status.value
        request.answered_by_id = actor_id
        request.answered_at = now or utcnow()


# Restriction and break-the-glass ---------------------------------------------------------


def restrict_case(case: Case, actor: User, reason: str) -> CaseRestriction:
    """Restrict the case to its assigned user; others need a break-the-glass read."""
    _require_not_erased(case)
    _require_reason(reason)
    if restriction_of(case) is not None:
        raise SupervisionError("the case is already restricted")
    restriction = CaseRestriction(
        case_id=case.id, case=case, restricted_by_id=actor.id, restricted_at=utcnow()
    )
    db.session.add(restriction)
    restriction.reason = reason.strip()
    db.session.flush()
    db.session.expire(case, ["restriction"])  # viewonly: the policy must see it now
    _record(case, actor, "case.restricted", "case", case.id, ["restricted", "reason"])
    return restriction


def lift_restriction(case: Case, actor: User) -> Case:
    """Make a restricted case visible to its agency again."""
    restriction = restriction_of(case)
    if restriction is None:
        raise SupervisionError("the case is not restricted")
    db.session.delete(restriction)
    db.session.flush()
    db.session.expire(case, ["restriction"])
    _record(case, actor, "case.unrestricted", "case", case.id, ["restricted"])
    return case


def break_glass(case: Case, actor: User, reason: str) -> BreakGlassGrant:
    """Open a time-limited read of a restricted case, audited with the written reason.

    :raises SupervisionError: without a real reason, or on a case that is not restricted.
    """
    _require_not_erased(case)
    _require_reason(reason)
    if restriction_of(case) is None:
        raise SupervisionError("the case is not restricted; open it normally")
    reason = reason.strip()
    now = utcnow()
    grant = BreakGlassGrant(
        case=case, user_id=actor.id, granted_at=now, expires_at=now + BREAK_GLASS_DURATION
    )
    db.session.add(grant)
    grant.reason = reason
    db.session.flush()
    # In clear in the audit log: auditors review every break-the-glass by its reason.
    audit.record(
        "case.break_glass", object_type="case", object_id=case.id, reason=reason, user=actor
    )
    add_timeline_event(
        case,
        "case.break_glass",
        actor=actor,
        object_type="break_glass_grant",
        object_id=grant.id,
        summary=reason,
    )
    return grant


# Erasure and retention -------------------------------------------------------------------


def request_erasure(
    case: Case, actor: User, reason_code: str, note: str | None = None
) -> ErasureRequest:
    """Ask an administrator to crypto-shred the case, for a coded reason."""
    _require_not_erased(case)
    if reason_code not in ERASURE_REASONS:
        raise SupervisionError(f"unknown erasure reason {reason_code!r}")
    if pending_erasure(case) is not None:
        raise SupervisionError("an erasure request is already pending")
    request = ErasureRequest(
        case=case, reason_code=reason_code, requested_by_id=actor.id, requested_at=utcnow()
    )
    db.session.add(request)
    if note and note.strip():
        request.note = note.strip()
    db.session.flush()
    fields = ["reason_code", *(["note"] if request.note else [])]
    _record(case, actor, "case.erasure_requested", "erasure_request", request.id, fields)
    return request


def confirm_erasure(request: ErasureRequest, actor: User) -> Case:
    """Confirm a pending erasure request and erase the case."""
    if request.status != ErasureStatus.REQUESTED.value:
        raise SupervisionError("this erasure request was already decided")
    _mark_decided(request, ErasureStatus.CONFIRMED, actor)
    return erase_case(request.case, actor)


def reject_erasure(request: ErasureRequest, actor: User) -> ErasureRequest:
    """Refuse a pending erasure request; the case stays as it is."""
    if request.status != ErasureStatus.REQUESTED.value:
        raise SupervisionError("this erasure request was already decided")
    _mark_decided(request, ErasureStatus.REJECTED, actor)
    db.session.flush()
    _record(request.case, actor, "case.erasure_rejected", "erasure_request", request.id, ["status"])
    return request


def erase_case(case: Case, actor: User | None) -> Case:
    """Crypto-shred the case: destroy its data key, delete its blind indexes, mark it erased.

    Everything encrypted under the case's key (its fields, notes, attachments, timeline
    summaries, the notes of this module) becomes unreadable; the coded columns stay for
    statistics. ``actor`` is None for the retention purge (the system). Erasing an erased
    case does nothing.
    """
    if case.is_erased:
        return case
    now = utcnow()
    case.erase_personal_data()
    case.erased_at = now
    # Pending requests about a case that no longer has personal data are moot.
    for model in (ClosureRequest, TransferRequest):
        for request in db.session.scalars(
            select(model).where(
                model.case_id == case.id, model.status == RequestStatus.REQUESTED.value
            )
        ):
            _mark_decided(request, RequestStatus.CANCELLED, actor, now)
    # An approved transfer waiting for the receiver was decided already: cancel it only.
    for request in db.session.scalars(
        select(TransferRequest).where(
            TransferRequest.case_id == case.id,
            TransferRequest.status == TransferStatus.APPROVED.value,
        )
    ):
        request.status = TransferStatus.CANCELLED.value
    # An open duplicate flag could never be compared again.
    close_flags_of_erased_case(case, actor)
    _forget_case_plaintext(db.session, case)
    db.session.flush()
    audit.record(
        "case.erased",
        object_type="case",
        object_id=case.id,
        field_names=["data_key", "blind_indexes", "erased_at"],
        user=actor,
    )
    add_timeline_event(case, "case.erased", actor=actor, object_type="case", object_id=case.id)
    return case


def _forget_case_plaintext(session: Session, case: Case) -> None:
    """Drop decrypted values cached on the case and its loaded child rows.

    The field cache would otherwise keep answering reads in this session after the key
    is gone. Child rows (notes, attachments, timeline events...) name their case_id.
    """
    for obj in list(session.identity_map.values()):
        if obj is case or getattr(obj, "case_id", None) == case.id:
            forget_plaintext(obj)


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Return the moment before which a closed case is past retention."""
    days = int(current_app.config["HAVEN_RETENTION_DAYS"])
    return (now or utcnow()) - timedelta(days=days)


def expired_cases_query(now: datetime | None = None):
    """Return a select of closed, not yet erased cases closed before the retention cutoff."""
    return (
        select(Case)
        .where(
            Case.status == CaseStatus.CLOSED.value,
            Case.closed_at.is_not(None),
            Case.closed_at < retention_cutoff(now),
            Case.erased_at.is_(None),
        )
        .order_by(Case.closed_at, Case.id)
    )


def erase_expired_batch(batch_size: int = PURGE_BATCH_SIZE) -> list[str]:
    """Erase up to ``batch_size`` expired cases as the system; return their references.

    The caller commits after each batch.
    """
    cases = db.session.scalars(expired_cases_query().limit(batch_size)).all()
    for case in cases:
        erase_case(case, None)
    return [case.reference for case in cases]


def _record(
    case: Case,
    actor: User | None,
    kind: str,
    object_type: str,
    object_id: str,
    fields: Iterable[str],
) -> None:
    fields = list(fields)
    # Audited against the case, so an auditor finds everything about one case in one place.
    audit.record(kind, object_type="case", object_id=case.id, field_names=fields, user=actor)
    add_timeline_event(
        case,
        kind,
        actor=actor,
        object_type=object_type,
        object_id=object_id,
        field_names=fields,
    )


def _mark_decided(
    request: Any, status: enum.Enum, actor: User | None, now: datetime | None = None
) -> None:
    """Set a request's status with who decided and when, together.

    The CHECK ties the status to decided_at, so no flush may happen between the two (reading
    an expired ``actor.id`` would autoflush).
    """
    actor_id = actor.id if actor is not None else None
    with db.session.no_autoflush:
        request.status = status.value
        request.decided_by_id = actor_id
        request.decided_at = now or utcnow()


def _require_pending(request: ClosureRequest | TransferRequest) -> None:
    if request.status != RequestStatus.REQUESTED.value:
        raise SupervisionError("this request was already decided")


def _require_reason(reason: str | None) -> None:
    if not reason or len(reason.strip()) < MIN_REASON_LENGTH:
        raise SupervisionError(f"write a reason of at least {MIN_REASON_LENGTH} characters")


def _require_not_erased(case: Case) -> None:
    if case.is_erased:
        raise SupervisionError("the case's personal data was erased")
