"""Statistics of the rest of the NRM path: five more subjects of ``reports.statistics``.

Each subject is declared here (``Subject`` with a ``collect`` function and its rows'
labels) and counted by the same engine into ``stat_margins``: its own total per month is
the locked margin of its tables, and every table goes through the same disclosure control
(``reports.disclosure``). Coded fields only; no amount, no name, no free text.

- ``incoming``: incoming reports (hotline calls, presumed-victim notifications) by the
  month they were recorded (``created_at``); reports still being recorded are not counted.
  By kind, channel, anonymous, outcome (open, case opened, closed by reason) and the
  sending agency's type.
- ``returns``: return plans by the month they were created (every plan, also those that
  never end in a return, so the month of a plan never moves): state, destination country,
  risk level, sign-off decision.
- ``measures``: reintegration measures by the month they start (the month they were
  planned, i.e. recorded, when no start day is set): type and status. Amounts are not
  published: the amount of one person's grant would identify them.
- ``visits``: follow-up visits by the month done (visits not done are not counted):
  outcome, method, re-trafficking flag.
- ``guardians``: minors' cases by the month identified (as cases count): guardian appointed
  in time, late, not yet and overdue, or not yet and still in time (pending), by the
  module's own working-day deadline (``casework.child_protection.guardian_due_on``). A
  pending case becomes overdue as days pass without any row changing, so the months with
  pending cases are recounted once a day (``statistics.DAILY_STALE``).

Months are those of the UTC timestamp (as referrals'), or of the day for day fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from types import SimpleNamespace

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, inspect, or_, select
from sqlalchemy.orm import Session

from casework import models as case_models
from casework.child_protection import GuardianAppointment, guardian_due_on
from casework.contact_workflow import Kind
from casework.contact_workflow import State as ContactState
from casework.contacts import (
    CLOSURE_REASON_LABELS,
    KIND_LABELS,
    NOTIFICATION_CHANNELS,
    ClosureReason,
    IncomingReport,
)
from casework.models import Case, CaseStatus
from casework.reintegration import (
    FollowUpVisit,
    MeasureStatus,
    MeasureType,
    ReintegrationMeasure,
    VisitMethod,
    VisitOutcome,
)
from casework.return_workflow import State as ReturnState
from casework.returns import STATE_LABELS as RETURN_STATE_LABELS
from casework.returns import ReturnPlan, ReturnRisk, SignOffDecision
from core.db import db
from core.models import Agency, AgencyType
from reports import statistics
from reports.statistics import SUBJECTS, Subject

INCOMING = "incoming"
RETURNS = "returns"
MEASURES = "measures"
VISITS = "visits"
GUARDIANS = "guardians"

YES_NO = (("yes", _l("Yes")), ("no", _l("No")))
OPEN, CASE_OPENED, CLOSED = "open", "case_opened", "closed"
NOT_ASSESSED = "not_assessed"
NOT_SIGNED = "not_signed"
IN_TIME, LATE, OVERDUE, PENDING = "in_time", "late", "overdue", "pending"


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _month(value: date | datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m")


def _bounds(months: list[str]) -> list[tuple[date, date]]:
    return [statistics._month_bounds(month) for month in months]


def _moments(column, months: list[str]):
    """Return a condition on a UTC timestamp column for the months."""

    def at(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=UTC)

    return or_(*(and_(column >= at(a), column < at(b)) for a, b in _bounds(months)))


def _days(column, months: list[str]):
    return or_(*(and_(column >= a, column < b) for a, b in _bounds(months)))


# Incoming reports ---------------------------------------------------------------------------


def _incoming_outcome(state: str, reason: str | None) -> str:
    if state == ContactState.CONVERTED.value:
        return CASE_OPENED
    if state == ContactState.CLOSED.value:
        return f"{CLOSED}:{reason or ClosureReason.OTHER.value}"
    return OPEN


def collect_incoming(months: list[str] | None) -> Iterable[tuple[str, dict[str, str]]]:
    query = (
        select(
            IncomingReport.created_at,
            IncomingReport.kind,
            IncomingReport.intake_channel,
            IncomingReport.anonymous,
            IncomingReport.state,
            IncomingReport.closure_reason,
            Agency.type,
        )
        .join(Agency, Agency.id == IncomingReport.sender_agency_id)
        .where(IncomingReport.state != ContactState.NEW.value)
    )
    if months is not None:
        query = query.where(_moments(IncomingReport.created_at, months))
    for created_at, kind, channel, anonymous, state, reason, agency_type in db.session.execute(
        query
    ):
        yield (
            _month(created_at),
            {
                "kind": kind,
                "channel": channel,
                "anonymous": _yes_no(anonymous),
                "outcome": _incoming_outcome(state, reason),
                "agency_type": agency_type,
            },
        )


def _channel_rows() -> list[tuple[str, str]]:
    from casework.reference import labels_of

    labels = labels_of("intake_channel")
    codes = ["hotline", *NOTIFICATION_CHANNELS]
    return [(code, labels.get(code, code)) for code in codes]


def _outcome_rows() -> list[tuple[str, str]]:
    return [
        (OPEN, _l("Open (not yet a case)")),
        (CASE_OPENED, _l("Case opened")),
        *(
            (f"{CLOSED}:{reason.value}", _l("Closed: %(reason)s", reason=label))
            for reason, label in CLOSURE_REASON_LABELS.items()
        ),
    ]


INCOMING_SUBJECT = Subject(
    INCOMING,
    _l("Incoming reports"),
    ("kind", "channel", "anonymous", "outcome", "agency_type"),
    {
        "kind": _l("Kind of report"),
        "channel": _l("Channel"),
        "anonymous": _l("Anonymous"),
        "outcome": _l("Outcome"),
        "agency_type": _l("Sending agency type"),
    },
    title_format=_l("Incoming reports: %(dimension)s"),
    collect=collect_incoming,
    row_labels={
        "kind": lambda: [(kind.value, KIND_LABELS[kind]) for kind in Kind],
        "channel": _channel_rows,
        "anonymous": lambda: list(YES_NO),
        "outcome": _outcome_rows,
        "agency_type": lambda: [(member.value, member.label) for member in AgencyType],
    },
)


# Return plans -------------------------------------------------------------------------------


def collect_returns(months: list[str] | None) -> Iterable[tuple[str, dict[str, str]]]:
    query = select(
        ReturnPlan.created_at,
        ReturnPlan.state,
        ReturnPlan.destination_country,
        ReturnPlan.risk_level,
        ReturnPlan.sign_off_decision,
    )
    if months is not None:
        query = query.where(_moments(ReturnPlan.created_at, months))
    for created_at, state, country, risk, decision in db.session.execute(query):
        yield (
            _month(created_at),
            {
                "state": state,
                "destination": country,
                "risk": risk or NOT_ASSESSED,
                "sign_off": decision or NOT_SIGNED,
            },
        )


def _country_rows() -> list[tuple[str, str]]:
    return statistics._rows("citizenship", _present_countries())


def _present_countries() -> set[str]:
    return set(db.session.scalars(select(ReturnPlan.destination_country).distinct()))


RETURN_SUBJECT = Subject(
    RETURNS,
    _l("Return plans"),
    ("state", "destination", "risk", "sign_off"),
    {
        "state": _l("State"),
        "destination": _l("Destination country"),
        "risk": _l("Risk level"),
        "sign_off": _l("Sign-off decision"),
    },
    title_format=_l("Return plans: %(dimension)s"),
    collect=collect_returns,
    row_labels={
        "state": lambda: [(state.value, RETURN_STATE_LABELS[state]) for state in ReturnState],
        "destination": _country_rows,
        "risk": lambda: [
            *((risk.value, risk.label) for risk in ReturnRisk),
            (NOT_ASSESSED, _l("Not assessed yet")),
        ],
        "sign_off": lambda: [
            *((decision.value, decision.label) for decision in SignOffDecision),
            (NOT_SIGNED, _l("No decision yet")),
        ],
    },
)


# Reintegration measures and follow-up visits --------------------------------------------------


def _measure_month(starts_on: date | None, created_at: datetime) -> str:
    return _month(starts_on) if starts_on is not None else _month(created_at)


def collect_measures(months: list[str] | None) -> Iterable[tuple[str, dict[str, str]]]:
    query = select(
        ReintegrationMeasure.starts_on,
        ReintegrationMeasure.created_at,
        ReintegrationMeasure.measure_type,
        ReintegrationMeasure.status,
    )
    if months is not None:
        query = query.where(
            or_(
                _days(ReintegrationMeasure.starts_on, months),
                and_(
                    ReintegrationMeasure.starts_on.is_(None),
                    _moments(ReintegrationMeasure.created_at, months),
                ),
            )
        )
    for starts_on, created_at, measure_type, status in db.session.execute(query):
        yield _measure_month(starts_on, created_at), {"type": measure_type, "status": status}


MEASURE_SUBJECT = Subject(
    MEASURES,
    _l("Reintegration measures"),
    ("type", "status"),
    {"type": _l("Type of measure"), "status": _l("Status")},
    title_format=_l("Reintegration measures: %(dimension)s"),
    collect=collect_measures,
    row_labels={
        "type": lambda: [(member.value, member.label) for member in MeasureType],
        "status": lambda: [(member.value, member.label) for member in MeasureStatus],
    },
)


def collect_visits(months: list[str] | None) -> Iterable[tuple[str, dict[str, str]]]:
    query = select(
        FollowUpVisit.done_on,
        FollowUpVisit.outcome,
        FollowUpVisit.method,
        FollowUpVisit.retrafficked,
    ).where(FollowUpVisit.done_on.is_not(None))
    if months is not None:
        query = query.where(_days(FollowUpVisit.done_on, months))
    for done_on, outcome, method, retrafficked in db.session.execute(query):
        yield (
            _month(done_on),
            {"outcome": outcome, "method": method, "retrafficked": _yes_no(retrafficked)},
        )


VISIT_SUBJECT = Subject(
    VISITS,
    _l("Follow-up visits"),
    ("outcome", "method", "retrafficked"),
    {
        "outcome": _l("Outcome"),
        "method": _l("Method"),
        "retrafficked": _l("Signs of re-trafficking"),
    },
    title_format=_l("Follow-up visits: %(dimension)s"),
    collect=collect_visits,
    row_labels={
        "outcome": lambda: [(member.value, member.label) for member in VisitOutcome],
        "method": lambda: [(member.value, member.label) for member in VisitMethod],
        "retrafficked": lambda: list(YES_NO),
    },
)


# Guardian appointment delay -------------------------------------------------------------------


def guardian_delay(case: object, first_appointed: date | None, today: date) -> str:
    """Return where a minor's guardian appointment stands: in time, late, overdue, pending.

    The same rule as ``child_protection.guardian_deadline`` (first appointment on or before
    the working-day due day: in time), from values read in bulk.
    """
    due = guardian_due_on(case)
    if first_appointed is not None:
        return IN_TIME if first_appointed <= due else LATE
    return OVERDUE if today > due else PENDING


def collect_guardians(months: list[str] | None) -> Iterable[tuple[str, dict[str, str]]]:
    first = (
        select(
            GuardianAppointment.case_id,
            func.min(GuardianAppointment.appointed_on).label("first"),
        )
        .group_by(GuardianAppointment.case_id)
        .subquery()
    )
    query = (
        select(Case.identified_on, Case.created_at, first.c.first)
        .outerjoin(first, first.c.case_id == Case.id)
        .where(Case.is_minor.is_(True), Case.status != CaseStatus.DRAFT.value)
    )
    if months is not None:
        query = query.where(statistics._cases_in(months))
    # The working clock, read at call time (tests set ``casework.models.local_today``).
    today = case_models.local_today()
    for identified_on, created_at, appointed in db.session.execute(query):
        case = SimpleNamespace(identified_on=identified_on, created_at=created_at)
        month = _month(identified_on or created_at)
        yield month, {"guardian": guardian_delay(case, appointed, today)}


def pending_guardian_months() -> set[str]:
    """Return the months with minors' cases whose guardian is pending (they may turn
    overdue today)."""
    query = select(statistics.Margin.month).where(
        statistics.Margin.subject == GUARDIANS,
        statistics.Margin.dimension == "guardian",
        statistics.Margin.code == PENDING,
    )
    return set(db.session.scalars(query))


GUARDIAN_SUBJECT = Subject(
    GUARDIANS,
    _l("Minors' cases"),
    ("guardian",),
    {"guardian": _l("Guardian appointment")},
    title_format=_l("Minors' cases: %(dimension)s"),
    collect=collect_guardians,
    row_labels={
        "guardian": lambda: [
            (IN_TIME, _l("Appointed in time")),
            (LATE, _l("Appointed late")),
            (OVERDUE, _l("Not yet appointed, overdue")),
            (PENDING, _l("Not yet appointed, still in time")),
        ]
    },
)

PATH_SUBJECTS = (
    INCOMING_SUBJECT,
    RETURN_SUBJECT,
    MEASURE_SUBJECT,
    VISIT_SUBJECT,
    GUARDIAN_SUBJECT,
)
for _subject in PATH_SUBJECTS:
    SUBJECTS[_subject.name] = _subject


# Marking months dirty -------------------------------------------------------------------------


def _history_months(state, name: str, current) -> set[str | None]:
    return {_month(value) for value in (*state.attrs[name].history.deleted, current)}


def _changed(state, names: Iterable[str]) -> bool:
    return any(state.attrs[name].history.has_changes() for name in names)


def mark_path_months(session: Session, obj: object) -> set[str | None]:
    """Return the months a change of one of the path's records makes stale."""
    if isinstance(obj, IncomingReport | ReturnPlan):
        fields = (
            ("state", "closure_reason", "kind", "intake_channel", "anonymous", "sender_agency_id")
            if isinstance(obj, IncomingReport)
            else ("state", "destination_country", "risk_level", "sign_off_decision")
        )
        state = inspect(obj)
        if obj in session.new or obj in session.deleted or _changed(state, fields):
            return {_month(obj.created_at or statistics.utcnow())}
        return set()
    if isinstance(obj, ReintegrationMeasure):
        state = inspect(obj)
        if (
            obj in session.new
            or obj in session.deleted
            or _changed(state, ("measure_type", "status", "starts_on"))
        ):
            months = {_month(obj.created_at or statistics.utcnow())}
            return months | _history_months(state, "starts_on", obj.starts_on)
        return set()
    if isinstance(obj, FollowUpVisit):
        state = inspect(obj)
        if (
            obj in session.new
            or obj in session.deleted
            or _changed(state, ("done_on", "outcome", "method", "retrafficked"))
        ):
            return _history_months(state, "done_on", obj.done_on)
        return set()
    if isinstance(obj, GuardianAppointment):
        case = obj.case or session.get(Case, obj.case_id)
        if case is None:
            return set()
        return {_month(case.identified_on or case.created_at or statistics.utcnow())}
    return set()


if mark_path_months not in statistics.DIRTY_MARKERS:
    statistics.DIRTY_MARKERS.append(mark_path_months)
if pending_guardian_months not in statistics.DAILY_STALE:
    statistics.DAILY_STALE.append(pending_guardian_months)
