"""Report jobs: requested reports, run inline or by an RQ worker, and their finished files.

A report kind is registered with ``register_report_kind(code, label, build)``; its
``build(job, progress)`` reads ``job.parameters`` (coded values only), calls
``progress(percent, step)`` now and then and returns ``(filename, content_type, bytes)``.

``submit_report(kind, params, user)`` records a ``ReportJob``. When ``HAVEN_REDIS_URL`` is
set the job goes to the RQ queue "haven-reports" and a worker (``flask reports worker``)
runs it; the queue's payload is the job's id and nothing else, so no personal data and no
parameters ever sit in Redis. Otherwise the job runs at once, in the request, through the
same ``execute_report_job``. Finished files are stored in the database (``ReportFile``):
app instances keep nothing on their own disks.

``sweep_report_jobs`` (``flask reports sweep``, from cron, and at every worker start) keeps
that store small and honest: it fails jobs a dead worker left running past the RQ timeout,
and queued jobs no worker took within ``HAVEN_REPORT_QUEUE_WAIT_HOURS``, so no page polls
forever; and it deletes reports finished more than ``HAVEN_REPORT_RETENTION_DAYS`` ago.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
from flask import current_app, has_request_context
from flask_babel import force_locale, get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import audit, policy
from core.db import UTCDateTime, db, enum_check, enum_string, new_uuid, utcnow
from core.models import User

QUEUE_NAME = "haven-reports"
# A report that takes longer than this is stopped by the worker (RQ's job timeout).
JOB_TIMEOUT_SECONDS = 30 * 60
# Parameter values are codes: a language, a year, a dimension; never free text.
_CODE = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_STEP = re.compile(r"[a-z][a-z0-9_]{0,39}")


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return str(STATUS_LABELS[self])

    @property
    def badge_class(self) -> str:
        return {
            JobStatus.DONE: "badge--ok",
            JobStatus.FAILED: "badge--danger",
        }.get(self, "badge--warn")

    @property
    def is_finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


STATUS_LABELS = {
    JobStatus.QUEUED: _l("Waiting"),
    JobStatus.RUNNING: _l("Running"),
    JobStatus.DONE: _l("Ready"),
    JobStatus.FAILED: _l("Failed"),
}

# Coded errors: what a job may say went wrong (the log has the details, the row never).
ERROR_LABELS = {
    "build_failed": _l("The report could not be built. The error has been recorded."),
    "unknown_kind": _l("This kind of report is no longer available."),
    "invalid_parameters": _l("The report's parameters are no longer valid."),
    "requester_missing": _l("The account that requested the report no longer exists."),
    "not_allowed": _l("Your role no longer allows this report."),
    "queue_unavailable": _l("The report queue could not be reached. Please try again later."),
    "worker_lost": _l("The report stopped before it was finished. Please request it again."),
    "no_worker": _l(
        "No report worker took the report up. Please ask your administrator to start one."
    ),
}
# A running job older than this was stopped by RQ or lost with its worker: the work horse
# that died cannot mark its own row.
STALLED_AFTER = timedelta(seconds=JOB_TIMEOUT_SECONDS + 5 * 60)

# Coded progress steps a build may report, with their labels; unknown steps show as is.
STEP_LABELS: dict[str, Any] = {
    "queued": _l("Waiting for a worker"),
    "started": _l("Started"),
    "counting": _l("Counting"),
    "tables": _l("Building the tables"),
    "rendering": _l("Laying out the PDF"),
    "storing": _l("Storing the file"),
    "done": _l("Finished"),
    "failed": _l("Stopped"),
}


class ReportError(Exception):
    """Raised by a build to stop with a coded error (a key of ``ERROR_LABELS``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# Models -------------------------------------------------------------------------------------


class ReportJob(db.Model):
    """One requested report: who asked for what, and how far it got."""

    __tablename__ = "report_jobs"
    __table_args__ = (
        enum_check("status", JobStatus),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
        CheckConstraint(
            "(status = 'failed') = (error_code IS NOT NULL)", name="error_code_when_failed"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(40))
    # JSON object of coded values (``_CODE``): no names, no free text.
    parameters: Mapped[str] = mapped_column(Text, default="{}")
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(enum_string(JobStatus), default=JobStatus.QUEUED.value)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    progress_step: Mapped[str] = mapped_column(String(40), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    file: Mapped[ReportFile | None] = relationship(
        back_populates="job", uselist=False, cascade="all, delete-orphan", lazy="select"
    )

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.parameters or "{}")

    @property
    def status_enum(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def kind_label(self) -> str:
        kind = REPORT_KINDS.get(self.kind)
        return str(kind.label) if kind else self.kind

    @property
    def step_label(self) -> str:
        return str(STEP_LABELS.get(self.progress_step, self.progress_step))

    @property
    def error_label(self) -> str | None:
        if self.error_code is None:
            return None
        return str(ERROR_LABELS.get(self.error_code, ERROR_LABELS["build_failed"]))

    def __repr__(self) -> str:
        return f"<ReportJob {self.id} {self.kind} {self.status}>"


class ReportFile(db.Model):
    """A finished report's bytes, in the database so every app instance can serve it."""

    __tablename__ = "report_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("report_jobs.id", ondelete="CASCADE"), unique=True
    )
    content_type: Mapped[str] = mapped_column(String(100))
    # Built from codes and dates only (``safe_filename``), never from personal data.
    filename: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[ReportJob] = relationship(back_populates="file")


# Registry -----------------------------------------------------------------------------------

Progress = Callable[[int, str], None]
Build = Callable[[ReportJob, Progress], tuple[str, str, bytes]]


@dataclass(frozen=True)
class ReportKind:
    code: str
    label: Any
    build: Build
    may_request: Callable[[Any], bool]


# Filled at import time by the modules that define kinds (code, not data: the same in every
# process).
REPORT_KINDS: dict[str, ReportKind] = {}


def register_report_kind(
    code: str,
    label: Any,
    build: Build,
    *,
    may_request: Callable[[Any], bool] | None = None,
) -> ReportKind:
    """Register a kind of report; ``may_request(user)`` defaults to the statistics roles."""
    if not _STEP.fullmatch(code):
        raise ValueError(f"malformed report kind: {code!r}")
    kind = ReportKind(code, label, build, may_request or policy.can_view_statistics)
    REPORT_KINDS[code] = kind
    return kind


def kinds_for(user) -> list[ReportKind]:
    """Return the kinds of report the user may request."""
    return [kind for kind in REPORT_KINDS.values() if kind.may_request(user)]


def can_use_reports(user) -> bool:
    """Return whether the user may use the reports page at all."""
    return bool(kinds_for(user))


def visible_report_jobs(user) -> Select:
    """Return the jobs the user may see: their own."""
    return select(ReportJob).where(ReportJob.requested_by_id == user.id)


def safe_filename(*parts: Any, extension: str) -> str:
    """Return a download name built from codes: letters, digits and dashes only."""
    cleaned = [re.sub(r"[^A-Za-z0-9-]", "", str(part).replace("_", "-")) for part in parts]
    stem = "-".join(part for part in cleaned if part) or "haven-report"
    return f"{stem[:100]}.{extension}"


def _coded_parameters(params: dict[str, Any]) -> str:
    """Return the parameters as JSON, refusing anything that is not a coded value."""
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not _STEP.fullmatch(key):
            raise ValueError("report parameter names must be codes")
        coded = isinstance(value, str) and _CODE.fullmatch(value) is not None
        if not (value is None or isinstance(value, bool | int) or coded):
            raise ValueError("report parameters must be coded values, never free text")
        clean[key] = value
    return json.dumps(clean, sort_keys=True)


# Running ------------------------------------------------------------------------------------


def submit_report(kind: str, params: dict[str, Any], user) -> ReportJob:
    """Record a report job and queue it, or run it now when no queue is configured.

    The reader's language is kept with the parameters so a worker renders in it. Does
    not commit except where the queue needs it (see below); the view commits.

    :raises KeyError: for a kind that is not registered.
    :raises PermissionError: when the user may not request the kind.
    :raises ValueError: for parameters that are not coded values.
    """
    report_kind = REPORT_KINDS[kind]
    if not report_kind.may_request(user):
        raise PermissionError(kind)
    params = {"language": str(get_locale() or "en"), **params}
    job = ReportJob(
        kind=kind,
        parameters=_coded_parameters(params),
        requested_by_id=user.id,
        agency_id=user.agency_id,
        status=JobStatus.QUEUED.value,
        progress=0,
        progress_step="queued",
    )
    db.session.add(job)
    db.session.flush()
    audit.record(
        "report.requested",
        object_type="report_job",
        object_id=job.id,
        field_names=[f"parameter.{name}" for name in sorted(params)],
        user=user,
    )
    redis_url = current_app.config.get("HAVEN_REDIS_URL")
    if redis_url:
        # The worker must find the row: commit before the id reaches the queue.
        db.session.commit()
        try:
            report_queue(redis_url).enqueue(
                run_report_job,
                job.id,
                job_timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=0,
                failure_ttl=24 * 3600,
                description="haven report job",
            )
        except Exception:
            current_app.logger.exception("report job %s could not be queued", job.id)
            _fail(job, "queue_unavailable")
        return job
    execute_report_job(job, commit=False)
    return job


def report_queue(redis_url: str):
    """Return the RQ queue of report jobs on the Redis at the URL."""
    from redis import Redis
    from rq import Queue

    return Queue(QUEUE_NAME, connection=Redis.from_url(redis_url))


def execute_report_job(job: ReportJob, *, commit: bool) -> None:
    """Run the job's build, store its file and mark it done, or failed with a coded error.

    ``commit`` is for the worker: it commits each progress step so the page can show it.
    Inline (in a request) nothing is committed here, and a failing build is rolled back to
    a savepoint so the job row survives to say it failed.
    """
    kind = REPORT_KINDS.get(job.kind)
    if kind is None:
        _fail(job, "unknown_kind")
        return
    user = job.requested_by
    if user is None:
        _fail(job, "requester_missing")
        return
    if not kind.may_request(user):
        _fail(job, "not_allowed")
        return
    job.status = JobStatus.RUNNING.value
    job.started_at = utcnow()
    _set_progress(job, 1, "started")
    if commit:
        db.session.commit()

    def progress(percent: int, step: str) -> None:
        _set_progress(job, percent, step)
        if commit:
            db.session.commit()

    job_id = job.id
    try:
        language = job.params.get("language") or current_app.config["BABEL_DEFAULT_LOCALE"]
        savepoint = db.session.begin_nested() if not commit else nullcontext()
        with savepoint, _request_context(), force_locale(language):
            filename, content_type, body = kind.build(job, progress)
    except Exception as error:  # any failure becomes a coded error
        code = error.code if isinstance(error, ReportError) else "build_failed"
        if code not in ERROR_LABELS:
            code = "build_failed"
        # The log gets the traceback; the row gets the code only.
        current_app.logger.exception("report job %s (%s) failed", job_id, job.kind)
        if commit:
            db.session.rollback()
            job = db.session.get(ReportJob, job_id)
        _fail(job, code)
        return
    _set_progress(job, 95, "storing")
    job.file = ReportFile(
        content_type=content_type,
        filename=filename,
        size=len(body),
        content=body,
        created_at=utcnow(),
    )
    job.status = JobStatus.DONE.value
    job.finished_at = utcnow()
    _set_progress(job, 100, "done")
    db.session.flush()


def _request_context():
    """Return a request context for a build outside a request (worker, CLI).

    Templates, ``url_for`` and the context processors expect one, as in the app.
    """
    if has_request_context():
        return nullcontext()
    base_url = current_app.config.get("HAVEN_BASE_URL") or "http://localhost"
    return current_app.test_request_context("/", base_url=base_url)


def _set_progress(job: ReportJob, percent: int, step: str) -> None:
    if not _STEP.fullmatch(step):
        raise ValueError("a progress step is a code")
    job.progress = max(0, min(100, int(percent)))
    job.progress_step = step


def _fail(job: ReportJob, code: str) -> None:
    job.status = JobStatus.FAILED.value
    job.error_code = code
    job.progress_step = "failed"
    job.finished_at = utcnow()
    db.session.flush()


def run_report_job(job_id: str) -> None:
    """Run one queued job in a worker: an app from the environment, the job, one commit."""
    from core import create_app

    app = create_app()
    try:
        with app.app_context():
            run_report_job_here(job_id)
    finally:
        with app.app_context():
            db.session.remove()
            # This app's engine lives as long as the job; close its connections.
            db.engine.dispose()


def run_report_job_here(job_id: str) -> None:
    """Run one queued job in the current app context and commit."""
    job = db.session.get(ReportJob, job_id)
    if job is None:
        current_app.logger.warning("report job %s does not exist (deleted?)", job_id)
        return
    if job.status != JobStatus.QUEUED.value:
        # Delivered twice (a worker died after finishing): nothing to do.
        return
    try:
        execute_report_job(job, commit=True)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


@dataclass(frozen=True)
class SweepResult:
    stalled: int
    unclaimed: int
    deleted: int


def sweep_report_jobs(now: datetime | None = None) -> SweepResult:
    """Fail the jobs no worker will finish and delete expired reports; return the counts.

    Audited per job. Does not commit; the CLI does.
    """
    now = now or utcnow()
    config = current_app.config
    waited = now - timedelta(hours=int(config["HAVEN_REPORT_QUEUE_WAIT_HOURS"]))
    retained = now - timedelta(days=int(config["HAVEN_REPORT_RETENTION_DAYS"]))
    stalled = db.session.scalars(
        select(ReportJob).where(
            ReportJob.status == JobStatus.RUNNING.value, ReportJob.started_at < now - STALLED_AFTER
        )
    ).all()
    unclaimed = db.session.scalars(
        select(ReportJob).where(
            ReportJob.status == JobStatus.QUEUED.value, ReportJob.created_at < waited
        )
    ).all()
    for job, code in [
        *((j, "worker_lost") for j in stalled),
        *((j, "no_worker") for j in unclaimed),
    ]:
        _fail(job, code)
        audit.record(
            "report.failed", object_type="report_job", object_id=job.id, field_names=["status"]
        )
    expired = db.session.scalars(
        select(ReportJob).where(
            ReportJob.status.in_([JobStatus.DONE.value, JobStatus.FAILED.value]),
            ReportJob.finished_at < retained,
        )
    ).all()
    for job in expired:
        audit.record("report.deleted", object_type="report_job", object_id=job.id)
        db.session.delete(job)
    db.session.flush()
    return SweepResult(len(stalled), len(unclaimed), len(expired))


# CLI ----------------------------------------------------------------------------------------


def register_sweep_command(group: click.Group) -> None:
    """Add ``sweep`` to the ``flask reports`` group."""

    @group.command("sweep")
    def sweep_command() -> None:
        """Fail reports no worker will finish; delete reports past their retention."""
        result = sweep_report_jobs()
        db.session.commit()
        click.echo(
            f"{result.stalled} stalled and {result.unclaimed} unclaimed reports failed, "
            f"{result.deleted} expired reports deleted"
        )


def register_worker_command(group: click.Group) -> None:
    """Add ``worker`` to the ``flask reports`` group."""

    @group.command("worker")
    @click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
    def worker_command(burst: bool) -> None:
        """Run report jobs from the Redis queue (HAVEN_REDIS_URL) until stopped."""
        redis_url = current_app.config.get("HAVEN_REDIS_URL")
        if not redis_url:
            raise click.ClickException(
                "HAVEN_REDIS_URL is not set: reports run inline, no worker is needed."
            )
        from rq import Worker

        queue = report_queue(redis_url)
        # A worker that starts after a crash fails what the dead one left behind.
        result = sweep_report_jobs()
        db.session.commit()
        if result.stalled or result.unclaimed:
            click.echo(f"{result.stalled + result.unclaimed} abandoned reports marked failed")
        # Each job runs in a forked work horse that builds its own app from the
        # environment (run_report_job); this process only waits for jobs.
        db.session.remove()
        db.engine.dispose()
        Worker([queue], connection=queue.connection).work(burst=burst)
