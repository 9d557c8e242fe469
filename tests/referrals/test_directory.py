"""The service directory: who may search and keep it, find_providers' filters and order,
capacity reports with optimistic locking, audit entries, and the demo agencies' services."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
import time_machine
from flask_login import AnonymousUserMixin
from sqlalchemy import func, select

from casework.reference import seed_reference_lists
from core import policy
from core.audit import AuditEntry
from core.db import utcnow
from core.demo import DEMO_AGENCIES, DemoSummary, _ensure_agencies
from core.models import AgencyType, Role
from referrals import directory_services as services
from referrals.directory import AgencyService, CapacityState, find_providers, search_services
from tests.factories import client_for, make_agency, make_user

NOTES = "Ring the bell at the back door; staff speak Talysh too."


def add(agency, service_type, **fields):
    values = {
        "nationwide": True,
        "languages": ["az", "ru"],
        "accepts": ["women", "men", "children", "families"],
        **fields,
    }
    return services.create_service(agency, service_type=service_type, **values)


@pytest.fixture
def world(db):
    """Alice (caseworker) and Bob (supervisor) at NGO North; Charlie and Sue at Shelter South;
    the national coordinator's office with its coordinator, admin, analyst and auditor."""
    seed_reference_lists()
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "sue": make_user(south, Role.SUPERVISOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
    }
    north_legal = add(
        north,
        "legal_aid",
        nationwide=False,
        regions=["baku"],
        accepts=["women", "men"],
        contact_hours="Mon-Fri 9-18",
    )
    north_shelter = add(
        north, "shelter", nationwide=False, regions=["baku"], accepts=["women"], total_places=10
    )
    services.update_capacity(north_shelter, free_places=2)
    north_inactive = add(north, "psychological")
    services.deactivate_service(north_inactive)
    south_shelter = add(south, "shelter", languages=["az", "ru", "en"], total_places=20)
    services.update_capacity(south_shelter, free_places=0)
    status = add(nrm, "status_decision", languages=["az", "ru", "en"])
    db.session.commit()
    return SimpleNamespace(
        north=north,
        south=south,
        nrm=nrm,
        north_legal=north_legal,
        north_shelter=north_shelter,
        north_inactive=north_inactive,
        south_shelter=south_shelter,
        status=status,
        **people,
    )


def reload(db, service_id) -> AgencyService:
    db.session.expire_all()
    return db.session.get(AgencyService, service_id)


def entries(db, action):
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def service_form(**overrides) -> dict:
    return {
        "service_type": "medical",
        "regions": ["baku", "absheron_khizi"],
        "languages": ["az", "ru"],
        "accepts": ["women", "children"],
        "contact_hours": "Daily 10-16",
        "notes": NOTES,
        "total_places": "",
        **overrides,
    }


# Access matrix ---------------------------------------------------------------------------

