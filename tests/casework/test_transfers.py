"""Transfer of ownership: the receiving agency accepts or declines an approved transfer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from casework import supervision
from casework.models import Case
from casework.services import open_case
from casework.supervision import (
    BreakGlassGrant,
    ClosureRequest,
    RequestStatus,
    SupervisionError,
    TransferRequest,
    TransferStatus,
)
from casework.timeline import TimelineEvent
from core import policy
from core.audit import AuditEntry
from core.db import utcnow
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

REASON = "The person moved to the south and wants the shelter there."
SECRET = "Nərmin Əliyeva"


@pytest.fixture
def world(db):
    """Alice and Bob (NGO North) send the case to Shelter South (Sue, Charlie); East is a
    third agency."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    east = make_agency(AgencyType.HEALTH, name="Clinic East")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "sue": make_user(south, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "erin": make_user(east, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
    }
    case = open_case(people["alice"], {"given_name": "Nərmin", "family_name": "Əliyeva"})
    transfer = supervision.request_transfer(case, people["alice"], south, REASON)
    supervision.approve_transfer(transfer, people["bob"])
    db.session.commit()
    return {
        "case_id": case.id,
        "transfer_id": transfer.id,
        "north": north,
        "south": south,
        **people,
    }


def reload(db, model, object_id):
    db.session.expire_all()
    return db.session.get(model, object_id)


def accept_url(world) -> str:
    return f"/transfers/{world['transfer_id']}/accept"


def decline_url(world) -> str:
    return f"/transfers/{world['transfer_id']}/decline"


# Access matrix ---------------------------------------------------------------------------

MATRIX = {
    # persona -> (incoming list, accept, decline)
    "sue": (200, 302, 302),  # a supervisor of the receiving agency
    "charlie": (404, 404, 404),  # a caseworker of the receiving agency
    "bob": (200, 404, 404),  # the sending supervisor: own (empty) list, not this transfer
    "alice": (404, 404, 404),
    "erin": (200, 404, 404),  # a third agency's supervisor
    "admin": (404, 404, 404),
}


@pytest.mark.parametrize(("persona", "action"), [(p, a) for p in MATRIX for a in range(3)])
def test_access_matrix(app, db, world, persona, action):
    client = client_for(app, world[persona])
    if action == 0:
        response = client.get("/transfers/incoming")
    elif action == 1:
        response = client.post_form(accept_url(world))
    else:
        response = client.post_form(decline_url(world), {"reason": "No free bed this month."})
    assert response.status_code == MATRIX[persona][action]
    transfer = reload(db, TransferRequest, world["transfer_id"])
    if MATRIX[persona][action] != 302:
        assert transfer.status == TransferStatus.APPROVED


def test_the_incoming_list_shows_reference_sender_and_reason_only(app, db, world):
    page = client_for(app, world["sue"]).get("/transfers/incoming").get_data(as_text=True)
    case = reload(db, Case, world["case_id"])
    assert case.reference in page and "NGO North" in page and "moved to the south" in page
    assert "Nərmin" not in page and "Əliyeva" not in page
    others = client_for(app, world["erin"]).get("/transfers/incoming").get_data(as_text=True)
    assert case.reference not in others


def test_the_receiving_agency_cannot_open_the_case_before_accepting(app, world):
    client = client_for(app, world["sue"])
    assert client.get(f"/cases/{world['case_id']}").status_code == 404
    assert client.get(f"/cases/{world['case_id']}/supervision").status_code == 404


def test_an_unapproved_transfer_is_not_offered_to_the_receiver(app, db, world):
    case = open_case(world["alice"], {"given_name": "Second"})
    pending = supervision.request_transfer(case, world["alice"], world["south"], REASON)
    db.session.commit()
    client = client_for(app, world["sue"])
    assert case.reference not in client.get("/transfers/incoming").get_data(as_text=True)
    assert client.post_form(f"/transfers/{pending.id}/accept").status_code == 404


