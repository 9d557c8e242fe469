"""Anonymous refusals: presumed victims who did not consent to enter the NRM, as codes only.

A person who refuses the national referral mechanism still counts in statistics, by the same
dimensions as a case, but nothing about them is kept that could identify them: no name, no
encrypted field, no free text, not even the day (only the month) of identification. Every
column of ``nrm_refusals`` and ``nrm_refusal_codes`` is a code, a boolean, the first day of a
month, an id or a timestamp; a test reads the table definitions and raw rows to prove it.

The coded columns carry the case's column names and reference-list codes (``sex``,
``age_band``, ``is_minor``, ``citizenship``, ``identification_region``,
``identifying_agency_type``, ``intake_channel``; ``month`` is the month identified, stored
as its first day), and the forms of exploitation are rows of a child table like
``case_codes``, so statistics aggregate refusals exactly as they aggregate cases.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from casework.models import ADULT_AGE, AGE_BANDS
from core import audit
from core.db import UTCDateTime, db, new_uuid, utcnow

if TYPE_CHECKING:
    from core.models import Agency, User

# The single-valued coded fields a user chooses, and the reference list of each (None: not
# a reference list). identifying_agency_type is never typed: it is the recorder's agency's.
REFUSAL_CODED_FIELDS: dict[str, str | None] = {
    "sex": "sex",
    "age_band": None,
    "citizenship": "country",
    "identification_region": "region",
    "intake_channel": "intake_channel",
    "refusal_reason": "refusal_reason",
}
# The multi-valued coded fields (rows of nrm_refusal_codes) and their reference lists.
REFUSAL_CODE_LISTS: dict[str, str] = {"exploitation_form": "exploitation_form"}
AGE_BAND_CODES = tuple(code for _lowest, code in reversed(AGE_BANDS))
MINOR_AGE_BANDS = frozenset(code for lowest, code in AGE_BANDS if lowest < ADULT_AGE)


def first_of_month(day: date) -> date:
    """Return the first day of the day's month: the only precision a refusal keeps."""
    return day.replace(day=1)


class NrmRefusal(db.Model):
    """One presumed victim who did not consent to enter the NRM: codes, never identity."""

    __tablename__ = "nrm_refusals"
    __table_args__ = (
        # The agency's list, newest first; statistics read by month.
        Index("ix_nrm_refusals_agency_created", "agency_id", "created_at"),
        Index("ix_nrm_refusals_month", "month"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # The agency that met the person and the staff member who recorded it.
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The month identified, as its first day (a day would help re-identify the person).
    month: Mapped[date] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(40))
    age_band: Mapped[str | None] = mapped_column(String(8))
    is_minor: Mapped[bool | None] = mapped_column(Boolean)
    citizenship: Mapped[str | None] = mapped_column(String(2))
    identification_region: Mapped[str | None] = mapped_column(String(40))
    identifying_agency_type: Mapped[str] = mapped_column(String(40))
    intake_channel: Mapped[str | None] = mapped_column(String(40))
    refusal_reason: Mapped[str] = mapped_column(String(40))
    # Whether advice or information was still given to the person.
    services_offered: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    codes: Mapped[list[NrmRefusalCode]] = relationship(
        back_populates="refusal", cascade="all, delete-orphan", passive_deletes=True
    )
    agency: Mapped[Agency] = relationship()

    @validates("month")
    def _month_only(self, _key: str, value: date) -> date:
        # The invariant is the model's: whatever the caller passes, only the month is kept.
        return first_of_month(value) if value is not None else value

    @property
    def identified_month(self) -> str:
        """Return the month identified (YYYY-MM), as ``Case.identified_month`` does."""
        return self.month.strftime("%Y-%m")

    def codes_in(self, list_name: str) -> list[str]:
        """Return the refusal's codes of one multi-valued field, sorted."""
        return sorted(row.code for row in self.codes if row.list_name == list_name)


class NrmRefusalCode(db.Model):
    """One value of a refusal's multi-valued coded field (forms of exploitation)."""

    __tablename__ = "nrm_refusal_codes"
    __table_args__ = (Index("ix_nrm_refusal_codes_list_code", "list_name", "code"),)

    refusal_id: Mapped[str] = mapped_column(
        ForeignKey("nrm_refusals.id", ondelete="CASCADE"), primary_key=True
    )
    list_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)

    refusal: Mapped[NrmRefusal] = relationship(back_populates="codes")


def minor_from(age_band: str | None, is_minor: bool | None) -> bool | None:
    """Return the minor flag: from the age band when one is known, else as given."""
    if age_band:
        return age_band in MINOR_AGE_BANDS
    return is_minor


