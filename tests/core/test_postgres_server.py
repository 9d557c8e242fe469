"""Tests of tests/postgres_server.py: finding/starting PostgreSQL and test databases."""

import os
import socket

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests import postgres_server
from tests.postgres_server import (
    create_test_database,
    postgres_url,
    running_server_url,
    start_throwaway_cluster,
)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _database_exists(server_url: str, name: str) -> bool:
    with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _must_not_be_called(*args, **kwargs):
    raise AssertionError("should not have been called")


def test_env_var_is_preferred(monkeypatch):
    url = "postgresql://someone:secret@db.example:6543/other"
    monkeypatch.setenv(postgres_server.ENV_VAR, url)
    monkeypatch.setattr(postgres_server, "running_server_url", _must_not_be_called)
    monkeypatch.setattr(postgres_server, "start_throwaway_cluster", _must_not_be_called)
    assert postgres_url() == url


def test_running_server_comes_before_a_throwaway_cluster(monkeypatch):
    monkeypatch.setenv(postgres_server.ENV_VAR, "  ")  # blank counts as unset
    monkeypatch.setattr(postgres_server, "running_server_url", lambda: "postgresql://found/x")
    monkeypatch.setattr(postgres_server, "start_throwaway_cluster", _must_not_be_called)
    assert postgres_url() == "postgresql://found/x"


def test_failure_raises_a_clear_error(monkeypatch):
    def fail():
        raise postgres_server.PostgresUnavailable("no initdb")

    monkeypatch.delenv(postgres_server.ENV_VAR, raising=False)
    monkeypatch.setattr(postgres_server, "running_server_url", lambda: None)
    monkeypatch.setattr(postgres_server, "start_throwaway_cluster", fail)
    monkeypatch.setattr(postgres_server, "_shared_cluster", None)
    with pytest.raises(postgres_server.PostgresUnavailable, match="HAVEN_TEST_POSTGRES_URL"):
        postgres_url()


def test_nothing_listening_is_not_a_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        assert running_server_url(port=port) is None


def test_urls_are_normalised():
    assert (
        postgres_server._sqlalchemy_url("postgres://u:p%40ss@h:1/postgres", "db")
        == "postgresql+psycopg://u:p%40ss@h:1/db"
    )
    assert postgres_server._libpq_url("postgresql+psycopg://u@h:1") == "postgresql://u@h:1/postgres"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        postgres_server._libpq_url("sqlite:///x.db")


def test_create_and_drop_database():
    server = postgres_url()
    url, drop = create_test_database(server)
    name = url.rsplit("/", 1)[1]
    try:
        assert url.startswith("postgresql+psycopg://")
        assert name.startswith(f"haven_test_{os.getpid()}_")
        assert _database_exists(server, name)

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select current_database()")).scalar() == name
                conn.execute(text("create table t (x text)"))
                conn.commit()
        finally:
            engine.dispose()

        # A connection left open must not make the drop hang or fail.
        lingering = psycopg.connect(_libpq(url))
        try:
            lingering.execute("select 1")
            drop()
        finally:
            lingering.close()
        assert not _database_exists(server, name)
        drop()  # a second call is harmless
    finally:
        drop()


def test_two_databases_are_distinct():
    server = postgres_url()
    url1, drop1 = create_test_database(server)
    url2, drop2 = create_test_database(server)
    try:
        assert url1 != url2
    finally:
        drop1()
        drop2()


def test_throwaway_cluster_starts_answers_and_stops():
    cluster = start_throwaway_cluster()
    try:
        assert cluster.running
        if os.geteuid() == 0:
            assert cluster.run_as  # initdb/pg_ctl refuse to run as root
        with psycopg.connect(_libpq(cluster.url), connect_timeout=10) as conn:
            assert conn.execute("select 1").fetchone() == (1,)

        url, drop = create_test_database(cluster.url)
        with psycopg.connect(_libpq(url), connect_timeout=10) as conn:
            assert conn.execute("select lower('ƏŞĞ')").fetchone() == ("əşğ",)
        drop()
    finally:
        cluster.stop()
    assert not cluster.running
    assert not os.path.exists(cluster.base_dir)
    assert running_server_url(port=cluster.port) is None
    cluster.stop()  # idempotent