def test_accept_and_decline_reject_get(app, world):
    client = client_for(app, world["sue"])
    assert client.get(accept_url(world)).status_code == 405
    assert client.get(decline_url(world)).status_code == 405


# Acceptance ------------------------------------------------------------------------------


def test_accepting_moves_the_case_and_the_old_owner_loses_access(app, db, world):
    case = reload(db, Case, world["case_id"])
    closure = supervision.request_closure(case, world["alice"], "lost_contact", None)
    supervision.restrict_case(case, world["bob"], "Relative of a staff member here.")
    grant = supervision.break_glass(case, world["bob"], "Police asked about a threat.")
    db.session.commit()
    closure_id, grant_id = closure.id, grant.id
    alice, bob = client_for(app, world["alice"]), client_for(app, world["bob"])
    assert alice.get(f"/cases/{world['case_id']}").status_code == 200

    response = client_for(app, world["sue"]).post_form(accept_url(world))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/cases/{world['case_id']}/supervision")

    case = reload(db, Case, world["case_id"])
    assert case.owner_agency_id == world["south"].id
    assert case.assigned_user_id is None
    transfer = db.session.get(TransferRequest, world["transfer_id"])
    assert (transfer.status, transfer.answered_by_id) == ("accepted", world["sue"].id)
    assert db.session.get(ClosureRequest, closure_id).status == RequestStatus.CANCELLED
    assert db.session.get(BreakGlassGrant, grant_id).expires_at <= utcnow()
    # Access follows the owner agency: the old owner is out at once.
    assert alice.get(f"/cases/{world['case_id']}").status_code == 404
    assert bob.get(f"/cases/{world['case_id']}").status_code == 404
    assert bob.get(f"/cases/{world['case_id']}/supervision").status_code == 404
    assert (
        client_for(app, world["sue"]).get(f"/cases/{world['case_id']}/supervision").status_code
        == 200
    )
    assert not policy.can_view_case(world["alice"], case)
    # Audit entries and timeline events, names only.
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"case.transfer_accepted", "case.closure_lapsed", "case.break_glass_lapsed"} <= actions
    kinds = set(
        db.session.scalars(
            select(TimelineEvent.kind).where(TimelineEvent.case_id == world["case_id"])
        )
    )
    assert "case.transfer_accepted" in kinds


def test_the_new_owner_assigns_and_works_the_case(app, db, world):
    transfer = db.session.get(TransferRequest, world["transfer_id"])
    supervision.accept_transfer(transfer, world["sue"])
    case = reload(db, Case, world["case_id"])
    supervision.assign_case(case, world["charlie"], world["sue"])
    db.session.commit()
    page = client_for(app, world["charlie"]).get(f"/cases/{world['case_id']}")
    assert page.status_code == 200
    assert "Nərmin" in page.get_data(as_text=True)


def test_accepting_twice_does_nothing_more(app, db, world):
    client = client_for(app, world["sue"])
    assert client.post_form(accept_url(world)).status_code == 302
    # Answered: no longer waiting, so it is not found any more.
    assert client.post_form(accept_url(world)).status_code == 404
    assert (
        len(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "case.transfer_accepted")
            ).all()
        )
        == 1
    )


def test_only_the_receiving_agency_answers(db, world):
    transfer = db.session.get(TransferRequest, world["transfer_id"])
    with pytest.raises(SupervisionError):
        supervision.accept_transfer(transfer, world["erin"])
    with pytest.raises(SupervisionError):
        supervision.decline_transfer(transfer, world["bob"], "Not ours to decline at all.")


# Decline ---------------------------------------------------------------------------------


def test_declining_returns_the_transfer_with_the_reason(app, db, world):
    sue = client_for(app, world["sue"])
    response = sue.post_form(decline_url(world), {"reason": "No free bed this month."})
    assert response.status_code == 302
    transfer = reload(db, TransferRequest, world["transfer_id"])
    assert transfer.status == TransferStatus.DECLINED
    assert transfer.decline_reason == "No free bed this month."
    assert reload(db, Case, world["case_id"]).owner_agency_id == world["north"].id
    page = client_for(app, world["bob"]).get(f"/cases/{world['case_id']}/supervision")
    text = page.get_data(as_text=True)
    assert "declined" in text and "No free bed this month." in text
    # The sender may try another agency now.
    case = reload(db, Case, world["case_id"])
    supervision.request_transfer(case, world["alice"], world["south"], REASON)


