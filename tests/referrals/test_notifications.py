"""Referral and transfer notifications: each event reaches the right people and nobody else,
and neither the notification nor its e-mail holds anything of the case but its reference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from casework import supervision
from casework.casefile_services import withdraw_consent
from core.db import utcnow
from core.models import Role
from core.notifications import Notification
from referrals import services
from tests.core.test_notifications import Inbox, free_port
from tests.factories import client_for, make_user
from tests.referrals.builders import PERSON, REASON, SECRETS, WITHDRAWN, build_world, draft, sent

DECLINE_REASON = "No gynaecologist until Thursday"
OUTCOME_NOTE = "Discharged with antibiotics"
CANCEL_REASON = "She moved to her aunt in Quba"


@pytest.fixture
def world(db):
    world = build_world(db)
    world["sue"] = make_user(world["south"], Role.SUPERVISOR, email="sue@example.org")
    for name in ("alice", "bob", "hana", "hugo", "charlie", "coordinator"):
        world[name].email = f"{name}@example.org"
    db.session.commit()
    return world


def received(db, world) -> dict[str, list[tuple[str, str, str]]]:
    """Return each persona's notifications as (kind, reference, link), oldest first."""
    db.session.expire_all()
    rows = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    by_user = {user.id: name for name, user in world.items() if hasattr(user, "agency_id")}
    found: dict[str, list] = {}
    for row in rows:
        found.setdefault(by_user[row.user_id], []).append((row.kind, row.reference, row.link))
    return found


def clear(db) -> None:
    for row in db.session.scalars(select(Notification)):
        db.session.delete(row)
    db.session.commit()


def expected(world, referral, kind: str, *names: str) -> dict:
    item = (kind, world["case"].reference, f"/referrals/{referral.id}")
    return {name: [item] for name in names}


def test_sending_notifies_the_receiving_agencys_caseworkers_and_supervisors(db, world):
    referral = draft(world)
    db.session.commit()
    assert received(db, world) == {}  # a draft tells nobody
    services.send_referral(world["alice"], sent_ready(world, referral))
    db.session.commit()
    assert received(db, world) == expected(world, referral, "referral.received", "hana", "hugo")


def test_a_status_decision_request_notifies_the_national_coordinator(db, world):
    from tests.referrals.builders import sent

    referral = sent(world, agency=world["nrm"], service_type="status_decision")
    db.session.commit()
    assert received(db, world) == expected(world, referral, "referral.received", "coordinator")


def sent_ready(world, referral):
    from tests.referrals.builders import consent_to

    consent_to(world, world["east"])
    return referral


@pytest.mark.parametrize(
    ("steps", "kind"),
    [
        (("accept",), "referral.accepted"),
        (("decline",), "referral.declined"),
        (("complete",), "referral.completed"),
        (("expire",), "referral.expired"),
    ],
)
def test_the_receivers_answers_reach_the_assigned_caseworker_only(db, world, steps, kind):
    referral = sent(world)
    if steps == ("complete",):
        act(world, referral, ("accept", "start"))
    db.session.commit()
    clear(db)
    act(world, referral, steps)
    assert received(db, world) == expected(world, referral, kind, "alice")


def act(world, referral, steps) -> None:
    hana = world["hana"]
    for step in steps:
        if step == "accept":
            services.accept_referral(hana, referral)
        elif step == "start":
            services.start_referral(hana, referral)
        elif step == "complete":
            services.complete_referral(hana, referral, "service_provided", OUTCOME_NOTE)
        elif step == "decline":
            services.decline_referral(hana, referral, DECLINE_REASON)
        elif step == "expire":
            services.expire_overdue_referrals(utcnow() + timedelta(days=30))
    from core.db import db

    db.session.commit()


def test_without_an_assignee_the_sending_agency_hears_of_it(db, world):
    referral = sent(world)
    world["case"].assigned_user_id = None
    db.session.commit()
    clear(db)
    act(world, referral, ("accept",))
    assert received(db, world) == expected(world, referral, "referral.accepted", "alice", "bob")


def test_an_assignee_who_left_the_agency_is_replaced_by_the_agency(db, world):
    referral = sent(world)
    world["alice"].active = False
    db.session.commit()
    clear(db)
    act(world, referral, ("decline",))
    assert received(db, world) == expected(world, referral, "referral.declined", "bob")


def test_cancelling_tells_the_receiver_and_the_assignee_but_not_the_one_who_cancelled(db, world):
    referral = sent(world)
    db.session.commit()
    clear(db)
    services.cancel_referral(world["alice"], referral, CANCEL_REASON)
    db.session.commit()
    assert received(db, world) == expected(world, referral, "referral.cancelled", "hana", "hugo")

    other = sent(world, sections=("identity",))
    db.session.commit()
    clear(db)
    services.cancel_referral(world["bob"], other, CANCEL_REASON)
    db.session.commit()
    assert received(db, world) == expected(
        world, other, "referral.cancelled", "alice", "hana", "hugo"
    )


def test_a_cancelled_draft_tells_nobody(db, world):
    referral = draft(world)
    services.cancel_referral(world["bob"], referral)
    db.session.commit()
    assert received(db, world) == {}


