"""Statistics: pre-aggregated counts over the coded fields, and protected tables built from them.

Pre-aggregation
---------------
A GROUP BY over a million cases per request is ~0.2 s; the dashboard must answer in 100 ms.
So the counts live in tables kept next to the cases (never in process memory: Haven runs as
several stateless instances):

- ``stat_case_counts``: one row per month and combination of the single-valued coded
  fields (sex, age band, minor, citizenship, region, identifying agency type, intake
  channel, NRM status)
  with the number of cases; ``stat_case_code_counts`` the same per form of exploitation.
  Cross-tabs read these.
- ``stat_margins``: per month, dimension and code, the number of cases (the dashboard's
  panels read only this, a few thousand rows for a year).
- ``stat_referral_counts`` and ``stat_service_counts`` for referral outcomes and services.
- ``stat_decision_counts``: status decisions per month decided, outcome, stage, negative
  reason and whole days from identification to decision (so the median and 90th
  percentile are computed from the aggregate).

Subjects
--------
The same engine counts three *subjects*, each with its own total and dimensions
(``SUBJECTS``): cases (by month identified), anonymous refusals to enter the NRM
(``casework.refusals``, by the month recorded on them) and the coordinator's status
decisions (``referrals.decisions``, by month decided). Their margins share
``stat_margins`` (column ``subject``); the subject's total per month is the dimension named
like the subject ("cases", "refusals", "decisions") and is the locked margin of every
table of that subject. Negative decisions by reason are a part of the decisions: their
monthly totals are locked to the two "not recognised" rows of the decisions table.

Five more subjects of the rest of the NRM path (incoming reports, return plans,
reintegration measures, follow-up visits, guardian appointment delay) are declared in
``reports.nrm_path``: a ``Subject`` with a ``collect`` function (read in Python, counted
into ``stat_margins`` by ``_refresh_collected``) and its rows' labels. It registers a
dirty-month marker (``DIRTY_MARKERS``) and, for the guardian deadline that runs out with
time alone, the months to recount once a day (``DAILY_STALE``).

Freshness: casework must not import reports, so reports listens to the ORM instead. A
``before_flush`` listener notes, in the same transaction, the month of every case, case
code, refusal (or its codes), decision, referral or service record whose counted fields
change (``stat_dirty_months``). The
statistics page (and ``flask reports refresh-statistics``) recomputes just those months,
deleting their markers first, so a change committed meanwhile leaves a new marker and is
picked up next time. Bulk loads that bypass the ORM (``core.demo.generate_cases``' COPY)
must run ``flask reports refresh-statistics`` (a full rebuild) afterwards; a database with
no statistics built yet is rebuilt on the first visit.

A case counts in the month it was identified (the month it was opened when that is not
recorded); drafts do not count; erased cases keep their coded fields and do count.

Disclosure control: see ``reports.disclosure``. Each calendar year has one base table per
dimension (the dimension by the months of that year, margins locked to the table of cases
per month); every other view is a sum of base entries (``disclosure.combine``).
"""

from __future__ import annotations

import statistics as pystats
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Index,
    Integer,
    String,
    and_,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from casework.casefile import ServiceRecord, ServiceType
from casework.models import AGE_BANDS, Case, CaseCode, CaseStatus, NrmStatus
from casework.refusals import NrmRefusal, NrmRefusalCode
from core.db import UTCDateTime, db, utcnow
from core.models import AgencyType
from referrals.decisions import (
    Decision,
    DecisionOutcome,
    DecisionStage,
    NegativeReason,
    decision_durations,
    median_and_p90,
)
from referrals.models import Referral
from referrals.workflow import State
from reports import disclosure
from reports.disclosure import COUNT, TOTAL, CountTable, ProtectedTable

UNKNOWN = "unknown"
CASES = "cases"
REFUSALS = "refusals"
DECISIONS = "decisions"

# Statistics read cases by month identified.
Index("ix_cases_identified_on", Case.identified_on)
Index("ix_cases_created_at", Case.created_at)


class CaseCount(db.Model):
    """Cases per month and combination of the single-valued coded fields."""

    __tablename__ = "stat_case_counts"
    __table_args__ = (Index("ix_stat_case_counts_month", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    sex: Mapped[str] = mapped_column(String(40))
    age_band: Mapped[str] = mapped_column(String(40))
    minor: Mapped[str] = mapped_column(String(40))
    citizenship: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(40))
    agency_type: Mapped[str] = mapped_column(String(40))
    intake_channel: Mapped[str] = mapped_column(String(40))
    nrm_status: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)


class CaseCodeCount(db.Model):
    """Cases per month, form of exploitation and combination of the other coded fields."""

    __tablename__ = "stat_case_code_counts"
    __table_args__ = (Index("ix_stat_case_code_counts_month", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    exploitation_form: Mapped[str] = mapped_column(String(40))
    sex: Mapped[str] = mapped_column(String(40))
    age_band: Mapped[str] = mapped_column(String(40))
    minor: Mapped[str] = mapped_column(String(40))
    citizenship: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(40))
    agency_type: Mapped[str] = mapped_column(String(40))
    intake_channel: Mapped[str] = mapped_column(String(40))
    nrm_status: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)


class Margin(db.Model):
    """Items of a subject per month and code of one dimension (the subject's own name as the
    dimension: all of them)."""

    __tablename__ = "stat_margins"
    __table_args__ = (Index("ix_stat_margins_month", "month", "dimension"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What is counted: "cases", "refusals" or "decisions" (``SUBJECTS``).
    subject: Mapped[str] = mapped_column(String(20), default=CASES, server_default=CASES)
    month: Mapped[str] = mapped_column(String(7))
    dimension: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)


class ReferralCount(db.Model):
    """Referrals per month sent, service type, state and whole hours to respond."""

    __tablename__ = "stat_referral_counts"
    __table_args__ = (Index("ix_stat_referral_counts_month", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    service_type: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(40))
    response_hours: Mapped[int | None] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)


class DecisionCount(db.Model):
    """Status decisions per month decided, outcome, stage, negative reason (``none`` for a
    positive one) and whole days from identification to decision."""

    __tablename__ = "stat_decision_counts"
    __table_args__ = (Index("ix_stat_decision_counts_month", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    outcome: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40))
    reason_code: Mapped[str] = mapped_column(String(40))
    days: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)


