"""The recurring reports: the annual national report and the quarterly action-plan report.

Both are PDFs built from ``reports.statistics`` alone: every number is a published entry
of a protected table (or a sum that ``disclosure.combine`` published), so the reports show
exactly the "<k" and "x" the dashboard shows, and rates per 100,000 only where the count is
published (``reports.population``). Registered as report kinds ``annual_national`` and
``quarterly_action_plan`` (``reports.jobs``).

Services delivered and referral outcomes are protected per calendar year only, so the
quarterly report gives them for the year to date, never for a quarter alone: a quarter's
figure next to the year's would give the rest of the year back unprotected.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l

from core import audit
from core.db import utcnow
from reports import disclosure, statistics
from reports.disclosure import TOTAL, ProtectedTable
from reports.jobs import ReportError, register_report_kind, safe_filename
from reports.pdf import render_pdf
from reports.population import VictimRates, rates_from
from reports.statistics import (
    DECISION,
    DECISION_REASON,
    DECISION_SUBJECT,
    DIMENSION_LABELS,
    REFUSAL_SUBJECT,
    UNKNOWN,
    Period,
    Statistics,
)

ANNUAL = "annual_national"
QUARTERLY = "quarterly_action_plan"
CONTENT_TYPE = "application/pdf"
# The dimensions each report shows as a table, in this order; the first three also as charts.
REPORT_DIMENSIONS = (
    "sex",
    "age_band",
    "minor",
    "exploitation_form",
    "agency_type",
    "intake_channel",
    "nrm_status",
)
CHARTED = frozenset({"sex", "age_band", "exploitation_form"})
# The refusal tables of the annual report (the first also as a chart).
REFUSAL_REPORT_DIMENSIONS = ("reason", "sex", "age_band")
TOP_CITIZENSHIPS = 10
FIRST_YEAR = 2000
# The column of the year to date in a quarterly table (its total column).
YEAR_TO_DATE = "__ytd__"
QUARTERS = (1, 2, 3, 4)


def _check_year(year: Any) -> int:
    try:
        value = int(year)
    except (TypeError, ValueError):
        raise ReportError("invalid_parameters") from None
    if not FIRST_YEAR <= value <= date.today().year:
        raise ReportError("invalid_parameters")
    return value


def _check_quarter(quarter: Any) -> int:
    try:
        value = int(quarter)
    except (TypeError, ValueError):
        raise ReportError("invalid_parameters") from None
    if value not in QUARTERS:
        raise ReportError("invalid_parameters")
    return value


def _year_to_date(stats: Statistics, dimension: str, year: int, quarter: int) -> ProtectedTable:
    """Return the dimension by quarters 1..quarter of the year, with the year to date as total.

    Every entry is a sum of the year's base table (dimension by month), published only when
    each month in it is (``disclosure.combine``).
    """
    key = str(year)
    groups = [
        (f"{year}-Q{n}", f"Q{n}", [(key, f"{year}-{3 * (n - 1) + m:02d}") for m in (1, 2, 3)])
        for n in range(1, quarter + 1)
    ]
    months = [(key, f"{year}-{m:02d}") for m in range(1, 3 * quarter + 1)]
    groups.append((YEAR_TO_DATE, "", months))
    combined = disclosure.combine(
        str(DIMENSION_LABELS[dimension]),
        {key: stats.base(dimension, year)},
        groups,
        k=stats.k,
        column_dimension=str(_l("Quarter")),
    )
    # The year to date becomes the total column (the year's total would count later months).
    values, status = {}, {}
    for entry, value in combined._values.items():
        row, column = entry
        if column == TOTAL:
            continue
        target = (row, TOTAL) if column == YEAR_TO_DATE else entry
        values[target] = value
        if entry in combined._status:
            status[target] = combined._status[entry]
    return disclosure.ProtectedTable(
        title=combined.title,
        row_dimension=combined.row_dimension,
        column_dimension=combined.column_dimension,
        rows=combined.rows,
        columns=[column for column in combined.columns if column[0] != YEAR_TO_DATE],
        values=values,
        status=status,
        k=combined.k,
        too_few=combined.too_few,
    )


def _shown(table: ProtectedTable, row: str, column: str) -> str:
    """Return what a table shows for a row in a column (TOTAL for the row total)."""
    if table.too_few:
        # Fewer than k cases in the whole year: nothing but that.
        return f"<{table.k}"
    if row == TOTAL:
        return table.grand_total if column == TOTAL else table.column_total(column)
    return table.row_total(row) if column == TOTAL else table.display(row, column)


def _key_figures(tables: dict[str, ProtectedTable], column: str) -> list[tuple[str, str]]:
    """Return (label, shown) pairs of the headline figures for a column (TOTAL: the period)."""
    sex, minor, nrm = tables["sex"], tables["minor"], tables["nrm_status"]
    return [
        (str(_l("Victims identified")), _shown(sex, TOTAL, column)),
        (str(_l("Women and girls")), _shown(sex, "Feminine", column)),
        (str(_l("Men and boys")), _shown(sex, "Masculine", column)),
        (str(_l("Children at identification")), _shown(minor, "yes", column)),
        (str(_l("Recognised as victims (NRM)")), _shown(nrm, "recognised", column)),
        (str(_l("Awaiting the NRM decision")), _shown(nrm, "pending_decision", column)),
    ]


def _top_citizenships(table: ProtectedTable) -> list[tuple[str, str]]:
    """Return the most frequent citizenships among the published row totals."""
    published = [
        (table.value(code, TOTAL), label, code)
        for code, label in table.rows
        if code != UNKNOWN and table.value(code, TOTAL)
    ]
    published.sort(key=lambda item: (-item[0], item[1]))
    return [(label, table.row_total(code)) for _value, label, code in published[:TOP_CITIZENSHIPS]]


def _sections(tables: dict[str, ProtectedTable]) -> list[dict]:
    return [
        {
            "dimension": dimension,
            "title": str(DIMENSION_LABELS[dimension]),
            "table": tables[dimension],
            "chart": dimension in CHARTED,
        }
        for dimension in REPORT_DIMENSIONS
    ]


def _refusal_context(stats: Statistics) -> dict:
    """Return the annual report's refusals: the total and the tables by reason, sex, age."""
    refusals = Statistics(stats.period, k=stats.k, subject=REFUSAL_SUBJECT)
    tables = {name: refusals.dimension_table(name) for name in REFUSAL_REPORT_DIMENSIONS}
    return {
        "total": _shown(tables["reason"], TOTAL, TOTAL),
        "too_few": tables["reason"].too_few,
        "sections": [
            {
                "dimension": name,
                "title": tables[name].title,
                "table": tables[name],
                "chart": name == "reason",
            }
            for name in REFUSAL_REPORT_DIMENSIONS
        ],
    }


