"""Reconsideration of a negative status decision: the request, its state, the second decision.

The owner agency's case staff may ask the national coordinator, once per case and within
``HAVEN_RECONSIDERATION_DAYS`` of the decision date, to reconsider a negative decision,
giving new information (encrypted under the case's key) and the case sections to share.
The request travels as a new ``status_decision`` referral to the coordinator, so the
consent check, the disclosure receipt, the coordinator's access to the shared sections and
the decision page are the first decision's, unchanged. The ``Reconsideration`` row holds
the request's own state (``referrals.reconsideration_workflow``), moved only by
``transition`` below, which a referral transition listener calls as the carrying referral
moves: accepted → under review, completed by a decision → upheld or overturned, cancelled
by the sender → withdrawn, declined, expired or consent withdrawn → lapsed.

The case's NRM status stays ``not_recognised`` while the reconsideration runs: the first
decision stands until a second one replaces it (so statistics and the reflection period
warnings do not move), and the case page shows the reconsideration beside the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.casefile import ServiceType
from casework.models import CaseRecord, CaseStatus, NrmStatus, local_today
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.models import Role
from core.notifications import notify, register_notification_kind
from referrals import reconsideration_workflow as flow
from referrals import services
from referrals.decisions import Decision, DecisionError, DecisionOutcome
from referrals.models import Referral
from referrals.workflow import Action as ReferralAction
from referrals.workflow import Urgency

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import User

DEFAULT_RECONSIDERATION_DAYS = 30
INFORMATION_MAX = 4000

STATE_LABELS = {
    flow.State.REQUESTED: _l("Reconsideration requested"),
    flow.State.UNDER_REVIEW: _l("Reconsideration under review"),
    flow.State.UPHELD: _l("Reconsidered: decision upheld"),
    flow.State.OVERTURNED: _l("Reconsidered: decision overturned"),
    flow.State.WITHDRAWN: _l("Reconsideration withdrawn"),
    flow.State.LAPSED: _l("Reconsideration request ended without a decision"),
}
STATE_BADGES = {
    flow.State.REQUESTED: "badge--warn",
    flow.State.UNDER_REVIEW: "badge--warn",
    flow.State.UPHELD: "",
    flow.State.OVERTURNED: "badge--ok",
    flow.State.WITHDRAWN: "",
    flow.State.LAPSED: "",
}
# Timeline and audit kind of each move.
EVENT_KINDS = {
    flow.Action.REVIEW: "nrm.reconsideration_under_review",
    flow.Action.UPHOLD: "nrm.reconsideration_upheld",
    flow.Action.OVERTURN: "nrm.reconsideration_overturned",
    flow.Action.WITHDRAW: "nrm.reconsideration_withdrawn",
    flow.Action.LAPSE: "nrm.reconsideration_lapsed",
}
for _kind, _label in {
    "nrm.reconsideration_requested": _l("Reconsideration of the status decision requested"),
    "nrm.reconsideration_under_review": _l("Reconsideration under review"),
    "nrm.reconsideration_upheld": _l("Reconsideration: the negative decision was upheld"),
    "nrm.reconsideration_overturned": _l("Reconsideration: the negative decision was overturned"),
    "nrm.reconsideration_withdrawn": _l("Reconsideration request withdrawn"),
    "nrm.reconsideration_lapsed": _l("Reconsideration request ended without a decision"),
}.items():
    register_timeline_kind(_kind, _label)
register_notification_kind(
    "nrm.reconsideration_requested", _l("A case owner asks to reconsider a status decision")
)

# The carrying referral's moves and the reconsideration's move each one makes.
_FOLLOWS = {
    ReferralAction.ACCEPT: flow.Action.REVIEW,
    ReferralAction.CANCEL: flow.Action.WITHDRAW,
    ReferralAction.DECLINE: flow.Action.LAPSE,
    ReferralAction.EXPIRE: flow.Action.LAPSE,
    ReferralAction.WITHDRAW_CONSENT: flow.Action.LAPSE,
}


class ReconsiderationError(DecisionError):
    """A reconsideration request the rules refuse; the message is a lazy translation."""


class Reconsideration(CaseRecord, db.Model):
    """The case owner's request to reconsider a negative status decision."""

    __tablename__ = "nrm_reconsiderations"
    __table_args__ = (
        enum_check("state", flow.State),
        # Decided exactly when the second decision is linked.
        CheckConstraint(
            "(state IN ('upheld', 'overturned')) = (second_decision_id IS NOT NULL)",
            name="decided_with_decision",
        ),
        Index("ix_nrm_reconsiderations_case", "case_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # The negative decision reconsidered, and the second decision once recorded.
    decision_id: Mapped[str] = mapped_column(ForeignKey("nrm_decisions.id"))
    second_decision_id: Mapped[str | None] = mapped_column(ForeignKey("nrm_decisions.id"))
    # The status-decision referral that carries the request to the coordinator.
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), unique=True)
    state: Mapped[str] = mapped_column(enum_string(flow.State), default=flow.State.REQUESTED.value)
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    new_information = EncryptedField()

    case: Mapped[Case] = relationship()
    decision: Mapped[Decision] = relationship(foreign_keys=[decision_id])
    second_decision: Mapped[Decision | None] = relationship(foreign_keys=[second_decision_id])
    referral: Mapped[Referral] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def state_enum(self) -> flow.State:
        return flow.State(self.state)

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[self.state_enum])

    @property
    def state_badge(self) -> str:
        return STATE_BADGES[self.state_enum]

    @property
    def is_open(self) -> bool:
        return self.state_enum in flow.OPEN_STATES


