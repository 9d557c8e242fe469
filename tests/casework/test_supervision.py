"""Supervisor actions: who may reach them, assignment, closure, transfer requests, restriction
and break-the-glass reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, text

from casework import supervision
from casework.models import Case, CaseStatus
from casework.services import open_case
from casework.supervision import (
    BreakGlassGrant,
    ClosureRequest,
    RequestStatus,
    SupervisionError,
    TransferRequest,
)
from casework.timeline import TimelineEvent
from core import policy
from core.audit import AuditEntry
from core.db import utcnow
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

PERSON = {"given_name": "Nərgiz", "family_name": "Quliyeva", "phone": "+994 50 321 77 18"}
REASON = "Relative of a staff member; keep the file closed."
GLASS_REASON = "Police request about a new threat tonight."


@pytest.fixture
def world(db):
    """Alice (caseworker, NGO North) owns the case, Bob supervises it, Dave is a colleague."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "dave": make_user(north, Role.CASEWORKER),
        "charlie": make_user(south, Role.CASEWORKER),
        "sue": make_user(south, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    case = open_case(people["alice"], PERSON)
    db.session.commit()
    return {"case": case, "case_id": case.id, "north": north, "south": south, **people}



def reload(db, model, object_id):
    db.session.expire_all()
    return db.session.get(model, object_id)


def pending_requests(db, world):
    """Give the case a pending closure and a pending transfer request."""
    case = world["case"]
    closure = supervision.request_closure(case, world["alice"], "lost_contact", "Moved away.")
    transfer = supervision.request_transfer(
        case, world["alice"], world["south"], "The person moved to the south."
    )
    db.session.commit()
    return {"closure_id": closure.id, "transfer_id": transfer.id}


def entries(db, action):
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def events(db, case_id, kind):
    return db.session.scalars(
        select(TimelineEvent).where(TimelineEvent.case_id == case_id, TimelineEvent.kind == kind)
    ).all()


# Access matrix ---------------------------------------------------------------------------

GET_ROUTES = {
    "detail": "/cases/{case_id}/supervision",
    "request_closure": "/cases/{case_id}/closure",
    "request_transfer": "/cases/{case_id}/transfer",
    "break_glass": "/cases/{case_id}/break-glass",
    "request_erasure": "/cases/{case_id}/erasure",
    "erasure_requests": "/admin/erasure",
}
POST_ROUTES = {
    "assign": "/cases/{case_id}/assign",
    "approve_closure": "/cases/{case_id}/closure/{closure_id}/approve",
    "reject_closure": "/cases/{case_id}/closure/{closure_id}/reject",
    "approve_transfer": "/cases/{case_id}/transfer/{transfer_id}/approve",
    "reject_transfer": "/cases/{case_id}/transfer/{transfer_id}/reject",
    "cancel_transfer": "/cases/{case_id}/transfer/{transfer_id}/cancel",
    "restrict": "/cases/{case_id}/restrict",
    "unrestrict": "/cases/{case_id}/unrestrict",
}
NOBODY = dict.fromkeys([*GET_ROUTES, *POST_ROUTES], 404)
CASEWORKER = {
    **dict.fromkeys(POST_ROUTES, 403),
    "detail": 403,
    "request_closure": 200,
    "request_transfer": 200,
    "break_glass": 403,
    "request_erasure": 403,
    "erasure_requests": 404,
}
# persona -> route -> expected status (GET for GET_ROUTES, POST with a valid form otherwise)
EXPECTED = {
    "bob": {
        **dict.fromkeys(POST_ROUTES, 302),
        "detail": 200,
        "request_closure": 200,
        "request_transfer": 200,
        # The case is not restricted: nothing to break, straight to the case.
        "break_glass": 302,
        "request_erasure": 200,
        "erasure_requests": 404,
    },
    "alice": CASEWORKER,
    # Dave is not assigned: once the case is restricted (the unrestrict row) he cannot see it.
    "dave": {**CASEWORKER, "unrestrict": 404},
    "charlie": NOBODY,
    "sue": NOBODY,
    "admin": {**NOBODY, "erasure_requests": 200},
    "analyst": NOBODY,
    "auditor": NOBODY,
    "coordinator": NOBODY,
}
MATRIX = [
    (persona, route, status)
    for persona, statuses in EXPECTED.items()
    for route, status in statuses.items()
]
POST_DATA = {
    "assign": lambda world: {"assignee": str(world["dave"].id)},
    "reject_closure": lambda world: {"reason": "Support is still needed."},
    "reject_transfer": lambda world: {"note": "The south shelter has no place."},
    "restrict": lambda world: {"reason": REASON},
}


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, db, world, persona, route, expected):
    ids = {"case_id": world["case_id"], **pending_requests(db, world)}
    if route == "unrestrict":
        supervision.restrict_case(world["case"], world["bob"], REASON)
        db.session.commit()
    client = client_for(app, world[persona])
    if route in GET_ROUTES:
        response = client.get(GET_ROUTES[route].format(**ids))
    else:
        data = POST_DATA.get(route, lambda world: {})(world)
        response = client.post_form(POST_ROUTES[route].format(**ids), data)
    assert response.status_code == expected


