"""Audit log: the append-only entry table, recording, the hash chain, checkpoints and verify.

How the pieces fit
------------------
``record()`` adds an *unlinked* entry (no ``chain_seq``, no hashes) to the request's own
database session, so a write and its audit entry commit or roll back together, and no
request ever waits for the chain. A read that the view does not commit (a GET showing
personal data) is committed by an ``after_request`` hook; if that commit fails the request
fails with a 500 and shows nothing, so nothing is read unrecorded.

``link_pending()`` then links committed, unlinked entries into the chain, in id order, in
small batches, each batch in its own short transaction that only one linker may hold (a
PostgreSQL transaction-level advisory lock taken with *try*, or SQLite's write lock with
``BEGIN IMMEDIATE``; a busy linker is skipped, never waited for). It runs after the response
of every request that wrote audit entries has been sent, and from ``flask audit link``.

The chain order is ``chain_seq``, assigned by the linker, not the id. Ids come from a
sequence and may commit out of order: id 8 committed before id 7 is simply linked first and
id 7 gets the next position when its transaction commits. An id whose transaction rolled
back never exists in the table, so it never appears in the chain and leaves no gap in it:
only ``chain_seq`` must be gapless. ``entry_hash`` = SHA-256(previous entry_hash (32 bytes,
zeros for the first entry) || canonical entry bytes), the canonical bytes being compact JSON
with sorted keys of every column except the two hash columns (``canonical_entry``).

A chain cannot see its newest entries cut off, so signed checkpoints (chain position and
head hash, Ed25519 with the key ring's audit signing key, which never enters the database)
are appended to one JSON Lines file per chain, ``checkpoints-<first hash>.jsonl`` in
HAVEN_AUDIT_CHECKPOINT_DIR:
one line per checkpoint, never rewritten, so the history stays, the newest is found by
reading the file's tail, and operators can make it append-only (``chattr +a``) or ship it
off the host like any log. With several app machines the directory must be shared storage
(or only one host runs the linker, from cron). After restoring the database from a backup,
checkpoints newer than the restored chain are reported as truncation, as they should be:
move the file aside, or run ``flask audit checkpoint --force``, once the loss is understood.
The linker never writes a checkpoint over a chain that no longer holds the previous
checkpoint's head, so newest entries cut off and then grown over stay visible to verify.

``verify_chain()`` streams the chain in ``chain_seq`` order and names the first broken
entry, then checks the newest checkpoint against it.

Data kept: ids of user and agency (plain integers, no foreign keys: entries outlive
accounts), action, object type and id, outcome, field *names* (never values), the
break-the-glass reason, and the client IP address. The IP address is personal data of
staff, kept as staff security data (spotting a stolen account); no victim data is ever
written here.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, g, has_request_context, request
from flask.cli import AppGroup
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, enum_check, enum_string, utcnow

# Hash of the position before the first entry.
GENESIS_HASH = "0" * 64
# One file per chain, named by its first entry's hash: a database created anew (a reset
# development database, a new deployment sharing the directory) starts its own file instead
# of being reported as a rewritten chain. A chain rewritten from its first entry gets a new
# name, finds no checkpoint of its own, and verify reports that.
CHECKPOINT_FILE = "checkpoints-{chain_id}.jsonl"
CHECKPOINT_VERSION = 1
# Key of the PostgreSQL advisory lock held by the one running linker ("HAVENAUD").
LINKER_LOCK_KEY = 0x484156454E415544
# The newest checkpoint is looked for in this many bytes at the end of the file: enough for
# dozens of lines, so concurrent writers that append slightly out of order are covered.
CHECKPOINT_TAIL_BYTES = 16 * 1024
VERIFY_BATCH_SIZE = 5000

ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# Field names look like identifiers ("given_name", "person.phone"); a value never does.
FIELD_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
MAX_NAME_LENGTH = 64

# Sorted keys and compact separators: the same entry always gives the same bytes.
_CANONICAL = json.JSONEncoder(ensure_ascii=True, sort_keys=True, separators=(",", ":"))
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Large installations outgrow 32-bit ids; SQLite needs INTEGER for its rowid key.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"

    @property
    def label(self) -> str:
        return str(OUTCOME_LABELS[self])

    @property
    def badge_class(self) -> str:
        return "badge--ok" if self is Outcome.ALLOWED else "badge--danger"


OUTCOME_LABELS = {Outcome.ALLOWED: _l("Allowed"), Outcome.DENIED: _l("Denied")}


class AuditEntry(db.Model):
    """One audited action; written unlinked, linked into the hash chain shortly after."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        enum_check("outcome", Outcome),
        Index("ix_audit_entries_object", "object_type", "object_id"),
        # Keeps the linker's "what is still unlinked" scan small however long the log is.
        Index(
            "ix_audit_entries_unlinked",
            "id",
            postgresql_where=text("chain_seq IS NULL"),
            sqlite_where=text("chain_seq IS NULL"),
        ),
        # AUTOINCREMENT: SQLite never reuses the id of a deleted newest entry.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Plain integers, no foreign keys: entries outlive the accounts and agencies they name.
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    agency_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    object_type: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    object_id: Mapped[str | None] = mapped_column(String(MAX_NAME_LENGTH))
    outcome: Mapped[str] = mapped_column(enum_string(Outcome), default=Outcome.ALLOWED.value)
    # JSON list of the names of the fields touched, sorted; never their values.
    field_names: Mapped[str] = mapped_column(Text, default="[]")
    # The written reason of a break-the-glass read.
    reason: Mapped[str | None] = mapped_column(Text)
    # Staff security data (see the module docstring); IPv6 text is at most 45 characters.
    remote_addr: Mapped[str | None] = mapped_column(String(45))
    chain_seq: Mapped[int | None] = mapped_column(_BigId, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))

    @property
    def field_name_list(self) -> list[str]:
        return json.loads(self.field_names or "[]")

    @property
    def outcome_enum(self) -> Outcome:
        return Outcome(self.outcome)

    @property
    def is_linked(self) -> bool:
        return self.chain_seq is not None

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.action} {self.outcome}>"