# The period ---------------------------------------------------------------------------------


def reconsideration_days() -> int:
    """Return the days after the decision date within which reconsideration may be asked."""
    if not has_app_context():
        return DEFAULT_RECONSIDERATION_DAYS
    return int(current_app.config.get("HAVEN_RECONSIDERATION_DAYS", DEFAULT_RECONSIDERATION_DAYS))


def last_request_day(decision: Decision) -> date:
    """Return the last day a reconsideration of the decision may be requested (inclusive)."""
    return decision.decided_on + timedelta(days=reconsideration_days())


def latest_decision(case: Case) -> Decision | None:
    """Return the case's most recent decision, or None."""
    return db.session.scalars(
        select(Decision)
        .where(Decision.case_id == case.id)
        .order_by(Decision.recorded_at.desc(), Decision.id)
        .limit(1)
    ).first()


def reconsiderations_of(case: Case) -> list[Reconsideration]:
    """Return the case's reconsideration requests, newest first."""
    return list(
        db.session.scalars(
            select(Reconsideration)
            .where(Reconsideration.case_id == case.id)
            .order_by(Reconsideration.requested_at.desc(), Reconsideration.id)
        )
    )


def reconsideration_for_referral(referral: Referral) -> Reconsideration | None:
    """Return the reconsideration a status-decision referral carries, if it carries one."""
    return db.session.scalars(
        select(Reconsideration).where(Reconsideration.referral_id == referral.id)
    ).first()


def request_problem(case: Case, *, today: date | None = None) -> Any | None:
    """Return why the case's owner may not ask for reconsideration now, or None.

    The message is a lazy translation for the user.
    """
    if case.is_erased or case.status != CaseStatus.OPEN.value:
        return _l("Reconsideration is requested for an open case only.")
    decision = latest_decision(case)
    if case.nrm_status != NrmStatus.NOT_RECOGNISED.value or decision is None:
        return _l("Only a negative status decision can be reconsidered.")
    if decision.outcome != DecisionOutcome.NOT_RECOGNISED.value:
        return _l("Only a negative status decision can be reconsidered.")
    counted = [state.value for state in flow.COUNTED_STATES]
    used = db.session.scalar(
        select(Reconsideration.id)
        .where(Reconsideration.case_id == case.id, Reconsideration.state.in_(counted))
        .limit(1)
    )
    if used is not None:
        return _l("This case's status decision was already reconsidered or is being reconsidered.")
    today = today or local_today()
    last = last_request_day(decision)
    if today > last:
        return _l(
            "The period for asking for reconsideration ended on %(date)s.",
            date=last.isoformat(),
        )
    return None


