"""Benchmark `flask demo cases`: generate N synthetic cases into a fresh PostgreSQL database.

    python -m bench.demo_generation [--cases 100000] [--batch-size 1000] [--database-url URL]

Without --database-url a throwaway database is created on the local PostgreSQL server (the
test suite's helper finds or starts one) and dropped afterwards. A given database gets its
tables created if missing; cases are added to whatever it holds.

Times ``core.demo.generate_cases`` (the body of `flask demo cases --count N`) from an empty
case table, demo agencies and accounts included. Target (DESIGN, "Performance targets"):
100k demo cases generated in < 60 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0
TARGET_CASES = 100_000


def make_app(database_url: str, work: Path):
    """Return a development-mode Haven app on ``database_url`` with keys under ``work``."""
    from core import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "HAVEN_KEYRING_FILE": str(work / "keys" / "keyring.json"),
            "HAVEN_AUDIT_CHECKPOINT_DIR": str(work / "checkpoints"),
            "SECRET_KEY": "bench-secret-key-" + "x" * 32,
        }
    )


def generate(app, cases: int, batch_size: int) -> float:
    """Create the tables if missing, generate ``cases`` cases; return the seconds it took."""
    import reports.all_models  # noqa: F401  (every table exists)
    from core.db import db
    from core.demo import generate_cases

    with app.app_context():
        db.create_all()
        started = time.perf_counter()
        generate_cases(cases, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        with db.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("ANALYZE")
        db.session.remove()
    return elapsed


def report(cases: int, elapsed: float) -> bool:
    """Print the figure beside its target; return whether the target was met."""
    scaled = elapsed * TARGET_CASES / max(cases, 1)
    label = "100k" if cases == TARGET_CASES else f"{cases:,}"
    print(f"{label} demo cases generated: {elapsed:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    print(f"  rate: {cases / max(elapsed, 1e-9):,.0f} cases/s", end="")
    print(f"; scaled to 100k: {scaled:.1f} s" if cases != TARGET_CASES else "")
    print(f"  load average after: {_load()}")
    met = scaled < TARGET_SECONDS
    print(f"demo generation target: {'met' if met else 'MISSED'}")
    return met


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(database_url: str, cases: int, batch_size: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="haven-bench-demo-"))
    app = make_app(database_url, work)
    with app.app_context():
        from core.db import db

        if db.engine.dialect.name != "postgresql":
            print("demo generation bench: needs a PostgreSQL database URL", file=sys.stderr)
            return 2
    print(f"  load average before: {_load()}")
    elapsed = generate(app, cases, batch_size)
    with app.app_context():
        from core.db import db

        db.engine.dispose()
    report(cases, elapsed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=TARGET_CASES)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway database)")
    args = parser.parse_args(argv)
    if args.database_url:
        return run(args.database_url, args.cases, args.batch_size)
    from tests.postgres_server import create_test_database, postgres_url

    url, drop = create_test_database(postgres_url())
    try:
        return run(url, args.cases, args.batch_size)
    finally:
        drop()


if __name__ == "__main__":
    sys.exit(main())
