"""The audit log: recording, linking the hash chain, checkpoints and verify finding tampering."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from core import audit
from core.audit import AuditEntry, BreakKind, Checkpoint
from tests.conftest import TEST_DB


@pytest.fixture(autouse=True)
def checkpoint_dir(app, db):
    """The test's own checkpoint directory (the db fixture gives one per test)."""
    return Path(app.config["HAVEN_AUDIT_CHECKPOINT_DIR"])


def record_entries(count: int, **kwargs) -> list[AuditEntry]:
    entries = [
        audit.record(
            "case.viewed",
            object_type="case",
            object_id=f"case-{number}",
            field_names=("given_name", "phone"),
            **kwargs,
        )
        for number in range(count)
    ]
    audit.db.session.commit()
    return entries


def linked_chain(count: int) -> list[AuditEntry]:
    """Record and link ``count`` entries; return them in chain order."""
    record_entries(count)
    assert audit.link_pending() == count
    return chain()


def chain() -> list[AuditEntry]:
    audit.db.session.expire_all()
    return list(
        audit.db.session.scalars(
            select(AuditEntry).where(AuditEntry.chain_seq.is_not(None)).order_by("chain_seq")
        )
    )


def execute(sql: str, **params) -> None:
    """Change the table behind the app's back, as someone with database access could."""
    with audit.db.engine.begin() as connection:
        connection.execute(text(sql), params)


def unlinked_count() -> int:
    return audit.db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.chain_seq.is_(None))
    )


# Recording ------------------------------------------------------------------------------


def test_an_entry_keeps_field_names_sorted_and_no_values(db):
    entry = audit.record(
        "case.updated",
        object_type="case",
        object_id=42,
        field_names=["phone", "given_name", "phone"],
    )
    db.session.commit()
    stored = db.session.get(AuditEntry, entry.id)
    assert json.loads(stored.field_names) == ["given_name", "phone"]
    assert stored.object_id == "42"
    assert stored.outcome == "allowed"
    assert stored.user_id is None and stored.agency_id is None
    assert stored.occurred_at.tzinfo is not None
    assert stored.chain_seq is None and stored.entry_hash is None


@pytest.mark.parametrize("value", ["Maria Ivanova", "+994 50 123 45 67", "1990-04-01", ""])
def test_a_value_given_as_a_field_name_is_refused(db, value):
    with pytest.raises(ValueError, match="names"):
        audit.record("case.updated", field_names=[value])


@pytest.mark.parametrize("action", ["viewed", "Case.Viewed", "case viewed", "case."])
def test_a_malformed_action_is_refused(db, action):
    with pytest.raises(ValueError, match="action"):
        audit.record(action)


def test_the_outcome_is_checked_by_the_database(db):
    audit.record("auth.login")
    db.session.commit()
    with pytest.raises(IntegrityError):
        execute("UPDATE audit_entries SET outcome = 'maybe'")


def test_record_denied_marks_the_outcome(db):
    entry = audit.record_denied("case.viewed", object_type="case", object_id="x")
    db.session.commit()
    assert db.session.get(AuditEntry, entry.id).outcome == "denied"


def test_the_user_and_agency_come_from_the_given_user(db):
    from tests.factories import make_agency, make_user

    user = make_user(make_agency())
    entry = audit.record("admin.user_created", user=user)
    db.session.commit()
    assert (entry.user_id, entry.agency_id) == (user.id, user.agency_id)


def test_a_rolled_back_record_leaves_nothing(db):
    audit.record("case.viewed", object_type="case", object_id="gone")
    db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    assert audit.link_pending() == 0

    # The rolled-back id never reaches the chain; the next entry is position 1.
    record_entries(1)
    assert audit.link_pending() == 1
    assert [entry.chain_seq for entry in chain()] == [1]
    assert audit.verify_chain().ok


# The chain --------------------------------------------------------------------------------


def test_entries_are_linked_in_id_order_and_verify_passes(db):
    entries = linked_chain(5)
    assert [entry.chain_seq for entry in entries] == [1, 2, 3, 4, 5]
    assert [entry.id for entry in entries] == sorted(entry.id for entry in entries)
    assert entries[0].prev_hash == audit.GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.entry_hash
    result = audit.verify_chain()
    assert result.ok, result.breaks
    assert (result.entries_checked, result.unlinked, result.head_seq) == (5, 0, 5)
    assert result.head_hash == entries[-1].entry_hash


