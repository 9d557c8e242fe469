"""Notifications: fan-out, per-user reading, the count in the page, e-mail after commit only."""

from __future__ import annotations

import email
import email.policy
import socket
from datetime import date
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

import casework.views
from casework.reference import seed_reference_lists
from casework.services import open_case
from core import policy
from core.db import db
from core.models import AgencyType, Role, User
from core.notifications import Notification, notify, register_notification_kind
from tests.factories import client_for, login_as, make_agency, make_user

KIND = "test.case_opened"
# "Cases" has translations in the catalogs, so the recipient's language shows in the mail.
register_notification_kind(KIND, _l("Cases"))
BASE_URL = "https://haven.example.org"

# A person whose every detail is distinctive, so any leak into a mail is found.
PERSON = {
    "given_name": "Zülfiyyə",
    "family_name": "Qarabağlıxanova",
    "aliases": "Zuzu-Marigold",
    "date_of_birth": date(1997, 2, 13),
    "phone": "+994 55 987 65 43",
    "document_number": "ZX9081726",
    "address": "Nizami küç. 77, m. 19",
    "circumstances": "Recruited by Elmirovich for a bakery.",
}
PERSON_CODES = {
    "sex": "Feminine",
    "identified_on": date(2025, 11, 3),
    "identification_region": "baku",
    "exploitation_form": ["ForcedLabour"],
}
SECRETS = [
    "Zülfiyyə",
    "Qarabağlıxanova",
    "Qarabaglixanova",
    "Zuzu-Marigold",
    "1997",
    "987 65 43",
    "ZX9081726",
    "Nizami",
    "Elmirovich",
    "bakery",
]


