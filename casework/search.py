"""Finding cases: the case list's filters, sorts and keyset pages, and the blind-index search.

Everything starts from ``visible_cases(user)``: a filter or a search only ever narrows the
cases the user may open. Search terms are personal data; they arrive in a POST body, are
turned into blind index values here and are never logged, audited or put in a URL.

Blind indexes are truncated on purpose (several records share each value), so every
candidate is decrypted and its normalised fields compared with the normalised terms before
it is returned (``probe_keys`` / ``case_keys``). Duplicate detection re-checks the same way.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import to_utc
from sqlalchemy import Select, and_, exists, or_, select, tuple_
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from casework.models import Case, CaseBlindIndex, CaseStatus
from core.crypto import (
    configured_index_bits,
    decrypt_value,
    document_number_index,
    name_birth_year_index,
    normalise_document_number,
    normalise_for_index,
    normalise_phone,
    phone_index,
)
from core.db import db
from core.forms import HavenForm
from core.models import User

PAGE_SIZE = 50
# A search never decrypts more candidates than this (a sane index gives a handful).
MAX_CANDIDATES = 200
# Multi-valued codes live in A's case_codes table under this list name.
EXPLOITATION_LIST = "exploitation_form"


class CaseSort(enum.StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    REFERENCE = "reference"


SORT_LABELS = {
    CaseSort.NEWEST: _l("Newest first"),
    CaseSort.OLDEST: _l("Oldest first"),
    CaseSort.REFERENCE: _l("By reference"),
}

STATUS_FILTER_LABELS = {
    "draft": _l("Draft"),
    CaseStatus.OPEN.value: _l("Open"),
    CaseStatus.CLOSED.value: _l("Closed"),
}
PERIOD_LABELS = {"opened": _l("Opened"), "identified": _l("Identified")}


# Normalised keys: what a blind index compares, compared again after decryption ------------


def probe_keys(
    *,
    given_name: str | None = None,
    family_name: str | None = None,
    birth_year: int | None = None,
    document_number: str | None = None,
    phone: str | None = None,
) -> dict[str, str]:
    """Return the normalised text each blind index hashes, by index name (parts missing: none)."""
    keys = {}
    given = normalise_for_index(given_name or "")
    family = normalise_for_index(family_name or "")
    if given and family and birth_year is not None:
        keys["name_birth_year"] = f"{family}|{given}|{int(birth_year):04d}"
    document = normalise_document_number(document_number or "")
    if document:
        keys["document_number"] = document
    number = normalise_phone(phone or "")
    if number:
        keys["phone"] = number
    return keys


def case_keys(case: Case) -> dict[str, str]:
    """Return the normalised keys of a case's decrypted person fields."""
    birth = case.date_of_birth
    return probe_keys(
        given_name=case.given_name,
        family_name=case.family_name,
        birth_year=birth.year if birth else None,
        document_number=case.document_number,
        phone=case.phone,
    )


def probe_index_values(keys: Mapping[str, str], **parts: Any) -> dict[str, int]:
    """Return the blind index values for search terms, computed as the case's own indexes."""
    bits = configured_index_bits()
    table = Case.__tablename__
    values: dict[str, int | None] = {}
    if "name_birth_year" in keys:
        values["name_birth_year"] = name_birth_year_index(
            parts["given_name"], parts["family_name"], parts["birth_year"], table=table, bits=bits
        )
    if "document_number" in keys:
        values["document_number"] = document_number_index(
            parts["document_number"], table=table, bits=bits
        )
    if "phone" in keys:
        values["phone"] = phone_index(parts["phone"], table=table, bits=bits)
    return {name: value for name, value in values.items() if value is not None}


# Search ------------------------------------------------------------------------------------


class CaseSearchForm(HavenForm):
    """The search: POSTed with its CSRF token, so the terms never reach a URL or a log."""

    reference = StringField(_l("Reference"), validators=[Optional(), Length(max=20)])
    given_name = StringField(_l("Given name"), validators=[Optional(), Length(max=100)])
    family_name = StringField(_l("Family name"), validators=[Optional(), Length(max=100)])
    birth_year = IntegerField(
        _l("Year of birth"), validators=[Optional(), NumberRange(min=1900, max=2100)]
    )
    document_number = StringField(
        _l("Identity document number"), validators=[Optional(), Length(max=60)]
    )
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])

    def terms(self) -> dict[str, Any]:
        return {
            "reference": (self.reference.data or "").strip(),
            "given_name": self.given_name.data or "",
            "family_name": self.family_name.data or "",
            "birth_year": self.birth_year.data,
            "document_number": self.document_number.data or "",
            "phone": self.phone.data or "",
        }