def test_the_hash_covers_the_previous_hash_and_the_canonical_entry(db):
    first, second = linked_chain(2)
    values = {name: getattr(second, name) for name in audit.CONTENT_COLUMNS}
    assert second.entry_hash == audit.chain_hash(first.entry_hash, values)
    assert second.entry_hash != audit.chain_hash(audit.GENESIS_HASH, values)


def test_linking_in_small_batches_gives_one_chain(db):
    record_entries(7)
    assert audit.link_pending(batch_size=3) == 7
    assert [entry.chain_seq for entry in chain()] == list(range(1, 8))
    assert audit.verify_chain().ok


def test_linking_twice_links_nothing_more(db):
    linked_chain(3)
    assert audit.link_pending() == 0
    assert [entry.chain_seq for entry in chain()] == [1, 2, 3]


def test_new_entries_continue_the_chain(db):
    linked_chain(2)
    record_entries(2)
    assert unlinked_count() == 2
    result = audit.verify_chain()
    assert result.ok and result.unlinked == 2
    assert audit.link_pending() == 2
    assert [entry.chain_seq for entry in chain()] == [1, 2, 3, 4]
    assert audit.verify_chain().ok


def insert_with_id(entry_id: int, action: str = "case.viewed") -> None:
    execute(
        "INSERT INTO audit_entries (id, occurred_at, action, outcome, field_names)"
        " VALUES (:id, :at, :action, 'allowed', '[]')",
        id=entry_id,
        at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        action=action,
    )


def test_entries_committed_out_of_id_order_are_all_linked(db):
    # Id 12 commits and is linked before id 11 has committed.
    insert_with_id(12)
    assert audit.link_pending() == 1
    insert_with_id(11)
    insert_with_id(13)
    assert audit.link_pending() == 2
    assert [(entry.id, entry.chain_seq) for entry in chain()] == [(12, 1), (11, 2), (13, 3)]
    assert audit.verify_chain().ok


@pytest.mark.skipif(TEST_DB != "postgresql", reason="SQLite allows one writer at a time")
def test_concurrent_transactions_committing_out_of_order_are_all_linked(db):
    insert = text(
        "INSERT INTO audit_entries (occurred_at, action, outcome, field_names)"
        " VALUES (now(), :action, 'allowed', '[]') RETURNING id"
    )
    with db.engine.connect() as slow, db.engine.connect() as fast:
        slow_id = slow.execute(insert, {"action": "case.viewed"}).scalar_one()
        fast_id = fast.execute(insert, {"action": "case.updated"}).scalar_one()
        assert slow_id < fast_id
        fast.commit()
        # The linker sees only the committed, higher id; it does not wait for the lower one.
        assert audit.link_pending() == 1
        slow.commit()
    assert audit.link_pending() == 1
    assert [(entry.id, entry.chain_seq) for entry in chain()] == [(fast_id, 1), (slow_id, 2)]
    assert audit.verify_chain().ok


def test_a_linker_skips_while_another_one_holds_the_lock(db):
    record_entries(2)
    with db.engine.connect() as other:
        if other.dialect.name == "postgresql":
            assert other.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": audit.LINKER_LOCK_KEY}
            ).scalar()
        else:
            other.exec_driver_sql("BEGIN IMMEDIATE")
        assert audit.link_pending() == 0
        other.rollback()
    assert unlinked_count() == 2
    assert audit.link_pending() == 2


# Verify finds tampering --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "'case.exported'"),
        ("field_names", "'[\"given_name\"]'"),
        ("outcome", "'denied'"),
        ("user_id", "7"),
        ("reason", "'looked for a friend'"),
    ],
)
def test_verify_names_an_edited_entry(db, column, value):
    entries = linked_chain(5)
    target = entries[2]
    execute(f"UPDATE audit_entries SET {column} = {value} WHERE id = :id", id=target.id)
    result = audit.verify_chain()
    assert not result.ok
    problem = result.first_break
    assert problem.kind is BreakKind.EDITED
    assert (problem.entry_id, problem.chain_seq) == (target.id, 3)
    assert f"Entry {target.id}" in problem.message


