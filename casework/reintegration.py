"""Reintegration: a case's reintegration plan, its measures, and the follow-up visits.

Follow-up visits are scheduled once per case, when the reintegration plan starts or the
person returns (whichever comes first), at the months ``HAVEN_FOLLOW_UP_MONTHS`` names
(1, 3, 6 and 12 by default). Coded values (measure type, status, amount and currency, visit
method and outcome, the re-trafficking flag) are in clear for statistics; notes are
encrypted under the case's data key. Services flush, audit and add a timeline event; they
never commit.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    and_,
    exists,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.exc import StaleDataError

from casework.models import Case, CaseRecord, local_today
from casework.returns import LABELS, Labelled
from casework.services import EditConflict
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow

if TYPE_CHECKING:
    from core.models import Agency, User

DEFAULT_FOLLOW_UP_MONTHS = (1, 3, 6, 12)


class MeasureType(Labelled):
    GRANT = "grant"
    BUSINESS_PLAN = "business_plan"
    VOCATIONAL_TRAINING = "vocational_training"
    EDUCATION = "education"
    HOUSING = "housing"
    MEDICAL_CARE = "medical_care"
    PSYCHOLOGICAL_CARE = "psychological_care"
    LEGAL_AID = "legal_aid"
    OTHER = "other"


class MeasureStatus(Labelled):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Currency(Labelled):
    AZN = "AZN"
    USD = "USD"
    EUR = "EUR"
    TRY = "TRY"
    RUB = "RUB"


class VisitMethod(Labelled):
    VISIT = "visit"
    PHONE = "phone"
    VIDEO = "video"


class VisitOutcome(Labelled):
    STABLE = "stable"
    NEEDS_SUPPORT = "needs_support"
    AT_RISK = "at_risk"
    LOST_CONTACT = "lost_contact"
    RE_TRAFFICKED = "re_trafficked"
    MOVED_ABROAD = "moved_abroad"


LABELS.update(
    {
        MeasureType: {
            MeasureType.GRANT: _l("Grant"),
            MeasureType.BUSINESS_PLAN: _l("Business plan"),
            MeasureType.VOCATIONAL_TRAINING: _l("Vocational training"),
            MeasureType.EDUCATION: _l("Education"),
            MeasureType.HOUSING: _l("Housing"),
            MeasureType.MEDICAL_CARE: _l("Medical care"),
            MeasureType.PSYCHOLOGICAL_CARE: _l("Psychological care"),
            MeasureType.LEGAL_AID: _l("Legal aid"),
            MeasureType.OTHER: _l("Other"),
        },
        MeasureStatus: {
            MeasureStatus.PLANNED: _l("Planned"),
            MeasureStatus.IN_PROGRESS: _l("In progress"),
            MeasureStatus.DELIVERED: _l("Delivered"),
            MeasureStatus.CANCELLED: _l("Cancelled"),
        },
        Currency: {
            Currency.AZN: _l("Azerbaijani manat (AZN)"),
            Currency.USD: _l("US dollar (USD)"),
            Currency.EUR: _l("Euro (EUR)"),
            Currency.TRY: _l("Turkish lira (TRY)"),
            Currency.RUB: _l("Russian rouble (RUB)"),
        },
        VisitMethod: {
            VisitMethod.VISIT: _l("Visit"),
            VisitMethod.PHONE: _l("Phone call"),
            VisitMethod.VIDEO: _l("Video call"),
        },
        VisitOutcome: {
            VisitOutcome.STABLE: _l("Stable"),
            VisitOutcome.NEEDS_SUPPORT: _l("Needs support"),
            VisitOutcome.AT_RISK: _l("At risk"),
            VisitOutcome.LOST_CONTACT: _l("Lost contact"),
            VisitOutcome.RE_TRAFFICKED: _l("Re-trafficked"),
            VisitOutcome.MOVED_ABROAD: _l("Moved abroad again"),
        },
    }
)

for _kind, _label in {
    "reintegration.started": _l("Reintegration plan started"),
    "reintegration.updated": _l("Reintegration plan changed"),
    "measure.added": _l("Reintegration measure added"),
    "measure.updated": _l("Reintegration measure changed"),
    "follow_up.scheduled": _l("Follow-up visits scheduled"),
    "follow_up.recorded": _l("Follow-up visit recorded"),
    "follow_up.retrafficked": _l("Follow-up: signs of re-trafficking"),
}.items():
    register_timeline_kind(_kind, _label)


class ReintegrationError(ValueError):
    """A change the reintegration rules refuse; the message is a lazy translation."""


def _case_fk() -> Any:
    return mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)


# Models ------------------------------------------------------------------------------------


class ReintegrationPlan(CaseRecord, db.Model):
    """A case's reintegration plan: when it started, its goals (encrypted), its measures."""

    __tablename__ = "reintegration_plans"
    __table_args__ = (
        UniqueConstraint("case_id"),
        CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="ends_after_start"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    goals = EncryptedField()

    case: Mapped[Case] = relationship()
    measures: Mapped[list[ReintegrationMeasure]] = relationship(
        back_populates="plan", order_by="ReintegrationMeasure.created_at"
    )

    __mapper_args__ = {"version_id_col": version}


class ReintegrationMeasure(CaseRecord, db.Model):
    """One measure of the plan: type, provider, amount and currency, status, dates, notes."""

    __tablename__ = "reintegration_measures"
    __table_args__ = (
        enum_check("measure_type", MeasureType),
        enum_check("status", MeasureStatus),
        enum_check("currency", Currency),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            "ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on", name="ends_after_start"
        ),
        Index("ix_reintegration_measures_plan", "plan_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    plan_id: Mapped[str] = mapped_column(ForeignKey("reintegration_plans.id", ondelete="CASCADE"))
    measure_type: Mapped[str] = mapped_column(enum_string(MeasureType))
    provider_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(enum_string(Currency), default=Currency.AZN.value)
    status: Mapped[str] = mapped_column(
        enum_string(MeasureStatus), default=MeasureStatus.PLANNED.value
    )
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    edited_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Optimistic locking: an edit made on an older version is refused, not saved over.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    notes = EncryptedField()

    case: Mapped[Case] = relationship()
    plan: Mapped[ReintegrationPlan] = relationship(back_populates="measures")
    provider: Mapped[Agency | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def type_label(self) -> str:
        return MeasureType(self.measure_type).label

    @property
    def status_label(self) -> str:
        return MeasureStatus(self.status).label


class FollowUpVisit(CaseRecord, db.Model):
    """A follow-up visit: due date, and once done its day, method, outcome, notes and flag."""

    __tablename__ = "follow_up_visits"
    __table_args__ = (
        enum_check("method", VisitMethod),
        enum_check("outcome", VisitOutcome),
        # Scheduled once per case and month (the schedule is idempotent).
        UniqueConstraint("case_id", "month_offset"),
        # A visit is done exactly when it has a day, a method and an outcome.
        CheckConstraint(
            "(done_on IS NULL) = (outcome IS NULL) AND (done_on IS NULL) = (method IS NULL)",
            name="done_has_outcome",
        ),
        CheckConstraint(
            "outcome IS NULL OR outcome <> 're_trafficked' OR retrafficked",
            name="re_trafficked_flagged",
        ),
        CheckConstraint("NOT retrafficked OR done_on IS NOT NULL", name="flag_when_done"),
        # The case list asks "is any visit of this case overdue?": by case, open, due day.
        Index("ix_follow_up_visits_case_open_due", "case_id", "done_on", "due_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # Months after the start of follow-up (1, 3, 6, 12 ...).
    month_offset: Mapped[int] = mapped_column(Integer)
    scheduled_from: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    done_on: Mapped[date | None] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(enum_string(VisitMethod))
    outcome: Mapped[str | None] = mapped_column(enum_string(VisitOutcome))
    retrafficked: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    notes = EncryptedField()

    case: Mapped[Case] = relationship()
    recorded_by: Mapped[User | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_done(self) -> bool:
        return self.done_on is not None

    def is_overdue(self, today: date | None = None) -> bool:
        """Return whether the visit is not done and its due day has passed."""
        return self.done_on is None and self.due_on < (today or local_today())

    @property
    def method_label(self) -> str | None:
        return VisitMethod(self.method).label if self.method else None

    @property
    def outcome_label(self) -> str | None:
        return VisitOutcome(self.outcome).label if self.outcome else None


# The schedule ------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """Return the same day ``months`` later, or that month's last day if it is shorter."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def follow_up_months(configured: object = None) -> tuple[int, ...]:
    """Return the months after the start at which follow-ups are due, sorted.

    ``configured`` is a sequence or text such as ``"1,3,6,12"``; by default the app's
    ``HAVEN_FOLLOW_UP_MONTHS``.

    :raises ValueError: for a value that is not a positive whole number of months.
    """
    if configured is None:
        configured = (
            current_app.config.get("HAVEN_FOLLOW_UP_MONTHS", DEFAULT_FOLLOW_UP_MONTHS)
            if has_app_context()
            else DEFAULT_FOLLOW_UP_MONTHS
        )
    parts = configured.split(",") if isinstance(configured, str) else list(configured)
    months = sorted({int(str(part).strip()) for part in parts if str(part).strip()})
    if not months or months[0] <= 0:
        raise ValueError(f"follow-up months must be positive: {configured!r}")
    return tuple(months)


def follow_up_schedule(start: date, months: Iterable[int] | None = None) -> list[tuple[int, date]]:
    """Return (month offset, due day) of each follow-up from the start day."""
    return [(month, add_months(start, month)) for month in follow_up_months(months)]


# Queries -----------------------------------------------------------------------------------


def reintegration_plan_of(case: Case) -> ReintegrationPlan | None:
    return db.session.scalars(
        select(ReintegrationPlan).where(ReintegrationPlan.case_id == case.id)
    ).first()


def measures_of(case: Case) -> list[ReintegrationMeasure]:
    return list(
        db.session.scalars(
            select(ReintegrationMeasure)
            .where(ReintegrationMeasure.case_id == case.id)
            .order_by(ReintegrationMeasure.created_at, ReintegrationMeasure.id)
        )
    )


def visits_of(case: Case) -> list[FollowUpVisit]:
    return list(
        db.session.scalars(
            select(FollowUpVisit)
            .where(FollowUpVisit.case_id == case.id)
            .order_by(FollowUpVisit.due_on, FollowUpVisit.month_offset)
        )
    )


def overdue_condition(today: date | None = None) -> Any:
    """Return the SQL condition "the case has a follow-up visit overdue" (correlated EXISTS)."""
    today = today or local_today()
    return exists().where(
        and_(
            FollowUpVisit.case_id == Case.id,
            FollowUpVisit.done_on.is_(None),
            FollowUpVisit.due_on < today,
        )
    )


def cases_with_overdue_follow_up(case_ids: Iterable[str], today: date | None = None) -> set[str]:
    """Return which of the cases have a follow-up overdue (one query for a page of cases)."""
    ids = list(case_ids)
    if not ids:
        return set()
    today = today or local_today()
    return set(
        db.session.scalars(
            select(FollowUpVisit.case_id)
            .where(
                FollowUpVisit.case_id.in_(ids),
                FollowUpVisit.done_on.is_(None),
                FollowUpVisit.due_on < today,
            )
            .distinct()
        )
    )


@dataclass(frozen=True)
class FollowUpSummary:
    """What the case page shows: the next visit due, overdue ones, re-trafficking flag."""

    next_due: FollowUpVisit | None
    # The latest visit done (by its day), for its coded outcome.
    last_done: FollowUpVisit | None
    overdue: int
    retrafficked: bool
    total: int
    done: int


def follow_up_summary(case: Case, today: date | None = None) -> FollowUpSummary:
    today = today or local_today()
    visits = visits_of(case)
    waiting = [visit for visit in visits if not visit.is_done]
    done = sorted((visit for visit in visits if visit.is_done), key=lambda visit: visit.done_on)
    return FollowUpSummary(
        next_due=waiting[0] if waiting else None,
        last_done=done[-1] if done else None,
        overdue=sum(1 for visit in waiting if visit.is_overdue(today)),
        retrafficked=any(visit.retrafficked for visit in visits),
        total=len(visits),
        done=len(visits) - len(waiting),
    )


# Services ----------------------------------------------------------------------------------


def start_reintegration_plan(
    user: User, case: Case, started_on: date, goals: str | None = None
) -> ReintegrationPlan:
    """Start the case's reintegration plan and schedule the follow-up visits from its start.

    :raises ReintegrationError: when the case already has a reintegration plan.
    """
    if reintegration_plan_of(case) is not None:
        raise ReintegrationError(_l("This case already has a reintegration plan."))
    plan = ReintegrationPlan(
        case=case, started_on=started_on, created_by_user_id=user.id, created_at=utcnow()
    )
    db.session.add(plan)
    fields = ["started_on"]
    if goals and goals.strip():
        plan.goals = goals.strip()
        fields.append("goals")
    db.session.flush()
    _record(user, case, "reintegration_plan", plan.id, fields, "reintegration.started")
    schedule_follow_ups(user, case, started_on)
    return plan


def update_reintegration_plan(
    user: User, plan: ReintegrationPlan, values: Mapping[str, Any], *, expected_version: int
) -> list[str]:
    """Change the plan's goals or end day; return the changed names.

    :raises EditConflict: when the plan is no longer at ``expected_version``.
    """
    if plan.version != expected_version:
        raise EditConflict
    ended_on = values.get("ended_on", plan.ended_on)
    if ended_on is not None and ended_on < plan.started_on:
        raise ReintegrationError(_l("The plan cannot end before it starts."))
    changed = _apply(plan, {name: values[name] for name in ("goals", "ended_on") if name in values})
    if changed:
        _flush_versioned()
        _record(user, plan.case, "reintegration_plan", plan.id, changed, "reintegration.updated")
    return changed


def schedule_follow_ups(user: User | None, case: Case, start: date) -> list[FollowUpVisit]:
    """Schedule the case's follow-up visits from the start day, once per case.

    Whichever comes first, the start of reintegration or the return, starts the schedule; a
    later call finds visits already scheduled and adds nothing.
    """
    existing = set(
        db.session.scalars(
            select(FollowUpVisit.month_offset).where(FollowUpVisit.case_id == case.id)
        )
    )
    if existing:
        return []
    visits = [
        FollowUpVisit(case=case, month_offset=month, scheduled_from=start, due_on=due)
        for month, due in follow_up_schedule(start)
    ]
    db.session.add_all(visits)
    db.session.flush()
    fields = ["due_on", "month_offset"]
    audit.record(
        "follow_up.scheduled", object_type="case", object_id=case.id, field_names=fields, user=user
    )
    add_timeline_event(
        case,
        "follow_up.scheduled",
        actor=user,
        object_type="case",
        object_id=case.id,
        field_names=fields,
    )
    return visits


# Fields of a measure an edit may change, in form order.
MEASURE_FIELDS = (
    "measure_type",
    "provider_agency_id",
    "amount",
    "currency",
    "status",
    "starts_on",
    "ends_on",
    "notes",
)


def _clean_measure(values: Mapping[str, Any]) -> dict[str, Any]:
    wanted = {name: values[name] for name in MEASURE_FIELDS if name in values}
    if "measure_type" in wanted:
        wanted["measure_type"] = MeasureType(wanted["measure_type"]).value
    if "status" in wanted:
        wanted["status"] = MeasureStatus(wanted["status"] or MeasureStatus.PLANNED).value
    if "currency" in wanted:
        wanted["currency"] = Currency(wanted["currency"] or Currency.AZN).value
    if wanted.get("amount") is not None:
        wanted["amount"] = Decimal(str(wanted["amount"])).quantize(Decimal("0.01"))
        if wanted["amount"] < 0:
            raise ReintegrationError(_l("An amount cannot be negative."))
    starts_on, ends_on = wanted.get("starts_on"), wanted.get("ends_on")
    if starts_on and ends_on and ends_on < starts_on:
        raise ReintegrationError(_l("A measure cannot end before it starts."))
    return wanted


def measure_values(measure: ReintegrationMeasure) -> dict[str, Any]:
    """Return the editable fields of a measure (the notes decrypted) by name."""
    return {name: getattr(measure, name) for name in MEASURE_FIELDS}


def add_measure(
    user: User, plan: ReintegrationPlan, values: Mapping[str, Any]
) -> ReintegrationMeasure:
    """Add a measure to the reintegration plan.

    :raises ReintegrationError: for a negative amount or a measure ending before it starts.
    """
    wanted = _clean_measure(values)
    notes = wanted.pop("notes", None)
    measure = ReintegrationMeasure(
        case=plan.case, plan=plan, created_by_user_id=user.id, created_at=utcnow(), **wanted
    )
    db.session.add(measure)
    if notes and str(notes).strip():
        measure.notes = str(notes).strip()
    db.session.flush()
    fields = [name for name in MEASURE_FIELDS if values.get(name) not in (None, "")]
    _record(user, plan.case, "reintegration_measure", measure.id, fields, "measure.added")
    return measure


def update_measure(
    user: User,
    measure: ReintegrationMeasure,
    values: Mapping[str, Any],
    *,
    expected_version: int,
) -> list[str]:
    """Change a measure unless it moved past the version the user edited; return the changes.

    :raises EditConflict: when the measure is no longer at ``expected_version``.
    :raises ReintegrationError: for a negative amount or a measure ending before it starts.
    """
    if measure.version != expected_version:
        raise EditConflict
    merged = {**measure_values(measure), **values}
    _clean_measure(merged)
    changed = _apply(measure, _clean_measure(values))
    if not changed:
        return changed
    measure.edited_at = utcnow()
    measure.edited_by_user_id = user.id
    _flush_versioned()
    _record(user, measure.case, "reintegration_measure", measure.id, changed, "measure.updated")
    return changed


def record_follow_up(
    user: User,
    visit: FollowUpVisit,
    *,
    done_on: date,
    method: str,
    outcome: str,
    retrafficked: bool = False,
    notes: str | None = None,
    expected_version: int | None = None,
) -> FollowUpVisit:
    """Record a follow-up visit as done (or correct it); re-trafficking is flagged on the case.

    :raises EditConflict: when the visit is no longer at ``expected_version``.
    """
    if expected_version is not None and visit.version != expected_version:
        raise EditConflict
    outcome = VisitOutcome(outcome).value
    retrafficked = bool(retrafficked) or outcome == VisitOutcome.RE_TRAFFICKED
    changed = _apply(
        visit,
        {
            "done_on": done_on,
            "method": VisitMethod(method).value,
            "outcome": outcome,
            "retrafficked": retrafficked,
            "notes": notes,
        },
    )
    if not changed:
        return visit
    visit.recorded_by_user_id = user.id
    visit.recorded_at = utcnow()
    _flush_versioned()
    kind = "follow_up.retrafficked" if retrafficked else "follow_up.recorded"
    _record(user, visit.case, "follow_up_visit", visit.id, changed, kind)
    return visit


# Shared ------------------------------------------------------------------------------------


def _apply(row: object, values: Mapping[str, object]) -> list[str]:
    """Set the values that differ (blank text counts as none); return the changed names."""
    changed = []
    for name, value in values.items():
        if isinstance(value, str):
            value = value.strip() or None
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def _flush_versioned() -> None:
    try:
        db.session.flush()
    except StaleDataError as error:
        raise EditConflict from error


def _record(
    user: User, case: Case, object_type: str, object_id: str, fields: list[str], kind: str
) -> None:
    """Write the audit entry (field names only) and the timeline event of a change."""
    audit.record(kind, object_type=object_type, object_id=object_id, field_names=fields, user=user)
    add_timeline_event(
        case, kind, actor=user, object_type=object_type, object_id=object_id, field_names=fields
    )
