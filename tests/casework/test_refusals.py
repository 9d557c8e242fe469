"""Anonymous refusals of the NRM: no personal data in any column, the coded fields the
statistics need, who records and lists them, and the real form."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from sqlalchemy import Boolean, Date, Integer, String, select, text

from casework.models import local_today
from casework.reference import is_valid_code, seed_reference_lists
from casework.refusals import NrmRefusal, NrmRefusalCode, record_refusal
from core.audit import AuditEntry
from core.crypto import encrypted_fields
from core.db import UTCDateTime
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

TABLES = ("nrm_refusals", "nrm_refusal_codes")
# Every column, by what it may hold: nothing else is allowed in a refusal.
ID_COLUMNS = {"id", "agency_id", "recorded_by_user_id", "refusal_id"}
CODE_COLUMNS = {
    "sex": "sex",
    "citizenship": "country",
    "identification_region": "region",
    "intake_channel": "intake_channel",
    "refusal_reason": "refusal_reason",
}
OTHER_CODE_COLUMNS = {"age_band", "identifying_agency_type", "list_name", "code"}
BOOLEAN_COLUMNS = {"is_minor", "services_offered"}
MONTH_COLUMNS = {"month"}
TIMESTAMP_COLUMNS = {"created_at"}
FULL = {
    "month": date(2026, 3, 17),
    "sex": "Feminine",
    "age_band": "18-24",
    "citizenship": "AZ",
    "identification_region": "baku",
    "intake_channel": "hotline",
    "refusal_reason": "fear_of_traffickers",
    "services_offered": True,
    "exploitation_form": ["SexualExploitation", "ForcedLabour"],
}


@pytest.fixture
def world(db):
    seed_reference_lists()
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    consulate = make_agency(AgencyType.CONSULAR, name="Consulate Istanbul")
    # An agency that keeps no case files identifies people too.
    consulate.keeps_case_files = False
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "consul": make_user(consulate, Role.CASEWORKER),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
    }
    db.session.commit()
    return {"north": north, "south": south, "consulate": consulate, **people}


# No personal data in any column -----------------------------------------------------------


def test_every_column_of_every_refusal_table_is_a_code_boolean_month_id_or_timestamp(db):
    allowed = (
        ID_COLUMNS
        | set(CODE_COLUMNS)
        | OTHER_CODE_COLUMNS
        | BOOLEAN_COLUMNS
        | MONTH_COLUMNS
        | TIMESTAMP_COLUMNS
    )
    for name in TABLES:
        table = db.metadata.tables[name]
        for column in table.columns:
            assert column.name in allowed, (name, column.name)
            kind = column.type
            if column.name in BOOLEAN_COLUMNS:
                assert isinstance(kind, Boolean)
            elif column.name in MONTH_COLUMNS:
                assert isinstance(kind, Date)
            elif column.name in TIMESTAMP_COLUMNS:
                assert isinstance(kind, UTCDateTime)
            elif column.foreign_keys or (column.name == "id" and isinstance(kind, Integer)):
                assert isinstance(kind, Integer | String)
            else:
                # Codes are short: no room for a name, an address or a story.
                assert isinstance(kind, String) and kind.length <= 40, (name, column.name)
    assert encrypted_fields(NrmRefusal) == {}
    assert encrypted_fields(NrmRefusalCode) == {}


def test_raw_rows_hold_only_codes_booleans_the_month_ids_and_timestamps(db, world):
    refusal = record_refusal(world["alice"], FULL)
    record_refusal(world["consul"], {"month": date(2026, 2, 28), "refusal_reason": "other"})
    db.session.commit()
    rows = db.session.execute(text("SELECT * FROM nrm_refusals")).mappings().all()
    assert len(rows) == 2
    for row in rows:
        for name, value in row.items():
            if value is None:
                continue
            if name in CODE_COLUMNS:
                assert is_valid_code(CODE_COLUMNS[name], value), (name, value)
            elif name == "age_band":
                assert value in ("0-11", "12-17", "18-24", "25-34", "35-49", "50+")
            elif name == "identifying_agency_type":
                assert value in {agency_type.value for agency_type in AgencyType}
            elif name in BOOLEAN_COLUMNS:
                assert value in (True, False, 0, 1)
            elif name in MONTH_COLUMNS:
                day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
                # The first of the month only: never the day the person was met.
                assert day.day == 1
            elif name in TIMESTAMP_COLUMNS:
                assert isinstance(value, datetime | str)
            else:
                assert name in ID_COLUMNS, name
    codes = db.session.execute(text("SELECT * FROM nrm_refusal_codes")).mappings().all()
    assert {(row["list_name"], row["code"]) for row in codes} == {
        ("exploitation_form", "SexualExploitation"),
        ("exploitation_form", "ForcedLabour"),
    }
    assert {row["refusal_id"] for row in codes} == {refusal.id}


def test_the_month_is_kept_and_the_day_dropped_whatever_the_caller_passes(db, world):
    refusal = record_refusal(world["alice"], FULL)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(NrmRefusal, refusal.id)
    assert stored.month == date(2026, 3, 1)
    assert stored.identified_month == "2026-03"


# The coded fields -------------------------------------------------------------------------


def test_the_agency_type_comes_from_the_recorder_and_the_minor_flag_from_the_band(db, world):
    adult = record_refusal(world["consul"], {**FULL, "is_minor": True})
    child = record_refusal(world["alice"], {**FULL, "age_band": "12-17"})
    unknown_age = record_refusal(world["alice"], {**FULL, "age_band": None, "is_minor": True})
    assert adult.identifying_agency_type == "consular"
    assert child.identifying_agency_type == "ngo"
    assert adult.is_minor is False
    assert child.is_minor is True
    assert unknown_age.is_minor is True


def test_the_columns_carry_the_case_columns_names(db):
    from casework.models import Case

    shared = {"sex", "age_band", "is_minor", "citizenship", "identification_region"}
    shared |= {"identifying_agency_type", "intake_channel"}
    case_columns = set(Case.__table__.columns.keys())
    refusal_columns = set(NrmRefusal.__table__.columns.keys())
    assert shared <= refusal_columns
    assert shared <= case_columns


def test_the_creation_is_audited_with_field_names_only(db, world):
    refusal = record_refusal(world["alice"], FULL)
    db.session.commit()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "refusal.recorded")
    ).one()
    assert entry.object_id == refusal.id
    assert entry.agency_id == world["north"].id
    names = set(entry.field_name_list)
    assert {"month", "refusal_reason", "sex", "exploitation_form"} <= names
    for value in ("Feminine", "baku", "hotline", "fear_of_traffickers", "2026"):
        assert value not in entry.field_names


# Access -----------------------------------------------------------------------------------

ROUTES = {
    "index": ("GET", "/refusals/"),
    "new": ("GET", "/refusals/new"),
    "create": ("POST", "/refusals/new"),
}
STAFF = {"index": 200, "new": 200, "create": 400}
NOBODY = {"index": 404, "new": 404, "create": 404}
EXPECTED = {
    "alice": STAFF,
    "bob": STAFF,
    "charlie": STAFF,
    "consul": STAFF,
    "coordinator": NOBODY,
    "admin": NOBODY,
    "analyst": NOBODY,
    "auditor": NOBODY,
}


@pytest.mark.parametrize(
    ("persona", "route", "expected"),
    [(p, r, s) for p, statuses in EXPECTED.items() for r, s in statuses.items()],
)
def test_access_matrix(app, db, world, persona, route, expected):
    method, url = ROUTES[route]
    client = client_for(app, world[persona])
    # An empty form: case staff get it back with errors, nobody else gets that far.
    response = client.get(url) if method == "GET" else client.post_form(url, {})
    assert response.status_code == expected
    assert db.session.scalar(select(NrmRefusal.id)) is None


def test_the_list_shows_only_the_own_agencys_refusals(app, db, world):
    record_refusal(world["alice"], {**FULL, "refusal_reason": "family_pressure"})
    record_refusal(world["charlie"], {**FULL, "refusal_reason": "wants_to_go_home"})
    db.session.commit()
    north = client_for(app, world["bob"]).get("/refusals/").get_data(as_text=True)
    south = client_for(app, world["charlie"]).get("/refusals/").get_data(as_text=True)
    assert "Pressure from the family" in north and "Wants to go home" not in north
    assert "Wants to go home" in south and "Pressure from the family" not in south


# The real form ----------------------------------------------------------------------------


def test_a_refusal_goes_through_the_real_form(app, db, world):
    client = client_for(app, world["consul"])
    response = client.post_form(
        "/refusals/new",
        {
            "month": "2026-01",
            "refusal_reason": "distrust_of_authorities",
            "services_offered": "yes",
            "intake_channel": "consular_abroad",
            "sex": "Masculine",
            "age_band": "25-34",
            "citizenship": "AZ",
            "identification_region": "abroad",
            "exploitation_form": ["ForcedLabour"],
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/refusals/")
    refusal = db.session.scalars(select(NrmRefusal)).one()
    assert refusal.month == date(2026, 1, 1)
    assert refusal.intake_channel == "consular_abroad"
    assert refusal.identifying_agency_type == "consular"
    assert refusal.is_minor is False
    assert refusal.services_offered is True
    assert refusal.codes_in("exploitation_form") == ["ForcedLabour"]
    page = client.get("/refusals/").get_data(as_text=True)
    assert "Distrust of the authorities" in page


def test_bad_input_is_shown_again_with_what_was_typed_and_400(app, db, world):
    client = client_for(app, world["alice"])
    future = local_today().replace(day=1).replace(year=local_today().year + 1)
    response = client.post_form(
        "/refusals/new",
        {
            "month": future.strftime("%Y-%m"),
            "intake_channel": "walk_in",
            "sex": "Feminine",
            "age_band": "12-17",
            "is_minor": "no",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert future.strftime("%Y-%m") in page
    assert "The month cannot be in the future." in page
    assert "Choose the main reason." in page
    assert "The age band says otherwise." in page
    assert re.search(
        r'<option[^>]*selected[^>]*value="walk_in"|<option[^>]*value="walk_in"[^>]*selected', page
    )
    assert db.session.scalar(select(NrmRefusal.id)) is None


def test_a_code_not_in_the_list_is_refused(app, db, world):
    client = client_for(app, world["alice"])
    response = client.post_form(
        "/refusals/new",
        {"month": "2026-01", "refusal_reason": "Ali from Baku", "services_offered": "no"},
    )
    assert response.status_code == 400
    assert db.session.scalar(select(NrmRefusal.id)) is None
