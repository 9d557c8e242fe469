"""Profile one request of each case page in-process: time, SQL statements and hot functions.

    python -m bench.profile_pages --reuse DIR [--requests 200] [--page list|view|search]

Uses the database and keys that ``python -m bench.web --reuse DIR`` filled. Runs each page
through Flask's test client (no HTTP server, no load generator), so the figures are the
application's own cost per request: wall time, the number of SQL statements and their share
of the time, and the functions that take the most cumulative time under cProfile. Use it to
find what to make faster; ``bench.web`` remains the measure against the targets.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

from sqlalchemy import event

from bench.demo_generation import make_app
from bench.web import _sign_in


class StatementCounter:
    """Count SQL statements and the time spent executing them."""

    def __init__(self, engine) -> None:
        self.count = 0
        self.seconds = 0.0
        self.echo = False
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args) -> None:
        self._started.append(time.perf_counter())

    def _after(self, _connection, _cursor, statement, *_args) -> None:
        if self.echo:
            print("   SQL:", " ".join(statement.split())[:300])
        self.count += 1
        self.seconds += time.perf_counter() - self._started.pop()


def page_requests(fixture) -> dict[str, tuple[str, str, dict | None]]:
    given, family, year = fixture.search_name
    return {
        "list": ("GET", "/cases/", None),
        "view": ("GET", f"/cases/{fixture.case_id}", None),
        "search": (
            "POST",
            "/cases/",
            {"given_name": given.upper(), "family_name": family.upper(), "birth_year": str(year)},
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", metavar="DIR", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--page", choices=["list", "view", "search"], action="append")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--statements", action="store_true", help="print one request's SQL")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key, e.g. tottime")
    args = parser.parse_args(argv)
    work = Path(args.reuse).resolve()
    database_url = (work / "database_url").read_text().strip()
    app = make_app(database_url, work)
    app.config["WTF_CSRF_ENABLED"] = False  # the search form is posted without its page
    fixture = _sign_in(app)
    cookie_name, cookie_value = fixture.cookie.split("=", 1)
    client = app.test_client()
    client.set_cookie(cookie_name, cookie_value)
    with app.app_context():
        from core.db import db

        counter = StatementCounter(db.engine)
    for name, (method, path, form) in page_requests(fixture).items():
        if args.page and name not in args.page:
            continue

        def one_request(name=name, method=method, path=path, form=form) -> None:
            response = client.open(path, method=method, data=form)
            if response.status_code != 200:
                raise SystemExit(f"{name}: {path} answered {response.status_code}")

        for _warm in range(20):
            one_request()
        if args.statements:
            print(f"{name}: the statements of one request")
            counter.echo = True
            one_request()
            counter.echo = False
        counter.count, counter.seconds = 0, 0.0
        started = time.perf_counter()
        for _request in range(args.requests):
            one_request()
        elapsed = (time.perf_counter() - started) / args.requests
        statements = counter.count / args.requests
        sql_ms = counter.seconds / args.requests * 1000
        print(
            f"{name}: {elapsed * 1000:.2f} ms per request, {statements:.1f} SQL statements"
            f" taking {sql_ms:.2f} ms"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for _request in range(args.requests):
            one_request()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