def _decision_context(stats: Statistics) -> dict:
    """Return the annual report's status decisions: by outcome and stage, negative ones by
    reason, and the days from identification to decision (median, 90th percentile)."""
    decisions = Statistics(stats.period, k=stats.k, subject=DECISION_SUBJECT)
    by_outcome = decisions.dimension_table(DECISION)
    return {
        "total": _shown(by_outcome, TOTAL, TOTAL),
        "too_few": by_outcome.too_few,
        "sections": [
            {"dimension": name, "title": table.title, "table": table, "chart": False}
            for name, table in (
                (DECISION, by_outcome),
                (DECISION_REASON, decisions.dimension_table(DECISION_REASON)),
            )
        ],
        "times": decisions.decision_times(),
    }


# The tables of the rest of the NRM path in the annual report, per subject (the first also
# as a chart).
PATH_REPORT_DIMENSIONS = {
    "incoming": ("outcome", "kind"),
    "returns": ("state", "destination"),
    "measures": ("type", "status"),
    "visits": ("outcome", "retrafficked"),
    "guardians": ("guardian",),
}


def _path_context(stats: Statistics) -> list[dict]:
    """Return the annual report's sections of the rest of the NRM path: per subject its
    total and one or two tables."""
    from reports.nrm_path import PATH_SUBJECTS

    parts = []
    for subject in PATH_SUBJECTS:
        counted = Statistics(stats.period, k=stats.k, subject=subject)
        names = PATH_REPORT_DIMENSIONS[subject.name]
        tables = {name: counted.dimension_table(name) for name in names}
        first = tables[names[0]]
        parts.append(
            {
                "subject": subject.name,
                "total": _shown(first, TOTAL, TOTAL),
                "too_few": first.too_few,
                "sections": [
                    {
                        "dimension": name,
                        "title": tables[name].title,
                        "table": tables[name],
                        "chart": index == 0,
                    }
                    for index, name in enumerate(names)
                ],
            }
        )
    return parts


def annual_context(year: int) -> dict:
    """Return everything the annual report shows for the year, protected."""
    stats = Statistics(Period(year, year, "quarter"))
    tables = {dimension: stats.dimension_table(dimension) for dimension in REPORT_DIMENSIONS}
    citizenship = stats.dimension_table("citizenship")
    rates: VictimRates = rates_from(
        stats.base("sex", year), stats.base("age_band", year), year, stats.k
    )
    return {
        "year": year,
        "period_label": str(year),
        "key_figures": _key_figures(tables, TOTAL),
        "sections": _sections(tables),
        "citizenships": _top_citizenships(citizenship),
        "citizenship_total": _shown(citizenship, TOTAL, TOTAL),
        "rates": rates,
        "services": stats.services_table(),
        "referrals": stats.referral_outcomes(),
        "refusals": _refusal_context(stats),
        "decisions": _decision_context(stats),
        "path": _path_context(stats),
        "k": stats.k,
        "too_few": tables["sex"].too_few,
    }


