"""Benchmark Haven's case pages under load, each as a ratio to a bare Flask "hello".

    python -m bench.web [--cases 100000] [--audit-entries 1000000] [--duration 10]
                        [--connections 32] [--database-url URL] [--reuse DIR]

Fills a throwaway PostgreSQL database (or the one given, which must be empty) with the demo
agencies and accounts, N synthetic cases (``generate_cases``) and M audit entries (COPY, as
``bench.audit_verify`` does, then linked), serves Haven (``wsgi:app``) and a bare Flask hello
app each with gunicorn, 2 sync workers, and loads each endpoint with wrk (32 connections,
``--duration`` seconds after a short warm-up) as a signed-in demo caseworker: login gate,
access policy and audit all on. Hello runs before and after the Haven endpoints; ratios are
taken to their mean. Prints requests/s, ratio, p95 latency and worker memory beside the
targets in DESIGN.md ("Performance targets"). Without wrk (apt-get install wrk) a Python
thread-based load generator is used instead, which is slower and says so.

``--reuse DIR`` keeps the filled database and its keys between runs: the first run creates a
database on the local server, fills it and records its URL and keys in DIR; later runs with
the same DIR skip generation (the database is never dropped; drop it by hand when done).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from bench.demo_generation import generate, make_app

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-secret-key-" + "x" * 32
BENCH_USER = "caseworker@ngo.demo"
MEMORY_TARGET_MB = 150

# A bare Flask app served the same way, the yardstick for every ratio.
hello_app = Flask("hello")


@hello_app.get("/")
def hello() -> str:
    return "Hello, World!"


@dataclass(frozen=True)
class Target:
    title: str
    ratio: float | None
    p95_ms: float | None


TARGETS = {
    "list": Target("case list (50 rows)", 0.12, 60),
    "view": Target("case view", 0.13, 60),
    "search": Target("blind-index search", 0.23, 40),
}


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx answers, socket errors and timeouts


# --------------------------------------------------------------------------- load


WRK_SCRIPT = """
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50=%d p95=%d p99=%d bad=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def run_wrk(
    url: str, seconds: float, connections: int, *, cookie: str = "", body: str = ""
) -> Result:
    script = Path(tempfile.mkdtemp(prefix="haven-bench-wrk-")) / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = {
        **os.environ,
        "BENCH_COOKIE": cookie,
        "BENCH_BODY": body,
        "BENCH_METHOD": "POST" if body else "GET",
    }
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
    ]
    output = subprocess.run(
        [*command, "-s", str(script), url], env=env, capture_output=True, text=True, check=True
    ).stdout
    match = re.search(
        r"BENCH requests=(\d+) duration_us=(\d+) p50=(\d+) p95=(\d+) p99=(\d+) bad=(\d+)", output
    )
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    requests, duration, p50, p95, p99, bad = (int(value) for value in match.groups())
    return Result(requests / (duration / 1e6), p50 / 1e3, p95 / 1e3, p99 / 1e3, requests, bad)


