"""The statistics dashboard and cross-tab page: protected counts over coded fields only.

Analysts and the national coordinator see them (``policy.can_view_statistics``); everyone
else signed in gets 404, and the refused visit is audited. ``requested_table`` builds a
table from request arguments for the pages and for their CSV/XLSX downloads alike, so a
download can never hold a number the page hides.

Besides the case tables, the dashboard shows the refusals to enter the NRM (one table per
refusal dimension, ``refusals_<dimension>``) and the status decisions (``decisions``,
``decision_reasons``, ``decision_times``), and the rest of the NRM path
(``reports.nrm_path``: ``<subject>_<dimension>``, e.g. ``incoming_outcome``), each subject
protected on its own totals (``reports.statistics.Subject``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from core import audit, policy
from core.db import db
from core.forms import HavenForm
from reports import statistics
from reports.disclosure import ProtectedTable
from reports.nrm_path import PATH_SUBJECTS
from reports.statistics import (
    DECISION,
    DECISION_REASON,
    DECISION_SUBJECT,
    DIMENSION_LABELS,
    DIMENSIONS,
    GRAIN_LABELS,
    GRAINS,
    REFUSAL_DIMENSIONS,
    REFUSAL_SUBJECT,
    Period,
)

bp = Blueprint("statistics", __name__, url_prefix="/statistics")

# A range longer than this is shown by year whatever grain was asked (a month table of ten
# years is unreadable).
MAX_MONTH_YEARS = 2
SERVICES = "services"
REFERRALS = "referrals"
# The tables of other subjects than cases: table name -> (subject, dimension).
SUBJECT_TABLES = {
    **{f"refusals_{name}": (REFUSAL_SUBJECT, name) for name in REFUSAL_DIMENSIONS},
    "decisions": (DECISION_SUBJECT, DECISION),
    "decision_reasons": (DECISION_SUBJECT, DECISION_REASON),
    # The rest of the NRM path (``reports.nrm_path``): "<subject>_<dimension>".
    **{
        f"{subject.name}_{name}": (subject, name)
        for subject in PATH_SUBJECTS
        for name in subject.dimensions
    },
}
DECISION_TIMES = "decision_times"
# The tables of the dashboard, by the name the ``table`` argument gives them.
TABLES = (*DIMENSIONS, *SUBJECT_TABLES, DECISION_TIMES, SERVICES, REFERRALS)
REFERRAL_COLUMNS = ("sent", "accepted", "declined", "expired", "median_hours")
DECISION_TIME_COLUMNS = ("decisions", "median", "p90")


class PeriodForm(HavenForm):
    """The period selector: a GET form (it changes nothing), so no CSRF token."""

    class Meta:
        csrf = False

    grain = SelectField(
        _l("Shown by"), choices=[SelectChoice(g, GRAIN_LABELS[g]) for g in GRAINS], default="year"
    )
    first = SelectField(_l("From year"), coerce=int)
    last = SelectField(_l("To year"), coerce=int)


class CrosstabForm(PeriodForm):
    rows = SelectField(
        _l("Rows"),
        choices=[SelectChoice(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
        default="sex",
    )
    columns = SelectField(
        _l("Columns"),
        choices=[SelectChoice(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
        default="age_band",
    )


@dataclass
class ReferralTable:
    """Referral outcomes by service as the page shows them: display strings only."""

    title: str
    headings: list[str]
    rows: list[dict]

    def grid(self) -> list[list[str]]:
        """Return the heading row and one row per service, every cell as the page shows it."""
        return [
            list(self.headings),
            *(
                [str(row["label"]), *(str(row[key]) for key in REFERRAL_COLUMNS)]
                for row in self.rows
            ),
        ]


@dataclass
class DecisionTimeTable:
    """Days from identification to decision per year and outcome, as the page shows them."""

    title: str
    headings: list[str]
    rows: list[dict]

    def grid(self) -> list[list[str]]:
        """Return the heading row and one row per year and outcome, as the page shows them."""
        return [
            list(self.headings),
            *(
                [str(row["year"]), str(row["label"]), *(str(row[k]) for k in DECISION_TIME_COLUMNS)]
                for row in self.rows
            ),
        ]


@dataclass
class RequestedTable:
    """One table of the statistics pages, built from the request's arguments."""

    name: str  # a dimension, "services", "referrals", or "<rows>-by-<columns>"
    period: Period
    table: ProtectedTable | ReferralTable | DecisionTimeTable
    dimensions: tuple[str, ...] = ()


