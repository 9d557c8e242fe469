"""Writes to cases: intake (draft or open) under a fresh reference, edits under optimistic locks.

Services take model objects and plain data, flush, write the audit entry (field names only)
and the timeline event, and return the object; the view or CLI command that called them
commits. Coded values are validated by the forms against the reference lists; services
trust their callers (demo data, tests) on that point.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from casework.duplicates import detect_duplicates
from casework.models import CODE_LISTS, Case, CaseStatus
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.db import db, utcnow
from core.models import Agency, User

# The encrypted person fields; the forms and templates use the same tuple.
PERSON_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "aliases",
    "date_of_birth",
    "estimated_age",
    "place_of_birth",
    "document_type",
    "document_number",
    "phone",
    "address",
    "contact_person",
    "languages_spoken",
    "identification_circumstances",
    "circumstances",
    "exploitation_narrative",
    "recruitment_narrative",
    "medical_notes",
)

# Single-valued coded fields in clear, and the reference list each one's codes come from.
CODED_FIELDS: dict[str, str | None] = {
    "sex": "sex",
    "citizenship": "country",
    "identification_region": "region",
    "identified_on": None,
    "industry": "industry",
    "recruitment_type": "recruitment_type",
    "intake_channel": "intake_channel",
    "interpreter_needed": None,
}

# Multi-valued coded fields (rows of case_codes) and their reference lists.
CODE_LIST_FIELDS: dict[str, str] = dict(CODE_LISTS)

# Every field a caseworker types, in form order groups: person, coded, multi-valued.
CASE_FIELDS: tuple[str, ...] = (*PERSON_FIELDS, *CODED_FIELDS, *CODE_LIST_FIELDS)

register_timeline_kind("case.draft_saved", _l("Intake saved as a draft"))
register_timeline_kind("case.intake_completed", _l("Intake completed, case opened"))

REFERENCE_PREFIX = "HVN"
REFERENCE_DIGITS = 6
# Two requests opening a case at the same moment may pick the same number; the unique
# constraint turns that into an IntegrityError and the loser tries the next number.
REFERENCE_ATTEMPTS = 8


class EditConflict(Exception):
    """The case changed since the user loaded it; nothing was saved."""


class ReferenceExhausted(RuntimeError):
    """No free reference could be allocated (the year ran out of numbers, or endless races)."""


def open_case(
    user: User,
    data: Mapping[str, object],
    *,
    draft: bool = False,
    owner_agency: Agency | None = None,
) -> Case:
    """Open a case (or save a draft intake) for the user's agency, assigned to the user.

    ``data`` holds any of ``CASE_FIELDS``; the age band, minor flag and reflection period
    end are derived, the identifying agency type is copied from the user's agency.
    ``owner_agency``: another agency the case is opened for, unassigned (the national
    coordinator turning an incoming report into a case, casework.contacts).

    :raises ReferenceExhausted: when no reference could be allocated.
    """
    owner_agency_id = owner_agency.id if owner_agency is not None else user.agency_id
    case = Case(
        owner_agency_id=owner_agency_id,
        assigned_user_id=user.id if owner_agency_id == user.agency_id else None,
        status=(CaseStatus.DRAFT if draft else CaseStatus.OPEN).value,
        created_at=utcnow(),
        identifying_agency_type=user.agency.type,
        interpreter_needed=False,
    )
    changed = _apply_fields(case, data)
    case.derive_coded_fields()
    case.refresh_blind_indexes()
    _insert_with_reference(case)
    audit.record(
        "case.created", object_type="case", object_id=case.id, field_names=changed, user=user
    )
    add_timeline_event(
        case,
        "case.draft_saved" if draft else "case.opened",
        actor=user,
        object_type="case",
        object_id=case.id,
        field_names=changed,
    )
    detect_duplicates(case, actor=user)
    return case


def update_case(
    user: User,
    case: Case,
    data: Mapping[str, object],
    *,
    expected_version: int,
    open_draft: bool = False,
) -> Case:
    """Change the case's fields, unless it moved past the version the user edited.

    Only fields whose value changed are written (and named in the audit entry); saving an
    unchanged form changes nothing and bumps no version. ``open_draft`` turns a draft into
    an open case (the caller validated it as complete).

    :raises EditConflict: when the case is no longer at ``expected_version``, checked here
        and again by the database (the UPDATE names the version it expects).
    """
    if case.version != expected_version:
        raise EditConflict
    changed = _apply_fields(case, data)
    changed += case.derive_coded_fields()
    opened = open_draft and case.is_draft
    if opened:
        case.status = CaseStatus.OPEN.value
        changed.append("status")
    if not changed:
        return case
    # Rows of case_codes alone would not touch the case row: this makes the UPDATE (and its
    # version check) happen for every change.
    case.updated_at = utcnow()
    case.refresh_blind_indexes()
    try:
        db.session.flush()
    except StaleDataError as error:
        # Another transaction committed a new version between our read and our UPDATE.
        raise EditConflict from error
    audit.record(
        "case.updated", object_type="case", object_id=case.id, field_names=changed, user=user
    )
    add_timeline_event(
        case,
        "case.intake_completed" if opened else "case.updated",
        actor=user,
        object_type="case",
        object_id=case.id,
        field_names=changed,
    )
    detect_duplicates(case, actor=user)
    return case


def person_values(case: Case) -> dict[str, object]:
    """Return the case's decrypted person fields by name."""
    return {name: getattr(case, name) for name in PERSON_FIELDS}


