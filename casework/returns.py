"""Voluntary return: the return plan of a case, its risk sign-off and its steps.

One open plan per case. Coded fields (destination, travel document, escort, risk level,
outcome) are in clear for statistics; every text (risk notes, the signer's reasons, the
outcome note) is encrypted under the case's data key. Only ``transition`` assigns
``plan.state``; the moves are those of ``casework.return_workflow.TRANSITIONS``.
Services flush, audit and add a timeline event; they never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, select, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.exc import StaleDataError

from casework import return_workflow as workflow
from casework.models import CaseRecord, CaseStatus
from casework.return_workflow import Action, Requirement, Side, State
from casework.services import EditConflict
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.notifications import notify, register_notification_kind

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import Agency, User

AZERBAIJAN = "AZ"
NOTE_MAX = 5000


class Labelled(enum.StrEnum):
    """A coded value that knows its translated label (``LABELS[cls]`` after the class)."""

    @property
    def label(self) -> str:
        return str(LABELS[type(self)][self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        """Return (value, lazily translated label) pairs in declaration order."""
        return [(member.value, LABELS[cls][member]) for member in cls]


LABELS: dict[type, dict[Any, Any]] = {}


class TravelDocumentStatus(Labelled):
    VALID_PASSPORT = "valid_passport"
    NEEDED = "needed"
    BEING_ISSUED = "being_issued"
    ISSUED = "issued"


class Escort(Labelled):
    NONE = "none"
    NGO = "ngo"
    INTERNATIONAL_ORG = "international_org"
    CONSULAR = "consular"
    POLICE = "police"
    FAMILY = "family"


class ReturnRisk(Labelled):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class SignOffDecision(Labelled):
    APPROVED = "approved"
    NOT_ADVISED = "not_advised"


class CancelReason(Labelled):
    RISK_TOO_HIGH = "risk_too_high"
    NO_TRAVEL_DOCUMENT = "no_travel_document"
    FAMILY_NOT_SAFE = "family_not_safe"
    CRIMINAL_PROCEEDINGS = "criminal_proceedings"
    HEALTH = "health"
    LOST_CONTACT = "lost_contact"
    OTHER = "other"


# A travel document in hand: the plan may become ready.
DOCUMENT_IN_HAND = frozenset({TravelDocumentStatus.VALID_PASSPORT, TravelDocumentStatus.ISSUED})

STATE_LABELS = {
    State.DRAFT: _l("Draft"),
    State.RISK_ASSESSED: _l("Waiting for sign-off"),
    State.SIGNED_OFF: _l("Signed off"),
    State.NOT_ADVISED: _l("Return not advised"),
    State.READY: _l("Ready to travel"),
    State.RETURNED: _l("Returned"),
    State.CANCELLED: _l("Cancelled"),
    State.STAYED: _l("The person chose to stay"),
}
STATE_BADGES = {
    State.DRAFT: "",
    State.RISK_ASSESSED: "badge--warn",
    State.SIGNED_OFF: "badge--ok",
    State.NOT_ADVISED: "badge--danger",
    State.READY: "badge--ok",
    State.RETURNED: "badge--ok",
    State.CANCELLED: "",
    State.STAYED: "",
}
ACTION_LABELS = {
    Action.ASSESS_RISK: _l("Record the risk assessment"),
    Action.SIGN_OFF: _l("Sign off the return"),
    Action.ADVISE_AGAINST: _l("Return not advised"),
    Action.MARK_READY: _l("Mark ready to travel"),
    Action.RECORD_RETURN: _l("Record the return"),
    Action.CANCEL: _l("Cancel the return"),
    Action.STAY: _l("The person chose to stay"),
}

LABELS.update(
    {
        TravelDocumentStatus: {
            TravelDocumentStatus.VALID_PASSPORT: _l("Has a valid passport"),
            TravelDocumentStatus.NEEDED: _l("Needs a travel document"),
            TravelDocumentStatus.BEING_ISSUED: _l("Travel document being issued"),
            TravelDocumentStatus.ISSUED: _l("Travel document issued"),
        },
        Escort: {
            Escort.NONE: _l("No escort"),
            Escort.NGO: _l("NGO"),
            Escort.INTERNATIONAL_ORG: _l("IOM or another international organisation"),
            Escort.CONSULAR: _l("Consular staff"),
            Escort.POLICE: _l("Police"),
            Escort.FAMILY: _l("Family"),
        },
        ReturnRisk: {
            ReturnRisk.LOW: _l("Low"),
            ReturnRisk.MEDIUM: _l("Medium"),
            ReturnRisk.HIGH: _l("High"),
        },
        SignOffDecision: {
            SignOffDecision.APPROVED: _l("Return signed off"),
            SignOffDecision.NOT_ADVISED: _l("Return not advised"),
        },
        CancelReason: {
            CancelReason.RISK_TOO_HIGH: _l("The risk is too high"),
            CancelReason.NO_TRAVEL_DOCUMENT: _l("No travel document could be obtained"),
            CancelReason.FAMILY_NOT_SAFE: _l("The family environment is not safe"),
            CancelReason.CRIMINAL_PROCEEDINGS: _l("Needed in criminal proceedings"),
            CancelReason.HEALTH: _l("Health reasons"),
            CancelReason.LOST_CONTACT: _l("Contact with the person was lost"),
            CancelReason.OTHER: _l("Other"),
        },
    }
)

EVENT_KINDS = {
    "created": "return.created",
    "updated": "return.updated",
    Action.ASSESS_RISK: "return.risk_assessed",
    Action.SIGN_OFF: "return.signed_off",
    Action.ADVISE_AGAINST: "return.not_advised",
    Action.MARK_READY: "return.ready",
    Action.RECORD_RETURN: "return.returned",
    Action.CANCEL: "return.cancelled",
    Action.STAY: "return.stayed",
}
for _kind, _label in {
    "return.created": _l("Return plan started"),
    "return.updated": _l("Return plan changed"),
    "return.risk_assessed": _l("Pre-return risk assessed, waiting for sign-off"),
    "return.signed_off": _l("Return signed off"),
    "return.not_advised": _l("Return not advised"),
    "return.ready": _l("Return ready: travel arranged"),
    "return.returned": _l("Person returned"),
    "return.cancelled": _l("Return cancelled"),
    "return.stayed": _l("The person chose to stay"),
}.items():
    register_timeline_kind(_kind, _label)
register_notification_kind(
    "return.sign_off_requested", _l("A return plan waits for the risk sign-off")
)
register_notification_kind("return.signed_off", _l("A return plan was signed off"))
register_notification_kind("return.not_advised", _l("Return was not advised"))


HIGH_RISK_MESSAGE = _l(
    "The risk is assessed as high: the only possible answer is 'return not advised'."
)


class ReturnError(ValueError):
    """A change the return rules refuse; the message is a lazy translation for the user."""


# Models ------------------------------------------------------------------------------------

_OPEN_SQL = ", ".join(f"'{state.value}'" for state in workflow.OPEN_STATES)
# In the order of the State enum: a set's order changes from run to run, and so would the DDL.
_ASSESSED = {State.RISK_ASSESSED, *workflow.APPROVED_STATES, State.NOT_ADVISED}
_ASSESSED_SQL = ", ".join(f"'{state.value}'" for state in State if state in _ASSESSED)
_APPROVED_SQL = ", ".join(
    f"'{state.value}'" for state in State if state in workflow.APPROVED_STATES
)


class ReturnPlan(CaseRecord, db.Model):
    """A case's plan for a voluntary return, from draft to returned (or not)."""

    __tablename__ = "return_plans"
    __table_args__ = (
        enum_check("state", State),
        enum_check("travel_document_status", TravelDocumentStatus),
        enum_check("escort", Escort),
        enum_check("risk_level", ReturnRisk),
        enum_check("sign_off_decision", SignOffDecision),
        enum_check("cancel_reason", CancelReason),
        # One open plan per case; closed plans stay as history.
        Index(
            "uq_return_plans_open_case",
            "case_id",
            unique=True,
            sqlite_where=text(f"state IN ({_OPEN_SQL})"),
            postgresql_where=text(f"state IN ({_OPEN_SQL})"),
        ),
        # A region is an Azerbaijani region: only for a return to Azerbaijan.
        CheckConstraint(
            f"destination_region IS NULL OR destination_country = '{AZERBAIJAN}'",
            name="region_in_azerbaijan",
        ),
        # Past the draft, the plan carries its risk assessment.
        CheckConstraint(
            f"state NOT IN ({_ASSESSED_SQL}) OR risk_level IS NOT NULL", name="assessed"
        ),
        # Nobody is returned into danger: the approved states need an approving sign-off,
        # "not advised" needs that decision, and a high risk is never approved.
        CheckConstraint(
            f"state NOT IN ({_APPROVED_SQL})"
            " OR (sign_off_decision IS NOT NULL AND sign_off_decision = 'approved')",
            name="approved_needs_sign_off",
        ),
        CheckConstraint(
            "state <> 'not_advised'"
            " OR (sign_off_decision IS NOT NULL AND sign_off_decision = 'not_advised')",
            name="not_advised_decision",
        ),
        CheckConstraint(
            "sign_off_decision IS NULL OR sign_off_decision <> 'approved' OR risk_level <> 'high'",
            name="high_risk_never_approved",
        ),
        CheckConstraint(
            "(sign_off_decision IS NULL) = (signed_off_at IS NULL)", name="sign_off_stamped"
        ),
        CheckConstraint("(state = 'returned') = (returned_on IS NOT NULL)", name="returned_on"),
        CheckConstraint(
            "(state = 'cancelled') = (cancel_reason IS NOT NULL)", name="cancel_reason"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(enum_string(State), default=State.DRAFT.value)
    # Coded, in clear, for statistics.
    destination_country: Mapped[str] = mapped_column(String(2))
    destination_region: Mapped[str | None] = mapped_column(String(40))
    travel_document_status: Mapped[str] = mapped_column(enum_string(TravelDocumentStatus))
    escort: Mapped[str] = mapped_column(enum_string(Escort), default=Escort.NONE.value)
    planned_on: Mapped[date | None] = mapped_column(Date)
    risk_level: Mapped[str | None] = mapped_column(enum_string(ReturnRisk))
    risk_assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    risk_assessed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sign_off_decision: Mapped[str | None] = mapped_column(enum_string(SignOffDecision))
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_off_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_off_by_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    returned_on: Mapped[date | None] = mapped_column(Date)
    cancel_reason: Mapped[str | None] = mapped_column(enum_string(CancelReason))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic locking: an edit or a step made on an older version is refused.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    risk_notes = EncryptedField()
    sign_off_note = EncryptedField()
    outcome_note = EncryptedField()

    case: Mapped[Case] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_user_id])
    risk_assessed_by: Mapped[User | None] = relationship(foreign_keys=[risk_assessed_by_user_id])
    signed_off_by: Mapped[User | None] = relationship(foreign_keys=[signed_off_by_user_id])
    signed_off_by_agency: Mapped[Agency | None] = relationship(
        foreign_keys=[signed_off_by_agency_id]
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def state_enum(self) -> State:
        return State(self.state)

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[State(self.state)])

    @property
    def state_badge(self) -> str:
        return STATE_BADGES[State(self.state)]

    @property
    def is_open(self) -> bool:
        return State(self.state) in workflow.OPEN_STATES

    @property
    def travel_document_label(self) -> str:
        return TravelDocumentStatus(self.travel_document_status).label

    @property
    def escort_label(self) -> str:
        return Escort(self.escort).label

    @property
    def risk_label(self) -> str | None:
        return ReturnRisk(self.risk_level).label if self.risk_level else None

    @property
    def sign_off_label(self) -> str | None:
        return SignOffDecision(self.sign_off_decision).label if self.sign_off_decision else None

    @property
    def cancel_reason_label(self) -> str | None:
        return CancelReason(self.cancel_reason).label if self.cancel_reason else None


