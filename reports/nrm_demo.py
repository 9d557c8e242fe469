"""Demo status decisions for the statistics of issue 7: enough of them for the dashboard's
"Status decisions" section and the annual report to publish something.

The other demo sets (``core.demo``, ``referrals.reconsiderations``) record a handful of
decisions, fewer than k: every decision table would be withheld. This set adds decisions
through the real services (consent, status-decision referral, acceptance,
``record_status_decision``) on open adult cases that have no referral yet, with both
outcomes, several negative reasons and a spread of days from identification to decision;
the most recently identified cases first, so most decisions fall in the demo's last year
of identifications (2025) and the first weeks after it.
The demo refusals are ``casework.refusals.seed_demo_refusals``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core.db import db, utcnow

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import User

# Decisions the demo should hold in all (the other demo sets' included).
DEMO_DECISION_COUNT = 40
# The agencies whose cases get a decision, in turn: not the NGO and the police, whose
# requests are ``core.demo``'s own status-decision set.
DEMO_DECISION_SENDERS = ("health", "shelter", "hotline", "legal", "intl")
# (outcome, negative reason, days from identification to decision), in turn.
DEMO_DECISION_PLAN = (
    ("recognised", None, 12),
    ("recognised", None, 18),
    ("not_recognised", "insufficient_indicators", 25),
    ("recognised", None, 30),
    ("recognised", None, 21),
    ("not_recognised", "other_crime", 34),
    ("recognised", None, 41),
    ("recognised", None, 16),
    ("not_recognised", "insufficient_indicators", 47),
    ("recognised", None, 27),
    ("not_recognised", "no_exploitation_element", 55),
    ("recognised", None, 63),
    ("recognised", None, 9),
    ("not_recognised", "insufficient_indicators", 38),
    ("recognised", None, 24),
    ("recognised", None, 70),
)
DEMO_REASON_TEXT = {
    "recognised": "Recruited by deception, passport withheld, unpaid work: all elements met.",
    "not_recognised": "The interviews gave no sign of control over the person's movement or work.",
}


def _fresh_cases(users: Mapping[str, User], count: int) -> list[tuple[User, Case]]:
    """Return up to ``count`` (caseworker, case) pairs: open adult presumed cases of the
    sending agencies with no referral, the most recently identified first, taken in turn
    from each agency."""
    from casework.models import Case, CaseStatus, NrmStatus
    from casework.supervision import TransferRequest
    from referrals.models import Referral

    queues = []
    for key in DEMO_DECISION_SENDERS:
        user = users.get(key)
        if user is None:
            continue
        rows = db.session.scalars(
            select(Case)
            .where(
                Case.owner_agency_id == user.agency_id,
                Case.status == CaseStatus.OPEN.value,
                Case.nrm_status == NrmStatus.PRESUMED.value,
                Case.is_minor.is_(False),
                Case.id.not_in(select(Referral.case_id)),
                Case.id.not_in(select(TransferRequest.case_id)),
            )
            # The most recently identified first: their decisions fall in this year.
            .order_by(Case.identified_on.desc().nulls_last(), Case.reference)
            .limit(count)
        ).all()
        queues.append([(user, case) for case in rows])
    picked: list[tuple[User, Case]] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def seed_demo_status_decisions(users: Mapping[str, User]) -> int:
    """Record demo status decisions through the services until the demo holds
    ``DEMO_DECISION_COUNT``; return how many were added (0 on a second run).

    ``users`` maps demo agency keys to their caseworkers (``core.demo``); the coordinator is
    the demo's ``coordinator@nrm.demo``.
    """
    from casework.casefile import ServiceType
    from casework.casefile_services import ConsentDecision, record_consent
    from casework.models import local_today
    from core.models import User
    from referrals import services
    from referrals.decisions import Decision, identification_day, record_status_decision
    from referrals.workflow import Urgency

    coordinator = db.session.scalar(select(User).where(User.email == "coordinator@nrm.demo"))
    if coordinator is None:
        return 0
    existing = db.session.scalar(select(func.count(Decision.id))) or 0
    wanted = DEMO_DECISION_COUNT - existing
    if wanted <= 0:
        return 0
    cases = _fresh_cases(users, wanted)
    if len(cases) < wanted:
        return 0  # a small demo (few cases): none, as the other demo referral sets do
    now = utcnow()
    today = local_today()
    added = 0
    for number, (holder, case) in enumerate(cases):
        outcome, reason, days = DEMO_DECISION_PLAN[number % len(DEMO_DECISION_PLAN)]
        identified = identification_day(case)
        decided_on = min(identified + timedelta(days=days), today)
        # On the services' clock: asked three days before the decision day, decided then.
        ago = (today - decided_on).days
        start = now - timedelta(days=ago + 3)
        consent = ConsentDecision("given", start.date(), "written", "demo-2026-1")
        record_consent(holder, case, "referral", consent, agency_id=coordinator.agency_id)
        referral = services.create_referral(
            holder,
            case,
            receiving_agency=coordinator.agency,
            service_type=ServiceType.STATUS_DECISION,
            urgency=Urgency.URGENT,
            reason="Presumed victim: asks for the formal status decision.",
            sections=["identity", "exploitation"],
            now=start,
        )
        services.send_referral(holder, referral, now=start)
        services.accept_referral(coordinator, referral, now=start + timedelta(hours=2))
        record_status_decision(
            coordinator,
            referral,
            outcome,
            decided_on,
            reason,
            DEMO_REASON_TEXT[outcome],
            now=now - timedelta(days=ago),
        )
        added += 1
    return added
