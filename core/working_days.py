"""The working-day calendar: public holidays (kept by the admin) and working-day arithmetic.

Saturdays and Sundays never count; a public holiday in ``public_holidays`` does not count
either. Azerbaijan's fixed-date holidays are seeded for the current and the next year
(``seed_public_holidays``, called with the reference lists); the moveable holidays
(Ramazan and Qurban bayrams) and the carry-over days the Cabinet of Ministers announces
each year are entered by the admin.

Deadlines counted in working days (a minor's guardian appointment) use ``add_working_days``;
no holiday is cached in the process (DESIGN: nothing may assume a single process), each
computation reads the holidays of the window it needs in one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import get_locale
from sqlalchemy import Date, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.db import UTCDateTime, db, utcnow

# Monday=0 ... Sunday=6: Saturday and Sunday are the weekend.
WEEKEND = frozenset({5, 6})
# Labels must fit the columns; shown in the admin page and beside deadlines.
LABEL_LENGTH = 200

# Azerbaijan's fixed-date public holidays: (month, day, English, Azerbaijani, Russian).
AZ_FIXED_HOLIDAYS: tuple[tuple[int, int, str, str, str], ...] = (
    (1, 1, "New Year", "Yeni il", "Новый год"),
    (1, 2, "New Year", "Yeni il", "Новый год"),
    (1, 20, "Day of National Mourning", "Ümumxalq Hüzn Günü", "День всенародной скорби"),
    (3, 8, "International Women's Day", "Qadınlar Günü", "Международный женский день"),
    *((3, day, "Novruz", "Novruz bayramı", "Праздник Новруз") for day in (20, 21, 22, 23, 24)),
    (
        5,
        9,
        "Day of Victory over Fascism",
        "Faşizm üzərində qələbə günü",
        "День победы над фашизмом",
    ),
    (5, 28, "Independence Day", "Müstəqillik Günü", "День независимости"),
    (
        6,
        15,
        "National Salvation Day of the Azerbaijani People",
        "Azərbaycan xalqının Milli Qurtuluş Günü",
        "День национального спасения азербайджанского народа",
    ),
    (
        6,
        26,
        "Armed Forces Day",
        "Azərbaycan Respublikasının Silahlı Qüvvələri Günü",
        "День Вооружённых сил",
    ),
    (11, 8, "Victory Day", "Zəfər Günü", "День Победы"),
    (11, 9, "National Flag Day", "Dövlət Bayrağı Günü", "День Государственного флага"),
    (
        12,
        31,
        "Solidarity Day of World Azerbaijanis",
        "Dünya Azərbaycanlılarının Həmrəyliyi Günü",
        "День солидарности азербайджанцев мира",
    ),
)


class PublicHoliday(db.Model):
    """A day off for everyone: not a working day. No personal data."""

    __tablename__ = "public_holidays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    label_en: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    label_az: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    label_ru: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    # True for the seeded fixed-date holidays, False for what the admin entered.
    seeded: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def label(self) -> str:
        """Return the label in the reader's language (English when there is none)."""
        locale = get_locale()
        language = locale.language if locale is not None else "en"
        return getattr(self, f"label_{language}", None) or self.label_en


class HolidayError(ValueError):
    """The holiday cannot be saved (the day is taken); ``field`` names the form field."""

    def __init__(self, message: Any, field: str | None = None) -> None:
        super().__init__(str(message))
        self.field = field


# Arithmetic --------------------------------------------------------------------------------


def holidays_between(first: date, last: date) -> frozenset[date]:
    """Return the public holidays from ``first`` to ``last`` inclusive (one query)."""
    return frozenset(
        db.session.scalars(
            select(PublicHoliday.day).where(PublicHoliday.day >= first, PublicHoliday.day <= last)
        )
    )


def is_working_day(day: date, holidays: Iterable[date] | None = None) -> bool:
    """Return whether the day is a working day (not a weekend day, not a holiday)."""
    if day.weekday() in WEEKEND:
        return False
    if holidays is None:
        holidays = holidays_between(day, day)
    return day not in holidays


def _window(days: int) -> int:
    # Calendar days enough for ``days`` working days in any year (weekends and at most a
    # few weeks of holidays); beyond it the computation reads the next window.
    return days * 2 + 40


def add_working_days(start: date, days: int, holidays: Iterable[date] | None = None) -> date:
    """Return the day ``days`` working days after ``start`` (``start`` itself not counted).

    Zero days gives ``start``. ``holidays`` may be given (tests, loops); otherwise they are
    read from the database for the window needed.
    """
    if days < 0:
        raise ValueError("days must not be negative")
    given = None if holidays is None else frozenset(holidays)
    day, left = start, days
    loaded_until = start
    known: frozenset[date] = given or frozenset()
    while left:
        day += timedelta(days=1)
        if given is None and day > loaded_until:
            loaded_until = day + timedelta(days=_window(left))
            known = holidays_between(day, loaded_until)
        if is_working_day(day, known):
            left -= 1
    return day