# Services -----------------------------------------------------------------------------------


def request_reconsideration(
    user: User,
    case: Case,
    new_information: str,
    sections: list[str] | tuple[str, ...] = (),
    *,
    now: datetime | None = None,
    today: date | None = None,
) -> Reconsideration:
    """Ask the national coordinator to reconsider the case's negative status decision.

    Creates and sends a status-decision referral to the agency that decided, sharing the
    sections of the first request plus ``sections``, on the person's consent to a referral
    to that agency (or the exception the first request was sent on); the new information
    is its reason and is kept, encrypted, on the reconsideration. Notifies the coordinator.

    :raises ReconsiderationError: late, already reconsidered, not a negative decision, or
        no new information.
    :raises ReferralError: when the referral cannot be sent (no consent, for instance).
    """
    problem = request_problem(case, today=today)
    if problem is not None:
        raise ReconsiderationError(problem)
    text = (new_information or "").strip()
    if not text:
        raise ReconsiderationError(_l("Give the new information."))
    if len(text) > INFORMATION_MAX:
        raise ReconsiderationError(_l("The new information is too long."))
    decision = latest_decision(case)
    first = decision.referral
    coordinator = first.receiving_agency if first is not None else None
    if coordinator is None or not coordinator.is_national_coordinator:
        raise ReconsiderationError(_l("The decision's request to the coordinator is missing."))
    now = now or utcnow()
    shared = {section.value for section in first.sections} | set(sections)
    referral = services.create_referral(
        user,
        case,
        receiving_agency=coordinator,
        service_type=ServiceType.STATUS_DECISION,
        urgency=Urgency.ROUTINE,
        reason=text,
        sections=sorted(shared),
        consent_exception=first.consent_exception,
        exception_note=first.exception_note if first.consent_exception else None,
        now=now,
    )
    reconsideration = Reconsideration(
        case=case,
        decision_id=decision.id,
        referral_id=referral.id,
        state=flow.State.REQUESTED.value,
        requested_by_user_id=user.id,
        requested_at=now,
        new_information=text,
    )
    db.session.add(reconsideration)
    db.session.flush()
    services.send_referral(user, referral, now=now)
    fields = ["decision_id", "referral_id", "new_information"]
    audit.record(
        "nrm.reconsideration_requested",
        object_type="nrm_reconsideration",
        object_id=reconsideration.id,
        field_names=fields,
        user=user,
    )
    add_timeline_event(
        case,
        "nrm.reconsideration_requested",
        actor=user,
        object_type="nrm_reconsideration",
        object_id=reconsideration.id,
        field_names=fields,
        occurred_at=now,
    )
    notify(
        agency=coordinator,
        roles=[Role.COORDINATOR],
        kind="nrm.reconsideration_requested",
        reference=case.reference,
        link=f"/referrals/{referral.id}",
        now=now,
    )
    return reconsideration