# Columns in the canonical bytes, in select order (everything except the two hashes); also
# the metadata an audit extract lists.
CONTENT_COLUMNS = (
    "id",
    "chain_seq",
    "occurred_at",
    "user_id",
    "agency_id",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "field_names",
    "reason",
    "remote_addr",
)
_CONTENT_WIDTH = len(CONTENT_COLUMNS)


# Recording ------------------------------------------------------------------------------


def record(
    action: str,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    outcome: Outcome | str = Outcome.ALLOWED,
    field_names: Iterable[str] = (),
    reason: str | None = None,
    user: Any = None,
) -> AuditEntry:
    """Add an audit entry to the current session, in the caller's transaction.

    ``user`` defaults to the signed-in user; the agency is the user's. Give field *names*
    only. The entry is committed by the caller, or after the request by the hook that
    ``init_app`` installs.

    :raises ValueError: for a malformed action, field name or object id, or an unknown
        outcome.
    """
    if not ACTION_PATTERN.fullmatch(action) or len(action) > MAX_NAME_LENGTH:
        raise ValueError(f"malformed audit action: {action!r}")
    names = sorted(set(field_names))
    for name in names:
        if not isinstance(name, str) or not FIELD_NAME_PATTERN.fullmatch(name):
            raise ValueError("audit field names must be names, never values")
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError("audit field name too long")
    if object_id is not None:
        object_id = str(object_id)
        if len(object_id) > MAX_NAME_LENGTH:
            raise ValueError("audit object id too long")
    if user is None or not getattr(user, "is_authenticated", True):
        user = _signed_in_user()
    entry = AuditEntry(
        occurred_at=utcnow(),
        user_id=user.id if user is not None else None,
        agency_id=user.agency_id if user is not None else None,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=Outcome(outcome).value,
        field_names=json.dumps(names),
        reason=reason,
        remote_addr=request.remote_addr if has_request_context() else None,
    )
    db.session.add(entry)
    if has_request_context():
        g.haven_audit_recorded = True
    return entry