RESTRICTED = {
    # persona -> (case page, supervision page, break-glass page)
    "alice": (200, 403, 403),  # assigned: reads it as before
    "dave": (404, 404, 404),  # a colleague no longer sees the case at all
    "bob": (404, 200, 200),  # the supervisor manages it, and reads it only by breaking glass
    "charlie": (404, 404, 404),
    "sue": (404, 404, 404),
    "admin": (404, 404, 404),
}


@pytest.mark.parametrize(("persona", "expected"), list(RESTRICTED.items()))
def test_access_to_a_restricted_case(app, db, world, persona, expected):
    supervision.restrict_case(world["case"], world["bob"], REASON)
    db.session.commit()
    client = client_for(app, world[persona])
    case_id = world["case_id"]
    urls = (f"/cases/{case_id}", f"/cases/{case_id}/supervision", f"/cases/{case_id}/break-glass")
    got = tuple(client.get(url).status_code for url in urls)
    assert got == expected


@pytest.mark.parametrize("route", list(GET_ROUTES))
def test_anonymous_visitors_are_sent_to_sign_in(app, world, route):
    response = app.test_client().get(GET_ROUTES[route].format(case_id=world["case_id"]))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_actions_reject_get(app, db, world, route):
    ids = {"case_id": world["case_id"], **pending_requests(db, world)}
    response = client_for(app, world["bob"]).get(POST_ROUTES[route].format(**ids))
    assert response.status_code == 405


def test_a_request_of_another_case_is_not_found(app, db, world):
    ids = pending_requests(db, world)
    other = open_case(world["alice"], {"given_name": "Other"})
    db.session.commit()
    client = client_for(app, world["bob"])
    response = client.post_form(f"/cases/{other.id}/closure/{ids['closure_id']}/approve")
    assert response.status_code == 404
    assert reload(db, ClosureRequest, ids["closure_id"]).status == RequestStatus.REQUESTED


def test_the_case_page_links_only_to_allowed_actions(app, world):
    url = f"/cases/{world['case_id']}"
    bob_page = client_for(app, world["bob"]).get(url).get_data(as_text=True)
    alice_page = client_for(app, world["alice"]).get(url).get_data(as_text=True)
    assert f"/cases/{world['case_id']}/supervision" in bob_page
    assert f"/cases/{world['case_id']}/supervision" not in alice_page
    assert f"/cases/{world['case_id']}/closure" in alice_page


# Assignment ------------------------------------------------------------------------------


def test_it_assigns_the_case_with_audit_and_timeline(app, db, world):
    client = client_for(app, world["bob"])
    page = client.get(f"/cases/{world['case_id']}/supervision").get_data(as_text=True)
    assert world["dave"].display_name in page
    assert world["charlie"].display_name not in page
    response = client.post_form(
        f"/cases/{world['case_id']}/assign", {"assignee": str(world["dave"].id)}
    )
    assert response.status_code == 302
    assert reload(db, Case, world["case_id"]).assigned_user_id == world["dave"].id
    (entry,) = entries(db, "case.assigned")
    assert (entry.user_id, entry.object_id) == (world["bob"].id, world["case_id"])
    assert entry.field_name_list == ["assigned_user_id"]
    (event,) = events(db, world["case_id"], "case.assigned")
    assert event.object_id == str(world["dave"].id)


