"""Report jobs: inline and through a real Redis, failures, access, the queue payload, audit."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.audit import AuditEntry
from core.db import db as database
from core.models import AgencyType, Role
from reports import jobs
from reports.jobs import JobStatus, ReportFile, ReportJob, register_report_kind, submit_report
from reports.statistics import refresh_statistics
from tests.factories import client_for, make_agency, make_user
from tests.redis_server import redis_url

SECRET_NAME = "Zebulonia"


@pytest.fixture
def world(db):
    """18 cases in 2025: 15 by NGO North, 3 by the police (a small count the PDF must hide)."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    police = make_agency(AgencyType.POLICE, name="Police Unit")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "caseworker": make_user(north, Role.CASEWORKER),
        "police": make_user(police, Role.CASEWORKER),
        "analyst": make_user(nrm, Role.ANALYST),
        "analyst2": make_user(nrm, Role.ANALYST),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    seed_reference_lists()
    for number in range(18):
        user = people["police"] if number >= 15 else people["caseworker"]
        open_case(
            user,
            {
                "given_name": SECRET_NAME if number == 0 else f"Person{number}",
                "family_name": "Testova",
                "sex": "Feminine" if number < 9 else "Masculine",
                "identified_on": date(2025, 1 + number % 6, 10),
                "estimated_age": "30" if number % 3 else "16",
                "exploitation_form": ["ForcedLabour"] if number % 2 else ["SexualExploitation"],
            },
        )
    refresh_statistics()
    database.session.commit()
    return people


def request_report(client, **fields):
    data = {"kind": "statistics_report", "grain": "year", "first": "2025", "last": "2025"}
    return client.post_form("/reports/", data | fields)


def only_job() -> ReportJob:
    database.session.expire_all()
    return database.session.scalars(select(ReportJob)).one()


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def police_rows(text: str) -> list[str]:
    """Return the lines of the agency-type chart and table that name the police."""
    rows = re.findall(r"Police counter-trafficking unit[^\n]*", text)
    assert rows, "no police row in the PDF"
    return rows


# Inline ---------------------------------------------------------------------------------


def test_it_builds_the_statistics_report_inline_and_serves_it(app, world):
    client = client_for(app, world["analyst"])
    response = request_report(client)
    job = only_job()
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/reports/{job.id}")
    assert job.status == JobStatus.DONE
    assert job.progress == 100
    assert job.error_code is None
    assert job.started_at and job.finished_at
    page = client.get(f"/reports/{job.id}").get_data(as_text=True)
    assert f"/reports/{job.id}/download" in page
    assert 'http-equiv="refresh"' not in page

    download = client.get(f"/reports/{job.id}/download")
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert "no-store" in download.headers["Cache-Control"]
    disposition = download.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="haven-statistics-2025-2025-year.pdf"'
    text = pdf_text(download.data)
    assert "Confidential" in text
    assert "Statistics report" in text
    assert SECRET_NAME not in text
    # The police's 3 cases are "<5" in the table; the true count never appears in that row.
    rows = police_rows(text)
    assert any("<5" in row for row in rows)
    assert not any(re.search(r"(?<![<\d])3(?!\d)", row) for row in rows)
    # The NGO's 15 would give the 3 back from the total of 18: it is withheld too.
    assert "15" not in re.search(r"NGO[^\n]*", text).group(0)
    assert "Referral outcomes by service" in text


@pytest.mark.parametrize(
    ("language", "heading"),
    [("az", "Statistik hesabat"), ("ru", "Статистический отчёт")],
    ids=["az", "ru"],
)
def test_the_report_is_in_the_requesters_language(app, world, language, heading):
    world["analyst"].language = language
    database.session.commit()
    client = client_for(app, world["analyst"])
    request_report(client)
    job = only_job()
    assert job.params["language"] == language
    text = pdf_text(database.session.get(ReportFile, job.file.id).content)
    assert "<5" in text
    assert heading in text and "Statistics report" not in text