def run_threads(
    url: str, seconds: float, connections: int, *, cookie: str = "", body: str = ""
) -> Result:
    """A plain load generator for machines without wrk: one thread per connection."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Cookie": cookie} if cookie else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        mine, errors = [], 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                connection.request("POST" if body else "GET", parts.path, body or None, headers)
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status >= 400:
                    errors += 1
            except OSError:
                errors += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            bad[0] += errors

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1e3

    count = len(latencies)
    return Result(
        count / elapsed, percentile(0.5), percentile(0.95), percentile(0.99), count, bad[0]
    )


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """A gunicorn master with 2 sync workers serving one WSGI app on a free local port."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "--workers=2",
                "--worker-class=sync",
                f"--bind=127.0.0.1:{self.port}",
                "--log-level=warning",
                "--timeout=60",
                target,
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
        )

    def wait_until_up(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                status, _headers, _body = fetch(self.url + path)
                if status < 500:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn at {self.url} did not answer within {timeout:.0f} s")

    def worker_rss_mb(self) -> list[float]:
        """Return each worker's resident memory in MB (from /proc)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        sizes = []
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                sizes.append(int(match.group(1)) / 1024)
        return sizes

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fetch(url: str, *, cookie: str = "", body: str = "") -> tuple[int, dict[str, str], str]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request("POST" if body else "GET", path, body or None, headers)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


# --------------------------------------------------------------------------- setup


@dataclass
class Fixture:
    cookie: str
    case_id: str
    case_reference: str
    search_name: tuple[str, str, int]  # given, family, birth year of the case viewed


def prepare(app, cases: int, audit_entries: int, *, fill: bool = True) -> Fixture:
    """Fill the database (unless reused) and return a signed-in caseworker's cookie and a case
    to view."""
    import reports.all_models  # noqa: F401

    if fill:
        _fill(app, cases, audit_entries)
    else:  # a reused database: link what earlier runs' requests left pending
        from core import audit
        from core.db import db

        with app.app_context():
            started = time.perf_counter()
            linked = _link_everything(db, audit)
            print(f"  {linked:,} audit entries linked in {time.perf_counter() - started:.1f} s")
            db.session.remove()
    with app.app_context():
        # Pages show reference list labels and offer them as filters, as deployed (flask
        # init-dev seeds them); generate_cases alone leaves the lists empty. Idempotent.
        from casework.reference import seed_reference_data
        from core.db import db

        seed_reference_data()
        db.session.commit()
        db.session.remove()
    return _sign_in(app)


def _fill(app, cases: int, audit_entries: int) -> None:
    import reports.all_models  # noqa: F401
    from core.db import db

    elapsed = generate(app, cases, batch_size=1000)
    print(f"  {cases:,} cases generated in {elapsed:.1f} s", flush=True)
    with app.app_context():
        from core import audit

        if audit_entries:
            from bench.audit_verify import bulk_insert

            started = time.perf_counter()
            with db.engine.connect() as connection:
                bulk_insert(connection, audit_entries)
                # COPY ran on the raw DBAPI connection, outside any transaction SQLAlchemy
                # began, so Connection.commit() inside bulk_insert does not commit it.
                connection.connection.dbapi_connection.commit()
            copied = time.perf_counter() - started
            print(f"  {audit_entries:,} audit entries copied in {copied:.1f} s", flush=True)
        # Link what generation and COPY left pending, so no request links a backlog.
        started = time.perf_counter()
        linked = _link_everything(db, audit)
        print(f"  {linked:,} audit entries linked in {time.perf_counter() - started:.1f} s")
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
        db.session.remove()


def _sign_in(app) -> Fixture:
    from core.db import db

    with app.app_context():
        from sqlalchemy import select

        from casework.models import Case
        from core.models import User
        from core.sessions import SESSION_KEY, create_session

        user = db.session.scalar(select(User).where(User.email == BENCH_USER))
        _row, token = create_session(user, second_factor_done=True)
        db.session.commit()
        serializer = app.session_interface.get_signing_serializer(app)
        cookie = f"{app.config['SESSION_COOKIE_NAME']}={serializer.dumps({SESSION_KEY: token})}"
        # A case in the middle of the agency's list, with a name and birth date to search.
        visible = (
            select(Case)
            .where(Case.owner_agency_id == user.agency_id)
            .order_by(Case.created_at.desc())
            .offset(500)
            .limit(50)
        )
        chosen = None
        for case in db.session.scalars(visible):
            if case.date_of_birth is not None and case.given_name and case.family_name:
                chosen = case
                break
        if chosen is None:
            raise RuntimeError("no case with a name and birth date to benchmark")
        fixture = Fixture(
            cookie,
            chosen.id,
            chosen.reference,
            (chosen.given_name, chosen.family_name, chosen.date_of_birth.year),
        )
        db.session.remove()
        db.engine.dispose()
    return fixture


def _link_everything(db, audit) -> int:
    """Link every pending audit entry (link_pending may stop early, e.g. when busy)."""
    from sqlalchemy import func, select

    from core.audit import AuditEntry

    linked = 0
    for _attempt in range(1000):
        linked += audit.link_pending(batch_size=5000)
        pending = db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.chain_seq.is_(None))
        )
        db.session.rollback()
        if not pending:
            return linked
    raise RuntimeError(f"{pending} audit entries could not be linked")


def search_request(server: Gunicorn, fixture: Fixture) -> str | None:
    """Return the form body of a blind-index search (POST /cases/), or None without one.

    Searches for the fixture's case by full name (upper case, so normalisation is on the
    path) and birth year. The page's CSRF secret lands in the cookie session: the fixture's
    cookie is replaced by the one the page set.
    """
    status, headers, page = fetch(server.url + "/cases/", cookie=fixture.cookie)
    if status != 200 or 'name="birth_year"' not in page:
        return None
    token = None
    for tag in re.findall(r"<input[^>]*>", page):
        if 'name="csrf_token"' in tag:
            token = re.search(r'value="([^"]+)"', tag)
            break
    if "set-cookie" in headers:
        fixture.cookie = headers["set-cookie"].split(";", 1)[0]
    given, family, year = fixture.search_name
    return urllib.parse.urlencode(
        {
            "csrf_token": token.group(1) if token else "",
            "given_name": given.upper(),
            "family_name": family.upper(),
            "birth_year": str(year),
        }
    )


# --------------------------------------------------------------------------- run


def run(database_url: str, args, *, work: Path | None = None, fill: bool = True) -> int:
    work = work or Path(tempfile.mkdtemp(prefix="haven-bench-web-"))
    app = make_app(database_url, work)
    with app.app_context():
        from core.db import db

        if db.engine.dialect.name != "postgresql":
            print("web bench: needs a PostgreSQL database URL", file=sys.stderr)
            return 2
    print(f"  load average before setup: {_load()}", flush=True)
    fixture = prepare(app, args.cases, args.audit_entries, fill=fill)

    load = run_wrk if shutil.which("wrk") and not args.python_load else run_threads
    print(
        f"  load generator: {'wrk' if load is run_wrk else 'Python threads (no wrk: slower)'},"
        f" {args.connections} connections, {args.duration:g} s per endpoint"
        f" (+ {args.warmup:g} s warm-up)",
        flush=True,
    )
    env = {
        "HAVEN_ENV": "development",
        "HAVEN_DATABASE_URL": database_url,
        "HAVEN_KEYRING_FILE": str(work / "keys" / "keyring.json"),
        "HAVEN_SECRET_KEY": SECRET_KEY,
        "HAVEN_AUDIT_CHECKPOINT_DIR": str(work / "checkpoints"),
    }
    results: dict[str, Result] = {}
    hello_server = Gunicorn("bench.web:hello_app", {})
    haven = Gunicorn("wsgi:app", env)
    try:
        hello_server.wait_until_up("/")
        haven.wait_until_up("/healthz")

        def measure(name: str, url: str, **request) -> Result:
            load(url, args.warmup, args.connections, **request)
            result = load(url, args.duration, args.connections, **request)
            print(
                f"  {name:<14} {result.requests_per_second:8.0f} req/s  p95"
                f" {result.p95_ms:6.1f} ms  ({result.requests} requests, {result.bad} bad)",
                flush=True,
            )
            return result

        endpoints = {
            # No case data and no audit entry: what any signed-in page costs (session row,
            # login gate, navigation, base template). The case pages cannot beat it.
            "start": (haven.url + "/", "", 'class="main-nav'),
            "list": (haven.url + "/cases/", "", "HVN-"),
            "view": (haven.url + f"/cases/{fixture.case_id}", "", fixture.case_reference),
        }
        search = search_request(haven, fixture)
        if search is not None:
            endpoints["search"] = (haven.url + "/cases/", search, fixture.case_reference)
        for name, (url, body, marker) in endpoints.items():
            status, _headers, page = fetch(url, cookie=fixture.cookie, body=body)
            if status != 200 or marker not in page:
                raise RuntimeError(f"{name}: {url} answered {status} without {marker!r}")

        results["hello (before)"] = measure("hello", hello_server.url + "/")
        for name, (url, body, _marker) in endpoints.items():
            results[name] = measure(name, url, cookie=fixture.cookie, body=body)
        results["hello (after)"] = measure("hello", hello_server.url + "/")
        memory = haven.worker_rss_mb()
    finally:
        haven.stop()
        hello_server.stop()

    report(results, memory, searched=search is not None)
    return 0 if all(result.bad == 0 for result in results.values()) else 1


def report(results: dict[str, Result], memory: list[float], *, searched: bool) -> None:
    hello_rps = (
        results["hello (before)"].requests_per_second + results["hello (after)"].requests_per_second
    ) / 2
    print()
    print(f"{'endpoint':<22} {'req/s':>8} {'ratio':>7} {'target':>8} {'p95 ms':>8} {'target':>8}")
    for name in ("hello (before)", "hello (after)"):
        result = results[name]
        print(f"{name:<22} {result.requests_per_second:8.0f} {'':>7} {'':>8} {result.p95_ms:8.1f}")
    if "start" in results:
        start = results["start"]
        print(
            f"{'signed-in start page':<22} {start.requests_per_second:8.0f}"
            f" {start.requests_per_second / hello_rps:7.3f} {'(floor)':>8} {start.p95_ms:8.1f}"
        )
    for key, target in TARGETS.items():
        if key not in results:
            print(f"{target.title:<22} {'not measured: no blind-index search route yet':>40}")
            continue
        result = results[key]
        ratio = result.requests_per_second / hello_rps
        met = ratio >= target.ratio and result.p95_ms < target.p95_ms
        print(
            f"{target.title:<22} {result.requests_per_second:8.0f} {ratio:7.3f}"
            f" {'>= ' + format(target.ratio, '.2f'):>8} {result.p95_ms:8.1f}"
            f" {'< ' + format(target.p95_ms, 'g'):>8}  {'met' if met else 'MISSED'}"
        )
    if memory:
        worst = max(memory)
        sizes = ", ".join(f"{size:.0f}" for size in memory)
        verdict = "met" if worst < MEMORY_TARGET_MB else "MISSED"
        print(
            f"memory per worker after the run: {sizes} MB (target < {MEMORY_TARGET_MB} MB)"
            f"  {verdict}"
        )
    if not searched:
        print("search: Haven has no POST blind-index search route yet; list and view only")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--audit-entries", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--python-load", action="store_true", help="do not use wrk")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: throwaway)")
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="keep the filled database and keys in DIR and reuse them on later runs",
    )
    args = parser.parse_args(argv)
    if args.database_url:
        return run(args.database_url, args)
    from tests.postgres_server import create_test_database, postgres_url

    if args.reuse:
        work = Path(args.reuse).resolve()
        state = work / "database_url"
        if state.exists():
            print(f"  reusing the database and keys in {work}", flush=True)
            return run(state.read_text().strip(), args, work=work, fill=False)
        work.mkdir(parents=True, exist_ok=True)
        url, _drop = create_test_database(postgres_url())
        status = run(url, args, work=work)
        state.write_text(url + "\n")
        return status

    url, drop = create_test_database(postgres_url())
    try:
        return run(url, args)
    finally:
        drop()


if __name__ == "__main__":
    sys.exit(main())
