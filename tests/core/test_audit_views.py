"""Auditor pages: who reaches them, filters, paging, "verify now" and the after-request hook."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from core import audit
from core.audit import AuditEntry
from core.models import AgencyType, Role
from tests.factories import login_as, make_agency, make_user


@pytest.fixture(autouse=True)
def checkpoint_dir(app, tmp_path):
    """Give every test its own checkpoint file: tables are emptied between tests."""
    previous = app.config["HAVEN_AUDIT_CHECKPOINT_DIR"]
    app.config["HAVEN_AUDIT_CHECKPOINT_DIR"] = str(tmp_path / "checkpoints")
    yield tmp_path / "checkpoints"
    app.config["HAVEN_AUDIT_CHECKPOINT_DIR"] = previous


@pytest.fixture
def world(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = SimpleNamespace(
        north=north,
        nrm=nrm,
        auditor=make_user(nrm, Role.AUDITOR, email="audrey@example.org"),
        alice=make_user(north, Role.CASEWORKER, email="alice@example.org"),
        bob=make_user(north, Role.SUPERVISOR),
        admin=make_user(nrm, Role.ADMIN),
        analyst=make_user(nrm, Role.ANALYST),
        coordinator=make_user(nrm, Role.COORDINATOR),
    )
    db.session.commit()
    return people


@pytest.fixture
def auditor_client(client, world):
    login_as(client, world.auditor)
    return client


def entries(action: str | None = None) -> list[AuditEntry]:
    audit.db.session.expire_all()
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(audit.db.session.scalars(query))


def shown_ids(response) -> list[int]:
    """Return the entry ids in the table, in page order."""
    body = response.get_data(as_text=True)
    return [int(number) for number in re.findall(r"<tr>\s*<td>(\d+)</td>", body)]


# Access ----------------------------------------------------------------------------------

PERSONAS = ["auditor", "alice", "bob", "admin", "analyst", "coordinator", "anonymous"]
ROUTES = [("GET", "/audit/", 200), ("POST", "/audit/verify", 302)]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "url", "auditor_status"), ROUTES)
def test_access_matrix(client, world, persona, method, url, auditor_status):
    if persona != "anonymous":
        login_as(client, getattr(world, persona))
    response = client.get(url) if method == "GET" else client.post_form(url)
    if persona == "auditor":
        assert response.status_code == auditor_status
    elif persona == "anonymous":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == 404


def test_a_refused_visit_is_audited_as_denied(client, world):
    login_as(client, world.alice)
    assert client.get("/audit/").status_code == 404
    [entry] = entries("audit.open")
    assert entry.outcome == "denied"
    assert (entry.user_id, entry.agency_id) == (world.alice.id, world.north.id)
    assert entry.object_id == "audit.index"
    assert entry.remote_addr == "127.0.0.1"


def test_verify_refuses_get(auditor_client):
    assert auditor_client.get("/audit/verify").status_code == 405


def test_verify_needs_the_csrf_token(auditor_client):
    assert auditor_client.post("/audit/verify").status_code == 400


def test_the_navigation_shows_the_audit_log_to_auditors(auditor_client):
    page = auditor_client.get("/").get_data(as_text=True)
    assert 'href="/audit/"' in page


# The list ---------------------------------------------------------------------------------


def add_entry(action: str, *, user=None, at: datetime | None = None, **kwargs) -> AuditEntry:
    entry = audit.record(action, user=user, **kwargs)
    if at is not None:
        entry.occurred_at = at
    audit.db.session.commit()
    return entry


def test_the_list_shows_metadata_newest_first(auditor_client, world):
    first = add_entry(
        "case.viewed",
        user=world.alice,
        object_type="case",
        object_id="c-1",
        field_names=["given_name", "phone"],
    )
    second = add_entry("case.break_glass", user=world.bob, reason="Emergency placement")
    response = auditor_client.get("/audit/")
    assert response.status_code == 200
    assert shown_ids(response) == [second.id, first.id]
    page = response.get_data(as_text=True)
    assert "given_name, phone" in page
    assert "Emergency placement" in page
    assert world.alice.display_name in page
    assert "NGO North" in page


def test_filters_narrow_the_list(auditor_client, world):
    login = add_entry("auth.login", user=world.alice, at=datetime(2026, 3, 1, 9, tzinfo=UTC))
    failed = add_entry(
        "auth.login_failed", outcome="denied", at=datetime(2026, 3, 2, 9, tzinfo=UTC)
    )
    viewed = add_entry(
        "case.viewed",
        user=world.bob,
        object_type="case",
        object_id="c-9",
        at=datetime(2026, 3, 3, 9, tzinfo=UTC),
    )

    def ids(query: str) -> list[int]:
        response = auditor_client.get(f"/audit/?{query}")
        assert response.status_code == 200
        return shown_ids(response)

    assert ids("action=auth.") == [failed.id, login.id]
    assert ids("action=auth.login_f") == [failed.id]
    assert ids("action=a%25") == []  # LIKE wildcards are taken literally
    assert ids(f"user={world.bob.id}") == [viewed.id]
    assert ids("object_type=case&object_id=c-9") == [viewed.id]
    assert ids("outcome=denied") == [failed.id]
    assert ids("date_from=2026-03-02") == [viewed.id, failed.id]
    assert ids("date_to=2026-03-02") == [failed.id, login.id]
    assert ids("date_from=2026-03-02&date_to=2026-03-02") == [failed.id]


def test_an_invalid_filter_is_shown_and_ignored(auditor_client, world):
    entry = add_entry("auth.login", user=world.alice)
    response = auditor_client.get("/audit/?user=abc&date_from=yesterday")
    assert response.status_code == 200
    assert shown_ids(response) == [entry.id]
    assert "field--error" in response.get_data(as_text=True)


def test_pages_follow_ids_downwards_and_keep_the_filter(auditor_client, world):
    for number in range(60):
        audit.record("case.viewed", object_type="case", object_id=str(number))
    audit.record("auth.login", user=world.alice)
    audit.db.session.commit()
    all_ids = [entry.id for entry in entries("case.viewed")][::-1]

    first = auditor_client.get("/audit/?action=case.")
    assert shown_ids(first) == all_ids[:50]
    older = re.search(r'href="(/audit/\?[^"]*before=\d+[^"]*)"', first.get_data(as_text=True))
    assert older, "no link to older entries"
    url = older.group(1).replace("&amp;", "&")
    assert "action=case." in url
    second = auditor_client.get(url)
    assert shown_ids(second) == all_ids[50:]
    assert "before=" not in second.get_data(as_text=True).split("Newest entries")[-1]


def test_an_out_of_range_page_is_404(auditor_client):
    assert auditor_client.get(f"/audit/?before={2**64}").status_code == 404


# Verify now ---------------------------------------------------------------------------------


def test_verify_now_reports_an_intact_log(auditor_client, world):
    add_entry("auth.login", user=world.alice)
    audit.link_pending()
    response = auditor_client.post_form("/audit/verify", follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "The audit log is intact" in page
    assert "flash--success" in page
    [entry] = entries("audit.verified")
    assert entry.user_id == world.auditor.id


def test_verify_now_names_the_first_broken_entry(auditor_client, world):
    first = add_entry("auth.login", user=world.alice)
    add_entry("auth.logout", user=world.alice)
    audit.link_pending()
    with audit.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_entries SET user_id = :u WHERE id = :id"),
            {"u": world.bob.id, "id": first.id},
        )
    response = auditor_client.post_form("/audit/verify", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "flash--error" in page
    assert f"Entry {first.id} (chain position 1) was edited" in page


# The after-request hook ----------------------------------------------------------------------


def test_entries_of_a_request_are_linked_after_its_response(client, world, checkpoint_dir):
    login_as(client, world.alice)
    response = client.get("/audit/")
    [entry] = entries("audit.open")
    assert entry.chain_seq is None  # committed with the response, linked after it
    response.close()  # what the WSGI server does once the body is sent
    [entry] = entries("audit.open")
    assert entry.chain_seq == 1
    assert audit.latest_checkpoint().chain_seq == 1
    assert audit.verify_chain().ok


def test_a_request_whose_audit_entry_cannot_be_written_fails(app, client, world, monkeypatch):
    login_as(client, world.alice)

    def failing_commit():
        raise RuntimeError("database gone")

    monkeypatch.setattr(audit.db.session, "commit", failing_commit)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = client.get("/audit/")
    monkeypatch.undo()
    assert response.status_code == 500
    assert entries("audit.open") == []


@pytest.mark.parametrize(("status", "kept"), [(200, 1), (302, 1), (404, 1), (500, 0)])
def test_the_hook_commits_unless_the_request_failed(app, db, world, status, kept):
    with app.test_request_context("/"):
        audit.record("case.viewed", user=world.alice)
        audit._commit_audit_entries(app.response_class("body", status=status))
        audit.db.session.rollback()
    assert len(entries("case.viewed")) == kept