@pytest.fixture
def world(db):
    """Alice (caseworker, NGO North) opens cases; Bob and Dave supervise North; Charlie
    supervises at Shelter South; Eve is a deactivated North supervisor."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    people = SimpleNamespace(
        north=north,
        south=south,
        alice=make_user(north, Role.CASEWORKER, email="alice@example.org"),
        bob=make_user(north, Role.SUPERVISOR, email="bob@example.org"),
        dave=make_user(north, Role.SUPERVISOR, Role.CASEWORKER, language="ru"),
        charlie=make_user(south, Role.SUPERVISOR, email="charlie@example.org"),
        eve=make_user(north, Role.SUPERVISOR),
    )
    people.eve.active = False
    db.session.commit()
    return people


def notify_north_supervisors(world, reference="HVN-2026-000123", link="/cases/abc-123"):
    return notify(
        agency=world.north, roles=[Role.SUPERVISOR], kind=KIND, reference=reference, link=link
    )


def notifications_of(user: User) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id)))


# The service ------------------------------------------------------------------------------


def test_it_fans_out_to_the_agencys_active_users_with_the_role(world):
    created = notify_north_supervisors(world)
    db.session.commit()
    assert sorted(n.user_id for n in created) == sorted([world.bob.id, world.dave.id])
    for user in (world.alice, world.charlie, world.eve):
        assert notifications_of(user) == []
    [bobs] = notifications_of(world.bob)
    assert (bobs.agency_id, bobs.roles, bobs.reference, bobs.link) == (
        world.north.id,
        "supervisor",
        "HVN-2026-000123",
        "/cases/abc-123",
    )
    assert bobs.is_unread and bobs.label == "Cases"


def test_it_notifies_each_user_once(world):
    created = notify(
        users=[world.bob, world.alice, world.eve],
        agency=world.north,
        kind=KIND,
        reference="HVN-2026-000124",
        link="/cases/x",
    )
    # Everyone active at North once (Eve is deactivated), Bob and Alice named as users.
    assert sorted(n.user_id for n in created) == sorted(
        [world.alice.id, world.bob.id, world.dave.id]
    )
    assert {n.user_id: n.agency_id for n in created}[world.bob.id] is None


@pytest.mark.parametrize(
    ("reference", "link", "error"),
    [
        ("Zülfiyyə Qarabağlıxanova", "/cases/x", ValueError),
        ("HVN-2026-000123 Zulfiyya", "/cases/x", ValueError),
        ("HVN-2026-000123", "/cases/search?name=Zulfiyya", ValueError),
        ("HVN-2026-000123", "https://evil.example/x", ValueError),
        ("HVN-2026-000123", "//evil.example/x", ValueError),
        ("HVN-2026-000123", "/cases/Zülfiyyə", ValueError),
    ],
)
def test_it_refuses_anything_but_a_reference_and_a_path(world, reference, link, error):
    with pytest.raises(error):
        notify(users=[world.bob], kind=KIND, reference=reference, link=link)


def test_it_refuses_an_unregistered_kind_and_roles_without_an_agency(world):
    with pytest.raises(KeyError):
        notify(users=[world.bob], kind="test.nobody", reference="HVN-2026-1", link="/x")
    with pytest.raises(ValueError):
        notify(users=[world.bob], roles=[Role.SUPERVISOR], kind=KIND, reference="HVN-1", link="/x")


def test_a_user_who_moved_agency_no_longer_sees_the_agencys_notifications(world):
    [bobs, _daves] = notify_north_supervisors(world)
    [direct] = notify(users=[world.bob], kind=KIND, reference="HVN-2026-000125", link="/x")
    db.session.commit()
    world.bob.agency = world.south
    db.session.commit()
    assert not policy.can_view_notification(world.bob, bobs)
    assert policy.may(world.bob, "view_notification", direct)
    assert db.session.scalars(policy.visible_notifications(world.bob)).all() == [direct]


# The notification centre -------------------------------------------------------------------


def test_the_centre_lists_own_notifications_newest_first_with_the_count(app, world):
    notify_north_supervisors(world, reference="HVN-2026-000001")
    notify_north_supervisors(world, reference="HVN-2026-000002")
    db.session.commit()
    page = client_for(app, world.bob).get("/notifications").get_data(as_text=True)
    assert page.index("HVN-2026-000002") < page.index("HVN-2026-000001")
    assert page.count("notification--unread") == 2
    assert 'href="/cases/abc-123"' in page
    assert 'class="badge badge--warn">2<span class="visually-hidden">' in page


def test_other_agencies_and_colleagues_without_the_role_see_nothing(app, world):
    notify_north_supervisors(world)
    db.session.commit()
    for user in (world.charlie, world.alice):
        client = client_for(app, user)
        page = client.get("/notifications").get_data(as_text=True)
        assert "HVN-2026-000123" not in page
        assert "You have no notifications." in page
        start = client.get("/").get_data(as_text=True)
        assert 'href="/notifications">Notifications</a>' in start  # no count badge


def test_the_count_in_every_page_follows_reading(app, world):
    created = notify_north_supervisors(world)
    notify_north_supervisors(world, reference="HVN-2026-000999")
    db.session.commit()
    bobs = next(n for n in created if n.user_id == world.bob.id)
    client = client_for(app, world.bob)
    assert ">2<span" in client.get("/").get_data(as_text=True)
    response = client.post_form(f"/notifications/{bobs.id}/read")
    assert response.status_code == 302
    assert ">1<span" in client.get("/").get_data(as_text=True)
    assert notifications_of(world.bob)[0].read_at is not None
    # Dave's copy of the same notification is his own: still unread.
    assert all(n.is_unread for n in notifications_of(world.dave))


def test_it_marks_all_read_for_the_user_only(app, world):
    notify_north_supervisors(world)
    notify_north_supervisors(world, reference="HVN-2026-000999")
    db.session.commit()
    client = client_for(app, world.bob)
    response = client.post_form("/notifications/read-all", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "All notifications marked read." in page
    assert "notification--unread" not in page
    assert all(n.read_at is not None for n in notifications_of(world.bob))
    assert all(n.is_unread for n in notifications_of(world.dave))


def test_a_user_cannot_mark_another_users_notification_read(app, world):
    created = notify_north_supervisors(world)
    db.session.commit()
    daves = next(n for n in created if n.user_id == world.dave.id)
    for user in (world.bob, world.charlie):
        client = client_for(app, user)
        assert client.post_form(f"/notifications/{daves.id}/read").status_code == 404
    assert client.post_form("/notifications/999999/read").status_code == 404
    assert notifications_of(world.dave)[0].read_at is None


def test_the_actions_reject_get_and_anonymous_visitors(app, client, world):
    [bobs, _daves] = notify_north_supervisors(world)
    db.session.commit()
    response = client.get("/notifications")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = client.post_form(f"/notifications/{bobs.id}/read")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    login_as(client, world.bob)
    assert client.get(f"/notifications/{bobs.id}/read").status_code == 405
    assert client.get("/notifications/read-all").status_code == 405
    # Without the CSRF token nothing happens.
    assert client.post(f"/notifications/{bobs.id}/read").status_code == 400
    assert notifications_of(world.bob)[0].read_at is None


def test_marking_read_twice_is_harmless(app, world):
    [bobs, _daves] = notify_north_supervisors(world)
    db.session.commit()
    client = client_for(app, world.bob)
    client.post_form(f"/notifications/{bobs.id}/read")
    first = notifications_of(world.bob)[0].read_at
    assert client.post_form(f"/notifications/{bobs.id}/read").status_code == 302
    assert notifications_of(world.bob)[0].read_at == first


# E-mail --------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(envelope.content, policy=email.policy.default)
            for envelope in self.envelopes
        ]

    def raw(self) -> str:
        return "\n".join(envelope.content.decode("utf-8", "replace") for envelope in self.envelopes)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mail_config(app):
    saved = {key: app.config.get(key) for key in app.config if key.startswith("HAVEN_SMTP")}
    saved.update(HAVEN_BASE_URL=app.config.get("HAVEN_BASE_URL"))
    saved.update(HAVEN_MAIL_FROM=app.config.get("HAVEN_MAIL_FROM"))
    yield app.config
    app.config.update(saved)


@pytest.fixture
def smtp_server(mail_config):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mail_config.update(
        HAVEN_SMTP_HOST="127.0.0.1",
        HAVEN_SMTP_PORT=str(controller.port),  # as the environment gives it
        HAVEN_SMTP_STARTTLS="false",
        HAVEN_SMTP_TIMEOUT=5,
        HAVEN_MAIL_FROM="haven@example.org",
        HAVEN_BASE_URL=BASE_URL,
    )
    yield inbox
    controller.stop()


@pytest.fixture
def case_world(world):
    seed_reference_lists()
    db.session.commit()
    return world


def open_case_and_notify(monkeypatch):
    """Make the case form notify the agency's supervisors, as the referral helpers will."""

    def opening(user, data, **kwargs):
        case = open_case(user, data, **kwargs)
        notify(
            agency=user.agency,
            roles=[Role.SUPERVISOR],
            kind=KIND,
            reference=case.reference,
            link=f"/cases/{case.id}",
        )
        return case

    monkeypatch.setattr(casework.views, "open_case", opening)