def _require_statistics() -> None:
    if not policy.can_view_statistics(current_user):
        audit.record_denied("statistics.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def read_period(form: PeriodForm) -> Period:
    """Read the period from the form; anything invalid falls back to the latest year."""
    years = statistics.available_years()
    choices = [SelectChoice(year, str(year)) for year in years]
    form.first.choices = choices
    form.last.choices = choices
    if not form.validate() or form.first.data is None or form.last.data is None:
        form.first.data = form.first.data if form.first.data in years else years[0]
        form.last.data = form.last.data if form.last.data in years else years[-1]
        if form.grain.data not in GRAINS:
            form.grain.data = "year"
        # A first visit has no period yet: no error to show, only the defaults.
        for field in (form.grain, form.first, form.last):
            field.errors = []
    first, last = sorted((form.first.data, form.last.data))
    grain = form.grain.data
    span = last - first + 1
    if grain == "month" and span > MAX_MONTH_YEARS:
        grain = "quarter"
    if grain == "quarter" and span > 2 * MAX_MONTH_YEARS:
        grain = "year"
    return Period(first, last, grain)


def referral_table(stats: statistics.Statistics) -> ReferralTable:
    """Return the referral outcomes of the period as the dashboard shows them."""
    headings = [
        _("Service"),
        _("Referrals sent"),
        _("Accepted"),
        _("Declined"),
        _("Expired"),
        _("Median hours to respond"),
    ]
    return ReferralTable(_("Referral outcomes by service"), headings, stats.referral_outcomes())


def decision_time_table(stats: statistics.Statistics) -> DecisionTimeTable:
    """Return the days from identification to decision as the dashboard shows them."""
    headings = [
        _("Year"),
        _("Decision"),
        _("Decisions"),
        _("Median days"),
        _("90th percentile, days"),
    ]
    return DecisionTimeTable(
        _("Days from identification to decision"), headings, stats.decision_times()
    )


def subject_statistics(
    stats: statistics.Statistics, subject: statistics.Subject
) -> statistics.Statistics:
    """Return the statistics of another subject over the same period and k."""
    if stats.subject is subject:
        return stats
    return statistics.Statistics(stats.period, k=stats.k, subject=subject)


def build_table(
    stats: statistics.Statistics, name: str, columns: str | None = None
) -> ProtectedTable | ReferralTable | DecisionTimeTable:
    """Return one table of the period: a dimension's, services, referrals, a refusal or
    decision table, or a cross-tab.

    With ``columns``, ``name`` is the rows' dimension of a cross-tab.

    :raises KeyError: for an unknown table or a cross-tab of a dimension with itself.
    """
    if columns is not None:
        return stats.crosstab(name, columns)
    if name in SUBJECT_TABLES:
        subject, dimension = SUBJECT_TABLES[name]
        return subject_statistics(stats, subject).dimension_table(dimension)
    if name == DECISION_TIMES:
        return decision_time_table(subject_statistics(stats, DECISION_SUBJECT))
    if name in DIMENSIONS:
        return stats.dimension_table(name)
    if name == SERVICES:
        return stats.services_table()
    if name == REFERRALS:
        return referral_table(stats)
    raise KeyError(name)


def requested_table(args: Mapping[str, str]) -> RequestedTable | None:
    """Build the table the arguments ask for, or None when they name no table.

    ``rows`` and ``columns`` ask for the cross-tab page's table (whole years, as there);
    ``table`` for a dashboard panel, by the period and grain of the dashboard.
    """
    if "rows" in args or "columns" in args:
        form = CrosstabForm(args)
        rows, columns = args.get("rows"), args.get("columns")
        if rows not in DIMENSIONS or columns not in DIMENSIONS or rows == columns:
            return None
        period = read_period(form)
        table = build_table(statistics.Statistics(period), rows, columns)
        return RequestedTable(f"{rows}-by-{columns}", period, table, (rows, columns))
    name = args.get("table")
    if name not in TABLES:
        return None
    period = read_period(PeriodForm(args))
    table = build_table(statistics.Statistics(period), name)
    dimensions = (name,) if name in DIMENSIONS else ()
    if name in SUBJECT_TABLES:
        dimensions = (SUBJECT_TABLES[name][1],)
    return RequestedTable(name, period, table, dimensions)


def fresh_statistics() -> None:
    """Recompute the months changed since the last visit; commit once."""
    if statistics.refresh_if_stale():
        db.session.commit()


@bp.get("/")
@login_required
def index():
    _require_statistics()
    fresh_statistics()
    form = PeriodForm(request.args)
    period = read_period(form)
    stats = statistics.Statistics(period)
    panels = [(dimension, build_table(stats, dimension)) for dimension in DIMENSIONS]
    refusal_panels = [
        (f"refusals_{name}", build_table(stats, f"refusals_{name}")) for name in REFUSAL_DIMENSIONS
    ]
    decision_panels = [
        (name, build_table(stats, name)) for name in ("decisions", "decision_reasons")
    ]
    path_sections = [
        (
            subject,
            [
                (f"{subject.name}_{name}", build_table(stats, f"{subject.name}_{name}"))
                for name in subject.dimensions
            ],
        )
        for subject in PATH_SUBJECTS
    ]
    return render_template(
        "reports/statistics/index.html",
        path_sections=path_sections,
        form=form,
        period=period,
        panels=panels,
        refusal_panels=refusal_panels,
        decision_panels=decision_panels,
        decision_times=build_table(stats, DECISION_TIMES),
        services=build_table(stats, SERVICES),
        referrals=build_table(stats, REFERRALS),
        k=stats.k,
    )


@bp.get("/crosstab")
@login_required
def crosstab():
    _require_statistics()
    fresh_statistics()
    form = CrosstabForm(request.args)
    period = read_period(form)
    rows = form.rows.data if form.rows.data in DIMENSIONS else "sex"
    columns = form.columns.data if form.columns.data in DIMENSIONS else "age_band"
    form.rows.data, form.columns.data = rows, columns
    stats = statistics.Statistics(period)
    table = build_table(stats, rows, columns) if rows != columns else None
    return render_template(
        "reports/statistics/crosstab.html",
        form=form,
        period=period,
        table=table,
        rows=rows,
        columns=columns,
        k=stats.k,
    )
