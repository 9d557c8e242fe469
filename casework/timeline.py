"""A case's timeline: one ordered list of everything that happened to it.

Every service that changes a case (intake, notes, services, consent, assessments, referral
steps, status changes) adds one event here in the same transaction. An event names its kind
and the object it is about; anything personal it carries (a short summary) is encrypted
under the case's data key like every other field, so crypto-shredding covers it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casework.models import CaseRecord
from core.crypto import EncryptedField
from core.db import UTCDateTime, db, new_uuid, utcnow

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import User

# Labels of event kinds. Areas add their kinds with register_timeline_kind at import time.
TIMELINE_KINDS: dict[str, Any] = {
    "case.opened": _l("Case opened"),
    "case.updated": _l("Case details changed"),
}


def register_timeline_kind(kind: str, label: Any) -> None:
    """Give an event kind its (lazily translated) label."""
    TIMELINE_KINDS[kind] = label


class TimelineEvent(CaseRecord, db.Model):
    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_time", "case_id", "occurred_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    # Field names touched, comma-separated: names only, never values.
    field_names: Mapped[str | None] = mapped_column(String(1000))
    # Ordering tiebreak for events written in the same instant by one transaction.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    summary = EncryptedField()

    case: Mapped[Case] = relationship()
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_user_id])

    @property
    def label(self) -> str:
        return str(TIMELINE_KINDS.get(self.kind, self.kind))


def add_timeline_event(
    case: Case,
    kind: str,
    *,
    actor: User | None,
    object_type: str | None = None,
    object_id: str | None = None,
    field_names: list[str] | tuple[str, ...] = (),
    summary: str | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEvent:
    """Add an event to the case's timeline in the current transaction.

    :raises KeyError: for a kind nobody registered, so typos fail loudly.
    """
    if kind not in TIMELINE_KINDS:
        raise KeyError(f"unregistered timeline kind {kind!r}")
    event = TimelineEvent(
        case=case,
        kind=kind,
        occurred_at=occurred_at or utcnow(),
        actor_user_id=actor.id if actor is not None else None,
        actor_agency_id=actor.agency_id if actor is not None else None,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        field_names=",".join(sorted(field_names)) or None,
    )
    db.session.add(event)
    if summary:
        event.summary = summary
    return event


def timeline_for(case: Case, *, newest_first: bool = True) -> list[TimelineEvent]:
    """Return the case's events in time order."""
    order = (TimelineEvent.occurred_at, TimelineEvent.sequence, TimelineEvent.id)
    if newest_first:
        order = tuple(column.desc() for column in order)
    return list(
        db.session.scalars(
            select(TimelineEvent).where(TimelineEvent.case_id == case.id).order_by(*order)
        )
    )
