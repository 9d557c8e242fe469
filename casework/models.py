"""Cases: the record itself, its encrypted person fields and its blind indexes."""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import (
    DataKey,
    EncryptedField,
    configured_index_bits,
    destroy_data_key,
    document_number_index,
    encrypted_fields,
    forget_plaintext,
    name_birth_year_index,
    new_data_key,
    phone_index,
)
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow

if TYPE_CHECKING:
    from casework.supervision import CaseRestriction
    from core.models import Agency, User


class CaseStatus(enum.StrEnum):
    # A draft is an intake saved before it was complete: no required fields, and it does not
    # count in statistics until it is opened.
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return str(CASE_STATUS_LABELS[self])


CASE_STATUS_LABELS = {
    CaseStatus.DRAFT: _l("Draft"),
    CaseStatus.OPEN: _l("Open"),
    CaseStatus.CLOSED: _l("Closed"),
}


class NrmStatus(enum.StrEnum):
    """The national referral mechanism's decision on the person's victim status."""

    PRESUMED = "presumed"
    PENDING_DECISION = "pending_decision"
    RECOGNISED = "recognised"
    NOT_RECOGNISED = "not_recognised"


# While the status is still open, the reflection period matters and is warned about.
NRM_UNDECIDED = frozenset({NrmStatus.PRESUMED, NrmStatus.PENDING_DECISION})

# Age bands at identification (DESIGN): (lowest age, band code), checked from the top.
AGE_BANDS = ((50, "50+"), (35, "35-49"), (25, "25-34"), (18, "18-24"), (12, "12-17"), (0, "0-11"))
ADULT_AGE = 18
DEFAULT_REFLECTION_PERIOD_DAYS = 30
DEFAULT_REFLECTION_WARNING_DAYS = 5

# The multi-valued coded fields kept in case_codes, and the reference list of each.
CODE_LISTS = {
    "exploitation_form": "exploitation_form",
    "origin_country": "country",
    "transit_country": "country",
    "destination_country": "country",
    "means_of_control": "means_of_control",
}


def local_today() -> date:
    """Return today's date where Haven is used (the configured time zone)."""
    zone = "Asia/Baku"
    if has_app_context():
        zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", zone)
    return datetime.now(ZoneInfo(zone)).date()


