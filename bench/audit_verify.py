"""Benchmark `flask audit verify`: fill PostgreSQL with N audit entries, link them, time verify.

    python -m bench.audit_verify [--entries 1000000] [--database-url URL] [--reset]

Without --database-url a throwaway database is created on the local PostgreSQL server (the
test suite's helper finds or starts one) and dropped afterwards. A given database must not
hold audit entries already, unless --reset (which deletes them) is passed.

Entries are bulk-inserted unlinked with COPY, as requests would have written them, then
linked by the real linker (``link_pending``), then ``verify_chain`` is timed. Target (DESIGN,
"Performance targets"): 1M entries verified in < 15 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_SECONDS = 15.0
TARGET_ENTRIES = 1_000_000
ACTIONS = (
    ("case.viewed", "allowed", '["address","family_name","given_name","phone"]'),
    ("case.updated", "allowed", '["phone"]'),
    ("case.listed", "allowed", '["family_name","given_name"]'),
    ("referral.sent", "allowed", '["contact","identity"]'),
    ("case.viewed", "denied", "[]"),
    ("auth.login", "allowed", "[]"),
)


def _rows(count: int):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for number in range(count):
        action, outcome, fields = ACTIONS[number % len(ACTIONS)]
        yield (
            start + timedelta(milliseconds=250 * number),
            1 + number % 400,
            1 + number % 40,
            action,
            "case",
            f"{number:08x}-0000-4000-8000-000000000000",
            outcome,
            fields,
            f"10.{number % 250}.{number % 199}.{number % 97}",
        )


def bulk_insert(connection, count: int) -> None:
    """COPY ``count`` unlinked entries into audit_entries."""
    columns = (
        "occurred_at, user_id, agency_id, action, object_type, object_id, outcome,"
        " field_names, remote_addr"
    )
    cursor = connection.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY audit_entries ({columns}) FROM STDIN") as copy:
        for row in _rows(count):
            copy.write_row(row)
    connection.commit()


def run(database_url: str, entries: int, reset: bool) -> int:
    from sqlalchemy import func, select

    from core import audit, create_app
    from core.audit import AuditEntry
    from core.db import db

    work = Path(tempfile.mkdtemp(prefix="haven-bench-audit-"))
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "HAVEN_KEYRING_FILE": str(work / "keyring.json"),
            "HAVEN_AUDIT_CHECKPOINT_DIR": str(work / "checkpoints"),
        }
    )
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            print("audit verify bench: needs a PostgreSQL database URL", file=sys.stderr)
            return 2
        AuditEntry.__table__.create(db.engine, checkfirst=True)
        present = db.session.scalar(select(func.count()).select_from(AuditEntry))
        db.session.rollback()
        if present and not reset:
            print(
                f"audit verify bench: the database holds {present} audit entries;"
                " pass --reset to delete them",
                file=sys.stderr,
            )
            return 2
        with db.engine.connect() as connection:
            if present:
                connection.exec_driver_sql("TRUNCATE audit_entries RESTART IDENTITY")
                connection.commit()
            started = time.perf_counter()
            bulk_insert(connection, entries)
            inserted = time.perf_counter() - started
            connection.exec_driver_sql("ANALYZE audit_entries")
            connection.commit()

        started = time.perf_counter()
        linked = audit.link_pending(batch_size=5000)
        linking = time.perf_counter() - started
        audit.write_checkpoint()

        started = time.perf_counter()
        result = audit.verify_chain()
        verifying = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()

    scaled = verifying * TARGET_ENTRIES / max(entries, 1)
    print(f"audit entries:         {entries:>12,}")
    print(f"bulk insert (COPY):    {inserted:>10.1f} s")
    print(f"link (link_pending):   {linking:>10.1f} s  ({linked / max(linking, 1e-9):,.0f}/s)")
    print(f"verify_chain:          {verifying:>10.2f} s  target < {TARGET_SECONDS:.0f} s for 1M")
    if entries != TARGET_ENTRIES:
        print(f"  scaled to 1M:        {scaled:>10.2f} s  (linear)")
    print(f"  result: {'OK' if result.ok else 'BROKEN'}, {result.entries_checked:,} checked")
    within = scaled < TARGET_SECONDS
    print(f"audit verify target:   {'met' if within else 'MISSED'}")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=TARGET_ENTRIES)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway database)")
    parser.add_argument("--reset", action="store_true", help="delete existing audit entries")
    args = parser.parse_args(argv)
    if args.database_url:
        return run(args.database_url, args.entries, args.reset)
    from tests.postgres_server import create_test_database, postgres_url

    url, drop = create_test_database(postgres_url())
    try:
        return run(url, args.entries, reset=False)
    finally:
        drop()  # terminates the connections still open to it first


if __name__ == "__main__":
    sys.exit(main())
