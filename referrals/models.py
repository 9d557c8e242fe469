"""Referral rows: the referral, its transitions, disclosure receipts and the receiver's notes.

Every free text (the reason, the decline and cancel reasons, the exception note, the outcome
note, service notes, transition reasons) is about a person, so it is encrypted under the
case's data key (``CaseRecord``): crypto-shredding the case covers referrals too. Codes
(states, service types, urgency, sections, outcome) stay in clear for the inbox and for
statistics. Disclosure receipts hold names only, never values, and survive an erasure.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.casefile import ServiceType
from casework.models import CaseRecord
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from referrals.workflow import Action, State, Urgency, is_overdue

if TYPE_CHECKING:
    from casework.casefile import ConsentRecord
    from casework.models import Case
    from core.models import Agency, User


class SharedSection(enum.StrEnum):
    """A part of the case file the sender may share with the receiving agency (DESIGN)."""

    IDENTITY = "identity"
    CONTACT = "contact"
    HEALTH = "health"
    EXPLOITATION = "exploitation"
    ASSESSMENTS = "assessments"
    DOCUMENTS = "documents"

    @property
    def label(self) -> str:
        return str(SECTION_LABELS[self])

    @property
    def field_names(self) -> tuple[str, ...]:
        """Return the names of the fields the section discloses (for the receipt)."""
        return SECTION_FIELDS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        return [(member.value, SECTION_LABELS[member]) for member in cls]


SECTION_LABELS = {
    SharedSection.IDENTITY: _l("Identity"),
    SharedSection.CONTACT: _l("Contact"),
    SharedSection.HEALTH: _l("Health"),
    SharedSection.EXPLOITATION: _l("Exploitation"),
    SharedSection.ASSESSMENTS: _l("Assessments"),
    SharedSection.DOCUMENTS: _l("Documents"),
}

# The case fields each section discloses; the receiver's page shows exactly these.
SECTION_FIELDS: dict[SharedSection, tuple[str, ...]] = {
    SharedSection.IDENTITY: (
        "given_name",
        "family_name",
        "aliases",
        "date_of_birth",
        "estimated_age",
        "place_of_birth",
        "document_type",
        "document_number",
        "languages_spoken",
        "interpreter_needed",
        "sex",
        "citizenship",
    ),
    SharedSection.CONTACT: ("phone", "address", "contact_person"),
    SharedSection.HEALTH: ("medical_notes",),
    SharedSection.EXPLOITATION: (
        "identified_on",
        "identification_region",
        "identification_circumstances",
        "exploitation_form",
        "origin_country",
        "transit_country",
        "destination_country",
        "industry",
        "means_of_control",
        "recruitment_type",
        "circumstances",
        "exploitation_narrative",
        "recruitment_narrative",
    ),
    SharedSection.ASSESSMENTS: (
        "risk_assessment.levels",
        "risk_assessment.notes",
        "risk_assessment.plan",
        "needs_assessment.needs",
        "needs_assessment.notes",
    ),
    SharedSection.DOCUMENTS: ("attachment.original_filename", "attachment.description"),
}


class ConsentException(enum.StrEnum):
    """Why a referral went without the person's consent (DESIGN: minor, emergency)."""

    MINOR = "minor"
    EMERGENCY = "emergency"

    @property
    def label(self) -> str:
        return str(EXCEPTION_LABELS[self])


EXCEPTION_LABELS = {
    ConsentException.MINOR: _l("Child: the best-interests decision replaces consent"),
    ConsentException.EMERGENCY: _l("Emergency: no time to obtain consent"),
}