def record_denied(action: str, **kwargs: Any) -> AuditEntry:
    """Record a refused attempt (outcome ``denied``); same arguments as ``record``."""
    return record(action, outcome=Outcome.DENIED, **kwargs)


def _signed_in_user() -> Any:
    if not has_request_context():
        return None
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return current_user._get_current_object()
    return None


# The chain --------------------------------------------------------------------------------


# One format string for the canonical JSON; %-formatting is the fastest way to fill it.
_CANONICAL_FORMAT = (
    '{"action":%s,"agency_id":%s,"chain_seq":%s,"field_names":%s,"id":%s,"object_id":%s,'
    '"object_type":%s,"occurred_at":"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ","outcome":%s,'
    '"reason":%s,"remote_addr":%s,"user_id":%s}'
)


def _canonical(
    entry_id, chain_seq, occurred_at, user_id, agency_id, action, object_type, object_id,
    outcome, field_names, reason, remote_addr,
) -> bytes:  # fmt: skip
    """Return the canonical bytes of the values in ``CONTENT_COLUMNS`` order."""
    q = _json_string
    if occurred_at.tzinfo is not UTC:
        occurred_at = occurred_at.astimezone(UTC)
    return (
        _CANONICAL_FORMAT
        % (
            "null" if action is None else q(action),
            "null" if agency_id is None else int(agency_id),
            "null" if chain_seq is None else int(chain_seq),
            "null" if field_names is None else q(field_names),
            int(entry_id),
            "null" if object_id is None else q(object_id),
            "null" if object_type is None else q(object_type),
            occurred_at.year,
            occurred_at.month,
            occurred_at.day,
            occurred_at.hour,
            occurred_at.minute,
            occurred_at.second,
            occurred_at.microsecond,
            "null" if outcome is None else q(outcome),
            "null" if reason is None else q(reason),
            "null" if remote_addr is None else q(remote_addr),
            "null" if user_id is None else int(user_id),
        )
    ).encode("ascii")


def canonical_entry(values: Mapping[str, Any]) -> bytes:
    """Return an entry's canonical bytes: JSON, sorted keys, compact, ASCII, UTC microseconds.

    The same bytes as ``json.dumps(content, sort_keys=True, separators=(",", ":"))`` with
    ``occurred_at`` as ``2026-05-01T10:30:00.000000Z`` (a test holds the two together),
    written out by hand because verify runs it a million times; ``_json_string`` is the C
    function json.dumps itself uses for a str. Every column except ``prev_hash`` and
    ``entry_hash`` is in it.
    """
    return _canonical(*(values[name] for name in CONTENT_COLUMNS))


