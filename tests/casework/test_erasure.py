"""Erasure by crypto-shredding: the request, the admin's confirmation, and the retention purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text

from casework import supervision
from casework.cli import cases_cli
from casework.models import Case, CaseBlindIndex, CaseStatus
from casework.services import open_case
from casework.supervision import ErasureRequest, ErasureStatus, erase_case
from core.audit import AuditEntry
from core.crypto import DataKey, KeyDestroyed, encrypted_fields
from core.db import db as database
from core.db import utcnow
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

PERSON = {
    "given_name": "Nərgiz",
    "family_name": "Quliyeva",
    "phone": "+994 50 321 77 18",
    "document_number": "AA4417265",
}


@pytest.fixture
def world(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
    }
    case = open_case(people["alice"], PERSON)
    db.session.commit()
    return {"case": case, "case_id": case.id, "north": north, **people}



def rows_of_case(case_id: str) -> list:
    """Load afresh every row of every model with encrypted fields that belongs to the case."""
    database.session.expunge_all()
    rows = [database.session.get(Case, case_id)]
    for mapper in database.Model.registry.mappers:
        model = mapper.class_
        if model is Case or not encrypted_fields(model) or "case_id" not in mapper.columns:
            continue
        rows += database.session.scalars(select(model).where(model.case_id == case_id)).all()
    return rows


def with_child_rows(db, world) -> None:
    """Give the case rows in other tables encrypted under its key."""
    case = world["case"]
    supervision.request_closure(case, world["alice"], "lost_contact", "Moved to Gəncə.")
    supervision.restrict_case(case, world["bob"], "Relative of a staff member.")
    supervision.break_glass(case, world["bob"], "Police request about a threat.")
    db.session.commit()


def test_it_is_requested_confirmed_and_shredded(app, db, world):
    with_child_rows(db, world)
    bob = client_for(app, world["bob"])
    response = bob.post_form(
        f"/cases/{world['case_id']}/erasure",
        {"reason_code": "subject_request", "note": "Nərgiz asked by letter."},
    )
    assert response.status_code == 302
    erasure = db.session.scalars(select(ErasureRequest)).one()
    assert erasure.reason_code == "subject_request"

    admin = client_for(app, world["admin"])
    page = admin.get("/admin/erasure").get_data(as_text=True)
    assert world["case"].reference in page
    assert world["north"].name in page
    assert world["bob"].display_name in page
    # Administrators never read case data: no names, no note.
    for secret in ("Nərgiz", "Quliyeva", "asked by letter"):
        assert secret not in page
    response = admin.post_form(f"/admin/erasure/{erasure.id}/confirm")
    assert response.status_code == 302
    queue = admin.get("/admin/erasure").get_data(as_text=True)
    assert f"<td>{world['case'].reference}</td>" not in queue

    case = database.session.get(Case, world["case_id"])
    database.session.expire_all()
    assert case.is_erased
    assert case.erased_at is not None
    wrapped = db.session.execute(
        text("SELECT wrapped, destroyed_at FROM data_keys WHERE id = :id"), {"id": case.data_key_id}
    ).one()
    assert wrapped.wrapped is None and wrapped.destroyed_at is not None
    blind = db.session.execute(
        text("SELECT count(*) FROM case_blind_indexes WHERE case_id = :id"), {"id": case.id}
    ).scalar()
    assert blind == 0
    assert db.session.get(ErasureRequest, erasure.id).status == ErasureStatus.CONFIRMED
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.erased"))
    assert (entry.user_id, entry.object_id) == (world["admin"].id, world["case_id"])


def test_every_encrypted_field_of_the_case_and_its_rows_is_unreadable(db, world):
    with_child_rows(db, world)
    erase_case(world["case"], world["bob"])
    db.session.commit()
    rows = rows_of_case(world["case_id"])
    assert {type(row).__name__ for row in rows} >= {
        "Case",
        "ClosureRequest",
        "CaseRestriction",
        "BreakGlassGrant",
        "TimelineEvent",
    }
    checked = 0
    for row in rows:
        for name, field in encrypted_fields(type(row)).items():
            if getattr(row, field.attribute) is None:
                continue
            with pytest.raises(KeyDestroyed):
                getattr(row, name)
            checked += 1
    assert checked >= 8


def test_the_same_session_cannot_read_cached_plaintext_after_erasure(db, world):
    case = world["case"]
    assert case.given_name == "Nərgiz"
    erase_case(case, world["bob"])
    with pytest.raises(KeyDestroyed):
        _ = case.given_name


def test_coded_fields_stay_and_the_case_still_counts(db, world):
    case = world["case"]
    supervision.approve_closure(
        supervision.request_closure(case, world["alice"], "lost_contact", None), world["bob"]
    )
    erase_case(case, world["bob"])
    db.session.commit()
    count = db.session.execute(
        text(
            "SELECT count(*) FROM cases WHERE status = 'closed' AND closure_reason = 'lost_contact'"
            " AND identifying_agency_type = 'ngo' AND erased_at IS NOT NULL"
        )
    ).scalar()
    assert count == 1
    assert db.session.scalar(select(func.count()).select_from(CaseBlindIndex)) == 0


def test_erasing_twice_changes_nothing(db, world):
    erase_case(world["case"], world["bob"])
    erased_at = world["case"].erased_at
    erase_case(world["case"], world["bob"])
    assert world["case"].erased_at == erased_at
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.erased")
        )
        == 1
    )


def test_the_page_of_an_erased_case_renders(app, db, world):
    erase_case(world["case"], world["bob"])
    db.session.commit()
    for user in (world["alice"], world["bob"]):
        response = client_for(app, user).get(f"/cases/{world['case_id']}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert "erased" in page.lower()
        assert "Nərgiz" not in page
    supervision_page = client_for(app, world["bob"]).get(f"/cases/{world['case_id']}/supervision")
    assert supervision_page.status_code == 200


def test_an_admin_can_reject_and_others_cannot_confirm(app, db, world):
    erasure = supervision.request_erasure(world["case"], world["bob"], "created_in_error")
    db.session.commit()
    for persona in ("alice", "bob"):
        url = f"/admin/erasure/{erasure.id}/confirm"
        assert client_for(app, world[persona]).post_form(url).status_code == 404
    admin = client_for(app, world["admin"])
    assert admin.post_form(f"/admin/erasure/{erasure.id}/reject").status_code == 302
    database.session.expire_all()
    assert not database.session.get(Case, world["case_id"]).is_erased
    # A decided request is gone from the queue; confirming it now is a 404.
    assert admin.post_form(f"/admin/erasure/{erasure.id}/confirm").status_code == 404


# Retention purge -------------------------------------------------------------------------


def closed_case(db, world, name: str, closed_days_ago: int) -> Case:
    case = open_case(world["alice"], {"given_name": name})
    with time_machine.travel(utcnow() - timedelta(days=closed_days_ago), tick=False):
        request = supervision.request_closure(case, world["alice"], "services_completed", None)
        supervision.approve_closure(request, world["bob"])
    return case


def test_purge_erases_only_cases_closed_longer_than_retention(app, db, world, monkeypatch):
    monkeypatch.setitem(app.config, "HAVEN_RETENTION_DAYS", 30)
    old = [closed_case(db, world, f"Old {n}", 40 + n) for n in range(3)]
    recent = closed_case(db, world, "Recent", 20)
    db.session.commit()
    runner = app.test_cli_runner()

    dry = runner.invoke(cases_cli, ["purge-expired", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    for case in old:
        assert f"would erase {case.reference}" in dry.output
    assert recent.reference not in dry.output
    assert "3 case(s)" in dry.output
    assert (
        db.session.scalar(
            select(func.count()).select_from(DataKey).where(DataKey.destroyed_at.is_not(None))
        )
        == 0
    )

    result = runner.invoke(cases_cli, ["purge-expired", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "erased 2 case(s) (2 so far)" in result.output
    assert "erased 1 case(s) (3 so far)" in result.output
    database.session.expire_all()
    erased = {case.reference for case in database.session.scalars(select(Case)) if case.is_erased}
    assert erased == {case.reference for case in old}
    entries = database.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.erased")
    ).all()
    assert len(entries) == 3
    assert {entry.user_id for entry in entries} == {None}

    again = runner.invoke(cases_cli, ["purge-expired"])
    assert "0 case(s)" in again.output


def test_purge_uses_the_clock(app, db, world, monkeypatch):
    monkeypatch.setitem(app.config, "HAVEN_RETENTION_DAYS", 30)
    case = closed_case(db, world, "Soon", 20)
    db.session.commit()
    runner = app.test_cli_runner()
    assert "0 case(s)" in runner.invoke(cases_cli, ["purge-expired"]).output
    with time_machine.travel(utcnow() + timedelta(days=11), tick=False):
        assert "1 case(s)" in runner.invoke(cases_cli, ["purge-expired"]).output
    database.session.expire_all()
    assert database.session.get(Case, case.id).is_erased
    assert database.session.get(Case, case.id).status == CaseStatus.CLOSED


def test_the_default_retention_is_five_years(app):
    assert app.config["HAVEN_RETENTION_DAYS"] == 5 * 365


def test_the_case_list_survives_an_erased_case(app, db, world):
    erase_case(world["case"], world["bob"])
    db.session.commit()
    response = client_for(app, world["alice"]).get("/cases/")
    assert response.status_code == 200
    assert world["case"].reference in response.get_data(as_text=True)
