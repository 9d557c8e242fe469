"""Cross-agency duplicates: detection on save, the owners' bare notice, the coordinator's queue."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from casework.duplicates import DuplicateFlag, DuplicateStatus, detect_duplicates
from casework.models import Case
from casework.services import open_case, update_case
from casework.supervision import erase_case
from casework.timeline import timeline_for
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

PERSON = {
    "given_name": "Leyla",
    "family_name": "Məmmədova",
    "date_of_birth": date(1996, 2, 3),
    "document_number": "AA4417265",
    "phone": "+994 50 321 77 18",
    "address": "Nərimanov r., Təbriz küç. 5",
}
# The same person as recorded by the police, spelled their way.
SAME_PERSON = {
    "given_name": "LEYLA",
    "family_name": "MAMMADOVA",
    "date_of_birth": date(1996, 2, 3),
    "phone": "050 321 77 18",
}


@pytest.fixture
def world(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    police = make_agency(AgencyType.POLICE, name="Police Unit East")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "pavel": make_user(police, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "stray_coordinator": make_user(police, Role.COORDINATOR),
    }
    db.session.commit()
    return people


@pytest.fixture
def pair(db, world):
    """Alice's NGO and Pavel's police unit each open a case of the same person."""
    ngo_case = open_case(world["alice"], PERSON)
    db.session.commit()
    police_case = open_case(world["pavel"], SAME_PERSON)
    db.session.commit()
    return {"ngo": ngo_case, "police": police_case}



def flags(db) -> list[DuplicateFlag]:
    db.session.expire_all()
    return list(db.session.scalars(select(DuplicateFlag)))


def audit_entries(db, action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# Detection -------------------------------------------------------------------------------------


def test_saving_the_same_person_at_another_agency_raises_one_flag(db, pair):
    [flag] = flags(db)
    assert {flag.case_a_id, flag.case_b_id} == {pair["ngo"].id, pair["police"].id}
    assert flag.case_a_id < flag.case_b_id
    assert flag.matched_names == ["name_birth_year", "phone"]
    assert flag.status == DuplicateStatus.OPEN
    [entry] = audit_entries(db, "duplicate.flagged")
    assert entry.field_name_list == ["name_birth_year", "phone"]
    for case in (pair["ngo"], pair["police"]):
        assert "duplicate.flagged" in [event.kind for event in timeline_for(case)]


def test_saving_again_adds_no_second_flag_but_new_matches(db, world, pair):
    police_case = db.session.get(Case, pair["police"].id)
    update_case(
        world["pavel"],
        police_case,
        {"document_number": "aa 4417265"},
        expected_version=police_case.version,
    )
    db.session.commit()
    [flag] = flags(db)
    assert flag.matched_names == ["document_number", "name_birth_year", "phone"]


def test_a_different_person_raises_no_flag(db, world):
    open_case(world["alice"], PERSON)
    open_case(world["pavel"], {**SAME_PERSON, "date_of_birth": date(1997, 2, 3), "phone": None})
    db.session.commit()
    assert flags(db) == []


def test_index_collisions_are_rechecked_before_flagging(app, db, world, monkeypatch):
    # One bit: unrelated people share every index value about half of the time.
    monkeypatch.setitem(app.config, "HAVEN_BLIND_INDEX_BITS", 1)
    open_case(world["alice"], PERSON)
    for number in range(8):
        open_case(
            world["pavel"],
            {
                "given_name": f"Someone{number}",
                "family_name": "Else",
                "date_of_birth": date(1980 + number, 1, 1),
                "phone": f"+994 70 000 00 0{number}",
                "document_number": f"ZZ{number}",
            },
        )
    db.session.commit()
    collisions = db.session.scalar(
        select(func.count())
        .select_from(Case)
        .where(Case.owner_agency_id == world["pavel"].agency_id)
    )
    assert collisions == 8
    assert flags(db) == []


def test_a_resolved_pair_is_not_flagged_again(db, world, pair):
    coordinator_id = world["coordinator"].id
    [flag] = flags(db)
    flag.resolved_by_user_id = coordinator_id
    flag.resolved_at = flag.created_at
    flag.status = DuplicateStatus.DIFFERENT.value
    db.session.commit()
    police_case = db.session.get(Case, pair["police"].id)
    assert detect_duplicates(police_case) == []
    db.session.commit()
    [flag] = flags(db)
    assert flag.status == DuplicateStatus.DIFFERENT


# What the owners see ---------------------------------------------------------------------------


OWNER_VIEWS = [
    # owner, own case, other case, what only the other case or agency would reveal
    ("alice", "ngo", "police", ("Police Unit East", "MAMMADOVA", "050 321")),
    ("pavel", "police", "ngo", ("NGO North", "Məmmədova", "AA4417265", "Təbriz")),
]


@pytest.mark.parametrize(("owner", "mine", "theirs", "secrets"), OWNER_VIEWS)
def test_the_owner_sees_only_a_bare_notice(app, world, pair, owner, mine, theirs, secrets):
    page = client_for(app, world[owner]).get(f"/cases/{pair[mine].id}").get_data(as_text=True)
    assert "Possible duplicate — contact the national coordinator." in page
    for secret in (pair[theirs].reference, pair[theirs].id, *secrets):
        assert secret not in page


def test_a_case_without_a_flag_has_no_notice(app, db, world):
    case = open_case(world["alice"], PERSON)
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Possible duplicate — contact the national coordinator." not in page


# The coordinator's queue -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "persona", ["alice", "bob", "pavel", "admin", "analyst", "auditor", "stray_coordinator"]
)
def test_only_the_coordinator_opens_the_queue(app, db, world, pair, persona):
    client = client_for(app, world[persona])
    [flag] = flags(db)
    assert client.get("/duplicates/").status_code == 404
    assert client.get(f"/duplicates/{flag.id}/compare").status_code == 404
    reason = {"reason": "Checking before the NRM decision"}
    assert client.post_form(f"/duplicates/{flag.id}/compare", reason).status_code == 404
    response = client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": "same_person"})
    assert response.status_code == 404
    assert flags(db)[0].status == DuplicateStatus.OPEN
    assert audit_entries(db, "duplicate.compared") == []
    assert audit_entries(db, "duplicates.open")[0].outcome == "denied"


def test_the_queue_lists_references_and_agency_types_only(app, world, pair):
    page = client_for(app, world["coordinator"]).get("/duplicates/").get_data(as_text=True)
    assert pair["ngo"].reference in page
    assert pair["police"].reference in page
    assert "(NGO)" in page
    for secret in ("Leyla", "LEYLA", "Məmmədova", "MAMMADOVA", "NGO North", "Police Unit East"):
        assert secret not in page


def test_comparing_needs_a_reason_first(app, db, world, pair):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    form_page = client.get(f"/duplicates/{flag.id}/compare").get_data(as_text=True)
    assert "Why do you need to compare these cases?" in form_page
    assert "Məmmədova" not in form_page

    refused = client.post_form(f"/duplicates/{flag.id}/compare", {"reason": "  "})
    assert refused.status_code == 400
    assert "Məmmədova" not in refused.get_data(as_text=True)
    assert audit_entries(db, "duplicate.compared") == []


def test_comparing_with_a_reason_shows_both_and_is_audited(app, db, world, pair):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    reason = "NRM decision pending for the police case"
    response = client.post_form(f"/duplicates/{flag.id}/compare", {"reason": reason})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    for value in ("Məmmədova", "MAMMADOVA", "Təbriz", "NGO North", "Police Unit East"):
        assert value in page
    [entry] = audit_entries(db, "duplicate.compared")
    assert entry.reason == reason
    assert entry.user_id == world["coordinator"].id
    assert entry.object_id == str(flag.id)
    assert "family_name" in entry.field_name_list


def test_resolving_needs_a_comparison_first(app, db, world, pair):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    response = client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": "same_person"})
    assert response.status_code == 302
    assert flags(db)[0].status == DuplicateStatus.OPEN


@pytest.mark.parametrize("decision", ["same_person", "different"])
def test_the_coordinator_resolves_the_flag(app, db, world, pair, decision):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    client.post_form(f"/duplicates/{flag.id}/compare", {"reason": "Weekly duplicate review"})
    response = client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": decision})
    assert response.status_code == 302

    [flag] = flags(db)
    assert flag.status == decision
    assert flag.resolved_by_user_id == world["coordinator"].id
    assert flag.resolved_at is not None
    [entry] = audit_entries(db, "duplicate.resolved")
    assert entry.reason == decision
    for case in (pair["ngo"], pair["police"]):
        assert f"duplicate.{decision}" in [event.kind for event in timeline_for(case)]
    queue = client.get("/duplicates/").get_data(as_text=True)
    assert pair["ngo"].reference not in queue

    again = client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": "different"})
    assert again.status_code == 302
    assert flags(db)[0].status == decision
    assert len(audit_entries(db, "duplicate.resolved")) == 1


def test_resolving_is_post_only_and_checks_the_decision(app, db, world, pair):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    assert client.get(f"/duplicates/{flag.id}/resolve").status_code == 405
    client.post_form(f"/duplicates/{flag.id}/compare", {"reason": "Weekly duplicate review"})
    response = client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": "open"})
    assert response.status_code == 400
    assert flags(db)[0].status == DuplicateStatus.OPEN


def test_an_unknown_flag_is_not_found(app, world):
    client = client_for(app, world["coordinator"])
    assert client.get("/duplicates/999/compare").status_code == 404
    assert client.get("/duplicates/?after=999").status_code == 404


# Erasure ---------------------------------------------------------------------------------------


def test_erasing_a_case_drops_its_open_flags(app, db, world, pair):
    [flag] = flags(db)
    matched = sorted(flag.matched_names)
    erase_case(db.session.get(Case, pair["police"].id), world["admin"])
    db.session.commit()

    assert flags(db) == []
    [entry] = audit_entries(db, "duplicate.dropped")
    assert entry.object_id == str(flag.id)
    assert entry.user_id == world["admin"].id
    assert entry.field_name_list == matched
    # The other case's owner is no longer told about a duplicate nobody can compare.
    page = client_for(app, world["alice"]).get(f"/cases/{pair['ngo'].id}").get_data(as_text=True)
    assert "Possible duplicate — contact the national coordinator." not in page
    queue = client_for(app, world["coordinator"]).get("/duplicates/").get_data(as_text=True)
    assert pair["ngo"].reference not in queue


def test_erasing_a_case_keeps_its_resolved_flags(app, db, world, pair):
    client = client_for(app, world["coordinator"])
    [flag] = flags(db)
    client.post_form(f"/duplicates/{flag.id}/compare", {"reason": "Weekly duplicate review"})
    client.post_form(f"/duplicates/{flag.id}/resolve", {"decision": "same_person"})
    erase_case(db.session.get(Case, pair["police"].id), world["admin"])
    db.session.commit()

    [flag] = flags(db)
    assert flag.status == DuplicateStatus.SAME_PERSON
    assert audit_entries(db, "duplicate.dropped") == []