def test_verify_finds_a_deleted_middle_entry(db):
    entries = linked_chain(5)
    execute("DELETE FROM audit_entries WHERE id = :id", id=entries[2].id)
    result = audit.verify_chain()
    problem = result.first_break
    assert problem.kind is BreakKind.MISSING_SEQUENCE
    assert (problem.entry_id, problem.chain_seq, problem.expected_seq) == (entries[3].id, 4, 3)
    assert result.entries_checked == 2


def test_verify_finds_a_deleted_entry_whose_gap_was_closed(db):
    entries = linked_chain(4)
    execute("DELETE FROM audit_entries WHERE id = :id", id=entries[1].id)
    for entry in entries[2:]:
        execute("UPDATE audit_entries SET chain_seq = chain_seq - 1 WHERE id = :id", id=entry.id)
    problem = audit.verify_chain().first_break
    assert problem.kind is BreakKind.BROKEN_LINK
    assert (problem.entry_id, problem.chain_seq) == (entries[2].id, 2)


def test_verify_finds_an_edited_link(db):
    entries = linked_chain(3)
    execute("UPDATE audit_entries SET prev_hash = :h WHERE id = :id", h="a" * 64, id=entries[1].id)
    problem = audit.verify_chain().first_break
    assert problem.kind is BreakKind.BROKEN_LINK
    assert problem.entry_id == entries[1].id


def test_verify_finds_truncated_newest_entries_through_the_checkpoint(db):
    entries = linked_chain(5)
    assert audit.write_checkpoint().chain_seq == 5
    execute("DELETE FROM audit_entries WHERE chain_seq > 3")
    result = audit.verify_chain()
    assert not result.ok
    # The chain that is left is consistent: only the checkpoint shows the loss.
    assert result.entries_checked == 3
    [problem] = result.breaks
    assert problem.kind is BreakKind.TRUNCATED
    assert (problem.checkpoint_seq, problem.expected_seq) == (5, 3)
    assert entries[3].id not in {entry.id for entry in chain()}


def test_verify_finds_a_rewritten_chain_through_the_checkpoint(db):
    entries = linked_chain(4)
    audit.write_checkpoint()
    # Someone edits an entry and re-links everything so that every hash matches again.
    execute("UPDATE audit_entries SET action = 'case.exported' WHERE id = :id", id=entries[1].id)
    execute("UPDATE audit_entries SET chain_seq = NULL, prev_hash = NULL, entry_hash = NULL")
    assert audit.link_pending(checkpoint=False) == 4
    [problem] = audit.verify_chain().breaks
    assert problem.kind is BreakKind.CHECKPOINT_MISMATCH
    assert (problem.entry_id, problem.chain_seq) == (entries[3].id, 4)


def forged_line(checkpoint: Checkpoint, **changes) -> str:
    """Return a checkpoint line signed with a key that is not the key ring's."""
    forged = Checkpoint(**{**checkpoint.__dict__, **changes, "signature": ""})
    signature = Ed25519PrivateKey.generate().sign(forged.signed_bytes())
    forged = Checkpoint(
        **{**forged.__dict__, "signature": base64.b64encode(signature).decode("ascii")}
    )
    return forged.to_line()


def test_verify_reports_a_forged_checkpoint(db, checkpoint_dir):
    linked_chain(3)
    genuine = audit.write_checkpoint()
    # A newer checkpoint not signed by the key ring's key.
    first = chain()[0]
    with audit.checkpoint_path().open("a") as handle:
        handle.write(forged_line(genuine, chain_seq=4, head_hash=first.entry_hash))
    result = audit.verify_chain()
    [problem] = result.breaks
    assert problem.kind is BreakKind.BAD_CHECKPOINT
    assert problem.checkpoint_seq == 4