def case_values(case: Case) -> dict[str, object]:
    """Return every field the intake form edits: person fields decrypted, codes as lists."""
    values = person_values(case)
    values.update({name: getattr(case, name) for name in CODED_FIELDS})
    values.update({name: case.codes_in(name) for name in CODE_LIST_FIELDS})
    return values


def conflicting_fields(case: Case, typed: Mapping[str, object]) -> list[str]:
    """Return the names of the fields whose saved value differs from what the user typed."""
    saved = case_values(case)
    return [
        name
        for name in CASE_FIELDS
        if name in typed and _normalised(saved[name]) != _normalised(typed[name])
    ]


def next_reference(year: int) -> str:
    """Return the year's next reference: the highest one so far plus one."""
    prefix = f"{REFERENCE_PREFIX}-{year}-"
    highest = db.session.scalar(
        select(func.max(Case.reference)).where(Case.reference.startswith(prefix, autoescape=True))
    )
    number = int(highest[len(prefix) :]) + 1 if highest else 1
    if number >= 10**REFERENCE_DIGITS:
        raise ReferenceExhausted(f"no reference numbers left for {year}")
    return f"{prefix}{number:0{REFERENCE_DIGITS}d}"


def _insert_with_reference(case: Case) -> None:
    """Insert the case under the next reference, retrying when a concurrent insert took it.

    Each attempt runs in a savepoint, so a lost race rolls back only the attempt, not the
    caller's transaction.
    """
    # The year where Haven is used (a case opened on 1 January at 02:00 in Baku is 2027's),
    # not the UTC year.
    year = case.created_at.astimezone(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])).year
    for _attempt in range(REFERENCE_ATTEMPTS):
        case.reference = next_reference(year)
        try:
            with db.session.begin_nested():
                db.session.add(case)
                db.session.flush()
        except IntegrityError as error:
            if not is_reference_clash(error):
                raise
            continue
        return
    raise ReferenceExhausted("could not allocate a case reference: too many concurrent inserts")


def is_reference_clash(error: IntegrityError) -> bool:
    """Return whether an insert failed because another case took the same reference."""
    message = str(error.orig).lower()
    return "reference" in message and ("unique" in message or "duplicate" in message)


def _apply_fields(case: Case, data: Mapping[str, object]) -> list[str]:
    """Set the fields present in ``data``; return the names of those that changed."""
    changed = []
    for name in (*PERSON_FIELDS, *CODED_FIELDS):
        if name not in data:
            continue
        value = _normalised(data[name])
        if name == "interpreter_needed":
            value = bool(value)
        if value == _normalised(getattr(case, name)):
            continue
        setattr(case, name, value)
        changed.append(name)
    for name in CODE_LIST_FIELDS:
        if name in data and case.set_codes(name, list(data[name] or ())):
            changed.append(name)
    return changed


def _normalised(value: object) -> object:
    """Treat blank text as no value, so an empty field and a missing one compare equal."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool) or value is None or isinstance(value, date):
        return value
    if isinstance(value, int):
        # Estimated age: stored as text, typed as a number.
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(sorted({str(item) for item in value if item}))
    raise TypeError(f"unexpected case field value of type {type(value).__name__}")