class ReferralOutcome(enum.StrEnum):
    """What came of a completed referral, coded for statistics."""

    SERVICE_PROVIDED = "service_provided"
    PARTLY_PROVIDED = "partly_provided"
    PERSON_DECLINED = "person_declined"
    NOT_ELIGIBLE = "not_eligible"
    LOST_CONTACT = "lost_contact"
    REFERRED_ON = "referred_on"

    @property
    def label(self) -> str:
        return str(OUTCOME_LABELS[self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        return [(member.value, OUTCOME_LABELS[member]) for member in cls]


OUTCOME_LABELS = {
    ReferralOutcome.SERVICE_PROVIDED: _l("Service provided"),
    ReferralOutcome.PARTLY_PROVIDED: _l("Service partly provided"),
    ReferralOutcome.PERSON_DECLINED: _l("The person declined the service"),
    ReferralOutcome.NOT_ELIGIBLE: _l("Not eligible after assessment"),
    ReferralOutcome.LOST_CONTACT: _l("Contact lost"),
    ReferralOutcome.REFERRED_ON: _l("Referred on to another provider"),
}

STATE_LABELS = {
    State.DRAFT: _l("Draft"),
    State.SENT: _l("Sent, waiting for an answer"),
    State.ACCEPTED: _l("Accepted"),
    State.DECLINED: _l("Declined"),
    State.IN_PROGRESS: _l("In progress"),
    State.COMPLETED: _l("Completed"),
    State.CANCELLED: _l("Cancelled"),
    State.EXPIRED: _l("Expired without an answer"),
}
STATE_BADGES = {
    State.DRAFT: "",
    State.SENT: "badge--warn",
    State.ACCEPTED: "badge--ok",
    State.DECLINED: "badge--danger",
    State.IN_PROGRESS: "badge--ok",
    State.COMPLETED: "",
    State.CANCELLED: "",
    State.EXPIRED: "badge--danger",
}
URGENCY_LABELS = {
    Urgency.EMERGENCY: _l("Emergency (answer within hours)"),
    Urgency.URGENT: _l("Urgent (answer within a day)"),
    Urgency.ROUTINE: _l("Routine (answer within days)"),
}
URGENCY_BADGES = {Urgency.EMERGENCY: "badge--danger", Urgency.URGENT: "badge--warn"}
ACTION_LABELS = {
    Action.SEND: _l("Send"),
    Action.ACCEPT: _l("Accept"),
    Action.DECLINE: _l("Decline"),
    Action.START: _l("Start the service"),
    Action.COMPLETE: _l("Complete"),
    Action.CANCEL: _l("Cancel the referral"),
    Action.EXPIRE: _l("Expire"),
    Action.WITHDRAW_CONSENT: _l("Consent withdrawn"),
}


def _case_fk() -> Any:
    return mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)


# A draft, or a draft given up before it was ever sent.
_NEVER_SENT = "(state = 'draft' OR (state = 'cancelled' AND sent_at IS NULL))"


def _encrypted_present(name: str) -> str:
    return f"{name}_enc IS NOT NULL"


class Referral(CaseRecord, db.Model):
    """One referral of a case from the sending agency to a receiving agency."""

    __tablename__ = "referrals"
    __table_args__ = (
        enum_check("state", State),
        enum_check("urgency", Urgency),
        enum_check("service_type", ServiceType),
        enum_check("consent_exception", ConsentException),
        enum_check("outcome", ReferralOutcome),
        CheckConstraint("receiving_agency_id <> sending_agency_id", name="another_agency"),
        # Declined exactly when a decline reason is present; completed exactly with an outcome.
        CheckConstraint(
            f"(state = 'declined') = ({_encrypted_present('decline_reason')})",
            name="declined_with_reason",
        ),
        CheckConstraint("(state = 'completed') = (outcome IS NOT NULL)", name="completed_outcome"),
        # Once sent, a referral has a send time and a deadline, and it relied on a consent
        # or on a recorded exception (never both).
        CheckConstraint(
            f"{_NEVER_SENT} OR (sent_at IS NOT NULL AND response_due_at IS NOT NULL)",
            name="sent_with_deadline",
        ),
        CheckConstraint(
            f"{_NEVER_SENT} OR ((consent_record_id IS NULL) <> (consent_exception IS NULL))",
            name="sent_on_consent_or_exception",
        ),
        CheckConstraint(
            f"consent_exception IS NULL OR {_encrypted_present('exception_note')}",
            name="exception_explained",
        ),
        Index("ix_referrals_receiving_state", "receiving_agency_id", "state"),
        Index("ix_referrals_sending_state", "sending_agency_id", "state"),
        # The expiry check scans sent referrals by deadline.
        Index("ix_referrals_state_due", "state", "response_due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = _case_fk()
    sending_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sent_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    receiving_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    service_type: Mapped[str] = mapped_column(enum_string(ServiceType))
    urgency: Mapped[str] = mapped_column(enum_string(Urgency))
    state: Mapped[str] = mapped_column(enum_string(State), default=State.DRAFT.value)
    # SharedSection codes, sorted and comma-separated.
    section_codes: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the receiver accepted or declined (response-time statistics).
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_record_id: Mapped[str | None] = mapped_column(ForeignKey("consent_records.id"))
    consent_exception: Mapped[str | None] = mapped_column(enum_string(ConsentException))
    outcome: Mapped[str | None] = mapped_column(enum_string(ReferralOutcome))
    # The declined or expired referral this one re-refers, when it does.
    previous_referral_id: Mapped[str | None] = mapped_column(
        ForeignKey("referrals.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    reason = EncryptedField()
    exception_note = EncryptedField()
    decline_reason = EncryptedField()
    cancel_reason = EncryptedField()
    outcome_note = EncryptedField()

    case: Mapped[Case] = relationship()
    sending_agency: Mapped[Agency] = relationship(foreign_keys=[sending_agency_id])
    receiving_agency: Mapped[Agency] = relationship(foreign_keys=[receiving_agency_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_user_id])
    sent_by: Mapped[User | None] = relationship(foreign_keys=[sent_by_user_id])
    consent_record: Mapped[ConsentRecord | None] = relationship()
    previous_referral: Mapped[Referral | None] = relationship(remote_side="Referral.id")

    # Optimistic locking: two people acting on one referral at once cannot both win.
    __mapper_args__ = {"version_id_col": version}

    @property
    def state_enum(self) -> State:
        return State(self.state)

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[self.state_enum])

    @property
    def state_badge(self) -> str:
        return STATE_BADGES[self.state_enum]

    @property
    def urgency_label(self) -> str:
        return str(URGENCY_LABELS[Urgency(self.urgency)])

    @property
    def urgency_badge(self) -> str:
        return URGENCY_BADGES.get(Urgency(self.urgency), "")

    @property
    def service_type_label(self) -> str:
        return ServiceType(self.service_type).label

    @property
    def outcome_label(self) -> str | None:
        return ReferralOutcome(self.outcome).label if self.outcome else None

    @property
    def exception_label(self) -> str | None:
        return ConsentException(self.consent_exception).label if self.consent_exception else None

    @property
    def sections(self) -> list[SharedSection]:
        """Return the shared sections in the order of ``SharedSection``."""
        codes = set(self.section_codes.split(",")) - {""}
        return [section for section in SharedSection if section.value in codes]

    @sections.setter
    def sections(self, values: Any) -> None:
        self.section_codes = ",".join(sorted({SharedSection(value).value for value in values}))

    @property
    def is_overdue(self) -> bool:
        """Whether the referral waits for an answer past its deadline, or expired that way."""
        return self.state == State.EXPIRED.value or is_overdue(
            self.state, self.response_due_at, utcnow()
        )

    def __repr__(self) -> str:
        return f"<Referral {self.id} {self.state}>"


class ReferralTransition(CaseRecord, db.Model):
    """One step of a referral: from, to, action, who (none for Haven itself), when, why.

    Drives the case timeline and the response-time statistics.
    """

    __tablename__ = "referral_transitions"
    __table_args__ = (
        enum_check("from_state", State),
        enum_check("to_state", State),
        enum_check("action", Action),
        Index("ix_referral_transitions_referral_time", "referral_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    case_id: Mapped[str] = _case_fk()
    from_state: Mapped[str] = mapped_column(enum_string(State))
    to_state: Mapped[str] = mapped_column(enum_string(State))
    action: Mapped[str] = mapped_column(enum_string(Action))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason = EncryptedField()

    case: Mapped[Case] = relationship()
    referral: Mapped[Referral] = relationship()
    actor: Mapped[User | None] = relationship()

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS[Action(self.action)])

    @property
    def to_state_label(self) -> str:
        return str(STATE_LABELS[State(self.to_state)])


class DisclosureReceipt(db.Model):
    """What one send disclosed: sections and field names (never values), to whom, on what.

    Kept in clear and never encrypted under the case key: it holds no personal data, and the
    record of who received what must outlive an erasure of the case.
    """

    __tablename__ = "referral_disclosure_receipts"
    __table_args__ = (
        enum_check("consent_exception", ConsentException),
        CheckConstraint(
            "(consent_record_id IS NULL) <> (consent_exception IS NULL)", name="consent_basis"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    referral_id: Mapped[str] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[str] = _case_fk()
    receiving_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    disclosed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    section_codes: Mapped[str] = mapped_column(String(200))
    # JSON list of the field names disclosed, sorted.
    field_names: Mapped[str] = mapped_column(Text)
    # Plain id, no foreign key: the receipt stays exact even if consent rows go.
    consent_record_id: Mapped[str | None] = mapped_column(String(36))
    consent_exception: Mapped[str | None] = mapped_column(enum_string(ConsentException))

    receiving_agency: Mapped[Agency] = relationship()
    disclosed_by: Mapped[User | None] = relationship()

    @property
    def field_name_list(self) -> list[str]:
        return json.loads(self.field_names or "[]")

    @property
    def sections(self) -> list[SharedSection]:
        codes = set(self.section_codes.split(",")) - {""}
        return [section for section in SharedSection if section.value in codes]


class ReferralNote(CaseRecord, db.Model):
    """The receiving agency's service note; the sender reads it only when it is shared."""

    __tablename__ = "referral_notes"
    __table_args__ = (Index("ix_referral_notes_referral_time", "referral_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    case_id: Mapped[str] = _case_fk()
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shared_with_sender: Mapped[bool] = mapped_column(Boolean, default=False)
    body = EncryptedField()

    case: Mapped[Case] = relationship()
    referral: Mapped[Referral] = relationship()
    author: Mapped[User | None] = relationship()
