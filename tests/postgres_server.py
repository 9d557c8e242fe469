"""Find or start a PostgreSQL server for the test suite, and make throwaway databases on it.

API (all of it raises on failure; nothing here skips a test):

``postgres_url(*, prefer_running=True) -> str``
    URL of a PostgreSQL server, tried in this order:

    1. ``$HAVEN_TEST_POSTGRES_URL``, returned as given;
    2. a server already answering on 127.0.0.1:5432 as user ``postgres`` with trust auth;
    3. a throwaway cluster started from the local PostgreSQL binaries (installed with
       apt-get first when there are none and we are root), stopped at interpreter exit.
       It is started once per process and reused by later calls.

    ``prefer_running=False`` skips 1 and 2 and always uses (3).
    Raises :class:`PostgresUnavailable` when nothing works.

``create_test_database(server_url) -> (url, drop)``
    Creates a fresh database ``haven_test_<pid>_<random>`` on the server and returns its
    SQLAlchemy URL (``postgresql+psycopg://...``) and a callable that drops it (after
    terminating the connections still open to it). ``drop`` may be called more than once.

``start_throwaway_cluster() -> ThrowawayCluster``
    Always starts a new cluster (``.url``, ``.port``, ``.stop()``); stopped at exit too.

``running_server_url(host="127.0.0.1", port=5432) -> str | None``
    The URL of the server at host:port when it accepts user ``postgres`` without a password.

Server URLs may be given as ``postgresql://``, ``postgres://`` or ``postgresql+psycopg://``.

initdb and pg_ctl refuse to run as root (and CI runs as root), so as root the cluster is
created and run as the ``postgres`` user through ``runuser``, in a temporary directory that
user owns.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

ENV_VAR = "HAVEN_TEST_POSTGRES_URL"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5432
SUPERUSER = "postgres"

_lock = threading.Lock()
_shared_cluster: ThrowawayCluster | None = None


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


# --------------------------------------------------------------------------- URLs


def _parse(server_url: str) -> URL:
    url = make_url(server_url)
    backend = url.get_backend_name()
    if backend not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    return url


def _libpq_url(server_url: str, database: str | None = None) -> str:
    """The URL in the form psycopg/libpq accepts (no ``+driver``), optionally another db."""
    url = _parse(server_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    elif not url.database:
        url = url.set(database="postgres")
    return url.render_as_string(hide_password=False)


def _sqlalchemy_url(server_url: str, database: str) -> str:
    url = _parse(server_url).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


def _server_url(host: str, port: int) -> str:
    return f"postgresql+psycopg://{SUPERUSER}@{host}:{port}/postgres"


# --------------------------------------------------------------------------- running server


def running_server_url(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout: int = 2
) -> str | None:
    """URL of the server at host:port if it lets ``postgres`` in without a password."""
    try:
        with psycopg.connect(
            host=host,
            port=port,
            user=SUPERUSER,
            dbname="postgres",
            connect_timeout=timeout,  # libpq treats anything below 2 as 2
            autocommit=True,
        ) as conn:
            conn.execute("select 1")
    except psycopg.Error:
        return None
    return _server_url(host, port)


def postgres_url(*, prefer_running: bool = True) -> str:
    """URL of a PostgreSQL server for the tests (see the module docstring)."""
    global _shared_cluster
    if prefer_running:
        from_env = os.environ.get(ENV_VAR, "").strip()
        if from_env:
            return from_env
        url = running_server_url()
        if url:
            return url
    with _lock:
        if _shared_cluster is None or not _shared_cluster.running:
            try:
                _shared_cluster = start_throwaway_cluster()
            except PostgresUnavailable as exc:
                tried = (
                    f"${ENV_VAR} is not set, nothing answers on {DEFAULT_HOST}:{DEFAULT_PORT} "
                    f"as user {SUPERUSER!r} with trust auth, and "
                    if prefer_running
                    else ""
                )
                raise PostgresUnavailable(
                    f"no PostgreSQL server for the tests: {tried}a throwaway cluster could "
                    f"not be started: {exc}"
                ) from exc
        return _shared_cluster.url


# --------------------------------------------------------------------------- databases


def create_test_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """Create a fresh database on the server; return its SQLAlchemy URL and a drop function."""
    name = f"haven_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin_url = _libpq_url(server_url)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        # template0 takes no connections, so a session left open on template1 (a common
        # accident) cannot make CREATE DATABASE fail.
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )

    dropped = False

    def drop() -> None:
        nonlocal dropped
        if dropped:
            return
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            # Never hang the test run on a lock: fail loudly instead.
            conn.execute("SET statement_timeout = '60s'")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)
        dropped = True

    return _sqlalchemy_url(server_url, name), drop


# --------------------------------------------------------------------------- throwaway cluster


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([\d.]+)/bin/", path)
    return tuple(int(p) for p in match.group(1).split(".") if p) if match else ()


def find_pg_bin_dir() -> str | None:
    """Directory holding initdb and pg_ctl (newest /usr/lib/postgresql/*/bin, else PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True
    )
    for initdb in candidates:
        bin_dir = os.path.dirname(initdb)
        if os.access(initdb, os.X_OK) and os.access(os.path.join(bin_dir, "pg_ctl"), os.X_OK):
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = os.path.dirname(os.path.realpath(initdb))
        if os.access(os.path.join(bin_dir, "pg_ctl"), os.X_OK):
            return bin_dir
    return None


def _run(cmd: list[str], what: str, timeout: float = 120, **kwargs) -> None:
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-3000:]
        raise PostgresUnavailable(f"{what} failed (exit {proc.returncode}):\n{output}")


def _install_postgresql() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    _run(["apt-get", *lock, "update", "-q"], "apt-get update", timeout=600, env=env)
    _run(
        ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", "postgresql"],
        "apt-get install postgresql",
        timeout=900,
        env=env,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return sock.getsockname()[1]


def _run_as_user() -> pwd.struct_passwd | None:
    """The account to run initdb/pg_ctl as: None for ourselves, else ``postgres``/``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and there is no 'postgres' user to run initdb as")


@dataclass
class ThrowawayCluster:
    """A temporary PostgreSQL cluster on 127.0.0.1:<port> with trust auth."""

    bin_dir: str
    base_dir: str
    port: int
    run_as: str | None = None
    running: bool = False
    _owner_pid: int = field(default_factory=os.getpid)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    @property
    def url(self) -> str:
        return _server_url(DEFAULT_HOST, self.port)

    def _cmd(self, program: str, *args: str) -> list[str]:
        cmd = [os.path.join(self.bin_dir, program), *args]
        if self.run_as:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            cmd = [runuser, "-u", self.run_as, "--", *cmd]
        return cmd

    def _env(self) -> dict[str, str]:
        # PG* variables of the caller (PGPORT, PGDATA, PGHOST...) must not leak into pg_ctl.
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def start(self) -> None:
        env = self._env()
        try:
            # C.UTF-8, like Debian's own clusters: lower()/upper() then handle ə, ş, Cyrillic.
            _run(self._initdb_cmd(["--locale=C.UTF-8"]), "initdb", cwd=self.base_dir, env=env)
        except PostgresUnavailable:
            # No C.UTF-8 locale on this system: fall back to plain C (still UTF-8 encoded).
            shutil.rmtree(self.data_dir, ignore_errors=True)
            _run(self._initdb_cmd(["--no-locale"]), "initdb", cwd=self.base_dir, env=env)
        settings = {
            "listen_addresses": f"'{DEFAULT_HOST}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
        }
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a", encoding="utf-8") as f:
            f.write("\n# haven test cluster\n")
            f.writelines(f"{key} = {value}\n" for key, value in settings.items())
        log = os.path.join(self.base_dir, "postgres.log")
        try:
            _run(
                self._cmd("pg_ctl", "-D", self.data_dir, "-l", log, "-w", "-t", "60", "start"),
                "pg_ctl start",
                cwd=self.base_dir,
                env=env,
            )
        except PostgresUnavailable as exc:
            with contextlib.suppress(OSError), open(log, encoding="utf-8") as f:
                raise PostgresUnavailable(f"{exc}\nserver log:\n{f.read()[-3000:]}") from exc
            raise
        self.running = True

    def _initdb_cmd(self, locale_args: list[str]) -> list[str]:
        return self._cmd(
            "initdb",
            "-D",
            self.data_dir,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            *locale_args,
            "--no-sync",
            "--no-instructions",
        )

    def stop(self) -> None:
        """Stop the server and delete its files. Safe to call twice; no-op in forked children."""
        if os.getpid() != self._owner_pid:
            return
        if self.running:
            with contextlib.suppress(PostgresUnavailable):
                _run(
                    self._cmd("pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"),
                    "pg_ctl stop",
                    timeout=60,
                    cwd=self.base_dir,
                    env=self._env(),
                )
            self.running = False
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_throwaway_cluster() -> ThrowawayCluster:
    """Start a new temporary cluster; it is stopped at interpreter exit (or by ``.stop()``)."""
    bin_dir = find_pg_bin_dir()
    if bin_dir is None:
        if os.geteuid() != 0:
            raise PostgresUnavailable(
                "no initdb/pg_ctl found (under /usr/lib/postgresql/*/bin or on PATH); install "
                "PostgreSQL: apt-get install -y --no-install-recommends postgresql"
            )
        _install_postgresql()
        bin_dir = find_pg_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("installed postgresql but found no initdb/pg_ctl")

    user = _run_as_user()
    base_dir = tempfile.mkdtemp(prefix="haven-pg-")
    if user is not None:
        os.chown(base_dir, user.pw_uid, user.pw_gid)
    cluster = ThrowawayCluster(
        bin_dir=bin_dir,
        base_dir=base_dir,
        port=_free_port(),
        run_as=user.pw_name if user else None,
    )
    atexit.register(cluster.stop)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
