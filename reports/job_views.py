"""The reports page: request a report, follow its progress, download the finished file.

Analysts and coordinators (whoever may request some kind of report) use it; each sees
their own jobs only. Everyone else, and anyone opening another person's job, gets 404,
and the refused attempt is audited.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_login import current_user, login_required
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from core import audit
from core.db import db
from core.forms import HavenForm
from core.security import mark_sensitive
from reports import statistics
from reports import statistics_report as _statistics_report  # noqa: F401  (registers the kind)
from reports.jobs import ReportJob, can_use_reports, kinds_for, submit_report, visible_report_jobs
from reports.recurring import QUARTERLY, QUARTERS, latest_quarter
from reports.statistics import GRAIN_LABELS, GRAINS
from reports.views import fresh_statistics

bp = Blueprint("report_jobs", __name__, url_prefix="/reports")

# The newest jobs the list shows.
LIST_LIMIT = 50
# Seconds between two reloads of a job page while the job is not finished.
REFRESH_SECONDS = 3


class ReportRequestForm(HavenForm):
    kind = SelectField(lazy_pgettext("report job", "Report"))
    grain = SelectField(
        _l("Shown by"), choices=[SelectChoice(g, GRAIN_LABELS[g]) for g in GRAINS], default="year"
    )
    first = SelectField(_l("From year"), coerce=int)
    last = SelectField(_l("To year"), coerce=int)
    # Read by the quarterly action-plan report only (a quarter of the "To year"); other kinds
    # may leave it out.
    quarter = SelectField(
        _l("Quarter"),
        choices=[SelectChoice(q, str(q)) for q in QUARTERS],
        coerce=int,
        validators=[Optional()],
    )

    def validate(self, extra_validators=None) -> bool:
        """Check the fields; the quarterly report also needs its quarter."""
        valid = super().validate(extra_validators)
        if self.kind.data == QUARTERLY and self.quarter.data not in QUARTERS:
            if not self.quarter.errors:
                self.quarter.errors = [_("Choose the quarter of the quarterly report.")]
            return False
        return valid


def _require_reports() -> None:
    if not can_use_reports(current_user):
        audit.record_denied("reports.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def _request_form() -> ReportRequestForm:
    form = ReportRequestForm()
    form.kind.choices = [SelectChoice(kind.code, kind.label) for kind in kinds_for(current_user)]
    # The years offered are those counted: bring the counts up to date first (a new
    # installation has none until they are built).
    fresh_statistics()
    years = statistics.available_years()
    choices = [SelectChoice(year, str(year)) for year in years]
    form.first.choices = choices
    form.last.choices = choices
    if request.method == "GET":
        form.first.data = years[-1]
        form.last.data = years[-1]
        form.quarter.data = latest_quarter(years[-1])
    return form


def _job_or_404(job_id: uuid.UUID) -> ReportJob:
    job = db.session.scalar(visible_report_jobs(current_user).where(ReportJob.id == str(job_id)))
    if job is None:
        audit.record_denied("report.open", object_type="report_job", object_id=job_id)
        abort(404)
    return job


def _render_index(form: ReportRequestForm, status: int = 200):
    jobs = db.session.scalars(
        visible_report_jobs(current_user).order_by(ReportJob.created_at.desc()).limit(LIST_LIMIT)
    ).all()
    return (
        render_template("reports/jobs/index.html", form=form, jobs=jobs, quarterly_kind=QUARTERLY),
        status,
    )


@bp.get("/")
@login_required
def index():
    _require_reports()
    return _render_index(_request_form())


@bp.post("/")
@login_required
def create():
    _require_reports()
    form = _request_form()
    if not form.validate():
        return _render_index(form, 400)
    params = {"first": form.first.data, "last": form.last.data, "grain": form.grain.data}
    if form.kind.data == QUARTERLY:
        params["quarter"] = form.quarter.data
    job = submit_report(form.kind.data, params, current_user)
    db.session.commit()
    if job.status == "failed":
        flash(job.error_label or _("The report could not be built."), "error")
    elif job.status == "done":
        flash(_("Your report is ready."), "success")
    else:
        flash(_("Your report has been queued. This page shows its progress."), "success")
    return redirect(url_for("report_jobs.detail", job_id=job.id))


@bp.get("/<uuid:job_id>")
@login_required
def detail(job_id: uuid.UUID):
    _require_reports()
    job = _job_or_404(job_id)
    refresh = None if job.status_enum.is_finished else REFRESH_SECONDS
    return render_template("reports/jobs/detail.html", job=job, refresh=refresh)


@bp.get("/<uuid:job_id>/status.json")
@login_required
def status(job_id: uuid.UUID):
    """The job's status as JSON, coded values only (for scripts and the browser tests)."""
    _require_reports()
    job = _job_or_404(job_id)
    return {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "step": job.progress_step,
        "error": job.error_code,
        "download": url_for("report_jobs.download", job_id=job.id) if job.file else None,
    }


@bp.get("/<uuid:job_id>/download")
@login_required
def download(job_id: uuid.UUID):
    _require_reports()
    job = _job_or_404(job_id)
    stored = job.file
    if stored is None:
        abort(404)
    mark_sensitive()
    response = Response(stored.content, mimetype=stored.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{stored.filename}"'
    response.headers["Cache-Control"] = "no-store"
    # Committed with the response by the audit hook; if that fails, no file is sent.
    audit.record(
        "report.downloaded",
        object_type="report_job",
        object_id=job.id,
        field_names=[f"kind.{job.kind}"],
    )
    return response
