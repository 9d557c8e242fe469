"""The statistics dashboard and cross-tab page: protected counts over coded fields only.

Analysts and the national coordinator see them (``policy.can_view_statistics``); everyone
else signed in gets 404, and the refused visit is audited.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from core import audit, policy
from core.db import db
from core.forms import HavenForm
from reports import statistics
from reports.statistics import DIMENSION_LABELS, DIMENSIONS, GRAIN_LABELS, GRAINS, Period

bp = Blueprint("statistics", __name__, url_prefix="/statistics")

# A range longer than this is shown by year whatever grain was asked (a month table of ten
# years is unreadable).
MAX_MONTH_YEARS = 2


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


def _require_statistics() -> None:
    if not policy.can_view_statistics(current_user):
        audit.record_denied("statistics.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def _period(form: PeriodForm) -> Period:
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


def _fresh() -> None:
    """Recompute the months changed since the last visit; commit once."""
    if statistics.refresh_if_stale():
        db.session.commit()


@bp.get("/")
@login_required
def index():
    _require_statistics()
    _fresh()
    form = PeriodForm(request.args)
    period = _period(form)
    stats = statistics.Statistics(period)
    panels = [(dimension, stats.dimension_table(dimension)) for dimension in DIMENSIONS]
    return render_template(
        "reports/statistics/index.html",
        form=form,
        period=period,
        panels=panels,
        services=stats.services_table(),
        referrals=stats.referral_outcomes(),
        k=stats.k,
    )


@bp.get("/crosstab")
@login_required
def crosstab():
    _require_statistics()
    _fresh()
    form = CrosstabForm(request.args)
    period = _period(form)
    rows = form.rows.data if form.rows.data in DIMENSIONS else "sex"
    columns = form.columns.data if form.columns.data in DIMENSIONS else "age_band"
    stats = statistics.Statistics(period)
    table = stats.crosstab(rows, columns) if rows != columns else None
    return render_template(
        "reports/statistics/crosstab.html", form=form, period=period, table=table, k=stats.k
    )