@dataclass(frozen=True)
class SearchResult:
    cases: list[Case]
    # Names of what the search looked up: "reference" and/or blind index names.
    searched_on: tuple[str, ...]
    # True when the terms held nothing searchable (a name without a birth year, say).
    incomplete: bool = False
    matched_on: dict[str, tuple[str, ...]] = field(default_factory=dict)


def search_cases(user: User, terms: Mapping[str, Any]) -> SearchResult:
    """Return the visible cases matching any of the terms, each re-checked after decryption.

    A reference matches exactly, ignoring case. Names (given + family + birth year),
    document number and phone go through their blind index, restricted to the visible
    scope; every candidate is decrypted and kept only if its normalised field equals the
    normalised term, since a truncated index value is shared by unrelated records.
    """
    from core.policy import visible_cases

    scope = visible_cases(user)
    found: dict[str, Case] = {}
    matched: dict[str, set[str]] = {}
    searched: list[str] = []

    reference = (terms.get("reference") or "").strip().upper()
    if reference:
        searched.append("reference")
        # References are stored upper-case, so this equality uses the unique index.
        for case in db.session.scalars(scope.where(Case.reference == reference)):
            found[case.id] = case
            matched.setdefault(case.id, set()).add("reference")

    parts = {
        name: terms.get(name)
        for name in ("given_name", "family_name", "birth_year", "document_number", "phone")
    }
    keys = probe_keys(**parts)
    values = probe_index_values(keys, **parts)
    if values:
        searched.extend(sorted(values))
        condition = or_(
            *(
                and_(CaseBlindIndex.index_name == name, CaseBlindIndex.value == value)
                for name, value in values.items()
            )
        )
        candidates = scope.where(
            Case.id.in_(select(CaseBlindIndex.case_id).where(condition))
        ).limit(MAX_CANDIDATES)
        for case in db.session.scalars(candidates):
            if case.is_erased:
                continue
            confirmed = {name for name, key in case_keys(case).items() if keys.get(name) == key}
            if confirmed:
                found[case.id] = case
                matched.setdefault(case.id, set()).update(confirmed)

    typed_something = any(bool(value) for value in terms.values())
    cases = sorted(found.values(), key=lambda case: (case.created_at, case.id), reverse=True)
    return SearchResult(
        cases=cases,
        searched_on=tuple(searched),
        incomplete=typed_something and not searched,
        matched_on={case_id: tuple(sorted(names)) for case_id, names in matched.items()},
    )


# The list's filters --------------------------------------------------------------------------


def exploitation_form_choices(keep: str | None = None) -> list[SelectChoice]:
    """Return the exploitation-form codes to filter on, from the reference lists."""
    from casework.reference import choices_for

    codes = choices_for(EXPLOITATION_LIST, keep=[keep] if keep else [])
    return [SelectChoice("", _l("Any"))] + [SelectChoice(code, label) for code, label in codes]


def nrm_status_choices() -> list[SelectChoice]:
    """Return the NRM statuses to filter on, labelled as on the case page (one source)."""
    # Imported here: casework.intake imports the services, which import this module.
    from casework.intake import NRM_LABELS

    return [SelectChoice("", _l("Any"))] + [
        SelectChoice(status.value, label) for status, label in NRM_LABELS.items()
    ]


