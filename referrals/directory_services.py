"""Writes behind the service directory: agencies' services and their live capacity, audited.

Every function takes model objects and plain data, checks what the database cannot (codes
from the lists, the coordinator-only service, free places within the total), flushes,
writes one audit entry naming the fields it touched (never their values) and returns the
service. Nothing here commits. A rule broken raises ``DirectoryError`` before anything is
changed; a save over someone else's newer version raises ``EditConflict``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from casework.casefile import ServiceType
from casework.reference import is_valid_code
from core import audit
from core.db import db, utcnow
from core.models import Agency
from referrals.directory import MAX_PLACES, SERVICE_LANGUAGES, AgencyService, Eligibility

# What a service says about itself besides its type: the names audited on creation.
SERVICE_FIELDS = (
    "service_type",
    "nationwide",
    "regions",
    "languages",
    "accepts_women",
    "accepts_men",
    "accepts_children",
    "accepts_families",
    "contact_hours",
    "notes",
    "total_places",
    "active",
)
CAPACITY_FIELDS = ("free_places", "capacity_updated_at", "capacity_updated_by_user_id")


class DirectoryError(ValueError):
    """A change the rules refuse; ``field`` names the form field it concerns, if any."""

    def __init__(self, message: object, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return str(self.message)


class EditConflict(Exception):
    """The service changed since the user loaded it (another version was saved)."""


# Checks -------------------------------------------------------------------------------------


def _check_type(agency: Agency, service_type: str, service: AgencyService | None) -> str:
    try:
        service_type = ServiceType(service_type).value
    except ValueError:
        raise DirectoryError(_l("Please choose from the list."), field="service_type") from None
    if service_type == ServiceType.STATUS_DECISION and not agency.is_national_coordinator:
        raise DirectoryError(
            _l("Only the national coordinator decides victim status."), field="service_type"
        )
    query = select(AgencyService.id).where(
        AgencyService.agency_id == agency.id, AgencyService.service_type == service_type
    )
    if service is not None and service.id is not None:
        query = query.where(AgencyService.id != service.id)
    if db.session.scalar(query) is not None:
        raise DirectoryError(
            _l("This agency already lists this service; edit that entry instead."),
            field="service_type",
        )
    return service_type


def _check_where(nationwide: bool, regions: Iterable[str]) -> list[str]:
    # Nationwide covers every region: region rows next to it would only disagree with it.
    codes = [] if nationwide else sorted(set(regions))
    if not nationwide and not codes:
        raise DirectoryError(_l("Choose the regions served, or nationwide."), field="regions")
    if any(not is_valid_code("region", code) for code in codes):
        raise DirectoryError(_l("Please choose from the list."), field="regions")
    return codes


def _check_languages(languages: Iterable[str]) -> list[str]:
    codes = sorted(set(languages))
    if not codes:
        raise DirectoryError(_l("Choose at least one language."), field="languages")
    if any(code not in SERVICE_LANGUAGES for code in codes):
        raise DirectoryError(_l("Please choose from the list."), field="languages")
    return codes


def _check_accepts(accepts: Iterable[str]) -> set[Eligibility]:
    try:
        groups = {Eligibility(group) for group in accepts}
    except ValueError:
        raise DirectoryError(_l("Please choose from the list."), field="accepts") from None
    if not groups:
        raise DirectoryError(_l("Choose whom the service accepts."), field="accepts")
    return groups


def _check_places(places: int | None, field: str) -> int | None:
    if places is not None and not 0 <= places <= MAX_PLACES:
        raise DirectoryError(_l("Enter a number from 0 to %(max)d.", max=MAX_PLACES), field=field)
    return places


def _check_version(service: AgencyService, expected_version: int | None) -> None:
    if expected_version is not None and service.version != expected_version:
        raise EditConflict


def _flush() -> None:
    try:
        db.session.flush()
    except StaleDataError as error:
        # Another transaction committed a new version between our read and our UPDATE.
        raise EditConflict from error


# Services -----------------------------------------------------------------------------------


def create_service(
    agency: Agency,
    *,
    service_type: str,
    nationwide: bool = False,
    regions: Iterable[str] = (),
    languages: Iterable[str],
    accepts: Iterable[str],
    contact_hours: str = "",
    notes: str = "",
    total_places: int | None = None,
    actor=None,
) -> AgencyService:
    """List a service the agency offers.

    :raises DirectoryError: for a type the agency lists already (or may not offer), a code
        not in its list, no region, language or group, or places out of range.
    """
    service_type = _check_type(agency, service_type, None)
    region_codes = _check_where(nationwide, regions)
    language_codes = _check_languages(languages)
    groups = _check_accepts(accepts)
    total_places = _check_places(total_places, "total_places")
    service = AgencyService(
        agency=agency,
        service_type=service_type,
        nationwide=bool(nationwide),
        contact_hours=(contact_hours or "").strip(),
        notes=(notes or "").strip(),
        total_places=total_places,
        active=True,
    )
    service.set_regions(region_codes)
    service.set_languages(language_codes)
    service.set_accepts(groups)
    db.session.add(service)
    db.session.flush()
    audit.record(
        "directory.service_created",
        object_type="agency_service",
        object_id=service.id,
        field_names=SERVICE_FIELDS,
        user=actor,
    )
    return service


def update_service(
    service: AgencyService,
    *,
    service_type: str,
    nationwide: bool,
    regions: Iterable[str],
    languages: Iterable[str],
    accepts: Iterable[str],
    contact_hours: str,
    notes: str,
    total_places: int | None,
    expected_version: int | None = None,
    actor=None,
) -> AgencyService:
    """Change what the service says about itself (not its reported free places).

    Removing the place count drops the reported figure with it; a total below the free
    places reported now is refused (the supervisors report the free places first).

    :raises EditConflict: when the service is no longer at ``expected_version``.
    :raises DirectoryError: as ``create_service`` does, and for a total below the free places.
    """
    _check_version(service, expected_version)
    service_type = _check_type(service.agency, service_type, service)
    region_codes = _check_where(nationwide, regions)
    language_codes = _check_languages(languages)
    groups = _check_accepts(accepts)
    total_places = _check_places(total_places, "total_places")
    if (
        total_places is not None
        and service.free_places is not None
        and service.free_places > total_places
    ):
        raise DirectoryError(
            _l(
                "%(free)d places are reported free now: report the free places first, "
                "then lower the total.",
                free=service.free_places,
            ),
            field="total_places",
        )
    changed = []
    plain = {
        "service_type": service_type,
        "nationwide": bool(nationwide),
        "contact_hours": (contact_hours or "").strip(),
        "notes": (notes or "").strip(),
        "total_places": total_places,
    }
    for name, value in plain.items():
        if getattr(service, name) != value:
            setattr(service, name, value)
            changed.append(name)
    if service.regions != region_codes:
        service.set_regions(region_codes)
        changed.append("regions")
    if service.languages != sorted(language_codes, key=SERVICE_LANGUAGES.index):
        service.set_languages(language_codes)
        changed.append("languages")
    for group in Eligibility:
        if getattr(service, group.column) != (group in groups):
            setattr(service, group.column, group in groups)
            changed.append(group.column)
    if total_places is None and service.free_places is not None:
        # No longer counted in places: a figure of free places would mean nothing.
        service.free_places = None
        service.capacity_updated_at = None
        service.capacity_updated_by_user_id = None
        changed.extend(CAPACITY_FIELDS)
    if not changed:
        return service
    # Region and language rows alone would not touch the service row: this makes the
    # UPDATE (and its version check) happen for every change.
    service.updated_at = utcnow()
    _flush()
    audit.record(
        "directory.service_updated",
        object_type="agency_service",
        object_id=service.id,
        field_names=changed,
        user=actor,
    )
    return service


def update_capacity(
    service: AgencyService, *, free_places: int, expected_version: int | None = None, actor=None
) -> AgencyService:
    """Report the service's free places now; the same figure again still dates it anew.

    :raises EditConflict: when the service is no longer at ``expected_version`` (someone
        reported or edited in between).
    :raises DirectoryError: for a service not counted in places, or a figure outside
        0 to the total.
    """
    _check_version(service, expected_version)
    if not service.counts_places:
        raise DirectoryError(_l("This service is not counted in places."))
    if free_places is None or not 0 <= free_places <= service.total_places:
        raise DirectoryError(
            _l("Enter a number from 0 to %(max)d.", max=service.total_places),
            field="free_places",
        )
    service.free_places = free_places
    service.capacity_updated_at = utcnow()
    service.capacity_updated_by_user_id = actor.id if actor is not None else None
    _flush()
    audit.record(
        "directory.capacity_updated",
        object_type="agency_service",
        object_id=service.id,
        field_names=CAPACITY_FIELDS,
        user=actor,
    )
    return service


def deactivate_service(service: AgencyService, *, actor=None) -> AgencyService:
    """Take the service out of the directory (kept for the referrals that named it)."""
    return _set_active(service, False, actor)


def reactivate_service(service: AgencyService, *, actor=None) -> AgencyService:
    """Put a deactivated service back in the directory."""
    return _set_active(service, True, actor)


def _set_active(service: AgencyService, active: bool, actor) -> AgencyService:
    if service.active == active:
        return service
    service.active = active
    service.updated_at = utcnow()
    _flush()
    audit.record(
        "directory.service_reactivated" if active else "directory.service_deactivated",
        object_type="agency_service",
        object_id=service.id,
        field_names=("active",),
        user=actor,
    )
    return service