def quarterly_context(year: int, quarter: int) -> dict:
    """Return everything the quarterly report shows: the quarter, and the year to date."""
    stats = Statistics(Period(year, year, "quarter"))
    tables = {
        dimension: _year_to_date(stats, dimension, year, quarter)
        for dimension in (*REPORT_DIMENSIONS, "citizenship")
    }
    citizenship = tables.pop("citizenship")
    column = f"{year}-Q{quarter}"
    rates = rates_from(tables["sex"], tables["age_band"], year, stats.k)
    return {
        "year": year,
        "quarter": quarter,
        "period_label": f"Q{quarter} {year}",
        "quarter_figures": _key_figures(tables, column),
        "key_figures": _key_figures(tables, TOTAL),
        "sections": _sections(tables),
        "citizenships": _top_citizenships(citizenship),
        "citizenship_total": _shown(citizenship, TOTAL, TOTAL),
        "rates": rates,
        "services": stats.services_table(),
        "referrals": stats.referral_outcomes(),
        # Protected by calendar year, by quarter: the year so far.
        "refusals": _refusal_context(stats),
        "decisions": _decision_context(stats),
        "k": stats.k,
        "too_few": tables["sex"].too_few,
    }


def _generated_by(user) -> str:
    return user.display_name if user is not None else "Haven"


def build_annual_report(year: int, user) -> tuple[str, str, bytes]:
    """Render the annual national report of the year; audit it; return (name, type, bytes)."""
    year = _check_year(year)
    # Months changed since the last visit are recounted first, as the dashboard does.
    statistics.refresh_if_stale()
    context = annual_context(year)
    body = render_pdf(
        "annual_report.html",
        reference=f"HVN-NR-{year}",
        generated_by=_generated_by(user),
        generated_at=utcnow(),
        **context,
    )
    audit.record(
        "report.annual_generated", object_type="report", object_id=f"HVN-NR-{year}", user=user
    )
    return safe_filename("haven-annual", year, extension="pdf"), CONTENT_TYPE, body


def build_quarterly_report(year: int, quarter: int, user) -> tuple[str, str, bytes]:
    """Render the quarterly action-plan report; audit it; return (name, type, bytes)."""
    year, quarter = _check_year(year), _check_quarter(quarter)
    statistics.refresh_if_stale()
    context = quarterly_context(year, quarter)
    body = render_pdf(
        "quarterly_report.html",
        reference=f"HVN-AP-{year}-Q{quarter}",
        generated_by=_generated_by(user),
        generated_at=utcnow(),
        **context,
    )
    audit.record(
        "report.quarterly_generated",
        object_type="report",
        object_id=f"HVN-AP-{year}-Q{quarter}",
        user=user,
    )
    return (
        safe_filename("haven-quarterly", year, f"q{quarter}", extension="pdf"),
        CONTENT_TYPE,
        body,
    )


# Report kinds ---------------------------------------------------------------------------------


def _job_year(params: dict) -> int:
    # The reports page sends a range (first, last); these reports take its last year.
    return _check_year(params.get("year", params.get("last")))


def latest_quarter(year: int) -> int:
    """Return the last finished quarter of the year (Q1 while the first is running)."""
    today = date.today()
    if year < today.year:
        return 4
    return max(1, (today.month - 1) // 3)


def build_annual_job(job, progress) -> tuple[str, str, bytes]:
    """Build the annual national report of ``job.params["year"]`` (or ``"last"``)."""
    year = _job_year(job.params)
    progress(10, "tables")
    result = build_annual_report(year, job.requested_by)
    progress(90, "rendering")
    return result


def build_quarterly_job(job, progress) -> tuple[str, str, bytes]:
    """Build the action-plan report of ``year`` and ``quarter`` (default: the last finished)."""
    year = _job_year(job.params)
    quarter = job.params.get("quarter") or latest_quarter(year)
    progress(10, "tables")
    result = build_quarterly_report(year, quarter, job.requested_by)
    progress(90, "rendering")
    return result


register_report_kind(ANNUAL, _l("Annual national report (PDF)"), build_annual_job)
register_report_kind(QUARTERLY, _l("Quarterly action-plan report (PDF)"), build_quarterly_job)
