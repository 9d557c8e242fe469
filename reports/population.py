"""Population figures the admin enters (year × sex × age band), and victims per 100,000.

Haven seeds no official figure: an administrator types (or pastes as CSV) a year's table
from the published source and names it ("State Statistical Committee, 1 January 2026").
Figures are national only. The age bands are those of cases (``casework.models.AGE_BANDS``)
and the sexes those official population statistics count (women and men).

Rates are computed from **published** counts only (``reports.statistics``): where a count
is suppressed ("<5" or "x") its rate is suppressed too, so a rate and the population can
never give a hidden count back; where the population is missing the rate says so.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import format_decimal
from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.exc import StaleDataError

from casework.models import AGE_BANDS
from core import audit
from core.db import UTCDateTime, db, utcnow
from reports.disclosure import TOTAL, ProtectedTable

# Official population statistics count women and men; cases of other or unknown sex are
# counted in the tables but have no population to divide by.
POPULATION_SEXES = ("Feminine", "Masculine")
# Youngest band last, as on cases; the population form lists the youngest first.
POPULATION_AGE_BANDS = tuple(code for _lowest, code in reversed(AGE_BANDS))
# Azerbaijan has about 10 million people; a single sex and age band above this is a typo.
MAX_CELL = 20_000_000
FIRST_YEAR = 1990
PER = 100_000


class PopulationError(ValueError):
    """The figures were refused; ``field`` names what to correct (None: the whole form)."""

    def __init__(self, message: object, field: str | None = None) -> None:
        super().__init__(str(message))
        self.field = field


class PopulationConflict(Exception):
    """The year's table changed since the admin loaded it; nothing was saved."""