def chain_hash(prev_hash: str, values: Mapping[str, Any]) -> str:
    """Return SHA-256(previous hash || canonical entry) as hex."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(canonical_entry(values))
    return digest.hexdigest()


def _content_select():
    table = AuditEntry.__table__
    return select(*(table.c[name] for name in CONTENT_COLUMNS))


class _LinkerBusy(Exception):
    """Another linker holds the lock."""


def link_pending(batch_size: int = 500, *, checkpoint: bool = True) -> int:
    """Link committed, unlinked entries into the chain in id order; return how many.

    Each batch is its own short transaction. Returns 0 at once when another linker is
    running. With ``checkpoint``, writes a signed checkpoint when one is due.
    """
    total = 0
    head: tuple[int, str] | None = None
    while True:
        try:
            linked, head = _link_batch(batch_size)
        except _LinkerBusy:
            break
        total += linked
        if linked and checkpoint:
            checkpoint_if_due(head)
        if linked < batch_size:
            break
    return total


def _link_batch(batch_size: int) -> tuple[int, tuple[int, str] | None]:
    table = AuditEntry.__table__
    with db.engine.connect() as connection:
        _take_linker_lock(connection)
        head = connection.execute(
            select(table.c.chain_seq, table.c.entry_hash)
            .where(table.c.chain_seq.is_not(None))
            .order_by(table.c.chain_seq.desc())
            .limit(1)
        ).first()
        seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
        rows = connection.execute(
            _content_select()
            .where(table.c.chain_seq.is_(None))
            .order_by(table.c.id)
            .limit(batch_size)
        ).all()
        updates = []
        for row in rows:
            values = row._asdict()
            seq += 1
            values["chain_seq"] = seq
            entry_hash = chain_hash(prev_hash, values)
            updates.append(
                {"b_id": values["id"], "b_seq": seq, "b_prev": prev_hash, "b_hash": entry_hash}
            )
            prev_hash = entry_hash
        if updates:
            statement = (
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.chain_seq.is_(None))
                .values(
                    chain_seq=bindparam("b_seq"),
                    prev_hash=bindparam("b_prev"),
                    entry_hash=bindparam("b_hash"),
                )
            )
            connection.execute(statement, updates)
        connection.commit()
    return len(updates), ((seq, prev_hash) if seq else None)


def _take_linker_lock(connection) -> None:
    """Make this transaction the only linker, or raise ``_LinkerBusy`` without waiting."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        taken = connection.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LINKER_LOCK_KEY}
        ).scalar()
        if not taken:
            connection.rollback()
            raise _LinkerBusy
    elif dialect == "sqlite":
        # The driver opens transactions lazily, at the first write, so two linkers could both
        # read the same head; BEGIN IMMEDIATE takes the write lock before the head is read.
        # A zero busy timeout turns "another writer is busy" into an immediate skip.
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as error:
            connection.rollback()
            if "locked" in str(error.orig) or "busy" in str(error.orig):
                raise _LinkerBusy from error
            raise
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout or 0)}")
    # Other databases: the unique chain_seq still refuses a fork; the loser's batch fails.


def chain_head() -> tuple[int, str] | None:
    """Return (chain_seq, entry_hash) of the newest linked entry, or None."""
    table = AuditEntry.__table__
    return _first_row(
        select(table.c.chain_seq, table.c.entry_hash)
        .where(table.c.chain_seq.is_not(None))
        .order_by(table.c.chain_seq.desc())
        .limit(1)
    )


def _hash_at(chain_seq: int) -> str | None:
    table = AuditEntry.__table__
    row = _first_row(select(table.c.entry_hash).where(table.c.chain_seq == chain_seq))
    return row[0] if row else None


def _first_row(query) -> tuple | None:
    # Its own short connection: the linker and CLI leave the caller's session untouched.
    with db.engine.connect() as connection:
        row = connection.execute(query).first()
        connection.rollback()
    return tuple(row) if row else None


# Checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain held ``chain_seq`` entries ending in ``head_hash``."""

    chain_seq: int
    head_hash: str
    created_at: str
    key_id: str
    signature: str

    def payload(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "chain_seq": self.chain_seq,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
        }

    def signed_bytes(self) -> bytes:
        return _CANONICAL.encode(self.payload()).encode("ascii")

    def to_line(self) -> str:
        return _CANONICAL.encode({**self.payload(), "signature": self.signature}) + "\n"

    @property
    def created(self) -> datetime:
        return datetime.strptime(self.created_at, _DATETIME_FORMAT).replace(tzinfo=UTC)

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Parse one line of the checkpoint file; raise ValueError when it is not one."""
        try:
            data = json.loads(line)
            checkpoint = cls(
                chain_seq=int(data["chain_seq"]),
                head_hash=str(data["head_hash"]),
                created_at=str(data["created_at"]),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
            if data.get("version") != CHECKPOINT_VERSION:
                raise ValueError("unknown checkpoint version")
            checkpoint.created  # noqa: B018 - a line whose time does not parse is unreadable
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError("not a checkpoint line") from error
        return checkpoint


def _signing_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.crypto import current_keyring

    return Ed25519PrivateKey.from_private_bytes(current_keyring().audit_signing_key)


def _key_id(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_path() -> Path:
    """Return the checkpoint file of this database's chain."""
    genesis = db.session.execute(
        select(AuditEntry.entry_hash).where(AuditEntry.chain_seq == 1)
    ).scalar_one_or_none()
    chain_id = genesis[:16] if genesis else "empty"
    return Path(current_app.config["HAVEN_AUDIT_CHECKPOINT_DIR"]) / CHECKPOINT_FILE.format(
        chain_id=chain_id
    )