def test_a_decline_needs_a_reason_and_keeps_the_input(app, db, world):
    response = client_for(app, world["sue"]).post_form(decline_url(world), {"reason": "No."})
    assert response.status_code == 400
    assert "No." in response.get_data(as_text=True)
    assert reload(db, TransferRequest, world["transfer_id"]).status == TransferStatus.APPROVED


def test_no_second_transfer_while_one_waits_for_the_receiver(db, world):
    case = db.session.get(Case, world["case_id"])
    with pytest.raises(SupervisionError):
        supervision.request_transfer(case, world["alice"], world["south"], REASON)


def test_the_sender_may_withdraw_an_approved_transfer(app, db, world):
    response = client_for(app, world["bob"]).post_form(
        f"/cases/{world['case_id']}/transfer/{world['transfer_id']}/cancel"
    )
    assert response.status_code == 302
    assert reload(db, TransferRequest, world["transfer_id"]).status == TransferStatus.CANCELLED
    assert client_for(app, world["sue"]).post_form(accept_url(world)).status_code == 404


def test_an_expired_grant_is_not_touched(db, world):
    case = db.session.get(Case, world["case_id"])
    supervision.restrict_case(case, world["bob"], "Relative of a staff member here.")
    grant = supervision.break_glass(case, world["bob"], "Police asked about a threat.")
    grant.expires_at = utcnow() - timedelta(hours=2)
    ended = grant.expires_at
    transfer = db.session.get(TransferRequest, world["transfer_id"])
    supervision.accept_transfer(transfer, world["sue"])
    assert grant.expires_at == ended


# The supervisors' overview ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("bob", 200), ("sue", 200), ("alice", 404), ("charlie", 404), ("admin", 404)],
)
def test_who_sees_the_supervision_overview(app, world, persona, expected):
    assert client_for(app, world[persona]).get("/supervision").status_code == expected


def test_the_overview_lists_the_agencys_pending_requests_and_reads(app, db, world):
    case = db.session.get(Case, world["case_id"])
    other = open_case(world["alice"], {"given_name": "Second"})
    supervision.request_closure(case, world["alice"], "lost_contact", "Moved away.")
    supervision.request_erasure(other, world["bob"], "created_in_error")
    supervision.restrict_case(other, world["bob"], "Relative of a staff member here.")
    supervision.break_glass(other, world["bob"], "Police asked about a threat.")
    db.session.commit()
    page = client_for(app, world["bob"]).get("/supervision").get_data(as_text=True)
    assert f"/cases/{case.id}/supervision" in page and f"/cases/{other.id}/supervision" in page
    assert "Contact lost" in page  # the closure reason
    assert "Waiting for the receiving agency" in page  # the approved transfer
    assert "Case opened in error" in page  # the erasure request
    assert world["bob"].display_name in page  # the break-the-glass read and restriction
    # Nothing personal, and nothing of the free-text reasons.
    assert "Nərmin" not in page and "Moved away" not in page and "Police asked" not in page
    # The receiving agency sees the incoming count, not the sender's requests.
    south = client_for(app, world["sue"]).get("/supervision").get_data(as_text=True)
    assert "1 case waits" in south and case.reference not in south


def test_the_navigation_leads_supervisors_and_admins_to_their_queues(app, world):
    bob = client_for(app, world["bob"]).get("/").get_data(as_text=True)
    admin = client_for(app, world["admin"]).get("/").get_data(as_text=True)
    alice = client_for(app, world["alice"]).get("/").get_data(as_text=True)
    assert 'href="/supervision"' in bob and 'href="/supervision"' not in alice
    assert 'href="/admin/erasure"' in admin and 'href="/admin/erasure"' not in bob