def test_verify_reports_an_altered_checkpoint(db, checkpoint_dir):
    linked_chain(3)
    path = audit.checkpoint_path()
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["chain_seq"] == 3
    # Edited to match a chain cut back to two entries; the signature no longer fits.
    line["chain_seq"] = 2
    line["head_hash"] = chain()[1].entry_hash
    path.write_text(json.dumps(line) + "\n")
    execute("DELETE FROM audit_entries WHERE chain_seq = 3")
    [problem] = audit.verify_chain().breaks
    assert problem.kind is BreakKind.BAD_CHECKPOINT


def test_verify_without_a_checkpoint_says_so(db, checkpoint_dir):
    linked_chain(2)
    audit.checkpoint_path().unlink()
    [problem] = audit.verify_chain().breaks
    assert problem.kind is BreakKind.NO_CHECKPOINT


def test_an_empty_log_verifies(db):
    result = audit.verify_chain()
    assert result.ok and result.entries_checked == 0
    assert result.summary == "The audit log is empty."


def test_newest_entries_cut_off_and_grown_over_stay_visible(app, db):
    removed_id = linked_chain(5)[4].id
    assert audit.latest_checkpoint().chain_seq == 5
    execute("DELETE FROM audit_entries WHERE chain_seq > 3")
    # New entries take positions 4 and up again; the linker must not bless that chain.
    app.config["HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES"] = 2
    try:
        record_entries(6)
        assert audit.link_pending() == 6
    finally:
        app.config["HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES"] = 1000
    assert audit.latest_checkpoint().chain_seq == 5
    [problem] = audit.verify_chain().breaks
    assert problem.kind is BreakKind.CHECKPOINT_MISMATCH
    assert problem.chain_seq == 5 and problem.entry_id != removed_id


# Checkpoints -----------------------------------------------------------------------------


def test_the_linker_writes_a_first_checkpoint_then_one_per_interval(app, db, checkpoint_dir):
    app.config["HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES"] = 4
    try:
        record_entries(2)
        audit.link_pending()
        assert audit.latest_checkpoint().chain_seq == 2
        record_entries(3)
        audit.link_pending()
        assert audit.latest_checkpoint().chain_seq == 2  # grew by 3 < 4, and not 5 min old
        record_entries(1)
        audit.link_pending()
        assert audit.latest_checkpoint().chain_seq == 6
    finally:
        app.config["HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES"] = 1000
    lines = audit.checkpoint_path().read_text().splitlines()
    assert [json.loads(line)["chain_seq"] for line in lines] == [2, 6]


def test_an_old_checkpoint_is_renewed_after_the_interval(app, db, time_machine):
    time_machine.move_to(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), tick=False)
    linked_chain(1)
    record_entries(1)
    time_machine.move_to(datetime(2026, 3, 1, 9, 4, tzinfo=UTC), tick=False)
    audit.link_pending()
    assert audit.latest_checkpoint().chain_seq == 1
    assert audit.checkpoint_if_due() is None
    time_machine.move_to(datetime(2026, 3, 1, 9, 5, 1, tzinfo=UTC), tick=False)
    assert audit.checkpoint_if_due().chain_seq == 2


def test_a_checkpoint_is_signed_with_the_audit_key(db, checkpoint_dir):
    entries = linked_chain(2)
    checkpoint = audit.write_checkpoint()
    line = json.loads(audit.checkpoint_path().read_text().splitlines()[-1])
    assert line["chain_seq"] == 2 and line["head_hash"] == entries[-1].entry_hash
    assert set(line) == {"version", "chain_seq", "head_hash", "created_at", "key_id", "signature"}
    assert audit.checkpoint_signature_valid(checkpoint)
    assert audit.checkpoint_path().stat().st_mode & 0o077 == 0


def test_checkpoints_are_kept_one_line_each(db, checkpoint_dir):
    linked_chain(1)
    audit.write_checkpoint()
    record_entries(1)
    audit.link_pending(checkpoint=False)
    audit.write_checkpoint()
    lines = audit.checkpoint_path().read_text().splitlines()
    assert [json.loads(line)["chain_seq"] for line in lines] == [1, 1, 2]