@pytest.mark.parametrize("persona", ["charlie", "admin"])
def test_it_assigns_only_to_the_own_agency_case_staff(app, db, world, persona):
    client = client_for(app, world["bob"])
    response = client.post_form(
        f"/cases/{world['case_id']}/assign", {"assignee": str(world[persona].id)}
    )
    assert response.status_code == 400
    assert reload(db, Case, world["case_id"]).assigned_user_id == world["alice"].id
    with pytest.raises(SupervisionError):
        supervision.assign_case(world["case"], world[persona], world["bob"])


# Closure ---------------------------------------------------------------------------------


def test_closure_is_requested_then_approved(app, db, world):
    alice = client_for(app, world["alice"])
    response = alice.post_form(
        f"/cases/{world['case_id']}/closure",
        {"reason_code": "services_completed", "note": "Sürəyya found work in Gəncə."},
    )
    assert response.status_code == 302
    closure = db.session.scalars(select(ClosureRequest)).one()
    assert closure.requested_by_id == world["alice"].id
    raw = repr(db.session.execute(text("SELECT * FROM case_closure_requests")).all())
    assert "Sürəyya" not in raw and "found work" not in raw

    bob = client_for(app, world["bob"])
    page = bob.get(f"/cases/{world['case_id']}/supervision").get_data(as_text=True)
    assert "Sürəyya found work" in page
    response = bob.post_form(f"/cases/{world['case_id']}/closure/{closure.id}/approve")
    assert response.status_code == 302

    case = reload(db, Case, world["case_id"])
    assert case.status == CaseStatus.CLOSED
    assert case.closure_reason == "services_completed"
    assert case.closed_at is not None
    assert reload(db, ClosureRequest, closure.id).decided_by_id == world["bob"].id
    assert [e.user_id for e in entries(db, "case.closure_requested")] == [world["alice"].id]
    assert [e.user_id for e in entries(db, "case.closure_approved")] == [world["bob"].id]
    assert len(events(db, world["case_id"], "case.closure_approved")) == 1
    # A closed case is read, not edited.
    assert alice.get(f"/cases/{world['case_id']}/edit").status_code == 403

    # Approving again changes nothing.
    again = bob.post_form(f"/cases/{world['case_id']}/closure/{closure.id}/approve")
    assert again.status_code == 302
    assert len(entries(db, "case.closure_approved")) == 1


def test_a_closure_reason_must_come_from_the_list(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/cases/{world['case_id']}/closure", {"reason_code": "made_up", "note": "Moved to Gəncə."}
    )
    assert response.status_code == 400
    assert "Moved to Gəncə.</textarea>" in response.get_data(as_text=True)
    assert db.session.scalar(select(ClosureRequest.id)) is None
    with pytest.raises(SupervisionError):
        supervision.request_closure(world["case"], world["alice"], "made_up", None)


def test_a_closure_rejection_needs_a_reason(app, db, world):
    ids = pending_requests(db, world)
    bob = client_for(app, world["bob"])
    url = f"/cases/{world['case_id']}/closure/{ids['closure_id']}/reject"
    short = bob.post_form(url, {"reason": "no"})
    assert short.status_code == 400
    assert reload(db, ClosureRequest, ids["closure_id"]).status == RequestStatus.REQUESTED
    assert bob.post_form(url, {"reason": "Support is still needed."}).status_code == 302
    closure = reload(db, ClosureRequest, ids["closure_id"])
    assert closure.status == RequestStatus.REJECTED
    assert closure.rejection_reason == "Support is still needed."
    assert reload(db, Case, world["case_id"]).status == CaseStatus.OPEN
    assert len(entries(db, "case.closure_rejected")) == 1


def test_only_one_closure_request_waits_at_a_time(db, world):
    pending_requests(db, world)
    with pytest.raises(SupervisionError):
        supervision.request_closure(world["case"], world["alice"], "lost_contact", None)


# Transfer --------------------------------------------------------------------------------


