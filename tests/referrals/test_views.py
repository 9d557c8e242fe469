"""Referral pages: the access matrix (route × persona × side), real forms through the test
client, what the receiver sees of the case and when, expiry on view, counts, the case page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import utcnow
from referrals import services
from referrals.models import Referral, ReferralNote
from tests.factories import client_for
from tests.referrals.builders import (
    REASON,
    SECRETS,
    build_world,
    consent_to,
    draft,
    sent,
)


@pytest.fixture
def world(db):
    return build_world(db)


def reload(db, referral_id) -> Referral:
    db.session.expire_all()
    return db.session.get(Referral, referral_id)


# Referrals in the state each route needs -------------------------------------------------


def in_state(db, world, state: str) -> str:
    """Return the id of a referral from NGO North to Clinic East in ``state``."""
    if state == "draft":
        referral = draft(world)
    else:
        referral = sent(world)
        hana = world["hana"]
        if state in ("accepted", "in_progress", "completed"):
            services.accept_referral(hana, referral)
        if state in ("in_progress", "completed"):
            services.start_referral(hana, referral)
        if state == "completed":
            services.complete_referral(hana, referral, "service_provided", "All good.")
        if state == "declined":
            services.decline_referral(hana, referral, "No free place.")
    db.session.commit()
    return referral.id


# route -> (method, url, state needed, form data)
ROUTES = {
    "index": ("GET", "/referrals/", None, None),
    "inbox": ("GET", "/referrals/inbox", None, None),
    "outbox": ("GET", "/referrals/outbox", None, None),
    "create": ("GET", "/referrals/new/{case_id}", None, None),
    "detail": ("GET", "/referrals/{referral_id}", "sent", None),
    "rerefer": ("GET", "/referrals/{referral_id}/rerefer", "declined", None),
    "send": ("POST", "/referrals/{referral_id}/send", "draft", {}),
    "accept": ("POST", "/referrals/{referral_id}/accept", "sent", {}),
    "decline": ("POST", "/referrals/{referral_id}/decline", "sent", {"reason": "Full."}),
    "start": ("POST", "/referrals/{referral_id}/start", "accepted", {}),
    "complete": (
        "POST",
        "/referrals/{referral_id}/complete",
        "in_progress",
        {"outcome": "service_provided"},
    ),
    "cancel": ("POST", "/referrals/{referral_id}/cancel", "sent", {}),
    "notes": ("POST", "/referrals/{referral_id}/notes", "accepted", {"body": "Seen today."}),
}
NOBODY = {**dict.fromkeys(ROUTES, 404)}
SENDER = {
    "index": 302,
    "inbox": 200,
    "outbox": 200,
    "create": 200,
    "detail": 200,
    "rerefer": 200,
    "send": 302,
    "accept": 403,
    "decline": 403,
    "start": 403,
    "complete": 403,
    "cancel": 302,
    "notes": 403,
}
RECEIVER = {
    "index": 302,
    "inbox": 200,
    "outbox": 200,
    # The receiver never opens the case itself, and never sees a draft.
    "create": 404,
    "detail": 200,
    "rerefer": 403,
    "send": 404,
    "accept": 302,
    "decline": 302,
    "start": 302,
    "complete": 302,
    "cancel": 403,
    "notes": 302,
}
THIRD_AGENCY = {**NOBODY, "index": 302, "inbox": 200, "outbox": 200}
EXPECTED = {
    "alice": SENDER,
    "bob": SENDER,
    "hana": RECEIVER,
    "hugo": RECEIVER,
    "charlie": THIRD_AGENCY,
    # A coordinator has an inbox (referrals to the NRM) but sees nothing of this one.
    "coordinator": {**THIRD_AGENCY, "outbox": 200},
    "admin": NOBODY,
    "analyst": NOBODY,
    "auditor": NOBODY,
}
MATRIX = [
    (persona, route, status)
    for persona, statuses in EXPECTED.items()
    for route, status in statuses.items()
]


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, db, world, persona, route, expected):
    method, url, state, data = ROUTES[route]
    ids = {"case_id": world["case_id"]}
    if state is not None:
        ids["referral_id"] = in_state(db, world, state)
    client = client_for(app, world[persona])
    if method == "GET":
        response = client.get(url.format(**ids))
    else:
        response = client.post_form(url.format(**ids), data)
    assert response.status_code == expected


@pytest.mark.parametrize("route", [name for name, spec in ROUTES.items() if spec[0] == "POST"])
def test_actions_reject_get(app, db, world, route):
    _method, url, state, _data = ROUTES[route]
    referral_id = in_state(db, world, state)
    response = client_for(app, world["alice"]).get(url.format(referral_id=referral_id))
    assert response.status_code == 405


@pytest.mark.parametrize("route", ["inbox", "detail"])
def test_anonymous_visitors_are_sent_to_sign_in(app, db, world, route):
    referral_id = in_state(db, world, "sent")
    url = ROUTES[route][1].format(referral_id=referral_id)
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_a_third_agency_is_refused_and_audited(app, db, world):
    referral_id = in_state(db, world, "accepted")
    response = client_for(app, world["charlie"]).get(f"/referrals/{referral_id}")
    assert response.status_code == 404
    denied = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "referral.view_denied")
    ).all()
    assert [entry.outcome for entry in denied] == ["denied"]


def test_made_up_referral_ids_are_not_found(app, db, world):
    client = client_for(app, world["alice"])
    assert client.get("/referrals/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/referrals/not-a-uuid").status_code == 404


# The whole way through real forms --------------------------------------------------------


def test_a_referral_goes_the_whole_way_through_the_forms(app, db, world):
    consent_to(world, world["east"])
    db.session.commit()
    alice = client_for(app, world["alice"])
    response = alice.post_form(
        f"/referrals/new/{world['case_id']}",
        {
            "receiving_agency": str(world["east"].id),
            "service_type": "medical",
            "urgency": "urgent",
            "reason": REASON,
            "sections": ["health"],
            "consent_basis": "consent",
        },
    )
    assert response.status_code == 302
    referral = db.session.scalars(select(Referral)).one()
    assert referral.state == "draft"
    url = f"/referrals/{referral.id}"
    assert alice.post_form(f"{url}/send").status_code == 302
    assert reload(db, referral.id).state == "sent"

    hana = client_for(app, world["hana"])
    inbox = hana.get("/referrals/inbox").get_data(as_text=True)
    assert world["case"].reference in inbox
    page = hana.get(url).get_data(as_text=True)
    assert REASON in page  # the receiver reads the reason to decide
    assert SECRETS["health"] not in page  # but no section before accepting
    assert hana.post_form(f"{url}/accept").status_code == 302
    page = hana.get(url).get_data(as_text=True)
    assert SECRETS["health"] in page
    for section in ("identity", "contact", "exploitation", "assessments", "documents"):
        assert SECRETS[section] not in page
    assert hana.post_form(f"{url}/start").status_code == 302
    assert hana.post_form(f"{url}/notes", {"body": "Internal: slept badly."}).status_code == 302
    shared = {"body": "Blood test normal.", "shared_with_sender": "y"}
    assert hana.post_form(f"{url}/notes", shared).status_code == 302
    assert (
        hana.post_form(
            f"{url}/complete", {"outcome": "service_provided", "outcome_note": "Discharged."}
        ).status_code
        == 302
    )
    assert reload(db, referral.id).state == "completed"

    # Afterwards the receiver keeps its notes, not the case sections nor the reason.
    page = hana.get(url).get_data(as_text=True)
    assert SECRETS["health"] not in page
    assert REASON not in page
    assert "Internal: slept badly." in page

    # The sender sees the outcome and the shared note, never the internal one.
    page = alice.get(url).get_data(as_text=True)
    assert "Discharged." in page
    assert "Blood test normal." in page
    assert "Internal: slept badly." not in page
    notes = db.session.scalars(select(ReferralNote)).all()
    assert len(notes) == 2


def test_the_receivers_read_of_shared_sections_is_audited(app, db, world):
    referral_id = in_state(db, world, "accepted")
    client_for(app, world["hana"]).get(f"/referrals/{referral_id}")
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "referral.case_viewed")
    ).one()
    assert entry.user_id == world["hana"].id
    assert "case.medical_notes" in entry.field_name_list
    assert "case.given_name" in entry.field_name_list
    assert "case.address" not in entry.field_name_list


@pytest.mark.parametrize("state", ["sent", "accepted", "in_progress", "completed", "declined"])
def test_unshared_sections_are_never_shown_to_the_receiver(app, db, world, state):
    referral_id = in_state(db, world, state)
    page = client_for(app, world["hana"]).get(f"/referrals/{referral_id}").get_data(as_text=True)
    for section in ("contact", "exploitation", "assessments", "documents"):
        assert SECRETS[section] not in page
    shown = state in ("accepted", "in_progress")
    assert (SECRETS["health"] in page) is shown
    assert (SECRETS["identity"] in page) is shown


def test_every_section_shows_when_shared(app, db, world):
    referral = sent(world, sections=list(SECRETS))
    services.accept_referral(world["hana"], referral)
    db.session.commit()
    page = client_for(app, world["hana"]).get(f"/referrals/{referral.id}").get_data(as_text=True)
    for secret in SECRETS.values():
        assert secret in page


@pytest.mark.parametrize("persona", ["admin", "analyst", "auditor", "coordinator", "charlie"])
def test_others_never_see_personal_data_anywhere(app, db, world, persona):
    referral_id = in_state(db, world, "in_progress")
    client = client_for(app, world[persona])
    for url in ("/referrals/inbox", "/referrals/outbox", f"/referrals/{referral_id}"):
        page = client.get(url).get_data(as_text=True)
        for secret in (*SECRETS.values(), REASON):
            assert secret not in page


def test_sending_without_consent_is_refused_and_changes_nothing(app, db, world):
    referral_id = in_state(db, world, "draft")
    response = client_for(app, world["alice"]).post_form(
        f"/referrals/{referral_id}/send", follow_redirects=True
    )
    assert "has not consented" in response.get_data(as_text=True)
    assert reload(db, referral_id).state == "draft"


def test_declining_without_reason_rerenders_with_400(app, db, world):
    referral_id = in_state(db, world, "sent")
    response = client_for(app, world["hana"]).post_form(
        f"/referrals/{referral_id}/decline", {"reason": "  "}
    )
    assert response.status_code == 400
    assert reload(db, referral_id).state == "sent"


def test_repeating_an_action_does_no_harm(app, db, world):
    referral_id = in_state(db, world, "sent")
    hana = client_for(app, world["hana"])
    assert hana.post_form(f"/referrals/{referral_id}/accept").status_code == 302
    assert hana.post_form(f"/referrals/{referral_id}/accept").status_code == 403
    referral = reload(db, referral_id)
    assert referral.state == "accepted"
    accepted = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "referral.accepted")
    ).all()
    assert len(accepted) == 1


def test_a_stale_form_is_refused(app, db, world):
    referral_id = in_state(db, world, "sent")
    old_version = str(reload(db, referral_id).version)
    services.accept_referral(world["hugo"], reload(db, referral_id))
    db.session.commit()
    hana = client_for(app, world["hana"])
    response = hana.post_form(f"/referrals/{referral_id}/start", {"version": old_version})
    assert response.status_code == 302
    assert reload(db, referral_id).state == "accepted"


def test_the_create_form_rerenders_with_400_and_keeps_what_was_typed(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/referrals/new/{world['case_id']}",
        {
            "receiving_agency": str(world["east"].id),
            "service_type": "medical",
            "urgency": "urgent",
            "reason": "Typed reason stays",
            "consent_basis": "emergency",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Typed reason stays" in page
    assert "Explain why the referral goes without consent." in page
    assert db.session.scalars(select(Referral)).all() == []


def test_the_own_agency_is_not_offered(app, db, world):
    page = client_for(app, world["alice"]).get(f"/referrals/new/{world['case_id']}")
    text = page.get_data(as_text=True)
    assert "Clinic East" in text
    assert f'value="{world["north"].id}"' not in text


def test_rerefer_prefills_and_drafts_a_new_referral(app, db, world):
    referral_id = in_state(db, world, "declined")
    alice = client_for(app, world["alice"])
    page = alice.get(f"/referrals/{referral_id}/rerefer").get_data(as_text=True)
    assert REASON in page
    response = alice.post_form(
        f"/referrals/{referral_id}/rerefer",
        {
            "receiving_agency": str(world["south"].id),
            "service_type": "shelter",
            "urgency": "routine",
            "reason": REASON,
            "sections": ["identity"],
            "consent_basis": "consent",
        },
    )
    assert response.status_code == 302
    new = db.session.scalars(select(Referral).where(Referral.id != referral_id)).one()
    assert new.previous_referral_id == referral_id
    assert new.receiving_agency_id == world["south"].id


# Deadlines, lists and counts ---------------------------------------------------------------


def test_viewing_referrals_expires_overdue_ones(app, db, world):
    referral_id = in_state(db, world, "sent")
    referral = reload(db, referral_id)
    referral.response_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    page = client_for(app, world["hana"]).get("/referrals/inbox?tab=overdue")
    assert reload(db, referral_id).state == "expired"
    assert world["case"].reference in page.get_data(as_text=True)


def test_the_cli_expires_overdue_referrals(app, db, world):
    referral_id = in_state(db, world, "sent")
    reload(db, referral_id).response_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["referrals", "expire"])
    assert result.exit_code == 0
    assert "1 referral(s) expired" in result.output
    assert reload(db, referral_id).state == "expired"


def test_tabs_count_by_state(app, db, world):
    in_state(db, world, "sent")
    in_state(db, world, "accepted")
    in_state(db, world, "completed")
    page = client_for(app, world["hana"]).get("/referrals/inbox").get_data(as_text=True)
    assert page.count('<span class="badge">1</span>') >= 3
    assert client_for(app, world["hana"]).get("/referrals/inbox?tab=nope").status_code == 404


def test_the_navigation_counts_referrals_waiting_for_an_answer(app, db, world):
    in_state(db, world, "sent")
    in_state(db, world, "accepted")
    page = client_for(app, world["hana"]).get("/referrals/inbox").get_data(as_text=True)
    assert 'Referrals <span class="badge badge--warn">1</span>' in page
    page = client_for(app, world["alice"]).get("/referrals/outbox").get_data(as_text=True)
    assert "Referrals</a>" in page


def test_the_case_page_lists_referrals_with_a_new_referral_button(app, db, world):
    in_state(db, world, "sent")
    page = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "Clinic East" in page
    assert f"/referrals/new/{world['case_id']}" in page


def test_a_refused_referral_shows_why_with_400(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/referrals/new/{world['case_id']}",
        {
            "receiving_agency": str(world["east"].id),
            "service_type": "medical",
            "urgency": "urgent",
            "reason": REASON,
            "consent_basis": "emergency",
            "exception_note": "No time.",
        },
    )
    assert response.status_code == 400
    assert "emergency referrals only" in response.get_data(as_text=True)
    assert db.session.scalars(select(Referral)).all() == []