class CaseFilterForm(HavenForm):
    """The list's filters: a GET form (it changes nothing, and holds no personal data)."""

    class Meta:
        csrf = False

    status = SelectField(
        _l("Status"),
        choices=[SelectChoice("", _l("Any"))]
        + [SelectChoice(value, label) for value, label in STATUS_FILTER_LABELS.items()],
        default="",
    )
    nrm_status = SelectField(
        _l("NRM status"),
        choices=[SelectChoice("", _l("Any"))],  # the statuses are added per form
        default="",
    )
    mine = SelectField(
        _l("Assigned to"),
        choices=[SelectChoice("", _l("Anyone")), SelectChoice("me", _l("Me"))],
        default="",
    )
    exploitation = SelectField(_l("Form of exploitation"), default="")
    minor = SelectField(
        _l("Minor"),
        choices=[
            SelectChoice("", _l("Any")),
            SelectChoice("yes", _l("Minors only")),
            SelectChoice("no", _l("Adults only")),
        ],
        default="",
    )
    # The child path: minors' cases whose guardian appointment is overdue.
    guardian = SelectField(
        _l("Guardian"),
        choices=[SelectChoice("", _l("Any")), SelectChoice("overdue", _l("Guardian overdue"))],
        default="",
    )
    # Return and reintegration: cases with a follow-up visit past its due day.
    follow_up = SelectField(
        _l("Follow-up"),
        choices=[SelectChoice("", _l("Any")), SelectChoice("overdue", _l("Follow-up overdue"))],
        default="",
    )
    period = SelectField(
        _l("Date"),
        choices=[SelectChoice(value, label) for value, label in PERIOD_LABELS.items()],
        default="opened",
    )
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To (inclusive)"), validators=[Optional()])
    sort = SelectField(
        _l("Sort"),
        choices=[SelectChoice(sort.value, label) for sort, label in SORT_LABELS.items()],
        default=CaseSort.NEWEST.value,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nrm_status.choices = nrm_status_choices()
        self.exploitation.choices = exploitation_form_choices(keep=self.exploitation.data)

    def criteria(self) -> CaseCriteria:
        """Return the valid filter values; an invalid one is ignored (and shown as an error)."""
        available = available_filters()
        data = {
            name: fld.data
            for name, fld in self._fields.items()
            if not fld.errors and (name in available or name == "sort")
        }
        sort = data.get("sort") or CaseSort.NEWEST.value
        return CaseCriteria(
            status=data.get("status") or None,
            nrm_status=data.get("nrm_status") or None,
            assigned_to_me=data.get("mine") == "me",
            exploitation_form=data.get("exploitation") or None,
            minor={"yes": True, "no": False}.get(data.get("minor") or ""),
            guardian_overdue=data.get("guardian") == "overdue",
            follow_up_overdue=data.get("follow_up") == "overdue",
            period=data.get("period") or "opened",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            sort=CaseSort(sort) if sort in CaseSort._value2member_map_ else CaseSort.NEWEST,
        )


@dataclass(frozen=True)
class CaseCriteria:
    status: str | None = None
    nrm_status: str | None = None
    assigned_to_me: bool = False
    exploitation_form: str | None = None
    minor: bool | None = None
    guardian_overdue: bool = False
    follow_up_overdue: bool = False
    period: str = "opened"
    date_from: date | None = None
    date_to: date | None = None
    sort: CaseSort = CaseSort.NEWEST


def _local_midnight_utc(day: date) -> datetime:
    """Return the start of a day in the user's time zone, as an aware UTC datetime."""
    return to_utc(datetime.combine(day, time.min)).replace(tzinfo=UTC)


def filtered_cases(user: User, criteria: CaseCriteria) -> Select:
    """Return the visible cases narrowed by the criteria (no order, no limit)."""
    from core.policy import visible_cases

    query = visible_cases(user)
    if criteria.status:
        query = query.where(Case.status == criteria.status)
    if criteria.nrm_status:
        query = query.where(_column("nrm_status") == criteria.nrm_status)
    if criteria.assigned_to_me:
        query = query.where(Case.assigned_user_id == user.id)
    if criteria.minor is not None:
        query = query.where(_column("is_minor").is_(criteria.minor))
    if criteria.guardian_overdue:
        from casework.child_protection import guardian_overdue_condition  # the child path

        query = query.where(guardian_overdue_condition())
    if criteria.follow_up_overdue:
        from casework.reintegration import overdue_condition  # return and reintegration

        query = query.where(overdue_condition())
    if criteria.exploitation_form:
        codes = db.metadata.tables["case_codes"]
        query = query.where(
            exists().where(
                codes.c.case_id == Case.id,
                codes.c.list_name == EXPLOITATION_LIST,
                codes.c.code == criteria.exploitation_form,
            )
        )
    if criteria.period == "identified":
        identified = _column("identified_on")
        if criteria.date_from:
            query = query.where(identified >= criteria.date_from)
        if criteria.date_to:
            query = query.where(identified <= criteria.date_to)
    else:
        if criteria.date_from:
            query = query.where(Case.created_at >= _local_midnight_utc(criteria.date_from))
        if criteria.date_to:
            end = _local_midnight_utc(criteria.date_to + timedelta(days=1))
            query = query.where(Case.created_at < end)
    return query


def _column(name: str):
    """Return a Case column the intake work adds; a clear error until it exists."""
    column = getattr(Case, name, None)
    if column is None:
        raise LookupError(f"cases.{name} does not exist yet")
    return column


def available_filters() -> frozenset[str]:
    """Return the names of the filters the current Case model supports."""
    names = {"status", "mine", "period", "date_from", "date_to", "sort", "follow_up"}
    if hasattr(Case, "nrm_status"):
        names.add("nrm_status")
    if hasattr(Case, "is_minor"):
        names.update(("minor", "guardian"))
    if "case_codes" in db.metadata.tables:
        names.add("exploitation")
    if not hasattr(Case, "identified_on"):
        names.discard("period")
    return frozenset(names)


# Keyset pages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    cases: list[Case]
    is_first: bool
    # Id of the last case shown, when more follow; the next page starts after it.
    next_after: str | None


def _order(sort: CaseSort) -> tuple:
    if sort is CaseSort.OLDEST:
        return (Case.created_at.asc(), Case.id.asc())
    if sort is CaseSort.REFERENCE:
        # References are unique: one column is a total order.
        return (Case.reference.asc(),)
    return (Case.created_at.desc(), Case.id.desc())


def _after(sort: CaseSort, anchor: Any):
    if sort is CaseSort.OLDEST:
        return tuple_(Case.created_at, Case.id) > tuple_(anchor.created_at, anchor.id)
    if sort is CaseSort.REFERENCE:
        return Case.reference > anchor.reference
    return tuple_(Case.created_at, Case.id) < tuple_(anchor.created_at, anchor.id)


@dataclass(frozen=True, slots=True)
class _ListedKey:
    """A case's data key columns, all ``decrypt_value`` reads."""

    id: str
    kek_id: str
    wrapped: bytes | None
    destroyed_at: datetime | None


class ListedCase:
    """What the case list shows of a case, read without the ORM; names decrypted on read.

    The ORM would build an instance with some 40 attributes per row (and decrypting goes
    through the same ``decrypt_value`` either way); the list reads seven columns.
    """

    __slots__ = ("_key", "_names", "created_at", "id", "reference", "status")

    def __init__(self, row: Any) -> None:
        self.id = row.id
        self.reference = row.reference
        self.status = row.status
        self.created_at = row.created_at
        self._key = _ListedKey(row.data_key_id, row.kek_id, row.wrapped, row.destroyed_at)
        self._names = {name: getattr(row, f"{name}_enc") for name in LISTED_NAMES}

    @property
    def is_erased(self) -> bool:
        return self._key.destroyed_at is not None

    def _decrypted(self, name: str) -> str | None:
        plaintext = decrypt_value(
            self._key, self._names[name], table="cases", column=f"{name}_enc", row_id=self.id
        )
        return None if plaintext is None else plaintext.decode("utf-8")

    @property
    def given_name(self) -> str | None:
        return self._decrypted("given_name")

    @property
    def family_name(self) -> str | None:
        return self._decrypted("family_name")

    @property
    def aliases(self) -> str | None:
        return self._decrypted("aliases")


# The person fields the list shows (read with ListedCase).
LISTED_NAMES = ("given_name", "family_name", "aliases")


def _listed(query: Select) -> list[ListedCase]:
    """Run a select of Cases as plain rows of what the list shows (same filters and order)."""
    from core.crypto import DataKey

    columns = (
        Case.id,
        Case.reference,
        Case.status,
        Case.created_at,
        Case.data_key_id,
        DataKey.kek_id,
        DataKey.wrapped,
        DataKey.destroyed_at,
        *(getattr(Case, f"_{name}_enc").label(f"{name}_enc") for name in LISTED_NAMES),
    )
    rows = db.session.execute(
        query.with_only_columns(*columns).join(DataKey, DataKey.id == Case.data_key_id)
    )
    return [ListedCase(row) for row in rows]


class BadAnchor(LookupError):
    """The page anchor is not a case the user may see (or not a case id at all)."""


def case_page(
    user: User,
    criteria: CaseCriteria,
    after: str | None,
    *,
    size: int | None = None,
    listed: bool = False,
) -> Page:
    """Return one keyset page of the filtered cases, in the criteria's order.

    ``listed``: return ``ListedCase`` rows (id, reference, status, created_at and the names,
    decrypted on first read) read without the ORM, for the case list, instead of Cases.

    The anchor is looked up through the visible scope (not the filter), so a case that
    stopped matching the filter still anchors the next page.

    :raises BadAnchor: when ``after`` is not a visible case's id.
    """
    from core.policy import visible_cases

    size = size or PAGE_SIZE
    query = filtered_cases(user, criteria).order_by(*_order(criteria.sort)).limit(size + 1)
    if after is not None:
        try:
            case_id = str(uuid.UUID(after))
        except ValueError:
            raise BadAnchor(after) from None
        anchor = db.session.execute(
            visible_cases(user)
            .with_only_columns(Case.created_at, Case.id, Case.reference)
            .where(Case.id == case_id)
        ).first()
        if anchor is None:
            raise BadAnchor(after)
        query = query.where(_after(criteria.sort, anchor))
    cases = _listed(query) if listed else list(db.session.scalars(query))
    more = len(cases) > size
    cases = cases[:size]
    return Page(cases, is_first=after is None, next_after=cases[-1].id if more else None)
