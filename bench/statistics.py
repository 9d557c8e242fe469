"""Benchmark the statistics dashboard and reports over 100k and 1M synthetic cases.

    python -m bench.statistics [--cases 100000 1000000] [--requests 60] [--reports 3]
                               [--database-url URL]

Generates the cases with ``core.demo.generate_cases`` (bulk COPY, no ORM, so no dirty-month
markers), rebuilds the pre-aggregated counts once (``flask reports refresh-statistics``, timed
and printed), then requests the dashboard in-process through Flask's test client as an
analyst (login, access policy and audit on) and prints the 95th percentile. Target
(DESIGN, "Performance targets"): statistics page over 1M cases, p95 < 100 ms. Then builds each
report kind (statistics report, annual national report, quarterly action-plan report: tables,
charts and the WeasyPrint PDF, as a job run inline) ``--reports`` times and prints the median.
With ``--database-url`` the cases already there count towards the sizes (a kept database is
reused instead of generated again).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 100.0


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _time_reports(app, analyst_id: int, years: list[int], runs: int) -> list[tuple[str, float]]:
    """Build each report kind ``runs`` times as the analyst; return (kind, median ms)."""
    from core.db import db
    from core.models import User
    from reports.jobs import JobStatus, submit_report

    last = years[-1]
    kinds = (
        ("statistics_report", {"grain": "year", "first": years[0], "last": last}),
        ("annual_national", {"grain": "year", "first": last, "last": last}),
        ("quarterly_action_plan", {"grain": "year", "first": last, "last": last, "quarter": 4}),
    )
    timings = []
    for kind, params in kinds:
        samples = []
        for _ in range(runs):
            with app.test_request_context("/reports/"):
                user = db.session.get(User, analyst_id)
                started = time.perf_counter()
                job = submit_report(kind, params, user)
                samples.append((time.perf_counter() - started) * 1000)
                assert job.status == JobStatus.DONE, (kind, job.error_code)
                db.session.rollback()
        timings.append((kind, sorted(samples)[len(samples) // 2]))
    return timings


def _existing_cases() -> int:
    from sqlalchemy import func, select

    from casework.models import Case
    from core.db import db

    return db.session.scalar(select(func.count()).select_from(Case)) or 0


def run(
    database_url: str, sizes: list[int], requests: int, batch_size: int, report_runs: int = 3
) -> int:
    import reports.all_models  # noqa: F401
    from bench.demo_generation import make_app
    from core.db import db
    from core.demo import generate_cases
    from core.models import Agency, AgencyType, Role
    from reports.statistics import available_years, refresh_statistics
    from tests.factories import login_as, make_user

    work = Path(tempfile.mkdtemp(prefix="haven-bench-statistics-"))
    app = make_app(database_url, work)
    app.config["HAVEN_AUDIT_LINK_AFTER_REQUEST"] = False
    with app.app_context():
        from sqlalchemy import select

        from core.models import User

        db.create_all()
        analyst = db.session.scalar(select(User).where(User.email == "bench-analyst@example.org"))
        if analyst is None:
            agency = Agency(name="Bench NRM analysts", type=AgencyType.MINISTRY.value)
            db.session.add(agency)
            db.session.flush()
            analyst = make_user(agency, Role.ANALYST, email="bench-analyst@example.org")
            db.session.commit()
        analyst_id = analyst.id
        have = _existing_cases()
    met = True
    for size in sorted(sizes):
        with app.app_context():
            started = time.perf_counter()
            if size > have:
                generate_cases(size - have, batch_size=batch_size)
                have = size
            generated = time.perf_counter() - started
            db.session.execute(db.text("ANALYZE"))
            started = time.perf_counter()
            refresh_statistics(None)
            db.session.commit()
            rebuilt = time.perf_counter() - started
            years = available_years()
        client = app.test_client()
        with app.app_context():
            from core.models import User

            login_as(client, db.session.get(User, analyst_id))
        url = f"/statistics/?grain=month&first={years[-1]}&last={years[-1]}"
        samples = []
        for number in range(requests + 5):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.status_code
            if number >= 5:
                samples.append(elapsed)
        p95 = _p95(samples)
        yearly = []
        for _ in range(requests // 2):
            started = time.perf_counter()
            client.get(f"/statistics/?grain=year&first={years[0]}&last={years[-1]}")
            yearly.append((time.perf_counter() - started) * 1000)
        print(
            f"{size:,} cases: generated in {generated:.0f} s, statistics rebuilt in {rebuilt:.1f} s"
        )
        print(
            f"  dashboard (one year by month) p95 {p95:.0f} ms, median "
            f"{sorted(samples)[len(samples) // 2]:.0f} ms (target < {TARGET_MS:.0f} ms)"
        )
        print(f"  dashboard (all years by year) p95 {_p95(yearly):.0f} ms")
        for kind, median in _time_reports(app, analyst_id, years, report_runs):
            print(f"  {kind} PDF: median {median:.0f} ms over {report_runs} builds")
        print(f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        met = met and (size < 1_000_000 or p95 < TARGET_MS)
    print(f"statistics page target: {'met' if met else 'MISSED'}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--reports", type=int, default=3, help="builds of each report kind")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway database)")
    args = parser.parse_args(argv)
    if args.database_url:
        return run(args.database_url, args.cases, args.requests, args.batch_size, args.reports)
    from tests.postgres_server import create_test_database, postgres_url

    url, drop = create_test_database(postgres_url())
    try:
        return run(url, args.cases, args.requests, args.batch_size, args.reports)
    finally:
        drop()


if __name__ == "__main__":
    sys.exit(main())
