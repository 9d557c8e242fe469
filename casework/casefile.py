"""The case file: indicators, risk and needs assessments, consent, services, notes, attachments.

Every personal text (notes, plans, outcomes, file names and contents) is encrypted under the
case's data key, so crypto-shredding the case covers the whole file. Coded answers (levels,
needs, service types, consent purposes) stay in clear for statistics.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.models import CaseRecord
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, utcnow

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import Agency, User


class _Labelled(enum.StrEnum):
    """A coded value that knows its translated label (set in ``LABELS`` after the class)."""

    @property
    def label(self) -> str:
        return str(_LABELS[type(self)][self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        """Return (value, lazily translated label) pairs in declaration order."""
        return [(member.value, _LABELS[cls][member]) for member in cls]


_LABELS: dict[type, dict[Any, Any]] = {}


# Coded values ------------------------------------------------------------------------------


class IndicatorCategory(_Labelled):
    GENERAL = "general"
    SEXUAL = "sexual"
    LABOUR = "labour"
    CHILD = "child"


class Answer(_Labelled):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class RiskLevel(_Labelled):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Need(_Labelled):
    SHELTER = "shelter"
    MEDICAL = "medical"
    PSYCHOLOGICAL = "psychological"
    LEGAL_AID = "legal_aid"
    INTERPRETATION = "interpretation"
    VOLUNTARY_RETURN = "voluntary_return"
    REINTEGRATION = "reintegration"
    VOCATIONAL_TRAINING = "vocational_training"
    EDUCATION = "education"
    FINANCIAL = "financial"
    DOCUMENTS = "documents"
    CHILD_PROTECTION = "child_protection"
    FAMILY_TRACING = "family_tracing"


class ConsentPurpose(_Labelled):
    PROCESSING = "processing"
    REFERRAL = "referral"
    LAW_ENFORCEMENT_SHARING = "law_enforcement_sharing"
    FOLLOW_UP_CONTACT = "follow_up_contact"


class ConsentStatus(_Labelled):
    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class ConsentMethod(_Labelled):
    WRITTEN = "written"
    ORAL = "oral"
    ELECTRONIC = "electronic"


class ConsentGivenBy(_Labelled):
    """Who decided: the person, a guardian (minor), or a best-interests decision (minor)."""

    PERSON = "person"
    GUARDIAN = "guardian"
    BEST_INTERESTS = "best_interests"


class ServiceType(_Labelled):
    SHELTER = "shelter"
    MEDICAL = "medical"
    PSYCHOLOGICAL = "psychological"
    LEGAL_AID = "legal_aid"
    INTERPRETATION = "interpretation"
    VOLUNTARY_RETURN = "voluntary_return"
    REINTEGRATION = "reintegration"
    VOCATIONAL_TRAINING = "vocational_training"
    EDUCATION = "education"
    FINANCIAL = "financial"
    CHILD_PROTECTION = "child_protection"
    LAW_ENFORCEMENT_INTERVIEW = "law_enforcement_interview"
    # Asked of the national coordinator only: the formal identification (status) decision.
    STATUS_DECISION = "status_decision"
    OTHER = "other"


class ServiceOutcome(_Labelled):
    ONGOING = "ongoing"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"
    REFUSED = "refused"
    REFERRED_ON = "referred_on"


_LABELS.update(
    {
        IndicatorCategory: {
            IndicatorCategory.GENERAL: _l("General"),
            IndicatorCategory.SEXUAL: _l("Sexual exploitation"),
            IndicatorCategory.LABOUR: _l("Labour exploitation"),
            IndicatorCategory.CHILD: _l("Children"),
        },
        Answer: {Answer.YES: _l("Yes"), Answer.NO: _l("No"), Answer.UNKNOWN: _l("Unknown")},
        RiskLevel: {
            RiskLevel.LOW: _l("Low"),
            RiskLevel.MEDIUM: _l("Medium"),
            RiskLevel.HIGH: _l("High"),
        },
        Need: {
            Need.SHELTER: _l("Shelter"),
            Need.MEDICAL: _l("Medical care"),
            Need.PSYCHOLOGICAL: _l("Psychological support"),
            Need.LEGAL_AID: _l("Legal aid"),
            Need.INTERPRETATION: _l("Interpretation"),
            Need.VOLUNTARY_RETURN: _l("Voluntary return"),
            Need.REINTEGRATION: _l("Reintegration"),
            Need.VOCATIONAL_TRAINING: _l("Vocational training"),
            Need.EDUCATION: _l("Education"),
            Need.FINANCIAL: _l("Financial assistance"),
            Need.DOCUMENTS: _l("Identity documents"),
            Need.CHILD_PROTECTION: _l("Child protection"),
            Need.FAMILY_TRACING: _l("Family tracing"),
        },
        ConsentPurpose: {
            ConsentPurpose.PROCESSING: _l("Processing of personal data"),
            ConsentPurpose.REFERRAL: _l("Referral to a named agency"),
            ConsentPurpose.LAW_ENFORCEMENT_SHARING: _l("Sharing with law enforcement"),
            ConsentPurpose.FOLLOW_UP_CONTACT: _l("Follow-up contact"),
        },
        ConsentStatus: {
            ConsentStatus.GIVEN: _l("Given"),
            ConsentStatus.REFUSED: _l("Refused"),
            ConsentStatus.WITHDRAWN: _l("Withdrawn"),
        },
        ConsentMethod: {
            ConsentMethod.WRITTEN: _l("In writing"),
            ConsentMethod.ORAL: _l("Orally"),
            ConsentMethod.ELECTRONIC: _l("Electronically"),
        },
        ConsentGivenBy: {
            ConsentGivenBy.PERSON: _l("The person"),
            ConsentGivenBy.GUARDIAN: _l("A parent or legal guardian"),
            ConsentGivenBy.BEST_INTERESTS: _l("A best-interests decision"),
        },
        ServiceType: {
            ServiceType.SHELTER: _l("Shelter"),
            ServiceType.MEDICAL: _l("Medical care"),
            ServiceType.PSYCHOLOGICAL: _l("Psychological support"),
            ServiceType.LEGAL_AID: _l("Legal aid"),
            ServiceType.INTERPRETATION: _l("Interpretation"),
            ServiceType.VOLUNTARY_RETURN: _l("Voluntary return"),
            ServiceType.REINTEGRATION: _l("Reintegration"),
            ServiceType.VOCATIONAL_TRAINING: _l("Vocational training"),
            ServiceType.EDUCATION: _l("Education"),
            ServiceType.FINANCIAL: _l("Financial assistance"),
            ServiceType.CHILD_PROTECTION: _l("Child protection"),
            ServiceType.LAW_ENFORCEMENT_INTERVIEW: _l("Law-enforcement interview"),
            ServiceType.STATUS_DECISION: _l("Formal status decision (NRM)"),
            ServiceType.OTHER: _l("Other"),
        },
        ServiceOutcome: {
            ServiceOutcome.ONGOING: _l("Ongoing"),
            ServiceOutcome.COMPLETED: _l("Completed"),
            ServiceOutcome.DISCONTINUED: _l("Discontinued"),
            ServiceOutcome.REFUSED: _l("Refused by the person"),
            ServiceOutcome.REFERRED_ON: _l("Referred on"),
        },
    }
)


def _case_fk() -> Any:
    return mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)


# Identification indicators -----------------------------------------------------------------


class IndicatorDefinition(db.Model):
    """One question of the identification-indicators checklist (a seeded reference list)."""

    __tablename__ = "indicator_definitions"
    __table_args__ = (enum_check("category", IndicatorCategory),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    category: Mapped[str] = mapped_column(enum_string(IndicatorCategory))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    label_en: Mapped[str] = mapped_column(String(300))
    label_az: Mapped[str] = mapped_column(String(300))
    label_ru: Mapped[str] = mapped_column(String(300))

    @property
    def label(self) -> str:
        """Return the label in the reader's language (English when there is none)."""
        locale = get_locale()
        language = locale.language if locale is not None else "en"
        return getattr(self, f"label_{language}", None) or self.label_en

    @property
    def category_label(self) -> str:
        return IndicatorCategory(self.category).label