class ServiceCount(db.Model):
    """Services delivered per month started and service type."""

    __tablename__ = "stat_service_counts"
    __table_args__ = (Index("ix_stat_service_counts_month", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    service_type: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)


class DirtyMonth(db.Model):
    """A month whose counts changed since they were aggregated (no unique key on purpose:
    two transactions may mark one month; the refresh reads them as a set)."""

    __tablename__ = "stat_dirty_months"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), index=True)


class Refresh(db.Model):
    """When the statistics were last rebuilt in full."""

    __tablename__ = "stat_refreshes"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Dimensions -------------------------------------------------------------------------------

SINGLE_DIMENSIONS = (
    "sex",
    "age_band",
    "minor",
    "citizenship",
    "region",
    "agency_type",
    "intake_channel",
    "nrm_status",
)
MULTI_DIMENSION = "exploitation_form"
DIMENSIONS = (MULTI_DIMENSION, *SINGLE_DIMENSIONS)
DIMENSION_LABELS = {
    "exploitation_form": _l("Form of exploitation"),
    "sex": _l("Sex"),
    "age_band": _l("Age at identification"),
    "minor": _l("Child at identification"),
    "citizenship": _l("Citizenship"),
    "region": _l("Region of identification"),
    "agency_type": _l("Identifying agency type"),
    "intake_channel": _l("Intake channel"),
    "nrm_status": _l("NRM status"),
}
GRAINS = ("month", "quarter", "year")
GRAIN_LABELS = {"month": _l("Month"), "quarter": _l("Quarter"), "year": _l("Year")}

# Refusals to enter the NRM: why, and the case's dimensions that a refusal records.
REFUSAL_DIMENSIONS = (
    "reason",
    "sex",
    "age_band",
    "minor",
    "citizenship",
    "region",
    "agency_type",
    "intake_channel",
    MULTI_DIMENSION,
)
REFUSAL_LABELS = {
    "reason": _l("Reason for refusal"),
    **{name: DIMENSION_LABELS[name] for name in REFUSAL_DIMENSIONS if name != "reason"},
}
# Status decisions: by outcome and stage (codes "<outcome>:<stage>"), and the negative ones
# by coded reason.
DECISION = "decision"
DECISION_REASON = "decision_reason"
DECISION_DIMENSIONS = (DECISION, DECISION_REASON)
DECISION_LABELS = {
    DECISION: _l("Decisions by outcome and stage"),
    DECISION_REASON: _l("Negative decisions by reason"),
}
NO_REASON = "none"
# The rows of the decisions table: short, so that charts do not cut them.
DECISION_ROW_LABELS = {
    "recognised:first": _l("Recognised, first decision"),
    "recognised:reconsideration": _l("Recognised on reconsideration"),
    "not_recognised:first": _l("Not recognised, first decision"),
    "not_recognised:reconsideration": _l("Not recognised on reconsideration"),
}


@dataclass(frozen=True)
class Subject:
    """What a family of tables counts, with its own total per month and dimensions.

    ``multi``: dimensions in which one item may count in several rows (their totals are
    not the subject's total, so they are not locked to it). ``part``: a dimension that
    counts only some items (negative decisions), with the rows of the ``DECISION`` table
    that add up to its totals.
    """

    name: str
    noun: object
    dimensions: tuple[str, ...]
    labels: dict
    multi: frozenset[str] = frozenset()
    part: tuple[str, tuple[str, ...]] | None = None
    # The title of a dimension's table ("%(dimension)s": its label), so that tables of two
    # subjects never share a title; None: the label alone.
    title_format: object | None = None
    # A subject counted in Python (``reports.nrm_path``): ``collect(months)`` returns the
    # (month, {dimension: code}) of every item counted in the months (all when None), and
    # ``row_labels[dimension]()`` the (code, label) rows of each dimension.
    collect: Callable[[list[str] | None], Iterable[tuple[str, dict[str, str]]]] | None = None
    row_labels: Mapping[str, Callable[[], list[tuple[str, str]]]] | None = None

    def title(self, dimension: str) -> str:
        label = str(self.labels[dimension])
        if self.title_format is None:
            return label
        return str(self.title_format) % {"dimension": label}


CASE_SUBJECT = Subject(
    CASES, _l("Cases"), DIMENSIONS, DIMENSION_LABELS, frozenset({MULTI_DIMENSION})
)
REFUSAL_SUBJECT = Subject(
    REFUSALS,
    _l("Refusals"),
    REFUSAL_DIMENSIONS,
    REFUSAL_LABELS,
    frozenset({MULTI_DIMENSION}),
    title_format=_l("Refusals: %(dimension)s"),
)
DECISION_SUBJECT = Subject(
    DECISIONS,
    _l("Decisions"),
    DECISION_DIMENSIONS,
    DECISION_LABELS,
    part=(
        DECISION_REASON,
        tuple(f"{DecisionOutcome.NOT_RECOGNISED.value}:{stage.value}" for stage in DecisionStage),
    ),
)
SUBJECTS = {subject.name: subject for subject in (CASE_SUBJECT, REFUSAL_SUBJECT, DECISION_SUBJECT)}


