"""The identification-indicators checklist's admin page: add, relabel, retire, audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from casework.casefile import IndicatorAnswer, IndicatorDefinition
from casework.casefile_services import seed_indicator_definitions
from casework.services import open_case
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

ROUTES = {
    "list": ("get", "/admin/lists/indicators"),
    "new": ("get", "/admin/lists/indicators/new"),
    "edit": ("get", "/admin/lists/indicators/{id}/edit"),
    "deactivate": ("post", "/admin/lists/indicators/{id}/deactivate"),
}


@pytest.fixture
def world(db):
    seed_indicator_definitions()
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    db.session.commit()
    return people


def indicator(db, code: str) -> IndicatorDefinition:
    db.session.expire_all()
    return db.session.scalars(
        select(IndicatorDefinition).where(IndicatorDefinition.code == code)
    ).one()


def actions(db) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


@pytest.mark.parametrize("persona", ["alice", "bob", "analyst", "auditor", "coordinator", "admin"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_only_admins_reach_the_indicator_pages(app, db, world, persona, route):
    method, path = ROUTES[route]
    target = indicator(db, "debt_bondage")
    client = client_for(app, world[persona])
    url = path.format(id=target.id)
    response = client.get(url) if method == "get" else client.post_form(url)
    expected = (200 if method == "get" else 302) if persona == "admin" else 404
    assert response.status_code == expected
    assert indicator(db, "debt_bondage").active is not (persona == "admin" and method == "post")


def test_the_reference_index_links_to_the_checklist(app, world):
    page = client_for(app, world["admin"]).get("/admin/lists/").get_data(as_text=True)
    assert "/admin/lists/indicators" in page


def test_it_adds_an_indicator_audited_and_asked_on_cases(app, db, world):
    client = client_for(app, world["admin"])
    response = client.post_form(
        "/admin/lists/indicators/new",
        {
            "code": "no_days_off",
            "category": "labour",
            "label_en": "No days off",
            "label_az": "İstirahət günü yoxdur",
            "label_ru": "Нет выходных",
            "position": "50",
        },
    )
    assert response.status_code == 302
    added = indicator(db, "no_days_off")
    assert (added.category, added.label_az, added.active) == (
        "labour",
        "İstirahət günü yoxdur",
        True,
    )
    assert "indicator.added" in actions(db)
    case = open_case(world["alice"], {"given_name": "Aysel"})
    db.session.commit()
    page = client_for(app, world["alice"]).get(f"/cases/{case.id}/indicators")
    assert "No days off" in page.get_data(as_text=True)


def test_a_taken_code_is_refused_keeping_the_input(app, db, world):
    response = client_for(app, world["admin"]).post_form(
        "/admin/lists/indicators/new",
        {"code": "debt_bondage", "category": "general", "label_en": "Typed label"},
    )
    assert response.status_code == 400
    assert "Typed label" in response.get_data(as_text=True)


def test_it_edits_labels_and_audits_field_names(app, db, world):
    target = indicator(db, "debt_bondage")
    response = client_for(app, world["admin"]).post_form(
        f"/admin/lists/indicators/{target.id}/edit",
        {
            "category": "general",
            "label_en": "Debt bondage",
            "label_az": target.label_az,
            "label_ru": "Долговая кабала",
            "position": str(target.position),
        },
    )
    assert response.status_code == 302
    changed = indicator(db, "debt_bondage")
    assert (changed.label_en, changed.label_ru) == ("Debt bondage", "Долговая кабала")
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "indicator.updated")
    ).one()
    assert sorted(json.loads(entry.field_names)) == ["label_en", "label_ru"]


def test_a_retired_indicator_stays_on_cases_that_answered_it(app, db, world):
    case = open_case(world["alice"], {"given_name": "Aysel"})
    other = open_case(world["alice"], {"given_name": "Nigar"})
    db.session.add(IndicatorAnswer(case=case, indicator_code="debt_bondage", answer="yes"))
    db.session.commit()
    target = indicator(db, "debt_bondage")
    admin = client_for(app, world["admin"])
    assert admin.post_form(f"/admin/lists/indicators/{target.id}/deactivate").status_code == 302
    assert indicator(db, "debt_bondage").active is False
    assert "indicator.deactivated" in actions(db)
    alice = client_for(app, world["alice"])
    label = "Debt bondage: owes a debt that cannot be paid off"
    assert label in alice.get(f"/cases/{case.id}/indicators").get_data(as_text=True)
    assert label not in alice.get(f"/cases/{other.id}/indicators").get_data(as_text=True)
    # Never deleted: the answer and the definition both remain.
    assert db.session.scalars(select(IndicatorAnswer)).one().indicator_code == "debt_bondage"
