"""Case file pages: who may open them, saving each section, consent history, what is stored."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select, text

from casework import casefile_services
from casework.casefile import (
    CaseNote,
    ConsentPurpose,
    ConsentRecord,
    ConsentStatus,
    IndicatorAnswer,
)
from casework.casefile_services import (
    ConsentDecision,
    add_attachment,
    current_consent,
    record_consent,
    seed_indicator_definitions,
    withdraw_consent,
)
from casework.models import Case
from casework.services import open_case
from casework.timeline import TimelineEvent
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def world(app, db):
    return build_world(app, db)


def build_world(app, db) -> dict:
    """Alice (caseworker, NGO North) owns the case, Bob supervises; the others may not see it."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    seed_indicator_definitions()
    case = open_case(people["alice"], {"given_name": "Leyla", "family_name": "Həsənova"})
    attachment = add_attachment(
        people["alice"], case, filename="passport-scan.pdf", content=PDF, max_bytes=1000
    )
    db.session.commit()
    return {
        "case_id": case.id,
        "attachment_id": attachment.id,
        "south_id": south.id,
        "north_id": north.id,
        **people,
    }



def saved_case(db, case_id: str) -> Case:
    db.session.expire_all()
    return db.session.get(Case, case_id)


def audit_entries(db, action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def timeline_kinds(db, case_id: str) -> list[str]:
    return list(
        db.session.scalars(select(TimelineEvent.kind).where(TimelineEvent.case_id == case_id))
    )


def raw_dump(db, table: str) -> str:
    """Return every value of a table's rows as text, binary columns decoded byte for byte."""
    dump = ""
    for row in db.session.execute(text(f"SELECT * FROM {table}")).all():
        for column in row:
            if isinstance(column, bytes | memoryview):
                dump += bytes(column).decode("latin-1")
            else:
                dump += repr(column)
    return dump


def assert_no_plaintext(dump: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in dump
        assert secret.encode("utf-8").decode("latin-1") not in dump


# Access matrix ---------------------------------------------------------------------------

ROUTES = {
    "indicators": "/cases/{case_id}/indicators",
    "assessments": "/cases/{case_id}/assessments",
    "consent": "/cases/{case_id}/consent",
    "services": "/cases/{case_id}/services",
    "notes": "/cases/{case_id}/notes",
    "attachments": "/cases/{case_id}/attachments",
    "download": "/cases/{case_id}/attachments/{attachment_id}",
}
EXPECTED = {
    "alice": 200,
    "bob": 200,
    "charlie": 404,
    "admin": 404,
    "analyst": 404,
    "auditor": 404,
    "coordinator": 404,
}
MATRIX = [(persona, route, EXPECTED[persona]) for persona in EXPECTED for route in ROUTES]
POSTS = {
    "indicators": "/cases/{case_id}/indicators",
    "risk": "/cases/{case_id}/assessments/risk",
    "needs": "/cases/{case_id}/assessments/needs",
    "consent": "/cases/{case_id}/consent",
    "services": "/cases/{case_id}/services",
    "notes": "/cases/{case_id}/notes",
    "attachments": "/cases/{case_id}/attachments",
}


def url(route: str, world: dict, routes=ROUTES) -> str:
    return routes[route].format(case_id=world["case_id"], attachment_id=world["attachment_id"])


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, world, persona, route, expected):
    response = client_for(app, world[persona]).get(url(route, world))
    assert response.status_code == expected
    if expected == 200:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("route", list(ROUTES))
def test_anonymous_visitors_are_sent_to_sign_in(app, world, route):
    response = app.test_client().get(url(route, world))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    ("persona", "route"),
    [(p, r) for p in ("charlie", "admin", "analyst", "auditor", "coordinator") for r in POSTS],
)
def test_changes_by_outsiders_are_not_found_and_change_nothing(app, db, world, persona, route):
    client = client_for(app, world[persona])
    response = client.post_form(url(route, world, POSTS), {"body": "Intruder note"})
    assert response.status_code == 404
    assert db.session.scalars(select(CaseNote)).first() is None