def write_checkpoint(head: tuple[int, str] | None = None) -> Checkpoint | None:
    """Append a signed checkpoint of the chain head (read now if not given); None if empty."""
    if head is None:
        head = chain_head()
    if head is None:
        return None
    key = _signing_key()
    unsigned = Checkpoint(
        chain_seq=head[0],
        head_hash=head[1],
        created_at=utcnow().strftime(_DATETIME_FORMAT),
        key_id=_key_id(key.public_key()),
        signature="",
    )
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode("ascii")
    checkpoint = Checkpoint(**{**unsigned.__dict__, "signature": signature})
    path = checkpoint_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # One write() of one short line with O_APPEND: concurrent writers never interleave.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, checkpoint.to_line().encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return checkpoint


@dataclass
class _CheckpointTail:
    newest: Checkpoint | None
    unreadable_lines: int


def _read_checkpoint_tail() -> _CheckpointTail:
    """Return the checkpoint with the highest chain position among the file's last lines."""
    path = checkpoint_path()
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - CHECKPOINT_TAIL_BYTES)
            handle.seek(start)
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return _CheckpointTail(None, 0)
    lines = data.split("\n")
    if start > 0:
        lines = lines[1:]  # the first one was cut by the seek
    newest = None
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            checkpoint = Checkpoint.from_line(line)
        except ValueError:
            unreadable += 1
            continue
        if newest is None or checkpoint.chain_seq >= newest.chain_seq:
            newest = checkpoint
    return _CheckpointTail(newest, unreadable)


def latest_checkpoint() -> Checkpoint | None:
    """Return the newest checkpoint in the checkpoint file (signature not checked)."""
    return _read_checkpoint_tail().newest


def checkpoint_signature_valid(checkpoint: Checkpoint) -> bool:
    """Return whether the checkpoint was signed by the key ring's audit signing key."""
    from cryptography.exceptions import InvalidSignature

    public_key = _signing_key().public_key()
    if checkpoint.key_id != _key_id(public_key):
        return False
    try:
        public_key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_if_due(head: tuple[int, str] | None = None) -> Checkpoint | None:
    """Write a checkpoint if the chain grew by the configured entries or time since the last.

    Never over a chain that no longer holds the last checkpoint's head: a new checkpoint
    would bless newest entries removed and then grown over. That is logged as an error and
    left for `flask audit verify` to report.
    """
    if head is None:
        head = chain_head()
    if head is None:
        return None
    newest = latest_checkpoint()
    if newest is not None:
        if head[0] <= newest.chain_seq:
            return None
        grown = head[0] - newest.chain_seq
        age = (utcnow() - newest.created).total_seconds()
        config = current_app.config
        if (
            grown < config["HAVEN_AUDIT_CHECKPOINT_EVERY_ENTRIES"]
            and age < config["HAVEN_AUDIT_CHECKPOINT_EVERY_SECONDS"]
        ):
            return None
        if not chain_holds(newest):
            current_app.logger.error(
                "audit: the chain no longer holds checkpoint %s; no new checkpoint is written"
                " until this is resolved (run `flask audit verify`)",
                newest.chain_seq,
            )
            return None
    return write_checkpoint(head)


