"""Demo data: anonymous refusals across agencies, reasons, months and channels, and
reconsiderations (one pending, one overturned), made through the services; loaded once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from casework.models import Case
from casework.refusals import NrmRefusal
from core.audit import AuditEntry
from core.demo import load_demo_data
from core.models import User
from referrals.decision_views import waiting_count
from referrals.reconsiderations import Reconsideration
from tests.factories import client_for

CASES = 60


@pytest.fixture
def loaded(db):
    return load_demo_data(case_count=CASES)


def test_the_demo_has_refusals_across_agencies_reasons_months_and_channels(db, loaded):
    refusals = db.session.scalars(select(NrmRefusal)).all()
    assert len(refusals) == 30
    assert len({refusal.agency_id for refusal in refusals}) >= 5
    assert len({refusal.refusal_reason for refusal in refusals}) >= 5
    assert len({refusal.month for refusal in refusals}) >= 6
    assert len({refusal.intake_channel for refusal in refusals}) >= 5
    assert all(refusal.month.day == 1 for refusal in refusals)
    audited = db.session.scalar(
        select(func.count(AuditEntry.id)).where(AuditEntry.action == "refusal.recorded")
    )
    assert audited == 30


def test_the_demo_has_a_pending_and_an_overturned_reconsideration(app, db, loaded):
    items = db.session.scalars(select(Reconsideration)).all()
    assert sorted(item.state for item in items) == ["overturned", "requested"]
    overturned = next(item for item in items if item.state == "overturned")
    assert db.session.get(Case, overturned.case_id).nrm_status == "recognised"
    assert overturned.second_decision.stage == "reconsideration"
    pending = next(item for item in items if item.state == "requested")
    assert db.session.get(Case, pending.case_id).nrm_status == "not_recognised"
    coordinator = db.session.scalar(select(User).where(User.email == "coordinator@nrm.demo"))
    assert waiting_count(coordinator) >= 1
    page = client_for(app, coordinator).get("/nrm/").get_data(as_text=True)
    assert db.session.get(Case, pending.case_id).reference in page


def test_loading_twice_adds_nothing(db, loaded):
    load_demo_data(case_count=CASES)
    assert db.session.scalar(select(func.count(NrmRefusal.id))) == 30
    assert db.session.scalar(select(func.count(Reconsideration.id))) == 2


def test_the_demo_refusal_list_renders_for_a_caseworker(app, db, loaded):
    user = db.session.scalar(select(User).where(User.email == "caseworker@police.demo"))
    page = client_for(app, user).get("/refusals/")
    assert page.status_code == 200
    assert "Refusals of the NRM" in page.get_data(as_text=True)