def test_a_period_with_too_few_cases_shows_nothing(app, world):
    client = client_for(app, world["analyst"])
    request_report(client, first="2025", last="2025", grain="month")
    assert only_job().status == JobStatus.DONE
    # 2024 has no cases at all: every table says so.
    database.session.execute(ReportJob.__table__.delete())
    database.session.commit()
    job = submit_report("statistics_report", {"first": 2024, "last": 2024}, world["analyst"])
    database.session.commit()
    text = pdf_text(job.file.content)
    assert "Too few cases in this period to show anything." in text


# Failure ---------------------------------------------------------------------------------


@pytest.fixture
def failing_kind():
    def build(job, progress):
        progress(40, "counting")
        raise RuntimeError(f"lookup of {SECRET_NAME} failed at /srv/haven/secret.py")

    register_report_kind("failing_report", "Failing", build)
    yield "failing_report"
    jobs.REPORT_KINDS.pop("failing_report")


def test_a_failing_build_stores_a_coded_error_only(app, world, failing_kind):
    client = client_for(app, world["analyst"])
    response = request_report(client, kind=failing_kind)
    assert response.status_code == 302
    job = only_job()
    assert job.status == JobStatus.FAILED
    assert job.error_code == "build_failed"
    assert job.file is None
    row = " ".join(str(value) for value in database.session.execute(select(ReportJob)).one())
    stored = repr(database.session.execute(select(ReportJob.__table__)).one())
    assert SECRET_NAME not in stored and "secret.py" not in stored and "Traceback" not in row
    page = client.get(f"/reports/{job.id}").get_data(as_text=True)
    assert "could not be built" in page
    assert SECRET_NAME not in page
    assert client.get(f"/reports/{job.id}/download").status_code == 404


def test_bad_parameters_fail_with_their_code(app, world):
    job = submit_report("statistics_report", {"first": 2025, "grain": "week"}, world["analyst"])
    assert job.status == JobStatus.FAILED
    assert job.error_code == "invalid_parameters"


def test_parameters_must_be_codes(app, world):
    with pytest.raises(ValueError):
        submit_report(
            "statistics_report", {"first": 2025, "note": "Anna Ivanova"}, world["analyst"]
        )


# Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("analyst", 200), ("coordinator", 200), ("caseworker", 404), ("police", 404)],
)
def test_who_may_open_the_reports_page(app, world, persona, expected):
    assert client_for(app, world[persona]).get("/reports/").status_code == expected


def test_only_the_requester_sees_a_job(app, world):
    request_report(client_for(app, world["analyst"]))
    job = only_job()
    for persona in ("analyst2", "coordinator", "caseworker"):
        client = client_for(app, world[persona])
        for url in (f"/reports/{job.id}", f"/reports/{job.id}/download"):
            assert client.get(url).status_code == 404, (persona, url)
        assert job.id not in client.get("/reports/").get_data(as_text=True)
    assert job.id in client_for(app, world["analyst"]).get("/reports/").get_data(as_text=True)
    denied = database.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "report.open")
    ).all()
    assert {entry.outcome for entry in denied} == {"denied"}
    assert {entry.user_id for entry in denied} == {world["analyst2"].id, world["coordinator"].id}


def test_a_caseworker_cannot_request_a_report(app, world):
    client = client_for(app, world["caseworker"])
    assert request_report(client).status_code == 404
    assert database.session.scalars(select(ReportJob)).all() == []
    with pytest.raises(PermissionError):
        submit_report("statistics_report", {"first": 2025, "last": 2025}, world["caseworker"])


def test_an_invalid_form_is_shown_again(app, world):
    client = client_for(app, world["analyst"])
    response = request_report(client, kind="no_such_report")
    assert response.status_code == 400
    assert database.session.scalars(select(ReportJob)).all() == []