def test_a_closed_case_is_read_but_not_changed(app, db, world):
    case = saved_case(db, world["case_id"])
    case.status = "closed"
    db.session.commit()
    client = client_for(app, world["alice"])
    assert client.get(url("notes", world)).status_code == 200
    response = client.post_form(url("notes", world, POSTS), {"body": "Too late"})
    assert response.status_code == 403
    assert db.session.scalars(select(CaseNote)).first() is None


def test_an_attachment_of_another_case_is_not_found_through_this_one(app, db, world):
    other = open_case(world["alice"], {"given_name": "Other"})
    db.session.commit()
    client = client_for(app, world["alice"])
    response = client.get(f"/cases/{other.id}/attachments/{world['attachment_id']}")
    assert response.status_code == 404


def test_reading_a_section_is_audited_with_its_field_names(app, db, world):
    client_for(app, world["bob"]).get(url("notes", world))
    [entry] = audit_entries(db, "case.section_viewed")
    assert entry.object_id == world["case_id"]
    assert "notes.body" in json.loads(entry.field_names)


# Saving each section through its form ------------------------------------------------------


def assert_audited_and_on_timeline(db, world, action: str, secrets: tuple[str, ...] = ()):
    entries = audit_entries(db, action)
    assert len(entries) == 1
    names = json.loads(entries[0].field_names)
    assert names
    dumped = json.dumps([entries[0].field_names, entries[0].reason, entries[0].object_id])
    for secret in secrets:
        assert secret not in dumped
    assert action in timeline_kinds(db, world["case_id"])
    return names


def test_it_adds_a_note_through_the_form_and_stores_no_plaintext(app, db, world):
    client = client_for(app, world["alice"])
    body = "Fatimə said the employer kept her passport in a safe."
    response = client.post_form(url("notes", world, POSTS), {"body": body})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Fatimə said the employer" in page
    assert assert_audited_and_on_timeline(db, world, "note.added", (body,)) == ["body"]
    assert_no_plaintext(raw_dump(db, "case_notes"), "Fatimə", "passport in a safe")
    assert_no_plaintext(raw_dump(db, "case_events"), "Fatimə", "passport in a safe")


def test_an_empty_note_is_refused_and_nothing_is_saved(app, db, world):
    response = client_for(app, world["alice"]).post_form(url("notes", world, POSTS), {"body": ""})
    assert response.status_code == 400
    assert db.session.scalars(select(CaseNote)).first() is None


def test_it_records_indicator_answers(app, db, world):
    client = client_for(app, world["alice"])
    page = client.get(url("indicators", world)).get_data(as_text=True)
    assert "Identity or travel documents withheld by others" in page
    response = client.post_form(
        url("indicators", world, POSTS),
        {
            "answer_documents_withheld": "yes",
            "note_documents_withheld": "Kept by the hotel manager Rauf",
            "answer_debt_bondage": "no",
        },
    )
    assert response.status_code == 302
    names = assert_audited_and_on_timeline(db, world, "indicators.recorded", ("Rauf",))
    assert names == ["indicator.debt_bondage", "indicator.documents_withheld"]
    answers = {row.indicator_code: row for row in db.session.scalars(select(IndicatorAnswer))}
    assert answers["documents_withheld"].answer == "yes"
    assert answers["documents_withheld"].note == "Kept by the hotel manager Rauf"
    assert answers["debt_bondage"].answer == "no"
    assert "isolation" not in answers  # unanswered stays unrecorded
    assert_no_plaintext(raw_dump(db, "indicator_answers"), "Rauf")


def test_the_checklist_is_labelled_in_the_readers_language(app, db, world):
    world["alice"].language = "az"
    db.session.commit()
    page = client_for(app, world["alice"]).get(url("indicators", world)).get_data(as_text=True)
    assert "Borc əsarəti" in page


def test_it_adds_a_risk_assessment(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        url("risk", world, POSTS),
        {
            "retaliation": "high",
            "retrafficking": "medium",
            "health_emergency": "low",
            "self_harm": "low",
            "notes": "Recruiter phoned her sister",
            "plan": "Move to the shelter in Gəncə",
        },
    )
    assert response.status_code == 302
    names = assert_audited_and_on_timeline(db, world, "risk_assessment.added", ("Gəncə",))
    assert {"notes", "plan", "retaliation_risk"} <= set(names)
    assert_no_plaintext(raw_dump(db, "risk_assessments"), "Recruiter phoned", "Gəncə")
    page = client.get(url("assessments", world)).get_data(as_text=True)
    assert "Move to the shelter in Gəncə" in page


