"""The statistics report: the dashboard's protected tables and charts for a period, as a PDF.

Registered as the report kind ``statistics_report``. It reads ``reports.statistics``
only (never raw counts), so the PDF shows exactly what the statistics page would: the
same "<k" and "x" markers, nothing for a period with fewer than k cases (refusals,
decisions).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from core.db import utcnow
from reports import statistics
from reports.jobs import ReportError, ReportJob, register_report_kind, safe_filename
from reports.pdf import render_pdf
from reports.statistics import (
    DECISION_SUBJECT,
    DIMENSIONS,
    GRAIN_LABELS,
    GRAINS,
    REFUSAL_SUBJECT,
    Period,
    Statistics,
)

KIND = "statistics_report"
# Like the page: a month table of more than two years is unreadable, and so on.
MAX_MONTH_YEARS = 2
MAX_YEARS = 30


def statistics_period(params: dict) -> Period:
    """Return the period of the parameters, the grain coarsened like the page does.

    :raises ReportError: ``invalid_parameters`` for anything else.
    """
    try:
        first, last = sorted((int(params["first"]), int(params["last"])))
    except (KeyError, TypeError, ValueError):
        raise ReportError("invalid_parameters") from None
    grain = params.get("grain", "year")
    if grain not in GRAINS or first < 1900 or last - first + 1 > MAX_YEARS:
        raise ReportError("invalid_parameters")
    span = last - first + 1
    if grain == "month" and span > MAX_MONTH_YEARS:
        grain = "quarter"
    if grain == "quarter" and span > 2 * MAX_MONTH_YEARS:
        grain = "year"
    return Period(first, last, grain)


def build_statistics_report(job: ReportJob, progress) -> tuple[str, str, bytes]:
    """Build the statistics report PDF of the job's period."""
    period = statistics_period(job.params)
    progress(5, "counting")
    # The same freshness as the page: months changed since the last visit are recounted.
    statistics.refresh_if_stale()
    stats = Statistics(period)
    panels = []
    for number, dimension in enumerate(DIMENSIONS):
        panels.append((dimension, stats.dimension_table(dimension)))
        progress(10 + 60 * (number + 1) // len(DIMENSIONS), "tables")
    # Refusals to enter the NRM and status decisions: their own subjects, same protection.
    refusals = Statistics(period, k=stats.k, subject=REFUSAL_SUBJECT)
    refusal_panels = [(name, refusals.dimension_table(name)) for name in REFUSAL_SUBJECT.dimensions]
    decisions = Statistics(period, k=stats.k, subject=DECISION_SUBJECT)
    decision_panels = [
        (name, decisions.dimension_table(name)) for name in DECISION_SUBJECT.dimensions
    ]
    decision_times = decisions.decision_times()
    services = stats.services_table()
    referrals = stats.referral_outcomes()
    progress(75, "rendering")
    now = utcnow()
    reference = f"HVN-STAT-{period.first}" + (
        f"-{period.last}" if period.last != period.first else ""
    )
    user = job.requested_by
    body = render_pdf(
        "statistics_report.html",
        reference=reference,
        generated_by=user.display_name if user is not None else "Haven",
        generated_at=now,
        period=period,
        grain_label=GRAIN_LABELS[period.grain],
        panels=panels,
        refusal_panels=refusal_panels,
        decision_panels=decision_panels,
        decision_times=decision_times,
        services=services,
        referrals=referrals,
        k=stats.k,
        # Many columns need the landscape page.
        wide=len(period.columns()) > 5,
    )
    filename = safe_filename(
        "haven-statistics", period.first, period.last, period.grain, extension="pdf"
    )
    return filename, "application/pdf", body


register_report_kind(KIND, _l("Statistics report (PDF)"), build_statistics_report)