def record_refusal(user: User, data: Mapping[str, Any]) -> NrmRefusal:
    """Record an anonymous refusal for the user's agency.

    ``data`` holds ``month`` (any day of it), the codes of ``REFUSAL_CODED_FIELDS``,
    ``is_minor``, ``services_offered`` and ``exploitation_form`` (codes). The identifying
    agency type is the user's agency's; the minor flag follows the age band when there is
    one. The audit entry names the fields, never their values.
    """
    values = {name: data.get(name) or None for name in REFUSAL_CODED_FIELDS}
    refusal = NrmRefusal(
        agency_id=user.agency_id,
        recorded_by_user_id=user.id,
        month=data["month"],
        identifying_agency_type=user.agency.type,
        is_minor=minor_from(values["age_band"], data.get("is_minor")),
        services_offered=bool(data.get("services_offered")),
        created_at=utcnow(),
        **values,
    )
    forms: Iterable[str] = data.get("exploitation_form") or ()
    for code in sorted(set(forms)):
        refusal.codes.append(NrmRefusalCode(list_name="exploitation_form", code=code))
    db.session.add(refusal)
    db.session.flush()
    fields = ["month", "identifying_agency_type", "services_offered"]
    fields += [name for name, value in values.items() if value is not None]
    if refusal.is_minor is not None:
        fields.append("is_minor")
    if refusal.codes:
        fields.append("exploitation_form")
    audit.record(
        "refusal.recorded",
        object_type="nrm_refusal",
        object_id=refusal.id,
        field_names=fields,
        user=user,
    )
    return refusal


# Demo data ----------------------------------------------------------------------------------

DEMO_REFUSAL_COUNT = 30
DEMO_REFUSAL_SEED = 7
# (agency key of the demo users, the intake channels its staff meet people through).
_DEMO_CHANNELS = {
    "ngo": ("outreach", "walk_in", "online"),
    "police": ("police_operation",),
    "hotline": ("hotline",),
    "consular": ("consular_abroad",),
    "border": ("border_check",),
    "migration": ("migration_service",),
    "labour": ("labour_inspection",),
    "health": ("health_facility",),
    "shelter": ("walk_in", "partner_abroad"),
}
_DEMO_REASONS = (
    "fear_of_traffickers",
    "fear_of_traffickers",
    "distrust_of_authorities",
    "wants_to_go_home",
    "wants_to_go_home",
    "does_not_see_self_as_victim",
    "family_pressure",
    "no_time_or_needs_work",
    "no_time_or_needs_work",
    "other",
)
_DEMO_FORMS = ("ForcedLabour", "SexualExploitation", "Servitude", "ForcedBegging")
_DEMO_CITIZENSHIPS = ("AZ", "AZ", "AZ", "UZ", "TJ", "KG", "NP", "IR")
_DEMO_REGIONS = ("baku", "absheron_khizi", "ganja_dashkasan", "lankaran_astara", "abroad")


def seed_demo_refusals(
    users: Mapping[str, User], today: date, count: int = DEMO_REFUSAL_COUNT
) -> int:
    """Record ``count`` demo refusals across the demo agencies, months, reasons and
    channels, through ``record_refusal``; once (none when those agencies have any)."""
    staff = {key: user for key, user in users.items() if key in _DEMO_CHANNELS}
    if not staff:
        return 0
    agency_ids = [user.agency_id for user in staff.values()]
    existing = db.session.scalar(
        select(func.count(NrmRefusal.id)).where(NrmRefusal.agency_id.in_(agency_ids))
    )
    if existing:
        return 0
    rng = random.Random(DEMO_REFUSAL_SEED)  # noqa: S311 - reproducible demo data, not secrets
    keys = sorted(staff)
    for number in range(count):
        key = keys[number % len(keys)]
        months_ago = rng.randrange(12)
        year, month = divmod(today.year * 12 + today.month - 1 - months_ago, 12)
        band = rng.choice(AGE_BAND_CODES[1:])  # now and then a child (12-17)
        forms = rng.sample(_DEMO_FORMS, rng.choice((1, 1, 2)))
        record_refusal(
            staff[key],
            {
                "month": date(year, month + 1, 1),
                "sex": rng.choice(("Feminine", "Feminine", "Masculine")),
                "age_band": band,
                "citizenship": rng.choice(_DEMO_CITIZENSHIPS),
                "identification_region": (
                    "abroad" if key == "consular" else rng.choice(_DEMO_REGIONS[:-1])
                ),
                "intake_channel": rng.choice(_DEMO_CHANNELS[key]),
                "refusal_reason": rng.choice(_DEMO_REASONS),
                "services_offered": rng.random() < 0.8,
                "exploitation_form": forms,
            },
        )
    return count
