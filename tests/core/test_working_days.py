"""The working-day calendar: weekends, Azerbaijan's seeded holidays, the admin's holidays."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from core import policy
from core.audit import AuditEntry
from core.models import AgencyType, Role
from core.working_days import (
    AZ_FIXED_HOLIDAYS,
    PublicHoliday,
    add_public_holiday,
    add_working_days,
    holidays_between,
    is_working_day,
    latest_start_overdue_on,
    seed_public_holidays,
    working_days_between,
)
from tests.factories import client_for, make_agency, make_user

NOVRUZ_2026 = {date(2026, 3, day) for day in (20, 21, 22, 23, 24)}
# Thursday before Novruz 2026 (Friday 20 March to Tuesday 24 March).
THURSDAY = date(2026, 3, 19)


# Pure arithmetic (holidays given) -----------------------------------------------------------


def test_weekends_do_not_count():
    friday = date(2026, 4, 3)
    assert add_working_days(friday, 1, holidays=()) == date(2026, 4, 6)
    assert add_working_days(friday, 0, holidays=()) == friday
    assert not is_working_day(date(2026, 4, 4), ()) and not is_working_day(date(2026, 4, 5), ())


def test_a_deadline_runs_across_novruz_and_a_weekend():
    assert add_working_days(THURSDAY, 1, NOVRUZ_2026) == date(2026, 3, 25)
    assert add_working_days(THURSDAY, 3, NOVRUZ_2026) == date(2026, 3, 27)
    # 15 working days: three weeks and a day later, not the 9 April it would be without.
    assert add_working_days(THURSDAY, 15, NOVRUZ_2026) == date(2026, 4, 14)
    assert add_working_days(THURSDAY, 15, ()) == date(2026, 4, 9)


def test_working_days_between_counts_after_the_first_day_up_to_the_last():
    assert working_days_between(THURSDAY, date(2026, 3, 27), NOVRUZ_2026) == 3
    assert working_days_between(date(2026, 3, 27), THURSDAY, NOVRUZ_2026) == -3
    assert working_days_between(THURSDAY, THURSDAY, NOVRUZ_2026) == 0


def test_negative_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(THURSDAY, -1, ())


# With the database -------------------------------------------------------------------------


def test_the_seed_adds_azerbaijans_fixed_holidays_once(db):
    assert seed_public_holidays([2026]) == len(AZ_FIXED_HOLIDAYS) == 16
    assert seed_public_holidays([2026]) == 0
    days = holidays_between(date(2026, 1, 1), date(2026, 12, 31))
    assert NOVRUZ_2026.issubset(days)
    assert {date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 20), date(2026, 3, 8)} <= days
    assert {date(2026, 5, 9), date(2026, 5, 28), date(2026, 6, 15), date(2026, 6, 26)} <= days
    assert {date(2026, 11, 8), date(2026, 11, 9), date(2026, 12, 31)} <= days
    novruz = db.session.scalar(
        select(PublicHoliday).where(PublicHoliday.day == THURSDAY + timedelta(1))
    )
    assert (novruz.label_en, novruz.label_az, novruz.label_ru) == (
        "Novruz",
        "Novruz bayramı",
        "Праздник Новруз",
    )
    assert novruz.seeded


def test_the_default_seed_covers_this_year_and_the_next(db):
    from core.working_days import _local_today

    seed_public_holidays()
    year = _local_today().year
    assert date(year, 5, 28) in holidays_between(date(year, 1, 1), date(year + 1, 12, 31))
    assert date(year + 1, 5, 28) in holidays_between(date(year, 1, 1), date(year + 1, 12, 31))


def test_the_reference_seed_seeds_the_holidays(db):
    from casework.reference import seed_reference_data
    from core.working_days import _local_today

    seed_reference_data()
    seed_reference_data()
    year = _local_today().year
    assert len(holidays_between(date(year, 1, 1), date(year, 12, 31))) == 16


def test_a_deadline_across_seeded_novruz(db):
    seed_public_holidays([2026])
    assert add_working_days(THURSDAY, 15) == date(2026, 4, 14)


def test_a_holiday_the_admin_adds_moves_the_deadline(db):
    seed_public_holidays([2026])
    admin = make_user(make_agency(AgencyType.MINISTRY), Role.ADMIN)
    add_public_holiday(admin, date(2026, 4, 1), "Ramazan bayram", "Ramazan bayramı", "Ураза байрам")
    assert add_working_days(THURSDAY, 15) == date(2026, 4, 15)
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "holiday.added")).one()
    assert entry.user_id == admin.id


def test_the_latest_overdue_start_agrees_with_the_deadlines(db):
    seed_public_holidays([2026])
    today = date(2026, 4, 15)
    cutoff = latest_start_overdue_on(today, 15)
    assert add_working_days(cutoff, 15) < today
    assert add_working_days(cutoff + timedelta(days=1), 15) >= today
    # Starts on the Novruz days share Thursday's deadline (14 April): overdue on the 15th.
    assert cutoff == date(2026, 3, 24)
    assert add_working_days(date(2026, 3, 25), 15) == date(2026, 4, 15)


# The admin page ----------------------------------------------------------------------------


@pytest.fixture
def people(db):
    ministry = make_agency(AgencyType.MINISTRY, name="Ministry")
    ngo = make_agency(AgencyType.NGO, name="NGO North")
    found = {
        "admin": make_user(ministry, Role.ADMIN),
        "caseworker": make_user(ngo, Role.CASEWORKER),
        "supervisor": make_user(ngo, Role.SUPERVISOR),
        "analyst": make_user(ministry, Role.ANALYST),
        "auditor": make_user(ministry, Role.AUDITOR),
    }
    holiday = add_public_holiday(found["admin"], date(2026, 4, 1), "Ramazan bayram")
    db.session.commit()
    return {**found, "holiday_id": holiday.id}


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("admin", 200), ("caseworker", 404), ("supervisor", 404), ("analyst", 404), ("auditor", 404)],
)
def test_only_the_admin_opens_the_holiday_page(app, people, persona, expected):
    client = client_for(app, people[persona])
    assert client.get("/admin/holidays/?year=2026").status_code == expected
    response = client.post_form("/admin/holidays/", {"day": "2026-04-02", "label_en": "X"})
    assert response.status_code == (302 if expected == 200 else 404)
    removed = client.post_form(f"/admin/holidays/{people['holiday_id']}/remove")
    assert removed.status_code == (302 if expected == 200 else 404)


def test_anonymous_visitors_are_sent_to_login(app, people):
    response = app.test_client().get("/admin/holidays/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_page_lists_the_year_and_explains_the_moveable_holidays(app, db, people):
    seed_public_holidays([2026])
    db.session.commit()
    page = client_for(app, people["admin"]).get("/admin/holidays/?year=2026").get_data(as_text=True)
    assert "Novruz" in page and "Ramazan bayram" in page
    assert "Qurban" in page and "carry-over days" in page


def test_the_admin_adds_a_holiday_through_the_form(app, db, people):
    client = client_for(app, people["admin"])
    response = client.post_form(
        "/admin/holidays/",
        {"day": "2026-05-27", "label_en": "Qurban bayram", "label_az": "Qurban bayramı"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert date(2026, 5, 27) in holidays_between(date(2026, 5, 27), date(2026, 5, 27))


def test_a_day_already_taken_is_refused_with_what_was_typed(app, db, people):
    client = client_for(app, people["admin"])
    response = client.post_form(
        "/admin/holidays/", {"day": "2026-04-01", "label_en": "Typed label kept"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This day already is a public holiday." in page and "Typed label kept" in page


def test_a_missing_day_is_refused(app, db, people):
    client = client_for(app, people["admin"])
    response = client.post_form("/admin/holidays/", {"day": "", "label_en": "No day"})
    assert response.status_code == 400 and "No day" in response.get_data(as_text=True)


def test_the_admin_removes_a_holiday(app, db, people):
    client = client_for(app, people["admin"])
    assert client.post_form(f"/admin/holidays/{people['holiday_id']}/remove").status_code == 302
    db.session.expire_all()
    assert db.session.get(PublicHoliday, people["holiday_id"]) is None
    assert client.post_form(f"/admin/holidays/{people['holiday_id']}/remove").status_code == 404


def test_the_rule_is_the_admins_only(db, people):
    assert policy.may(people["admin"], "manage_public_holidays")
    for persona in ("caseworker", "supervisor", "analyst", "auditor"):
        assert not policy.may(people[persona], "manage_public_holidays")


def test_the_navigation_offers_the_page_to_the_admin_only(app, people):
    admin_page = client_for(app, people["admin"]).get("/").get_data(as_text=True)
    assert 'href="/admin/holidays/"' in admin_page and "Public holidays" in admin_page
    other = client_for(app, people["supervisor"]).get("/").get_data(as_text=True)
    assert "/admin/holidays/" not in other


@pytest.mark.parametrize("language", ["az", "ru"])
def test_the_page_shows_the_labels_in_the_admins_language(app, db, people, language):
    seed_public_holidays([2026])
    people["admin"].language = language
    db.session.commit()
    page = client_for(app, people["admin"]).get("/admin/holidays/?year=2026").get_data(as_text=True)
    expected = {"az": "Novruz bayramı", "ru": "Праздник Новруз"}[language]
    assert expected in page