def case_form() -> dict:
    data = {**PERSON, **PERSON_CODES}
    return {
        name: value.isoformat() if isinstance(value, date) else value
        for name, value in data.items()
    }


def test_the_mail_holds_the_reference_and_link_and_no_personal_data(
    app, case_world, smtp_server, monkeypatch
):
    world = case_world
    open_case_and_notify(monkeypatch)
    client = client_for(app, world.alice)
    response = client.post_form("/cases/new", case_form())
    assert response.status_code == 302
    case_path = response.headers["Location"]
    [bobs] = notifications_of(world.bob)
    assert bobs.link == case_path

    messages = {message["To"]: message for message in smtp_server.messages()}
    assert set(messages) == {"bob@example.org", world.dave.email}
    bob_mail = messages["bob@example.org"]
    body = bob_mail.get_content()
    assert bob_mail["From"] == "haven@example.org"
    assert bobs.reference in bob_mail["Subject"] and bobs.reference in body
    assert f"{BASE_URL}{case_path}" in body
    assert "Cases" in body
    # Dave reads Russian: his mail is in Russian.
    assert "Дела" in messages[world.dave.email].get_content()
    raw = smtp_server.raw()
    people = [world.alice.display_name, world.alice.email, world.bob.display_name]
    for secret in [*SECRETS, *people, world.dave.display_name, "NGO North"]:
        assert secret not in raw
        for message in smtp_server.messages():
            assert secret not in message.get_content() and secret not in message["Subject"]