def chain_holds(checkpoint: Checkpoint) -> bool:
    """Return whether the checkpoint is genuine and its head is still in the chain."""
    return checkpoint_signature_valid(checkpoint) and (
        _hash_at(checkpoint.chain_seq) == checkpoint.head_hash
    )


# Verification ----------------------------------------------------------------------------


class BreakKind(enum.StrEnum):
    EDITED = "edited"
    BROKEN_LINK = "broken_link"
    MISSING_SEQUENCE = "missing_sequence"
    TRUNCATED = "truncated"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    BAD_CHECKPOINT = "bad_checkpoint"
    NO_CHECKPOINT = "no_checkpoint"


@dataclass(frozen=True)
class Break:
    """One reason the audit log cannot be trusted, naming the entry where it shows."""

    kind: BreakKind
    entry_id: int | None = None
    chain_seq: int | None = None
    expected_seq: int | None = None
    checkpoint_seq: int | None = None

    @property
    def message(self) -> str:
        params = {
            "id": self.entry_id,
            "seq": self.chain_seq,
            "expected": self.expected_seq,
            "checkpoint": self.checkpoint_seq,
        }
        if self.kind is BreakKind.EDITED:
            text_ = gettext(
                "Entry %(id)s (chain position %(seq)s) was edited: its content no longer "
                "matches its hash.",
                **params,
            )
        elif self.kind is BreakKind.BROKEN_LINK:
            text_ = gettext(
                "Entry %(id)s (chain position %(seq)s) does not link to the entry before it: "
                "entries were removed, reordered or rewritten.",
                **params,
            )
        elif self.kind is BreakKind.MISSING_SEQUENCE:
            text_ = gettext(
                "Entry %(id)s has chain position %(seq)s where %(expected)s was expected: "
                "entries %(expected)s to %(before)s are missing.",
                before=(self.chain_seq or 0) - 1,
                **params,
            )
        elif self.kind is BreakKind.TRUNCATED:
            text_ = gettext(
                "The newest entries are missing: the latest checkpoint covers %(checkpoint)s "
                "entries but the chain ends at position %(expected)s.",
                **params,
            )
        elif self.kind is BreakKind.CHECKPOINT_MISMATCH:
            text_ = gettext(
                "Entry %(id)s (chain position %(seq)s) differs from the signed checkpoint: "
                "the chain was rewritten.",
                **params,
            )
        elif self.kind is BreakKind.BAD_CHECKPOINT:
            text_ = gettext(
                "The latest checkpoint (position %(checkpoint)s) has no valid signature: it "
                "was forged or altered.",
                **params,
            )
        else:
            text_ = gettext(
                "No checkpoint was found, so removal of the newest entries cannot be "
                "detected. Run `flask audit checkpoint`."
            )
        return text_


@dataclass
class VerifyResult:
    """What ``verify_chain`` found: counts, the newest checkpoint and any breaks."""

    entries_checked: int = 0
    unlinked: int = 0
    head_seq: int = 0
    head_hash: str | None = None
    checkpoint: Checkpoint | None = None
    unreadable_checkpoint_lines: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None

    @property
    def summary(self) -> str:
        if not self.ok:
            return self.first_break.message
        if not self.entries_checked:
            return gettext("The audit log is empty.")
        return gettext(
            "The audit log is intact: %(count)s entries checked, %(unlinked)s waiting to be "
            "linked; the latest signed checkpoint covers %(checkpoint)s entries.",
            count=self.entries_checked,
            unlinked=self.unlinked,
            checkpoint=self.checkpoint.chain_seq,
        )


