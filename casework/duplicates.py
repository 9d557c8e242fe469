"""Cross-agency duplicate detection: flags, how a saved case is checked, and their resolution.

When a case is saved its blind index values are compared with those of every case in the
system, whatever agency owns it. A truncated blind index is shared by unrelated records by
design, so each candidate is decrypted in memory and its normalised fields re-checked
(DESIGN: candidates are always re-checked before anything is shown); only a confirmed match
raises a flag. Nothing of the other case is shown to anyone here: the owners see only
"possible duplicate, contact the national coordinator"; the coordinator compares the two
after writing a reason (audited) and marks them the same person or different people.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    and_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.models import Case, CaseBlindIndex
from casework.search import case_keys
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.db import UTCDateTime, db, enum_check, enum_string, utcnow
from core.models import User

# Candidates decrypted per save at most; a sane index width gives a handful.
MAX_CANDIDATES = 200


class DuplicateStatus(enum.StrEnum):
    OPEN = "open"
    SAME_PERSON = "same_person"
    DIFFERENT = "different"

    @property
    def label(self) -> str:
        return str(DUPLICATE_STATUS_LABELS[self])


DUPLICATE_STATUS_LABELS = {
    DuplicateStatus.OPEN: lazy_pgettext("duplicate flag", "Open"),
    DuplicateStatus.SAME_PERSON: _l("Same person"),
    DuplicateStatus.DIFFERENT: _l("Different people"),
}

register_timeline_kind(
    "duplicate.flagged", _l("Possible duplicate found: the national coordinator reviews it")
)
register_timeline_kind(
    "duplicate.same_person", _l("National coordinator: same person as another case")
)
register_timeline_kind(
    "duplicate.different", _l("National coordinator: not the same person as the possible duplicate")
)


class FlagAlreadyResolved(Exception):
    """The flag was resolved already; nothing was changed."""


class NotCompared(Exception):
    """The coordinator has not compared the two cases (with a reason) before resolving."""


class DuplicateFlag(db.Model):
    """Two cases whose blind-indexed fields match: a pair stored once, lower id first."""

    __tablename__ = "duplicate_flags"
    __table_args__ = (
        UniqueConstraint("case_a_id", "case_b_id"),
        CheckConstraint("case_a_id < case_b_id", name="ordered_pair"),
        enum_check("status", DuplicateStatus),
        CheckConstraint(
            "(status = 'open') = (resolved_at IS NULL)"
            " AND (status = 'open') = (resolved_by_user_id IS NULL)",
            name="resolved_iff_not_open",
        ),
        # The coordinator's queue: open flags, oldest first.
        Index("ix_duplicate_flags_status_created", "status", "created_at", "id"),
        # The owner's notice looks a case up on either side; the unique pair covers case_a.
        Index("ix_duplicate_flags_case_b", "case_b_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_a_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    case_b_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    # Names of the blind indexes that matched after re-checking, comma-separated, sorted.
    matched_on: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(
        enum_string(DuplicateStatus), default=DuplicateStatus.OPEN.value
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last comparison (its reason is in the audit log): resolving needs one by the resolver.
    compared_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    compared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case_a: Mapped[Case] = relationship(foreign_keys=[case_a_id])
    case_b: Mapped[Case] = relationship(foreign_keys=[case_b_id])
    resolved_by: Mapped[User | None] = relationship(foreign_keys=[resolved_by_user_id])

    @property
    def matched_names(self) -> list[str]:
        return [name for name in self.matched_on.split(",") if name]

    @property
    def status_enum(self) -> DuplicateStatus:
        return DuplicateStatus(self.status)

    @property
    def is_open(self) -> bool:
        return self.status == DuplicateStatus.OPEN

    def __repr__(self) -> str:
        return f"<DuplicateFlag {self.id} {self.status}>"


# Detection -----------------------------------------------------------------------------------


def detect_duplicates(case: Case, *, actor: User | None = None) -> list[DuplicateFlag]:
    """Flag the cases of any agency whose blind-indexed fields match this case's.

    Call after the case and its blind index rows were flushed. Candidates are re-checked on
    their decrypted, normalised fields; a pair flagged before is not flagged again (an open
    flag gains the newly matched index names; a resolved one stays as the coordinator left
    it). Returns the flags created.
    """
    values = {row.index_name: row.value for row in case.blind_indexes}
    if not values or case.is_erased:
        return []
    condition = or_(
        *(
            and_(CaseBlindIndex.index_name == name, CaseBlindIndex.value == value)
            for name, value in values.items()
        )
    )
    candidate_ids = (
        select(CaseBlindIndex.case_id)
        .where(condition, CaseBlindIndex.case_id != case.id)
        .distinct()
        .limit(MAX_CANDIDATES)
    )
    candidates = list(db.session.scalars(select(Case).where(Case.id.in_(candidate_ids))))
    if not candidates:
        return []
    own = case_keys(case)
    created = []
    for other in candidates:
        if other.is_erased:
            continue
        matched = sorted(name for name, key in case_keys(other).items() if own.get(name) == key)
        if matched:
            flag = _flag_pair(case, other, matched, actor)
            if flag is not None:
                created.append(flag)
    return created


def _flag_pair(
    case: Case, other: Case, matched: list[str], actor: User | None
) -> DuplicateFlag | None:
    first, second = sorted((case, other), key=lambda item: item.id)
    existing = db.session.scalar(
        select(DuplicateFlag).where(
            DuplicateFlag.case_a_id == first.id, DuplicateFlag.case_b_id == second.id
        )
    )
    if existing is not None:
        if existing.is_open:
            existing.matched_on = ",".join(sorted(set(existing.matched_names) | set(matched)))
        return None
    flag = DuplicateFlag(
        case_a_id=first.id,
        case_b_id=second.id,
        matched_on=",".join(matched),
        status=DuplicateStatus.OPEN.value,
        created_at=utcnow(),
    )
    try:
        # A concurrent save of the other case may flag the same pair at the same moment.
        with db.session.begin_nested():
            db.session.add(flag)
            db.session.flush()
    except IntegrityError:
        return None
    audit.record(
        "duplicate.flagged",
        object_type="duplicate_flag",
        object_id=flag.id,
        field_names=matched,
        user=actor,
    )
    for flagged in (first, second):
        add_timeline_event(
            flagged,
            "duplicate.flagged",
            actor=None,
            object_type="duplicate_flag",
            object_id=str(flag.id),
        )
    return flag


# What owners see -----------------------------------------------------------------------------


def duplicate_notice(case: Case) -> str | None:
    """Return what the case's owner is told: "open", "same_person", or None.

    Only the status: never the other case, its agency or what matched.
    """
    statuses = set(
        db.session.scalars(
            select(DuplicateFlag.status).where(
                or_(DuplicateFlag.case_a_id == case.id, DuplicateFlag.case_b_id == case.id),
                DuplicateFlag.status.in_(
                    [DuplicateStatus.OPEN.value, DuplicateStatus.SAME_PERSON.value]
                ),
            )
        )
    )
    if DuplicateStatus.OPEN.value in statuses:
        return DuplicateStatus.OPEN.value
    if DuplicateStatus.SAME_PERSON.value in statuses:
        return DuplicateStatus.SAME_PERSON.value
    return None


# The coordinator's work ----------------------------------------------------------------------


def open_flags(*, after: tuple[datetime, int] | None = None, limit: int = 50) -> list[Any]:
    """Return open flags, oldest first, with both cases and their owner agencies loaded."""
    query = (
        select(DuplicateFlag)
        .where(DuplicateFlag.status == DuplicateStatus.OPEN.value)
        .order_by(DuplicateFlag.created_at, DuplicateFlag.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(DuplicateFlag.created_at, DuplicateFlag.id) > tuple_(*after))
    return list(db.session.scalars(query))


def compare_duplicate_flag(
    user: User, flag: DuplicateFlag, reason: str, *, field_names: tuple[str, ...]
) -> DuplicateFlag:
    """Record that the coordinator opens both cases' person fields, and why (audited)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a comparison needs a reason")
    flag.compared_by_user_id = user.id
    flag.compared_at = utcnow()
    audit.record(
        "duplicate.compared",
        object_type="duplicate_flag",
        object_id=flag.id,
        field_names=field_names,
        reason=reason,
        user=user,
    )
    return flag


