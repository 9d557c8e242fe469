"""Find or start a Redis server for the tests (the report queue); never skip.

``redis_url() -> str``, tried in this order:

1. ``$HAVEN_TEST_REDIS_URL``, returned as given;
2. a server answering PING on 127.0.0.1:6379 (CI has one);
3. a throwaway ``redis-server`` on a free port, without persistence, started once per
   process and stopped at interpreter exit.

Raises :class:`RedisUnavailable` when nothing works.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ENV_VAR = "HAVEN_TEST_REDIS_URL"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379

_lock = threading.Lock()
_started: dict[str, object] = {}


class RedisUnavailable(RuntimeError):
    """No Redis server could be found or started."""


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return whether a Redis server at host:port answers PING."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return sock.getsockname()[1]


def _start_throwaway() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            f"nothing answers on {DEFAULT_HOST}:{DEFAULT_PORT}, ${ENV_VAR} is not set and "
            "redis-server is not installed (apt-get install -y --no-install-recommends "
            "redis-server)"
        )
    port = _free_port()
    directory = tempfile.mkdtemp(prefix="haven-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            DEFAULT_HOST,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    owner = os.getpid()

    def stop() -> None:
        if os.getpid() != owner:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(DEFAULT_HOST, port):
            return f"redis://{DEFAULT_HOST}:{port}/0"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop()
    raise RedisUnavailable(f"redis-server did not start on port {port}")


def redis_url() -> str:
    """Return the URL of a Redis server for the tests (see the module docstring)."""
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env
    if _answers(DEFAULT_HOST, DEFAULT_PORT):
        return f"redis://{DEFAULT_HOST}:{DEFAULT_PORT}/0"
    with _lock:
        if "url" not in _started:
            _started["url"] = _start_throwaway()
        return str(_started["url"])
