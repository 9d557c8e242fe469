"""Writes to cases: opening a case under a fresh reference and editing it under optimistic locking.

Services take model objects and plain data, flush, write the audit entry (field names only)
and return the object; the view or CLI command that called them commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from casework.models import Case, CaseStatus
from core import audit
from core.db import db, utcnow
from core.models import User

# The person fields this slice reads and writes; the forms and templates use the same tuple.
PERSON_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "aliases",
    "date_of_birth",
    "phone",
    "document_number",
    "address",
    "circumstances",
)

REFERENCE_PREFIX = "HVN"
REFERENCE_DIGITS = 6
# Two requests opening a case at the same moment may pick the same number; the unique
# constraint turns that into an IntegrityError and the loser tries the next number.
REFERENCE_ATTEMPTS = 8


class EditConflict(Exception):
    """The case changed since the user loaded it; nothing was saved."""


class ReferenceExhausted(RuntimeError):
    """No free reference could be allocated (the year ran out of numbers, or endless races)."""


def open_case(user: User, data: Mapping[str, object]) -> Case:
    """Open a case for the user's agency, assigned to the user, with the given person fields.

    :raises ReferenceExhausted: when no reference could be allocated.
    """
    case = Case(
        owner_agency_id=user.agency_id,
        assigned_user_id=user.id,
        status=CaseStatus.OPEN.value,
        created_at=utcnow(),
    )
    _apply_person_fields(case, data)
    case.refresh_blind_indexes()
    _insert_with_reference(case)
    audit.record(
        "case.created",
        object_type="case",
        object_id=case.id,
        field_names=[name for name in PERSON_FIELDS if getattr(case, name) is not None],
        user=user,
    )
    return case


def update_case(
    user: User, case: Case, data: Mapping[str, object], *, expected_version: int
) -> Case:
    """Change the case's person fields, unless it moved past the version the user edited.

    Only fields whose value changed are written (and named in the audit entry); saving an
    unchanged form changes nothing and bumps no version.

    :raises EditConflict: when the case is no longer at ``expected_version``, checked here
        and again by the database (the UPDATE names the version it expects).
    """
    if case.version != expected_version:
        raise EditConflict
    changed = _apply_person_fields(case, data)
    if not changed:
        return case
    case.refresh_blind_indexes()
    try:
        db.session.flush()
    except StaleDataError as error:
        # Another transaction committed a new version between our read and our UPDATE.
        raise EditConflict from error
    audit.record(
        "case.updated", object_type="case", object_id=case.id, field_names=changed, user=user
    )
    return case


def person_values(case: Case) -> dict[str, object]:
    """Return the case's decrypted person fields by name."""
    return {name: getattr(case, name) for name in PERSON_FIELDS}


def conflicting_fields(case: Case, typed: Mapping[str, object]) -> list[str]:
    """Return the names of the fields whose saved value differs from what the user typed."""
    return [
        name
        for name in PERSON_FIELDS
        if _normalised(getattr(case, name)) != _normalised(typed.get(name))
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
            if not _is_reference_clash(error):
                raise
            continue
        return
    raise ReferenceExhausted("could not allocate a case reference: too many concurrent inserts")


def _is_reference_clash(error: IntegrityError) -> bool:
    message = str(error.orig).lower()
    return "reference" in message and ("unique" in message or "duplicate" in message)


def _apply_person_fields(case: Case, data: Mapping[str, object]) -> list[str]:
    """Set the person fields present in ``data``; return the names of those that changed."""
    changed = []
    for name in PERSON_FIELDS:
        if name not in data:
            continue
        value = _normalised(data[name])
        if value == _normalised(getattr(case, name)):
            continue
        setattr(case, name, value)
        changed.append(name)
    return changed


def _normalised(value: object) -> object:
    """Treat blank text as no value, so an empty field and a missing one compare equal."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if value is None or isinstance(value, date):
        return value
    raise TypeError(f"unexpected person field value of type {type(value).__name__}")
