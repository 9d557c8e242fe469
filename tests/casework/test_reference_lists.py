"""Reference lists: seeding, countries from CLDR, sorting, and the admin pages."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from casework.models import Case
from casework.reference import (
    NOT_COUNTRIES,
    ReferenceItem,
    collation_key,
    seed_reference_lists,
)
from casework.services import open_case
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user


@pytest.fixture
def reference_app(app):
    return app


@pytest.fixture
def world(db):
    seed_reference_lists()
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER, language="az"),
        "bob": make_user(north, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    db.session.commit()
    return people



def item(db, list_name: str, code: str) -> ReferenceItem:
    db.session.expire_all()
    return db.session.scalars(
        select(ReferenceItem).where(
            ReferenceItem.list_name == list_name, ReferenceItem.code == code
        )
    ).one()


# Seeding ---------------------------------------------------------------------------------


def test_seeding_is_idempotent_and_keeps_admin_edits(db):
    added = seed_reference_lists()
    assert added > 300
    forced_labour = db.session.scalars(
        select(ReferenceItem).where(ReferenceItem.code == "ForcedLabour")
    ).one()
    forced_labour.label_az = "Edited by the admin"
    db.session.commit()

    assert seed_reference_lists() == 0
    assert db.session.scalar(select(func.count()).select_from(ReferenceItem)) == added
    assert item(db, "exploitation_form", "ForcedLabour").label_az == "Edited by the admin"


def test_every_list_is_seeded_with_three_languages(db):
    seed_reference_lists()
    rows = db.session.scalars(select(ReferenceItem)).all()
    lists = {row.list_name for row in rows}
    assert lists == {
        "sex",
        "country",
        "region",
        "exploitation_form",
        "industry",
        "means_of_control",
        "recruitment_type",
        "closure_reason",
        "intake_channel",
        "refusal_reason",
    }
    assert all(row.label_en and row.label_az and row.label_ru for row in rows)
    regions = {row.code for row in rows if row.list_name == "region"}
    assert {"baku", "nakhchivan", "karabakh", "east_zangezur"} <= regions
    assert len(regions - {"abroad"}) == 14


def test_countries_are_countries_with_azerbaijani_and_russian_names(db):
    seed_reference_lists()
    countries = {
        row.code: row
        for row in db.session.scalars(
            select(ReferenceItem).where(ReferenceItem.list_name == "country")
        )
    }
    assert 245 <= len(countries) <= 252
    assert all(len(code) == 2 and code.isalpha() for code in countries)
    for not_a_country in ("EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "001", "150", "419"):
        assert not_a_country not in countries
    assert not NOT_COUNTRIES & set(countries)
    assert countries["AZ"].label_az == "Azərbaycan"
    assert countries["AZ"].label_ru == "Азербайджан"
    assert countries["AZ"].label_en == "Azerbaijan"
    assert countries["RU"].label_az == "Rusiya"
    assert countries["TR"].label_ru == "Турция"
    assert "XK" in countries  # kept on purpose, see casework.reference


def test_azerbaijani_sort_order_puts_each_letter_in_its_place():
    words = ["Zaqatala", "Şəki", "Sumqayıt", "Əli", "Çin", "Cəbrayıl", "Ağdam", "Xızı", "Həsən"]
    assert sorted(words, key=lambda word: collation_key(word, "az")) == [
        "Ağdam",
        "Cəbrayıl",
        "Çin",
        "Əli",
        "Həsən",
        "Xızı",
        "Sumqayıt",
        "Şəki",
        "Zaqatala",
    ]
    # Dotless ı (capital I) comes before dotted i (capital İ).
    assert sorted(["İraq", "Iğdır"], key=lambda word: collation_key(word, "az")) == [
        "Iğdır",
        "İraq",
    ]


def test_russian_sort_order_puts_yo_after_ye():
    words = ["Жук", "Ёлка", "Ежевика", "Австрия"]
    assert sorted(words, key=lambda word: collation_key(word, "ru")) == [
        "Австрия",
        "Ежевика",
        "Ёлка",
        "Жук",
    ]


# Admin pages -------------------------------------------------------------------------------

PAGES = ["/admin/lists/", "/admin/lists/sex", "/admin/lists/country/new"]


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("admin", 200),
        ("alice", 404),
        ("bob", 404),
        ("analyst", 404),
        ("auditor", 404),
        ("coordinator", 404),
    ],
)
def test_only_admins_open_the_list_pages(reference_app, world, url, persona, expected):
    response = client_for(reference_app, world[persona]).get(url)
    assert response.status_code == expected


def test_anonymous_visitors_are_sent_to_sign_in(reference_app, world):
    response = reference_app.test_client().get("/admin/lists/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_an_unknown_list_or_item_is_not_found(reference_app, db, world):
    client = client_for(reference_app, world["admin"])
    assert client.get("/admin/lists/nothing").status_code == 404
    region = item(db, "region", "baku")
    assert client.get(f"/admin/lists/sex/{region.id}/edit").status_code == 404


def test_non_admins_cannot_change_an_item(reference_app, db, world):
    forced_labour = item(db, "exploitation_form", "ForcedLabour")
    client = client_for(reference_app, world["bob"])
    response = client.post_form(f"/admin/lists/exploitation_form/{forced_labour.id}/deactivate", {})
    assert response.status_code == 404
    assert item(db, "exploitation_form", "ForcedLabour").active


def test_an_edited_label_shows_in_the_form_in_azerbaijani(app, reference_app, db, world):
    forced_labour = item(db, "exploitation_form", "ForcedLabour")
    admin = client_for(reference_app, world["admin"])
    url = f"/admin/lists/exploitation_form/{forced_labour.id}/edit"
    assert "Məcburi əmək" in admin.get(url).get_data(as_text=True)
    response = admin.post_form(
        url,
        {
            "label_en": "Forced labour",
            "label_az": "Məcburi əmək (redaktə)",
            "label_ru": "Принудительный труд",
            "sort_order": "2",
        },
    )
    assert response.status_code == 302
    assert item(db, "exploitation_form", "ForcedLabour").label_az == "Məcburi əmək (redaktə)"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "reference.item_updated")
    ).one()
    assert entry.user_id == world["admin"].id
    assert entry.field_name_list == ["label_az"]

    # Alice works in Azerbaijani.
    page = client_for(app, world["alice"]).get("/cases/new").get_data(as_text=True)
    assert "Məcburi əmək (redaktə)" in page


def test_an_inactive_item_is_not_offered_but_still_shown_on_old_cases(
    app, reference_app, db, world
):
    case = open_case(
        world["bob"],
        {"given_name": "Rəna", "exploitation_form": ["ForcedBegging"], "citizenship": "GE"},
    )
    db.session.commit()
    begging = item(db, "exploitation_form", "ForcedBegging")
    admin = client_for(reference_app, world["admin"])
    response = admin.post_form(f"/admin/lists/exploitation_form/{begging.id}/deactivate", {})
    assert response.status_code == 302
    assert not item(db, "exploitation_form", "ForcedBegging").active
    assert db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "reference.item_deactivated")
    )

    bob = client_for(app, world["bob"])
    new_form = bob.get("/cases/new").get_data(as_text=True)
    assert 'value="ForcedBegging"' not in new_form
    assert 'value="ForcedLabour"' in new_form
    detail = bob.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Forced begging" in detail
    # The case's own edit form keeps the retired value, marked, so a save does not drop it.
    edit_form = bob.get(f"/cases/{case.id}/edit").get_data(as_text=True)
    assert 'value="ForcedBegging"' in edit_form
    assert "Forced begging (no longer in use)" in edit_form

    # Posting it on a new case is refused.
    refused = bob.post_form(
        "/cases/new",
        {"given_name": "Yeni", "exploitation_form": "ForcedBegging", "action": "draft"},
    )
    assert refused.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1

    admin.post_form(f"/admin/lists/exploitation_form/{begging.id}/reactivate", {})
    assert item(db, "exploitation_form", "ForcedBegging").active


def test_an_admin_adds_an_item_and_it_is_offered(app, reference_app, db, world):
    admin = client_for(reference_app, world["admin"])
    data = {
        "code": "online_gaming",
        "label_en": "Through online games",
        "label_az": "Onlayn oyunlar vasitəsilə",
        "label_ru": "Через онлайн-игры",
        "sort_order": "50",
    }
    response = admin.post_form("/admin/lists/recruitment_type/new", data)
    assert response.status_code == 302
    again = admin.post_form("/admin/lists/recruitment_type/new", data)
    assert again.status_code == 400
    assert "already has an item with this code" in again.get_data(as_text=True)
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "reference.item_added"))
    page = client_for(app, world["bob"]).get("/cases/new").get_data(as_text=True)
    assert "Through online games" in page