def test_a_transfer_is_requested_and_approved_without_moving_the_case(app, db, world):
    alice = client_for(app, world["alice"])
    response = alice.post_form(
        f"/cases/{world['case_id']}/transfer",
        {"to_agency": str(world["south"].id), "reason": "The person moved to the south."},
    )
    assert response.status_code == 302
    transfer = db.session.scalars(select(TransferRequest)).one()
    assert transfer.reason == "The person moved to the south."
    bob = client_for(app, world["bob"])
    assert (
        bob.post_form(f"/cases/{world['case_id']}/transfer/{transfer.id}/approve").status_code
        == 302
    )
    transfer = reload(db, TransferRequest, transfer.id)
    assert transfer.status == RequestStatus.APPROVED
    # The receiving agency's acceptance (referral issue) completes the hand-over.
    assert reload(db, Case, world["case_id"]).owner_agency_id == world["north"].id
    assert len(entries(db, "case.transfer_approved")) == 1
    assert len(events(db, world["case_id"], "case.transfer_requested")) == 1


def test_a_transfer_goes_to_another_agency(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/cases/{world['case_id']}/transfer",
        {"to_agency": str(world["north"].id), "reason": "The person moved to the south."},
    )
    assert response.status_code == 400
    assert db.session.scalar(select(TransferRequest.id)) is None


# Restriction and break-the-glass ---------------------------------------------------------


def restricted(app, world):
    """Restrict the case through the form; return Bob's client."""
    client = client_for(app, world["bob"])
    response = client.post_form(f"/cases/{world['case_id']}/restrict", {"reason": REASON})
    assert response.status_code == 302
    return client


def test_break_the_glass_needs_a_reason_is_audited_and_expires(app, db, world):
    bob = restricted(app, world)
    case_url = f"/cases/{world['case_id']}"
    assert bob.get(case_url).status_code == 404
    assert world["case_id"] not in bob.get("/cases/").get_data(as_text=True)

    for reason in ("", "because"):
        response = bob.post_form(f"{case_url}/break-glass", {"reason": reason})
        assert response.status_code == 400
    assert db.session.scalar(select(BreakGlassGrant.id)) is None
    assert bob.get(case_url).status_code == 404

    start = utcnow()
    with time_machine.travel(start, tick=False):
        response = bob.post_form(f"{case_url}/break-glass", {"reason": GLASS_REASON})
        assert response.status_code == 302
        assert response.headers["Location"] == case_url
        page = bob.get(case_url).get_data(as_text=True)
        assert "Nərgiz" in page
    (entry,) = entries(db, "case.break_glass")
    assert (entry.user_id, entry.object_id, entry.reason) == (
        world["bob"].id,
        world["case_id"],
        GLASS_REASON,
    )
    assert len(events(db, world["case_id"], "case.break_glass")) == 1
    # Reading is allowed, editing is not.
    case = reload(db, Case, world["case_id"])
    # Signed in afresh each time: the session itself would have timed out meanwhile.
    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert policy.can_view_case(world["bob"], case)
        assert not policy.can_edit_case(world["bob"], case)
        assert client_for(app, world["bob"]).get(case_url).status_code == 200
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert not policy.can_view_case(world["bob"], case)
        assert client_for(app, world["bob"]).get(case_url).status_code == 404


def test_auditors_see_the_break_the_glass_reason(app, db, world):
    supervision.restrict_case(world["case"], world["bob"], REASON)
    supervision.break_glass(world["case"], world["bob"], GLASS_REASON)
    db.session.commit()
    page = client_for(app, world["auditor"]).get("/audit/").get_data(as_text=True)
    assert "case.break_glass" in page
    assert GLASS_REASON in page


def test_break_the_glass_is_for_restricted_cases_only(db, world):
    with pytest.raises(SupervisionError):
        supervision.break_glass(world["case"], world["bob"], GLASS_REASON)


def test_the_assigned_caseworker_keeps_working_a_restricted_case(app, db, world):
    restricted(app, world)
    alice = client_for(app, world["alice"])
    assert alice.get(f"/cases/{world['case_id']}/edit").status_code == 200
    assert world["case_id"] in alice.get("/cases/").get_data(as_text=True)
    dave = client_for(app, world["dave"])
    assert world["case_id"] not in dave.get("/cases/").get_data(as_text=True)


def test_lifting_the_restriction_opens_the_case_again(app, db, world):
    bob = restricted(app, world)
    assert bob.post_form(f"/cases/{world['case_id']}/unrestrict").status_code == 302
    assert bob.get(f"/cases/{world['case_id']}").status_code == 200
    assert [len(entries(db, a)) for a in ("case.restricted", "case.unrestricted")] == [1, 1]
    raw = repr(db.session.execute(text("SELECT * FROM audit_entries")).all())
    assert "Relative of a staff member" not in raw