class IndicatorAnswer(CaseRecord, db.Model):
    """A case's answer to one indicator, with an optional encrypted note."""

    __tablename__ = "indicator_answers"
    __table_args__ = (
        UniqueConstraint("case_id", "indicator_code"),
        enum_check("answer", Answer),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = _case_fk()
    indicator_code: Mapped[str] = mapped_column(ForeignKey("indicator_definitions.code"))
    answer: Mapped[str] = mapped_column(enum_string(Answer), default=Answer.UNKNOWN.value)
    answered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note = EncryptedField()

    case: Mapped[Case] = relationship()


# Assessments -------------------------------------------------------------------------------

RISK_FIELDS = ("retaliation", "retrafficking", "health_emergency", "self_harm")


class RiskAssessment(CaseRecord, db.Model):
    """A dated risk assessment: four coded levels, encrypted notes and safety plan."""

    __tablename__ = "risk_assessments"
    __table_args__ = (
        Index("ix_risk_assessments_case_time", "case_id", "assessed_at"),
        *(enum_check(f"{name}_risk", RiskLevel) for name in RISK_FIELDS),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assessor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    retaliation_risk: Mapped[str] = mapped_column(enum_string(RiskLevel))
    retrafficking_risk: Mapped[str] = mapped_column(enum_string(RiskLevel))
    health_emergency_risk: Mapped[str] = mapped_column(enum_string(RiskLevel))
    self_harm_risk: Mapped[str] = mapped_column(enum_string(RiskLevel))
    notes = EncryptedField()
    plan = EncryptedField()

    case: Mapped[Case] = relationship()
    assessor: Mapped[User | None] = relationship()

    def levels(self) -> dict[str, RiskLevel]:
        """Return the level of each risk by risk name."""
        return {name: RiskLevel(getattr(self, f"{name}_risk")) for name in RISK_FIELDS}


class NeedsAssessment(CaseRecord, db.Model):
    """A dated needs assessment: coded needs (comma-separated, in clear) and encrypted notes."""

    __tablename__ = "needs_assessments"
    __table_args__ = (Index("ix_needs_assessments_case_time", "case_id", "assessed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assessor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Need codes, sorted and comma-separated: coarse, coded, counted in statistics.
    need_codes: Mapped[str] = mapped_column(String(400), default="")
    notes = EncryptedField()

    case: Mapped[Case] = relationship()
    assessor: Mapped[User | None] = relationship()

    @property
    def needs(self) -> list[Need]:
        return [Need(code) for code in self.need_codes.split(",") if code]

    @needs.setter
    def needs(self, values: list[str] | list[Need]) -> None:
        self.need_codes = ",".join(sorted({Need(value).value for value in values}))


# Consent -----------------------------------------------------------------------------------


class ConsentRecord(CaseRecord, db.Model):
    """One consent decision for one purpose; later decisions supersede, never overwrite.

    The history of a purpose (and, for referrals, of one named agency) is a chain: each new
    record points at the one it supersedes, so the current decision is the record nothing
    supersedes, without relying on clocks.
    """

    __tablename__ = "consent_records"
    __table_args__ = (
        enum_check("purpose", ConsentPurpose),
        enum_check("status", ConsentStatus),
        enum_check("how_obtained", ConsentMethod),
        enum_check("given_by", ConsentGivenBy),
        # A referral consent names the agency; the other purposes never do.
        CheckConstraint(
            "(purpose = 'referral') = (agency_id IS NOT NULL)", name="referral_names_agency"
        ),
        # Two records cannot supersede the same one: concurrent changes fail, not fork.
        UniqueConstraint("supersedes_id"),
        Index("ix_consent_records_case_purpose", "case_id", "purpose", "agency_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(enum_string(ConsentPurpose))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    status: Mapped[str] = mapped_column(enum_string(ConsentStatus))
    recorded_on: Mapped[date] = mapped_column(Date)
    how_obtained: Mapped[str] = mapped_column(enum_string(ConsentMethod))
    consent_text_version: Mapped[str] = mapped_column(String(40))
    given_by: Mapped[str] = mapped_column(
        enum_string(ConsentGivenBy), default=ConsentGivenBy.PERSON.value
    )
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    supersedes_id: Mapped[str | None] = mapped_column(
        ForeignKey("consent_records.id", ondelete="CASCADE")
    )
    # For a minor: the guardian's name and relationship, or the best-interests decision.
    guardian = EncryptedField()
    best_interests_decision = EncryptedField()

    case: Mapped[Case] = relationship()
    agency: Mapped[Agency | None] = relationship()
    recorded_by: Mapped[User | None] = relationship()

    @property
    def is_given(self) -> bool:
        return self.status == ConsentStatus.GIVEN.value

    @property
    def purpose_label(self) -> str:
        return ConsentPurpose(self.purpose).label

    @property
    def status_label(self) -> str:
        return ConsentStatus(self.status).label

    @property
    def how_obtained_label(self) -> str:
        return ConsentMethod(self.how_obtained).label

    @property
    def given_by_label(self) -> str:
        return ConsentGivenBy(self.given_by).label


# Services ----------------------------------------------------------------------------------


class ServiceRecord(CaseRecord, db.Model):
    """A service delivered to the person: type, provider, dates, outcome (note encrypted)."""

    __tablename__ = "service_records"
    __table_args__ = (
        enum_check("service_type", ServiceType),
        enum_check("outcome", ServiceOutcome),
        CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="ends_after_start"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = _case_fk()
    service_type: Mapped[str] = mapped_column(enum_string(ServiceType))
    provider_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(enum_string(ServiceOutcome))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Optimistic locking: an edit made on an older version is refused, not saved over.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    edited_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome_note = EncryptedField()

    case: Mapped[Case] = relationship()
    provider: Mapped[Agency] = relationship()
    edited_by: Mapped[User | None] = relationship(foreign_keys=[edited_by_user_id])

    __mapper_args__ = {"version_id_col": version}

    @property
    def service_type_label(self) -> str:
        return ServiceType(self.service_type).label

    @property
    def outcome_label(self) -> str | None:
        return ServiceOutcome(self.outcome).label if self.outcome else None


# Notes -------------------------------------------------------------------------------------


class CaseNote(CaseRecord, db.Model):
    """A caseworker's note; the body is encrypted."""

    __tablename__ = "case_notes"
    __table_args__ = (Index("ix_case_notes_case_time", "case_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Optimistic locking, and the "edited" marker: a note is corrected, never deleted.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    edited_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body = EncryptedField()

    case: Mapped[Case] = relationship()
    author: Mapped[User | None] = relationship(foreign_keys=[author_user_id])
    edited_by: Mapped[User | None] = relationship(foreign_keys=[edited_by_user_id])

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_edited(self) -> bool:
        return self.edited_at is not None


# Attachments -------------------------------------------------------------------------------


class Attachment(CaseRecord, db.Model):
    """A file of the case, stored encrypted in the database (name and content).

    ``number`` counts the case's attachments from 1; downloads are named after the case
    reference and this number, never after the original file name.
    """

    __tablename__ = "case_attachments"
    __table_args__ = (UniqueConstraint("case_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer)
    # Detected from the content, never taken from the browser.
    content_type: Mapped[str] = mapped_column(String(100))
    extension: Mapped[str] = mapped_column(String(10))
    original_filename = EncryptedField()
    description = EncryptedField()
    # Deferred: listing attachments must not load (or decrypt) megabytes of content.
    content = EncryptedField(kind="bytes", deferred=True)

    case: Mapped[Case] = relationship()
    uploaded_by: Mapped[User | None] = relationship()