GET_ROUTES = {
    "index": "/directory/",
    "agencies": "/directory/agencies",
    "agency": "/directory/agencies/{north}",
    "create": "/directory/agencies/{north}/services/new",
    "edit": "/directory/services/{north_legal}/edit",
    "capacity": "/directory/services/{north_shelter}/capacity",
}
POST_ROUTES = {
    "create_post": "/directory/agencies/{north}/services/new",
    "edit_post": "/directory/services/{north_legal}/edit",
    "capacity_post": "/directory/services/{north_shelter}/capacity",
    "deactivate": "/directory/services/{north_legal}/deactivate",
    "reactivate": "/directory/services/{north_inactive}/reactivate",
}
POST_DATA = {
    "create_post": lambda world: service_form(),
    "edit_post": lambda world: service_form(
        service_type="legal_aid", version=str(world.north_legal.version)
    ),
    "capacity_post": lambda world: {
        "free_places": "1",
        "version": str(world.north_shelter.version),
    },
}
NOBODY = dict.fromkeys([*GET_ROUTES, *POST_ROUTES], 404)
# Searches the directory, keeps nothing; an inactive service of North is not even visible.
READER = {
    "index": 200,
    "agencies": 200,
    "agency": 200,
    **dict.fromkeys(["create", "edit", "capacity"], 403),
    **dict.fromkeys(["create_post", "edit_post", "capacity_post", "deactivate"], 403),
    "reactivate": 404,
}
EXPECTED = {
    "alice": READER,
    "bob": {**dict.fromkeys(GET_ROUTES, 200), **dict.fromkeys(POST_ROUTES, 302)},
    "charlie": READER,
    # A supervisor, of another agency: North's services are not hers to keep.
    "sue": READER,
    "coordinator": READER,
    # Keeps every agency's services, but the live free places are the agency's own report.
    "admin": {
        **dict.fromkeys(GET_ROUTES, 200),
        **dict.fromkeys(POST_ROUTES, 302),
        "capacity": 403,
        "capacity_post": 403,
    },
    "analyst": NOBODY,
    "auditor": NOBODY,
}
MATRIX = [
    (persona, route, status)
    for persona, statuses in EXPECTED.items()
    for route, status in statuses.items()
]


def ids(world) -> dict:
    return {
        "north": world.north.id,
        "north_legal": world.north_legal.id,
        "north_shelter": world.north_shelter.id,
        "north_inactive": world.north_inactive.id,
    }


@pytest.mark.parametrize(("persona", "route", "expected"), MATRIX)
def test_access_matrix(app, db, world, persona, route, expected):
    client = client_for(app, getattr(world, persona))
    if route in GET_ROUTES:
        response = client.get(GET_ROUTES[route].format(**ids(world)))
    else:
        data = POST_DATA.get(route, lambda world: {})(world)
        response = client.post_form(POST_ROUTES[route].format(**ids(world)), data)
    assert response.status_code == expected


