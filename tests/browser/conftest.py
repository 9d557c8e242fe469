"""Browser tests: Haven served from a thread, driven by Debian's chromium through Playwright."""

from __future__ import annotations

import shutil
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Never a downloaded browser: always the system's chromium.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_FLAGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def base_url(live_server):
    # Replaces pytest-base-url's fixture, which pytest 9 deprecates, with our live server.
    return live_server


@pytest.fixture(autouse=True)
def fresh_login_limit():
    """Every browser sign-in comes from 127.0.0.1 and counts against the login rate limit;
    start each test with a clean count, as the `client` fixture does."""
    from core.extensions import limiter

    limiter.reset()
    yield
    limiter.reset()
