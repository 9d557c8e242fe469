"""Service directory: what each agency offers, where, in which languages, to whom, and its
live capacity; and the queries that find providers for a referral.

Nothing here is personal data: it describes agencies. Service types are casework's
``ServiceType`` (the one list); regions are codes of the ``region`` reference list, or
nationwide; languages are ISO 639 codes from ``SERVICE_LANGUAGES`` named by CLDR in the
reader's language (Haven has no languages reference list).

Capacity is counted only for services with places (a shelter's beds): ``total_places`` set.
Its ``free_places`` is reported by the agency's supervisors; each report, even of the same
number, refreshes ``capacity_updated_at`` so readers can see how live the figure is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from babel import Locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    and_,
    exists,
    false,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, contains_eager, mapped_column, relationship

from casework.casefile import ServiceType
from casework.reference import collation_key, current_language
from core import policy
from core.db import UTCDateTime, db, enum_check, enum_string, utcnow
from core.models import Agency, User

# ISO 639-1 codes (and ISO 639-2 ``sgn``) a service may be offered in: the country's
# languages, those of the main countries of origin and destination, and sign language.
SERVICE_LANGUAGES = (
    "az",
    "ru",
    "en",
    "tr",
    "fa",
    "ka",
    "uk",
    "uz",
    "tk",
    "tg",
    "ky",
    "kk",
    "ar",
    "ur",
    "hi",
    "zh",
    "sgn",
)
# CLDR has no name for sign language in general.
_OWN_LANGUAGE_NAMES = {"sgn": _l("Sign language")}
# A capacity figure older than this is shown as possibly out of date.
CAPACITY_STALE_AFTER = timedelta(days=7)
MAX_PLACES = 10_000


class Eligibility(enum.StrEnum):
    """Who a service accepts (coarse groups, as agencies describe their mandate)."""

    WOMEN = "women"
    MEN = "men"
    CHILDREN = "children"
    FAMILIES = "families"

    @property
    def label(self) -> str:
        return str(ELIGIBILITY_LABELS[self])

    @property
    def column(self) -> str:
        return f"accepts_{self.value}"


ELIGIBILITY_LABELS = {
    Eligibility.WOMEN: _l("Women"),
    Eligibility.MEN: _l("Men"),
    Eligibility.CHILDREN: _l("Children"),
    Eligibility.FAMILIES: _l("Families"),
}


class CapacityState(enum.StrEnum):
    """How a service stands for places, in the order results are sorted."""

    FREE = "free"
    # Not counted in places (legal aid, interviews): not limited by a figure.
    UNCOUNTED = "uncounted"
    UNREPORTED = "unreported"
    FULL = "full"

    @property
    def label(self) -> str:
        return str(CAPACITY_STATE_LABELS[self])

    @property
    def badge_class(self) -> str:
        return CAPACITY_STATE_BADGES[self]

    @property
    def rank(self) -> int:
        return list(CapacityState).index(self)


CAPACITY_STATE_LABELS = {
    CapacityState.FREE: _l("Places free"),
    CapacityState.UNCOUNTED: _l("No place limit"),
    CapacityState.UNREPORTED: _l("Capacity not reported"),
    CapacityState.FULL: _l("Full"),
}
CAPACITY_STATE_BADGES = {
    CapacityState.FREE: "badge--ok",
    CapacityState.UNCOUNTED: "",
    CapacityState.UNREPORTED: "badge--warn",
    CapacityState.FULL: "badge--danger",
}


def language_label(code: str, language: str | None = None) -> str:
    """Return the name of a service language in the reader's language (CLDR), capitalised."""
    if code in _OWN_LANGUAGE_NAMES:
        return str(_OWN_LANGUAGE_NAMES[code])
    language = language or current_language()
    name = Locale.parse(language).languages.get(code) or code
    # CLDR writes Azerbaijani and Russian language names in lower case; Turkic casing
    # capitalises i as İ.
    first = "İ" if language == "az" and name[:1] == "i" else name[:1].upper()
    return first + name[1:]


def language_labels() -> dict[str, str]:
    """Return {code: name} of every service language, in the reader's language."""
    language = current_language()
    return {code: language_label(code, language) for code in SERVICE_LANGUAGES}


# Models ------------------------------------------------------------------------------------


