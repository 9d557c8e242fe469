"""Editing service and note entries: optimistic locking, conflicts, audit, timeline, who may."""

from __future__ import annotations

import json
from datetime import date

import pytest

from casework.casefile import CaseNote, ServiceRecord
from casework.casefile_services import add_case_note, add_service_record, edit_case_note
from casework.models import Case
from casework.services import EditConflict
from core.models import Role
from tests.casework.test_casefile import (
    assert_no_plaintext,
    audit_entries,
    build_world,
    raw_dump,
    timeline_kinds,
)
from tests.factories import client_for, make_user

NOTE = "Aygün was moved to a flat in Sumqayıt."


@pytest.fixture
def world(app, db):
    world = build_world(app, db)
    case = db.session.get(Case, world["case_id"])
    world["dave"] = make_user(case.owner_agency, Role.CASEWORKER)
    note = add_case_note(world["alice"], case, NOTE)
    record = add_service_record(
        world["alice"],
        case,
        service_type="shelter",
        provider_agency_id=world["south_id"],
        started_on=date(2026, 1, 5),
        outcome="ongoing",
        outcome_note="Room 4",
    )
    db.session.commit()
    return {**world, "note_id": note.id, "record_id": record.id}


def note_url(world) -> str:
    return f"/cases/{world['case_id']}/notes/{world['note_id']}/edit"


def service_url(world) -> str:
    return f"/cases/{world['case_id']}/services/{world['record_id']}/edit"


def service_form(world, version: int = 1, **changes) -> dict:
    return {
        "service_type": "shelter",
        "provider": str(world["south_id"]),
        "started_on": "2026-01-05",
        "ended_on": "",
        "outcome": "ongoing",
        "outcome_note": "Room 4",
        "version": str(version),
        **changes,
    }


def reload(db, model, object_id):
    db.session.expire_all()
    return db.session.get(model, object_id)


# Who may edit ----------------------------------------------------------------------------

NOTE_ACCESS = {
    "alice": 200,  # the author
    "bob": 200,  # a supervisor of the owner agency
    "dave": 403,  # a colleague who did not write it: sees the case, may not rewrite the note
    "charlie": 404,
    "admin": 404,
    "analyst": 404,
    "auditor": 404,
    "coordinator": 404,
}


@pytest.mark.parametrize(("persona", "expected"), list(NOTE_ACCESS.items()))
def test_who_may_edit_a_note(app, db, world, persona, expected):
    client = client_for(app, world[persona])
    assert client.get(note_url(world)).status_code == expected
    response = client.post_form(note_url(world), {"body": "Changed", "version": "1"})
    assert response.status_code == (302 if expected == 200 else expected)
    changed = reload(db, CaseNote, world["note_id"]).body == "Changed"
    assert changed == (expected == 200)


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("alice", 200), ("dave", 200), ("bob", 200), ("charlie", 404), ("admin", 404)],
)
def test_who_may_edit_a_service(app, db, world, persona, expected):
    assert client_for(app, world[persona]).get(service_url(world)).status_code == expected


def test_a_closed_case_entries_cannot_be_edited(app, db, world):
    case = reload(db, Case, world["case_id"])
    case.status = "closed"
    db.session.commit()
    client = client_for(app, world["alice"])
    assert client.get(note_url(world)).status_code == 403
    assert client.post_form(service_url(world), service_form(world)).status_code == 403
    assert reload(db, ServiceRecord, world["record_id"]).version == 1


def test_an_entry_of_another_case_is_not_found_through_this_one(app, db, world):
    other = make_user(reload(db, Case, world["case_id"]).owner_agency, Role.CASEWORKER)
    from casework.services import open_case

    second = open_case(other, {"given_name": "Other"})
    db.session.commit()
    client = client_for(app, world["alice"])
    response = client.get(f"/cases/{second.id}/notes/{world['note_id']}/edit")
    assert response.status_code == 404


def test_edit_pages_reject_get_free_changes(app, db, world):
    # Without the CSRF token nothing changes.
    client = client_for(app, world["alice"])
    response = client.post(note_url(world), data={"body": "No token", "version": "1"})
    assert response.status_code == 400
    assert reload(db, CaseNote, world["note_id"]).body == NOTE


# Editing ---------------------------------------------------------------------------------


