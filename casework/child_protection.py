"""The child path: a minor's guardian appointment, best-interests determination (BID), family
tracing and family assessment, the child-protection agency's involvement, and the check that
blocks return, transfer and closure until a BID (and for a return a family assessment that
is not "unsafe") is recorded.

Models and services live together here, as in ``casework.supervision``: services take model
objects and plain data, flush, audit (field names only) and add a timeline event, and never
commit. Every name and free text is encrypted under the case's data key; the codes (role,
body, options, decision, results, outcomes) stay in clear for statistics.

Detention is never an option of a best-interests determination: no enum member, no form
choice and no CHECK constraint admits it.

Records are added, not edited (a later appointment, determination or assessment supersedes
the earlier one, and the history stays readable); only a tracing request's result is
updated, under optimistic locking.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    and_,
    exists,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework import models as case_models
from casework.models import Case, CaseRecord, CaseStatus
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.working_days import add_working_days, latest_start_overdue_on, working_days_between

if TYPE_CHECKING:
    from core.models import User

DEFAULT_GUARDIAN_DAYS = 15
DEFAULT_GUARDIAN_WARNING_DAYS = 3
PURPOSES = ("return", "transfer", "closure")
# The agency type that must be involved in every minor's case.
CHILD_PROTECTION_TYPE = "child_protection"
# Referral states in which the child-protection agency counts as involved.
INVOLVING_REFERRAL_STATES = ("sent", "accepted", "in_progress")
# Transfer states in which the receiving child-protection agency counts as involved.
INVOLVING_TRANSFER_STATES = ("requested", "approved")


class _Coded(enum.StrEnum):
    """A coded value that knows its translated label (``LABELS`` below the classes)."""

    @property
    def label(self) -> str:
        return str(LABELS[type(self)][self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        return [(member.value, LABELS[cls][member]) for member in cls]


class GuardianRole(_Coded):
    PARENT = "parent"
    RELATIVE = "relative"
    STATE_GUARDIAN = "state_guardian"
    LEGAL_REPRESENTATIVE = "legal_representative"
    OTHER = "other"


class AppointingBody(_Coded):
    GUARDIANSHIP_AUTHORITY = "guardianship_authority"
    COURT = "court"
    CHILD_PROTECTION_AGENCY = "child_protection_agency"
    OTHER = "other"


class DecidingBody(_Coded):
    CHILD_PROTECTION_AGENCY = "child_protection_agency"
    GUARDIANSHIP_AUTHORITY = "guardianship_authority"
    MULTIDISCIPLINARY_PANEL = "multidisciplinary_panel"
    COURT = "court"
    OTHER = "other"


class BidOption(_Coded):
    """What a best-interests determination may weigh and decide. Never detention."""

    REUNIFICATION_ORIGIN = "reunification_origin"
    REUNIFICATION_AZERBAIJAN = "reunification_azerbaijan"
    FOSTER_KINSHIP_CARE = "foster_kinship_care"
    RESIDENTIAL_CARE = "residential_care"
    LOCAL_INTEGRATION = "local_integration"
    THIRD_COUNTRY = "third_country"


class HeardHow(_Coded):
    INTERVIEW = "interview"
    WITH_PSYCHOLOGIST = "with_psychologist"
    IN_WRITING = "in_writing"
    THROUGH_REPRESENTATIVE = "through_representative"


class Tracer(_Coded):
    ISS = "iss"
    IOM = "iom"
    CONSULATE = "consulate"
    POLICE = "police"
    CHILD_PROTECTION_AGENCY = "child_protection_agency"
    NGO = "ngo"
    OTHER = "other"


class TracingResult(_Coded):
    ONGOING = "ongoing"
    FOUND = "found"
    NOT_FOUND = "not_found"


class Assessor(_Coded):
    CHILD_PROTECTION_AGENCY = "child_protection_agency"
    GUARDIANSHIP_AUTHORITY = "guardianship_authority"
    SOCIAL_WORKER = "social_worker"
    IOM = "iom"
    ISS = "iss"
    CONSULATE = "consulate"
    OTHER = "other"


class AssessmentOutcome(_Coded):
    SAFE = "safe"
    NEEDS_SUPPORT = "needs_support"
    UNSAFE = "unsafe"


LABELS: dict[type, dict[Any, Any]] = {
    GuardianRole: {
        GuardianRole.PARENT: _l("Parent"),
        GuardianRole.RELATIVE: _l("Relative"),
        GuardianRole.STATE_GUARDIAN: _l("State guardian (guardianship authority)"),
        GuardianRole.LEGAL_REPRESENTATIVE: _l("Legal representative"),
        GuardianRole.OTHER: _l("Other"),
    },
    AppointingBody: {
        AppointingBody.GUARDIANSHIP_AUTHORITY: _l("Guardianship and custody authority"),
        AppointingBody.COURT: _l("Court"),
        AppointingBody.CHILD_PROTECTION_AGENCY: _l("Child-protection agency"),
        AppointingBody.OTHER: _l("Other"),
    },
    DecidingBody: {
        DecidingBody.CHILD_PROTECTION_AGENCY: _l("Child-protection agency"),
        DecidingBody.GUARDIANSHIP_AUTHORITY: _l("Guardianship and custody authority"),
        DecidingBody.MULTIDISCIPLINARY_PANEL: _l("Multidisciplinary best-interests panel"),
        DecidingBody.COURT: _l("Court"),
        DecidingBody.OTHER: _l("Other"),
    },
    BidOption: {
        BidOption.REUNIFICATION_ORIGIN: _l("Family reunification in the country of origin"),
        BidOption.REUNIFICATION_AZERBAIJAN: _l("Family reunification in Azerbaijan"),
        BidOption.FOSTER_KINSHIP_CARE: _l("Foster or kinship care"),
        BidOption.RESIDENTIAL_CARE: _l("Residential care or shelter"),
        BidOption.LOCAL_INTEGRATION: _l("Local integration"),
        BidOption.THIRD_COUNTRY: _l("Third-country solution"),
    },
    HeardHow: {
        HeardHow.INTERVIEW: _l("Child-friendly interview"),
        HeardHow.WITH_PSYCHOLOGIST: _l("With a psychologist present"),
        HeardHow.IN_WRITING: _l("In writing or drawing"),
        HeardHow.THROUGH_REPRESENTATIVE: _l("Through the guardian or representative"),
    },
    Tracer: {
        Tracer.ISS: _l("International Social Service (ISS)"),
        Tracer.IOM: _l("IOM"),
        Tracer.CONSULATE: _l("Consulate"),
        Tracer.POLICE: _l("Police"),
        Tracer.CHILD_PROTECTION_AGENCY: _l("Child-protection agency"),
        Tracer.NGO: _l("NGO"),
        Tracer.OTHER: _l("Other"),
    },
    TracingResult: {
        TracingResult.ONGOING: _l("Ongoing"),
        TracingResult.FOUND: _l("Family found"),
        TracingResult.NOT_FOUND: _l("Family not found"),
    },
    Assessor: {
        Assessor.CHILD_PROTECTION_AGENCY: _l("Child-protection agency"),
        Assessor.GUARDIANSHIP_AUTHORITY: _l("Guardianship and custody authority"),
        Assessor.SOCIAL_WORKER: _l("Social worker"),
        Assessor.IOM: _l("IOM"),
        Assessor.ISS: _l("International Social Service (ISS)"),
        Assessor.CONSULATE: _l("Consulate"),
        Assessor.OTHER: _l("Other"),
    },
    AssessmentOutcome: {
        AssessmentOutcome.SAFE: _l("Safe"),
        AssessmentOutcome.NEEDS_SUPPORT: _l("Safe with support"),
        AssessmentOutcome.UNSAFE: _l("Unsafe"),
    },
}

for _kind, _label in {
    "child.guardian_appointed": _l("Guardian appointment recorded"),
    "child.best_interests_determined": _l("Best-interests determination recorded"),
    "child.tracing_started": _l("Family tracing started"),
    "child.tracing_updated": _l("Family tracing result recorded"),
    "child.family_assessed": _l("Family assessment recorded"),
}.items():
    register_timeline_kind(_kind, _label)


class ChildProtectionError(ValueError):
    """The record cannot be saved; ``field`` names the form field it concerns."""

    def __init__(self, message: Any, field: str | None = None) -> None:
        super().__init__(str(message))
        self.field = field


def _case_fk() -> Any:
    return mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))


# Models ------------------------------------------------------------------------------------


class GuardianAppointment(CaseRecord, db.Model):
    """The guardian appointed for a minor: role and appointing body coded, name encrypted."""

    __tablename__ = "child_guardian_appointments"
    __table_args__ = (
        enum_check("role", GuardianRole),
        enum_check("appointing_body", AppointingBody),
        Index("ix_child_guardian_appointments_case", "case_id", "appointed_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    role: Mapped[str] = mapped_column(enum_string(GuardianRole))
    appointing_body: Mapped[str] = mapped_column(enum_string(AppointingBody))
    appointed_on: Mapped[date] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    guardian_name = EncryptedField()
    notes = EncryptedField()

    case: Mapped[Case] = relationship()

    @property
    def role_label(self) -> str:
        return GuardianRole(self.role).label

    @property
    def appointing_body_label(self) -> str:
        return AppointingBody(self.appointing_body).label


class BestInterestsDetermination(CaseRecord, db.Model):
    """A best-interests determination: who, when, options weighed, decision, reasoning."""

    __tablename__ = "child_best_interests"
    __table_args__ = (
        enum_check("deciding_body", DecidingBody),
        enum_check("decision", BidOption),
        enum_check("heard_how", HeardHow),
        # Heard exactly when how is recorded.
        CheckConstraint("(child_heard = (heard_how IS NOT NULL))", name="heard_how_given"),
        # Belt and braces: no stored option list can ever hold detention.
        CheckConstraint("options_considered NOT LIKE '%detention%'", name="never_detention"),
        Index("ix_child_best_interests_case", "case_id", "decided_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    deciding_body: Mapped[str] = mapped_column(enum_string(DecidingBody))
    decided_on: Mapped[date] = mapped_column(Date)
    # BidOption codes, sorted and comma-separated (coded, in clear, like needs).
    options_considered: Mapped[str] = mapped_column(String(400))
    decision: Mapped[str] = mapped_column(enum_string(BidOption))
    child_heard: Mapped[bool] = mapped_column(Boolean)
    heard_how: Mapped[str | None] = mapped_column(enum_string(HeardHow))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_name = EncryptedField()
    reasoning = EncryptedField()

    case: Mapped[Case] = relationship()

    @property
    def options(self) -> list[BidOption]:
        return [BidOption(code) for code in self.options_considered.split(",") if code]

    @property
    def decision_label(self) -> str:
        return BidOption(self.decision).label

    @property
    def deciding_body_label(self) -> str:
        return DecidingBody(self.deciding_body).label

    @property
    def heard_how_label(self) -> str | None:
        return HeardHow(self.heard_how).label if self.heard_how else None


class FamilyTracing(CaseRecord, db.Model):
    """A family tracing request: who traces, since when, and the result so far."""

    __tablename__ = "child_family_tracings"
    __table_args__ = (
        enum_check("traced_by", Tracer),
        enum_check("result", TracingResult),
        Index("ix_child_family_tracings_case", "case_id", "started_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    traced_by: Mapped[str] = mapped_column(enum_string(Tracer))
    started_on: Mapped[date] = mapped_column(Date)
    result: Mapped[str] = mapped_column(
        enum_string(TracingResult), default=TracingResult.ONGOING.value
    )
    result_on: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notes = EncryptedField()

    case: Mapped[Case] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def traced_by_label(self) -> str:
        return Tracer(self.traced_by).label

    @property
    def result_label(self) -> str:
        return TracingResult(self.result).label


class FamilyAssessment(CaseRecord, db.Model):
    """An assessment of the child's family: is going back to it safe?"""

    __tablename__ = "child_family_assessments"
    __table_args__ = (
        enum_check("assessed_by", Assessor),
        enum_check("outcome", AssessmentOutcome),
        Index("ix_child_family_assessments_case", "case_id", "assessed_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    assessed_on: Mapped[date] = mapped_column(Date)
    assessed_by: Mapped[str] = mapped_column(enum_string(Assessor))
    outcome: Mapped[str] = mapped_column(enum_string(AssessmentOutcome))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notes = EncryptedField()

    case: Mapped[Case] = relationship()

    @property
    def assessed_by_label(self) -> str:
        return Assessor(self.assessed_by).label

    @property
    def outcome_label(self) -> str:
        return AssessmentOutcome(self.outcome).label


# Queries -----------------------------------------------------------------------------------


def _config(name: str, default: int) -> int:
    if has_app_context():
        return int(current_app.config.get(name, default))
    return default


def guardian_days() -> int:
    return _config("HAVEN_GUARDIAN_DAYS", DEFAULT_GUARDIAN_DAYS)


def _latest(model: type, case: Case, order: Any) -> Any:
    return db.session.scalars(
        select(model)
        .where(model.case_id == case.id)
        .order_by(order.desc(), model.recorded_at.desc())
    ).first()


def current_guardian(case: Case) -> GuardianAppointment | None:
    return _latest(GuardianAppointment, case, GuardianAppointment.appointed_on)


def current_best_interests(case: Case) -> BestInterestsDetermination | None:
    return _latest(BestInterestsDetermination, case, BestInterestsDetermination.decided_on)


def latest_family_assessment(case: Case) -> FamilyAssessment | None:
    return _latest(FamilyAssessment, case, FamilyAssessment.assessed_on)


def tracings_of(case: Case) -> list[FamilyTracing]:
    return list(
        db.session.scalars(
            select(FamilyTracing)
            .where(FamilyTracing.case_id == case.id)
            .order_by(FamilyTracing.started_on.desc(), FamilyTracing.recorded_at.desc())
        )
    )


def history_of(model: type, case: Case, order: Any) -> list:
    return list(
        db.session.scalars(select(model).where(model.case_id == case.id).order_by(order.desc()))
    )


def guardian_start(case: Case) -> date:
    """Return the day the guardian deadline runs from: identification, else opening."""
    if case.identified_on is not None:
        return case.identified_on
    return case.created_at.date() if case.created_at else case_models.local_today()


def guardian_due_on(case: Case) -> date:
    """Return the last day a guardian may be appointed in time (working days)."""
    return add_working_days(guardian_start(case), guardian_days())


@dataclass(frozen=True)
class GuardianDeadline:
    due_on: date
    # "appointed", "appointed_late", "running", "due_soon" or "overdue".
    state: str
    # Working days left (negative: overdue by), None once appointed.
    days_left: int | None

    @property
    def needs_attention(self) -> bool:
        return self.state in ("due_soon", "overdue")


def guardian_deadline(case: Case, today: date | None = None) -> GuardianDeadline:
    """Return the guardian deadline of a minor's case and where it stands today."""
    due = guardian_due_on(case)
    guardian = current_guardian(case)
    if guardian is not None:
        first = db.session.scalar(
            select(GuardianAppointment.appointed_on)
            .where(GuardianAppointment.case_id == case.id)
            .order_by(GuardianAppointment.appointed_on)
        )
        return GuardianDeadline(due, "appointed" if first <= due else "appointed_late", None)
    today = today or case_models.local_today()
    left = working_days_between(today, due)
    if today > due:
        state = "overdue"
    elif left <= _config("HAVEN_GUARDIAN_WARNING_DAYS", DEFAULT_GUARDIAN_WARNING_DAYS):
        state = "due_soon"
    else:
        state = "running"
    return GuardianDeadline(due, state, left)


def guardian_overdue_condition(today: date | None = None) -> Any:
    """Return the SQL condition of an open minor's case whose guardian is overdue.

    One NOT EXISTS on the appointments plus a comparison of the start day with the latest
    start whose deadline has passed (computed once, holidays included): no per-row
    working-day arithmetic in the query.
    """
    today = today or case_models.local_today()
    cutoff = latest_start_overdue_on(today, guardian_days())
    # Without an identification day the deadline runs from opening (its UTC day, as
    # Case.derive_coded_fields counts the reflection period).
    opened_before = datetime.combine(cutoff + timedelta(days=1), datetime.min.time())
    return and_(
        Case.is_minor.is_(True),
        Case.status == CaseStatus.OPEN.value,
        or_(
            and_(Case.identified_on.is_not(None), Case.identified_on <= cutoff),
            and_(Case.identified_on.is_(None), Case.created_at < _utc(opened_before)),
        ),
        not_(exists().where(GuardianAppointment.case_id == Case.id)),
    )


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.replace(tzinfo=UTC)


def guardian_overdue_ids(case_ids: list[str], today: date | None = None) -> set[str]:
    """Return which of these cases have an overdue guardian appointment (one query)."""
    if not case_ids:
        return set()
    return set(
        db.session.scalars(
            select(Case.id).where(Case.id.in_(case_ids), guardian_overdue_condition(today))
        )
    )


def child_protection_involvement(case: Case) -> str | None:
    """Return how a child-protection agency is involved: "owner", "referral", "transfer",
    or None when none is.

    The referral and transfer tables are read through the metadata: casework does not
    import referrals (imports flow core <- casework <- referrals).
    """
    from core.models import Agency

    if case.owner_agency is not None and case.owner_agency.type == CHILD_PROTECTION_TYPE:
        return "owner"
    tables = db.metadata.tables
    referrals = tables.get("referrals")
    if referrals is not None:
        found = db.session.scalar(
            select(referrals.c.id)
            .join(Agency, Agency.id == referrals.c.receiving_agency_id)
            .where(
                referrals.c.case_id == case.id,
                referrals.c.state.in_(INVOLVING_REFERRAL_STATES),
                Agency.type == CHILD_PROTECTION_TYPE,
            )
            .limit(1)
        )
        if found is not None:
            return "referral"
    transfers = tables["case_transfer_requests"]
    found = db.session.scalar(
        select(transfers.c.id)
        .join(Agency, Agency.id == transfers.c.to_agency_id)
        .where(
            transfers.c.case_id == case.id,
            transfers.c.status.in_(INVOLVING_TRANSFER_STATES),
            Agency.type == CHILD_PROTECTION_TYPE,
        )
        .limit(1)
    )
    return "transfer" if found is not None else None


def best_interests_problem(case: Case, purpose: str) -> str | None:
    """Return why the action is blocked for a minor's case, or None when it may go ahead.

    ``purpose`` is "return", "transfer" or "closure". An adult's case is never blocked. A
    minor's case needs a best-interests determination first; a return also needs a family
    assessment whose latest outcome is not "unsafe".
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    if not case.is_minor:
        return None
    if current_best_interests(case) is None:
        if purpose == "closure":
            return _(
                "This is a child's case: it cannot be closed until a best-interests "
                "determination is recorded."
            )
        if purpose == "transfer":
            return _(
                "This is a child's case: it cannot be transferred until a best-interests "
                "determination is recorded."
            )
        return _(
            "This is a child's case: the child cannot be returned until a best-interests "
            "determination and a family assessment are recorded."
        )
    if purpose == "return":
        assessment = latest_family_assessment(case)
        if assessment is None:
            return _(
                "This is a child's case: the child cannot be returned until a family "
                "assessment is recorded."
            )
        if assessment.outcome == AssessmentOutcome.UNSAFE.value:
            return _(
                "The latest family assessment found the family unsafe: the child cannot be "
                "returned to it."
            )
    return None


# Services ----------------------------------------------------------------------------------


def _record(case: Case, actor: User, kind: str, object_type: str, object_id: str, fields) -> None:
    """Write the audit entry (field names only) and the timeline event of a change."""
    audit.record(kind, object_type=object_type, object_id=object_id, field_names=fields, user=actor)
    add_timeline_event(
        case, kind, actor=actor, object_type=object_type, object_id=object_id, field_names=fields
    )


def _require_minor(case: Case) -> None:
    if not case.is_minor:
        raise ChildProtectionError(_l("The child path applies to a minor's case only."))
    if case.is_erased:
        raise ChildProtectionError(_l("The case's personal data was erased."))


def _not_future(day: date, field: str) -> None:
    if day > case_models.local_today():
        raise ChildProtectionError(_l("The date cannot be in the future."), field=field)


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def record_guardian(
    actor: User,
    case: Case,
    *,
    guardian_name: str,
    role: str,
    appointing_body: str,
    appointed_on: date,
    notes: str | None = None,
) -> GuardianAppointment:
    """Record the guardian appointed for a minor (a later appointment supersedes)."""
    _require_minor(case)
    _not_future(appointed_on, "appointed_on")
    name = _clean(guardian_name)
    if name is None:
        raise ChildProtectionError(_l("Enter the guardian's name."), field="guardian_name")
    appointment = GuardianAppointment(
        case=case,
        role=GuardianRole(role).value,
        appointing_body=AppointingBody(appointing_body).value,
        appointed_on=appointed_on,
        recorded_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(appointment)
    appointment.guardian_name = name
    fields = ["guardian_name", "role", "appointing_body", "appointed_on"]
    if _clean(notes):
        appointment.notes = _clean(notes)
        fields.append("notes")
    db.session.flush()
    _record(case, actor, "child.guardian_appointed", "guardian_appointment", appointment.id, fields)
    return appointment


def record_best_interests(
    actor: User,
    case: Case,
    *,
    deciding_body: str,
    decided_by_name: str | None,
    decided_on: date,
    options: list[str],
    decision: str,
    reasoning: str,
    child_heard: bool,
    heard_how: str | None = None,
) -> BestInterestsDetermination:
    """Record a best-interests determination.

    :raises ChildProtectionError: when an option is not offered (detention never is), the
        decision is not among the options weighed, or how the child was heard is missing.
    """
    _require_minor(case)
    _not_future(decided_on, "decided_on")
    try:
        chosen = sorted({BidOption(code).value for code in options})
        decided = BidOption(decision).value
    except ValueError:
        raise ChildProtectionError(_l("Please choose from the list."), field="options") from None
    if not chosen:
        raise ChildProtectionError(_l("Choose the options considered."), field="options")
    if decided not in chosen:
        raise ChildProtectionError(
            _l("The decision must be one of the options considered."), field="decision"
        )
    if child_heard and not heard_how:
        raise ChildProtectionError(_l("Say how the child was heard."), field="heard_how")
    if _clean(reasoning) is None:
        raise ChildProtectionError(_l("Write down the reasoning."), field="reasoning")
    bid = BestInterestsDetermination(
        case=case,
        deciding_body=DecidingBody(deciding_body).value,
        decided_on=decided_on,
        options_considered=",".join(chosen),
        decision=decided,
        child_heard=bool(child_heard),
        heard_how=HeardHow(heard_how).value if child_heard else None,
        recorded_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(bid)
    bid.reasoning = _clean(reasoning)
    fields = ["deciding_body", "decided_on", "options_considered", "decision", "child_heard"]
    fields += ["reasoning", *(["heard_how"] if child_heard else [])]
    if _clean(decided_by_name):
        bid.decided_by_name = _clean(decided_by_name)
        fields.append("decided_by_name")
    db.session.flush()
    _record(case, actor, "child.best_interests_determined", "best_interests", bid.id, fields)
    return bid


def start_family_tracing(
    actor: User,
    case: Case,
    *,
    traced_by: str,
    started_on: date,
    result: str = TracingResult.ONGOING.value,
    notes: str | None = None,
) -> FamilyTracing:
    """Record a family tracing request (and its result, when already known)."""
    _require_minor(case)
    _not_future(started_on, "started_on")
    outcome = TracingResult(result).value
    tracing = FamilyTracing(
        case=case,
        traced_by=Tracer(traced_by).value,
        started_on=started_on,
        result=outcome,
        result_on=None if outcome == TracingResult.ONGOING.value else case_models.local_today(),
        recorded_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(tracing)
    fields = ["traced_by", "started_on", "result"]
    if _clean(notes):
        tracing.notes = _clean(notes)
        fields.append("notes")
    db.session.flush()
    _record(case, actor, "child.tracing_started", "family_tracing", tracing.id, fields)
    return tracing


def update_tracing_result(
    actor: User,
    tracing: FamilyTracing,
    *,
    result: str,
    notes: str | None,
    expected_version: int,
) -> FamilyTracing:
    """Record the result of a tracing request (and replace its notes when given).

    :raises ChildProtectionError: when someone changed the request since it was shown
        (``field`` is "version").
    """
    case = tracing.case
    _require_minor(case)
    if tracing.version != expected_version:
        raise ChildProtectionError(
            _l("Someone else changed this tracing request meanwhile; check it and try again."),
            field="version",
        )
    outcome = TracingResult(result).value
    fields = []
    if outcome != tracing.result:
        tracing.result = outcome
        tracing.result_on = (
            None if outcome == TracingResult.ONGOING.value else case_models.local_today()
        )
        fields += ["result", "result_on"]
    if _clean(notes) is not None and _clean(notes) != tracing.notes:
        tracing.notes = _clean(notes)
        fields.append("notes")
    if not fields:
        return tracing
    db.session.flush()
    _record(case, actor, "child.tracing_updated", "family_tracing", tracing.id, fields)
    return tracing


def record_family_assessment(
    actor: User,
    case: Case,
    *,
    assessed_on: date,
    assessed_by: str,
    outcome: str,
    notes: str | None = None,
) -> FamilyAssessment:
    """Record a family assessment (a return needs the latest one not to be "unsafe")."""
    _require_minor(case)
    _not_future(assessed_on, "assessed_on")
    assessment = FamilyAssessment(
        case=case,
        assessed_on=assessed_on,
        assessed_by=Assessor(assessed_by).value,
        outcome=AssessmentOutcome(outcome).value,
        recorded_by_id=actor.id,
        recorded_at=utcnow(),
    )
    db.session.add(assessment)
    fields = ["assessed_on", "assessed_by", "outcome"]
    if _clean(notes):
        assessment.notes = _clean(notes)
        fields.append("notes")
    db.session.flush()
    _record(case, actor, "child.family_assessed", "family_assessment", assessment.id, fields)
    return assessment


@dataclass(frozen=True)
class ChildPath:
    """What the case page's child-protection panel shows."""

    deadline: GuardianDeadline
    guardian: GuardianAppointment | None
    best_interests: BestInterestsDetermination | None
    tracings: list[FamilyTracing]
    assessment: FamilyAssessment | None
    involvement: str | None


def child_path(case: Case, today: date | None = None) -> ChildPath:
    """Return the child path's state for a minor's case."""
    return ChildPath(
        deadline=guardian_deadline(case, today),
        guardian=current_guardian(case),
        best_interests=current_best_interests(case),
        tracings=tracings_of(case),
        assessment=latest_family_assessment(case),
        involvement=child_protection_involvement(case),
    )


# Demo data ---------------------------------------------------------------------------------


def _start_due_in(today: date, working_days_left: int) -> date:
    """Return an identification day whose guardian deadline is that many working days away."""
    from core.working_days import holidays_between

    wanted = add_working_days(today, working_days_left)
    known = holidays_between(today - timedelta(days=120), wanted)
    start = today
    while add_working_days(start, guardian_days(), known) > wanted:
        start -= timedelta(days=1)
    return start


def seed_demo_child_path(users: dict[str, User]) -> int:
    """Give the demo minors' cases the child path; return how many cases got records.

    ``users`` maps demo agency keys to their caseworker (``core.demo``). Uses the demo
    minors that exist (it opens no case, so the demo's case counts stay as they are): the
    child protection centre's get a guardian appointed in time, a best-interests
    determination, a family tracing (family found) and a safe family assessment; an NGO
    minor gets a guardian, a determination and a tracing abroad under way; another NGO minor
    stays without a guardian (overdue); one more minor is re-dated as identified a few days
    ago (through ``update_case``), so its guardian is due within 3 working days. Everything
    goes through the services. Idempotent: does nothing once any guardian is recorded.
    """
    from casework.services import update_case
    from core.working_days import seed_public_holidays

    if db.session.scalar(select(GuardianAppointment.id).limit(1)) is not None:
        return 0
    seed_public_holidays()
    today = case_models.local_today()

    def minors(key: str) -> list[Case]:
        user = users.get(key)
        if user is None:
            return []
        return list(
            db.session.scalars(
                select(Case)
                .where(
                    Case.owner_agency_id == user.agency_id,
                    Case.status == CaseStatus.OPEN.value,
                    Case.is_minor.is_(True),
                )
                .order_by(Case.reference)
            )
        )

    def before_today(start: date, days: int) -> date:
        return max(min(add_working_days(start, days), today), start)

    touched = 0
    for case in minors("child")[:2]:
        centre = users["child"]
        start = guardian_start(case)
        record_guardian(
            centre,
            case,
            guardian_name="Səadət Rzayeva",
            role=GuardianRole.STATE_GUARDIAN.value,
            appointing_body=AppointingBody.GUARDIANSHIP_AUTHORITY.value,
            appointed_on=before_today(start, 6),
            notes="Guardianship and custody commission of the district executive authority.",
        )
        record_best_interests(
            centre,
            case,
            deciding_body=DecidingBody.MULTIDISCIPLINARY_PANEL.value,
            decided_by_name="Best-interests panel of the Gələcək centre",
            decided_on=before_today(start, 10),
            options=[
                BidOption.REUNIFICATION_AZERBAIJAN.value,
                BidOption.FOSTER_KINSHIP_CARE.value,
                BidOption.RESIDENTIAL_CARE.value,
            ],
            decision=BidOption.REUNIFICATION_AZERBAIJAN.value,
            reasoning=(
                "The aunt in Sumqayıt is able and willing to care for the child; the child "
                "asked to live with her and to return to school."
            ),
            child_heard=True,
            heard_how=HeardHow.WITH_PSYCHOLOGIST.value,
        )
        tracing = start_family_tracing(
            centre,
            case,
            traced_by=Tracer.CHILD_PROTECTION_AGENCY.value,
            started_on=before_today(start, 2),
            notes="Mother's sister traced through the school in Sumqayıt.",
        )
        update_tracing_result(
            centre,
            tracing,
            result=TracingResult.FOUND.value,
            notes="Aunt found and visited; she agrees to take the child.",
            expected_version=tracing.version,
        )
        record_family_assessment(
            centre,
            case,
            assessed_on=before_today(start, 9),
            assessed_by=Assessor.SOCIAL_WORKER.value,
            outcome=AssessmentOutcome.SAFE.value,
            notes="Two-room flat, school nearby; the aunt's family is supportive.",
        )
        touched += 1

    ngo_minors = minors("ngo")
    if ngo_minors:
        # The first NGO minor: a relative appointed, a determination, a tracing abroad.
        case, ngo = ngo_minors[0], users["ngo"]
        start = guardian_start(case)
        record_guardian(
            ngo,
            case,
            guardian_name="Rəşad Hüseynli",
            role=GuardianRole.RELATIVE.value,
            appointing_body=AppointingBody.GUARDIANSHIP_AUTHORITY.value,
            appointed_on=before_today(start, 12),
        )
        record_best_interests(
            ngo,
            case,
            deciding_body=DecidingBody.CHILD_PROTECTION_AGENCY.value,
            decided_by_name=None,
            decided_on=before_today(start, 14),
            options=[BidOption.REUNIFICATION_ORIGIN.value, BidOption.RESIDENTIAL_CARE.value],
            decision=BidOption.RESIDENTIAL_CARE.value,
            reasoning="Shelter placement while the family abroad is traced and assessed.",
            child_heard=True,
            heard_how=HeardHow.INTERVIEW.value,
        )
        start_family_tracing(
            ngo,
            case,
            traced_by=Tracer.ISS.value,
            started_on=before_today(start, 3),
            notes="ISS Türkiye asked to trace the parents in Istanbul.",
        )
        touched += 1
    # The second NGO minor keeps no guardian: overdue, as it was identified weeks ago.
    # One more minor (the NGO's third, else another agency's) was identified a few days ago.
    others = [case for key in users if key not in ("ngo", "child") for case in minors(key)[:1]]
    recent_start = _start_due_in(today, 2)
    for case in [*ngo_minors[2:], *others]:
        birth = case.date_of_birth
        if birth is not None and case_models.age_on(birth, recent_start) >= case_models.ADULT_AGE:
            continue
        owner = next(user for user in users.values() if user.agency_id == case.owner_agency_id)
        update_case(owner, case, {"identified_on": recent_start}, expected_version=case.version)
        if case.is_minor:
            touched += 1
            break
    db.session.flush()
    return touched