def test_a_risk_assessment_without_levels_is_refused_keeping_the_input(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        url("risk", world, POSTS), {"notes": "Half typed note"}
    )
    assert response.status_code == 400
    assert "Half typed note" in response.get_data(as_text=True)
    assert audit_entries(db, "risk_assessment.added") == []


def test_it_adds_a_needs_assessment(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        url("needs", world, POSTS),
        {"needs": ["shelter", "legal_aid"], "needs_notes": "Needs a lawyer who speaks Russian"},
    )
    assert response.status_code == 302
    assert_audited_and_on_timeline(db, world, "needs_assessment.added", ("lawyer",))
    page = client.get(url("assessments", world)).get_data(as_text=True)
    assert "Legal aid" in page
    assert_no_plaintext(raw_dump(db, "needs_assessments"), "lawyer who speaks")


def test_it_records_a_service(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        url("services", world, POSTS),
        {
            "service_type": "shelter",
            "provider": str(world["south_id"]),
            "started_on": "2026-01-05",
            "ended_on": "2026-02-01",
            "outcome": "completed",
            "outcome_note": "Moved in with her aunt Səbinə",
        },
    )
    assert response.status_code == 302
    assert_audited_and_on_timeline(db, world, "service.added", ("Səbinə",))
    assert_no_plaintext(raw_dump(db, "service_records"), "Səbinə")
    assert "Shelter South" in client.get(url("services", world)).get_data(as_text=True)


def test_a_service_cannot_end_before_it_starts(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        url("services", world, POSTS),
        {
            "service_type": "medical",
            "provider": str(world["north_id"]),
            "started_on": "2026-02-05",
            "ended_on": "2026-02-01",
        },
    )
    assert response.status_code == 400
    assert audit_entries(db, "service.added") == []


# Consent -----------------------------------------------------------------------------------

CONSENT_FORM = {
    "purpose": "processing",
    "agency": "",
    "status": "given",
    "recorded_on": "2026-01-10",
    "how_obtained": "written",
    "given_by": "person",
    "consent_text_version": "2026-1",
}