@contextmanager
def _stream_chain(batch_size: int) -> Iterator[Iterator[Any]]:
    """Open the linked entries in chain order, fetched a batch at a time (bounded memory).

    A context manager rather than a generator: verify stops at the first break, and the
    server-side cursor (and its lock on the table) must close right then.
    """
    table = AuditEntry.__table__
    query = (
        _content_select()
        .add_columns(table.c.prev_hash, table.c.entry_hash)
        .where(table.c.chain_seq.is_not(None))
        .order_by(table.c.chain_seq)
    )
    with db.engine.connect() as connection:
        result = connection.execution_options(yield_per=batch_size).execute(query)
        try:
            yield iter(result)
        finally:
            result.close()
            connection.rollback()


def verify_chain(batch_size: int = VERIFY_BATCH_SIZE) -> VerifyResult:
    """Recompute the chain, name the first broken entry and check the newest checkpoint."""
    result = VerifyResult()
    # Read the checkpoint first: entries linked while we stream only add to the chain.
    tail = _read_checkpoint_tail()
    result.checkpoint = tail.newest
    result.unreadable_checkpoint_lines = tail.unreadable_lines
    checkpoint_hash = None  # the hash stored at the checkpoint's position, once reached

    expected_seq = 1
    prev_hash = GENESIS_HASH
    chain_break: Break | None = None
    sha256 = hashlib.sha256
    with _stream_chain(batch_size) as rows:
        for row in rows:
            entry_id, seq, stored_prev, stored_hash = row[0], row[1], row[-2], row[-1]
            if seq != expected_seq:
                chain_break = Break(
                    BreakKind.MISSING_SEQUENCE if seq > expected_seq else BreakKind.BROKEN_LINK,
                    entry_id=entry_id,
                    chain_seq=seq,
                    expected_seq=expected_seq,
                )
                break
            if stored_prev != prev_hash:
                chain_break = Break(BreakKind.BROKEN_LINK, entry_id=entry_id, chain_seq=seq)
                break
            try:
                digest = sha256(bytes.fromhex(prev_hash))
                digest.update(_canonical(*row[:_CONTENT_WIDTH]))
                intact = stored_hash == digest.hexdigest()
            except (TypeError, ValueError, AttributeError):
                intact = False  # a value of the wrong type, written behind the app's back
            if not intact:
                chain_break = Break(BreakKind.EDITED, entry_id=entry_id, chain_seq=seq)
                break
            if result.checkpoint is not None and seq == result.checkpoint.chain_seq:
                checkpoint_hash = (entry_id, stored_hash)
            prev_hash = stored_hash
            expected_seq += 1
    result.entries_checked = expected_seq - 1
    result.head_seq = expected_seq - 1
    result.head_hash = prev_hash if result.head_seq else None
    if chain_break is not None:
        result.breaks.append(chain_break)

    table = AuditEntry.__table__
    result.unlinked = db.session.execute(
        select(func.count()).select_from(table).where(table.c.chain_seq.is_(None))
    ).scalar_one()

    checkpoint = result.checkpoint
    if checkpoint is None:
        if result.head_seq and chain_break is None:
            result.breaks.append(Break(BreakKind.NO_CHECKPOINT))
    elif not checkpoint_signature_valid(checkpoint):
        result.breaks.append(Break(BreakKind.BAD_CHECKPOINT, checkpoint_seq=checkpoint.chain_seq))
    elif chain_break is None:
        if checkpoint_hash is None:
            result.breaks.append(
                Break(
                    BreakKind.TRUNCATED,
                    checkpoint_seq=checkpoint.chain_seq,
                    expected_seq=result.head_seq,
                )
            )
        elif checkpoint_hash[1] != checkpoint.head_hash:
            result.breaks.append(
                Break(
                    BreakKind.CHECKPOINT_MISMATCH,
                    entry_id=checkpoint_hash[0],
                    chain_seq=checkpoint.chain_seq,
                    checkpoint_seq=checkpoint.chain_seq,
                )
            )
    return result


# Wiring ----------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Commit the audit entries of requests that did not commit, then link them."""
    app.config.setdefault("HAVEN_AUDIT_LINK_AFTER_REQUEST", True)
    app.after_request(_commit_audit_entries)