@pytest.mark.parametrize("route", [*GET_ROUTES, *POST_ROUTES])
def test_anonymous_visitors_are_sent_to_sign_in(app, world, route):
    client = app.test_client()
    url = {**GET_ROUTES, **POST_ROUTES}[route].format(**ids(world))
    response = client.get(url) if route in GET_ROUTES else client.post_form(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("route", ["deactivate", "reactivate"])
def test_actions_reject_get(app, world, route):
    response = client_for(app, world.bob).get(POST_ROUTES[route].format(**ids(world)))
    assert response.status_code == 405


def test_refusals_are_audited_as_denied(app, db, world):
    client_for(app, world.analyst).get("/directory/")
    client_for(app, world.sue).post_form(
        f"/directory/services/{world.north_shelter.id}/capacity",
        {"free_places": "9", "version": str(world.north_shelter.version)},
    )
    (opened,) = entries(db, "directory.open")
    assert (opened.user_id, opened.outcome) == (world.analyst.id, "denied")
    (capacity,) = entries(db, "directory.capacity_denied")
    assert (capacity.user_id, capacity.object_id) == (world.sue.id, str(world.north_shelter.id))
    assert reload(db, world.north_shelter.id).free_places == 2


POLICY = {
    # persona -> (view_directory, manage North's services, manage South's, report North's
    # shelter places, report South's)
    "alice": (True, False, False, False, False),
    "bob": (True, True, False, True, False),
    "charlie": (True, False, False, False, False),
    "sue": (True, False, True, False, True),
    "coordinator": (True, False, False, False, False),
    "admin": (True, True, True, False, False),
    "analyst": (False, False, False, False, False),
    "auditor": (False, False, False, False, False),
}


@pytest.mark.parametrize(("persona", "expected"), list(POLICY.items()))
def test_policy_through_may_and_can(world, persona, expected):
    user = getattr(world, persona)
    got = (
        policy.may(user, "view_directory"),
        policy.may(user, "manage_agency_services", world.north),
        policy.may(user, "manage_agency_services", world.south),
        policy.may(user, "update_capacity", world.north_shelter),
        policy.may(user, "update_capacity", world.south_shelter),
    )
    assert got == expected
    assert policy.can_view_directory(user) == expected[0]
    assert policy.can_manage_agency_services(user, world.north) == expected[1]
    assert policy.can_update_capacity(user, world.north_shelter) == expected[3]


def test_nobody_signed_out_or_deactivated_keeps_the_directory(db, world):
    anonymous = AnonymousUserMixin()
    assert not policy.can_view_directory(anonymous)
    assert not policy.can_manage_agency_services(anonymous, world.north)
    world.bob.active = False
    assert not policy.can_view_directory(world.bob)
    assert not policy.can_update_capacity(world.bob, world.north_shelter)
    # The coordinator role counts only in the national coordinator agency.
    stray = make_user(world.south, Role.COORDINATOR)
    assert not policy.can_view_directory(stray)


def test_navigation_offers_the_directory_to_those_who_refer(app, world):
    for persona, shown in [("alice", True), ("admin", True), ("analyst", False)]:
        page = client_for(app, getattr(world, persona)).get("/").get_data(as_text=True)
        assert ("/directory/" in page) == shown, persona


# find_providers ---------------------------------------------------------------------------


def providers(**filters):
    return [(service.agency.name, service.service_type) for service in find_providers(**filters)]


def test_it_finds_active_services_of_active_agencies_by_type(world):
    assert providers(service_type="shelter") == [
        ("NGO North", "shelter"),
        ("Shelter South", "shelter"),
    ]
    assert providers(service_type="psychological") == []  # deactivated
    world.south.active = False
    assert providers(service_type="shelter") == [("NGO North", "shelter")]


def test_it_filters_by_region_with_nationwide_services_everywhere(world):
    assert providers(service_type="shelter", region="baku") == [
        ("NGO North", "shelter"),
        ("Shelter South", "shelter"),
    ]
    assert providers(service_type="shelter", region="nakhchivan") == [("Shelter South", "shelter")]


def test_it_filters_by_language_and_eligibility(world):
    assert providers(service_type="shelter", language="en") == [("Shelter South", "shelter")]
    assert providers(service_type="shelter", accepts="men") == [("Shelter South", "shelter")]
    assert providers(service_type="legal_aid", accepts="children") == []
    assert providers(service_type="legal_aid", accepts="women") == [("NGO North", "legal_aid")]


def test_with_capacity_keeps_free_and_uncounted_services(db, world):
    # South's shelter is full; North's has 2 places; legal aid is not counted in places.
    assert providers(service_type="shelter", with_capacity=True) == [("NGO North", "shelter")]
    assert providers(service_type="legal_aid", with_capacity=True) == [("NGO North", "legal_aid")]
    unreported = add(world.nrm, "shelter", total_places=5)
    assert unreported.capacity_state == CapacityState.UNREPORTED
    assert ("NRM Office", "shelter") not in providers(service_type="shelter", with_capacity=True)


def test_it_leaves_out_the_referring_agency(world):
    assert providers(service_type="shelter", exclude_agency_id=world.north.id) == [
        ("Shelter South", "shelter")
    ]


def test_it_sorts_free_places_first_then_by_name(db, world):
    aaa = make_agency(AgencyType.SHELTER, name="Aaa Shelter")
    full = add(aaa, "shelter", total_places=3)
    services.update_capacity(full, free_places=0)
    zzz = make_agency(AgencyType.SHELTER, name="Zzz Shelter")
    add(zzz, "shelter", total_places=3)  # unreported
    services.update_capacity(world.south_shelter, free_places=7)
    assert [state for state in (s.capacity_state for s in find_providers("shelter"))] == [
        CapacityState.FREE,
        CapacityState.FREE,
        CapacityState.UNREPORTED,
        CapacityState.FULL,
    ]
    assert providers(service_type="shelter") == [
        ("NGO North", "shelter"),
        ("Shelter South", "shelter"),
        ("Zzz Shelter", "shelter"),
        ("Aaa Shelter", "shelter"),
    ]


def test_the_coordinator_is_found_for_the_status_decision(world):
    assert providers(service_type="status_decision") == [("NRM Office", "status_decision")]


def test_an_unknown_service_type_or_group_raises(world):
    with pytest.raises(ValueError):
        find_providers("spa")
    with pytest.raises(ValueError):
        find_providers("shelter", accepts="pets")


# The directory page ------------------------------------------------------------------------


def results(page: str) -> str:
    """Return the results table of a directory page (empty when nothing matched)."""
    return page.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in page else ""


def test_the_page_filters_and_shows_the_capacity_age(app, db, world):
    with time_machine.travel(utcnow() - timedelta(days=3)):
        services.update_capacity(reload(db, world.north_shelter.id), free_places=2)
        db.session.commit()
    client = client_for(app, world.charlie)
    rows = results(
        client.get("/directory/?service_type=shelter&region=baku").get_data(as_text=True)
    )
    assert "NGO North" in rows and "Shelter South" in rows
    assert "2 of 10 free" in rows
    assert "updated 3 days ago" in rows
    assert "Legal aid" not in rows
    rows = results(
        client.get("/directory/?service_type=shelter&with_capacity=y").get_data(as_text=True)
    )
    assert "NGO North" in rows and "Shelter South" not in rows
    rows = results(client.get("/directory/?language=en").get_data(as_text=True))
    assert "Shelter South" in rows and "Mon-Fri 9-18" not in rows
    assert (
        results(
            client.get("/directory/?region=nakhchivan&accepts=men&service_type=legal_aid").get_data(
                as_text=True
            )
        )
        == ""
    )


def test_an_unknown_filter_value_is_ignored(app, world):
    response = client_for(app, world.alice).get("/directory/?service_type=spa&accepts=pets")
    assert response.status_code == 200
    assert "NGO North" in response.get_data(as_text=True)


def test_stale_capacity_is_flagged(app, db, world):
    with time_machine.travel(utcnow() - timedelta(days=10)):
        services.update_capacity(reload(db, world.north_shelter.id), free_places=2)
        db.session.commit()
    assert reload(db, world.north_shelter.id).capacity_is_stale
    rows = results(client_for(app, world.alice).get("/directory/").get_data(as_text=True))
    assert 'badge badge--warn" title=' in rows
    assert "updated 1 week ago" in rows


def test_the_agency_page_hides_inactive_services_from_other_agencies(app, world):
    url = f"/directory/agencies/{world.north.id}"
    bob_page = client_for(app, world.bob).get(url).get_data(as_text=True)
    sue_page = client_for(app, world.sue).get(url).get_data(as_text=True)
    assert "Psychological support" in bob_page
    assert "Psychological support" not in sue_page
    assert f"/directory/services/{world.north_shelter.id}/capacity" in bob_page
    assert f"/directory/services/{world.north_shelter.id}/capacity" not in sue_page


# Keeping services ----------------------------------------------------------------------------


def test_a_supervisor_adds_a_service_through_the_form(app, db, world):
    client = client_for(app, world.bob)
    response = client.post_form(
        f"/directory/agencies/{world.north.id}/services/new", service_form()
    )
    assert response.status_code == 302
    service = db.session.scalars(
        select(AgencyService).where(
            AgencyService.agency_id == world.north.id,
            AgencyService.service_type == "medical",
        )
    ).one()
    assert service.regions == ["absheron_khizi", "baku"]
    assert service.languages == ["az", "ru"]
    assert (service.accepts_women, service.accepts_men, service.accepts_children) == (
        True,
        False,
        True,
    )
    assert service.notes == NOTES
    (entry,) = [e for e in entries(db, "directory.service_created") if e.user_id == world.bob.id]
    assert entry.object_id == str(service.id)
    assert "notes" in entry.field_name_list
    assert "Talysh" not in entry.field_names


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"service_type": "status_decision"}, "Only the national coordinator"),
        ({"service_type": "legal_aid"}, "already lists this service"),
        ({"regions": []}, "Choose the regions served"),
        ({"languages": []}, "Choose at least one language"),
        ({"accepts": []}, "Choose whom the service accepts"),
        ({"regions": ["atlantis"]}, "Please choose from the list"),
        ({"total_places": "-1"}, "Enter a number from 0 to"),
    ],
)
def test_a_refused_service_is_shown_again_as_typed(app, db, world, overrides, field):
    before = db.session.scalar(select(func.count()).select_from(AgencyService))
    client = client_for(app, world.bob)
    response = client.post_form(
        f"/directory/agencies/{world.north.id}/services/new", service_form(**overrides)
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field in page
    assert "Daily 10-16" in page
    assert db.session.scalar(select(func.count()).select_from(AgencyService)) == before


def test_the_admin_keeps_any_agency_services(app, db, world):
    client = client_for(app, world.admin)
    data = service_form(
        service_type="shelter",
        regions=[],
        nationwide="y",
        languages=["az", "ru", "en"],
        accepts=["women", "men", "children", "families"],
        notes="",
        total_places="30",
        version=str(world.south_shelter.version),
    )
    response = client.post_form(f"/directory/services/{world.south_shelter.id}/edit", data)
    assert response.status_code == 302
    service = reload(db, world.south_shelter.id)
    assert service.total_places == 30
    assert service.free_places == 0  # the supervisors' figure is theirs to change
    (entry,) = entries(db, "directory.service_updated")
    assert entry.user_id == world.admin.id
    assert entry.field_name_list == ["contact_hours", "total_places"]


def test_a_total_below_the_free_places_is_refused(db, world):
    with pytest.raises(services.DirectoryError) as error:
        services.update_service(
            world.north_shelter,
            **{**form_values(world.north_shelter), "total_places": 1},
        )
    assert error.value.field == "total_places"


def test_no_longer_counting_places_drops_the_figure(db, world):
    services.update_service(
        world.north_shelter, **{**form_values(world.north_shelter), "total_places": None}
    )
    db.session.commit()
    service = reload(db, world.north_shelter.id)
    assert (service.free_places, service.capacity_updated_at) == (None, None)
    assert service.capacity_state == CapacityState.UNCOUNTED


def form_values(service) -> dict:
    return {
        "service_type": service.service_type,
        "nationwide": service.nationwide,
        "regions": service.regions,
        "languages": service.languages,
        "accepts": [group.value for group in service.accepts],
        "contact_hours": service.contact_hours,
        "notes": service.notes,
        "total_places": service.total_places,
    }


def test_a_stale_service_edit_is_a_conflict(app, db, world):
    old_version = world.north_legal.version
    services.update_service(
        world.north_legal, **{**form_values(world.north_legal), "contact_hours": "Closed"}
    )
    db.session.commit()
    data = service_form(service_type="legal_aid", version=str(old_version))
    response = client_for(app, world.bob).post_form(
        f"/directory/services/{world.north_legal.id}/edit", data
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else saved this service" in page
    assert "Daily 10-16" in page
    assert reload(db, world.north_legal.id).contact_hours == "Closed"


def test_deactivating_takes_a_service_out_and_back(app, db, world):
    client = client_for(app, world.bob)
    client.post_form(f"/directory/services/{world.north_legal.id}/deactivate")
    assert providers(service_type="legal_aid") == []
    # Repeating does nothing more.
    client.post_form(f"/directory/services/{world.north_legal.id}/deactivate")
    assert len(entries(db, "directory.service_deactivated")) == 2  # the fixture's + this one
    client.post_form(f"/directory/services/{world.north_legal.id}/reactivate")
    assert providers(service_type="legal_aid") == [("NGO North", "legal_aid")]
    (entry,) = entries(db, "directory.service_reactivated")
    assert entry.field_name_list == ["active"]


# Capacity --------------------------------------------------------------------------------------


def test_a_supervisor_reports_free_places(app, db, world):
    version = world.north_shelter.version
    client = client_for(app, world.bob)
    form_page = client.get(f"/directory/services/{world.north_shelter.id}/capacity")
    assert 'name="version"' in form_page.get_data(as_text=True)
    response = client.post_form(
        f"/directory/services/{world.north_shelter.id}/capacity",
        {"free_places": "6", "version": str(version)},
    )
    assert response.status_code == 302
    service = reload(db, world.north_shelter.id)
    assert (service.free_places, service.capacity_updated_by_user_id) == (6, world.bob.id)
    assert service.version == version + 1
    (entry,) = [e for e in entries(db, "directory.capacity_updated") if e.user_id == world.bob.id]
    assert entry.field_name_list == [
        "capacity_updated_at",
        "capacity_updated_by_user_id",
        "free_places",
    ]
    assert entry.object_id == str(world.north_shelter.id)


def test_reporting_the_same_figure_dates_it_anew(db, world):
    with time_machine.travel(utcnow() + timedelta(days=2)):
        services.update_capacity(world.north_shelter, free_places=2)
        db.session.commit()
    assert reload(db, world.north_shelter.id).capacity_updated_at > utcnow() + timedelta(days=1)


def test_a_stale_capacity_report_is_a_conflict_that_keeps_the_input(app, db, world):
    stale_version = world.north_shelter.version
    # A colleague reports first.
    services.update_capacity(world.north_shelter, free_places=0)
    db.session.commit()
    response = client_for(app, world.bob).post_form(
        f"/directory/services/{world.north_shelter.id}/capacity",
        {"free_places": "7", "version": str(stale_version)},
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else reported the free places" in page
    assert 'value="7"' in page
    service = reload(db, world.north_shelter.id)
    assert service.free_places == 0
    assert f'name="version" type="hidden" value="{service.version}"' in page


def test_a_figure_above_the_total_is_refused(app, db, world):
    response = client_for(app, world.bob).post_form(
        f"/directory/services/{world.north_shelter.id}/capacity",
        {"free_places": "11", "version": str(world.north_shelter.version)},
    )
    assert response.status_code == 400
    assert "Enter a number from 0 to 10" in response.get_data(as_text=True)
    assert reload(db, world.north_shelter.id).free_places == 2


def test_a_service_without_places_has_no_figure(db, world):
    with pytest.raises(services.DirectoryError):
        services.update_capacity(world.north_legal, free_places=1)


def test_the_database_refuses_free_places_above_the_total(db, world):
    from sqlalchemy.exc import IntegrityError

    world.north_shelter.free_places = 11
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


# Demo data -------------------------------------------------------------------------------------


def test_demo_agencies_offer_the_services_of_their_type(db):
    agencies = _ensure_agencies(DemoSummary())
    db.session.commit()
    offered = {
        (service.agency.name, service.service_type)
        for service in db.session.scalars(select(AgencyService))
    }
    by_key = {demo.key: demo.name for demo in DEMO_AGENCIES}
    for key, service_type in [
        ("nrm", "status_decision"),
        ("shelter", "shelter"),
        ("health", "medical"),
        ("health", "psychological"),
        ("legal", "legal_aid"),
        ("child", "child_protection"),
        ("police", "law_enforcement_interview"),
        ("intl", "voluntary_return"),
        ("intl", "reintegration"),
    ]:
        assert (by_key[key], service_type) in offered
    shelter = find_providers("shelter", with_capacity=True)
    assert [service.agency.name for service in shelter] == [by_key["shelter"]]
    assert shelter[0].free_places > 0 and shelter[0].capacity_updated_at is not None
    assert search_services(exclude_agency_id=agencies["nrm"].id)
    before = len(offered)
    _ensure_agencies(DemoSummary())
    assert db.session.scalar(select(func.count()).select_from(AgencyService)) == before