def age_on(birth: date, day: date) -> int:
    """Return the age in whole years on the day (a birthday on the day counts)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(age: int | None) -> str | None:
    """Return the statistics band of an age, or None when the age is unknown."""
    if age is None or age < 0:
        return None
    return next(code for lowest, code in AGE_BANDS if age >= lowest)


def _config_int(name: str, default: int) -> int:
    if has_app_context():
        return int(current_app.config.get(name, default))
    return default


# The blind indexes every case carries (see core.crypto): name + birth year, document, phone.
BLIND_INDEX_NAMES = ("name_birth_year", "document_number", "phone")


class Case(db.Model):
    """A person's case: owner agency, state, and personal data encrypted under its own key."""

    __tablename__ = "cases"
    __table_args__ = (
        enum_check("status", CaseStatus),
        enum_check("nrm_status", NrmStatus),
        # The case list pages newest first inside one agency (keyset on created_at, id).
        Index("ix_cases_owner_created", "owner_agency_id", "created_at", "id"),
    )

    # A UUID set in __init__, not at flush: the row id is bound into every ciphertext.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # Shown to people instead of the id, e.g. HVN-2026-000123; says nothing about the person.
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    owner_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(enum_string(CaseStatus), default=CaseStatus.OPEN.value)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    data_key_id: Mapped[str] = mapped_column(ForeignKey("data_keys.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Coded fields in clear, for statistics: codes of casework.reference lists, coarse on
    # purpose. identified_on keeps the day (needed for the reflection period and the age at
    # identification; a day alone identifies nobody); statistics use its month only.
    sex: Mapped[str | None] = mapped_column(String(40))
    age_band: Mapped[str | None] = mapped_column(String(8))
    is_minor: Mapped[bool | None] = mapped_column(Boolean)
    citizenship: Mapped[str | None] = mapped_column(String(2))
    identification_region: Mapped[str | None] = mapped_column(String(40))
    identified_on: Mapped[date | None] = mapped_column(Date)
    identifying_agency_type: Mapped[str | None] = mapped_column(String(40))
    industry: Mapped[str | None] = mapped_column(String(40))
    recruitment_type: Mapped[str | None] = mapped_column(String(40))
    # How the case reached Haven: an intake_channel list code (hotline, walk_in...).
    intake_channel: Mapped[str | None] = mapped_column(String(40))
    interpreter_needed: Mapped[bool] = mapped_column(Boolean, default=False)

    # Closure and erasure (supervision): closure_reason is a closure_reason list code.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closure_reason: Mapped[str | None] = mapped_column(String(40))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # National referral mechanism status and the reflection and recovery period.
    nrm_status: Mapped[str] = mapped_column(
        enum_string(NrmStatus), default=NrmStatus.PRESUMED.value
    )
    nrm_decided_on: Mapped[date | None] = mapped_column(Date)
    nrm_decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reflection_period_ends_on: Mapped[date | None] = mapped_column(Date)

    given_name = EncryptedField()
    family_name = EncryptedField()
    aliases = EncryptedField()
    date_of_birth = EncryptedField(kind="date")
    place_of_birth = EncryptedField()
    document_type = EncryptedField()
    phone = EncryptedField()
    document_number = EncryptedField()
    address = EncryptedField()
    # Guardian for a minor.
    contact_person = EncryptedField()
    languages_spoken = EncryptedField()
    # Whole years, as text; only the derived band and minor flag are in clear.
    estimated_age = EncryptedField()
    identification_circumstances = EncryptedField()
    circumstances = EncryptedField()
    exploitation_narrative = EncryptedField()
    recruitment_narrative = EncryptedField()
    medical_notes = EncryptedField()

    # Joined: every read of a person field needs the key, so fetch it with the case.
    data_key: Mapped[DataKey] = relationship(lazy="joined", innerjoin=True)
    owner_agency: Mapped[Agency] = relationship(foreign_keys=[owner_agency_id])
    assigned_user: Mapped[User | None] = relationship(foreign_keys=[assigned_user_id])
    nrm_decided_by: Mapped[User | None] = relationship(foreign_keys=[nrm_decided_by_id])
    blind_indexes: Mapped[list[CaseBlindIndex]] = relationship(
        back_populates="case", cascade="all, delete-orphan", passive_deletes=True
    )
    # Read by the access policy on every case it checks; loaded with the case by case_or_404
    # so a page asks once (None is remembered too). Written only by casework.supervision.
    restriction: Mapped[CaseRestriction | None] = relationship(
        "CaseRestriction", viewonly=True, uselist=False
    )
    codes: Mapped[list[CaseCode]] = relationship(
        back_populates="case", cascade="all, delete-orphan", passive_deletes=True
    )

    # Optimistic locking: an UPDATE that finds another version raises StaleDataError.
    __mapper_args__ = {"version_id_col": version}

    def __init__(self, **kwargs: Any) -> None:
        # The id and the data key must exist before any encrypted field is assigned, so they
        # go first, whatever order the caller passed them in.
        first = {"id": kwargs.pop("id", None) or new_uuid()}
        first["data_key"] = kwargs.pop("data_key", None) or new_data_key()
        super().__init__(**first, **kwargs)

    @property
    def status_label(self) -> str:
        return CaseStatus(self.status).label

    def encryption_key(self) -> DataKey:
        """Return the data key this case's fields are encrypted under."""
        return self.data_key

    @property
    def is_erased(self) -> bool:
        """Whether the case's personal data was crypto-shredded."""
        return self.data_key.is_destroyed

    @property
    def is_draft(self) -> bool:
        return self.status == CaseStatus.DRAFT

    @property
    def identified_month(self) -> str | None:
        """Return the month identified (YYYY-MM), the precision statistics use."""
        return self.identified_on.strftime("%Y-%m") if self.identified_on else None

    def codes_in(self, list_name: str) -> list[str]:
        """Return the case's codes of one multi-valued field, sorted."""
        return sorted(row.code for row in self.codes if row.list_name == list_name)

    def set_codes(self, list_name: str, codes: list[str] | tuple[str, ...] | set[str]) -> bool:
        """Make the field hold exactly these codes; return whether anything changed."""
        if list_name not in CODE_LISTS:
            raise KeyError(f"unknown case code list {list_name!r}")
        wanted = set(codes)
        changed = False
        for row in list(self.codes):
            if row.list_name != list_name:
                continue
            if row.code in wanted:
                wanted.discard(row.code)
            else:
                self.codes.remove(row)
                changed = True
        for code in sorted(wanted):
            self.codes.append(CaseCode(list_name=list_name, code=code))
            changed = True
        return changed

    def age_at_identification(self) -> int | None:
        """Return the age on the identification day, from the birth date or the estimate."""
        day = self.identified_on or (self.created_at.date() if self.created_at else local_today())
        birth = self.date_of_birth
        if birth is not None:
            return age_on(birth, day)
        estimate = self.estimated_age
        if estimate is not None and str(estimate).strip().isdigit():
            return int(str(estimate).strip())
        return None

    def derive_coded_fields(self) -> list[str]:
        """Recompute age band, minor flag and reflection end; return the names that changed.

        Called by the services whenever the fields they derive from change. The reflection
        period runs from identification (or from opening when the day is not known).
        """
        age = self.age_at_identification()
        start = self.identified_on or (self.created_at.date() if self.created_at else local_today())
        days = _config_int("HAVEN_REFLECTION_PERIOD_DAYS", DEFAULT_REFLECTION_PERIOD_DAYS)
        wanted = {
            "age_band": age_band(age),
            "is_minor": None if age is None else age < ADULT_AGE,
            "reflection_period_ends_on": start + timedelta(days=days),
        }
        changed = []
        for name, value in wanted.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed.append(name)
        return changed

    def reflection_state(self, today: date | None = None, warning_days: int | None = None) -> str:
        """Return "none", "running", "ending" (within the warning days) or "ended".

        Once the NRM decided, the period no longer needs watching: "none".
        """
        if self.reflection_period_ends_on is None or self.nrm_status not in NRM_UNDECIDED:
            return "none"
        today = today or local_today()
        if warning_days is None:
            warning_days = _config_int(
                "HAVEN_REFLECTION_WARNING_DAYS", DEFAULT_REFLECTION_WARNING_DAYS
            )
        if today > self.reflection_period_ends_on:
            return "ended"
        if (self.reflection_period_ends_on - today).days <= warning_days:
            return "ending"
        return "running"

    @property
    def reflection_warning(self) -> str | None:
        """Return "ending" or "ended" when the reflection period needs attention, else None."""
        state = self.reflection_state()
        return state if state in ("ending", "ended") else None

    def blind_index_values(self) -> dict[str, int]:
        """Return this case's blind index values by index name (missing parts give none)."""
        bits = configured_index_bits()
        birth = self.date_of_birth
        values = {
            "name_birth_year": name_birth_year_index(
                self.given_name,
                self.family_name,
                birth.year if birth else None,
                table=self.__tablename__,
                bits=bits,
            ),
            "document_number": document_number_index(
                self.document_number, table=self.__tablename__, bits=bits
            ),
            "phone": phone_index(self.phone, table=self.__tablename__, bits=bits),
        }
        return {name: value for name, value in values.items() if value is not None}

    def refresh_blind_indexes(self) -> None:
        """Bring the blind index rows in line with the current person fields."""
        wanted = self.blind_index_values()
        # Update rows in place: a delete plus insert of the same (case, index) in one flush
        # would hit the unique constraint, as the unit of work inserts before it deletes.
        for row in list(self.blind_indexes):
            if row.index_name in wanted:
                row.value = wanted.pop(row.index_name)
            else:
                self.blind_indexes.remove(row)
        for index_name, value in wanted.items():
            self.blind_indexes.append(CaseBlindIndex(index_name=index_name, value=value))

    def erase_personal_data(self) -> None:
        """Crypto-shred the case: destroy its data key and delete its blind indexes."""
        destroy_data_key(self.data_key)
        # The data key does not cover blind indexes; they go in the same transaction.
        self.blind_indexes.clear()
        forget_plaintext(self)

    def __repr__(self) -> str:
        return f"<Case {self.reference}>"


class CaseRecord:
    """Mixin for a row that belongs to one case and is encrypted under the case's data key.

    The row id (a UUID, for models with an ``id`` key) is set first and the encrypted fields
    last, after the case: the row id is bound into every ciphertext and the case supplies
    the key.
    """

    case: Mapped[Case]

    def __init__(self, **kwargs: Any) -> None:
        fields = encrypted_fields(type(self))
        encrypted = {name: kwargs.pop(name) for name in list(kwargs) if name in fields}
        if "id" in type(self).__mapper__.columns:
            kwargs["id"] = kwargs.get("id") or new_uuid()
        super().__init__(**kwargs)
        for name, value in encrypted.items():
            setattr(self, name, value)

    def encryption_key(self) -> DataKey:
        """Return the data key of the case this row belongs to."""
        return self.case.data_key


class CaseBlindIndex(db.Model):
    """One blind index value of a case, for exact search and duplicate detection."""

    __tablename__ = "case_blind_indexes"
    __table_args__ = (
        UniqueConstraint("case_id", "index_name"),
        Index("ix_case_blind_indexes_lookup", "index_name", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    index_name: Mapped[str] = mapped_column(String(40))
    # At most 32 bits today (see blind_index_bits); BIGINT leaves room up to 63.
    value: Mapped[int] = mapped_column(BigInteger)

    case: Mapped[Case] = relationship(back_populates="blind_indexes")


class CaseCode(db.Model):
    """One value of a multi-valued coded field (forms of exploitation, countries...)."""

    __tablename__ = "case_codes"
    __table_args__ = (
        # Statistics count cases per code: look up by (list, code).
        Index("ix_case_codes_list_code", "list_name", "code"),
    )

    case_id: Mapped[str] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    list_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)

    case: Mapped[Case] = relationship(back_populates="codes")