class AgencyServiceRegion(db.Model):
    """One region (a ``region`` reference list code) where a service is offered."""

    __tablename__ = "agency_service_regions"

    service_id: Mapped[int] = mapped_column(
        ForeignKey("agency_services.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class AgencyServiceLanguage(db.Model):
    """One language (a ``SERVICE_LANGUAGES`` code) a service is offered in."""

    __tablename__ = "agency_service_languages"

    service_id: Mapped[int] = mapped_column(
        ForeignKey("agency_services.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True, index=True)


class AgencyService(db.Model):
    """A service an agency offers, where, to whom, and (for places) its live capacity."""

    __tablename__ = "agency_services"
    __table_args__ = (
        enum_check("service_type", ServiceType),
        # One entry per agency and type: its regions, languages and places say the rest.
        UniqueConstraint("agency_id", "service_type"),
        CheckConstraint(
            "accepts_women OR accepts_men OR accepts_children OR accepts_families",
            name="accepts_someone",
        ),
        CheckConstraint(
            f"total_places IS NULL OR (total_places >= 0 AND total_places <= {MAX_PLACES})",
            name="total_places_range",
        ),
        # Free places exist only for a service counted in places, and never exceed them.
        CheckConstraint(
            "free_places IS NULL OR (total_places IS NOT NULL "
            "AND free_places >= 0 AND free_places <= total_places)",
            name="free_places_within_total",
        ),
        # A figure always says when it was reported.
        CheckConstraint(
            "(free_places IS NULL) = (capacity_updated_at IS NULL)", name="capacity_dated"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    service_type: Mapped[str] = mapped_column(enum_string(ServiceType))
    # Offered in every region; the region rows are then ignored (and kept empty).
    nationwide: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_women: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_men: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_children: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_families: Mapped[bool] = mapped_column(Boolean, default=False)
    # Plain text about the agency ("Mon-Fri 9-18, hotline 24/7"); never about a person.
    contact_hours: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    total_places: Mapped[int | None] = mapped_column(Integer)
    free_places: Mapped[int | None] = mapped_column(Integer)
    capacity_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    capacity_updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Optimistic locking: an UPDATE that finds another version raises StaleDataError.
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    agency: Mapped[Agency] = relationship(lazy="joined")
    capacity_updated_by: Mapped[User | None] = relationship()
    region_rows: Mapped[list[AgencyServiceRegion]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    language_rows: Mapped[list[AgencyServiceLanguage]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": version}

    # Coded values ---------------------------------------------------------------------
    @property
    def service_type_label(self) -> str:
        return ServiceType(self.service_type).label

    @property
    def regions(self) -> list[str]:
        return sorted(row.region for row in self.region_rows)

    def set_regions(self, codes: Iterable[str]) -> None:
        wanted = set(codes)
        self.region_rows = [row for row in self.region_rows if row.region in wanted]
        present = {row.region for row in self.region_rows}
        for code in sorted(wanted - present):
            self.region_rows.append(AgencyServiceRegion(region=code))

    @property
    def languages(self) -> list[str]:
        order = {code: position for position, code in enumerate(SERVICE_LANGUAGES)}
        codes = [row.language for row in self.language_rows]
        return sorted(codes, key=lambda code: (order.get(code, len(order)), code))

    def set_languages(self, codes: Iterable[str]) -> None:
        wanted = set(codes)
        self.language_rows = [row for row in self.language_rows if row.language in wanted]
        present = {row.language for row in self.language_rows}
        for code in sorted(wanted - present):
            self.language_rows.append(AgencyServiceLanguage(language=code))

    @property
    def accepts(self) -> list[Eligibility]:
        return [group for group in Eligibility if getattr(self, group.column)]

    def set_accepts(self, groups: Iterable[Eligibility | str]) -> None:
        wanted = {Eligibility(group) for group in groups}
        for group in Eligibility:
            setattr(self, group.column, group in wanted)

    # Capacity -------------------------------------------------------------------------
    @property
    def counts_places(self) -> bool:
        return self.total_places is not None

    @property
    def capacity_state(self) -> CapacityState:
        if not self.counts_places:
            return CapacityState.UNCOUNTED
        if self.free_places is None:
            return CapacityState.UNREPORTED
        return CapacityState.FREE if self.free_places > 0 else CapacityState.FULL

    @property
    def capacity_age(self) -> timedelta | None:
        if self.capacity_updated_at is None:
            return None
        return max(utcnow() - self.capacity_updated_at, timedelta(0))

    @property
    def capacity_is_stale(self) -> bool:
        age = self.capacity_age
        return age is not None and age > CAPACITY_STALE_AFTER

    def __repr__(self) -> str:
        return f"<AgencyService {self.id} {self.agency_id}:{self.service_type}>"


# Queries ------------------------------------------------------------------------------------


def _listed():
    """The condition of a service anyone searching the directory may find."""
    return and_(AgencyService.active.is_(True), Agency.active.is_(True))


def visible_agency_services(user: Any) -> Select:
    """Return a select of the services the user may see, their agency loaded.

    Admins, who keep the directory: every service. Those who may manage their own agency's
    services (supervisors): the listed ones and every one of their agency, inactive ones
    included. Other directory users: active services of active agencies. Everyone else:
    nothing.
    """
    query = (
        select(AgencyService)
        .join(AgencyService.agency)
        .options(contains_eager(AgencyService.agency))
    )
    if policy.can_manage_agencies(user):
        return query
    if not policy.can_view_directory(user):
        return query.where(false())
    if policy.can_manage_agency_services(user, user.agency):
        return query.where(or_(_listed(), AgencyService.agency_id == user.agency_id))
    return query.where(_listed())


def search_services(
    service_type: str | None = None,
    *,
    region: str | None = None,
    language: str | None = None,
    accepts: str | None = None,
    with_capacity: bool = False,
    exclude_agency_id: int | None = None,
) -> list[AgencyService]:
    """Return the active services of active agencies matching every filter given, sorted
    like ``find_providers`` (any service type when none is given).

    A nationwide service matches every region. ``with_capacity`` keeps the services with
    free places and those not counted in places (they have no limit to reach).

    :raises ValueError: for an unknown service type or eligibility.
    """
    query = (
        select(AgencyService)
        .join(AgencyService.agency)
        .options(contains_eager(AgencyService.agency))
        .where(_listed())
    )
    if service_type:
        query = query.where(AgencyService.service_type == ServiceType(service_type).value)
    if region:
        query = query.where(
            or_(
                AgencyService.nationwide.is_(True),
                exists().where(
                    AgencyServiceRegion.service_id == AgencyService.id,
                    AgencyServiceRegion.region == region,
                ),
            )
        )
    if language:
        query = query.where(
            exists().where(
                AgencyServiceLanguage.service_id == AgencyService.id,
                AgencyServiceLanguage.language == language,
            )
        )
    if accepts:
        query = query.where(getattr(AgencyService, Eligibility(accepts).column).is_(True))
    if with_capacity:
        query = query.where(
            or_(AgencyService.total_places.is_(None), AgencyService.free_places > 0)
        )
    if exclude_agency_id is not None:
        query = query.where(AgencyService.agency_id != exclude_agency_id)
    return sort_services(db.session.scalars(query).unique())


def find_providers(
    service_type: str,
    *,
    region: str | None = None,
    language: str | None = None,
    accepts: str | None = None,
    with_capacity: bool = False,
    exclude_agency_id: int | None = None,
) -> list[AgencyService]:
    """Return the active services of active agencies offering the service type, filtered.

    For the referral form: ``exclude_agency_id`` leaves out the referring agency. Sorted
    with free places first, then services without a place limit, then unreported and full
    ones; within each, by agency name in the reader's alphabet.

    :raises ValueError: for an unknown service type or eligibility.
    """
    return search_services(
        ServiceType(service_type).value,
        region=region,
        language=language,
        accepts=accepts,
        with_capacity=with_capacity,
        exclude_agency_id=exclude_agency_id,
    )


def sort_services(services: Iterable[AgencyService]) -> list[AgencyService]:
    """Sort services by capacity state, then agency name (reader's alphabet), type, id."""
    language = current_language()
    order = {service_type: position for position, service_type in enumerate(ServiceType)}
    return sorted(
        services,
        key=lambda service: (
            service.capacity_state.rank,
            collation_key(service.agency.name, language),
            order.get(service.service_type, len(order)),
            service.id,
        ),
    )