def _case_columns() -> dict[str, object]:
    """Return the SQL expression of each single-valued dimension (NULL becomes "unknown")."""
    from sqlalchemy import case as sql_case

    minor = func.coalesce(
        sql_case((Case.is_minor.is_(True), "yes"), (Case.is_minor.is_(False), "no")),
        UNKNOWN,
    )
    return {
        "sex": func.coalesce(Case.sex, UNKNOWN),
        "age_band": func.coalesce(Case.age_band, UNKNOWN),
        "minor": minor,
        "citizenship": func.coalesce(Case.citizenship, UNKNOWN),
        "region": func.coalesce(Case.identification_region, UNKNOWN),
        "agency_type": func.coalesce(Case.identifying_agency_type, UNKNOWN),
        "intake_channel": func.coalesce(Case.intake_channel, UNKNOWN),
        "nrm_status": func.coalesce(Case.nrm_status, UNKNOWN),
    }


def _month_of(expression, dialect: str):
    if dialect == "postgresql":
        return func.to_char(expression, "YYYY-MM")
    return func.strftime("%Y-%m", expression)


def _case_month(dialect: str):
    day = func.coalesce(Case.identified_on, func.date(Case.created_at))
    return _month_of(day, dialect)


def _month_bounds(month: str) -> tuple[date, date]:
    first = date(int(month[:4]), int(month[5:7]), 1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following


def _cases_in(months: Iterable[str]):
    """Return a sargable condition for the cases counted in the months."""
    parts = []
    for month in sorted(set(months)):
        first, following = _month_bounds(month)
        parts.append(and_(Case.identified_on >= first, Case.identified_on < following))
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(following, datetime.min.time(), tzinfo=UTC)
        parts.append(
            and_(Case.identified_on.is_(None), Case.created_at >= start, Case.created_at < end)
        )
    return or_(*parts)


# Refresh ----------------------------------------------------------------------------------


def refresh_statistics(months: Iterable[str] | None = None) -> int:
    """Recompute the counts of the months (all when None); return how many months changed.

    Does not commit: the CLI command or the view does.
    """
    session = db.session
    dialect = session.get_bind().dialect.name
    month_list = None if months is None else sorted(set(months))
    if month_list == []:
        return 0
    tables = (CaseCount, CaseCodeCount, Margin, ReferralCount, ServiceCount, DecisionCount)
    for model in tables:
        statement = delete(model)
        if month_list is not None:
            statement = statement.where(model.month.in_(month_list))
        session.execute(statement)

    columns = _case_columns()
    month = _case_month(dialect).label("month")
    counted = Case.status != CaseStatus.DRAFT.value
    where = counted if month_list is None else and_(counted, _cases_in(month_list))
    dims = [columns[name].label(name) for name in SINGLE_DIMENSIONS]
    grouped = select(month, *dims, func.count().label("count")).where(where)
    grouped = grouped.group_by(month, *[columns[name] for name in SINGLE_DIMENSIONS])
    session.execute(insert(CaseCount).from_select(["month", *SINGLE_DIMENSIONS, "count"], grouped))
    form = func.coalesce(CaseCode.code, UNKNOWN)
    coded = (
        select(month, form.label(MULTI_DIMENSION), *dims, func.count().label("count"))
        .select_from(Case)
        .outerjoin(
            CaseCode,
            and_(CaseCode.case_id == Case.id, CaseCode.list_name == MULTI_DIMENSION),
        )
        .where(where)
        .group_by(month, form, *[columns[name] for name in SINGLE_DIMENSIONS])
    )
    session.execute(
        insert(CaseCodeCount).from_select(
            ["month", MULTI_DIMENSION, *SINGLE_DIMENSIONS, "count"], coded
        )
    )
    stat_where = (
        (lambda model: True) if month_list is None else (lambda model: model.month.in_(month_list))
    )
    for name in SINGLE_DIMENSIONS:
        column = getattr(CaseCount, name)
        margin = (
            select(CaseCount.month, literal(name), column, func.sum(CaseCount.count))
            .where(stat_where(CaseCount))
            .group_by(CaseCount.month, column)
        )
        session.execute(insert(Margin).from_select(["month", "dimension", "code", "count"], margin))
    form_column = getattr(CaseCodeCount, MULTI_DIMENSION)
    session.execute(
        insert(Margin).from_select(
            ["month", "dimension", "code", "count"],
            select(
                CaseCodeCount.month,
                literal(MULTI_DIMENSION),
                form_column,
                func.sum(CaseCodeCount.count),
            )
            .where(stat_where(CaseCodeCount))
            .group_by(CaseCodeCount.month, form_column),
        )
    )
    session.execute(
        insert(Margin).from_select(
            ["month", "dimension", "code", "count"],
            select(CaseCount.month, literal(CASES), literal(COUNT), func.sum(CaseCount.count))
            .where(stat_where(CaseCount))
            .group_by(CaseCount.month),
        )
    )
    _refresh_refusals(month_list, dialect)
    _refresh_decisions(month_list)
    for subject in SUBJECTS.values():
        if subject.collect is not None:
            _refresh_collected(subject, month_list)
    _refresh_referrals(month_list, dialect)
    _refresh_services(month_list, dialect)
    if month_list is None:
        row = session.get(Refresh, "all") or Refresh(name="all")
        row.refreshed_at = utcnow()
        session.add(row)
        session.execute(delete(DirtyMonth))
    session.flush()
    return len(month_list) if month_list is not None else -1


def _refusal_columns() -> dict[str, object]:
    """Return the SQL expression of each single-valued refusal dimension (as for cases)."""
    from sqlalchemy import case as sql_case

    minor = func.coalesce(
        sql_case((NrmRefusal.is_minor.is_(True), "yes"), (NrmRefusal.is_minor.is_(False), "no")),
        UNKNOWN,
    )
    return {
        "reason": func.coalesce(NrmRefusal.refusal_reason, UNKNOWN),
        "sex": func.coalesce(NrmRefusal.sex, UNKNOWN),
        "age_band": func.coalesce(NrmRefusal.age_band, UNKNOWN),
        "minor": minor,
        "citizenship": func.coalesce(NrmRefusal.citizenship, UNKNOWN),
        "region": func.coalesce(NrmRefusal.identification_region, UNKNOWN),
        "agency_type": func.coalesce(NrmRefusal.identifying_agency_type, UNKNOWN),
        "intake_channel": func.coalesce(NrmRefusal.intake_channel, UNKNOWN),
    }


def _refresh_refusals(months: list[str] | None, dialect: str) -> None:
    """Count the refusals of the months into ``stat_margins`` (subject "refusals")."""
    month = _month_of(NrmRefusal.month, dialect)
    where = (
        NrmRefusal.month.is_not(None)
        if months is None
        else NrmRefusal.month.in_([_month_bounds(m)[0] for m in months])
    )
    target = ["month", "subject", "dimension", "code", "count"]
    for name, column in _refusal_columns().items():
        grouped = (
            select(month, literal(REFUSALS), literal(name), column, func.count())
            .where(where)
            .group_by(month, column)
        )
        db.session.execute(insert(Margin).from_select(target, grouped))
    form = func.coalesce(NrmRefusalCode.code, UNKNOWN)
    coded = (
        select(month, literal(REFUSALS), literal(MULTI_DIMENSION), form, func.count())
        .select_from(NrmRefusal)
        .outerjoin(
            NrmRefusalCode,
            and_(
                NrmRefusalCode.refusal_id == NrmRefusal.id,
                NrmRefusalCode.list_name == MULTI_DIMENSION,
            ),
        )
        .where(where)
        .group_by(month, form)
    )
    db.session.execute(insert(Margin).from_select(target, coded))
    total = (
        select(month, literal(REFUSALS), literal(REFUSALS), literal(COUNT), func.count())
        .where(where)
        .group_by(month)
    )
    db.session.execute(insert(Margin).from_select(target, total))


def _refresh_decisions(months: list[str] | None) -> None:
    """Count the status decisions of the months (by month decided) and their margins."""
    if months is None:
        rows = decision_durations()
    else:
        rows = []
        for month in months:
            first, following = _month_bounds(month)
            rows += decision_durations(first, following - timedelta(days=1))
    counts: dict[tuple[str, str, str, str, int], int] = defaultdict(int)
    margins: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        month = row.decided_on.strftime("%Y-%m")
        reason = row.reason_code or NO_REASON
        counts[(month, row.outcome, row.stage, reason, max(0, row.days))] += 1
        margins[(month, DECISIONS, COUNT)] += 1
        margins[(month, DECISION, f"{row.outcome}:{row.stage}")] += 1
        if row.outcome == DecisionOutcome.NOT_RECOGNISED.value:
            margins[(month, DECISION_REASON, reason)] += 1
    if counts:
        db.session.execute(
            insert(DecisionCount),
            [
                {"month": m, "outcome": o, "stage": st, "reason_code": r, "days": d, "count": n}
                for (m, o, st, r, d), n in counts.items()
            ],
        )
        db.session.execute(
            insert(Margin),
            [
                {"month": m, "subject": DECISIONS, "dimension": dim, "code": code, "count": n}
                for (m, dim, code), n in margins.items()
            ],
        )


def _refresh_collected(subject: Subject, months: list[str] | None) -> None:
    """Count the items of a subject counted in Python into ``stat_margins``."""
    margins: dict[tuple[str, str, str], int] = defaultdict(int)
    for month, codes in subject.collect(months):
        if months is not None and month not in months:
            continue
        margins[(month, subject.name, COUNT)] += 1
        for dimension in subject.dimensions:
            margins[(month, dimension, codes.get(dimension) or UNKNOWN)] += 1
    if margins:
        db.session.execute(
            insert(Margin),
            [
                {"month": m, "subject": subject.name, "dimension": d, "code": c, "count": n}
                for (m, d, c), n in margins.items()
            ],
        )


def _refresh_referrals(months: list[str] | None, dialect: str) -> None:
    query = select(
        Referral.sent_at, Referral.responded_at, Referral.service_type, Referral.state
    ).where(Referral.sent_at.is_not(None))
    if months is not None:
        ranges = []
        for month in months:
            first, following = _month_bounds(month)
            ranges.append(
                and_(
                    Referral.sent_at >= datetime.combine(first, datetime.min.time(), tzinfo=UTC),
                    Referral.sent_at < datetime.combine(following, datetime.min.time(), tzinfo=UTC),
                )
            )
        query = query.where(or_(*ranges))
    counts: dict[tuple, int] = defaultdict(int)
    for sent_at, responded_at, service_type, state in db.session.execute(query):
        hours = None
        if responded_at is not None:
            hours = max(0, int((responded_at - sent_at).total_seconds() // 3600))
        counts[(sent_at.strftime("%Y-%m"), service_type, state, hours)] += 1
    if counts:
        db.session.execute(
            insert(ReferralCount),
            [
                {
                    "month": m,
                    "service_type": s,
                    "state": st,
                    "response_hours": h,
                    "count": n,
                }
                for (m, s, st, h), n in counts.items()
            ],
        )


def _refresh_services(months: list[str] | None, dialect: str) -> None:
    month = _month_of(ServiceRecord.started_on, dialect)
    query = select(month, ServiceRecord.service_type, func.count()).group_by(
        month, ServiceRecord.service_type
    )
    if months is not None:
        ranges = []
        for value in months:
            first, following = _month_bounds(value)
            ranges.append(
                and_(ServiceRecord.started_on >= first, ServiceRecord.started_on < following)
            )
        query = query.where(or_(*ranges))
    db.session.execute(insert(ServiceCount).from_select(["month", "service_type", "count"], query))


def refresh_if_stale() -> int:
    """Bring the counts up to date: rebuild when never built, else redo the marked months."""
    session = db.session
    if session.get(Refresh, "all") is None:
        refresh_statistics(None)
        return -1
    # Delete the markers first: a change committed after this statement leaves a new one.
    months = set(session.scalars(delete(DirtyMonth).returning(DirtyMonth.month)).all())
    if DAILY_STALE:
        from casework.models import local_today

        daily = session.get(Refresh, "daily")
        today = local_today()
        if daily is None or daily.refreshed_at.date() != today:
            for stale in DAILY_STALE:
                months |= stale()
            daily = daily or Refresh(name="daily")
            daily.refreshed_at = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
            session.add(daily)
    return refresh_statistics(months) if months else 0


# Marking months dirty ---------------------------------------------------------------------

_CASE_FIELDS = (
    "status",
    "sex",
    "age_band",
    "is_minor",
    "citizenship",
    "identification_region",
    "identified_on",
    "identifying_agency_type",
    "intake_channel",
    "nrm_status",
)


_DECISION_FIELDS = ("outcome", "decided_on", "reason_code", "stage", "case_id")


def _month_text(value) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m")


def _case_months(session: Session, case: Case, state) -> set[str]:
    months = set()
    history = state.attrs.identified_on.history
    old = list(history.deleted)
    if history.added and not old and state.persistent:
        # An expired attribute set anew has no old value in its history: read the row.
        old = [session.scalar(select(Case.identified_on).where(Case.id == case.id))]
    for value in (*old, case.identified_on):
        months.add(_month_text(value))
    if case.identified_on is None or None in old:
        months.add(_month_text(case.created_at or utcnow()))
    return months


def _changed(state, names: Iterable[str]) -> bool:
    return any(state.attrs[name].history.has_changes() for name in names)


# Other modules' markers (``reports.nrm_path``): ``marker(session, obj)`` returns the months
# an object's change makes stale (an empty set for objects it does not count).
DIRTY_MARKERS: list[Callable[[Session, object], set[str | None]]] = []
# Months stale because time passed (a deadline ran out), asked once a day.
DAILY_STALE: list[Callable[[], set[str]]] = []


def _note_dirty_months(session: Session, _context, _instances) -> None:
    months: set[str | None] = set()
    with session.no_autoflush:
        for obj in (*session.new, *session.dirty, *session.deleted):
            if isinstance(obj, DirtyMonth):
                continue
            for marker in DIRTY_MARKERS:
                months |= marker(session, obj)
            if isinstance(obj, Case):
                state = inspect(obj)
                if obj in session.new or obj in session.deleted or _changed(state, _CASE_FIELDS):
                    months |= _case_months(session, obj, state)
                if state.persistent and _changed(state, ("identified_on",)):
                    # The days from identification to its decisions change with it.
                    decided = select(Decision.decided_on).where(Decision.case_id == obj.id)
                    months |= {_month_text(day) for day in session.scalars(decided)}
            elif isinstance(obj, CaseCode):
                case = obj.case or session.get(Case, obj.case_id)
                if case is not None:
                    months |= _case_months(session, case, inspect(case))
            elif isinstance(obj, NrmRefusal):
                state = inspect(obj)
                for value in (*state.attrs.month.history.deleted, obj.month):
                    months.add(_month_text(value))
            elif isinstance(obj, NrmRefusalCode):
                refusal = obj.refusal or session.get(NrmRefusal, obj.refusal_id)
                if refusal is not None:
                    months.add(_month_text(refusal.month))
            elif isinstance(obj, Decision):
                state = inspect(obj)
                if (
                    obj in session.new
                    or obj in session.deleted
                    or _changed(state, _DECISION_FIELDS)
                ):
                    for value in (*state.attrs.decided_on.history.deleted, obj.decided_on):
                        months.add(_month_text(value))
            elif isinstance(obj, Referral):
                state = inspect(obj)
                if obj.sent_at is not None and (
                    obj in session.new or _changed(state, ("state", "responded_at", "sent_at"))
                ):
                    months.add(_month_text(obj.sent_at))
            elif isinstance(obj, ServiceRecord):
                state = inspect(obj)
                history = state.attrs.started_on.history
                for value in (*history.deleted, obj.started_on):
                    months.add(_month_text(value))
    for month in sorted(m for m in months if m):
        session.add(DirtyMonth(month=month))


if not event.contains(Session, "before_flush", _note_dirty_months):
    event.listen(Session, "before_flush", _note_dirty_months)


# Reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole calendar years from ``first`` to ``last``, shown by month, quarter or year."""

    first: int
    last: int
    grain: str = "year"

    @property
    def years(self) -> list[int]:
        return list(range(self.first, self.last + 1))

    @property
    def months(self) -> list[str]:
        return [f"{year}-{m:02d}" for year in self.years for m in range(1, 13)]

    def columns(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Return the (code, label, [(year, month code or TOTAL)]) columns of the grain."""
        columns = []
        for year in self.years:
            key = str(year)
            if self.grain == "year":
                columns.append((key, key, [(key, TOTAL)]))
            elif self.grain == "quarter":
                for quarter in range(4):
                    months = [f"{year}-{quarter * 3 + m:02d}" for m in (1, 2, 3)]
                    columns.append(
                        (
                            f"{year}-Q{quarter + 1}",
                            f"{year} Q{quarter + 1}",
                            [(key, m) for m in months],
                        )
                    )
            else:
                for m in range(1, 13):
                    code = f"{year}-{m:02d}"
                    columns.append((code, code, [(key, code)]))
        return columns


def available_years() -> list[int]:
    """Return the calendar years that have counted cases, oldest first."""
    low, high = db.session.execute(select(func.min(Margin.month), func.max(Margin.month))).one()
    if low is None:
        return [date.today().year]
    return list(range(int(low[:4]), int(high[:4]) + 1))


def disclosure_k() -> int:
    return disclosure.configured_k(current_app.config)


def _rows(dimension: str, present: Iterable[str]) -> list[tuple[str, str]]:
    """Return the (code, label) rows of a dimension in the reader's language."""
    from casework.intake import NRM_LABELS
    from casework.reference import collation_key, labels_of

    present = set(present)
    if dimension in (
        "sex",
        "region",
        "exploitation_form",
        "citizenship",
        "intake_channel",
        "reason",
    ):
        list_name = {"citizenship": "country", "reason": "refusal_reason"}.get(dimension, dimension)
        labels = labels_of(list_name)
        if dimension == "citizenship":
            rows = sorted(
                ((code, labels.get(code, code)) for code in present if code != UNKNOWN),
                key=lambda row: collation_key(row[1]),
            )
        else:
            rows = list(labels.items())
            rows += [(code, code) for code in sorted(present - set(labels) - {UNKNOWN})]
    elif dimension == "age_band":
        rows = [(code, code) for _lowest, code in reversed(AGE_BANDS)]
    elif dimension == "minor":
        rows = [("yes", str(_l("Yes"))), ("no", str(_l("No")))]
    elif dimension == "agency_type":
        rows = [(member.value, member.label) for member in AgencyType]
    elif dimension == "nrm_status":
        rows = [(member.value, str(NRM_LABELS[member])) for member in NrmStatus]
    elif dimension == DECISION:
        rows = list(DECISION_ROW_LABELS.items())
    elif dimension == DECISION_REASON:
        rows = [(member.value, member.label) for member in NegativeReason]
    else:
        raise KeyError(dimension)
    if UNKNOWN in present:
        rows.append((UNKNOWN, str(_l("Not recorded"))))
    return [(code, str(label)) for code, label in rows]


class Statistics:
    """The protected tables of one period and subject, read from the pre-aggregated counts.

    ``subject`` (``SUBJECTS``): cases by default, or refusals, or status decisions; each
    has its own total per month, the locked margin of its tables.
    """

    def __init__(
        self, period: Period, k: int | None = None, subject: Subject | str = CASE_SUBJECT
    ) -> None:
        self.period = period
        self.k = k or disclosure_k()
        self.subject = SUBJECTS[subject] if isinstance(subject, str) else subject
        self._margins: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        self._present: dict[str, set[str]] = defaultdict(set)
        query = select(Margin.dimension, Margin.code, Margin.month, Margin.count).where(
            Margin.subject == self.subject.name,
            Margin.month >= f"{period.first}-01",
            Margin.month <= f"{period.last}-12",
        )
        for dimension, code, month, count in db.session.execute(query):
            self._margins[dimension][(code, month)] = count
            self._present[dimension].add(code)
        self._month_tables: dict[int, ProtectedTable] = {}
        self._bases: dict[tuple[str, int], ProtectedTable] = {}

    # Base tables of one year ----------------------------------------------------------

    def totals_by_month(self, year: int) -> ProtectedTable:
        """Return the protected table of the subject per month of the year (cases, refusals
        or decisions): the locked margins of its tables."""
        if year not in self._month_tables:
            months = [f"{year}-{m:02d}" for m in range(1, 13)]
            total = self._margins[self.subject.name]
            counts = {(m, COUNT): total.get((COUNT, m), 0) for m in months}
            noun = str(self.subject.noun)
            table = CountTable(
                title=noun,
                row_dimension=str(_l("Month")),
                rows=[(m, m) for m in months],
                counts=counts,
                columns=[(COUNT, noun)],
            )
            self._month_tables[year] = disclosure.protect(table, self.k)
        return self._month_tables[year]

    cases_by_month = totals_by_month

    def rows(self, dimension: str) -> list[tuple[str, str]]:
        """Return the (code, label) rows of a dimension of the subject."""
        present = self._present[dimension]
        if self.subject.row_labels is None or dimension not in self.subject.row_labels:
            return _rows(dimension, present)
        rows = [(code, str(label)) for code, label in self.subject.row_labels[dimension]()]
        known = {code for code, _label in rows}
        rows += [(code, code) for code in sorted(present - known - {UNKNOWN})]
        if UNKNOWN in present and UNKNOWN not in known:
            rows.append((UNKNOWN, str(_l("Not recorded"))))
        return rows

    def base(self, dimension: str, year: int) -> ProtectedTable:
        """Return the dimension by the months of the year, protected (the base table)."""
        key = (dimension, year)
        if key in self._bases:
            return self._bases[key]
        if dimension not in self.subject.dimensions:
            raise KeyError(dimension)
        months = [f"{year}-{m:02d}" for m in range(1, 13)]
        rows = self.rows(dimension)
        margins = self._margins[dimension]
        counts = {(code, m): margins.get((code, m), 0) for code, _label in rows for m in months}
        population = self.year_population(year)
        locked: dict[tuple[str, str], bool] = {}
        part = self.subject.part
        if part is not None and dimension == part[0]:
            # A part (negative decisions): its totals are sums of rows of the decisions
            # table, published only where every one of those rows is.
            whole = self.base(DECISION, year)
            population = sum(margins.get((code, m), 0) for code, _label in rows for m in months)
            if whole.too_few:
                population = 0  # the decisions table is withheld as a whole: so is its part
            for column in (*months, TOTAL):
                locked[(TOTAL, column)] = all(
                    whole.value(code, column) is not None for code in part[1]
                )
        elif dimension not in self.subject.multi:
            # The subject per month: the same numbers in every dimension's table.
            month_table = self.totals_by_month(year)
            for m in months:
                locked[(TOTAL, m)] = month_table.value(m, COUNT) is not None
            locked[(TOTAL, TOTAL)] = month_table.value(TOTAL, COUNT) is not None
        label = str(self.subject.labels[dimension])
        table = CountTable(
            title=self.subject.title(dimension),
            row_dimension=label,
            rows=rows,
            counts=counts,
            column_dimension=str(_l("Month")),
            columns=[(m, m) for m in months],
            population=population,
            locked=locked,
        )
        self._bases[key] = disclosure.protect(table, self.k)
        return self._bases[key]

    # What the pages show ---------------------------------------------------------------

    def dimension_table(self, dimension: str) -> ProtectedTable:
        """Return the dimension by the periods of the grain, over the whole range."""
        parts = {str(year): self.base(dimension, year) for year in self.period.years}
        return disclosure.combine(
            self.subject.title(dimension),
            parts,
            self.period.columns(),
            k=self.k,
            column_dimension=str(GRAIN_LABELS[self.period.grain]),
        )

    def crosstab(self, first: str, second: str) -> ProtectedTable:
        """Return the cross-tab of two dimensions over the range's whole years."""
        if self.subject is not CASE_SUBJECT:
            raise KeyError((first, second))  # cross-tabs are of cases only
        if first == second or first not in DIMENSIONS or second not in DIMENSIONS:
            raise KeyError((first, second))
        parts = {str(year): self._crosstab_year(first, second, year) for year in self.period.years}
        columns = parts[str(self.period.first)].columns
        groups = [(code, label, [(key, code) for key in parts]) for code, label in columns]
        return disclosure.combine(
            f"{DIMENSION_LABELS[first]} × {DIMENSION_LABELS[second]}",
            parts,
            groups,
            k=self.k,
            row_dimension=str(DIMENSION_LABELS[first]),
            column_dimension=str(DIMENSION_LABELS[second]),
        )

    def _crosstab_year(self, first: str, second: str, year: int) -> ProtectedTable:
        multi = MULTI_DIMENSION in (first, second)
        model = CaseCodeCount if multi else CaseCount
        a, b = getattr(model, first), getattr(model, second)
        query = (
            select(a, b, func.sum(model.count))
            .where(model.month >= f"{year}-01", model.month <= f"{year}-12")
            .group_by(a, b)
        )
        counts = {(r, c): int(n) for r, c, n in db.session.execute(query)}
        rows = _rows(first, self._present[first])
        columns = _rows(second, self._present[second])
        first_base, second_base = self.base(first, year), self.base(second, year)
        locked: dict[tuple[str, str], bool] = {}
        # Margins that the dimension tables publish keep their status here. With a
        # multi-valued dimension only its own margins are the same numbers.
        if not multi or first == MULTI_DIMENSION:
            for code, _label in rows:
                locked[(code, TOTAL)] = first_base.value(code, TOTAL) is not None
        if not multi or second == MULTI_DIMENSION:
            for code, _label in columns:
                locked[(TOTAL, code)] = second_base.value(code, TOTAL) is not None
        grand = first_base if first == MULTI_DIMENSION else second_base
        locked[(TOTAL, TOTAL)] = grand.value(TOTAL, TOTAL) is not None
        table = CountTable(
            title=f"{DIMENSION_LABELS[first]} × {DIMENSION_LABELS[second]}",
            row_dimension=str(DIMENSION_LABELS[first]),
            rows=rows,
            counts=counts,
            column_dimension=str(DIMENSION_LABELS[second]),
            columns=columns,
            population=self.year_population(year),
            locked=locked,
        )
        return disclosure.protect(table, self.k)

    def year_population(self, year: int) -> int:
        total = self._margins[self.subject.name]
        return sum(total.get((COUNT, f"{year}-{m:02d}"), 0) for m in range(1, 13))

    def decision_times(self) -> list[dict]:
        """Return the days from identification to decision per year and outcome (and all
        outcomes) that had decisions: their number, median and 90th percentile. A median
        and percentile are published over at least k decisions only ("<k" otherwise); the
        number shown is the decisions table's (protected) total of the same year and rows.

        Durations are whole days from the identification day to the decision day, as
        ``referrals.decisions.decision_durations`` computes them, read from their
        aggregate (``stat_decision_counts``); ``median_and_p90`` interpolates."""
        query = select(
            DecisionCount.month, DecisionCount.outcome, DecisionCount.days, DecisionCount.count
        ).where(
            DecisionCount.month >= f"{self.period.first}-01",
            DecisionCount.month <= f"{self.period.last}-12",
        )
        days: dict[tuple[int, str | None], list[int]] = defaultdict(list)
        for month, outcome, value, count in db.session.execute(query):
            for key in ((int(month[:4]), outcome), (int(month[:4]), None)):
                days[key].extend([value] * count)
        rows = []
        for year in self.period.years:
            decisions = self.base(DECISION, year) if self.subject is DECISION_SUBJECT else None
            for outcome in (None, *DecisionOutcome):
                values = days.get((year, outcome.value if outcome else None), [])
                if not values:
                    continue  # no decision: no row (the decisions table shows the 0)
                if len(values) >= self.k:
                    median, p90 = median_and_p90(values)
                    shown = (f"{median:g}", f"{p90:g}")
                else:
                    shown = (f"<{self.k}", f"<{self.k}")
                count = "x"
                if decisions is not None:
                    count = self._decisions_shown(decisions, year, outcome)
                rows.append(
                    {
                        "year": year,
                        "outcome": outcome.value if outcome else TOTAL,
                        "label": outcome.label if outcome else str(_l("All decisions")),
                        "decisions": count,
                        "median": shown[0],
                        "p90": shown[1],
                    }
                )
        return rows

    def _decisions_shown(
        self, table: ProtectedTable, year: int, outcome: DecisionOutcome | None
    ) -> str:
        """Return the published count of the year's decisions (of one outcome): a row total
        of the decisions table, or the sum of the outcome's rows when both are published."""
        if table.too_few:
            # Withheld as a whole: for too few decisions, or because it could not be protected.
            return f"<{self.k}" if self.year_population(year) < self.k else "x"
        if outcome is None:
            return table.grand_total
        codes = [f"{outcome.value}:{stage.value}" for stage in DecisionStage]
        values = [table.value(code, TOTAL) for code in codes]
        if any(value is None for value in values):
            return "x"
        return str(sum(values))

    def services_table(self) -> ProtectedTable:
        """Return services delivered by type and year (each year protected on its own)."""
        query = (
            select(ServiceCount.service_type, ServiceCount.month, func.sum(ServiceCount.count))
            .where(
                ServiceCount.month >= f"{self.period.first}-01",
                ServiceCount.month <= f"{self.period.last}-12",
            )
            .group_by(ServiceCount.service_type, ServiceCount.month)
        )
        by_year: dict[int, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        for service_type, month, count in db.session.execute(query):
            by_year[int(month[:4])][(service_type, COUNT)] += int(count)
        rows = [(member.value, member.label) for member in ServiceType]
        parts = {}
        for year in self.period.years:
            table = CountTable(
                title=str(_l("Services delivered")),
                row_dimension=str(_l("Service")),
                rows=rows,
                counts=by_year[year],
                columns=[(COUNT, str(_l("Services")))],
            )
            parts[str(year)] = disclosure.protect(table, self.k)
        groups = [(str(y), str(y), [(str(y), COUNT)]) for y in self.period.years]
        return disclosure.combine(
            str(_l("Services delivered")),
            parts,
            groups,
            k=self.k,
            column_dimension=str(_l("Year")),
        )

    def referral_outcomes(self) -> list[dict]:
        """Return per service type: referrals sent, acceptance, decline and expiry rates,
        median hours to respond. A figure is published over at least k referrals only, and
        a rate only when its own count is 0 or at least k, in every year of the range, and
        when the referrals it leaves unaccounted for are too (``_complement_rates``). A
        published rate gives back its exact count; that count is one the rule would publish
        anyway."""
        query = select(
            ReferralCount.month,
            ReferralCount.service_type,
            ReferralCount.state,
            ReferralCount.response_hours,
            ReferralCount.count,
        ).where(
            ReferralCount.month >= f"{self.period.first}-01",
            ReferralCount.month <= f"{self.period.last}-12",
        )
        sent: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        outcome: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        hours: dict[str, list[int]] = defaultdict(list)
        accepted_states = {State.ACCEPTED, State.IN_PROGRESS, State.COMPLETED}
        for month, service_type, state, response_hours, count in db.session.execute(query):
            year = int(month[:4])
            sent[service_type][year] += count
            kind = (
                "accepted"
                if state in accepted_states
                else state
                if state in (State.DECLINED, State.EXPIRED)
                else None
            )
            if kind is not None:
                outcome[(service_type, kind)][year] += count
            if response_hours is not None:
                hours[service_type].extend([response_hours] * count)
        rows = []
        for member in ServiceType:
            code = member.value
            years = sent.get(code, {})
            total = sum(years.values())
            if not total:
                continue
            row = {"code": code, "label": member.label, "sent": self._safe_sum(years)}
            publishable = row["sent"] != f"<{self.k}" and row["sent"] != "x"
            kinds = ("accepted", "declined", "expired")
            counts = {kind: outcome.get((code, kind), {}) for kind in kinds}
            shown = {
                kind
                for kind in kinds
                if publishable and self._safe_sum(counts[kind]) not in (f"<{self.k}", "x")
            }
            shown = self._complement_rates(years, counts, shown)
            for kind in kinds:
                row[kind] = (
                    f"{100 * sum(counts[kind].values()) / total:.0f}%" if kind in shown else "x"
                )
            answered = hours.get(code, [])
            row["median_hours"] = (
                f"{pystats.median(answered):g}" if len(answered) >= self.k else f"<{self.k}"
            )
            rows.append(row)
        return rows

    def _complement_rates(
        self, sent: dict[int, int], counts: dict[str, dict[int, int]], shown: set[str]
    ) -> set[str]:
        """Hide more rates until what is not shown cannot be worked out as a small count.

        The referrals sent minus the published outcomes is the sum of the hidden outcomes
        and of the referrals in no outcome yet (in progress, cancelled): in every year it
        must be 0 or at least k, or it would be a small cell given back by subtraction.
        The smallest published outcome is hidden next, as complementary suppression does.
        """
        shown = set(shown)
        while shown:
            small = [
                year
                for year in self.period.years
                if 0 < sent.get(year, 0) - sum(counts[k].get(year, 0) for k in shown) < self.k
            ]
            if not small:
                break
            # Only an outcome with referrals in such a year changes its remainder; of those,
            # hide the smallest.
            candidates = [kind for kind in shown if any(counts[kind].get(y) for y in small)]
            if not candidates:
                break
            shown.discard(min(candidates, key=lambda kind: (sum(counts[kind].values()), kind)))
        return shown

    def _safe_sum(self, by_year: dict[int, int]) -> str:
        values = [by_year.get(year, 0) for year in self.period.years]
        if any(0 < value < self.k for value in values):
            return f"<{self.k}" if 0 < sum(values) < self.k else "x"
        return str(sum(values))


# CLI ----------------------------------------------------------------------------------------

cli = AppGroup("reports", help="Statistics and reports.")


@cli.command("refresh-statistics")
@click.option("--full/--changed", default=True, help="Rebuild everything, or the marked months.")
def refresh_command(full: bool) -> None:
    """Recompute the pre-aggregated statistics (after a bulk load, or from cron)."""
    if full:
        refresh_statistics(None)
        click.echo("statistics rebuilt")
    else:
        changed = refresh_if_stale()
        click.echo(f"statistics refreshed ({changed} months)")
    db.session.commit()


# The subjects of the rest of the NRM path register themselves (subjects, markers).
from reports import nrm_path  # noqa: E402, F401
