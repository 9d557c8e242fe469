"""Incoming reports: hotline calls and presumed-victim notifications, their access, their
encryption, the 24-hour rule, and turning them into cases."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from casework.contact_workflow import InvalidTransition, State
from casework.contacts import (
    CHOSEN_REASONS,
    ClosureReason,
    ContactError,
    IncomingReport,
    IncomingReportTransition,
    acknowledge_report,
    close_report,
    convert_report,
    open_incoming_count,
    record_hotline_call,
    send_notification,
    withdraw_report,
)
from casework.models import Case
from casework.reference import seed_reference_lists
from casework.services import open_case
from core import policy
from core.audit import AuditEntry
from core.db import utcnow
from core.models import Agency, AgencyType, Role
from core.notifications import Notification
from referrals import decisions
from tests.factories import client_for, make_agency, make_user

CALL_SECRETS = {
    "person_name": "Günay Səfərova",
    "contact_details": "+994 50 555 12 34 after 18:00, safe word 'pomegranate'",
    "circumstances": "Held in a flat in Antalya since March; passport taken by the agent Rauf.",
}
NOTE_SECRETS = {
    "person_name": "Orxan Qəhrəmanlı",
    "contact_details": "Staying at the consulate's partner shelter, room 4",
    "circumstances": "Came to the consulate in Istanbul without documents after escaping a farm.",
}
CALL_CODES = {
    "call_language": "az",
    "caller_relation": "third_party",
    "callback_consent": True,
    "country": "TR",
    "sex": "Feminine",
    "age_band": "18-24",
    "is_minor": False,
    "exploitation_form": ["SexualExploitation"],
}


@pytest.fixture
def world(db):
    seed_reference_lists()
    hotline = make_agency(AgencyType.HOTLINE, name="Helpline")
    consulate = make_agency(AgencyType.CONSULAR, name="Consulate Istanbul")
    consulate.keeps_case_files = False
    border = make_agency(AgencyType.BORDER_SERVICE, name="Border post")
    border.keeps_case_files = False
    ngo = make_agency(AgencyType.NGO, name="NGO North")
    other = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    ministry = make_agency(AgencyType.MINISTRY, name="Ministry")
    people = {
        "hotline": hotline,
        "consulate": consulate,
        "border": border,
        "ngo": ngo,
        "other": other,
        "nrm": nrm,
        "operator": make_user(hotline, Role.CASEWORKER),
        "operator2": make_user(hotline, Role.CASEWORKER),
        "consul": make_user(consulate, Role.CASEWORKER),
        "consul2": make_user(consulate, Role.CASEWORKER),
        "guard": make_user(border, Role.CASEWORKER),
        "alice": make_user(ngo, Role.CASEWORKER),
        "bob": make_user(ngo, Role.SUPERVISOR),
        "charlie": make_user(other, Role.CASEWORKER),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "analyst": make_user(ministry, Role.ANALYST),
        "admin": make_user(nrm, Role.ADMIN),
        "auditor": make_user(nrm, Role.AUDITOR),
    }
    db.session.commit()
    return people


def a_call(world, *, to="ngo", now=None, **extra):
    data = {**CALL_CODES, **CALL_SECRETS, **extra}
    receiver = world[to] if to else None
    return record_hotline_call(world["operator"], data, receiving_agency=receiver, now=now)


def a_notification(world, *, to="nrm", hours_ago=2, sender="consul", **extra):
    data = {
        "intake_channel": "consular_abroad",
        "incoming_returnee": True,
        "country": "TR",
        "sex": "Masculine",
        "age_band": "25-34",
        "exploitation_form": ["ForcedLabour"],
        **NOTE_SECRETS,
        **extra,
    }
    return send_notification(
        world[sender],
        data,
        receiving_agency=world[to],
        identified_at=utcnow() - timedelta(hours=hours_ago),
    )


def selected(html: str, value: str) -> bool:
    """Return whether the page has the option of this value selected."""
    return any("selected" in tag for tag in re.findall(rf'<option[^>]*value="{value}"[^>]*>', html))


def checked(html: str, value: str) -> bool:
    """Return whether the page has the checkbox of this value checked."""
    return any("checked" in tag for tag in re.findall(rf'<input[^>]*value="{value}"[^>]*>', html))


def reload(db, report_id) -> IncomingReport:
    db.session.expire_all()
    return db.session.get(IncomingReport, report_id)


def intake_form(**overrides) -> dict:
    """A complete intake form as the browser posts it."""
    form = {
        "given_name": "Günay",
        "family_name": "Səfərova",
        "sex": "Feminine",
        "identified_on": utcnow().date().isoformat(),
        "identification_region": "abroad",
        "exploitation_form": "SexualExploitation",
        "action": "open",
    }
    form.update(overrides)
    return form


# Recording, encryption ---------------------------------------------------------------------


def test_a_call_is_routed_and_the_agency_is_notified(db, world):
    report = a_call(world)
    db.session.commit()
    report = reload(db, report.id)
    assert report.state == State.SENT
    assert report.intake_channel == "hotline"
    assert report.reference.startswith("INR-")
    assert report.person_name == CALL_SECRETS["person_name"]
    assert [row.to_state for row in report.transitions] == ["sent"]
    sent_to = db.session.scalars(select(Notification.user_id)).all()
    assert set(sent_to) == {world["alice"].id, world["bob"].id}
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "contact.created"))


def test_advice_only_closes_the_call_at_once_without_a_receiver(db, world):
    report = a_call(world, to=None)
    db.session.commit()
    report = reload(db, report.id)
    assert report.state == State.CLOSED
    assert report.closure_reason == "advice_given"
    assert report.receiving_agency_id is None
    assert db.session.scalars(select(Notification)).all() == []


def test_an_anonymous_call_keeps_no_name_but_its_codes(db, world):
    report = a_call(world, anonymous=True)
    db.session.commit()
    row = db.session.execute(text("SELECT * FROM incoming_reports")).mappings().one()
    assert row["person_name_enc"] is None
    assert row["sex"] == "Feminine"
    assert row["age_band"] == "18-24"
    assert row["country"] == "TR"
    assert row["region"] == "abroad"
    assert row["exploitation_forms"] == "SexualExploitation"
    assert bool(row["anonymous"]) is True
    assert reload(db, report.id).person_name is None


def test_raw_rows_hold_no_personal_data_in_clear(db, world):
    a_call(world)
    a_notification(world)
    db.session.commit()
    rows = db.session.execute(text("SELECT * FROM incoming_reports")).mappings().all()
    assert len(rows) == 2
    dump = repr([{k: v for k, v in row.items() if not k.endswith("id")} for row in rows])
    for row in rows:
        for value in row.values():
            if isinstance(value, bytes | memoryview):
                dump += bytes(value).decode("latin-1")
    for secret in (*CALL_SECRETS.values(), *NOTE_SECRETS.values()):
        assert secret not in dump
        assert secret.encode("utf-8").decode("latin-1") not in dump
        for word in secret.split():
            if len(word) > 6:
                assert word not in dump
    # Each report has its own data key.
    assert len({row["data_key_id"] for row in rows}) == 2


def test_the_audit_names_fields_never_values(db, world):
    a_notification(world)
    db.session.commit()
    entries = db.session.scalars(select(AuditEntry)).all()
    dump = repr([(e.action, e.field_names) for e in entries])
    assert "person_name" in dump
    for secret in NOTE_SECRETS.values():
        assert secret not in dump


# The 24-hour rule --------------------------------------------------------------------------


def test_a_notification_is_due_24_hours_after_identification(db, world, app, monkeypatch):
    report = a_notification(world, to="ngo", hours_ago=2)
    db.session.commit()
    report = reload(db, report.id)
    assert report.notification_due_at == report.identified_at + timedelta(hours=24)
    identified = report.identified_at
    assert report.deadline(now=identified + timedelta(hours=10)) is None
    assert report.deadline(now=identified + timedelta(hours=19)) == "near"
    assert report.deadline(now=identified + timedelta(hours=24)) == "overdue"
    monkeypatch.setitem(app.config, "HAVEN_NRM_NOTIFICATION_WARNING_HOURS", 2)
    assert report.deadline(now=identified + timedelta(hours=19)) is None


def test_the_notification_hours_are_configurable(db, world, app, monkeypatch):
    monkeypatch.setitem(app.config, "HAVEN_NRM_NOTIFICATION_HOURS", 12)
    report = a_notification(world, to="ngo")
    assert report.notification_due_at == report.identified_at + timedelta(hours=12)


def test_an_open_report_past_the_deadline_is_overdue_in_the_inbox(app, db, world):
    late = a_notification(world, to="ngo", hours_ago=30)
    fresh = a_notification(world, to="ngo", hours_ago=1)
    db.session.commit()
    page = client_for(app, world["alice"]).get("/contacts/incoming").get_data(as_text=True)
    assert page.count("Overdue") == 1
    row = page.split(late.reference)[1].split("</tr>")[0]
    assert "Overdue" in row
    assert "Overdue" not in page.split(fresh.reference)[1].split("</tr>")[0]
    detail = client_for(app, world["alice"]).get(f"/contacts/{late.id}").get_data(as_text=True)
    assert "Overdue: the national coordinator was to be notified by" in detail


def test_near_the_deadline_the_report_warns(app, db, world):
    report = a_notification(world, to="ngo", hours_ago=20)
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/contacts/{report.id}").get_data(as_text=True)
    assert "Due soon" in page


def test_sent_straight_to_the_coordinator_it_is_never_overdue(app, db, world):
    report = a_notification(world, to="nrm", hours_ago=30)
    db.session.commit()
    assert reload(db, report.id).deadline() is None
    page = client_for(app, world["coordinator"]).get("/contacts/incoming").get_data(as_text=True)
    assert report.reference in page
    assert "Overdue" not in page


def test_a_converted_report_is_no_longer_overdue(db, world):
    report = a_notification(world, to="ngo", hours_ago=30)
    convert_report(world["alice"], report, {"given_name": "X", "sex": "Masculine"})
    db.session.commit()
    assert reload(db, report.id).deadline(now=utcnow() + timedelta(days=5)) is None


def test_future_identification_is_refused(app, db, world):
    client = client_for(app, world["consul"])
    future = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post_form(
        "/contacts/notifications/new",
        {
            "recipient": str(world["nrm"].id),
            "identified_at": future,
            "intake_channel": "consular_abroad",
            "circumstances": "Typed text to keep",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "cannot be in the future" in page
    assert "Typed text to keep" in page
    assert db.session.scalars(select(IncomingReport)).all() == []


# Turning into a case -------------------------------------------------------------------------


def test_converting_a_call_opens_a_hotline_case_linked_to_the_call(db, world):
    report = a_call(world)
    case = convert_report(
        world["alice"],
        report,
        {"given_name": "Günay", "sex": "Feminine", "intake_channel": "walk_in"},
    )
    db.session.commit()
    report = reload(db, report.id)
    case = db.session.get(Case, case.id)
    assert report.state == State.CONVERTED
    assert report.case_id == case.id
    assert case.intake_channel == "hotline"
    assert case.identifying_agency_type == "hotline"
    assert case.owner_agency_id == world["ngo"].id
    assert case.assigned_user_id == world["alice"].id
    # The case has its own data key, not the report's.
    assert case.data_key_id != report.data_key_id


def test_conversion_runs_the_clock_from_the_notification(db, world):
    report = a_notification(world, to="ngo", hours_ago=40)
    case = convert_report(world["alice"], report, {"given_name": "Orxan", "sex": "Masculine"})
    db.session.commit()
    case = db.session.get(Case, case.id)
    report = reload(db, report.id)
    assert decisions.identified_at(case) == report.identified_at
    assert decisions.notification_due(case) == report.identified_at + timedelta(hours=24)
    assert case.intake_channel == "consular_abroad"
    assert case.identifying_agency_type == "consular"
    # Sent to an agency, not the coordinator: the case still needs its notification.
    assert decisions.is_notified(case) is False
    assert decisions.needs_notification(case) is True


def test_a_notification_to_the_coordinator_counts_as_the_notification(db, world):
    report = a_notification(world, to="nrm", hours_ago=40)
    case = convert_report(
        world["coordinator"],
        report,
        {"given_name": "Orxan", "sex": "Masculine"},
        owner_agency=world["ngo"],
    )
    db.session.commit()
    case = db.session.get(Case, case.id)
    assert case.owner_agency_id == world["ngo"].id
    assert case.assigned_user_id is None
    assert decisions.is_notified(case) is True
    assert decisions.needs_notification(case) is False
    # The owner agency is told a case was opened for it.
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.user_id == world["alice"].id)
    ).all()
    assert "contact.case_opened_for_agency" in kinds


def test_the_convert_page_is_prefilled_from_the_report(app, db, world):
    report = a_notification(world, to="ngo", hours_ago=3)
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/contacts/{report.id}/convert")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="Orxan"' in html
    assert 'value="Qəhrəmanlı"' in html
    assert "escaping a farm" in html
    assert selected(html, "consular_abroad")
    assert checked(html, "ForcedLabour")
    assert db.session.scalar(
        select(AuditEntry.id).where(
            AuditEntry.action == "contact.viewed", AuditEntry.object_id == report.id
        )
    )


def test_converting_through_the_form_opens_the_case(app, db, world):
    report = a_call(world)
    db.session.commit()
    client = client_for(app, world["alice"])
    response = client.post_form(f"/contacts/{report.id}/convert", intake_form())
    assert response.status_code == 302
    case = db.session.scalars(select(Case)).one()
    assert response.headers["Location"].endswith(f"/cases/{case.id}")
    assert case.intake_channel == "hotline"
    assert reload(db, report.id).case_id == case.id


def test_an_incomplete_intake_rerenders_with_what_was_typed(app, db, world):
    report = a_call(world)
    db.session.commit()
    client = client_for(app, world["alice"])
    response = client.post_form(
        f"/contacts/{report.id}/convert", intake_form(sex="", family_name="Typedname")
    )
    assert response.status_code == 400
    assert 'value="Typedname"' in response.get_data(as_text=True)
    assert db.session.scalars(select(Case)).all() == []
    assert reload(db, report.id).state == State.SENT


def test_the_coordinator_must_choose_the_agency_holding_the_case(app, db, world):
    report = a_notification(world, to="nrm")
    db.session.commit()
    client = client_for(app, world["coordinator"])
    response = client.post_form(f"/contacts/{report.id}/convert", intake_form())
    assert response.status_code == 400
    assert "Please choose the agency that will hold the case." in response.get_data(as_text=True)
    response = client.post_form(
        f"/contacts/{report.id}/convert", intake_form(owner_agency=str(world["ngo"].id))
    )
    assert response.status_code == 302
    case = db.session.scalars(select(Case)).one()
    assert case.owner_agency_id == world["ngo"].id
    # The coordinator does not get the case.
    page = client.get(f"/contacts/{report.id}").get_data(as_text=True)
    assert f"/cases/{case.id}" not in page


# Receiver actions -------------------------------------------------------------------------


def test_acknowledge_and_close_with_a_reason(app, db, world):
    report = a_call(world)
    db.session.commit()
    client = client_for(app, world["alice"])
    assert client.get(f"/contacts/{report.id}/acknowledge").status_code == 405
    assert client.post_form(f"/contacts/{report.id}/acknowledge").status_code == 302
    assert reload(db, report.id).state == State.ACKNOWLEDGED
    response = client.post_form(f"/contacts/{report.id}/close", {"closure_reason": ""})
    assert response.status_code == 400
    assert reload(db, report.id).state == State.ACKNOWLEDGED
    response = client.post_form(
        f"/contacts/{report.id}/close", {"closure_reason": "not_trafficking"}
    )
    assert response.status_code == 302
    report = reload(db, report.id)
    assert report.state == State.CLOSED
    assert report.closure_reason == "not_trafficking"
    assert [row.to_state for row in report.transitions] == ["sent", "acknowledged", "closed"]
    # Repeating does nothing harmful: the action is no longer offered.
    again = client.post_form(f"/contacts/{report.id}/close", {"closure_reason": "other"})
    assert again.status_code == 403
    assert reload(db, report.id).closure_reason == "not_trafficking"


def test_a_closed_report_cannot_be_converted(db, world):
    report = a_call(world)
    close_report(world["alice"], report, "unreachable")
    from casework.contact_workflow import InvalidTransition

    with pytest.raises(InvalidTransition):
        convert_report(world["alice"], report, {"given_name": "X"})
    assert db.session.scalars(select(Case)).all() == []


def test_the_inbox_count_is_of_open_reports(db, world):
    a_call(world)
    second = a_call(world)
    third = a_call(world)
    acknowledge_report(world["alice"], second)
    close_report(world["alice"], third, "duplicate")
    db.session.commit()
    assert open_incoming_count(world["alice"]) == 2
    assert open_incoming_count(world["charlie"]) == 0
    assert open_incoming_count(world["operator"]) == 0
    assert open_incoming_count(world["analyst"]) == 0


def test_the_transition_rows_name_the_actor(db, world):
    report = a_call(world)
    acknowledge_report(world["alice"], report)
    db.session.commit()
    rows = db.session.scalars(select(IncomingReportTransition)).all()
    assert [(row.action, row.actor_user_id) for row in rows] == [
        ("send", world["operator"].id),
        ("acknowledge", world["alice"].id),
    ]


# Agencies without case files ----------------------------------------------------------------


@pytest.mark.parametrize("who", ["consul", "guard"])
def test_agencies_without_case_files_cannot_open_cases(app, db, world, who):
    client = client_for(app, world[who])
    assert client.get("/cases/").status_code == 404
    assert client.get("/cases/new").status_code == 404
    assert not policy.can_create_case(world[who])
    assert not policy.can_list_cases(world[who])
    assert policy.can_send_notification(world[who])
    page = client.get("/notifications/").get_data(as_text=True)
    assert 'href="/cases/"' not in page
    assert 'href="/contacts/sent"' in page


def test_the_navigation_shows_each_role_its_entry(app, db, world):
    def nav(who):
        return client_for(app, world[who]).get("/notifications/").get_data(as_text=True)

    assert 'href="/contacts/calls"' in nav("operator")
    assert 'href="/contacts/incoming"' in nav("alice")
    assert 'href="/contacts/sent"' not in nav("alice")
    assert 'href="/contacts/incoming"' in nav("coordinator")
    for who in ("analyst", "admin", "auditor"):
        page = nav(who)
        assert "/contacts/" not in page


# Access matrix --------------------------------------------------------------------------------

PERSONAS = (
    "operator",
    "operator2",
    "consul",
    "consul2",
    "guard",
    "alice",
    "bob",
    "charlie",
    "coordinator",
    "analyst",
    "admin",
    "auditor",
)

LIST_ROUTES = {
    "/contacts/calls": {"operator", "operator2"},
    "/contacts/calls/new": {"operator", "operator2"},
    "/contacts/sent": {"consul", "consul2", "guard"},
    "/contacts/notifications/new": {"consul", "consul2", "guard"},
    # Receivers: staff of agencies keeping case files (the hotline too), and the coordinator.
    "/contacts/incoming": {"operator", "operator2", "alice", "bob", "charlie", "coordinator"},
}


@pytest.mark.parametrize("who", PERSONAS)
@pytest.mark.parametrize("route", list(LIST_ROUTES))
def test_list_and_form_routes_by_persona(app, db, world, route, who):
    status = client_for(app, world[who]).get(route).status_code
    assert status == (200 if who in LIST_ROUTES[route] else 404)


# Who may open the page of a call routed to NGO North and of a notification to the NRM; and
# who reads its personal data. The author reads what they wrote; colleagues see the status.
CALL_PAGE = {"operator": True, "operator2": False, "alice": True, "bob": True}
NOTE_PAGE = {"consul": True, "consul2": False, "coordinator": True}


@pytest.mark.parametrize("who", PERSONAS)
def test_the_call_page_by_persona(app, db, world, who):
    report = a_call(world)
    db.session.commit()
    response = client_for(app, world[who]).get(f"/contacts/{report.id}")
    if who not in CALL_PAGE:
        assert response.status_code == 404
        return
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert report.reference in page
    assert (CALL_SECRETS["circumstances"] in page) is CALL_PAGE[who]


@pytest.mark.parametrize("who", PERSONAS)
def test_the_notification_page_by_persona(app, db, world, who):
    report = a_notification(world)
    db.session.commit()
    response = client_for(app, world[who]).get(f"/contacts/{report.id}")
    if who not in NOTE_PAGE:
        assert response.status_code == 404
        return
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert (NOTE_SECRETS["circumstances"] in page) is NOTE_PAGE[who]


@pytest.mark.parametrize("action", ["acknowledge", "close", "convert"])
@pytest.mark.parametrize("who", PERSONAS)
def test_only_the_receiver_acts(app, db, world, who, action):
    report = a_call(world)
    db.session.commit()
    client = client_for(app, world[who])
    response = client.post_form(f"/contacts/{report.id}/{action}", {"closure_reason": "other"})
    if who in ("alice", "bob"):
        assert response.status_code in (302, 400)
    elif who in CALL_PAGE:
        # May see the page (the operator), may not act.
        assert response.status_code == 403
        assert reload(db, report.id).state == State.SENT
    else:
        assert response.status_code == 404
        assert reload(db, report.id).state == State.SENT


def test_the_consulate_sees_only_the_status_once_a_case_exists(app, db, world):
    report = a_notification(world, to="ngo")
    db.session.commit()
    consul = client_for(app, world["consul"])
    before = consul.get(f"/contacts/{report.id}").get_data(as_text=True)
    assert NOTE_SECRETS["circumstances"] in before
    case = convert_report(world["alice"], report, {"given_name": "Orxan", "sex": "Masculine"})
    db.session.commit()
    after = consul.get(f"/contacts/{report.id}").get_data(as_text=True)
    assert "Case opened" in after
    for secret in NOTE_SECRETS.values():
        assert secret not in after
    assert case.reference not in after
    assert f"/cases/{case.id}" not in after
    assert consul.get(f"/cases/{case.id}").status_code == 404
    listing = consul.get("/contacts/sent").get_data(as_text=True)
    assert report.reference in listing
    assert "Case opened" in listing


def test_a_closed_notification_shows_the_sender_its_reason(app, db, world):
    report = a_notification(world, to="ngo")
    close_report(world["alice"], report, "declined_assistance")
    db.session.commit()
    page = client_for(app, world["consul"]).get(f"/contacts/{report.id}").get_data(as_text=True)
    assert "Closed without a case" in page
    assert "The person declined assistance" in page


def test_another_agency_answers_404_for_a_malformed_or_unknown_id(app, db, world):
    client = client_for(app, world["alice"])
    assert client.get("/contacts/not-a-uuid").status_code == 404
    assert client.get("/contacts/00000000-0000-0000-0000-000000000000").status_code == 404


def test_reading_details_is_audited(app, db, world):
    report = a_call(world)
    db.session.commit()
    client_for(app, world["alice"]).get(f"/contacts/{report.id}")
    client_for(app, world["operator2"]).get(f"/contacts/{report.id}")
    readers = db.session.scalars(
        select(AuditEntry.user_id).where(AuditEntry.action == "contact.viewed")
    ).all()
    assert readers == [world["alice"].id]


# Forms through the browser's way ---------------------------------------------------------------


def test_the_quick_intake_form_records_and_routes_a_call(app, db, world):
    client = client_for(app, world["operator"])
    response = client.post_form(
        "/contacts/calls/new",
        {
            "call_language": "ru",
            "caller_relation": "person",
            "circumstances": "Работала в Москве, паспорт забрали.",
            "callback_consent": "yes",
            "contact_details": "+7 916 000 00 00, after 20:00",
            "country": "RU",
            "sex": "Feminine",
            "age_band": "25-34",
            "is_minor": "no",
            "exploitation_form": ["ForcedLabour"],
            "routing": str(world["ngo"].id),
        },
    )
    assert response.status_code == 302
    report = db.session.scalars(select(IncomingReport)).one()
    assert report.call_language == "ru"
    assert report.is_minor is False
    assert report.receiving_agency_id == world["ngo"].id
    assert report.circumstances == "Работала в Москве, паспорт забрали."


def test_the_quick_intake_refuses_a_name_when_anonymous_and_keeps_what_was_typed(app, db, world):
    client = client_for(app, world["operator"])
    response = client.post_form(
        "/contacts/calls/new",
        {
            "call_language": "az",
            "caller_relation": "person",
            "anonymous": "y",
            "person_name": "Some Name",
            "circumstances": "Typed account of the call",
            "callback_consent": "no",
            "routing": "advice",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "An anonymous call records no name" in page
    assert "Typed account of the call" in page
    assert db.session.scalars(select(IncomingReport)).all() == []


def test_the_quick_intake_needs_consent_and_a_callback_when_consented(app, db, world):
    client = client_for(app, world["operator"])
    response = client.post_form(
        "/contacts/calls/new",
        {
            "call_language": "en",
            "caller_relation": "third_party",
            "circumstances": "A neighbour calls.",
            "callback_consent": "yes",
            "routing": "advice",
        },
    )
    assert response.status_code == 400
    assert "Please say how to call back safely." in response.get_data(as_text=True)
    response = client.post_form(
        "/contacts/calls/new",
        {
            "call_language": "en",
            "caller_relation": "third_party",
            "circumstances": "A neighbour calls.",
            "routing": "advice",
        },
    )
    assert response.status_code == 400
    assert "Please record whether we may call back." in response.get_data(as_text=True)


def test_the_notification_form_sends_to_the_coordinator(app, db, world):
    client = client_for(app, world["consul"])
    form = client.get("/contacts/notifications/new").get_data(as_text=True)
    assert selected(form, "consular_abroad")
    moment = (utcnow() - timedelta(hours=5)).astimezone()
    response = client.post_form(
        "/contacts/notifications/new",
        {
            "recipient": str(world["nrm"].id),
            "identified_at": moment.strftime("%Y-%m-%dT%H:%M"),
            "intake_channel": "consular_abroad",
            "incoming_returnee": "y",
            "circumstances": "Asked for a travel document.",
            "country": "TR",
        },
    )
    assert response.status_code == 302
    report = db.session.scalars(select(IncomingReport)).one()
    assert report.incoming_returnee is True
    assert report.receiving_agency_id == world["nrm"].id
    assert report.region == "abroad"
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.user_id == world["coordinator"].id)
    ).all()
    assert kinds == ["contact.received"]


# Demo data ----------------------------------------------------------------------------------


def test_the_demo_covers_every_path_and_loads_once(db):
    from core.demo import load_demo_data

    seed_reference_lists()
    load_demo_data(case_count=0)
    reports = db.session.scalars(select(IncomingReport)).all()
    calls = [report for report in reports if report.is_call]
    notes = [report for report in reports if not report.is_call]
    assert {report.state for report in calls} == {"converted", "closed", "sent", "acknowledged"}
    assert any(report.anonymous and report.person_name is None for report in calls)
    assert any(report.receiving_agency_id is None for report in calls)  # advice only
    types = {report.sender_agency.type for report in notes}
    assert types == {"consular", "border_service", "labour_inspectorate"}
    returnees = [report for report in notes if report.incoming_returnee]
    assert any(r.country == "TR" and r.state == "converted" and r.to_coordinator for r in returnees)
    assert any(
        r.country == "TR" and r.state == "converted" and not r.to_coordinator for r in returnees
    )
    assert any(report.deadline() == "overdue" for report in notes)
    assert any(report.closure_reason == "withdrawn" for report in notes)
    hotline_cases = db.session.scalars(select(Case).where(Case.intake_channel == "hotline")).all()
    assert len(hotline_cases) == 1
    consular = db.session.scalars(select(Case).where(Case.intake_channel == "consular_abroad"))
    assert len(consular.all()) == 2
    for agency in ("consular", "border_service", "migration_service", "labour_inspectorate"):
        flags = db.session.scalars(
            select(Agency.keeps_case_files).where(Agency.type == agency)
        ).all()
        assert flags == [False]
    load_demo_data(case_count=0)
    assert len(db.session.scalars(select(IncomingReport)).all()) == len(reports)


def test_the_admin_sets_whether_an_agency_keeps_case_files(app, db, world):
    admin = client_for(app, world["admin"])
    ngo = world["ngo"]
    form = admin.get(f"/admin/agencies/{ngo.id}/edit").get_data(as_text=True)
    assert checked(form, "y") or 'name="keeps_case_files" checked' in form
    response = admin.post_form(f"/admin/agencies/{ngo.id}/edit", {"name": ngo.name, "type": "ngo"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Agency, ngo.id).keeps_case_files is False
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "agency.update")).one()
    assert "keeps_case_files" in entry.field_names
    # Case work follows on the next request.
    assert client_for(app, world["alice"]).get("/cases/").status_code == 404


def test_the_inbox_marks_overdue_by_the_clock(app, db, world, monkeypatch):
    from casework import contact_views, contacts

    report = a_notification(world, to="ngo", hours_ago=2)
    db.session.commit()
    client = client_for(app, world["alice"])
    assert "Overdue" not in client.get("/contacts/incoming").get_data(as_text=True)
    later = utcnow() + timedelta(hours=23)
    monkeypatch.setattr(contact_views, "utcnow", lambda: later)
    monkeypatch.setattr(contacts, "utcnow", lambda: later)
    inbox = client.get("/contacts/incoming").get_data(as_text=True)
    assert report.reference in inbox
    assert "Overdue" in inbox
    assert "Overdue: the national coordinator" in client.get(f"/contacts/{report.id}").get_data(
        as_text=True
    )


# Withdrawal by the sender -------------------------------------------------------------------


def test_the_sender_withdraws_a_sent_notification(db, world):
    report = a_notification(world, to="ngo")
    db.session.commit()
    assert open_incoming_count(world["alice"]) == 1
    withdraw_report(world["consul"], report)
    db.session.commit()
    # Out of the receiver's inbox and off its deadline watch.
    assert open_incoming_count(world["alice"]) == 0
    assert reload(db, report.id).deadline() is None
    report = reload(db, report.id)
    assert report.state == State.CLOSED
    assert report.closure_reason == ClosureReason.WITHDRAWN
    assert report.closed_at is not None
    assert report.transitions[-1].action == "withdraw"
    assert report.transitions[-1].actor_user_id == world["consul"].id
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "contact.withdraw")
    ).one()
    assert set(entry.field_name_list) == {"state", "closure_reason"}
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.agency_id == world["ngo"].id)
    ).all()
    assert "contact.withdrawn" in kinds


def test_an_acknowledged_notification_can_no_longer_be_withdrawn(db, world):
    report = a_notification(world, to="ngo")
    acknowledge_report(world["alice"], report)
    db.session.commit()
    assert not policy.can_withdraw_report(world["consul"], report)
    with pytest.raises(InvalidTransition):
        withdraw_report(world["consul"], report)


def test_withdrawn_is_never_a_reason_a_receiver_chooses(db, world):
    assert ClosureReason.WITHDRAWN not in CHOSEN_REASONS
    report = a_notification(world, to="ngo")
    db.session.commit()
    with pytest.raises(ContactError):
        close_report(world["alice"], report, "withdrawn")


def test_a_hotline_call_is_not_withdrawn_this_way(db, world):
    report = a_call(world)
    db.session.commit()
    assert not policy.can_withdraw_report(world["operator"], report)


# The sender's colleague at the same consulate may withdraw too (the agency sent it); nobody
# else: the receiver closes instead, other agencies get 404.
WITHDRAWERS = {"consul", "consul2"}
SEES_THE_PAGE = {"consul", "consul2", "alice", "bob"}


@pytest.mark.parametrize("who", PERSONAS)
def test_only_the_sending_agency_withdraws(app, db, world, who):
    report = a_notification(world, to="ngo")
    db.session.commit()
    response = client_for(app, world[who]).post_form(f"/contacts/{report.id}/withdraw", {})
    state = reload(db, report.id).state
    if who in WITHDRAWERS:
        assert response.status_code == 302
        assert state == State.CLOSED
        return
    assert response.status_code == (403 if who in SEES_THE_PAGE else 404)
    assert state == State.SENT


def test_the_page_offers_the_button_while_sent_and_shows_withdrawn(app, db, world):
    report = a_notification(world, to="ngo")
    db.session.commit()
    consul = client_for(app, world["consul"])
    page = consul.get(f"/contacts/{report.id}").get_data(as_text=True)
    assert f"/contacts/{report.id}/withdraw" in page
    receiver_page = client_for(app, world["alice"]).get(f"/contacts/{report.id}")
    assert f"/contacts/{report.id}/withdraw" not in receiver_page.get_data(as_text=True)
    response = consul.post_form(f"/contacts/{report.id}/withdraw", {})
    assert response.status_code == 302
    page = consul.get(f"/contacts/{report.id}").get_data(as_text=True)
    assert "Withdrawn" in page
    assert f"/contacts/{report.id}/withdraw" not in page
    assert "Withdrawn" in consul.get("/contacts/sent").get_data(as_text=True)
    receiver_page = client_for(app, world["alice"]).get(f"/contacts/{report.id}")
    assert "Withdrawn" in receiver_page.get_data(as_text=True)


def test_a_second_withdrawal_changes_nothing(app, db, world):
    report = a_notification(world, to="ngo")
    db.session.commit()
    consul = client_for(app, world["consul"])
    assert consul.post_form(f"/contacts/{report.id}/withdraw", {}).status_code == 302
    assert consul.post_form(f"/contacts/{report.id}/withdraw", {}).status_code == 403


# The case page names the report it came from --------------------------------------------------


def test_the_case_page_links_the_report_it_was_opened_from(app, db, world):
    report = a_call(world)
    case = convert_report(world["alice"], report, {"given_name": "Günay", "sex": "Feminine"})
    db.session.commit()
    page = client_for(app, world["bob"]).get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Opened from" in page
    assert f'href="/contacts/{report.id}"' in page
    assert report.reference in page


def test_a_reader_who_may_not_open_the_report_sees_its_reference_only(app, db, world):
    # Sent to the coordinator, who opens the case for NGO North: NGO North never received
    # the report, so its staff see the reference without a link.
    report = a_notification(world, to="nrm")
    case = convert_report(
        world["coordinator"],
        report,
        {"given_name": "Orxan", "sex": "Masculine"},
        owner_agency=world["ngo"],
    )
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{case.id}").get_data(as_text=True)
    assert f"Opened from {report.reference}" in page
    assert f"/contacts/{report.id}" not in page
    assert client_for(app, world["alice"]).get(f"/contacts/{report.id}").status_code == 404


def test_a_case_not_opened_from_a_report_says_nothing(app, db, world):
    report = a_call(world)
    case = convert_report(world["alice"], report, {"given_name": "Günay", "sex": "Feminine"})
    other = open_case(world["alice"], {"given_name": "Rauf"})
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{other.id}").get_data(as_text=True)
    assert "Opened from" not in page
    assert case.reference not in page
