"""The national coordinator's formal decision on victim status, and how the case follows it.

A ``status_decision`` referral to the national coordinator requests the decision (DESIGN).
Sending it moves the case's NRM status from ``presumed`` to ``pending_decision``; if the
referral ends without a decision (declined, expired, cancelled, consent withdrawn) and no
other request is open, the status goes back to ``presumed``. The country rule makes the
referral's deadline run from identification, not from sending. Recording the decision keeps
one ``Decision`` row per decision (reconsideration adds more later; the case's own fields
hold the current one) and completes the referral through ``services.transition``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.casefile import ServiceType
from casework.models import CaseRecord, CaseStatus, NrmStatus, local_today
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.models import Role
from core.notifications import notify, register_notification_kind
from referrals import services
from referrals.models import Referral, ReferralOutcome
from referrals.services import ReferralError
from referrals.workflow import OPEN_STATES, Action, Side, State

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import User

DEFAULT_NOTIFICATION_HOURS = 24
REASON_MAX = 4000


class DecisionOutcome(enum.StrEnum):
    """What the coordinator decided; the values are the case's NRM status codes."""

    RECOGNISED = NrmStatus.RECOGNISED.value
    NOT_RECOGNISED = NrmStatus.NOT_RECOGNISED.value

    @property
    def label(self) -> str:
        return str(OUTCOME_LABELS[self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        return [(member.value, OUTCOME_LABELS[member]) for member in cls]


OUTCOME_LABELS = {
    DecisionOutcome.RECOGNISED: _l("Recognised as a victim of trafficking"),
    DecisionOutcome.NOT_RECOGNISED: _l("Not recognised"),
}


class NegativeReason(enum.StrEnum):
    """Why the person was not recognised, coded for statistics.

    A reviewable set: each code names one element of the trafficking definition that was
    missing, or why no decision on the merits was possible. Codes are stable once stored
    (``other_crime`` keeps its code and reads "another crime, not trafficking").
    """

    INSUFFICIENT_INDICATORS = "insufficient_indicators"
    NO_EXPLOITATION_ELEMENT = "no_exploitation_element"
    # Adults only: for a child, the act and the purpose of exploitation suffice.
    NO_MEANS_OR_ACT = "no_means_or_act"
    OTHER_CRIME = "other_crime"
    PERSON_WITHDREW = "person_withdrew"
    NOT_REACHABLE = "not_reachable"
    OTHER = "other"

    @property
    def label(self) -> str:
        return str(REASON_LABELS[self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        return [(member.value, REASON_LABELS[member]) for member in cls]


REASON_LABELS = {
    NegativeReason.INSUFFICIENT_INDICATORS: _l("Insufficient indicators of trafficking"),
    NegativeReason.NO_EXPLOITATION_ELEMENT: _l("No exploitation or purpose of exploitation"),
    NegativeReason.NO_MEANS_OR_ACT: _l(
        "No act (recruitment, transport, harbouring) or no means of control (adults)"
    ),
    NegativeReason.OTHER_CRIME: _l("Not trafficking, but another crime or exploitation"),
    NegativeReason.PERSON_WITHDREW: _l("The person withdrew from the procedure"),
    NegativeReason.NOT_REACHABLE: _l("The person could not be reached"),
    NegativeReason.OTHER: _l("Other (explain in the reason)"),
}


class DecisionStage(enum.StrEnum):
    """Whether a decision is the first one on the case or the one on reconsideration."""

    FIRST = "first"
    RECONSIDERATION = "reconsideration"

    @property
    def label(self) -> str:
        return str(STAGE_LABELS[self])


STAGE_LABELS = {
    DecisionStage.FIRST: _l("First decision"),
    DecisionStage.RECONSIDERATION: _l("Decision on reconsideration"),
}

for _kind, _label in {
    "nrm.pending": _l("Status decision requested: NRM status pending"),
    "nrm.request_ended": _l("Status decision request ended without a decision"),
    "nrm.decided": _l("Status decision recorded"),
}.items():
    register_timeline_kind(_kind, _label)
register_notification_kind("nrm.decided", _l("The national coordinator decided a case's status"))
register_notification_kind(
    "nrm.reconsidered", _l("The national coordinator decided on a reconsideration")
)


class DecisionError(ReferralError):
    """A decision the rules refuse; the message is a lazy translation for the user."""


class Decision(CaseRecord, db.Model):
    """One formal status decision of the national coordinator on a case."""

    __tablename__ = "nrm_decisions"
    __table_args__ = (
        enum_check("outcome", DecisionOutcome),
        enum_check("reason_code", NegativeReason),
        enum_check("stage", DecisionStage),
        # A negative decision always carries its coded reason; a positive one never does.
        CheckConstraint(
            "(outcome = 'not_recognised') = (reason_code IS NOT NULL)", name="negative_reason"
        ),
        Index("ix_nrm_decisions_case_recorded", "case_id", "recorded_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # The request it answered; kept even if that referral row were ever removed.
    referral_id: Mapped[str | None] = mapped_column(
        ForeignKey("referrals.id", ondelete="SET NULL"), index=True
    )
    outcome: Mapped[str] = mapped_column(enum_string(DecisionOutcome))
    decided_on: Mapped[date] = mapped_column(Date)
    reason_code: Mapped[str | None] = mapped_column(enum_string(NegativeReason))
    stage: Mapped[str] = mapped_column(
        enum_string(DecisionStage), default=DecisionStage.FIRST.value
    )
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason = EncryptedField()

    case: Mapped[Case] = relationship()
    referral: Mapped[Referral | None] = relationship()
    decided_by: Mapped[User | None] = relationship()

    @property
    def outcome_label(self) -> str:
        return DecisionOutcome(self.outcome).label

    @property
    def reason_label(self) -> str | None:
        return NegativeReason(self.reason_code).label if self.reason_code else None

    @property
    def stage_label(self) -> str:
        return DecisionStage(self.stage).label


# The country rule: notified within hours of identification --------------------------------


def notification_hours() -> int:
    """Return the hours within which a presumed victim is notified to the coordinator."""
    if not has_app_context():
        return DEFAULT_NOTIFICATION_HOURS
    return int(current_app.config.get("HAVEN_NRM_NOTIFICATION_HOURS", DEFAULT_NOTIFICATION_HOURS))


def _zone() -> ZoneInfo:
    name = "Asia/Baku"
    if has_app_context():
        name = current_app.config.get("BABEL_DEFAULT_TIMEZONE", name)
    return ZoneInfo(name)


def identified_at(case: Case) -> datetime:
    """Return the moment the person was identified, as far as Haven knows it (UTC).

    The case's opening, unless the identification day recorded is an earlier day: then the
    end of that day (local time). The latest moment the record allows, so the rule is never
    said to be broken when it may not have been. A case opened from a presumed-victim
    notification (casework.contacts) runs from the moment the notification records.
    """
    from casework.contacts import reported_identified_at

    reported = reported_identified_at(case) if case.id is not None else None
    if reported is not None:
        return reported
    zone = _zone()
    opened = case.created_at or utcnow()
    if case.identified_on is not None and case.identified_on < opened.astimezone(zone).date():
        end = datetime.combine(case.identified_on + timedelta(days=1), time(), tzinfo=zone)
        return end.astimezone(opened.tzinfo)
    return opened


def notification_due(case: Case) -> datetime:
    """Return when the national coordinator must have been notified of the case."""
    return identified_at(case) + timedelta(hours=notification_hours())


def _nrm_deadline(referral: Referral, sent_at: datetime) -> datetime | None:
    """Deadline rule: a status-decision referral is due when the notification is due.

    A late notification would expire on the spot: it gets the ordinary deadline from its
    sending instead, and the case shows it was late (``is_notified_late``).
    """
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        return None
    due = notification_due(referral.case)
    return due if due > sent_at else None


services.DEADLINE_RULES.append(_nrm_deadline)


def _requests(case: Case, states: frozenset[State] | set[State]) -> Any:
    return select(Referral).where(
        Referral.case_id == case.id,
        Referral.service_type == ServiceType.STATUS_DECISION.value,
        Referral.state.in_([state.value for state in states]),
    )


def is_notified(case: Case) -> bool:
    """Return whether a status-decision request of the case is open or was completed, or the
    case came from a notification sent straight to the national coordinator."""
    from casework.contacts import reported_to_coordinator

    query = _requests(case, OPEN_STATES | {State.COMPLETED}).with_only_columns(Referral.id)
    if db.session.scalars(query.limit(1)).first() is not None:
        return True
    return reported_to_coordinator(case)


def needs_notification(case: Case, now: datetime | None = None) -> bool:
    """Return whether the open case of a presumed victim is past its notification deadline
    without a status-decision request (the case page warns)."""
    if case.status != CaseStatus.OPEN.value or case.is_erased:
        return False
    if case.nrm_status != NrmStatus.PRESUMED.value:
        return False
    return (now or utcnow()) >= notification_due(case) and not is_notified(case)


# The NRM status follows the request --------------------------------------------------------


def _set_status(case: Case, status: NrmStatus, kind: str, actor: Any, now: datetime, **extra):
    case.nrm_status = status.value
    for name, value in extra.items():
        setattr(case, name, value)
    fields = ["nrm_status", *extra]
    audit.record(kind, object_type="case", object_id=case.id, field_names=fields, user=actor)
    add_timeline_event(
        case,
        kind,
        actor=actor,
        object_type="case",
        object_id=case.id,
        field_names=fields,
        occurred_at=now,
    )


def _follow_request(
    referral: Referral, action: Action, actor: Any, from_state: str, now: datetime
) -> None:
    """Transition listener: move the case's NRM status with its status-decision request.

    Pending from the sending: the request is lodged then, and the country rule makes the
    notification (not the coordinator's acceptance) the act that counts; the coordinator's
    list shows the request from that moment too. Back to presumed when the request ends
    without a decision and no other one is open.
    """
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        return
    case = referral.case
    if action is Action.SEND:
        if case.nrm_status == NrmStatus.PRESUMED.value:
            _set_status(case, NrmStatus.PENDING_DECISION, "nrm.pending", actor, now)
            db.session.flush()
        return
    if referral.state_enum in OPEN_STATES or case.nrm_status != NrmStatus.PENDING_DECISION.value:
        return
    others = _requests(case, OPEN_STATES).where(Referral.id != referral.id)
    if db.session.scalars(others.limit(1)).first() is None:
        _set_status(case, NrmStatus.PRESUMED, "nrm.request_ended", actor, now)
        db.session.flush()


services.TRANSITION_LISTENERS.append(_follow_request)


# Recording the decision --------------------------------------------------------------------


def identification_day(case: Case) -> date:
    """Return the day of identification (local): the earliest day a decision may carry."""
    if case.identified_on is not None:
        return case.identified_on
    return identified_at(case).astimezone(_zone()).date()


def check_decision(
    case: Case,
    outcome: DecisionOutcome | str,
    decided_on: date | None,
    reason_code: NegativeReason | str | None,
    reason_text: str | None,
    *,
    today: date | None = None,
    not_before: date | None = None,
) -> list[tuple[str, Any]]:
    """Return the problems of a decision as (field name, message); empty when it may be saved.

    ``not_before`` is the date of the decision a reconsideration decides on again.
    """
    problems: list[tuple[str, Any]] = []
    try:
        outcome = DecisionOutcome(outcome)
    except ValueError:
        return [("outcome", _l("Choose the decision."))]
    today = today or local_today()
    if decided_on is None:
        problems.append(("decided_on", _l("Give the date of the decision.")))
    elif decided_on > today:
        problems.append(("decided_on", _l("The decision date cannot be in the future.")))
    elif decided_on < identification_day(case):
        problems.append(
            ("decided_on", _l("The decision date cannot be before the person was identified."))
        )
    elif not_before is not None and decided_on < not_before:
        problems.append(
            ("decided_on", _l("The decision date cannot be before the decision reconsidered."))
        )
    text = (reason_text or "").strip()
    if len(text) > REASON_MAX:
        problems.append(("reason_text", _l("The reason is too long.")))
    if outcome is DecisionOutcome.NOT_RECOGNISED:
        if not reason_code or reason_code not in {reason.value for reason in NegativeReason}:
            problems.append(("reason_code", _l("Choose why the person was not recognised.")))
        elif NegativeReason(reason_code) is NegativeReason.OTHER and not text:
            problems.append(("reason_text", _l("Explain the reason.")))
        elif NegativeReason(reason_code) is NegativeReason.NO_MEANS_OR_ACT and case.is_minor:
            problems.append(
                (
                    "reason_code",
                    _l("For a child, no means of control are needed: choose another reason."),
                )
            )
    elif reason_code:
        problems.append(
            ("reason_code", _l("A coded reason is given for a negative decision only."))
        )
    return problems


def record_status_decision(
    user: User,
    referral: Referral,
    outcome: DecisionOutcome | str,
    decided_on: date,
    reason_code: NegativeReason | str | None = None,
    reason_text: str | None = None,
    *,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Decision:
    """Record the coordinator's decision on the case a status-decision referral is about.

    Sets the case's NRM status, decision date and deciding user (the reflection period is
    no longer warned about), completes the referral, writes the timeline event and the
    audit entry (field names only) and notifies the owner agency's case staff.

    :raises DecisionError: for a referral that is not an accepted or in-progress status
        decision of the user's agency, or a decision ``check_decision`` refuses.
    :raises services.StaleReferral: when the referral is no longer at ``expected_version``.
    """
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        raise DecisionError(_l("This referral does not ask for a status decision."))
    if services.side_of(user, referral) is not Side.RECEIVER:
        raise DecisionError(_l("Only the national coordinator records the status decision."))
    if referral.state_enum not in (State.ACCEPTED, State.IN_PROGRESS):
        raise DecisionError(_l("Accept the referral before recording the decision."))
    case = referral.case
    if case.is_erased or case.status != CaseStatus.OPEN.value:
        raise DecisionError(_l("The decision is recorded on an open case only."))
    # Lazy: reconsiderations builds on this module (its model links to Decision).
    from referrals.reconsiderations import reconsideration_for_referral

    reconsideration = reconsideration_for_referral(referral)
    not_before = reconsideration.decision.decided_on if reconsideration is not None else None
    problems = check_decision(
        case, outcome, decided_on, reason_code, reason_text, not_before=not_before
    )
    if problems:
        raise DecisionError(problems[0][1])
    if expected_version is not None and referral.version != expected_version:
        raise services.StaleReferral(
            _l("Someone changed this referral meanwhile. Look at it again.")
        )
    now = now or utcnow()
    outcome = DecisionOutcome(outcome)
    text = (reason_text or "").strip() or None
    decision = Decision(
        case=case,
        referral_id=referral.id,
        outcome=outcome.value,
        decided_on=decided_on,
        reason_code=NegativeReason(reason_code).value if reason_code else None,
        stage=(
            DecisionStage.RECONSIDERATION if reconsideration is not None else DecisionStage.FIRST
        ).value,
        decided_by_user_id=user.id,
        decided_by_agency_id=user.agency_id,
        recorded_at=now,
    )
    db.session.add(decision)
    fields = ["decision.outcome", "decision.decided_on", "decision.stage"]
    if decision.reason_code:
        fields.append("decision.reason_code")
    if text:
        decision.reason = text
        fields.append("decision.reason")
    # The case first: the referral's completion then finds the status decided.
    _set_status(
        case,
        NrmStatus(outcome.value),
        "nrm.decided",
        user,
        now,
        nrm_decided_on=decided_on,
        nrm_decided_by_id=user.id,
    )
    db.session.flush()
    audit.record(
        "nrm.decision_recorded",
        object_type="nrm_decision",
        object_id=decision.id,
        field_names=fields,
        user=user,
    )
    if referral.state_enum is State.ACCEPTED:
        services.transition(referral, Action.START, user, now=now)
    services.transition(
        referral,
        Action.COMPLETE,
        user,
        now=now,
        changes={"outcome": ReferralOutcome.SERVICE_PROVIDED.value, "closed_at": now},
    )
    notify(
        agency=case.owner_agency,
        roles=[Role.CASEWORKER, Role.SUPERVISOR],
        kind="nrm.reconsidered" if reconsideration is not None else "nrm.decided",
        reference=case.reference,
        link=f"/cases/{case.id}",
        now=now,
    )
    return decision


def decisions_of(case: Case) -> list[Decision]:
    """Return the case's decisions, newest first."""
    return list(
        db.session.scalars(
            select(Decision)
            .where(Decision.case_id == case.id)
            .order_by(Decision.recorded_at.desc(), Decision.id)
        )
    )


# For statistics: time to decision --------------------------------------------------------


@dataclass(frozen=True)
class DecisionDuration:
    """One decision, as statistics read it: no personal data, codes and whole days only."""

    decision_id: str
    outcome: str
    reason_code: str | None
    stage: str
    decided_on: date
    identified_on: date
    # decided_on minus the identification day, in days (0: decided the day identified).
    days: int


def decision_durations(
    since: date | None = None,
    until: date | None = None,
    *,
    stage: DecisionStage | str | None = None,
) -> list[DecisionDuration]:
    """Return every decision decided in [since, until] with its days since identification.

    The identification day is the case's recorded one, else the local day it was opened
    (``identification_day``). ``stage`` keeps first decisions or decisions on
    reconsideration only; by default both (each counts as a decision of its own).
    """
    from casework.models import Case

    query = (
        select(Decision, Case.identified_on, Case.created_at)
        .join(Case, Case.id == Decision.case_id)
        .order_by(Decision.decided_on, Decision.recorded_at, Decision.id)
    )
    if since is not None:
        query = query.where(Decision.decided_on >= since)
    if until is not None:
        query = query.where(Decision.decided_on <= until)
    if stage is not None:
        query = query.where(Decision.stage == DecisionStage(stage).value)
    zone = _zone()
    rows = []
    for decision, identified_on, created_at in db.session.execute(query):
        day = identified_on or created_at.astimezone(zone).date()
        rows.append(
            DecisionDuration(
                decision_id=decision.id,
                outcome=decision.outcome,
                reason_code=decision.reason_code,
                stage=decision.stage,
                decided_on=decision.decided_on,
                identified_on=day,
                days=(decision.decided_on - day).days,
            )
        )
    return rows


def median_and_p90(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Return the median and the 90th percentile of the values (None, None when empty).

    Percentiles by linear interpolation between closest ranks (NumPy's default, Excel's
    PERCENTILE.INC), so the median of an even count is the mean of the middle two.
    """
    ordered = sorted(values)
    if not ordered:
        return None, None

    def percentile(fraction: float) -> float:
        position = (len(ordered) - 1) * fraction
        lower = int(position)
        upper = min(lower + 1, len(ordered) - 1)
        return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)

    return percentile(0.5), percentile(0.9)