def test_it_records_consent_through_the_form(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(url("consent", world, POSTS), CONSENT_FORM)
    assert response.status_code == 302
    names = assert_audited_and_on_timeline(db, world, "consent.recorded")
    assert "status" in names
    case = saved_case(db, world["case_id"])
    record = current_consent(case, ConsentPurpose.PROCESSING)
    assert record.is_given
    assert record.how_obtained == "written"
    assert record.consent_text_version == "2026-1"
    assert record.recorded_by_user_id == world["alice"].id


def test_a_referral_consent_names_an_agency(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        url("consent", world, POSTS), {**CONSENT_FORM, "purpose": "referral"}
    )
    assert response.status_code == 400
    response = client.post_form(
        url("consent", world, POSTS),
        {**CONSENT_FORM, "purpose": "referral", "agency": str(world["south_id"])},
    )
    assert response.status_code == 302
    case = saved_case(db, world["case_id"])
    assert current_consent(case, "referral", world["south_id"]).is_given
    assert current_consent(case, "referral", world["north_id"]) is None


def test_withdrawing_keeps_the_history_and_changes_the_current_consent(app, db, world):
    client = client_for(app, world["alice"])
    client.post_form(url("consent", world, POSTS), CONSENT_FORM)
    given = db.session.scalars(select(ConsentRecord)).one()
    withdraw_url = f"/cases/{world['case_id']}/consent/{given.id}/withdraw"
    assert client.get(withdraw_url).status_code == 200
    response = client.post_form(
        withdraw_url, {"recorded_on": "2026-01-20", "how_obtained": "oral", "given_by": "person"}
    )
    assert response.status_code == 302
    db.session.expire_all()
    records = list(db.session.scalars(select(ConsentRecord)))
    assert sorted(record.status for record in records) == ["given", "withdrawn"]
    case = saved_case(db, world["case_id"])
    current = current_consent(case, ConsentPurpose.PROCESSING)
    assert current.status == ConsentStatus.WITHDRAWN.value
    assert current.supersedes_id == given.id
    assert "consent.withdrawn" in timeline_kinds(db, world["case_id"])
    assert len(audit_entries(db, "consent.withdrawn")) == 1
    # A withdrawn consent cannot be withdrawn again.
    response = client.post_form(
        withdraw_url, {"recorded_on": "2026-01-21", "how_obtained": "oral", "given_by": "person"}
    )
    assert response.status_code == 302
    assert db.session.scalar(select(text("count(*)")).select_from(ConsentRecord)) == 2


def test_withdrawing_calls_the_referral_hook(db, world, monkeypatch):
    calls = []
    monkeypatch.setattr(
        casefile_services, "on_consent_withdrawn", lambda *a, **k: calls.append((a, k))
    )
    case = saved_case(db, world["case_id"])
    decision = ConsentDecision("given", date(2026, 1, 1), "written", "2026-1")
    record_consent(world["alice"], case, "referral", decision, agency_id=world["south_id"])
    withdraw_consent(world["alice"], case, "referral", decision, agency_id=world["south_id"])
    assert calls == [((case, ConsentPurpose.REFERRAL), {"agency_id": world["south_id"]})]
    with pytest.raises(casefile_services.CaseFileError):
        withdraw_consent(world["alice"], case, "referral", decision, agency_id=world["south_id"])


@pytest.fixture
def minor(db, world, monkeypatch):
    """Make the case a child's: the intake's flag when it exists, else the service's view."""
    case = saved_case(db, world["case_id"])
    if hasattr(Case, "is_minor"):
        case.is_minor = True
        db.session.commit()
    else:
        monkeypatch.setattr(casefile_services, "is_minor_case", lambda case: True)
    return world


def test_a_childs_consent_needs_the_guardian_or_a_best_interests_decision(app, db, minor):
    client = client_for(app, minor["alice"])
    page = client.get(url("consent", minor)).get_data(as_text=True)
    assert "Child safeguarding" in page
    response = client.post_form(url("consent", minor, POSTS), CONSENT_FORM)
    assert response.status_code == 400
    response = client.post_form(
        url("consent", minor, POSTS), {**CONSENT_FORM, "given_by": "guardian"}
    )
    assert response.status_code == 400
    assert "guardian" in response.get_data(as_text=True)
    assert db.session.scalars(select(ConsentRecord)).first() is None

    response = client.post_form(
        url("consent", minor, POSTS),
        {**CONSENT_FORM, "given_by": "guardian", "guardian": "Mother, Aygün Əliyeva"},
    )
    assert response.status_code == 302
    record = db.session.scalars(select(ConsentRecord)).one()
    assert record.given_by == "guardian"
    assert record.guardian == "Mother, Aygün Əliyeva"
    assert_no_plaintext(raw_dump(db, "consent_records"), "Aygün", "Əliyeva")


def test_the_service_refuses_a_childs_consent_without_a_basis(db, minor):
    case = saved_case(db, minor["case_id"])
    decision = ConsentDecision("given", date(2026, 1, 1), "oral", "2026-1", given_by="person")
    with pytest.raises(casefile_services.CaseFileError):
        record_consent(minor["alice"], case, "processing", decision)
    decision = ConsentDecision(
        "given", date(2026, 1, 1), "oral", "2026-1", given_by="best_interests"
    )
    with pytest.raises(casefile_services.CaseFileError):
        record_consent(minor["alice"], case, "processing", decision)


# The case page's partial -----------------------------------------------------------------


def test_the_timeline_partial_lists_events_with_labels(app, db, world):
    client = client_for(app, world["alice"])
    client.post_form(url("notes", world, POSTS), {"body": "A note"})
    from flask import render_template

    with app.test_request_context():
        case = saved_case(db, world["case_id"])
        html = render_template("casework/file/_sections.html", case=case)
    assert "Note added" in html
    assert "Attachment uploaded" in html
    assert f"/cases/{world['case_id']}/consent" in html