class PopulationYear(db.Model):
    """One year's population table and where its figures come from."""

    __tablename__ = "population_years"
    __table_args__ = (
        CheckConstraint(f"year >= {FIRST_YEAR} AND year <= 2200", name="year_plausible"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, unique=True)
    source: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    figures: Mapped[list[PopulationFigure]] = relationship(
        back_populates="population_year",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PopulationFigure.id",
    )

    # Optimistic locking: an UPDATE that finds another version raises StaleDataError.
    __mapper_args__ = {"version_id_col": version}

    def counts(self) -> dict[tuple[str, str], int]:
        """Return {(sex, age band): population} for the cells entered."""
        return {(f.sex, f.age_band): f.count for f in self.figures}

    @property
    def total(self) -> int:
        return sum(f.count for f in self.figures)

    @property
    def is_complete(self) -> bool:
        return len(self.figures) == len(POPULATION_SEXES) * len(POPULATION_AGE_BANDS)


class PopulationFigure(db.Model):
    """The population of one sex and age band in a year (1 January)."""

    __tablename__ = "population_figures"
    __table_args__ = (
        UniqueConstraint("population_year_id", "sex", "age_band"),
        CheckConstraint(f"count >= 0 AND count <= {MAX_CELL}", name="count_plausible"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    population_year_id: Mapped[int] = mapped_column(
        ForeignKey("population_years.id", ondelete="CASCADE"), index=True
    )
    sex: Mapped[str] = mapped_column(String(40))
    age_band: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer)
    population_year: Mapped[PopulationYear] = relationship(back_populates="figures")


# Reading ----------------------------------------------------------------------------------


def population_years() -> list[PopulationYear]:
    """Return every year's table, newest first."""
    return list(db.session.scalars(select(PopulationYear).order_by(PopulationYear.year.desc())))


def population_of(year: int) -> PopulationYear | None:
    return db.session.scalar(select(PopulationYear).where(PopulationYear.year == year))


# Validation -------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
# Digit grouping people type or paste: spaces, no-break and thin spaces, apostrophes.
_GROUPING = re.compile(r"[\s\u00a0\u202f\u2009']")


def parse_count(text: object) -> int | None:
    """Return a typed population as an int, None when left empty.

    :raises PopulationError: for anything but a whole number from 0 to ``MAX_CELL``.
    """
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        cleaned = _GROUPING.sub("", str(text))
        if not cleaned:
            return None
        if not _DIGITS.fullmatch(cleaned):
            raise PopulationError(_l("Enter a whole number of people, such as 412500."))
        value = int(cleaned)
    if value < 0 or value > MAX_CELL:
        raise PopulationError(
            _l(
                "Enter a number from 0 to %(max)s: one sex and age band of the country.",
                max=format_decimal(MAX_CELL),
            )
        )
    return value


def check_year(year: object) -> int:
    """Return the year as an int.

    :raises PopulationError: outside 1990 .. next year.
    """
    try:
        value = int(str(year))
    except (TypeError, ValueError):
        value = -1
    latest = date.today().year + 1
    if not FIRST_YEAR <= value <= latest:
        raise PopulationError(
            _l("Enter a year from %(first)s to %(last)s.", first=FIRST_YEAR, last=latest), "year"
        )
    return value


def parse_population_csv(text: str) -> dict[tuple[str, str], int]:
    """Return {(sex, age band): population} from pasted CSV (``sex,age_band,population``).

    A header line is optional; commas, semicolons or tabs separate the columns; the sex may
    be the code (Feminine, Masculine) or F/M.

    :raises PopulationError: naming the first line that cannot be read.
    """
    sexes = {"feminine": "Feminine", "f": "Feminine", "masculine": "Masculine", "m": "Masculine"}
    sample = text.strip()
    if not sample:
        return {}
    delimiter = "\t" if "\t" in sample else ";" if ";" in sample and "," not in sample else ","
    figures: dict[tuple[str, str], int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(sample), delimiter=delimiter), 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower() in ("sex", "gender"):
            continue
        if len(cells) != 3:
            raise PopulationError(
                _l("Line %(line)s: give sex, age band and population.", line=number), "csv"
            )
        sex = sexes.get(cells[0].lower())
        band = cells[1].replace("–", "-")
        if sex is None or band not in POPULATION_AGE_BANDS:
            raise PopulationError(
                _l(
                    "Line %(line)s: unknown sex or age band (use Feminine or Masculine and"
                    " one of %(bands)s).",
                    line=number,
                    bands=", ".join(POPULATION_AGE_BANDS),
                ),
                "csv",
            )
        if (sex, band) in figures:
            raise PopulationError(
                _l("Line %(line)s: this sex and age band is given twice.", line=number), "csv"
            )
        try:
            value = parse_count(cells[2])
        except PopulationError as error:
            message = _l("Line %(line)s: %(problem)s", line=number, problem=error)
            raise PopulationError(message, "csv") from None
        if value is not None:
            figures[(sex, band)] = value
    return figures


def _check_figures(figures: dict[tuple[str, str], int | None]) -> dict[tuple[str, str], int]:
    kept = {}
    for (sex, band), value in figures.items():
        if sex not in POPULATION_SEXES or band not in POPULATION_AGE_BANDS:
            raise PopulationError(_l("Unknown sex or age band."))
        value = parse_count(value)
        if value is not None:
            kept[(sex, band)] = value
    if not kept:
        raise PopulationError(_l("Enter at least one figure."))
    return kept


def field_name(sex: str, band: str) -> str:
    """Return the form and audit name of a cell ("Feminine_35_49", "Masculine_50plus")."""
    return f"{sex}_{band.replace('-', '_').replace('+', 'plus')}"


# Services ---------------------------------------------------------------------------------


def save_population(
    year: int,
    figures: dict[tuple[str, str], int | None],
    source: str,
    *,
    actor,
    expected_version: int | None = None,
) -> PopulationYear:
    """Create a year's table or replace its figures; flush and audit, never commit.

    ``expected_version`` is the version the admin edited (None: a new year). Cells left
    empty are removed (the population is then missing, not 0).

    :raises PopulationError: for an invalid year, source or figure, or a year entered twice.
    :raises PopulationConflict: when the table changed since ``expected_version``.
    """
    year = check_year(year)
    source = " ".join((source or "").split())
    if not source:
        raise PopulationError(_l("Name the source of the figures."), "source")
    if len(source) > 300:
        raise PopulationError(_l("Keep the source under 300 characters."), "source")
    kept = _check_figures(figures)
    table = population_of(year)
    if expected_version is None:
        if table is not None:
            raise PopulationError(
                _l("%(year)s already has a population table; edit it instead.", year=year),
                "year",
            )
        table = PopulationYear(year=year, source=source, updated_by_user_id=actor.id)
        db.session.add(table)
        changed = ["source", *(field_name(sex, band) for sex, band in kept)]
        action = "population.created"
    else:
        if table is None or table.version != expected_version:
            raise PopulationConflict
        existing = {(f.sex, f.age_band): f for f in table.figures}
        changed = ["source"] if table.source != source else []
        for key, figure in existing.items():
            if key not in kept:
                table.figures.remove(figure)
                changed.append(field_name(*key))
        for key, value in kept.items():
            if key not in existing:
                table.figures.append(PopulationFigure(sex=key[0], age_band=key[1], count=value))
                changed.append(field_name(*key))
            elif existing[key].count != value:
                existing[key].count = value
                changed.append(field_name(*key))
        if not changed:
            return table
        table.source = source
        action = "population.updated"
    if expected_version is None:
        table.figures = [
            PopulationFigure(sex=sex, age_band=band, count=value)
            for (sex, band), value in kept.items()
        ]
    # Figures are rows of their own: touching the year makes the version check happen.
    table.updated_at = utcnow()
    table.updated_by_user_id = actor.id
    try:
        db.session.flush()
    except StaleDataError as error:
        raise PopulationConflict from error
    audit.record(
        action, object_type="population_year", object_id=year, field_names=changed, user=actor
    )
    return table


def delete_population(table: PopulationYear, *, actor, expected_version: int) -> None:
    """Remove a year's table (rates for that year then say the population is missing).

    :raises PopulationConflict: when it changed since the admin loaded it.
    """
    if table.version != expected_version:
        raise PopulationConflict
    year = table.year
    db.session.delete(table)
    try:
        db.session.flush()
    except StaleDataError as error:
        raise PopulationConflict from error
    audit.record("population.deleted", object_type="population_year", object_id=year, user=actor)


# Victims per 100,000 ------------------------------------------------------------------------

SUPPRESSED = "suppressed"
NO_POPULATION = "no_population"
NOT_COUNTED = "not_counted"
REASON_LABELS = {
    SUPPRESSED: _l("not shown: the count is suppressed"),
    NO_POPULATION: _l("population not entered"),
    NOT_COUNTED: _l("no population figure for this group"),
}


@dataclass(frozen=True)
class RateRow:
    """One line of a rate table: the published count, the population and the rate."""

    code: str
    label: str
    count: str
    population: int | None
    rate: float | None
    reason: str | None

    @property
    def rate_display(self) -> str:
        """Return the rate with two decimals in the reader's language, or a dash."""
        if self.rate is None:
            return "–"
        return format_decimal(self.rate, format="#,##0.00")

    @property
    def reason_label(self) -> str:
        return str(REASON_LABELS[self.reason]) if self.reason else ""


@dataclass(frozen=True)
class RateTable:
    """Victims per 100,000 population of one dimension (sex or age band) in a year."""

    title: str
    row_dimension: str
    rows: list[RateRow]
    total: RateRow


@dataclass(frozen=True)
class VictimRates:
    year: int
    source: str | None
    by_sex: RateTable
    by_age: RateTable
    k: int

    @property
    def has_population(self) -> bool:
        return self.source is not None


def _rate_row(
    table: ProtectedTable, code: str, label: str, population: int | None, counted: bool
) -> RateRow:
    """Return a rate from the table's published count; suppressed count, suppressed rate."""
    shown = table.row_total(code) if code != TOTAL else table.grand_total
    value = table.value(code, TOTAL)
    if value is None:
        # Never divide a hidden count: rate × population would give it back.
        return RateRow(code, label, shown or "x", population, None, SUPPRESSED)
    if not counted:
        return RateRow(code, label, shown, None, None, NOT_COUNTED)
    if not population:
        return RateRow(code, label, shown, population, None, NO_POPULATION)
    return RateRow(code, label, shown, population, value * PER / population, None)


def _rate_table(
    table: ProtectedTable,
    title: str,
    populations: dict[str, int | None],
) -> RateTable:
    rows = [
        _rate_row(table, code, label, populations.get(code), code in populations)
        for code, label in table.rows
    ]
    total = _rate_row(table, TOTAL, str(_l("Total")), populations.get(TOTAL), True)
    return RateTable(title=title, row_dimension=table.row_dimension, rows=rows, total=total)


def _sum_complete(counts: dict[tuple[str, str], int], keys) -> int | None:
    """Return the sum of the cells, None unless every one of them was entered."""
    keys = list(keys)
    if any(key not in counts for key in keys):
        return None
    return sum(counts[key] for key in keys)


def victims_per_100k(year: int, stats=None) -> VictimRates:
    """Return victims identified in the year per 100,000 population, by sex and by age band.

    Counts come from ``Statistics`` (protected, published values only); ``stats`` may be a
    ``Statistics`` over a period that includes the year whole.
    """
    from reports.statistics import Period, Statistics

    if stats is None:
        stats = Statistics(Period(year, year, "year"))
    # The base tables' row totals are the year's counts, published exactly as the dashboard
    # publishes them (the same locked margins).
    return rates_from(stats.base("sex", year), stats.base("age_band", year), year, stats.k)


def rates_from(sex: ProtectedTable, age: ProtectedTable, year: int, k: int) -> VictimRates:
    """Return the rates of two protected tables (their row totals) over the year's population."""
    table = population_of(year)
    counts = table.counts() if table is not None else {}
    all_cells = [(s, b) for s in POPULATION_SEXES for b in POPULATION_AGE_BANDS]
    grand = _sum_complete(counts, all_cells)
    by_sex: dict[str, int | None] = {
        s: _sum_complete(counts, [(s, b) for b in POPULATION_AGE_BANDS]) for s in POPULATION_SEXES
    }
    by_age: dict[str, int | None] = {
        b: _sum_complete(counts, [(s, b) for s in POPULATION_SEXES]) for b in POPULATION_AGE_BANDS
    }
    by_sex[TOTAL] = by_age[TOTAL] = grand
    return VictimRates(
        year=year,
        source=table.source if table is not None else None,
        by_sex=_rate_table(sex, str(_l("Victims per 100,000 population by sex")), by_sex),
        by_age=_rate_table(age, str(_l("Victims per 100,000 population by age band")), by_age),
        k=k,
    )
