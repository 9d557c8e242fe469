"""Incoming reports: hotline calls and presumed-victim notifications, before there is a case.

One model for both (``IncomingReport``, its ``kind`` says which). A hotline operator records
a call and routes it to an assistance agency, or closes it as advice only; an agency that
keeps no case file (consular post, border or migration service, labour inspectorate) sends
a notification to the national coordinator or to an assistance agency. The receiver
acknowledges it and turns it into a case (the normal intake, pre-filled) or closes it with
a coded reason. The sender sees the status of what it sent, never the case.

Personal data (a name if known, how to call back safely, what happened) is encrypted under
the report's own data key, as a case's is: a report has no case until it is converted, and
the case then gets its own key. The coded hints (sex, age band, minor, where, forms of
exploitation, channel) are kept in clear, so anonymous contacts still count.

The state moves only through ``transition`` (table in ``casework.contact_workflow``); each
move writes a transition row, the audit entry, and (when a case exists) a timeline event.
Services flush and never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    func,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.contact_workflow import (
    OPEN_STATES,
    Action,
    Kind,
    State,
    deadline_state,
    notification_due,
    transition_for,
)
from casework.models import Case
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.crypto import DataKey, EncryptedField, new_data_key
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.models import Agency, Role, User
from core.notifications import notify, register_notification_kind

DEFAULT_NOTIFICATION_HOURS = 24
DEFAULT_WARNING_HOURS = 6
REFERENCE_PREFIX = "INR"
REFERENCE_DIGITS = 6
REFERENCE_ATTEMPTS = 8

# The encrypted fields of a report, by name (audit entries name them, never their values).
PERSON_FIELDS = ("person_name", "contact_details", "circumstances")

CALL_LANGUAGES = {"az": _l("Azerbaijani"), "ru": _l("Russian"), "en": _l("English")}

# The channels a notifying agency may name, and the default for each agency type.
NOTIFICATION_CHANNELS = (
    "consular_abroad",
    "partner_abroad",
    "border_check",
    "migration_service",
    "labour_inspection",
    "police_operation",
    "health_facility",
    "other",
)
DEFAULT_CHANNEL_BY_AGENCY_TYPE = {
    "consular": "consular_abroad",
    "border_service": "border_check",
    "migration_service": "migration_service",
    "labour_inspectorate": "labour_inspection",
    "international_org": "partner_abroad",
    "police": "police_operation",
    "health": "health_facility",
}


class CallerRelation(enum.StrEnum):
    """Who called the hotline: the person concerned, or someone on their behalf."""

    PERSON = "person"
    THIRD_PARTY = "third_party"

    @property
    def label(self) -> str:
        return str(CALLER_RELATION_LABELS[self])


CALLER_RELATION_LABELS = {
    CallerRelation.PERSON: _l("The person concerned"),
    CallerRelation.THIRD_PARTY: _l("Someone else (a relative, friend, neighbour...)"),
}


class ClosureReason(enum.StrEnum):
    """Why a report was closed without a case."""

    ADVICE_GIVEN = "advice_given"
    REFERRED_ELSEWHERE = "referred_elsewhere"
    NOT_TRAFFICKING = "not_trafficking"
    DECLINED_ASSISTANCE = "declined_assistance"
    UNREACHABLE = "unreachable"
    DUPLICATE = "duplicate"
    OTHER = "other"
    # Set by the sender's withdrawal only; never a choice when closing.
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return str(CLOSURE_REASON_LABELS[self])

    @classmethod
    def choices(cls) -> list[tuple[str, Any]]:
        """Return the reasons a receiver (or the operator at the call) may choose."""
        return [(reason.value, CLOSURE_REASON_LABELS[reason]) for reason in CHOSEN_REASONS]


CLOSURE_REASON_LABELS = {
    ClosureReason.ADVICE_GIVEN: _l("Advice or information given"),
    ClosureReason.REFERRED_ELSEWHERE: _l("Referred to another service"),
    ClosureReason.NOT_TRAFFICKING: _l("No indication of trafficking"),
    ClosureReason.DECLINED_ASSISTANCE: _l("The person declined assistance"),
    ClosureReason.UNREACHABLE: _l("The person could not be reached"),
    ClosureReason.DUPLICATE: _l("Already known (another report or case)"),
    ClosureReason.OTHER: _l("Other"),
    ClosureReason.WITHDRAWN: _l("Withdrawn by the sender"),
}
# The reasons chosen when closing; "withdrawn" comes with the sender's withdrawal only.
CHOSEN_REASONS = tuple(reason for reason in ClosureReason if reason is not ClosureReason.WITHDRAWN)

KIND_LABELS = {
    Kind.HOTLINE_CALL: _l("Hotline call"),
    Kind.AGENCY_NOTIFICATION: _l("Presumed-victim notification"),
}

# What the receiver sees of the state, and what the sender sees (status only).
STATE_LABELS = {
    State.NEW: _l("Being recorded"),
    State.SENT: _l("New"),
    State.ACKNOWLEDGED: _l("Acknowledged"),
    State.CONVERTED: _l("Case opened"),
    State.CLOSED: _l("Closed without a case"),
}
SENDER_STATE_LABELS = {
    State.NEW: _l("Being recorded"),
    State.SENT: _l("Sent"),
    State.ACKNOWLEDGED: _l("Received"),
    State.CONVERTED: _l("Case opened"),
    State.CLOSED: _l("Closed without a case"),
}
STATE_BADGES = {
    State.NEW: "",
    State.SENT: "badge--warn",
    State.ACKNOWLEDGED: "",
    State.CONVERTED: "badge--ok",
    State.CLOSED: "",
}
# A closed report whose sender withdrew it, for both sides.
WITHDRAWN_LABEL = _l("Withdrawn")

register_notification_kind("contact.received", _l("New incoming report"))
register_notification_kind("contact.withdrawn", _l("Incoming report withdrawn by the sender"))
register_notification_kind("contact.case_opened_for_agency", _l("Case opened for your agency"))
register_timeline_kind("contact.converted", _l("Case opened from an incoming report"))


class ContactError(ValueError):
    """A report change that cannot be made (shown to the user)."""


def notification_hours() -> int:
    """Return the hours within which a presumed victim is notified to the coordinator."""
    if not has_app_context():
        return DEFAULT_NOTIFICATION_HOURS
    return int(current_app.config.get("HAVEN_NRM_NOTIFICATION_HOURS", DEFAULT_NOTIFICATION_HOURS))


def warning_hours() -> int:
    """Return how many hours before the notification deadline a report is warned about."""
    if not has_app_context():
        return DEFAULT_WARNING_HOURS
    return int(
        current_app.config.get("HAVEN_NRM_NOTIFICATION_WARNING_HOURS", DEFAULT_WARNING_HOURS)
    )


def _zone() -> ZoneInfo:
    zone = "Asia/Baku"
    if has_app_context():
        zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", zone)
    return ZoneInfo(zone)


class IncomingReport(db.Model):
    """A hotline call or a presumed-victim notification: reported before there is a case."""

    __tablename__ = "incoming_reports"
    __table_args__ = (
        enum_check("kind", Kind),
        enum_check("state", State),
        enum_check("caller_relation", CallerRelation),
        enum_check("closure_reason", ClosureReason),
        CheckConstraint("call_language IN ('az', 'ru', 'en')", name="call_language_valid"),
        # A coded reason exactly when closed; a case exactly when converted.
        CheckConstraint(
            "(state = 'closed') = (closure_reason IS NOT NULL)", name="closed_has_reason"
        ),
        CheckConstraint("(state = 'converted') = (case_id IS NOT NULL)", name="converted_has_case"),
        # Only a hotline call may be closed at the call without a receiver.
        CheckConstraint(
            "kind = 'hotline_call' OR receiving_agency_id IS NOT NULL",
            name="notification_has_receiver",
        ),
        # A call records the caller's answer on being called back; a notification the
        # moment of identification.
        CheckConstraint(
            "kind <> 'hotline_call' OR callback_consent IS NOT NULL", name="call_has_consent"
        ),
        # Anonymous means no name at all.
        CheckConstraint("NOT anonymous OR person_name_enc IS NULL", name="anonymous_has_no_name"),
        Index("ix_incoming_reports_receiver_state", "receiving_agency_id", "state"),
        Index("ix_incoming_reports_sender_created", "sender_agency_id", "created_at"),
    )

    # A UUID set in __init__: the row id is bound into every ciphertext.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # Shown to people and in notifications, e.g. INR-2026-000012; says nothing about anyone.
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(enum_string(Kind))
    state: Mapped[str] = mapped_column(enum_string(State), default=State.NEW.value)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    data_key_id: Mapped[str] = mapped_column(ForeignKey("data_keys.id"))
    sender_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The agency it is routed or sent to (the national coordinator's, or an assistance
    # agency); None for a hotline call answered with advice only.
    receiving_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the person was identified (a notification) or the call was taken (a call).
    identified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The country rule's deadline, for a notification (identified + the configured hours).
    notification_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closure_reason: Mapped[str | None] = mapped_column(enum_string(ClosureReason))
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.id"), index=True)

    # Coded, in clear, for statistics (anonymous contacts count too).
    call_language: Mapped[str | None] = mapped_column(String(2))
    caller_relation: Mapped[str | None] = mapped_column(enum_string(CallerRelation))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_consent: Mapped[bool | None] = mapped_column(Boolean)
    incoming_returnee: Mapped[bool] = mapped_column(Boolean, default=False)
    intake_channel: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(40))
    sex: Mapped[str | None] = mapped_column(String(40))
    age_band: Mapped[str | None] = mapped_column(String(8))
    is_minor: Mapped[bool | None] = mapped_column(Boolean)
    # Codes of the exploitation_form list, comma-separated (a handful at most).
    exploitation_forms: Mapped[str | None] = mapped_column(String(400))

    # Encrypted under the report's own data key.
    person_name = EncryptedField()
    # How to call back safely (number, time, safe word) or how to reach the person.
    contact_details = EncryptedField()
    # What happened: the call's account or the circumstances of identification.
    circumstances = EncryptedField()

    data_key: Mapped[DataKey] = relationship(lazy="joined", innerjoin=True)
    sender_agency: Mapped[Agency] = relationship(foreign_keys=[sender_agency_id])
    receiving_agency: Mapped[Agency | None] = relationship(foreign_keys=[receiving_agency_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    case: Mapped[Case | None] = relationship(foreign_keys=[case_id])
    transitions: Mapped[list[IncomingReportTransition]] = relationship(
        back_populates="report",
        cascade="all, delete-orphan",
        order_by="IncomingReportTransition.id",
    )

    __mapper_args__ = {"version_id_col": version}

    def __init__(self, **kwargs: Any) -> None:
        # The id and data key first: encrypted fields need both.
        first = {"id": kwargs.pop("id", None) or new_uuid()}
        first["data_key"] = kwargs.pop("data_key", None) or new_data_key()
        encrypted = {name: kwargs.pop(name) for name in PERSON_FIELDS if name in kwargs}
        super().__init__(**first, **kwargs)
        for name, value in encrypted.items():
            setattr(self, name, value)

    def encryption_key(self) -> DataKey:
        """Return the report's own data key."""
        return self.data_key

    @property
    def state_enum(self) -> State:
        return State(self.state)

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[Kind(self.kind)])

    @property
    def is_call(self) -> bool:
        return self.kind == Kind.HOTLINE_CALL

    @property
    def is_open(self) -> bool:
        return self.state_enum in OPEN_STATES

    @property
    def to_coordinator(self) -> bool:
        """Whether it was sent straight to the national coordinator (the notification that
        the country rule asks for is then made)."""
        agency = self.receiving_agency
        return bool(agency is not None and agency.is_national_coordinator)

    @property
    def exploitation_form_codes(self) -> list[str]:
        return [code for code in (self.exploitation_forms or "").split(",") if code]

    @property
    def closure_reason_label(self) -> str | None:
        if self.closure_reason is None:
            return None
        return ClosureReason(self.closure_reason).label

    def deadline(self, now: datetime | None = None) -> str | None:
        """Return "overdue", "near" or None: the 24-hour rule while the receiver holds it.

        Sent straight to the coordinator, the notification is made: nothing to watch.
        """
        if self.to_coordinator:
            return None
        return deadline_state(
            self.state, self.notification_due_at, now or utcnow(), warning_hours()
        )

    def __repr__(self) -> str:
        return f"<IncomingReport {self.reference} {self.kind} {self.state}>"


