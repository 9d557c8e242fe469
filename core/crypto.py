"""Haven's cryptography: key ring, per-record data keys, encrypted fields and blind indexes.

Every encryption and decryption in Haven goes through this module.

Keys
    The **key ring** (``KeyRing``) holds the key-encryption keys (KEKs, by version id), the
    blind-index root key and the audit signing seed. It lives in ``HAVEN_KEYRING`` (JSON) or
    in ``instance/keys/keyring.json`` (mode 0600), never in the database or the logs.
    Each record that carries personal data owns a random 256-bit **data key** (``DataKey``),
    stored in ``data_keys`` only wrapped by a KEK (AES key wrap with padding, RFC 5649).
    Destroying the data key crypto-shreds every field encrypted under it.

Ciphertext format (``FORMAT_VERSION`` 1)
    ``version (1 byte) || data-key id (16-byte UUID) || nonce (12 bytes) || AES-256-GCM
    ciphertext and tag``. The associated data binds the version, the data-key id, the table,
    the column and the row id, so a ciphertext copied to another row or column, or put under
    another data key, fails to authenticate (``DecryptionError``).

Encrypted columns
    ``given_name = EncryptedField()`` declares one. ``EncryptedField.__set_name__`` runs
    while ``type.__new__`` builds the class, i.e. before ``DeclarativeBase.__init_subclass__``
    scans the class body, so it can add the real column as a sibling attribute:
    ``_given_name_enc = mapped_column("given_name_enc", LargeBinary, nullable=True)``.
    Declarative then maps that column like any other (migrations see ``given_name_enc``),
    and the descriptor encrypts on set and decrypts on get. The model supplies the key with
    ``encryption_key(self) -> DataKey`` and must have its primary key set before a value is
    assigned (the row id is part of the associated data): give it a UUID in ``__init__``, or
    flush first for autoincrement ids. Plaintext is cached on the instance next to the
    ciphertext it came from, so it never outlives the session's identity map (one request)
    and is dropped as soon as the ciphertext changes. Encrypted fields cannot be used in SQL
    expressions; search through a blind index.

Blind indexes
    CipherSweet's design: HMAC-SHA256 over a normalised value under a key derived with
    HKDF-SHA256 from the index root key for each (table, column, index name), truncated to a
    few bits so that several records share each value. Matches are only candidates: decrypt
    and compare before showing anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import stat
import struct
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)
from flask import Flask, current_app, g, has_app_context
from sqlalchemy import CheckConstraint, LargeBinary, String, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, new_uuid, utcnow

log = logging.getLogger(__name__)

KEY_BYTES = 32
FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID_BYTES = 16
_HEADER_BYTES = 1 + _KEY_ID_BYTES + NONCE_BYTES
_KEK_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
_EXTENSION = "haven_keyring"
_SOURCE_EXTENSION = "haven_keyring_source"
_G_CIPHERS = "_haven_ciphers"
_PLAINTEXT_CACHE = "_haven_plaintext"


# --------------------------------------------------------------------------- errors


class CryptoError(Exception):
    """Base class for every error raised by this module."""


class DecryptionError(CryptoError):
    """A ciphertext or wrapped key does not authenticate under the key and context given."""


class KeyDestroyed(CryptoError):
    """The data key was destroyed (crypto-shredded); what it protected is gone."""


class KeyRingError(CryptoError):
    """The key ring is missing, malformed or lacks a key that is needed."""


class KeyRotationError(CryptoError):
    """Some data keys could not be rewrapped; the others were."""


# --------------------------------------------------------------------------- key ring


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyRingError(f"key ring: {what} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyRingError(f"key ring: {what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"key ring: {what} must be {KEY_BYTES} bytes")
    return raw


@dataclass(frozen=True, repr=False)
class KeyRing:
    """The process's keys: KEK versions, the blind-index root key and the audit signing seed."""

    keks: Mapping[str, bytes]
    current_kek_id: str
    index_root_key: bytes
    audit_signing_key: bytes
    # Derived blind-index keys; as secret as the root they come from and kept beside it.
    _index_keys: dict[tuple[str, str, str], bytes] = field(
        default_factory=dict, init=False, compare=False
    )

    def __post_init__(self) -> None:
        keks = dict(self.keks)
        if not keks:
            raise KeyRingError("key ring: no key-encryption key")
        for kek_id, key in keks.items():
            if not _KEK_ID.match(kek_id):
                raise KeyRingError(f"key ring: bad KEK id {kek_id!r}")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyRingError(f"key ring: KEK {kek_id} must be {KEY_BYTES} bytes")
        if self.current_kek_id not in keks:
            raise KeyRingError(f"key ring: current KEK {self.current_kek_id!r} is not in the ring")
        for name in ("index_root_key", "audit_signing_key"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_BYTES:
                raise KeyRingError(f"key ring: {name} must be {KEY_BYTES} bytes")
        object.__setattr__(self, "keks", MappingProxyType(keks))

    def __repr__(self) -> str:
        # Never show key material, not even in a traceback's locals.
        return f"<KeyRing keks={sorted(self.keks)} current={self.current_kek_id!r}>"

    @classmethod
    def generate(cls) -> KeyRing:
        """Return a new key ring with fresh random keys and one KEK, ``k1``."""
        return cls(
            keks={"k1": os.urandom(KEY_BYTES)},
            current_kek_id="k1",
            index_root_key=os.urandom(KEY_BYTES),
            audit_signing_key=os.urandom(KEY_BYTES),
        )

    def to_json(self) -> str:
        """Serialise the ring in the documented JSON form."""
        document = {
            "kek": {
                "current": self.current_kek_id,
                "keys": {kek_id: _b64(key) for kek_id, key in sorted(self.keks.items())},
            },
            "index_root": _b64(self.index_root_key),
            "audit_signing": _b64(self.audit_signing_key),
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """Parse the JSON form; raise KeyRingError (without echoing any key) when malformed."""
        try:
            document = json.loads(text)
        except ValueError:
            raise KeyRingError("key ring: not valid JSON") from None
        try:
            kek = document["kek"]
            keys = kek["keys"]
            current = kek["current"]
            index_root = document["index_root"]
            audit_signing = document["audit_signing"]
        except (KeyError, TypeError) as exc:
            raise KeyRingError(f"key ring: missing entry {exc}") from None
        if not isinstance(keys, dict) or not isinstance(current, str):
            raise KeyRingError("key ring: kek.keys must be an object and kek.current a string")
        return cls(
            keks={str(kek_id): _unb64(value, f"KEK {kek_id}") for kek_id, value in keys.items()},
            current_kek_id=current,
            index_root_key=_unb64(index_root, "index_root"),
            audit_signing_key=_unb64(audit_signing, "audit_signing"),
        )

    def with_new_kek(self, kek_id: str | None = None) -> KeyRing:
        """Return a copy with a new random KEK made current; older KEKs stay for reading."""
        if kek_id is None:
            numbers = [int(m.group(1)) for k in self.keks if (m := re.fullmatch(r"k(\d+)", k))]
            kek_id = f"k{max(numbers, default=0) + 1}"
        if kek_id in self.keks:
            raise KeyRingError(f"key ring: KEK {kek_id} already exists")
        return KeyRing(
            keks={**self.keks, kek_id: os.urandom(KEY_BYTES)},
            current_kek_id=kek_id,
            index_root_key=self.index_root_key,
            audit_signing_key=self.audit_signing_key,
        )

    def without_kek(self, kek_id: str) -> KeyRing:
        """Return a copy without an old KEK (once no data key is wrapped by it any more)."""
        if kek_id == self.current_kek_id:
            raise KeyRingError("key ring: the current KEK cannot be removed")
        if kek_id not in self.keks:
            raise KeyRingError(f"key ring: no KEK {kek_id}")
        return KeyRing(
            keks={k: v for k, v in self.keks.items() if k != kek_id},
            current_kek_id=self.current_kek_id,
            index_root_key=self.index_root_key,
            audit_signing_key=self.audit_signing_key,
        )

    def kek(self, kek_id: str) -> bytes:
        """Return the KEK with this id; raise KeyRingError when the ring lacks it."""
        try:
            return self.keks[kek_id]
        except KeyError:
            raise KeyRingError(f"key ring: no KEK {kek_id!r}") from None

    def index_key(self, table: str, column: str, index_name: str) -> bytes:
        """Return the blind-index key for one (table, column, index) via HKDF-SHA256."""
        for part in (table, column, index_name):
            if not _IDENTIFIER.match(part):
                raise ValueError(f"blind index: bad identifier {part!r}")
        cache_key = (table, column, index_name)
        key = self._index_keys.get(cache_key)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=KEY_BYTES,
                salt=None,
                info=f"haven.blind-index.v1|{table}|{column}|{index_name}".encode(),
            ).derive(self.index_root_key)
            self._index_keys[cache_key] = key
        return key

    def audit_private_key(self) -> Ed25519PrivateKey:
        """Return the Ed25519 key that signs audit checkpoints."""
        return Ed25519PrivateKey.from_private_bytes(self.audit_signing_key)

    def audit_public_key(self) -> Ed25519PublicKey:
        """Return the public half of the audit signing key."""
        return self.audit_private_key().public_key()


def keyring_path(app: Flask) -> Path:
    """Return where the key ring file lives for this app."""
    configured = app.config.get("HAVEN_KEYRING_FILE")
    return Path(configured) if configured else Path(app.instance_path) / "keys" / "keyring.json"


def load_keyring(app: Flask) -> KeyRing:
    """Read the key ring from ``$HAVEN_KEYRING`` or else the key ring file.

    :raises KeyRingError: when there is none or it is malformed.
    """
    from_env = os.environ.get("HAVEN_KEYRING", "").strip()
    if from_env:
        return KeyRing.from_json(from_env)
    path = keyring_path(app)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyRingError(
            f"no key ring: set HAVEN_KEYRING or create {path} (`flask keys init`)"
        ) from None
    return KeyRing.from_json(text)


def write_keyring_file(path: str | os.PathLike[str], ring: KeyRing) -> None:
    """Write the key ring atomically, file mode 0600 in a directory created with mode 0700."""
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    # mkstemp creates the file 0600, so the keys are never readable by others, even briefly;
    # os.replace makes the new ring appear whole or not at all.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".keyring-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(ring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def keyring_file_problems(path: str | os.PathLike[str]) -> list[str]:
    """Return what is wrong with the key ring file's permissions (empty when fine)."""
    path = Path(path)
    problems = []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        problems.append(f"{path} has mode {mode:04o}; it must be 0600 (chmod 600)")
    parent_mode = stat.S_IMODE(path.parent.stat().st_mode)
    if parent_mode & 0o022:
        # Whoever can write the directory can swap the key ring for one of their own.
        problems.append(f"{path.parent} is writable by others (mode {parent_mode:04o})")
    return problems


def init_app(app: Flask) -> None:
    """Load the key ring into ``app.extensions`` or refuse to start without one."""
    ring = load_keyring(app)
    from_env = bool(os.environ.get("HAVEN_KEYRING", "").strip())
    path = None if from_env else keyring_path(app)
    app.extensions[_SOURCE_EXTENSION] = (path, None)
    use_keyring(app, ring)
    if path is not None:
        for problem in keyring_file_problems(path):
            app.logger.warning("key ring: %s", problem)


def use_keyring(app: Flask, ring: KeyRing) -> None:
    """Install a key ring in the app (after loading it, or after adding a KEK)."""
    path = keyring_file_in_use(app)
    app.extensions[_EXTENSION] = ring
    app.extensions[_SOURCE_EXTENSION] = (path, _mtime(path))
    if has_app_context():
        g.pop(_G_CIPHERS, None)


def keyring_file_in_use(app: Flask) -> Path | None:
    """Return the key ring file the app loaded, or None when it came from the environment."""
    return app.extensions.get(_SOURCE_EXTENSION, (None, None))[0]


def current_keyring() -> KeyRing:
    """Return the current app's key ring."""
    try:
        return current_app.extensions[_EXTENSION]
    except KeyError:
        raise KeyRingError("no key ring loaded: call core.crypto.init_app(app)") from None


def _mtime(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _kek(kek_id: str) -> bytes:
    """Return a KEK, re-reading a changed key ring file once when the id is unknown.

    ``flask keys rotate --new-kek`` writes the new ring and then rewraps; other workers of the
    same deployment pick the new KEK up here instead of failing until they restart.
    """
    ring = current_keyring()
    if kek_id in ring.keks:
        return ring.keks[kek_id]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    path, loaded_mtime = app.extensions.get(_SOURCE_EXTENSION, (None, None))
    if path is not None and _mtime(path) != loaded_mtime:
        ring = load_keyring(app)
        use_keyring(app, ring)
    return ring.kek(kek_id)


# --------------------------------------------------------------------------- data keys


class DataKey(db.Model):
    """A random per-record data key, stored only wrapped by a key-encryption key."""

    __tablename__ = "data_keys"
    __table_args__ = (
        # Destroyed means the wrapped key is gone: both or neither.
        CheckConstraint("(wrapped IS NULL) = (destroyed_at IS NOT NULL)", name="destroyed"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    kek_id: Mapped[str] = mapped_column(String(32))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @classmethod
    def generate(cls, ring: KeyRing | None = None) -> DataKey:
        """Return a new data key wrapped by the current KEK, not yet added to a session."""
        ring = ring or current_keyring()
        return cls(
            id=new_uuid(),
            kek_id=ring.current_kek_id,
            wrapped=aes_key_wrap_with_padding(ring.kek(ring.current_kek_id), os.urandom(KEY_BYTES)),
            created_at=utcnow(),
        )

    @property
    def is_destroyed(self) -> bool:
        return self.destroyed_at is not None

    def __repr__(self) -> str:
        state = "destroyed" if self.is_destroyed else self.kek_id
        return f"<DataKey {self.id} {state}>"


def new_data_key() -> DataKey:
    """Create a data key under the current KEK and add it to the session."""
    data_key = DataKey.generate()
    db.session.add(data_key)
    return data_key


def unwrap_data_key(data_key: DataKey) -> bytes:
    """Return the raw data key.

    :raises KeyDestroyed: when the key was crypto-shredded.
    :raises DecryptionError: when the wrapped key does not unwrap under its KEK.
    :raises KeyRingError: when the ring lacks the KEK it was wrapped with.
    """
    if data_key.destroyed_at is not None or not data_key.wrapped:
        raise KeyDestroyed(f"data key {data_key.id} was destroyed")
    try:
        return aes_key_unwrap_with_padding(_kek(data_key.kek_id), bytes(data_key.wrapped))
    except InvalidUnwrap:
        raise DecryptionError(
            f"data key {data_key.id} does not unwrap under KEK {data_key.kek_id}"
        ) from None


def _cipher(data_key: DataKey) -> AESGCM:
    """Return the AES-GCM cipher for a data key, cached in ``g`` for this request only.

    Caching per request avoids unwrapping a case's key once per field; not caching across
    requests keeps raw keys out of long-lived memory and lets a destroy take effect at once.
    """
    if data_key.destroyed_at is not None or not data_key.wrapped:
        raise KeyDestroyed(f"data key {data_key.id} was destroyed")
    if not has_app_context():
        return AESGCM(unwrap_data_key(data_key))
    ciphers = g.setdefault(_G_CIPHERS, {})
    cipher = ciphers.get(data_key.id)
    if cipher is None:
        cipher = ciphers[data_key.id] = AESGCM(unwrap_data_key(data_key))
    return cipher


def destroy_data_key(data_key: DataKey) -> None:
    """Crypto-shred a data key: drop the wrapped key and mark it destroyed.

    Blind indexes are not covered by the key; delete them in the same transaction.
    """
    data_key.wrapped = None
    data_key.destroyed_at = utcnow()
    if has_app_context():
        g.get(_G_CIPHERS, {}).pop(data_key.id, None)


# --------------------------------------------------------------------------- AEAD


def _associated_data(key_id: bytes, table: str, column: str, row_id: object) -> bytes:
    # Length-prefixed parts, so no two different contexts can serialise the same way:
    # b"haven.field", the format version, key id, table, column, row id, each as
    # struct.pack(">I", len(part)) + part. The constant parts are packed once.
    names = _PACKED_NAMES.get((table, column))
    if names is None:
        names = _PACKED_NAMES[table, column] = _packed(table.encode()) + _packed(column.encode())
    return b"".join((_AD_PREFIX, _packed(key_id), names, _packed(str(row_id).encode())))


def _packed(part: bytes) -> bytes:
    return struct.pack(">I", len(part)) + part


_AD_PREFIX = _packed(b"haven.field") + _packed(bytes([FORMAT_VERSION]))
# (table, column) -> their packed parts; a handful of entries, names from the code only.
_PACKED_NAMES: dict[tuple[str, str], bytes] = {}


def _key_id_bytes(data_key: DataKey) -> bytes:
    return uuid.UUID(data_key.id).bytes


def encrypt_value(
    data_key: DataKey,
    plaintext: str | bytes | None,
    *,
    table: str,
    column: str,
    row_id: object,
) -> bytes | None:
    """Encrypt a value for one table, column and row with AES-256-GCM; None stays None."""
    if plaintext is None:
        return None
    if row_id is None:
        raise ValueError(f"{table}.{column}: the row id must be set before encrypting")
    if isinstance(plaintext, str):
        plaintext = plaintext.encode("utf-8")
    key_id = _key_id_bytes(data_key)
    # Random 96-bit nonces are safe: each data key encrypts only one record's few values.
    nonce = os.urandom(NONCE_BYTES)
    body = _cipher(data_key).encrypt(
        nonce, bytes(plaintext), _associated_data(key_id, table, column, row_id)
    )
    return bytes([FORMAT_VERSION]) + key_id + nonce + body


def decrypt_value(
    data_key: DataKey,
    ciphertext: bytes | None,
    *,
    table: str,
    column: str,
    row_id: object,
) -> bytes | None:
    """Decrypt a value written by encrypt_value for the same table, column and row.

    :raises DecryptionError: when it was tampered with, moved, or is under another key.
    :raises KeyDestroyed: when the data key was destroyed.
    """
    if ciphertext is None:
        return None
    ciphertext = bytes(ciphertext)
    where = f"{table}.{column} row {row_id}"
    if len(ciphertext) < _HEADER_BYTES + TAG_BYTES:
        raise DecryptionError(f"{where}: ciphertext too short")
    if ciphertext[0] != FORMAT_VERSION:
        raise DecryptionError(f"{where}: unknown ciphertext format {ciphertext[0]}")
    key_id = ciphertext[1 : 1 + _KEY_ID_BYTES]
    if key_id != _key_id_bytes(data_key):
        raise DecryptionError(f"{where}: encrypted under another data key")
    nonce = ciphertext[1 + _KEY_ID_BYTES : _HEADER_BYTES]
    try:
        return _cipher(data_key).decrypt(
            nonce, ciphertext[_HEADER_BYTES:], _associated_data(key_id, table, column, row_id)
        )
    except InvalidTag:
        raise DecryptionError(
            f"{where}: does not authenticate (tampered, or moved from another row or column)"
        ) from None


# --------------------------------------------------------------------------- encrypted fields

FieldKind = Literal["str", "date", "bytes", "json"]


class EncryptedField:
    """A model attribute stored AES-256-GCM encrypted in a ``<name>_enc`` column.

    ``kind`` is ``"str"``, ``"date"``, ``"bytes"`` or ``"json"``; ``deferred=True`` loads
    the column only when read. See the module docstring for how it maps.
    """

    def __init__(self, kind: FieldKind = "str", *, deferred: bool = False) -> None:
        if kind not in ("str", "date", "bytes", "json"):
            raise ValueError(f"EncryptedField: unknown kind {kind!r}")
        self.kind = kind
        self.deferred = deferred
        self.name = ""
        self.attribute = ""
        self.column_name = ""
        self._targets: dict[type, tuple[str, str]] = {}

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attribute = f"_{name}_enc"
        self.column_name = f"{name}_enc"
        # Runs inside type.__new__, before declarative scans the class, so this column is
        # mapped as if it had been written in the class body.
        setattr(
            owner,
            self.attribute,
            mapped_column(self.column_name, LargeBinary, nullable=True, deferred=self.deferred),
        )

    # Comparing an encrypted field in a query would silently compare Python objects.
    def __eq__(self, other: object) -> bool:
        raise TypeError(f"{self.name} is encrypted: search it through a blind index")

    def __ne__(self, other: object) -> bool:
        raise TypeError(f"{self.name} is encrypted: search it through a blind index")

    __hash__ = object.__hash__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        plaintext = self._plaintext(obj)
        return None if plaintext is None else self._decode(plaintext)

    def __set__(self, obj: Any, value: Any) -> None:
        if value is None:
            setattr(obj, self.attribute, None)
            obj.__dict__.get(_PLAINTEXT_CACHE, {}).pop(self.name, None)
            return
        plaintext = self._encode(value)
        # Re-encrypting an unchanged value would dirty the row and bump its version.
        with contextlib.suppress(CryptoError):
            if self._plaintext(obj) == plaintext:
                return
        table, column, row_id = self._context(obj)
        ciphertext = encrypt_value(
            obj.encryption_key(), plaintext, table=table, column=column, row_id=row_id
        )
        setattr(obj, self.attribute, ciphertext)
        obj.__dict__.setdefault(_PLAINTEXT_CACHE, {})[self.name] = (ciphertext, plaintext)

    def _plaintext(self, obj: Any) -> bytes | None:
        ciphertext = getattr(obj, self.attribute)
        if ciphertext is None:
            return None
        cache = obj.__dict__.setdefault(_PLAINTEXT_CACHE, {})
        hit = cache.get(self.name)
        # Valid only for the exact ciphertext it came from (a refresh or raw update changes it).
        if hit is not None and (hit[0] is ciphertext or hit[0] == ciphertext):
            return hit[1]
        table, column, row_id = self._context(obj)
        plaintext = decrypt_value(
            obj.encryption_key(), ciphertext, table=table, column=column, row_id=row_id
        )
        cache[self.name] = (ciphertext, plaintext)
        return plaintext

    def _context(self, obj: Any) -> tuple[str, str, object]:
        cls = type(obj)
        target = self._targets.get(cls)
        if target is None:
            mapper = sa_inspect(cls)
            if len(mapper.primary_key) != 1:
                raise TypeError(f"{cls.__name__}: encrypted fields need a one-column primary key")
            table = mapper.get_property(self.attribute).columns[0].table.name
            pk_key = mapper.get_property_by_column(mapper.primary_key[0]).key
            target = self._targets[cls] = (table, pk_key)
        table, pk_key = target
        row_id = getattr(obj, pk_key)
        if row_id is None:
            raise ValueError(
                f"{cls.__name__}.{self.name}: set the primary key (or flush) before assigning"
                " an encrypted field; the row id is bound into the ciphertext"
            )
        return table, self.column_name, row_id

    def _encode(self, value: Any) -> bytes:
        if self.kind == "str":
            if not isinstance(value, str):
                raise TypeError(f"{self.name} takes a str, not {type(value).__name__}")
            return value.encode("utf-8")
        if self.kind == "date":
            if not isinstance(value, date) or isinstance(value, datetime):
                raise TypeError(f"{self.name} takes a date, not {type(value).__name__}")
            return value.isoformat().encode("ascii")
        if self.kind == "bytes":
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"{self.name} takes bytes, not {type(value).__name__}")
            return bytes(value)
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    def _decode(self, plaintext: bytes) -> Any:
        if self.kind == "str":
            return plaintext.decode("utf-8")
        if self.kind == "date":
            return date.fromisoformat(plaintext.decode("ascii"))
        if self.kind == "bytes":
            return plaintext
        # Decoded afresh on each read, so mutating the result cannot change the cache.
        return json.loads(plaintext)


def encrypted_fields(model: type) -> dict[str, EncryptedField]:
    """Return a model's encrypted fields by attribute name."""
    found: dict[str, EncryptedField] = {}
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, EncryptedField):
                found[name] = value
    return found


def forget_plaintext(obj: object) -> None:
    """Drop the decrypted values cached on a model instance."""
    obj.__dict__.pop(_PLAINTEXT_CACHE, None)


# --------------------------------------------------------------------------- blind indexes

# Letters that NFKD does not reduce to ASCII, mapped after case-folding.
# Azerbaijani: ə is written "a" in Latin transliterations (passports: Məmmədova -> Mammadova),
# and ǝ (U+01DD) is a common mistype of it; dotless ı becomes i; ğ ş ç ö ü lose their marks
# in the NFKD step. Cyrillic follows the usual English-style romanisation of Russian (the one
# that gives "Mamedova", "Guseynova", "Khalilova"): ж zh, х kh, ц ts, ч ch, ш sh, щ shch, ы y,
# й y, ю yu, я ya, ъ and ь dropped. Letters only Azerbaijani Cyrillic has follow the
# Azerbaijani Latin alphabet, folded the same way as Latin input: ә a, ғ g, ҹ c, ј y, һ h,
# ө o, ү u, ҝ g. A few Ukrainian and Central Asian letters are included for names from there.
_TRANSLITERATION = str.maketrans(
    {
        # Latin letters without a decomposition
        "ə": "a", "ǝ": "a", "ı": "i", "ø": "o", "đ": "d", "ð": "d", "ł": "l", "æ": "ae",
        "œ": "oe", "þ": "th", "ŧ": "t", "ħ": "h",
        # Russian
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
        "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
        "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
        "я": "ya",
        # Azerbaijani Cyrillic
        "ә": "a", "ғ": "g", "ҹ": "c", "ј": "y", "һ": "h", "ө": "o", "ү": "u", "ҝ": "g",
        # Ukrainian, Belarusian, Kazakh, Uzbek, Tajik
        "і": "i", "ї": "yi", "є": "ye", "ґ": "g", "ў": "u", "қ": "k", "ң": "n", "ұ": "u",
        "ҳ": "h", "ҷ": "j", "ӣ": "i", "ӯ": "u",
    }
)  # fmt: skip
# Apostrophes inside names are dropped rather than split on (O'Neil, Uzbek oʻ, Ukrainian ʼ).
_APOSTROPHES = str.maketrans(dict.fromkeys("'’ʼʻ`´‘", ""))


def normalise_for_index(value: str) -> str:
    """Return the form of a name (or other text) that blind indexes compare.

    NFKC, case-fold, transliterate Azerbaijani and Cyrillic letters to Latin, strip the
    remaining diacritics (NFKD), drop apostrophes, and collapse every run of spaces and
    punctuation to one space. "MƏMMƏDOVA", "Məmmədova" and "mammadova" all give
    "mammadova"; "Мамедова" gives "mamedova".

    This is exact matching after normalisation, not fuzzy matching: different spellings of
    the same name stay different ("Mammadova" and "Mamedova", "Hüseynova" and "Гусейнова").
    """
    text = unicodedata.normalize("NFKC", value).casefold()
    text = text.translate(_APOSTROPHES).translate(_TRANSLITERATION)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # Again, for letters that only became mappable once their marks were removed.
    text = text.translate(_TRANSLITERATION)
    return " ".join("".join(c if c.isalnum() else " " for c in text).split())


def normalise_document_number(value: str) -> str:
    """Return a document number without case, spaces or punctuation ("AA 123-45" -> "aa12345")."""
    return normalise_for_index(value).replace(" ", "")


def normalise_phone(value: str, *, country_code: str = "994", national_digits: int = 9) -> str:
    """Return a phone number as international digits without "+", e.g. "994501234567".

    Deliberately simple: "+" or "00" starts an international number, kept as is; a leading
    "0" is the national trunk prefix and is replaced by ``country_code``; other numbers of at
    most ``national_digits`` digits get ``country_code`` in front; longer ones are taken to
    carry their country code already. Other countries' trunk prefixes (Russia's 8) are not
    recognised.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    digits = "".join(c for c in text if c.isdecimal() and c.isascii())
    if not digits:
        return ""
    if text.startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    if digits.startswith("0"):
        return country_code + digits[1:]
    if len(digits) <= national_digits:
        return country_code + digits
    return digits


def blind_index(
    value: str,
    *,
    table: str,
    column: str,
    index_name: str,
    bits: int,
    normalise: Callable[[str], str] | None = normalise_for_index,
    ring: KeyRing | None = None,
) -> int:
    """Return the blind index of a value: HMAC-SHA256 under the index's key, first ``bits`` bits.

    The value is passed through ``normalise`` first (None to index it exactly as given).
    """
    if not 1 <= bits <= 63:
        # 63 keeps every value inside a signed BIGINT.
        raise ValueError("blind index: bits must be between 1 and 63")
    text = normalise(value) if normalise else value
    if not text:
        raise ValueError("blind index: nothing to index after normalisation")
    key = (ring or current_keyring()).index_key(table, column, index_name)
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def blind_index_bits(expected_rows: int, *, minimum: int = 1, maximum: int = 32) -> int:
    """Return the blind-index width L for R expected rows (CipherSweet's rule, clamped).

    The rule wants 2 <= R / 2**L <= sqrt(R): every index value shared by at least two
    records (so a value does not single a record out) yet by no more than sqrt(R) (so a
    search decrypts few candidates). We take the largest L that keeps R / 2**L >= 2, i.e.
    floor(log2(R / 2)), which also meets the upper bound for any R >= 16.

    Clamped to [minimum, maximum]; ``maximum`` keeps the value in a 32-bit range. The width
    is frozen once indexes are written (changing it means recomputing every index), so R is
    the deployment's long-term estimate (HAVEN_EXPECTED_CASES, default 100,000 → 15 bits),
    not today's row count: DESIGN.md's lower bound (each value shared by two records) holds
    at that size, and a smaller system only decrypts more candidates per search.
    """
    if expected_rows < 1:
        raise ValueError("expected_rows must be positive")
    bits = math.floor(math.log2(expected_rows / 2)) if expected_rows >= 4 else 1
    return max(minimum, min(maximum, bits))


def configured_index_bits() -> int:
    """Return the blind-index width for this deployment (``HAVEN_BLIND_INDEX_BITS``)."""
    configured = current_app.config.get("HAVEN_BLIND_INDEX_BITS")
    if configured:
        return int(configured)
    return blind_index_bits(int(current_app.config.get("HAVEN_EXPECTED_CASES", 100_000)))


def name_birth_year_index(
    given_name: str | None,
    family_name: str | None,
    birth_year: int | None,
    *,
    table: str,
    bits: int,
    ring: KeyRing | None = None,
) -> int | None:
    """Return the composite "full name + birth year" index, or None when a part is missing.

    Both name parts and the year are needed: a year alone is low-entropy and must never be
    indexed by itself.
    """
    given = normalise_for_index(given_name or "")
    family = normalise_for_index(family_name or "")
    if not given or not family or birth_year is None:
        return None
    return blind_index(
        f"{family}|{given}|{int(birth_year):04d}",
        table=table,
        column="name_birth_year",
        index_name="name_birth_year",
        bits=bits,
        normalise=None,
        ring=ring,
    )


def document_number_index(
    number: str | None, *, table: str, bits: int, ring: KeyRing | None = None
) -> int | None:
    """Return the identity-document-number index, or None when there is no number."""
    normalised = normalise_document_number(number or "")
    if not normalised:
        return None
    return blind_index(
        normalised,
        table=table,
        column="document_number",
        index_name="document_number",
        bits=bits,
        normalise=None,
        ring=ring,
    )


def phone_index(
    phone: str | None,
    *,
    table: str,
    bits: int,
    country_code: str = "994",
    ring: KeyRing | None = None,
) -> int | None:
    """Return the phone-number index (see normalise_phone), or None when there is no number."""
    normalised = normalise_phone(phone or "", country_code=country_code)
    if not normalised:
        return None
    return blind_index(
        normalised,
        table=table,
        column="phone",
        index_name="phone",
        bits=bits,
        normalise=None,
        ring=ring,
    )


# --------------------------------------------------------------------------- rotation and checks


def rotate_data_keys(batch_size: int = 500, *, max_batches: int | None = None) -> int:
    """Rewrap every live data key not under the current KEK; return how many were rewrapped.

    Commits after each batch, so it runs online and a crash loses nothing: data keys left
    under the old KEK stay readable and a re-run continues with them. (The one place in
    core that commits: it is a maintenance job, called from the CLI.) ``max_batches`` stops
    early, as an interrupted run would.

    :raises KeyRotationError: after the run, when some keys could not be unwrapped.
    """
    ring = current_keyring()
    current = ring.current_kek_id
    new_kek = ring.kek(current)
    table = DataKey.__table__
    rewrapped = 0
    failed: list[str] = []
    last_id = ""
    batches = 0
    while max_batches is None or batches < max_batches:
        rows = db.session.execute(
            select(table.c.id, table.c.kek_id, table.c.wrapped)
            .where(
                table.c.kek_id != current,
                table.c.destroyed_at.is_(None),
                table.c.id > last_id,
            )
            .order_by(table.c.id)
            .limit(batch_size)
            # PostgreSQL: a second rotation running at the same time takes other rows.
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            break
        batches += 1
        now = utcnow()
        for row in rows:
            try:
                raw = aes_key_unwrap_with_padding(_kek(row.kek_id), bytes(row.wrapped))
            except (InvalidUnwrap, KeyRingError):
                failed.append(row.id)
                continue
            result = db.session.execute(
                update(table)
                # Never resurrect a key destroyed since it was read.
                .where(
                    table.c.id == row.id,
                    table.c.kek_id == row.kek_id,
                    table.c.destroyed_at.is_(None),
                )
                .values(
                    kek_id=current,
                    wrapped=aes_key_wrap_with_padding(new_kek, raw),
                    rewrapped_at=now,
                )
            )
            rewrapped += result.rowcount
        db.session.commit()
        last_id = rows[-1].id
        log.info("key rotation: %d data keys rewrapped under %s so far", rewrapped, current)
    if failed:
        shown = ", ".join(failed[:10])
        raise KeyRotationError(
            f"{len(failed)} data keys could not be unwrapped and stay as they were: {shown}"
        )
    return rewrapped


@dataclass
class KeyCheckReport:
    """What ``check_keys`` found."""

    current_kek_id: str
    ring_kek_ids: list[str]
    live_per_kek: dict[str, int]
    destroyed: int
    unreadable: list[str]
    keyring_file: Path | None
    file_problems: list[str]

    @property
    def pending_rotation(self) -> int:
        """Live data keys not yet under the current KEK."""
        return sum(n for kek_id, n in self.live_per_kek.items() if kek_id != self.current_kek_id)

    @property
    def problems(self) -> list[str]:
        problems = list(self.file_problems)
        if self.unreadable:
            shown = ", ".join(self.unreadable[:10])
            problems.append(f"{len(self.unreadable)} data keys do not unwrap: {shown}")
        return problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Return the report as text lines for the CLI."""
        source = str(self.keyring_file) if self.keyring_file else "HAVEN_KEYRING"
        lines = [
            f"key ring: {source}; KEKs {', '.join(self.ring_kek_ids)}; "
            f"current {self.current_kek_id}"
        ]
        for kek_id, count in sorted(self.live_per_kek.items()):
            lines.append(f"data keys under {kek_id}: {count}")
        lines.append(f"destroyed data keys: {self.destroyed}")
        if self.pending_rotation:
            lines.append(f"waiting for rotation: {self.pending_rotation} (flask keys rotate)")
        lines.extend(f"PROBLEM: {problem}" for problem in self.problems)
        return lines


def check_keys(batch_size: int = 1000) -> KeyCheckReport:
    """Check that every live data key unwraps and that the key ring file is private."""
    table = DataKey.__table__
    live_per_kek: dict[str, int] = {}
    unreadable: list[str] = []
    rows = db.session.execute(
        select(table.c.id, table.c.kek_id, table.c.wrapped)
        .where(table.c.destroyed_at.is_(None))
        .order_by(table.c.id)
        .execution_options(yield_per=batch_size)
    )
    for row in rows:
        live_per_kek[row.kek_id] = live_per_kek.get(row.kek_id, 0) + 1
        try:
            aes_key_unwrap_with_padding(_kek(row.kek_id), bytes(row.wrapped))
        except (InvalidUnwrap, KeyRingError, TypeError):
            unreadable.append(row.id)
    destroyed = db.session.scalar(
        select(func.count()).select_from(table).where(table.c.destroyed_at.is_not(None))
    )
    ring = current_keyring()  # _kek may have re-read a changed key ring file
    path = keyring_file_in_use(current_app)
    file_problems: list[str] = []
    if path is not None:
        try:
            file_problems = keyring_file_problems(path)
        except FileNotFoundError:
            file_problems = [f"{path} does not exist"]
    return KeyCheckReport(
        current_kek_id=ring.current_kek_id,
        ring_kek_ids=sorted(ring.keks),
        live_per_kek=live_per_kek,
        destroyed=destroyed or 0,
        unreadable=unreadable,
        keyring_file=path,
        file_problems=file_problems,
    )


def __getattr__(name: str) -> Any:
    # `flask keys` lives in core.keys_cli; imported lazily to keep click out of this module's
    # import and to avoid a circular import.
    if name == "keys_cli":
        from core.keys_cli import keys_cli

        return keys_cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