def transition(
    reconsideration: Reconsideration,
    action: flow.Action | str,
    actor: User | None,
    *,
    now: datetime | None = None,
    second_decision: Decision | None = None,
) -> Reconsideration:
    """Move the reconsideration by one action of the table; audit it and add the timeline
    event. The only place that assigns ``Reconsideration.state``.

    :raises reconsideration_workflow.InvalidTransition: for a move not in the table.
    """
    action = flow.Action(action)
    move = flow.transition_for(reconsideration.state, action)
    now = now or utcnow()
    fields = ["state"]
    with db.session.no_autoflush:
        reconsideration.state = move.next_state.value
        if move.next_state in flow.DECIDED_STATES:
            reconsideration.second_decision_id = second_decision.id
            fields.append("second_decision_id")
        if move.next_state in flow.FINAL_STATES:
            reconsideration.closed_at = now
            fields.append("closed_at")
    db.session.flush()
    kind = EVENT_KINDS[action]
    audit.record(
        kind,
        object_type="nrm_reconsideration",
        object_id=reconsideration.id,
        field_names=fields,
        user=actor,
    )
    add_timeline_event(
        reconsideration.case,
        kind,
        actor=actor,
        object_type="nrm_reconsideration",
        object_id=reconsideration.id,
        field_names=fields,
        occurred_at=now,
    )
    return reconsideration


def withdraw_reconsideration(
    user: User, reconsideration: Reconsideration, *, now: datetime | None = None
) -> Reconsideration:
    """Withdraw an open request (the case owner): cancels the referral that carries it.

    :raises ReconsiderationError: when the request is no longer open.
    """
    if not reconsideration.is_open:
        raise ReconsiderationError(_l("This reconsideration request is no longer open."))
    # The listener moves the reconsideration when the referral is cancelled.
    services.cancel_referral(user, reconsideration.referral, now=now)
    return reconsideration


def _follow_referral(
    referral: Referral, action: ReferralAction, actor: Any, _from_state: str, now: datetime
) -> None:
    """Transition listener: move the reconsideration with the referral that carries it."""
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        return
    reconsideration = reconsideration_for_referral(referral)
    if reconsideration is None or not reconsideration.is_open:
        return
    if action is ReferralAction.COMPLETE:
        decision = db.session.scalars(
            select(Decision)
            .where(Decision.referral_id == referral.id)
            .order_by(Decision.recorded_at.desc(), Decision.id)
            .limit(1)
        ).first()
        if decision is None:  # pragma: no cover - completed only by recording a decision
            return
        overturned = decision.outcome == DecisionOutcome.RECOGNISED.value
        move = flow.Action.OVERTURN if overturned else flow.Action.UPHOLD
        transition(reconsideration, move, actor, now=now, second_decision=decision)
        return
    move = _FOLLOWS.get(action)
    if move is not None:
        transition(reconsideration, move, actor, now=now)


services.TRANSITION_LISTENERS.append(_follow_referral)


# Demo data ----------------------------------------------------------------------------------

DEMO_NEW_INFORMATION = (
    "At a second interview he described being recruited through a relative with a promise of "
    "hotel work, and the employer kept his passport until the inspection.",
    "Her sister confirmed the recruiter's threats; a medical report documents the injuries.",
)


def seed_demo_reconsiderations(users: Mapping[str, User], coordinator: User) -> int:
    """Add the demo reconsiderations through the services, once; return how many.

    A pending request on a negative decision (the demo's own, or a fresh one on a case of
    the shelter), and a whole path on another shelter case: a negative decision, a request,
    the coordinator's review and a second decision that overturns the first. The shelter,
    because ``core.demo`` loads its own status-decision set once, and only while the NGO
    and the police have not asked the coordinator yet.
    """
    from casework.models import Case
    from referrals.decisions import record_status_decision

    if db.session.scalar(select(Reconsideration.id).limit(1)) is not None:
        return 0
    now = utcnow()
    today = local_today()
    holder = users.get("shelter")
    negative = db.session.scalars(
        select(Decision)
        .join(Case, Case.id == Decision.case_id)
        .where(
            Decision.outcome == DecisionOutcome.NOT_RECOGNISED.value,
            Case.nrm_status == NrmStatus.NOT_RECOGNISED.value,
            Case.status == CaseStatus.OPEN.value,
        )
        .order_by(Decision.recorded_at)
        .limit(1)
    ).first()
    cases = _demo_fresh_cases(holder, 2 if negative is None else 1)
    if holder is None or len(cases) < (2 if negative is None else 1):
        return 0
    if negative is None:
        negative = _demo_negative_decision(holder, coordinator, cases.pop(), now, days_ago=6)
    owner = _demo_owner(users, negative.case)
    created = 0
    if owner is not None and request_problem(negative.case, today=today) is None:
        request_reconsideration(owner, negative.case, DEMO_NEW_INFORMATION[0], ["health"])
        created += 1
    first = _demo_negative_decision(holder, coordinator, cases.pop(), now, days_ago=15)
    item = request_reconsideration(
        holder,
        first.case,
        DEMO_NEW_INFORMATION[1],
        ["assessments"],
        now=now - timedelta(days=10),
        today=first.decided_on,
    )
    services.accept_referral(coordinator, item.referral, now=now - timedelta(days=9))
    record_status_decision(
        coordinator,
        item.referral,
        DecisionOutcome.RECOGNISED,
        min(max(today - timedelta(days=5), first.decided_on), today),
        None,
        "The new evidence establishes threats and control by the recruiter.",
        now=now - timedelta(days=5),
    )
    return created + 1


