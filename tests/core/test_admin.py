"""Admin pages: who reaches them, and agencies and accounts managed through real forms."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core import admin_services
from core.audit import AuditEntry
from core.db import db
from core.models import Agency, AgencyType, RecoveryCode, Role, User
from core.passwords import verify_password
from tests.factories import DEFAULT_PASSWORD, login_as, make_agency, make_user

NEW_PASSWORD = "violet kettle under 9 moons"


@pytest.fixture
def world(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = SimpleNamespace(
        north=north,
        south=south,
        nrm=nrm,
        admin=make_user(nrm, Role.ADMIN, email="dana@example.org"),
        alice=make_user(north, Role.CASEWORKER, email="alice@example.org"),
        bob=make_user(north, Role.SUPERVISOR),
        analyst=make_user(nrm, Role.ANALYST),
        auditor=make_user(nrm, Role.AUDITOR),
        coordinator=make_user(nrm, Role.COORDINATOR),
    )
    db.session.commit()
    return people


@pytest.fixture
def admin_client(client, world):
    login_as(client, world.admin)
    return client


def fresh(model, object_id):
    """Read a row as the database has it now (the requests ran in their own sessions)."""
    db.session.expire_all()
    return db.session.get(model, object_id)


def no_user_named(name: str) -> bool:
    return db.session.scalars(select(User).where(User.display_name == name)).first() is None


def audit_entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def audit_text(entry: AuditEntry) -> str:
    return " ".join(
        str(getattr(entry, column))
        for column in ("action", "object_type", "object_id", "field_names", "reason")
    )


# Access matrix ---------------------------------------------------------------------------

# (method, url with {north}/{south}/{alice} placeholders, the admin's status)
ROUTES = [
    ("GET", "/admin/agencies", 200),
    ("GET", "/admin/agencies/new", 200),
    ("POST", "/admin/agencies/new", 400),  # empty form: re-rendered with errors
    ("GET", "/admin/agencies/{north}/edit", 200),
    ("POST", "/admin/agencies/{north}/edit", 400),
    ("POST", "/admin/agencies/{south}/deactivate", 302),
    ("POST", "/admin/agencies/{south}/reactivate", 302),
    ("GET", "/admin/users", 200),
    ("GET", "/admin/users?agency={north}&role=caseworker&status=active", 200),
    ("GET", "/admin/users/new", 200),
    ("POST", "/admin/users/new", 400),
    ("GET", "/admin/users/{alice}/edit", 200),
    ("POST", "/admin/users/{alice}/edit", 400),
    ("POST", "/admin/users/{alice}/deactivate", 302),
    ("POST", "/admin/users/{alice}/reactivate", 302),
    ("POST", "/admin/users/{alice}/reset-2fa", 302),
]
PERSONAS = ["admin", "alice", "bob", "analyst", "auditor", "coordinator", "anonymous"]


def route_url(template: str, world) -> str:
    return template.format(north=world.north.id, south=world.south.id, alice=world.alice.id)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "template", "admin_status"), ROUTES)
def test_access_matrix(client, world, persona, method, template, admin_status):
    if persona != "anonymous":
        login_as(client, getattr(world, persona))
    url = route_url(template, world)
    response = client.get(url) if method == "GET" else client.post_form(url, {})
    if persona == "admin":
        assert response.status_code == admin_status
    elif persona == "anonymous":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == 404
    if persona != "admin":
        alice = fresh(User, world.alice.id)
        assert alice.active and alice.has_totp
        assert fresh(Agency, world.south.id).active


def test_a_refused_visit_is_audited(client, world):
    login_as(client, world.alice)
    assert client.get("/admin/users").status_code == 404
    [entry] = audit_entries("admin.open")
    assert entry.outcome == "denied" and entry.user_id == world.alice.id
    assert entry.object_id == "admin.users"


def test_a_half_signed_in_admin_is_sent_to_the_second_factor(client, world):
    from core.sessions import SESSION_KEY, create_session

    _row, token = create_session(world.admin, second_factor_done=False)
    db.session.commit()
    with client.session_transaction() as cookie_session:
        cookie_session[SESSION_KEY] = token
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/totp"


@pytest.mark.parametrize(
    "url",
    [
        "/admin/agencies/999999/edit",
        "/admin/users/999999/edit",
        "/admin/users/abc/edit",
        "/admin/nothing-here",
    ],
)
def test_unknown_objects_are_404_for_the_admin(admin_client, url):
    assert admin_client.get(url).status_code == 404


@pytest.mark.parametrize(
    "template",
    [
        "/admin/users/{alice}/deactivate",
        "/admin/users/{alice}/reset-2fa",
        "/admin/agencies/{south}/deactivate",
    ],
)
def test_actions_refuse_get(admin_client, world, template):
    assert admin_client.get(route_url(template, world)).status_code == 405


def test_actions_need_the_csrf_token(admin_client, world):
    response = admin_client.post(f"/admin/users/{world.alice.id}/deactivate", data={})
    assert response.status_code == 400
    assert fresh(User, world.alice.id).active


def test_navigation_shows_admin_pages_to_admins_only(client, world):
    login_as(client, world.admin)
    page = client.get("/").get_data(as_text=True)
    assert 'href="/admin/agencies"' in page and 'href="/admin/users"' in page
    other = client.application.test_client()
    login_as(other, world.alice)
    assert "/admin/" not in other.get("/").get_data(as_text=True)


# Agencies --------------------------------------------------------------------------------


def test_admin_creates_an_agency_through_the_form(admin_client):
    response = admin_client.post_form(
        "/admin/agencies/new",
        {"name": "Harbour Legal Aid", "type": "legal_aid"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Agency Harbour Legal Aid created." in page
    assert "Harbour Legal Aid" in page and "Legal aid" in page
    agency = db.session.scalars(select(Agency).where(Agency.name == "Harbour Legal Aid")).one()
    assert agency.type == "legal_aid" and agency.active and not agency.is_national_coordinator
    [entry] = audit_entries("agency.create")
    assert entry.object_id == str(agency.id)
    assert {"name", "type", "is_national_coordinator"} <= set(entry.field_name_list)
    assert "Harbour" not in audit_text(entry)


def test_admin_edits_an_agency(admin_client, world):
    response = admin_client.post_form(
        f"/admin/agencies/{world.south.id}/edit",
        # The browser sends the "keeps case files" box, checked as the agency has it.
        {"name": "Shelter South-West", "type": "shelter", "keeps_case_files": "y"},
    )
    assert response.status_code == 302
    assert fresh(Agency, world.south.id).name == "Shelter South-West"
    [entry] = audit_entries("agency.update")
    assert json.loads(entry.field_names) == ["name"]
    assert "South" not in audit_text(entry)


def test_a_second_national_coordinator_is_refused_with_the_typed_values(admin_client, world):
    response = admin_client.post_form(
        "/admin/agencies/new",
        {"name": "Second NRM", "type": "ministry", "is_national_coordinator": "y"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "NRM Office is already the national coordinator" in page
    assert 'value="Second NRM"' in page
    assert db.session.scalars(select(Agency).where(Agency.name == "Second NRM")).first() is None
    assert audit_entries("agency.create") == []


def test_marking_another_agency_national_coordinator_is_refused(admin_client, world):
    response = admin_client.post_form(
        f"/admin/agencies/{world.south.id}/edit",
        {"name": "Shelter South", "type": "shelter", "is_national_coordinator": "y"},
    )
    assert response.status_code == 400
    assert "already the national coordinator" in response.get_data(as_text=True)
    assert not fresh(Agency, world.south.id).is_national_coordinator


def test_the_coordinator_mark_can_move_once_removed(admin_client, world):
    admin_client.post_form(
        f"/admin/agencies/{world.nrm.id}/edit", {"name": "NRM Office", "type": "ministry"}
    )
    response = admin_client.post_form(
        f"/admin/agencies/{world.south.id}/edit",
        {"name": "Shelter South", "type": "shelter", "is_national_coordinator": "y"},
    )
    assert response.status_code == 302
    assert fresh(Agency, world.south.id).is_national_coordinator
    assert not fresh(Agency, world.nrm.id).is_national_coordinator
    assert len(audit_entries("agency.update")) == 2


def test_moving_the_coordinator_mark_ends_the_coordinators_sessions(client, world):
    coordinator = client.application.test_client()
    login_as(coordinator, world.coordinator)
    analyst = client.application.test_client()
    login_as(analyst, world.analyst)
    login_as(client, world.admin)
    response = client.post_form(
        f"/admin/agencies/{world.nrm.id}/edit", {"name": "NRM Office", "type": "ministry"}
    )
    assert response.status_code == 302
    assert coordinator.get("/").status_code == 302
    # Colleagues without the coordinator role, the admin included, keep their sessions.
    assert analyst.get("/").status_code == 200
    assert client.get("/admin/agencies").status_code == 200


def test_the_service_refuses_a_second_national_coordinator(db, world):
    with pytest.raises(admin_services.AdminError) as raised:
        admin_services.create_agency(
            name="Other", type=AgencyType.MINISTRY, is_national_coordinator=True, actor=world.admin
        )
    assert raised.value.field == "is_national_coordinator"


def test_a_duplicate_agency_name_is_refused(admin_client, world):
    response = admin_client.post_form("/admin/agencies/new", {"name": "ngo north", "type": "ngo"})
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


def test_deactivating_an_agency_ends_its_users_sessions(client, world):
    alice = client.application.test_client()
    login_as(alice, world.alice)
    assert alice.get("/").status_code == 200
    login_as(client, world.admin)
    response = client.post_form(f"/admin/agencies/{world.north.id}/deactivate")
    assert response.status_code == 302
    assert not fresh(Agency, world.north.id).active
    assert alice.get("/").status_code == 302
    assert len(audit_entries("agency.deactivate")) == 1
    client.post_form(f"/admin/agencies/{world.north.id}/reactivate")
    assert fresh(Agency, world.north.id).active


def test_an_admin_cannot_deactivate_their_own_agency(admin_client, world):
    response = admin_client.post_form(
        f"/admin/agencies/{world.nrm.id}/deactivate", follow_redirects=True
    )
    assert "You cannot deactivate your own agency." in response.get_data(as_text=True)
    assert fresh(Agency, world.nrm.id).active


# Users -----------------------------------------------------------------------------------


def new_user_form(world, **changes) -> dict:
    data = {
        "email": "Farid@Example.org",
        "display_name": "Farid Aliyev",
        "agency": str(world.south.id),
        "roles": ["caseworker"],
        "language": "az",
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
    }
    data.update(changes)
    return data


def test_admin_creates_a_user_through_the_form(admin_client, world):
    response = admin_client.post_form("/admin/users/new", new_user_form(world))
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == "farid@example.org")).one()
    assert user.display_name == "Farid Aliyev"
    assert user.agency_id == world.south.id
    assert user.roles == {Role.CASEWORKER}
    assert user.language == "az"
    assert user.active and not user.has_totp
    assert verify_password(user.password_hash, NEW_PASSWORD)[0]
    listing = admin_client.get("/admin/users").get_data(as_text=True)
    assert "Farid Aliyev" in listing and "farid@example.org" in listing
    [entry] = audit_entries("user.create")
    assert entry.object_id == str(user.id) and entry.user_id == world.admin.id
    assert {"email", "roles", "password_hash"} <= set(json.loads(entry.field_names))
    text = audit_text(entry)
    assert "farid" not in text.lower() and NEW_PASSWORD not in text and "$argon2" not in text


def test_the_new_user_must_enrol_two_factor_at_first_login(admin_client, world):
    admin_client.post_form("/admin/users/new", new_user_form(world))
    browser = admin_client.application.test_client()
    response = browser.post_form("/login", {"email": "farid@example.org", "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/enrol"


def test_a_weak_initial_password_is_refused_with_the_typed_values_kept(admin_client, world):
    form = new_user_form(world, password="short", password_confirm="short")
    response = admin_client.post_form("/admin/users/new", form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Use at least 12 characters." in page
    assert 'value="Farid@Example.org"' in page
    assert 'value="Farid Aliyev"' in page
    assert f'<option selected value="{world.south.id}">' in page
    assert 'checked id="roles-0" name="roles" type="checkbox" value="caseworker"' in page
    assert 'value="short"' not in page
    assert (
        db.session.scalars(select(User).where(User.display_name == "Farid Aliyev")).first() is None
    )


def test_a_common_password_is_refused(admin_client, world):
    form = new_user_form(world, password="password1234", password_confirm="password1234")
    response = admin_client.post_form("/admin/users/new", form)
    assert response.status_code == 400
    assert "common passwords" in response.get_data(as_text=True)


def test_mismatched_passwords_are_refused(admin_client, world):
    form = new_user_form(world, password_confirm=NEW_PASSWORD + "x")
    assert admin_client.post_form("/admin/users/new", form).status_code == 400


@pytest.mark.parametrize("case_role", ["caseworker", "supervisor", "coordinator"])
def test_admin_and_a_case_role_cannot_be_combined(admin_client, world, case_role):
    form = new_user_form(world, agency=str(world.nrm.id), roles=["admin", case_role])
    response = admin_client.post_form("/admin/users/new", form)
    assert response.status_code == 400
    assert "An administrator may not also be" in response.get_data(as_text=True)
    assert (
        db.session.scalars(select(User).where(User.display_name == "Farid Aliyev")).first() is None
    )


def test_role_and_password_errors_show_together(admin_client, world):
    form = new_user_form(
        world, agency=str(world.nrm.id), roles=["admin", "caseworker"], password="short"
    )
    page = admin_client.post_form("/admin/users/new", form).get_data(as_text=True)
    assert "An administrator may not also be" in page
    assert "Use at least 12 characters." in page


def test_the_coordinator_role_is_for_the_national_coordinator_agency(admin_client, world):
    form = new_user_form(world, roles=["coordinator"])
    response = admin_client.post_form("/admin/users/new", form)
    assert response.status_code == 400
    assert "national coordinator agency" in response.get_data(as_text=True)
    form = new_user_form(world, roles=["coordinator"], agency=str(world.nrm.id))
    assert admin_client.post_form("/admin/users/new", form).status_code == 302


def test_a_user_needs_a_role(admin_client, world):
    response = admin_client.post_form("/admin/users/new", new_user_form(world, roles=[]))
    assert response.status_code == 400
    assert "Choose at least one role." in response.get_data(as_text=True)


def test_a_taken_email_is_refused_whatever_its_case(admin_client, world):
    form = new_user_form(world, email="ALICE@example.org")
    response = admin_client.post_form("/admin/users/new", form)
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


def test_users_list_filters(admin_client, world):
    def names(query: str) -> set[str]:
        page = admin_client.get(f"/admin/users?{query}").get_data(as_text=True)
        # Only the table: the signed-in admin's name is in the page header too.
        page = page.split("<tbody>", 1)[1] if "<tbody>" in page else ""
        return {user.display_name for user in everyone if user.display_name in page}

    everyone = [world.admin, world.alice, world.bob, world.analyst, world.auditor]
    everyone.append(world.coordinator)
    assert names("") == {user.display_name for user in everyone}
    assert names(f"agency={world.north.id}") == {world.alice.display_name, world.bob.display_name}
    assert names("role=supervisor") == {world.bob.display_name}
    admin_services.deactivate_user(world.bob, actor=world.admin)
    db.session.commit()
    assert names("status=inactive") == {world.bob.display_name}
    assert world.bob.display_name not in names("status=active")
    # Unknown values narrow nothing rather than failing.
    assert admin_client.get("/admin/users?role=pope&agency=x").status_code == 200


def test_deactivation_ends_the_users_session_on_the_next_request(client, world):
    alice = client.application.test_client()
    login_as(alice, world.alice)
    assert alice.get("/").status_code == 200
    login_as(client, world.admin)
    response = client.post_form(f"/admin/users/{world.alice.id}/deactivate", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert f"Account of {world.alice.display_name} deactivated." in page
    assert not fresh(User, world.alice.id).active
    refused = alice.get("/")
    assert refused.status_code == 302
    assert refused.headers["Location"].startswith("/login")
    [entry] = audit_entries("user.deactivate")
    assert json.loads(entry.field_names) == ["active"]
    # And the password alone no longer opens a session.
    again = alice.post_form("/login", {"email": "alice@example.org", "password": DEFAULT_PASSWORD})
    assert again.status_code == 400
    client.post_form(f"/admin/users/{world.alice.id}/reactivate")
    assert fresh(User, world.alice.id).active
    assert len(audit_entries("user.reactivate")) == 1


def test_a_role_change_ends_the_users_session(client, world):
    bob = client.application.test_client()
    login_as(bob, world.bob)
    assert bob.get("/").status_code == 200
    login_as(client, world.admin)
    response = client.post_form(
        f"/admin/users/{world.bob.id}/edit",
        {
            "display_name": world.bob.display_name,
            "agency": str(world.north.id),
            "roles": ["caseworker"],
            "language": "en",
        },
    )
    assert response.status_code == 302
    assert fresh(User, world.bob.id).roles == {Role.CASEWORKER}
    assert bob.get("/").status_code == 302
    [entry] = audit_entries("user.update")
    assert json.loads(entry.field_names) == ["roles"]


def test_a_language_change_keeps_the_session(client, world):
    bob = client.application.test_client()
    login_as(bob, world.bob)
    login_as(client, world.admin)
    response = client.post_form(
        f"/admin/users/{world.bob.id}/edit",
        {
            "display_name": world.bob.display_name,
            "agency": str(world.north.id),
            "roles": ["supervisor"],
            "language": "ru",
        },
    )
    assert response.status_code == 302
    assert fresh(User, world.bob.id).language == "ru"
    assert bob.get("/").status_code == 200


def test_the_edit_form_shows_the_current_account(admin_client, world):
    page = admin_client.get(f"/admin/users/{world.bob.id}/edit").get_data(as_text=True)
    assert f'value="{world.bob.display_name}"' in page
    assert f'<option selected value="{world.north.id}">' in page
    assert 'checked id="roles-1" name="roles" type="checkbox" value="supervisor"' in page


def test_reset_2fa_clears_the_factor_and_forces_enrolment(client, world):
    alice_browser = client.application.test_client()
    login_as(alice_browser, world.alice)
    db.session.add(RecoveryCode(user_id=world.alice.id, code_hash="x"))
    db.session.commit()
    login_as(client, world.admin)
    response = client.post_form(f"/admin/users/{world.alice.id}/reset-2fa")
    assert response.status_code == 302
    alice = fresh(User, world.alice.id)
    assert alice.totp_secret is None and alice.totp_confirmed_at is None
    assert alice.totp_last_step is None
    recovery = select(RecoveryCode).where(RecoveryCode.user_id == alice.id)
    assert db.session.scalars(recovery).all() == []
    assert alice_browser.get("/").status_code == 302
    login = alice_browser.post_form(
        "/login", {"email": "alice@example.org", "password": DEFAULT_PASSWORD}
    )
    assert login.headers["Location"] == "/login/enrol"
    assert alice_browser.get("/").headers["Location"] == "/login/enrol"
    [entry] = audit_entries("user.reset_totp")
    assert "totp_secret" in json.loads(entry.field_names)


def test_an_admin_cannot_deactivate_themselves(admin_client, world):
    response = admin_client.post_form(
        f"/admin/users/{world.admin.id}/deactivate", follow_redirects=True
    )
    assert "You cannot deactivate your own account." in response.get_data(as_text=True)
    assert fresh(User, world.admin.id).active
    assert audit_entries("user.deactivate") == []


def test_an_admin_cannot_drop_their_own_admin_role(admin_client, world):
    response = admin_client.post_form(
        f"/admin/users/{world.admin.id}/edit",
        {
            "display_name": world.admin.display_name,
            "agency": str(world.nrm.id),
            "roles": ["auditor"],
            "language": "en",
        },
    )
    assert response.status_code == 400
    assert "You cannot remove your own administrator role." in response.get_data(as_text=True)
    assert fresh(User, world.admin.id).roles == {Role.ADMIN}


def test_repeating_a_deactivation_changes_nothing_more(db, world):
    admin_services.deactivate_user(world.alice, actor=world.admin)
    epoch = world.alice.session_epoch
    admin_services.deactivate_user(world.alice, actor=world.admin)
    assert world.alice.session_epoch == epoch
    assert len(audit_entries("user.deactivate")) == 1


def test_services_refuse_admin_with_case_roles(db, world):
    with pytest.raises(admin_services.AdminError) as raised:
        admin_services.update_user_roles(
            world.analyst, {Role.ADMIN, Role.SUPERVISOR}, actor=world.admin
        )
    assert raised.value.field == "roles"
    assert world.analyst.roles == {Role.ANALYST}


def test_update_user_roles_ends_sessions_and_audits(db, world):
    epoch = world.alice.session_epoch
    admin_services.update_user_roles(world.alice, {Role.SUPERVISOR}, actor=world.admin)
    assert world.alice.roles == {Role.SUPERVISOR}
    assert world.alice.session_epoch == epoch + 1
    [entry] = audit_entries("user.update_roles")
    assert json.loads(entry.field_names) == ["roles"]