def test_an_unreadable_checkpoint_line_is_skipped_and_counted(db, checkpoint_dir):
    linked_chain(2)
    genuine = json.loads(audit.checkpoint_path().read_text())
    with audit.checkpoint_path().open("a") as handle:
        handle.write(json.dumps({**genuine, "chain_seq": 9, "created_at": "soon"}) + "\n")
        handle.write('{"chain_seq": 9, "truncated wri')
    result = audit.verify_chain()
    assert result.ok
    assert result.unreadable_checkpoint_lines == 2
    record_entries(1)
    assert audit.link_pending() == 1


def test_write_checkpoint_on_an_empty_log_writes_nothing(db, checkpoint_dir):
    assert audit.write_checkpoint() is None
    assert list(checkpoint_dir.glob("*")) == []


def test_a_new_database_starts_its_own_checkpoint_file(db, checkpoint_dir):
    linked_chain(3)
    first_file = audit.checkpoint_path()
    assert first_file.exists()
    # The database is created anew with the same checkpoint directory (a development reset).
    execute("DELETE FROM audit_entries")
    linked_chain(2)
    assert audit.checkpoint_path() != first_file
    assert audit.verify_chain().ok


# Canonical bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [None, "plain", 'quote " and backslash \\', "new\nline\ttab", "Şəki, Гянджа", "\u2028 €"],
)
def test_the_canonical_entry_is_sorted_compact_json(reason):
    values = {
        "id": 7,
        "chain_seq": 3,
        "occurred_at": datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
        "user_id": None,
        "agency_id": 2,
        "action": "case.break_glass",
        "object_type": "case",
        "object_id": "c0ffee",
        "outcome": "allowed",
        "field_names": '["given_name"]',
        "reason": reason,
        "remote_addr": "2001:db8::1",
    }
    expected = {**values, "occurred_at": "2026-05-01T10:30:00.000000Z"}
    assert audit.canonical_entry(values) == json.dumps(
        expected, sort_keys=True, separators=(",", ":")
    ).encode("ascii")


# The command line --------------------------------------------------------------------------


def test_cli_verify_exits_0_and_prints_counts(app, db):
    runner = app.test_cli_runner()
    record_entries(3)
    assert runner.invoke(args=["audit", "link"]).exit_code == 0
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "entries checked: 3" in result.output
    assert "OK" in result.output


def test_cli_verify_exits_1_and_names_the_broken_entry(app, db):
    entries = linked_chain(3)
    execute("UPDATE audit_entries SET action = 'auth.login' WHERE id = :id", id=entries[1].id)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"entry id {entries[1].id}, chain position 2" in result.output
    assert "edited" in result.output


def test_cli_checkpoint_links_and_writes_a_checkpoint(app, db, checkpoint_dir):
    record_entries(2)
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert "chain position 2" in result.output
    assert audit.latest_checkpoint().chain_seq == 2
    assert unlinked_count() == 0


def test_cli_link_reports_how_many(app, db):
    record_entries(4)
    result = app.test_cli_runner().invoke(args=["audit", "link", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "linked 4 entries" in result.output


def test_cli_checkpoint_refuses_a_chain_that_lost_the_last_checkpoint(app, db):
    linked_chain(3)
    execute("DELETE FROM audit_entries WHERE chain_seq = 3")
    record_entries(2)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["audit", "checkpoint"])
    assert refused.exit_code == 1
    assert "no longer holds the checkpoint at position 3" in refused.output
    assert audit.latest_checkpoint().chain_seq == 3
    forced = runner.invoke(args=["audit", "checkpoint", "--force"])
    assert forced.exit_code == 0, forced.output
    assert audit.latest_checkpoint().chain_seq == 4
    assert audit.verify_chain().ok


def test_the_linker_runs_at_most_once_per_interval_after_responses(app, db, monkeypatch):
    import core.audit as audit_module

    runs = []
    monkeypatch.setattr(audit_module, "_link_after_response", lambda app: runs.append(app))
    monkeypatch.setattr(audit_module, "_last_link_started", 0.0)
    monkeypatch.setitem(app.config, "HAVEN_AUDIT_LINK_INTERVAL", 60)

    client = app.test_client()
    for _ in range(3):
        response = client.post_form("/login", {"email": "x@example.org", "password": "wrong"})
        response.close()

    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 3
    assert len(runs) == 1