def _demo_fresh_cases(holder: User | None, count: int) -> list[Case]:
    """Return open adult cases of the holder's agency, presumed, with no referral."""
    from casework.models import Case

    if holder is None:
        return []
    return list(
        db.session.scalars(
            select(Case)
            .where(
                Case.owner_agency_id == holder.agency_id,
                Case.status == CaseStatus.OPEN.value,
                Case.nrm_status == NrmStatus.PRESUMED.value,
                Case.is_minor.is_(False),
                Case.id.not_in(select(Referral.case_id)),
            )
            .order_by(Case.reference)
            .limit(count)
        )
    )


def _demo_negative_decision(
    holder: User, coordinator: User, case: Case, now: datetime, *, days_ago: int
) -> Decision:
    """Request the status decision on the case and have the coordinator refuse it."""
    from casework.casefile_services import ConsentDecision, record_consent
    from referrals.decisions import identification_day, record_status_decision

    start = now - timedelta(days=days_ago + 5)
    consent = ConsentDecision("given", start.date(), "written", "demo-2026-1")
    record_consent(holder, case, "referral", consent, agency_id=coordinator.agency_id)
    referral = services.create_referral(
        holder,
        case,
        receiving_agency=coordinator.agency,
        service_type=ServiceType.STATUS_DECISION,
        urgency=Urgency.URGENT,
        reason="Domestic work abroad, documents withheld; asks for the formal status.",
        sections=["identity", "exploitation"],
        now=start,
    )
    services.send_referral(holder, referral, now=start)
    services.accept_referral(coordinator, referral, now=start + timedelta(hours=6))
    # The local day of the moment, never before the identification nor after today.
    today = local_today()
    day = min(max(today - timedelta(days=days_ago), identification_day(case)), today)
    return record_status_decision(
        coordinator,
        referral,
        DecisionOutcome.NOT_RECOGNISED,
        day,
        "insufficient_indicators",
        "The interview gave no sign of control over her movement.",
        now=now - timedelta(days=days_ago),
    )


def _demo_owner(users: Mapping[str, User], case: Case) -> User | None:
    """Return the demo caseworker of the agency that owns the case."""
    return next((user for user in users.values() if user.agency_id == case.owner_agency_id), None)


def seed_demo_refusals_and_reconsiderations(users: Mapping[str, User]) -> tuple[int, int]:
    """Seed the demo refusals and reconsiderations; return (refusals, reconsiderations).

    ``users`` maps demo agency keys to their caseworkers (``core.demo``); the coordinator is
    the demo's ``coordinator@nrm.demo``.
    """
    from casework.refusals import seed_demo_refusals
    from core.models import User

    refusals = seed_demo_refusals(users, local_today())
    coordinator = db.session.scalar(select(User).where(User.email == "coordinator@nrm.demo"))
    if coordinator is None:
        return refusals, 0
    return refusals, seed_demo_reconsiderations(users, coordinator)