def test_no_mail_when_the_transaction_rolls_back(case_world, smtp_server):
    world = case_world
    case = open_case(world.alice, {**PERSON, **PERSON_CODES})
    notify(users=[world.bob], kind=KIND, reference=case.reference, link=f"/cases/{case.id}")
    db.session.rollback()
    db.session.commit()
    assert smtp_server.envelopes == []
    assert notifications_of(world.bob) == []

    # Rolled back in a savepoint while the outer transaction commits: no mail either.
    savepoint = db.session.begin_nested()
    notify(users=[world.bob], kind=KIND, reference="HVN-2026-000777", link="/cases/x")
    savepoint.rollback()
    notify(users=[world.charlie], kind=KIND, reference="HVN-2026-000778", link="/cases/y")
    db.session.commit()
    assert [message["To"] for message in smtp_server.messages()] == ["charlie@example.org"]
    assert "HVN-2026-000777" not in smtp_server.raw()


def test_the_mail_waits_for_the_commit(world, smtp_server):
    notify(users=[world.bob], kind=KIND, reference="HVN-2026-000126", link="/cases/x")
    assert smtp_server.envelopes == []
    db.session.commit()
    assert len(smtp_server.envelopes) == 1
    db.session.commit()  # a later commit does not send it again
    assert len(smtp_server.envelopes) == 1


def test_a_dead_smtp_server_does_not_break_the_request(
    app, case_world, mail_config, monkeypatch, caplog
):
    world = case_world
    mail_config.update(
        HAVEN_SMTP_HOST="127.0.0.1",
        HAVEN_SMTP_PORT=free_port(),  # nothing listens there
        HAVEN_SMTP_STARTTLS=False,
        HAVEN_BASE_URL=BASE_URL,
    )
    open_case_and_notify(monkeypatch)
    client = client_for(app, world.alice)
    response = client.post_form("/cases/new", case_form())
    assert response.status_code == 302
    assert len(notifications_of(world.bob)) == 1
    failures = [record for record in caplog.records if "notification e-mail failed" in record.msg]
    assert failures
    logged = " ".join(record.getMessage() for record in caplog.records)
    for secret in [*SECRETS, "bob@example.org"]:
        assert secret not in logged


def test_no_mail_for_users_who_turned_it_off(app, world, smtp_server):
    client = client_for(app, world.bob)
    page = client.get("/notifications").get_data(as_text=True)
    assert 'name="notify_by_email"' in page
    response = client.post_form("/notifications/email", {})  # checkbox left unticked
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, world.bob.id).notify_by_email is False
    notify_north_supervisors(world)
    db.session.commit()
    assert [message["To"] for message in smtp_server.messages()] == [world.dave.email]
    assert len(notifications_of(world.bob)) == 1  # the notification itself still comes


def test_no_mail_without_an_smtp_host(world, mail_config):
    mail_config.update(HAVEN_SMTP_HOST=None)
    notify_north_supervisors(world)
    db.session.commit()
    assert db.session.info.get("haven_pending_notification_mail") is None