def test_requests_and_downloads_are_audited(app, world):
    client = client_for(app, world["analyst"])
    request_report(client)
    job = only_job()
    client.get(f"/reports/{job.id}/download")
    entries = database.session.scalars(
        select(AuditEntry).where(AuditEntry.object_type == "report_job")
    ).all()
    actions = {entry.action: entry for entry in entries}
    assert set(actions) == {"report.requested", "report.downloaded"}
    for entry in entries:
        assert entry.object_id == job.id
        assert entry.user_id == world["analyst"].id
        assert entry.outcome == "allowed"
    assert actions["report.requested"].field_name_list == [
        "parameter.first",
        "parameter.grain",
        "parameter.language",
        "parameter.last",
    ]


def test_the_navigation_offers_reports_to_analysts_only(app, world):
    assert 'href="/reports/"' in client_for(app, world["analyst"]).get("/").get_data(as_text=True)
    page = client_for(app, world["caseworker"]).get("/", follow_redirects=True)
    assert 'href="/reports/"' not in page.get_data(as_text=True)


# Through Redis ---------------------------------------------------------------------------


@pytest.fixture
def queue(app, monkeypatch):
    """The report queue on a real Redis (a fresh database number), emptied afterwards."""
    from rq import Queue

    url = redis_url()
    monkeypatch.setitem(app.config, "HAVEN_REDIS_URL", url)
    # The worker builds its app from the environment, as in production.
    monkeypatch.setenv("HAVEN_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("HAVEN_KEYRING_FILE", app.config["HAVEN_KEYRING_FILE"])
    monkeypatch.setenv("HAVEN_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("HAVEN_AUDIT_CHECKPOINT_DIR", app.config["HAVEN_AUDIT_CHECKPOINT_DIR"])
    monkeypatch.setenv("HAVEN_REDIS_URL", url)
    queue = jobs.report_queue(url)
    assert isinstance(queue, Queue)
    queue.empty()
    yield queue
    queue.empty()
    queue.connection.close()


def test_a_job_runs_through_redis_and_a_worker(app, world, queue):
    from rq import SimpleWorker

    client = client_for(app, world["analyst"])
    response = request_report(client)
    assert response.status_code == 302
    job = only_job()
    assert job.status == JobStatus.QUEUED
    page = client.get(f"/reports/{job.id}").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in page
    assert client.get(f"/reports/{job.id}/status.json").json["status"] == "queued"

    # The queue holds the job's id and nothing else.
    [queued] = queue.get_jobs()
    assert queued.args == (job.id,)
    assert queued.kwargs == {}
    assert queued.func_name == "reports.jobs.run_report_job"
    assert SECRET_NAME.encode() not in queued.data
    assert b"2025" not in queued.data

    worker = SimpleWorker([queue], connection=queue.connection)
    assert worker.work(burst=True)

    job = only_job()
    assert job.status == JobStatus.DONE, job.error_code
    assert job.progress == 100
    status = client.get(f"/reports/{job.id}/status.json").json
    assert status["status"] == "done"
    assert status["download"] == f"/reports/{job.id}/download"
    page = client.get(f"/reports/{job.id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    download = client.get(f"/reports/{job.id}/download")
    assert download.status_code == 200
    assert any("<5" in row for row in police_rows(pdf_text(download.data)))


def test_a_job_that_fails_in_the_worker_stores_its_code(app, world, queue, failing_kind):
    from rq import SimpleWorker

    request_report(client_for(app, world["analyst"]), kind=failing_kind)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job = only_job()
    assert job.status == JobStatus.FAILED
    assert job.error_code == "build_failed"
    # The progress the build committed before it failed is kept.
    assert job.progress == 40


def test_an_unreachable_queue_fails_the_job_with_a_code(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "HAVEN_REDIS_URL", "redis://127.0.0.1:1/0")
    request_report(client_for(app, world["analyst"]))
    job = only_job()
    assert job.status == JobStatus.FAILED
    assert job.error_code == "queue_unavailable"


# Sweeping: abandoned jobs and old files ------------------------------------------------------


def _job(user, status: JobStatus, **times) -> ReportJob:
    job = ReportJob(
        kind="statistics_report",
        parameters="{}",
        requested_by_id=user.id,
        agency_id=user.agency_id,
        status=status.value,
        progress=0,
        progress_step="queued",
        error_code="build_failed" if status == JobStatus.FAILED else None,
        **times,
    )
    database.session.add(job)
    database.session.flush()
    return job


def test_the_sweep_fails_abandoned_jobs_and_deletes_expired_reports(app, world):
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    analyst = world["analyst"]
    lost = _job(
        analyst,
        JobStatus.RUNNING,
        created_at=now - timedelta(hours=2),
        started_at=now - jobs.STALLED_AFTER - timedelta(minutes=1),
    )
    busy = _job(
        analyst,
        JobStatus.RUNNING,
        created_at=now - timedelta(minutes=10),
        started_at=now - jobs.STALLED_AFTER + timedelta(minutes=1),
    )
    unclaimed = _job(analyst, JobStatus.QUEUED, created_at=now - timedelta(hours=25))
    waiting = _job(analyst, JobStatus.QUEUED, created_at=now - timedelta(hours=23))
    old = _job(
        analyst,
        JobStatus.DONE,
        created_at=now - timedelta(days=31),
        finished_at=now - timedelta(days=31),
    )
    old.file = ReportFile(
        content_type="application/pdf",
        filename="old.pdf",
        size=1,
        content=b"x",
        created_at=now - timedelta(days=31),
    )
    recent = _job(
        analyst,
        JobStatus.DONE,
        created_at=now - timedelta(days=29),
        finished_at=now - timedelta(days=29),
    )
    ids = {name: job.id for name, job in locals().items() if isinstance(job, ReportJob)}
    database.session.commit()

    result = jobs.sweep_report_jobs(now)
    database.session.commit()

    assert (result.stalled, result.unclaimed, result.deleted) == (1, 1, 1)
    database.session.expire_all()
    status = {name: database.session.get(ReportJob, job_id) for name, job_id in ids.items()}
    assert status["old"] is None
    assert database.session.scalars(select(ReportFile)).all() == []
    assert (status["lost"].status, status["lost"].error_code) == ("failed", "worker_lost")
    assert (status["unclaimed"].status, status["unclaimed"].error_code) == ("failed", "no_worker")
    assert status["busy"].status == "running" and status["waiting"].status == "queued"
    assert status["recent"].status == "done"
    # The requester's page says what happened instead of waiting forever.
    page = client_for(app, analyst).get(f"/reports/{ids['lost']}").get_data(as_text=True)
    assert "stopped before it was finished" in page and 'http-equiv="refresh"' not in page
    actions = database.session.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("report.%"))
    ).all()
    assert sorted(actions) == ["report.deleted", "report.failed", "report.failed"]


def test_the_sweep_command_reports_what_it_did(app, world):
    _job(world["analyst"], JobStatus.QUEUED, created_at=datetime_days_ago(2))
    database.session.commit()
    result = app.test_cli_runner().invoke(args=["reports", "sweep"])
    assert result.exit_code == 0, result.output
    assert "0 stalled and 1 unclaimed reports failed, 0 expired reports deleted" in result.output
    assert only_job().error_code == "no_worker"


def datetime_days_ago(days: int):
    from datetime import timedelta

    from core.db import utcnow

    return utcnow() - timedelta(days=days)


def test_the_request_form_offers_the_years_counted_on_a_new_installation(app, world):
    from reports.statistics import Margin, Refresh

    # As after installing: cases of 2025, but the statistics never built.
    database.session.execute(Refresh.__table__.delete())
    database.session.execute(Margin.__table__.delete())
    database.session.commit()
    page = client_for(app, world["analyst"]).get("/reports/").get_data(as_text=True)
    first = re.search(r'<select[^>]*name="first"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'value="(\d{4})"', first) == ["2025"]
