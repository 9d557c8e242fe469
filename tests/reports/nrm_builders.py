"""Builders for statistics tests of refusals and status decisions (issue 7)."""

from __future__ import annotations

from datetime import date

from casework.refusals import record_refusal
from core.db import db as database
from referrals.decisions import Decision


def add_refusal(user, month: date, **codes) -> None:
    """Record one anonymous refusal through the service (codes default to a plain adult)."""
    data = {
        "month": month,
        "sex": "Feminine",
        "age_band": "25-34",
        "citizenship": "AZ",
        "identification_region": "baku",
        "intake_channel": "hotline",
        "refusal_reason": "fear_of_traffickers",
        "services_offered": True,
        "exploitation_form": ["ForcedLabour"],
    }
    data.update(codes)
    record_refusal(user, data)


def add_decision(
    case,
    decided_on: date,
    outcome: str = "recognised",
    reason_code: str | None = None,
    stage: str = "first",
) -> Decision:
    """Add a status decision row to the case (the statistics read rows, not the workflow)."""
    decision = Decision(
        case=case,
        outcome=outcome,
        decided_on=decided_on,
        reason_code=reason_code if outcome == "not_recognised" else None,
        stage=stage,
    )
    database.session.add(decision)
    database.session.flush()
    return decision
