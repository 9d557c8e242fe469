"""The new-referral page's directory step: find providers by service, region, language,
eligibility and free places, pick one (or another agency from the list), without JavaScript."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from casework.reference import seed_reference_lists
from core.models import AgencyType
from referrals import directory_services
from referrals.models import Referral
from tests.factories import client_for, make_agency
from tests.referrals.builders import REASON, build_world

EVERYONE = ["women", "men", "children", "families"]


def listed(agency, service_type, **fields):
    values = {"nationwide": True, "languages": ["az", "ru"], "accepts": EVERYONE, **fields}
    return directory_services.create_service(agency, service_type=service_type, **values)


@pytest.fixture
def world(db):
    """build_world's personas; Clinic East (Baku, az/ru, everyone) and Clinic West (Ganja,
    English, women) offer medical care, and so does NGO North itself; Shelter South is
    full, Shelter Haven has places; the national coordinator takes the status decision."""
    seed_reference_lists()
    world = build_world(db)
    world["west"] = make_agency(AgencyType.HEALTH, name="Clinic West")
    world["haven"] = make_agency(AgencyType.SHELTER, name="Shelter Haven")
    world["closed"] = make_agency(AgencyType.HEALTH, name="Clinic Closed")
    listed(
        world["east"],
        "medical",
        nationwide=False,
        regions=["baku"],
        contact_hours="Daily 08:00-20:00",
    )
    listed(
        world["west"],
        "medical",
        nationwide=False,
        regions=["ganja_dashkasan"],
        languages=["en"],
        accepts=["women"],
    )
    listed(world["north"], "medical")
    full = listed(world["south"], "shelter", total_places=10)
    directory_services.update_capacity(full, free_places=0)
    free = listed(world["haven"], "shelter", total_places=24)
    directory_services.update_capacity(free, free_places=5)
    listed(world["closed"], "medical")
    world["closed"].active = False
    listed(world["nrm"], "status_decision")
    db.session.commit()
    return world


def page_of(app, world, query: str = "") -> str:
    response = client_for(app, world["alice"]).get(f"/referrals/new/{world['case_id']}{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def radios(page: str) -> set[str]:
    """Return the values of the provider radios on the page."""
    return set(
        re.findall(r'type="radio" name="provider" id="provider-[^"]+" value="([^"]+)"', page)
    )


def ids(*agencies) -> set[str]:
    return {str(agency.id) for agency in agencies}


def test_it_lists_the_providers_of_the_service_with_their_details(app, world):
    page = page_of(app, world, "?service_type=medical")
    # Never the own agency, nor an inactive one; always the way out to another agency.
    assert radios(page) == ids(world["east"], world["west"]) | {"other"}
    assert "Daily 08:00-20:00" in page
    assert "Baku" in page and "English" in page
    assert 'type="hidden" name="service_type" value="medical"' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("&region=baku", "east"),
        ("&region=ganja_dashkasan", "west"),
        ("&language=en", "west"),
        ("&language=ru", "east"),
        ("&accepts=children", "east"),
    ],
)
def test_it_filters_providers(app, world, query, expected):
    page = page_of(app, world, f"?service_type=medical{query}")
    assert radios(page) == ids(world[expected]) | {"other"}


def test_free_capacity_only_leaves_out_full_shelters_and_shows_places_and_age(app, world):
    page = page_of(app, world, "?service_type=shelter")
    assert radios(page) == ids(world["south"], world["haven"]) | {"other"}
    assert "5 of 24 free" in page and "0 of 10 free" in page
    assert "updated" in page
    page = page_of(app, world, "?service_type=shelter&with_capacity=y")
    assert radios(page) == ids(world["haven"]) | {"other"}


def test_no_match_says_so_and_keeps_the_agency_list(app, world):
    page = page_of(app, world, "?service_type=medical&language=ar")
    assert radios(page) == {"other"}
    assert "No provider in the directory matches these filters." in page
    assert f'<option value="{world["south"].id}">Shelter South</option>' in page


def form_data(**fields) -> dict:
    return {
        "service_type": "medical",
        "urgency": "urgent",
        "reason": REASON,
        "sections": ["health"],
        "consent_basis": "consent",
        **fields,
    }


def referrals(db) -> list[Referral]:
    db.session.expire_all()
    return db.session.scalars(select(Referral)).all()


def test_choosing_a_provider_fills_the_receiving_agency(app, db, world):
    url = f"/referrals/new/{world['case_id']}?service_type=medical&region=ganja_dashkasan"
    response = client_for(app, world["alice"]).post_form(
        url, form_data(provider=str(world["west"].id))
    )
    assert response.status_code == 302
    [referral] = referrals(db)
    assert referral.receiving_agency_id == world["west"].id
    assert referral.service_type == "medical"


def test_a_provider_that_does_not_offer_the_service_is_refused(app, db, world):
    url = f"/referrals/new/{world['case_id']}?service_type=medical"
    client = client_for(app, world["alice"])
    for agency in ("haven", "north", "closed"):
        response = client.post_form(url, form_data(provider=str(world[agency].id)))
        assert response.status_code == 400
    response = client.post_form(
        url, form_data(service_type="shelter", provider=str(world["east"].id))
    )
    assert response.status_code == 400
    assert "does not offer the service chosen" in response.get_data(as_text=True)
    assert referrals(db) == []


def test_another_agency_from_the_list_is_still_possible(app, db, world):
    url = f"/referrals/new/{world['case_id']}?service_type=medical"
    response = client_for(app, world["alice"]).post_form(
        url, form_data(provider="other", receiving_agency=str(world["south"].id))
    )
    assert response.status_code == 302
    assert referrals(db)[0].receiving_agency_id == world["south"].id


@pytest.mark.parametrize("agency", ["north", "closed"])
def test_the_list_refuses_the_own_and_inactive_agencies(app, db, world, agency):
    response = client_for(app, world["alice"]).post_form(
        f"/referrals/new/{world['case_id']}",
        form_data(provider="other", receiving_agency=str(world[agency].id)),
    )
    assert response.status_code == 400
    assert "Choose an active agency other than your own." in response.get_data(as_text=True)
    assert referrals(db) == []


def test_without_an_agency_the_form_asks_for_one(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/referrals/new/{world['case_id']}?service_type=medical", form_data(provider="other")
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Choose the agency to refer to." in page
    assert REASON in page  # what was typed stays
    assert radios(page) == ids(world["east"], world["west"]) | {"other"}


def test_the_national_coordinator_is_offered_for_the_status_decision_only(app, db, world):
    nrm = f'value="{world["nrm"].id}"'
    assert nrm not in page_of(app, world)
    assert nrm not in page_of(app, world, "?service_type=medical")
    page = page_of(app, world, "?service_type=status_decision")
    assert radios(page) == ids(world["nrm"]) | {"other"}
    # The list then offers the coordinator only.
    assert f'<option value="{world["east"].id}">' not in page

    client = client_for(app, world["alice"])
    url = f"/referrals/new/{world['case_id']}"
    response = client.post_form(url, form_data(receiving_agency=str(world["nrm"].id)))
    assert response.status_code == 400
    assert "for the status decision only" in response.get_data(as_text=True)
    decision = form_data(service_type="status_decision", receiving_agency=str(world["east"].id))
    response = client.post_form(url, decision)
    assert response.status_code == 400
    assert "referred to the national coordinator" in response.get_data(as_text=True)
    assert referrals(db) == []
    decision = form_data(service_type="status_decision", provider=str(world["nrm"].id))
    assert client.post_form(f"{url}?service_type=status_decision", decision).status_code == 302
    assert referrals(db)[0].receiving_agency_id == world["nrm"].id


def test_rerefer_starts_the_directory_step_from_the_declined_service(app, db, world):
    from referrals import services
    from tests.referrals.builders import sent

    referral = sent(world)
    services.decline_referral(world["hana"], referral, "No doctor this week.")
    db.session.commit()
    client = client_for(app, world["alice"])
    page = client.get(f"/referrals/{referral.id}/rerefer").get_data(as_text=True)
    # The agency that declined is not offered again.
    assert radios(page) == ids(world["west"]) | {"other"}
    response = client.post_form(
        f"/referrals/{referral.id}/rerefer", form_data(provider=str(world["west"].id))
    )
    assert response.status_code == 302
    assert {r.receiving_agency_id for r in referrals(db)} == {world["east"].id, world["west"].id}
