"""Cases: the record itself, its encrypted person fields and its blind indexes."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import (
    DataKey,
    EncryptedField,
    configured_index_bits,
    destroy_data_key,
    document_number_index,
    forget_plaintext,
    name_birth_year_index,
    new_data_key,
    phone_index,
)
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow

if TYPE_CHECKING:
    from core.models import Agency, User


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


# The blind indexes every case carries (see core.crypto): name + birth year, document, phone.
BLIND_INDEX_NAMES = ("name_birth_year", "document_number", "phone")


class Case(db.Model):
    """A person's case: owner agency, state, and personal data encrypted under its own key."""

    __tablename__ = "cases"
    __table_args__ = (
        enum_check("status", CaseStatus),
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

    given_name = EncryptedField()
    family_name = EncryptedField()
    aliases = EncryptedField()
    date_of_birth = EncryptedField(kind="date")
    phone = EncryptedField()
    document_number = EncryptedField()
    address = EncryptedField()
    circumstances = EncryptedField()

    # Joined: every read of a person field needs the key, so fetch it with the case.
    data_key: Mapped[DataKey] = relationship(lazy="joined", innerjoin=True)
    owner_agency: Mapped[Agency] = relationship(foreign_keys=[owner_agency_id])
    assigned_user: Mapped[User | None] = relationship(foreign_keys=[assigned_user_id])
    blind_indexes: Mapped[list[CaseBlindIndex]] = relationship(
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

    def encryption_key(self) -> DataKey:
        """Return the data key this case's fields are encrypted under."""
        return self.data_key

    @property
    def is_erased(self) -> bool:
        """Whether the case's personal data was crypto-shredded."""
        return self.data_key.is_destroyed

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