def test_it_edits_a_note_marks_it_edited_and_audits_names_only(app, db, world):
    client = client_for(app, world["bob"])
    body = "Aygün moved to her sister in Gəncə."
    page = client.get(note_url(world)).get_data(as_text=True)
    assert "Sumqayıt" in page
    response = client.post_form(note_url(world), {"body": body, "version": "1"})
    assert response.status_code == 302
    note = reload(db, CaseNote, world["note_id"])
    assert (note.body, note.version, note.edited_by_user_id) == (body, 2, world["bob"].id)
    assert note.author_user_id == world["alice"].id
    (entry,) = audit_entries(db, "note.edited")
    assert json.loads(entry.field_names) == ["body"]
    assert "Gəncə" not in json.dumps([entry.field_names, entry.reason])
    assert "note.edited" in timeline_kinds(db, world["case_id"])
    assert_no_plaintext(raw_dump(db, "case_notes"), "Gəncə")
    listing = client.get(f"/cases/{world['case_id']}/notes").get_data(as_text=True)
    assert "edited" in listing and "Gəncə" in listing


def test_an_unchanged_note_is_not_marked_edited(app, db, world):
    client = client_for(app, world["alice"])
    assert client.post_form(note_url(world), {"body": NOTE, "version": "1"}).status_code == 302
    note = reload(db, CaseNote, world["note_id"])
    assert (note.version, note.edited_at) == (1, None)
    assert audit_entries(db, "note.edited") == []


def test_an_empty_note_edit_keeps_the_note(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        note_url(world), {"body": "", "version": "1"}
    )
    assert response.status_code == 400
    assert reload(db, CaseNote, world["note_id"]).body == NOTE


def test_it_edits_a_service(app, db, world):
    client = client_for(app, world["alice"])
    page = client.get(service_url(world)).get_data(as_text=True)
    assert "Room 4" in page
    response = client.post_form(
        service_url(world),
        service_form(world, ended_on="2026-02-01", outcome="completed", outcome_note="Left"),
    )
    assert response.status_code == 302
    record = reload(db, ServiceRecord, world["record_id"])
    assert (record.outcome, record.ended_on, record.outcome_note) == (
        "completed",
        date(2026, 2, 1),
        "Left",
    )
    assert record.version == 2
    (entry,) = audit_entries(db, "service.updated")
    assert sorted(json.loads(entry.field_names)) == ["ended_on", "outcome", "outcome_note"]
    assert "service.updated" in timeline_kinds(db, world["case_id"])


def test_a_service_edit_cannot_end_before_it_starts(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        service_url(world), service_form(world, ended_on="2025-12-01")
    )
    assert response.status_code == 400
    assert reload(db, ServiceRecord, world["record_id"]).ended_on is None


# Conflicts -------------------------------------------------------------------------------


def test_a_stale_note_edit_shows_both_values_and_keeps_the_input(app, db, world):
    bob = client_for(app, world["bob"])
    alice = client_for(app, world["alice"])
    assert (
        bob.post_form(note_url(world), {"body": "Bob's version", "version": "1"}).status_code == 302
    )
    response = alice.post_form(note_url(world), {"body": "Alice's version", "version": "1"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Bob&#39;s version" in page and "Alice&#39;s version" in page
    assert 'name="version" type="hidden" value="2"' in page
    assert reload(db, CaseNote, world["note_id"]).body == "Bob's version"
    # Saving again, knowingly, replaces Bob's version.
    again = alice.post_form(note_url(world), {"body": "Alice's version", "version": "2"})
    assert again.status_code == 302
    assert reload(db, CaseNote, world["note_id"]).body == "Alice's version"


def test_a_stale_service_edit_shows_both_values_and_keeps_the_input(app, db, world):
    bob = client_for(app, world["bob"])
    alice = client_for(app, world["alice"])
    first = bob.post_form(service_url(world), service_form(world, outcome_note="Room 9"))
    assert first.status_code == 302
    response = alice.post_form(service_url(world), service_form(world, outcome_note="Room 12"))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Room 9" in page and "Room 12" in page
    assert reload(db, ServiceRecord, world["record_id"]).outcome_note == "Room 9"


def test_the_service_refuses_an_edit_of_an_older_version(db, world):
    note = db.session.get(CaseNote, world["note_id"])
    with pytest.raises(EditConflict):
        edit_case_note(world["alice"], note, "Late", expected_version=0)
    assert reload(db, CaseNote, world["note_id"]).body == NOTE