def resolve_duplicate_flag(
    user: User, flag: DuplicateFlag, decision: DuplicateStatus | str
) -> DuplicateFlag:
    """Mark the two cases the same person or different people; both timelines record it.

    :raises FlagAlreadyResolved: when the flag is no longer open.
    :raises NotCompared: when this user has not compared the two cases first.
    :raises ValueError: for a decision other than same person / different.
    """
    decision = DuplicateStatus(decision)
    if decision is DuplicateStatus.OPEN:
        raise ValueError("a resolution is same_person or different")
    if not flag.is_open:
        raise FlagAlreadyResolved
    if flag.compared_by_user_id != user.id:
        raise NotCompared
    flag.status = decision.value
    flag.resolved_by_user_id = user.id
    flag.resolved_at = utcnow()
    db.session.flush()
    audit.record(
        "duplicate.resolved",
        object_type="duplicate_flag",
        object_id=flag.id,
        field_names=["status"],
        reason=decision.value,
        user=user,
    )
    for case in (flag.case_a, flag.case_b):
        add_timeline_event(
            case,
            f"duplicate.{decision.value}",
            actor=user,
            object_type="duplicate_flag",
            object_id=str(flag.id),
        )
    return flag


# Erasure -------------------------------------------------------------------------------------


def close_flags_of_erased_case(case: Case, actor: User | None) -> int:
    """Delete the case's open flags: an erased case can no longer be compared. Audited.

    Called by the erasure, in its transaction. The status CHECK allows no "dropped" state
    and a resolution would claim a comparison that never happened, so an open flag goes;
    resolved flags stay as the coordinator decided. Neither owner is told (no timeline
    event): the other case's owner learns nothing about this case. Returns the number
    of flags deleted.
    """
    flags = list(
        db.session.scalars(
            select(DuplicateFlag).where(
                or_(DuplicateFlag.case_a_id == case.id, DuplicateFlag.case_b_id == case.id),
                DuplicateFlag.status == DuplicateStatus.OPEN.value,
            )
        )
    )
    for flag in flags:
        audit.record(
            "duplicate.dropped",
            object_type="duplicate_flag",
            object_id=flag.id,
            field_names=flag.matched_names,
            user=actor,
        )
        db.session.delete(flag)
    if flags:
        db.session.flush()
    return len(flags)
