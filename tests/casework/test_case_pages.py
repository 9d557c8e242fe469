"""Case pages: who may open them, opening a case, the audited read, editing and its conflicts."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from flask_login import AnonymousUserMixin
from sqlalchemy import func, select, text

from casework import services
from casework.models import Case
from casework.reference import seed_reference_lists
from casework.services import PERSON_FIELDS, EditConflict, open_case, update_case
from core.audit import AuditEntry
from core.models import AgencyType, Role, User
from tests.factories import client_for, make_agency, make_user

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VERSION_PATTERN = re.compile(
    r'name="version"[^>]*value="([0-9]+)"|value="([0-9]+)"[^>]*name="version"'
)

PERSON = {
    "given_name": "Nərgiz",
    "family_name": "Quliyeva",
    "aliases": "Nana",
    "date_of_birth": date(1998, 4, 17),
    "phone": "+994 50 321 77 18",
    "document_number": "AA4417265",
    "address": "Xətai r., Babək pr. 12, m. 44",
    "circumstances": "Promised work in a hotel.\nPassport taken on arrival.",
}
# The coded fields a case needs to be opened through the form (not personal data).
PERSON_CODES = {
    "sex": "Feminine",
    "identified_on": date(2025, 11, 3),
    "identification_region": "baku",
    "exploitation_form": ["ForcedLabour"],
}


@pytest.fixture
def world(db):
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
    seed_reference_lists()
    case = open_case(people["alice"], {**PERSON, **PERSON_CODES})
    db.session.commit()
    return {"case_id": case.id, "reference": case.reference, **people}



def version_in(page: str) -> str:
    match = VERSION_PATTERN.search(page)
    assert match, "no version field on the page"
    return match.group(1) or match.group(2)


def form_data(**changes) -> dict:
    """Return the form a browser would send: dates as ISO text, CRLF line breaks."""
    data = {**PERSON, **PERSON_CODES, **changes}
    return {
        name: value.isoformat()
        if isinstance(value, date)
        else value
        if isinstance(value, list)
        else value.replace("\n", "\r\n")
        for name, value in data.items()
    }


def saved_case(db, case_id: str) -> Case:
    db.session.expire_all()
    return db.session.get(Case, case_id)


# Access matrix ---------------------------------------------------------------------------

ROUTES = {
    "index": "/cases/",
    "create": "/cases/new",
    "detail": "/cases/{case_id}",
    "edit": "/cases/{case_id}/edit",
}
# persona -> route -> expected status of a GET
EXPECTED = {
    "alice": {"index": 200, "create": 200, "detail": 200, "edit": 200},
    "bob": {"index": 200, "create": 200, "detail": 200, "edit": 200},
    # Another agency's caseworker has an own case list and may open cases, never Alice's.
    "charlie": {"index": 200, "create": 200, "detail": 404, "edit": 404},
    "admin": dict.fromkeys(ROUTES, 404),
    "analyst": dict.fromkeys(ROUTES, 404),
    "auditor": dict.fromkeys(ROUTES, 404),
    # Until referrals share cases with the national coordinator, there is nothing to see.
    "coordinator": dict.fromkeys(ROUTES, 404),
}
MATRIX = [
    (persona, route, status)
    for persona, statuses in EXPECTED.items()
    for route, status in statuses.items()
]


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, world, persona, route, expected):
    client = client_for(app, world[persona])
    response = client.get(ROUTES[route].format(case_id=world["case_id"]))
    assert response.status_code == expected


REFUSED_POSTS = [("charlie", "edit")] + [
    (persona, route)
    for persona in ("admin", "analyst", "auditor", "coordinator")
    for route in ("create", "edit")
]


@pytest.mark.parametrize(("persona", "route"), REFUSED_POSTS)
def test_posts_are_refused_like_gets(app, db, world, persona, route):
    client = client_for(app, world[persona])
    url = ROUTES[route].format(case_id=world["case_id"])
    response = client.post_form(url, form_data(family_name="Changed", version="1"))
    assert response.status_code == 404
    assert saved_case(db, world["case_id"]).family_name == PERSON["family_name"]
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1


@pytest.mark.parametrize("route", list(ROUTES))
def test_anonymous_visitors_are_sent_to_sign_in(app, world, route):
    response = app.test_client().get(ROUTES[route].format(case_id=world["case_id"]))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_a_malformed_case_id_is_not_found(app, world):
    client = client_for(app, world["alice"])
    assert client.get("/cases/not-a-uuid").status_code == 404
    assert client.get("/cases/?after=not-a-uuid").status_code == 404


def test_the_list_shows_only_the_own_agency(app, db, world):
    open_case(world["charlie"], {"given_name": "Samir", "family_name": "Kərimov"})
    db.session.commit()
    alice_page = client_for(app, world["alice"]).get("/cases/").get_data(as_text=True)
    charlie_page = client_for(app, world["charlie"]).get("/cases/").get_data(as_text=True)
    assert world["reference"] in alice_page
    assert "Nərgiz Quliyeva" in alice_page
    assert "Samir" not in alice_page
    assert world["reference"] not in charlie_page
    assert "Samir Kərimov" in charlie_page


@pytest.mark.parametrize("route", list(ROUTES))
def test_case_pages_are_never_cached(app, world, route):
    client = client_for(app, world["alice"])
    response = client.get(ROUTES[route].format(case_id=world["case_id"]))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


# Opening a case --------------------------------------------------------------------------


def test_it_opens_a_case_through_the_form_and_stores_no_plaintext(app, db, world):
    client = client_for(app, world["bob"])
    typed = form_data(
        given_name="Ülviyyə",
        family_name="Rzayeva-Testova",
        phone="+994 55 908 14 62",
        document_number="C90817263",
    )
    response = client.post_form("/cases/new", typed)

    assert response.status_code == 302
    # Only the UUID goes into the URL; the flash message names the reference, no person data.
    assert re.fullmatch(rf"/cases/{UUID_PATTERN}", response.headers["Location"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Ülviyyə" in page
    assert "Rzayeva-Testova" in page
    for value in (typed["given_name"], typed["family_name"], typed["phone"]):
        assert value not in response.headers["Location"]

    rows = db.session.execute(text("SELECT * FROM cases")).all()
    assert len(rows) == 2
    dump = repr(rows)
    for row in rows:
        for column in row:
            if isinstance(column, bytes | memoryview):
                dump += bytes(column).decode("latin-1")
    for secret in ("Ülviyyə", "Rzayeva-Testova", "908 14 62", "C90817263", "Nərgiz", "Quliyeva"):
        assert secret not in dump
        assert secret.encode("utf-8").decode("latin-1") not in dump

    case = db.session.scalars(select(Case).where(Case.id != world["case_id"])).one()
    assert case.owner_agency_id == world["bob"].agency_id
    assert case.assigned_user_id == world["bob"].id
    assert case.version == 1
    assert re.fullmatch(r"HVN-\d{4}-\d{6}", case.reference)
    assert {row.index_name for row in case.blind_indexes} == {
        "name_birth_year",
        "document_number",
        "phone",
    }
    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "case.created", AuditEntry.object_id == case.id
        )
    ).one()
    assert entry.user_id == world["bob"].id
    assert entry.field_name_list == sorted({*PERSON, *PERSON_CODES})


def test_it_allocates_references_in_sequence_per_year(db, world):
    first = open_case(world["alice"], {"given_name": "Bir"})
    second = open_case(world["alice"], {"given_name": "İki"})
    prefix, number = first.reference.rsplit("-", 1)
    assert second.reference == f"{prefix}-{int(number) + 1:06d}"


def test_the_reference_year_is_the_local_year(db, world):
    # 21:00 UTC on 31 December is already 1 January in Baku (UTC+4).
    with time_machine.travel(datetime(2030, 12, 31, 21, 0, tzinfo=UTC), tick=False):
        first = open_case(world["alice"], {"given_name": "Yeni"})
        second = open_case(world["alice"], {"given_name": "İl"})
    assert (first.reference, second.reference) == ("HVN-2031-000001", "HVN-2031-000002")


def test_a_lost_reference_race_retries_with_the_next_number(db, world, monkeypatch):
    taken = world["reference"]
    real_next_reference = services.next_reference
    calls = []

    def next_reference(year):
        calls.append(year)
        # First answer what a concurrent request just took, as max() + 1 would in a race.
        return taken if len(calls) == 1 else real_next_reference(year)

    monkeypatch.setattr(services, "next_reference", next_reference)
    case = open_case(world["alice"], {"given_name": "Üç"})
    db.session.commit()
    assert len(calls) == 2
    assert case.reference != taken
    assert db.session.scalar(select(Case.reference).where(Case.id == case.id)) == case.reference
    assert saved_case(db, case.id).given_name == "Üç"


def test_concurrent_openings_get_different_references(app, db, world, monkeypatch):
    """Two requests both read the same highest reference; the later insert retries."""
    user_ids = [world["alice"].id, world["bob"].id]
    postgres = db.engine.dialect.name == "postgresql"
    # PostgreSQL: make both read max() before either inserts, so they really collide. SQLite
    # serialises writers on its database lock (the second waits), so there is no collision.
    both_read = threading.Barrier(2, timeout=10)
    real_next_reference = services.next_reference
    calls = []

    def next_reference(year):
        reference = real_next_reference(year)
        calls.append(reference)
        if postgres and len(calls) <= 2:
            both_read.wait()
        return reference

    monkeypatch.setattr(services, "next_reference", next_reference)
    results, errors = [], []

    def open_in_own_request(user_id):
        try:
            with app.app_context():
                user = db.session.get(User, user_id)
                case = open_case(user, {"given_name": f"Parallel {user_id}"})
                results.append(case.reference)
                time.sleep(0.2)  # hold the transaction open while the other one inserts
                db.session.commit()
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=open_in_own_request, args=(uid,)) for uid in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(set(results)) == 2
    if postgres:
        assert len(calls) == 3  # the loser asked for a reference twice
    stored = db.session.scalars(select(Case.reference)).all()
    assert sorted(stored) == sorted([world["reference"], *results])


@pytest.mark.parametrize(
    ("date_of_birth", "message"),
    [
        ((date.today() + timedelta(days=2)).isoformat(), "cannot be in the future"),
        ("2001-02-30", "Please enter a real date"),
        ("17.04.1998", "Please enter a real date"),
    ],
)
def test_bad_input_is_shown_again_with_what_was_typed(app, db, world, date_of_birth, message):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/cases/new", form_data(given_name="Könül", phone="12", date_of_birth=date_of_birth)
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    assert 'value="Könül"' in page
    assert f'value="{date_of_birth}"' in page
    assert "Please enter digits only" in page
    assert db.session.scalar(select(Case.id).where(Case.id != world["case_id"])) is None


def test_a_case_needs_some_name(app, world):
    client = client_for(app, world["alice"])
    response = client.post_form("/cases/new", {"phone": "+994 50 111 22 33"})
    assert response.status_code == 400
    assert "Please enter a given name, a family name or an alias" in response.get_data(as_text=True)


# Reading a case ------------------------------------------------------------------------


def test_viewing_a_case_records_the_fields_read_and_no_values(app, db, world):
    client = client_for(app, world["bob"])
    response = client.get(f"/cases/{world['case_id']}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nərgiz" in page
    assert "AA4417265" in page

    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.viewed")).all()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.object_type == "case"
    assert entry.object_id == world["case_id"]
    assert entry.user_id == world["bob"].id
    assert entry.agency_id == world["bob"].agency_id
    assert entry.field_name_list == sorted(PERSON_FIELDS)
    raw = repr(db.session.execute(text("SELECT * FROM audit_entries")).all())
    for value in PERSON.values():
        assert str(value) not in raw


def test_typed_markup_is_shown_as_text(app, db, world):
    case = open_case(world["alice"], {"given_name": "<b>Aydan</b>", "circumstances": "<i>x</i>\ny"})
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{case.id}").get_data(as_text=True)
    assert "&lt;b&gt;Aydan&lt;/b&gt;" in page
    assert "&lt;i&gt;x&lt;/i&gt;<br>y" in page
    assert "<b>Aydan" not in page


def test_the_list_is_paged_newest_first(app, db, world):
    for number in range(54):
        open_case(world["alice"], {"given_name": f"Person {number:02d}"})
    db.session.commit()
    client = client_for(app, world["alice"])

    first = client.get("/cases/").get_data(as_text=True)
    assert len(re.findall(rf'href="/cases/{UUID_PATTERN}"', first)) == 50
    assert "Person 53" in first
    assert "Person 03" not in first
    match = re.search(rf'href="/cases/\?after=({UUID_PATTERN})"', first)
    assert match

    second = client.get(f"/cases/?after={match.group(1)}").get_data(as_text=True)
    for number in range(4):
        assert f"Person {number:02d}" in second
    assert "Person 04" not in second
    assert "Nərgiz Quliyeva" in second
    assert 'href="/cases/?after=' not in second


def test_a_page_cursor_from_another_agency_is_not_found(app, db, world):
    client = client_for(app, world["charlie"])
    assert client.get(f"/cases/?after={world['case_id']}").status_code == 404


# Editing a case --------------------------------------------------------------------------


def test_it_edits_a_case_and_audits_the_changed_fields(app, db, world):
    client = client_for(app, world["alice"])
    page = client.get(f"/cases/{world['case_id']}/edit").get_data(as_text=True)
    assert 'value="Nərgiz"' in page
    response = client.post_form(
        f"/cases/{world['case_id']}/edit",
        form_data(family_name="Həsənova", phone="", version=version_in(page)),
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/cases/{world['case_id']}"

    case = saved_case(db, world["case_id"])
    assert case.family_name == "Həsənova"
    assert case.phone is None
    assert case.given_name == "Nərgiz"
    assert case.version == 2
    assert "phone" not in {row.index_name for row in case.blind_indexes}
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.updated")).one()
    assert entry.field_name_list == ["family_name", "phone"]


def test_saving_an_unchanged_form_changes_nothing(app, db, world):
    client = client_for(app, world["alice"])
    page = client.get(f"/cases/{world['case_id']}/edit").get_data(as_text=True)
    response = client.post_form(
        f"/cases/{world['case_id']}/edit", form_data(version=version_in(page))
    )
    assert response.status_code == 302
    assert saved_case(db, world["case_id"]).version == 1
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case.updated")) is None


def test_a_concurrent_edit_shows_both_values_and_keeps_the_input(app, db, world):
    alice, bob = client_for(app, world["alice"]), client_for(app, world["bob"])
    url = f"/cases/{world['case_id']}/edit"
    alice_version = version_in(alice.get(url).get_data(as_text=True))
    bob_version = version_in(bob.get(url).get_data(as_text=True))
    assert alice_version == bob_version == "1"

    saved = alice.post_form(url, form_data(family_name="Alpha-Saved", version=alice_version))
    assert saved.status_code == 302
    conflict = bob.post_form(
        url, form_data(family_name="Bravo-Typed", aliases="Bravo alias", version=bob_version)
    )

    page = conflict.get_data(as_text=True)
    assert conflict.status_code == 409
    assert "Someone else saved this case" in page
    assert "Alpha-Saved" in page
    assert 'value="Bravo-Typed"' in page
    assert 'value="Bravo alias"' in page
    assert version_in(page) == "2"
    case = saved_case(db, world["case_id"])
    assert case.family_name == "Alpha-Saved"
    assert case.aliases == "Nana"
    assert case.version == 2

    # Bob has seen the saved version and submits his own over it, knowingly.
    resubmitted = bob.post_form(
        url, form_data(family_name="Bravo-Typed", aliases="Bravo alias", version=version_in(page))
    )
    assert resubmitted.status_code == 302
    case = saved_case(db, world["case_id"])
    assert case.family_name == "Bravo-Typed"
    assert case.version == 3


def test_a_change_committed_during_the_save_is_a_conflict_too(app, db, world, monkeypatch):
    """The version matched when loaded, but another save commits before our UPDATE."""
    import casework.views

    real_update_case = casework.views.update_case

    def update_case_after_a_concurrent_save(user, case, data, *, expected_version, **options):
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE cases SET version = version + 1 WHERE id = :id"),
                {"id": case.id},
            )
        return real_update_case(user, case, data, expected_version=expected_version, **options)

    monkeypatch.setattr(casework.views, "update_case", update_case_after_a_concurrent_save)
    client = client_for(app, world["alice"])
    response = client.post_form(
        f"/cases/{world['case_id']}/edit", form_data(family_name="Lost-Update", version="1")
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'value="Lost-Update"' in page
    assert version_in(page) == "2"
    assert saved_case(db, world["case_id"]).family_name == PERSON["family_name"]


def test_the_service_refuses_a_stale_version(db, world):
    case = db.session.get(Case, world["case_id"])
    with pytest.raises(EditConflict):
        update_case(world["alice"], case, {"family_name": "Stale"}, expected_version=0)


def test_bad_input_on_edit_is_shown_again(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        f"/cases/{world['case_id']}/edit",
        form_data(given_name="Zeynəb", date_of_birth="1998-13-01", version="1"),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'value="Zeynəb"' in page
    assert 'value="1998-13-01"' in page
    assert saved_case(db, world["case_id"]).given_name == PERSON["given_name"]


def test_the_policy_scope_hides_cases_from_the_anonymous(db, world):
    from core.policy import visible_cases

    assert db.session.scalars(visible_cases(AnonymousUserMixin())).all() == []


def test_a_refused_case_read_is_audited_as_denied(app, db, world):
    response = client_for(app, world["charlie"]).get(f"/cases/{world['case_id']}")

    assert response.status_code == 404
    db.session.expire_all()
    denied = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.view_denied")
    ).all()
    assert [(entry.user_id, entry.object_id, entry.outcome) for entry in denied] == [
        (world["charlie"].id, world["case_id"], "denied")
    ]


def test_the_case_page_names_the_assigned_caseworker(app, world):
    page = client_for(app, world["bob"]).get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert f"Assigned to {world['alice'].display_name}" in page