class IncomingReportTransition(db.Model):
    """One move of a report's state: from, to, by whom, when (drives the status history)."""

    __tablename__ = "incoming_report_transitions"
    __table_args__ = (
        enum_check("from_state", State),
        enum_check("to_state", State),
        enum_check("action", Action),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(
        ForeignKey("incoming_reports.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str] = mapped_column(enum_string(State))
    to_state: Mapped[str] = mapped_column(enum_string(State))
    action: Mapped[str] = mapped_column(enum_string(Action))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    report: Mapped[IncomingReport] = relationship(back_populates="transitions")

    @property
    def to_label(self) -> str:
        return str(SENDER_STATE_LABELS[State(self.to_state)])


# The state machine ---------------------------------------------------------------------------


def transition(
    report: IncomingReport,
    action: Action,
    actor: User,
    *,
    closure_reason: str | None = None,
    case: Case | None = None,
    now: datetime | None = None,
) -> IncomingReport:
    """Move the report by the action, if the table allows it; the only writer of ``state``.

    :raises InvalidTransition: when the table has no such move.
    :raises ContactError: when the move's requirement (reason, case) is missing.
    """
    move = transition_for(report.state, action)
    now = now or utcnow()
    if action is Action.CLOSE:
        if closure_reason not in {reason.value for reason in CHOSEN_REASONS}:
            raise ContactError(_l("Please choose why it is closed."))
        report.closure_reason = closure_reason
        report.closed_at = now
    if action is Action.WITHDRAW:
        report.closure_reason = ClosureReason.WITHDRAWN.value
        report.closed_at = now
    if action is Action.CONVERT:
        if case is None:
            raise ContactError(_l("A case is needed."))
        report.case = case
        report.case_id = case.id
    if action is Action.ACKNOWLEDGE:
        report.acknowledged_at = now
    from_state = report.state
    report.state = move.next_state.value
    report.transitions.append(
        IncomingReportTransition(
            from_state=from_state,
            to_state=move.next_state.value,
            action=action.value,
            actor_user_id=actor.id,
            actor_agency_id=actor.agency_id,
            occurred_at=now,
        )
    )
    db.session.flush()
    fields = ["state"]
    if action in (Action.CLOSE, Action.WITHDRAW):
        fields.append("closure_reason")
    if action is Action.CONVERT:
        fields.append("case_id")
    audit.record(
        f"contact.{action.value}",
        object_type="incoming_report",
        object_id=report.id,
        field_names=fields,
        user=actor,
    )
    return report


# Recording and sending -----------------------------------------------------------------------


def next_reference(year: int) -> str:
    """Return the year's next report reference: the highest so far plus one."""
    prefix = f"{REFERENCE_PREFIX}-{year}-"
    highest = db.session.scalar(
        select(func.max(IncomingReport.reference)).where(
            IncomingReport.reference.startswith(prefix, autoescape=True)
        )
    )
    number = int(highest[len(prefix) :]) + 1 if highest else 1
    return f"{prefix}{number:0{REFERENCE_DIGITS}d}"


def _insert(report: IncomingReport) -> None:
    """Insert under the next reference, retrying in a savepoint when a concurrent insert took it."""
    year = report.created_at.astimezone(_zone()).year
    for _attempt in range(REFERENCE_ATTEMPTS):
        report.reference = next_reference(year)
        try:
            with db.session.begin_nested():
                db.session.add(report)
                db.session.flush()
        except IntegrityError as error:
            message = str(error.orig).lower()
            if "reference" not in message:
                raise
            continue
        return
    raise RuntimeError("could not allocate a report reference: too many concurrent inserts")


_CODED = (
    "country",
    "region",
    "sex",
    "age_band",
    "is_minor",
    "intake_channel",
    "incoming_returnee",
    "call_language",
    "caller_relation",
    "callback_consent",
    "anonymous",
)


def _new_report(
    user: User,
    kind: Kind,
    data: Mapping[str, Any],
    *,
    receiving_agency: Agency | None,
    identified_at: datetime,
    now: datetime,
) -> tuple[IncomingReport, list[str]]:
    coded = {name: data.get(name) for name in _CODED if name in data}
    coded["anonymous"] = bool(data.get("anonymous"))
    coded["incoming_returnee"] = bool(data.get("incoming_returnee"))
    if coded.get("country") != "AZ":
        # Regions are Azerbaijan's; identified abroad is the region "abroad".
        coded["region"] = "abroad" if coded.get("country") else None
    encrypted = {name: data.get(name) or None for name in PERSON_FIELDS}
    if coded["anonymous"]:
        encrypted["person_name"] = None
    forms = sorted(set(data.get("exploitation_form") or ()))
    report = IncomingReport(
        kind=kind.value,
        state=State.NEW.value,
        sender_agency_id=user.agency_id,
        created_by_id=user.id,
        receiving_agency_id=receiving_agency.id if receiving_agency is not None else None,
        created_at=now,
        identified_at=identified_at,
        exploitation_forms=",".join(forms) or None,
        **coded,
        **encrypted,
    )
    if receiving_agency is not None:
        report.receiving_agency = receiving_agency
    if kind is Kind.AGENCY_NOTIFICATION:
        report.notification_due_at = notification_due(identified_at, notification_hours())
    _insert(report)
    written = [name for name, value in {**coded, **encrypted}.items() if value not in (None, "")]
    audit.record(
        "contact.created",
        object_type="incoming_report",
        object_id=report.id,
        field_names=[*written, "kind", "receiving_agency_id"],
        user=user,
    )
    return report, written


def _notify_receiver(report: IncomingReport, now: datetime) -> None:
    agency = report.receiving_agency
    if agency is None:
        return
    notify(
        agency=agency,
        kind="contact.received",
        reference=report.reference,
        link=f"/contacts/{report.id}",
        now=now,
    )


def record_hotline_call(
    user: User,
    data: Mapping[str, Any],
    *,
    receiving_agency: Agency | None,
    now: datetime | None = None,
) -> IncomingReport:
    """Record a hotline call: routed to the receiving agency, or (None) closed as advice only.

    ``data`` holds the coded hints (country, region, sex, age_band, is_minor,
    exploitation_form, call_language, caller_relation, callback_consent, anonymous) and the
    encrypted fields (person_name, contact_details, circumstances).
    """
    now = now or utcnow()
    data = {**data, "intake_channel": "hotline"}
    report, _written = _new_report(
        user,
        Kind.HOTLINE_CALL,
        data,
        receiving_agency=receiving_agency,
        identified_at=now,
        now=now,
    )
    if receiving_agency is None:
        transition(report, Action.CLOSE, user, closure_reason=ClosureReason.ADVICE_GIVEN, now=now)
    else:
        transition(report, Action.SEND, user, now=now)
        _notify_receiver(report, now)
    return report


def send_notification(
    user: User,
    data: Mapping[str, Any],
    *,
    receiving_agency: Agency,
    identified_at: datetime,
    now: datetime | None = None,
) -> IncomingReport:
    """Send a presumed-victim notification to the coordinator or an assistance agency.

    :raises ContactError: for an identification moment in the future.
    """
    now = now or utcnow()
    if identified_at > now:
        raise ContactError(_l("The moment of identification cannot be in the future."))
    report, _written = _new_report(
        user,
        Kind.AGENCY_NOTIFICATION,
        data,
        receiving_agency=receiving_agency,
        identified_at=identified_at,
        now=now,
    )
    transition(report, Action.SEND, user, now=now)
    _notify_receiver(report, now)
    return report


def acknowledge_report(
    user: User, report: IncomingReport, *, now: datetime | None = None
) -> IncomingReport:
    """Record that the receiver has seen the report and works on it."""
    return transition(report, Action.ACKNOWLEDGE, user, now=now)


def close_report(
    user: User, report: IncomingReport, closure_reason: str, *, now: datetime | None = None
) -> IncomingReport:
    """Close the report without a case, with a coded reason.

    :raises ContactError: without a known reason.
    """
    return transition(report, Action.CLOSE, user, closure_reason=closure_reason, now=now)


def withdraw_report(
    user: User, report: IncomingReport, *, now: datetime | None = None
) -> IncomingReport:
    """Withdraw a report the user's agency sent, while the receiver has not acknowledged it:
    closed with the reason "withdrawn"; the receiver is told in the app.

    :raises InvalidTransition: once the receiver acknowledged it (or it is no longer open).
    """
    now = now or utcnow()
    transition(report, Action.WITHDRAW, user, now=now)
    if report.receiving_agency is not None:
        notify(
            agency=report.receiving_agency,
            kind="contact.withdrawn",
            reference=report.reference,
            link=f"/contacts/{report.id}",
            now=now,
        )
    return report


def state_label(report: IncomingReport, labels: Mapping[State, Any]) -> Any:
    """Return the report's state as ``labels`` name it, a withdrawal named as such."""
    if report.closure_reason == ClosureReason.WITHDRAWN.value:
        return WITHDRAWN_LABEL
    return labels[State(report.state)]


def convert_report(
    user: User,
    report: IncomingReport,
    case_data: Mapping[str, object],
    *,
    owner_agency: Agency | None = None,
    now: datetime | None = None,
) -> Case:
    """Open a case from the report with the intake typed, and link the report to it.

    The case's channel is the report's (``hotline`` for a call); the identifying agency
    type is the reporting agency's. ``owner_agency``: the agency the coordinator opens the
    case for (a caseworker opens it for the own agency).
    """
    from casework.services import open_case  # the intake service; imports this area's models

    now = now or utcnow()
    transition_for(report.state, Action.CONVERT)  # refuse before opening anything
    data = dict(case_data)
    data["intake_channel"] = report.intake_channel
    case = open_case(user, data, owner_agency=owner_agency)
    sender_type = report.sender_agency.type
    if case.identifying_agency_type != sender_type:
        case.identifying_agency_type = sender_type
        db.session.flush()
    transition(report, Action.CONVERT, user, case=case, now=now)
    add_timeline_event(
        case,
        "contact.converted",
        actor=user,
        object_type="incoming_report",
        object_id=report.id,
        occurred_at=now,
    )
    if owner_agency is not None and owner_agency.id != user.agency_id:
        notify(
            agency=owner_agency,
            kind="contact.case_opened_for_agency",
            reference=case.reference,
            link=f"/cases/{case.id}",
            now=now,
        )
    return case


# Reading -----------------------------------------------------------------------------------


def case_prefill(report: IncomingReport) -> dict[str, object]:
    """Return the intake form's data pre-filled from the report (decrypts: audit the read)."""
    data: dict[str, object] = {}
    name = (report.person_name or "").strip()
    if name:
        given, _space, family = name.partition(" ")
        data["given_name"] = given
        data["family_name"] = family or None
    lines = [report.circumstances or ""]
    if report.contact_details:
        lines.append(
            str(_l("How to reach the person: %(details)s", details=report.contact_details))
        )
    data["identification_circumstances"] = "\n\n".join(line for line in lines if line) or None
    data["identified_on"] = report.identified_at.astimezone(_zone()).date()
    data["identification_region"] = report.region
    data["sex"] = report.sex
    data["intake_channel"] = report.intake_channel
    data["exploitation_form"] = report.exploitation_form_codes
    if report.country and report.country != "AZ":
        data["destination_country"] = [report.country]
    if report.incoming_returnee:
        data["citizenship"] = "AZ"
    return data


def source_report(case: Case) -> IncomingReport | None:
    """Return the report the case was opened from, if any."""
    return db.session.scalars(
        select(IncomingReport).where(IncomingReport.case_id == case.id).limit(1)
    ).first()


def reported_identified_at(case: Case) -> datetime | None:
    """Return the identification moment of the notification the case came from, if any."""
    return db.session.scalar(
        select(IncomingReport.identified_at).where(
            IncomingReport.case_id == case.id,
            IncomingReport.kind == Kind.AGENCY_NOTIFICATION.value,
        )
    )


def reported_to_coordinator(case: Case) -> bool:
    """Return whether the case came from a report sent straight to the national coordinator
    (which counts as the notification the country rule asks for)."""
    query = (
        select(IncomingReport.id)
        .join(Agency, Agency.id == IncomingReport.receiving_agency_id)
        .where(IncomingReport.case_id == case.id, Agency.is_national_coordinator.is_(True))
    )
    return db.session.scalar(query.limit(1)) is not None


def open_incoming_count_query(user: Any) -> Select:
    """Select how many reports wait for the user's agency (the navigation badge)."""
    from core.policy import can_receive_reports, visible_incoming_reports

    if not can_receive_reports(user):
        return select(literal(0))
    query = visible_incoming_reports(user).where(
        IncomingReport.state.in_([state.value for state in OPEN_STATES])
    )
    return select(func.count()).select_from(query.order_by(None).subquery())


def open_incoming_count(user: Any) -> int:
    """Return how many reports wait for the user's agency."""
    return db.session.scalar(open_incoming_count_query(user)) or 0


def actions_for(user: Any, report: IncomingReport) -> list[Action]:
    """Return the actions the user may take on the report now (receiver's, or the sender's
    withdrawal)."""
    from core.policy import may

    return [
        action
        for action in (Action.ACKNOWLEDGE, Action.CONVERT, Action.CLOSE, Action.WITHDRAW)
        if may(user, f"{action.value}_report", report)
    ]


# Demo data ---------------------------------------------------------------------------------

# (sender key, kind, receiver key (None: advice only; "nrm": the coordinator), hours ago,
#  outcome, data). Outcomes: "open", "acknowledged", "converted" (by the receiver),
# "closed:<reason>", "withdrawn" (by the sender). Invented people and stories.
_DEMO_REPORTS: tuple[tuple[str, Kind, str | None, float, str, dict[str, Any]], ...] = (
    (
        "hotline",
        Kind.HOTLINE_CALL,
        "ngo",
        72,
        "converted",
        {
            "call_language": "az",
            "caller_relation": "person",
            "callback_consent": True,
            "person_name": "Nigar Əliyeva",
            "contact_details": "+994 55 210 44 17, weekdays after 19:00; safe word 'nar'",
            "circumstances": "Works in a café in Sumqayıt; the owner keeps her passport and "
            "her wages 'for the debt' of the trip from Ganja.",
            "country": "AZ",
            "region": "absheron_khizi",
            "sex": "Feminine",
            "age_band": "18-24",
            "is_minor": False,
            "exploitation_form": ["ForcedLabour"],
        },
    ),
    (
        "hotline",
        Kind.HOTLINE_CALL,
        None,
        50,
        "closed:advice_given",
        {
            "call_language": "ru",
            "caller_relation": "third_party",
            "callback_consent": False,
            "circumstances": "Мать спрашивает, как проверить агентство, которое предлагает "
            "дочери работу в Дубае. Дали советы и номер консульства.",
            "country": "AE",
            "sex": "Feminine",
            "age_band": "18-24",
        },
    ),
    (
        "hotline",
        Kind.HOTLINE_CALL,
        "shelter",
        5,
        "open",
        {
            "call_language": "az",
            "caller_relation": "person",
            "anonymous": True,
            "callback_consent": True,
            "contact_details": "Will call the hotline again tonight; no number given",
            "circumstances": "Calls from a borrowed phone; brought to Baku to 'work in a "
            "salon', not allowed to leave the flat.",
            "country": "AZ",
            "region": "baku",
            "sex": "Feminine",
            "age_band": "18-24",
            "exploitation_form": ["SexualExploitation"],
        },
    ),
    (
        "hotline",
        Kind.HOTLINE_CALL,
        "ngo",
        9,
        "acknowledged",
        {
            "call_language": "en",
            "caller_relation": "third_party",
            "callback_consent": True,
            "person_name": "Maria Santos",
            "contact_details": "Employer's neighbour, +994 50 301 22 90, mornings only",
            "circumstances": "A domestic worker from the Philippines has not left the house "
            "for months and says she is not paid.",
            "country": "AZ",
            "region": "baku",
            "sex": "Feminine",
            "age_band": "35-49",
            "is_minor": False,
            "exploitation_form": ["Servitude"],
        },
    ),
    (
        "consular",
        Kind.AGENCY_NOTIFICATION,
        "nrm",
        60,
        "converted",
        {
            "intake_channel": "consular_abroad",
            "incoming_returnee": True,
            "person_name": "Rövşən Məmmədov",
            "contact_details": "Staying at the consulate's partner shelter in Istanbul",
            "circumstances": "Construction worker in Istanbul; documents taken, unpaid for six "
            "months. Asked for a travel document to return home.",
            "country": "TR",
            "sex": "Masculine",
            "age_band": "25-34",
            "is_minor": False,
            "exploitation_form": ["ForcedLabour"],
        },
    ),
    (
        "consular",
        Kind.AGENCY_NOTIFICATION,
        "ngo",
        40,
        "converted",
        {
            "intake_channel": "consular_abroad",
            "incoming_returnee": True,
            "person_name": "Aytən Quliyeva",
            "contact_details": "Returning on the Istanbul–Baku flight on Friday",
            "circumstances": "Recruited as a nanny in Antalya; locked in and forced into "
            "prostitution. Escaped to the consulate.",
            "country": "TR",
            "sex": "Feminine",
            "age_band": "18-24",
            "is_minor": False,
            "exploitation_form": ["SexualExploitation"],
        },
    ),
    (
        "consular",
        Kind.AGENCY_NOTIFICATION,
        "ngo",
        30,
        "open",
        {
            "intake_channel": "consular_abroad",
            "incoming_returnee": True,
            "contact_details": "Via the labour attaché in Dubai",
            "circumstances": "Labour attaché reports a domestic worker whose employer holds "
            "her passport; she wants to go home.",
            "country": "AE",
            "sex": "Feminine",
            "age_band": "35-49",
            "exploitation_form": ["Servitude"],
        },
    ),
    (
        "border",
        Kind.AGENCY_NOTIFICATION,
        "nrm",
        6,
        "acknowledged",
        {
            "intake_channel": "border_check",
            "person_name": "Dilshod Karimov",
            "circumstances": "Young man travelling with a 'recruiter' who holds his passport "
            "and ticket; story inconsistent at the document check.",
            "country": "AZ",
            "region": "guba_khachmaz",
            "sex": "Masculine",
            "age_band": "18-24",
            "is_minor": False,
            "exploitation_form": ["ForcedLabour"],
        },
    ),
    (
        "border",
        Kind.AGENCY_NOTIFICATION,
        "shelter",
        3,
        "withdrawn",
        {
            "intake_channel": "border_check",
            "circumstances": "Sent to the wrong shelter by mistake; the border post withdrew "
            "it and notified the national coordinator instead.",
            "country": "AZ",
            "sex": "Feminine",
            "age_band": "25-34",
            "exploitation_form": ["SexualExploitation"],
        },
    ),
    (
        "labour",
        Kind.AGENCY_NOTIFICATION,
        "ngo",
        100,
        "closed:declined_assistance",
        {
            "intake_channel": "labour_inspection",
            "circumstances": "Inspection of a greenhouse: seasonal workers housed on site, "
            "wages withheld. One worker spoke of threats but declined help.",
            "country": "AZ",
            "region": "lankaran_astara",
            "sex": "Masculine",
            "age_band": "35-49",
            "exploitation_form": ["ForcedLabour"],
        },
    ),
)


def seed_demo_contacts(users: dict[str, User]) -> int:
    """Add the demo hotline calls and notifications once, through the services; return how
    many. ``users``: the demo caseworkers by agency key (core.demo)."""
    needed = {"hotline", "consular", "border", "labour", "ngo", "shelter"}
    if not needed <= set(users):
        return 0
    senders = [users[key].agency_id for key in ("hotline", "consular", "border", "labour")]
    if db.session.scalar(
        select(func.count(IncomingReport.id)).where(IncomingReport.sender_agency_id.in_(senders))
    ):
        return 0
    coordinator_agency = db.session.scalars(
        select(Agency).where(Agency.is_national_coordinator.is_(True))
    ).first()
    coordinator = None
    if coordinator_agency is not None:
        coordinator = next(
            (
                user
                for user in coordinator_agency.users
                if user.active and user.has_role(Role.COORDINATOR)
            ),
            None,
        )
    added = 0
    now = utcnow()
    for sender_key, kind, receiver_key, hours_ago, outcome, data in _DEMO_REPORTS:
        if receiver_key == "nrm":
            if coordinator is None:
                continue
            receiver, acting = coordinator_agency, coordinator
        elif receiver_key is None:
            receiver, acting = None, None
        else:
            receiver, acting = users[receiver_key].agency, users[receiver_key]
        at = now - timedelta(hours=hours_ago)
        if kind is Kind.HOTLINE_CALL:
            report = record_hotline_call(users[sender_key], data, receiving_agency=receiver, now=at)
        else:
            report = send_notification(
                users[sender_key], data, receiving_agency=receiver, identified_at=at, now=at
            )
        added += 1
        later = at + timedelta(hours=1)
        if outcome in ("acknowledged", "converted") and acting is not None:
            acknowledge_report(acting, report, now=later)
        if outcome == "converted" and acting is not None:
            case_data = _demo_case_data(report)
            owner = users["ngo"].agency if acting is coordinator else None
            convert_report(acting, report, case_data, owner_agency=owner, now=later)
        elif outcome.startswith("closed:") and acting is not None:
            close_report(acting, report, outcome.split(":", 1)[1], now=later)
        elif outcome == "withdrawn":
            withdraw_report(users[sender_key], report, now=later)
    db.session.flush()
    return added


def _demo_case_data(report: IncomingReport) -> dict[str, object]:
    """Return the intake a receiver would complete from the report's pre-filled form."""
    data = case_prefill(report)
    data["circumstances"] = report.circumstances
    if not data.get("given_name"):
        data["aliases"] = "Caller"
    data["identification_region"] = data.get("identification_region") or "abroad"
    data["languages_spoken"] = {"az": "Azerbaijani", "ru": "Russian", "en": "English"}.get(
        report.call_language or "az", "Azerbaijani"
    )
    return data