def _commit_audit_entries(response):
    if not g.pop("haven_audit_recorded", False):
        return response
    if response.status_code >= 500:
        # The request failed: its session is rolled back at teardown, entries included.
        return response
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        current_app.logger.exception("audit entry could not be written; the request fails")
        raise
    if current_app.config["HAVEN_AUDIT_LINK_AFTER_REQUEST"] and _link_due():
        # After the response is sent, so linking never adds to the request's latency.
        response.call_on_close(partial(_link_after_response, current_app._get_current_object()))
    return response


_last_link_started = 0.0


def _link_due() -> bool:
    """Whether this process should link now: at most once per HAVEN_AUDIT_LINK_INTERVAL.

    Linking after every response kept a sync worker busy after each audited read; batching
    the entries of a second or two costs one linker run instead of dozens. Unlinked entries
    are committed and tamper-evident once linked by the next run or `flask audit link`.
    """
    global _last_link_started
    now = time.monotonic()
    if now - _last_link_started < current_app.config["HAVEN_AUDIT_LINK_INTERVAL"]:
        return False
    _last_link_started = now
    return True


def _link_after_response(app: Flask) -> None:
    with app.app_context():
        try:
            link_pending()
        except Exception:
            # The entries are committed; the next linker run links them.
            app.logger.exception("audit linker failed")


audit_cli = AppGroup("audit", help="Link, checkpoint and verify the audit log.")


@audit_cli.command("link")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def link_command(batch_size: int) -> None:
    """Link pending entries into the chain; write a checkpoint if one is due.

    Run it every minute from cron or a systemd timer, so that checkpoints follow the chain
    even when no request arrives.
    """
    linked = link_pending(batch_size)
    checkpoint = checkpoint_if_due()
    click.echo(f"linked {linked} entries")
    if checkpoint is not None:
        click.echo(f"checkpoint written at chain position {checkpoint.chain_seq}")


@audit_cli.command("checkpoint")
@click.option(
    "--force",
    is_flag=True,
    help="Write it even though the chain no longer holds the last checkpoint (after a restore"
    " whose loss is understood).",
)
def checkpoint_command(force: bool) -> None:
    """Link pending entries, then write a signed checkpoint of the chain head."""
    link_pending(checkpoint=False)
    newest = latest_checkpoint()
    if newest is not None and not force and not chain_holds(newest):
        raise click.ClickException(
            f"the chain no longer holds the checkpoint at position {newest.chain_seq}: run"
            " `flask audit verify`; --force writes a new checkpoint anyway"
        )
    checkpoint = write_checkpoint()
    if checkpoint is None:
        click.echo("the audit log is empty: no checkpoint written")
        return
    click.echo(
        f"checkpoint written at chain position {checkpoint.chain_seq} "
        f"({checkpoint.head_hash}) to {checkpoint_path()}"
    )


@audit_cli.command("verify")
@click.pass_context
def verify_command(ctx: click.Context) -> None:
    """Recompute the hash chain and check it against the latest signed checkpoint."""
    result = verify_chain()
    checkpoint = result.checkpoint
    click.echo(f"entries checked: {result.entries_checked}")
    click.echo(f"entries waiting to be linked: {result.unlinked}")
    if checkpoint is not None:
        click.echo(f"latest checkpoint: position {checkpoint.chain_seq}, {checkpoint.created_at}")
    if result.unreadable_checkpoint_lines:
        click.echo(f"unreadable checkpoint lines ignored: {result.unreadable_checkpoint_lines}")
    if result.ok:
        click.echo("OK: the audit log is intact")
        return
    for problem in result.breaks:
        click.echo(f"BROKEN: {problem.message}", err=True)
        if problem.entry_id is not None:
            click.echo(
                f"  entry id {problem.entry_id}, chain position {problem.chain_seq}", err=True
            )
    ctx.exit(1)
