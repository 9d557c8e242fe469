"""Agencies, users, their roles, sessions and recovery codes."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.crypto import DataKey, EncryptedField
from core.db import UTCDateTime, db, enum_check, enum_string, utcnow


class AgencyType(enum.StrEnum):
    NGO = "ngo"
    SHELTER = "shelter"
    HEALTH = "health"
    POLICE = "police"
    LABOUR_INSPECTORATE = "labour_inspectorate"
    BORDER_SERVICE = "border_service"
    MIGRATION_SERVICE = "migration_service"
    CHILD_PROTECTION = "child_protection"
    LEGAL_AID = "legal_aid"
    HOTLINE = "hotline"
    CONSULAR = "consular"
    INTERNATIONAL_ORG = "international_org"
    OMBUDSMAN = "ombudsman"
    MINISTRY = "ministry"

    @property
    def label(self) -> str:
        return str(AGENCY_TYPE_LABELS[self])


AGENCY_TYPE_LABELS = {
    AgencyType.NGO: _l("NGO"),
    AgencyType.SHELTER: _l("Shelter"),
    AgencyType.HEALTH: _l("Health provider"),
    AgencyType.POLICE: _l("Police counter-trafficking unit"),
    AgencyType.LABOUR_INSPECTORATE: _l("Labour inspectorate"),
    AgencyType.BORDER_SERVICE: _l("Border service"),
    AgencyType.MIGRATION_SERVICE: _l("Migration service"),
    AgencyType.CHILD_PROTECTION: _l("Child protection"),
    AgencyType.LEGAL_AID: _l("Legal aid"),
    AgencyType.HOTLINE: _l("Hotline"),
    AgencyType.CONSULAR: _l("Consular post"),
    AgencyType.INTERNATIONAL_ORG: _l("International organisation"),
    AgencyType.OMBUDSMAN: _l("Ombudsman"),
    AgencyType.MINISTRY: _l("Ministry"),
}


class Role(enum.StrEnum):
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    COORDINATOR = "coordinator"
    ANALYST = "analyst"
    ADMIN = "admin"
    AUDITOR = "auditor"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])


ROLE_LABELS = {
    Role.CASEWORKER: _l("Caseworker"),
    Role.SUPERVISOR: _l("Supervisor"),
    Role.COORDINATOR: _l("National coordinator"),
    Role.ANALYST: _l("Analyst"),
    Role.ADMIN: _l("Administrator"),
    Role.AUDITOR: _l("Auditor"),
}


class Agency(db.Model):
    __tablename__ = "agencies"
    __table_args__ = (
        enum_check("type", AgencyType),
        # At most one national coordinator, even when two admins save at the same moment.
        Index(
            "uq_agencies_one_national_coordinator",
            "is_national_coordinator",
            unique=True,
            sqlite_where=text("is_national_coordinator"),
            postgresql_where=text("is_national_coordinator"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(enum_string(AgencyType))
    is_national_coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    # False for agencies that identify people but hold no case file (consular posts, border
    # and migration services, labour inspectorates): they send presumed-victim notifications
    # (casework.contacts) instead of opening cases.
    keeps_case_files: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="agency")

    @property
    def type_label(self) -> str:
        return AgencyType(self.type).label

    def __repr__(self) -> str:
        return f"<Agency {self.id} {self.type}>"


class UserRole(db.Model):
    __tablename__ = "user_roles"
    __table_args__ = (enum_check("role", Role),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(enum_string(Role), primary_key=True)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(5), default="en")
    # Notification e-mails (reference and link only); the user may turn them off.
    notify_by_email: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    data_key_id: Mapped[str | None] = mapped_column(ForeignKey("data_keys.id"))
    totp_secret = EncryptedField()
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last accepted 30-second step, so a TOTP code is accepted once only.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on logout-everywhere, password change, deactivation and role change:
    # every session created under an older epoch is refused on its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agency: Mapped[Agency] = relationship(back_populates="users", lazy="joined")
    data_key: Mapped[DataKey | None] = relationship()
    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    # Flask-Login protocol -------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active and self.agency.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    # Roles -----------------------------------------------------------------
    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(row.role) for row in self.role_rows)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def set_roles(self, roles: set[Role] | list[Role]) -> None:
        wanted = {Role(role).value for role in roles}
        self.role_rows = [row for row in self.role_rows if row.role in wanted]
        present = {row.role for row in self.role_rows}
        for role in sorted(wanted - present):
            self.role_rows.append(UserRole(role=role))

    @property
    def has_totp(self) -> bool:
        return self.totp_confirmed_at is not None

    def encryption_key(self) -> DataKey:
        if self.data_key is None:
            from core.crypto import new_data_key

            self.data_key = new_data_key()
        return self.data_key

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class UserSession(db.Model):
    """A server-side login session; the cookie holds only its random token."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the token in the cookie, so a database dump cannot replay sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False until the second factor is passed (or enrolment finished).
    second_factor_done: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship()


class RecoveryCode(db.Model):
    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