class ReturnTransition(CaseRecord, db.Model):
    """One step of a return plan: from, to, action, who, when, and why (encrypted)."""

    __tablename__ = "return_plan_transitions"
    __table_args__ = (
        enum_check("from_state", State),
        enum_check("to_state", State),
        enum_check("action", Action),
        Index("ix_return_plan_transitions_plan_time", "plan_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    plan_id: Mapped[str] = mapped_column(ForeignKey("return_plans.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(enum_string(State))
    to_state: Mapped[str] = mapped_column(enum_string(State))
    action: Mapped[str] = mapped_column(enum_string(Action))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason = EncryptedField()

    case: Mapped[Case] = relationship()
    plan: Mapped[ReturnPlan] = relationship()
    actor: Mapped[User | None] = relationship()

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS[Action(self.action)])

    @property
    def to_state_label(self) -> str:
        return str(STATE_LABELS[State(self.to_state)])


# Queries -----------------------------------------------------------------------------------


def open_return_plan(case: Case) -> ReturnPlan | None:
    """Return the case's open return plan, if it has one."""
    return db.session.scalars(
        select(ReturnPlan).where(
            ReturnPlan.case_id == case.id,
            ReturnPlan.state.in_([state.value for state in workflow.OPEN_STATES]),
        )
    ).first()


def return_plans_of(case: Case) -> list[ReturnPlan]:
    """Return every return plan of the case, newest first."""
    return list(
        db.session.scalars(
            select(ReturnPlan)
            .where(ReturnPlan.case_id == case.id)
            .order_by(ReturnPlan.created_at.desc(), ReturnPlan.id)
        )
    )


def transitions_of(plan: ReturnPlan) -> list[ReturnTransition]:
    """Return the plan's steps, oldest first."""
    return list(
        db.session.scalars(
            select(ReturnTransition)
            .where(ReturnTransition.plan_id == plan.id)
            .order_by(ReturnTransition.occurred_at, ReturnTransition.id)
        )
    )


# Who acts ----------------------------------------------------------------------------------


def side_of(user: User | None, plan: ReturnPlan) -> Side | None:
    """Return the side the user acts on for this plan, or None (the access policy decides)."""
    from core.policy import can_edit_case, can_sign_return_plan

    if user is None:
        return None
    if can_edit_case(user, plan.case):
        return Side.OWNER
    # A closed case's plan is a record: nobody signs it any more.
    if plan.case.status != CaseStatus.CLOSED and can_sign_return_plan(user, plan):
        return Side.SIGNER
    return None


def return_problems(plan: ReturnPlan, action: Action | str) -> list[str]:
    """Return why the action's requirements (beyond who acts) are not met, or nothing.

    Used by the service, which refuses, and by the page, which explains before a click.
    """
    action = Action(action)
    try:
        move = workflow.transition_for(plan.state, action)
    except workflow.InvalidTransition:
        return [str(_l("This step is not possible in the plan's current state."))]
    problems = []
    if Requirement.NOT_HIGH_RISK in move.requires and plan.risk_level == ReturnRisk.HIGH:
        problems.append(str(HIGH_RISK_MESSAGE))
    if Requirement.TRAVEL_READY in move.requires:
        if TravelDocumentStatus(plan.travel_document_status) not in DOCUMENT_IN_HAND:
            problems.append(str(_l("The person needs a valid travel document first.")))
        if plan.planned_on is None:
            problems.append(str(_l("Enter the planned date of travel first.")))
    if Requirement.BEST_INTERESTS in move.requires:
        problem = child_return_problem(plan.case)
        if problem:
            problems.append(problem)
    return problems


def child_return_problem(case: Case) -> str | None:
    """Return why a child may not be returned yet (best interests, family assessment), or None.

    The child path owns the rule (``casework.child_protection.best_interests_problem``); until
    it is installed, a child's return is refused rather than let through unchecked.
    """
    if not case.is_minor:
        return None
    try:
        from casework.child_protection import best_interests_problem
    except ImportError:
        return str(
            _l(
                "A child is returned only after a family assessment and a best-interests "
                "determination have been recorded."
            )
        )
    problem = best_interests_problem(case, "return")
    return str(problem) if problem else None


# Services ----------------------------------------------------------------------------------

# Fields of the plan the owner edits directly (not through a step), in form order.
PLAN_FIELDS = (
    "destination_country",
    "destination_region",
    "travel_document_status",
    "escort",
    "planned_on",
)


def _clean_plan_values(values: Mapping[str, Any]) -> dict[str, Any]:
    wanted = {name: values.get(name) or None for name in PLAN_FIELDS if name in values}
    if "travel_document_status" in wanted:
        wanted["travel_document_status"] = TravelDocumentStatus(
            wanted["travel_document_status"]
        ).value
    if "escort" in wanted:
        wanted["escort"] = Escort(wanted["escort"] or Escort.NONE).value
    country = wanted.get("destination_country")
    if country and country != AZERBAIJAN:
        wanted["destination_region"] = None
    return wanted


def start_return_plan(user: User, case: Case, values: Mapping[str, Any]) -> ReturnPlan:
    """Start the case's return plan (a draft) with destination, documents, escort and date.

    :raises ReturnError: when the case already has an open plan.
    """
    if open_return_plan(case) is not None:
        raise ReturnError(_l("This case already has a return plan in progress."))
    wanted = _clean_plan_values(values)
    if not wanted.get("destination_country") or not wanted.get("travel_document_status"):
        raise ReturnError(_l("Choose the destination country and the travel document status."))
    plan = ReturnPlan(
        case=case,
        state=State.DRAFT.value,
        created_by_user_id=user.id,
        created_at=utcnow(),
        **wanted,
    )
    db.session.add(plan)
    db.session.flush()
    _record(user, plan, EVENT_KINDS["created"], [name for name in wanted if wanted[name]])
    return plan


def update_return_plan(
    user: User, plan: ReturnPlan, values: Mapping[str, Any], *, expected_version: int
) -> list[str]:
    """Change the plan's destination, documents, escort or date; return the changed names.

    A signed-off plan stays signed off: the sign-off is about the risk, which a change of
    date, document or escort does not touch. The destination is what the risk was assessed
    for: once assessed, another destination is another plan (close this one, start anew).

    :raises EditConflict: when the plan is no longer at ``expected_version``.
    :raises ReturnError: when the plan is closed, or the destination changes after sign-off.
    """
    if plan.version != expected_version:
        raise EditConflict
    if not plan.is_open:
        raise ReturnError(_l("A closed return plan is not changed."))
    wanted = _clean_plan_values(values)
    changed = [name for name, value in wanted.items() if getattr(plan, name) != value]
    moves = {"destination_country", "destination_region"} & set(changed)
    if moves and State(plan.state) is not State.DRAFT:
        raise ReturnError(
            _l(
                "The risk was assessed for this destination. For another destination, close "
                "this plan and start a new one."
            )
        )
    if not changed:
        return []
    for name in changed:
        setattr(plan, name, wanted[name])
    _flush_versioned()
    _record(user, plan, EVENT_KINDS["updated"], changed)
    return changed


def transition(
    plan: ReturnPlan,
    action: Action | str,
    actor: User,
    *,
    reason: str | None = None,
    changes: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> ReturnTransition:
    """Move the plan by one action of the table, record the step, audit and timeline it.

    ``changes`` are set with the state, so the CHECK constraints tying columns to the state
    hold at every flush.

    :raises return_workflow.InvalidTransition: when the table has no such move.
    :raises ReturnError: when the actor is on the wrong side or a requirement is missing.
    :raises EditConflict: when the plan is no longer at ``expected_version``.
    """
    action = Action(action)
    move = workflow.transition_for(plan.state, action)
    if side_of(actor, plan) is not move.actor:
        raise ReturnError(_l("This step is taken by the other side."))
    if expected_version is not None and plan.version != expected_version:
        raise EditConflict
    reason = (reason or "").strip() or None
    if Requirement.REASON in move.requires and not reason:
        raise ReturnError(_l("Give a reason."))
    problems = _requirement_problems(plan, action, move, changes or {})
    if problems:
        raise ReturnError(problems[0])
    now = now or utcnow()
    from_state = plan.state
    with db.session.no_autoflush:
        plan.state = move.next_state.value
        for name, value in (changes or {}).items():
            setattr(plan, name, value)
        if move.next_state in workflow.FINAL_STATES:
            plan.closed_at = now
    step = ReturnTransition(
        plan=plan,
        case=plan.case,
        from_state=from_state,
        to_state=move.next_state.value,
        action=action.value,
        actor_user_id=actor.id,
        actor_agency_id=actor.agency_id,
        occurred_at=now,
    )
    db.session.add(step)
    if reason:
        step.reason = reason
    _flush_versioned()
    fields = ["state", *(changes or {})] + (["reason"] if reason else [])
    _record(actor, plan, EVENT_KINDS[action], fields, occurred_at=now)
    return step


def _requirement_problems(
    plan: ReturnPlan, action: Action, move: workflow.Transition, changes: Mapping[str, Any]
) -> list[str]:
    problems = []
    if Requirement.RISK_LEVEL in move.requires and not changes.get("risk_level"):
        problems.append(str(_l("Choose the risk level.")))
    if Requirement.RETURN_DATE in move.requires and not changes.get("returned_on"):
        problems.append(str(_l("Enter the day the person returned.")))
    if Requirement.CANCEL_REASON in move.requires and not changes.get("cancel_reason"):
        problems.append(str(_l("Choose why the return is cancelled.")))
    return problems + return_problems(plan, action)


def assess_return_risk(
    user: User, plan: ReturnPlan, risk_level: str, notes: str | None, *, now: datetime | None = None
) -> ReturnTransition:
    """Record the pre-return risk assessment; any earlier sign-off lapses with it."""
    now = now or utcnow()
    step = transition(
        plan,
        Action.ASSESS_RISK,
        user,
        changes={
            "risk_level": ReturnRisk(risk_level).value,
            "risk_assessed_at": now,
            "risk_assessed_by_user_id": user.id,
            "sign_off_decision": None,
            "signed_off_at": None,
            "signed_off_by_user_id": None,
            "signed_off_by_agency_id": None,
        },
        now=now,
    )
    plan.risk_notes = (notes or "").strip() or None
    plan.sign_off_note = None
    db.session.flush()
    _notify_signers(plan, now)
    return step


def sign_off_return(
    user: User, plan: ReturnPlan, note: str | None = None, *, now: datetime | None = None
) -> ReturnTransition:
    """Sign the risk assessment off: the return may go ahead (never for a high risk)."""
    now = now or utcnow()
    step = transition(
        plan,
        Action.SIGN_OFF,
        user,
        reason=note,
        changes=_signed(user, SignOffDecision.APPROVED, now),
        now=now,
    )
    plan.sign_off_note = (note or "").strip() or None
    db.session.flush()
    _notify_owner(plan, "return.signed_off", now)
    return step


def advise_against_return(
    user: User, plan: ReturnPlan, reason: str, *, now: datetime | None = None
) -> ReturnTransition:
    """Record that return is not advised (with the reason): the return is blocked."""
    now = now or utcnow()
    step = transition(
        plan,
        Action.ADVISE_AGAINST,
        user,
        reason=reason,
        changes=_signed(user, SignOffDecision.NOT_ADVISED, now),
        now=now,
    )
    plan.sign_off_note = reason.strip()
    db.session.flush()
    _notify_owner(plan, "return.not_advised", now)
    return step


def _signed(user: User, decision: SignOffDecision, now: datetime) -> dict[str, Any]:
    return {
        "sign_off_decision": decision.value,
        "signed_off_at": now,
        "signed_off_by_user_id": user.id,
        "signed_off_by_agency_id": user.agency_id,
    }


def mark_return_ready(
    user: User, plan: ReturnPlan, *, now: datetime | None = None
) -> ReturnTransition:
    """Mark the signed-off plan ready: documents in hand, date set, a child's return allowed."""
    return transition(plan, Action.MARK_READY, user, now=now)


def record_return(
    user: User,
    plan: ReturnPlan,
    returned_on: date,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> ReturnTransition:
    """Record that the person returned on the day; follow-up visits are scheduled from it."""
    from casework.reintegration import schedule_follow_ups

    step = transition(
        plan, Action.RECORD_RETURN, user, reason=note, changes={"returned_on": returned_on}, now=now
    )
    if note and note.strip():
        plan.outcome_note = note.strip()
        db.session.flush()
    schedule_follow_ups(user, plan.case, returned_on)
    return step


def cancel_return(
    user: User, plan: ReturnPlan, cancel_reason: str, note: str | None = None, **kwargs: Any
) -> ReturnTransition:
    """Cancel the return with a coded reason (and an optional note)."""
    step = transition(
        plan,
        Action.CANCEL,
        user,
        reason=note,
        changes={"cancel_reason": CancelReason(cancel_reason).value},
        **kwargs,
    )
    if note and note.strip():
        plan.outcome_note = note.strip()
        db.session.flush()
    return step


def record_choice_to_stay(
    user: User, plan: ReturnPlan, note: str | None = None, **kwargs: Any
) -> ReturnTransition:
    """Record that the person chose to stay: the plan closes, nothing else is implied."""
    step = transition(plan, Action.STAY, user, reason=note, **kwargs)
    if note and note.strip():
        plan.outcome_note = note.strip()
        db.session.flush()
    return step


# Shared ------------------------------------------------------------------------------------


def _flush_versioned() -> None:
    try:
        db.session.flush()
    except StaleDataError as error:
        # Another transaction committed a new version between our read and our UPDATE.
        raise EditConflict from error


def _record(
    user: User,
    plan: ReturnPlan,
    kind: str,
    fields: list[str],
    *,
    occurred_at: datetime | None = None,
) -> None:
    """Write the audit entry (field names only) and the timeline event of a change."""
    audit.record(kind, object_type="return_plan", object_id=plan.id, field_names=fields, user=user)
    add_timeline_event(
        plan.case,
        kind,
        actor=user,
        object_type="return_plan",
        object_id=plan.id,
        field_names=fields,
        occurred_at=occurred_at,
    )


def _plan_link(plan: ReturnPlan) -> str:
    return f"/aftercare/returns/{plan.id}"


def _notify_signers(plan: ReturnPlan, now: datetime) -> None:
    """Tell the national coordinator and the legal-aid agencies working the case."""
    from core.models import Agency, Role
    from core.policy import legal_aid_agency_ids

    coordinator = db.session.scalars(
        select(Agency).where(Agency.is_national_coordinator.is_(True), Agency.active.is_(True))
    ).first()
    link = _plan_link(plan)
    if coordinator is not None:
        notify(
            agency=coordinator,
            roles=[Role.COORDINATOR],
            kind="return.sign_off_requested",
            reference=plan.case.reference,
            link=link,
            now=now,
        )
    for agency_id in legal_aid_agency_ids(plan.case):
        agency = db.session.get(Agency, agency_id)
        if agency is not None and agency.active:
            notify(
                agency=agency,
                roles=[Role.CASEWORKER, Role.SUPERVISOR],
                kind="return.sign_off_requested",
                reference=plan.case.reference,
                link=link,
                now=now,
            )


def _notify_owner(plan: ReturnPlan, kind: str, now: datetime) -> None:
    """Tell the case's agency (its case staff) how the sign-off went."""
    from core.models import Role

    notify(
        agency=plan.case.owner_agency,
        roles=[Role.CASEWORKER, Role.SUPERVISOR],
        kind=kind,
        reference=plan.case.reference,
        link=f"/cases/{plan.case_id}/aftercare",
        now=now,
    )


# Demo data ---------------------------------------------------------------------------------

# (owner agency key, final step, destination, region, risk, travel document, escort)
_DEMO_RETURNS = (
    ("ngo", "returned", "AZ", "lankaran_astara", "low", "issued", "international_org"),
    ("ngo", "not_advised", "AZ", "guba_khachmaz", "high", "valid_passport", "ngo"),
    ("ngo", "risk_assessed", "AZ", "shaki_zagatala", "medium", "being_issued", "consular"),
    ("ngo", "draft", "UZ", None, None, "needed", "international_org"),
    ("shelter", "signed_off", "AZ", "baku", "medium", "being_issued", "ngo"),
    ("shelter", "ready", "AZ", "central_aran", "low", "valid_passport", "family"),
    ("shelter", "cancelled", "AZ", "mil_mughan", "medium", "needed", "none"),
    ("shelter", "stayed", "TR", None, "low", "valid_passport", "none"),
)
_DEMO_RISK_NOTES = {
    "low": "Family in contact and supportive; the recruiter is in custody. Safety plan agreed.",
    "medium": "The recruiter's relatives live in the same district. She will stay with her aunt"
    " first; the NGO's regional office checks in weekly.",
    "high": "The debt to the recruiter is unpaid and her brother received threats in January."
    " The recruiter's network is active in her home village.",
}


def seed_demo_returns(users: dict[str, User]) -> int:
    """Add the demo return plans, reintegration plans and follow-up visits; return the plans.

    ``users`` maps demo agency keys to their caseworker (``core.demo``). On open adult cases
    of the NGO and the shelter that have no referral, transfer or return plan yet: a return
    plan in every state (one signed off by the coordinator and returned, one not advised, one
    waiting for the sign-off, one signed off by the legal-aid bureau working a referral on
    the case, ...), two reintegration plans with measures and amounts, and follow-up visits
    done, due and overdue, one with the re-trafficking flag. Through the services, with past
    moments as their clock. Idempotent: does nothing once the demo agencies have a plan.
    """
    from datetime import timedelta

    from casework import reintegration
    from casework.casefile_services import ConsentDecision, record_consent
    from casework.models import Case, local_today
    from casework.supervision import TransferRequest
    from core.models import User as UserModel

    # Lazy: the demo alone reaches into referrals, to give the legal-aid bureau its referral.
    from referrals import services as referral_services
    from referrals.models import Referral

    owners = {key: users[key] for key in ("ngo", "shelter") if key in users}
    coordinator = db.session.scalar(
        select(UserModel).where(UserModel.email == "coordinator@nrm.demo")
    )
    legal = users.get("legal")
    if len(owners) < 2 or coordinator is None or legal is None:
        return 0
    agency_ids = [user.agency_id for user in owners.values()]
    if db.session.scalar(
        select(ReturnPlan.id)
        .join(Case, Case.id == ReturnPlan.case_id)
        .where(Case.owner_agency_id.in_(agency_ids))
        .limit(1)
    ):
        return 0
    free: dict[str, list[Case]] = {}
    for key in owners:
        rows = db.session.scalars(
            select(Case)
            .where(
                Case.owner_agency_id == owners[key].agency_id,
                Case.status == CaseStatus.OPEN.value,
                Case.id.not_in(select(Referral.case_id)),
                Case.id.not_in(select(TransferRequest.case_id)),
            )
            .order_by(Case.reference.desc())
        )
        free[key] = [case for case in rows if not case.is_minor]
    # Each plan on a case of its agency, or of the other one when that has too few left.
    if sum(len(cases) for cases in free.values()) < len(_DEMO_RETURNS) + 1:
        return 0

    def take(key: str) -> tuple[User, Case]:
        if not free[key]:
            key = "shelter" if key == "ngo" else "ngo"
        return owners[key], free[key].pop(0)

    today = local_today()
    now = utcnow()

    def at(days_ago: int) -> datetime:
        return now - timedelta(days=days_ago)

    plans = []
    returned_case = None
    for key, final, country, region, risk, document, escort in _DEMO_RETURNS:
        owner, case = take(key)
        plan = start_return_plan(
            owner,
            case,
            {
                "destination_country": country,
                "destination_region": region,
                "travel_document_status": document,
                "escort": escort,
                "planned_on": today + timedelta(days=21),
            },
        )
        plans.append(plan)
        if final == "draft":
            continue
        if final == "cancelled":
            assess_return_risk(owner, plan, risk, _DEMO_RISK_NOTES[risk], now=at(40))
            cancel_return(
                owner, plan, "no_travel_document", "The embassy could not confirm her identity."
            )
            continue
        if final == "stayed":
            record_choice_to_stay(owner, plan, "She found work in Istanbul and decided to stay.")
            continue
        days = 250 if final == "returned" else 12
        if final == "signed_off":
            # The legal-aid bureau works a referral on the case and signs the return off.
            record_consent(
                owner,
                case,
                "referral",
                ConsentDecision("given", today - timedelta(days=20), "written", "2026-1"),
                agency_id=legal.agency_id,
            )
            referral = referral_services.create_referral(
                owner,
                case,
                receiving_agency=legal.agency,
                service_type="legal_aid",
                urgency="routine",
                reason="Advice on the risks of her return and on her claim against the recruiter.",
                sections=("identity", "exploitation"),
                now=at(20),
            )
            referral_services.send_referral(owner, referral, now=at(20))
            referral_services.accept_referral(legal, referral, now=at(19))
        assess_return_risk(owner, plan, risk, _DEMO_RISK_NOTES[risk], now=at(days))
        if final == "risk_assessed":
            continue
        if final == "not_advised":
            advise_against_return(
                coordinator,
                plan,
                "Return is not advised while the recruiter's network is active in her village."
                " Reassess after the trial.",
                now=at(days - 2),
            )
            continue
        signer = legal if final == "signed_off" else coordinator
        sign_off_return(
            signer, plan, "Risk assessment reviewed; safety plan is adequate.", now=at(days - 3)
        )
        if final == "signed_off":
            continue
        if final == "returned":
            update_return_plan(
                owner,
                plan,
                {"planned_on": today - timedelta(days=240)},
                expected_version=plan.version,
            )
        mark_return_ready(owner, plan, now=at(days - 5))
        if final == "returned":
            record_return(
                owner,
                plan,
                today - timedelta(days=240),
                "Met at the airport by the NGO's regional worker and her mother.",
                now=at(240),
            )
            returned_case, returned_owner = case, owner

    # Two reintegration plans: the returnee's (follow-ups from her return, eight months ago)
    # and a shelter resident's, started four months ago.
    first = reintegration.start_reintegration_plan(
        returned_owner,
        returned_case,
        today - timedelta(days=235),
        "Income of her own within a year; counselling; her son back in school.",
    )
    for values in (
        {"measure_type": "grant", "amount": "2500", "status": "delivered"},
        {"measure_type": "business_plan", "status": "delivered", "notes": "A tailoring stall."},
        {"measure_type": "vocational_training", "amount": "600", "status": "in_progress"},
        {"measure_type": "psychological_care", "status": "in_progress"},
        {"measure_type": "education", "amount": "150", "status": "planned"},
    ):
        reintegration.add_measure(returned_owner, first, values)
    visits = reintegration.visits_of(returned_case)
    reintegration.record_follow_up(
        returned_owner,
        visits[0],
        done_on=visits[0].due_on,
        method="visit",
        outcome="stable",
        notes="Living with her mother; started the sewing course.",
    )
    reintegration.record_follow_up(
        returned_owner,
        visits[1],
        done_on=visits[1].due_on + timedelta(days=3),
        method="phone",
        outcome="needs_support",
        notes="Debt collectors called her mother; counselling sessions increased.",
    )
    # The 6-month visit stays overdue; the 12-month one is due later.

    resident_owner, resident = take("shelter")
    second = reintegration.start_reintegration_plan(
        resident_owner,
        resident,
        today - timedelta(days=125),
        "Safe housing outside Baku, medical follow-up, legal aid for her compensation claim.",
    )
    for values in (
        {"measure_type": "housing", "amount": "1800", "status": "in_progress"},
        {"measure_type": "medical_care", "amount": "320.50", "status": "delivered"},
        {"measure_type": "legal_aid", "provider_agency_id": legal.agency_id, "status": "planned"},
        {"measure_type": "grant", "amount": "400", "currency": "USD", "status": "cancelled"},
    ):
        reintegration.add_measure(resident_owner, second, values)
    visit = reintegration.visits_of(resident)[0]
    reintegration.record_follow_up(
        resident_owner,
        visit,
        done_on=visit.due_on + timedelta(days=1),
        method="visit",
        outcome="re_trafficked",
        retrafficked=True,
        notes="She was approached again by the same recruiter with a job offer abroad;"
        " referred to the police.",
    )
    return len(plans)
