"""Demo hotline calls for the statistics of incoming reports (issue 7).

``casework.contacts.seed_demo_contacts`` records about ten reports with their stories, fewer
than k in most months and kinds: every table of incoming reports would be withheld. This
set adds anonymous-free hotline calls through the real service (``record_hotline_call``)
over the last twelve months, most routed to the NGO, some closed at the call as advice
only, so the "Incoming reports" section and the annual report publish something.
The other subjects of the NRM path are filled by their modules' demo sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core.db import db

if TYPE_CHECKING:
    from core.models import User

# Hotline calls the demo should hold in all (``seed_demo_contacts``' included).
DEMO_CALL_COUNT = 30
DEMO_CALL = {
    "call_language": "az",
    "caller_relation": "third_party",
    "callback_consent": True,
    "country": "TR",
    "sex": "Feminine",
    "age_band": "18-24",
    "is_minor": False,
    "exploitation_form": ["ForcedLabour"],
    "circumstances": "A relative called: job offer abroad, passport kept by the employer.",
}


def seed_demo_hotline_calls(users: Mapping[str, User]) -> int:
    """Record demo hotline calls up to ``DEMO_CALL_COUNT``; return how many were added.

    ``users`` maps demo agency keys to their caseworker (``core.demo``). Idempotent.
    """
    from casework.contact_workflow import Kind
    from casework.contacts import IncomingReport, record_hotline_call
    from casework.models import local_today

    operator, ngo_worker = users.get("hotline"), users.get("ngo")
    if operator is None or ngo_worker is None:
        return 0
    existing = db.session.scalar(
        select(func.count(IncomingReport.id)).where(
            IncomingReport.kind == Kind.HOTLINE_CALL.value,
            IncomingReport.sender_agency_id == operator.agency_id,
        )
    )
    added = 0
    today = local_today()
    for number in range(existing, DEMO_CALL_COUNT):
        day = today - timedelta(days=12 * (DEMO_CALL_COUNT - number))
        moment = datetime.combine(day, time(10, 30), tzinfo=UTC)
        # Four calls in five are routed to the NGO; the others end at the call with advice.
        receiver = ngo_worker.agency if number % 5 else None
        record_hotline_call(operator, DEMO_CALL, receiving_agency=receiver, now=moment)
        added += 1
    return added