def working_days_between(first: date, last: date, holidays: Iterable[date] | None = None) -> int:
    """Return the working days after ``first`` up to and including ``last`` (negative when
    ``last`` comes before ``first``)."""
    if last < first:
        return -working_days_between(last, first, holidays)
    known = frozenset(holidays) if holidays is not None else holidays_between(first, last)
    count = 0
    day = first
    while day < last:
        day += timedelta(days=1)
        if is_working_day(day, known):
            count += 1
    return count


def latest_start_overdue_on(today: date, days: int) -> date:
    """Return the latest start day whose deadline of ``days`` working days is before today.

    A deadline only moves later as its start does, so "the deadline has passed" is the
    same as "the start is on or before this day": list pages filter on it with one plain
    comparison instead of computing every row's deadline.
    """
    first = today - timedelta(days=_window(days) + 30)
    known = holidays_between(first, today)
    start = today - timedelta(days=1)
    while add_working_days(start, days, known) >= today:
        start -= timedelta(days=1)
        if start < first:  # pragma: no cover - only with months of holidays in a row
            first -= timedelta(days=365)
            known = holidays_between(first, today)
    return start


def _local_today() -> date:
    """Return today where Haven is used (as ``casework.models.local_today``; core cannot
    import casework)."""
    from zoneinfo import ZoneInfo

    from flask import current_app, has_app_context

    zone = "Asia/Baku"
    if has_app_context():
        zone = current_app.config.get("BABEL_DEFAULT_TIMEZONE", zone)
    return datetime.now(ZoneInfo(zone)).date()


# Services ----------------------------------------------------------------------------------


def holidays_of_year(year: int) -> list[PublicHoliday]:
    """Return the year's public holidays in day order."""
    return list(
        db.session.scalars(
            select(PublicHoliday)
            .where(PublicHoliday.day >= date(year, 1, 1), PublicHoliday.day <= date(year, 12, 31))
            .order_by(PublicHoliday.day)
        )
    )


def add_public_holiday(
    actor: Any, day: date, label_en: str, label_az: str = "", label_ru: str = ""
) -> PublicHoliday:
    """Add a public holiday (a moveable holiday or a carry-over day).

    :raises HolidayError: when the day already is a holiday.
    """
    from flask_babel import lazy_gettext as _l

    if db.session.scalar(select(PublicHoliday.id).where(PublicHoliday.day == day)) is not None:
        raise HolidayError(_l("This day already is a public holiday."), field="day")
    holiday = PublicHoliday(
        day=day,
        label_en=label_en.strip(),
        label_az=(label_az or "").strip(),
        label_ru=(label_ru or "").strip(),
        seeded=False,
        created_by_id=getattr(actor, "id", None),
        created_at=utcnow(),
    )
    db.session.add(holiday)
    db.session.flush()
    audit.record(
        "holiday.added",
        object_type="public_holiday",
        object_id=holiday.id,
        field_names=["day", "label_en", "label_az", "label_ru"],
        user=actor,
    )
    return holiday


def remove_public_holiday(actor: Any, holiday: PublicHoliday) -> None:
    """Remove a public holiday: the day becomes a working day again (if a weekday)."""
    holiday_id = holiday.id
    db.session.delete(holiday)
    db.session.flush()
    audit.record(
        "holiday.removed",
        object_type="public_holiday",
        object_id=holiday_id,
        field_names=["day"],
        user=actor,
    )


def seed_public_holidays(years: Iterable[int] | None = None) -> int:
    """Add Azerbaijan's fixed-date holidays for the years (default: this one and the next)
    that are missing; return how many were added. Idempotent: existing days are kept."""
    if years is None:
        this_year = _local_today().year
        years = (this_year, this_year + 1)
    wanted = {
        date(year, month, day): (en, az, ru)
        for year in years
        for month, day, en, az, ru in AZ_FIXED_HOLIDAYS
    }
    if not wanted:
        return 0
    existing = set(
        db.session.scalars(select(PublicHoliday.day).where(PublicHoliday.day.in_(list(wanted))))
    )
    added = 0
    for day in sorted(set(wanted) - existing):
        en, az, ru = wanted[day]
        db.session.add(PublicHoliday(day=day, label_en=en, label_az=az, label_ru=ru, seeded=True))
        added += 1
    db.session.flush()
    if added:
        audit.record(
            "holiday.seeded",
            object_type="public_holiday",
            field_names=["day", "label_en", "label_az", "label_ru"],
        )
    return added