def test_a_withdrawn_consent_cancels_and_tells_both_sides(db, world):
    referral = sent(world)
    db.session.commit()
    clear(db)
    withdraw_consent(
        world["alice"], world["case"], "referral", WITHDRAWN, agency_id=world["east"].id
    )
    db.session.commit()
    assert received(db, world) == expected(
        world, referral, "referral.cancelled", "alice", "hana", "hugo"
    )


def test_starting_the_service_tells_nobody(db, world):
    referral = sent(world)
    services.accept_referral(world["hana"], referral)
    db.session.commit()
    clear(db)
    services.start_referral(world["hana"], referral)
    db.session.commit()
    assert received(db, world) == {}


# Transfers ------------------------------------------------------------------------------------


def transfer_item(world, kind: str, link: str) -> tuple[str, str, str]:
    return (kind, world["case"].reference, link)


def approved_transfer(db, world):
    clear(db)
    request = supervision.request_transfer(
        world["case"], world["alice"], world["south"], "She needs a women's shelter now."
    )
    db.session.commit()
    assert received(db, world) == {}  # asking is the sending agency's own business
    supervision.approve_transfer(request, world["bob"])
    db.session.commit()
    return request


def test_an_approved_transfer_reaches_the_receiving_supervisors_only(db, world):
    approved_transfer(db, world)
    assert received(db, world) == {
        "sue": [transfer_item(world, "transfer.incoming", "/transfers/incoming")]
    }


def test_the_answer_to_a_transfer_reaches_the_sending_supervisors(db, world):
    request = approved_transfer(db, world)
    clear(db)
    supervision.decline_transfer(request, world["sue"], "No free place for a family now.")
    db.session.commit()
    link = f"/cases/{world['case_id']}/supervision"
    assert received(db, world) == {"bob": [transfer_item(world, "transfer.declined", link)]}

    request = approved_transfer(db, world)
    clear(db)
    supervision.accept_transfer(request, world["sue"])
    db.session.commit()
    assert received(db, world) == {
        "bob": [transfer_item(world, "transfer.accepted", "/supervision")]
    }


# No personal data, in the app or by mail -------------------------------------------------------


@pytest.fixture
def smtp_server(app):
    saved = {
        key: app.config.get(key)
        for key in ("HAVEN_SMTP_HOST", "HAVEN_SMTP_PORT", "HAVEN_SMTP_STARTTLS", "HAVEN_BASE_URL")
    }
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(
        HAVEN_SMTP_HOST="127.0.0.1",
        HAVEN_SMTP_PORT=controller.port,
        HAVEN_SMTP_STARTTLS="false",
        HAVEN_BASE_URL="https://haven.example.org",
    )
    yield inbox
    controller.stop()
    app.config.update(saved)


def test_no_notification_or_mail_holds_personal_data(app, db, world, smtp_server):
    """Walk one referral through the forms and a transfer through the services; look at
    every notification page and every mail for anything of the case."""
    approved_transfer(db, world)
    referral = sent(world)
    db.session.commit()
    url = f"/referrals/{referral.id}"
    hana = client_for(app, world["hana"])
    assert hana.post_form(f"{url}/accept").status_code == 302
    assert hana.post_form(f"{url}/start").status_code == 302
    done = {"outcome": "service_provided", "outcome_note": OUTCOME_NOTE}
    assert hana.post_form(f"{url}/complete", done).status_code == 302
    other = sent(world, sections=("identity",))
    db.session.commit()
    services.decline_referral(world["hana"], other, DECLINE_REASON)
    db.session.commit()

    messages = smtp_server.messages()
    recipients = sorted(message["To"] for message in messages)
    # Sent twice to Hana and Hugo, accepted, completed, declined to Alice; the transfer to Sue.
    assert recipients == sorted(
        ["hana@example.org", "hugo@example.org"] * 2
        + ["alice@example.org"] * 3
        + ["sue@example.org"]
    )
    reference = world["case"].reference
    for message in messages:
        assert reference in message["Subject"] and reference in message.get_content()
    secrets = [
        *SECRETS.values(),
        *(value for value in PERSON.values() if isinstance(value, str)),
        REASON,
        DECLINE_REASON,
        OUTCOME_NOTE,
        "She needs a women's shelter",
        world["alice"].display_name,
        world["hana"].display_name,
        "Clinic East",
        "NGO North",
    ]
    raw = smtp_server.raw()
    pages = [client_for(app, world[name]).get("/notifications") for name in ("alice", "hana")]
    texts = [page.get_data(as_text=True) for page in pages]
    assert reference in texts[0] and f'href="{url}"' in texts[0]
    # The centre's pages show the signed-in user's own name in the navigation: look at the
    # notification list only.
    listed = [text[text.index("<main") :] for text in texts]
    for secret in secrets:
        assert secret not in raw
        for text in listed:
            assert secret not in text
    for row in db.session.scalars(select(Notification)):
        assert row.reference == reference
        assert row.link in {url, f"/referrals/{other.id}", "/transfers/incoming"}
