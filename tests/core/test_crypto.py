"""Key ring, data keys, AES-GCM fields, crypto-shredding and KEK rotation."""

from __future__ import annotations

import itertools
import json
import os
import stat
import uuid
from datetime import date

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from flask import Flask, g
from sqlalchemy import select, text
from sqlalchemy.orm.exc import StaleDataError

from casework.models import Case
from core import crypto
from core.crypto import (
    DataKey,
    DecryptionError,
    KeyDestroyed,
    KeyRing,
    KeyRingError,
    KeyRotationError,
    check_keys,
    current_keyring,
    decrypt_value,
    destroy_data_key,
    encrypt_value,
    keyring_file_in_use,
    load_keyring,
    new_data_key,
    rotate_data_keys,
    unwrap_data_key,
    use_keyring,
    write_keyring_file,
)
from core.db import db as database
from core.keys_cli import keys_cli
from tests.factories import make_agency

_references = itertools.count(1)
PERSON = {
    "given_name": "Aysel",
    "family_name": "Məmmədova",
    "phone": "+994 50 123 45 67",
    "document_number": "AA1234567",
    "date_of_birth": date(1999, 4, 17),
    "circumstances": "Recruited through an online job offer",
}


def make_case(agency=None, **fields) -> Case:
    agency = agency or make_agency()
    case = Case(
        reference=f"HVN-2026-{next(_references):06d}",
        owner_agency_id=agency.id,
        **{**PERSON, **fields},
    )
    database.session.add(case)
    return case


def ciphertext_of(case: Case, column: str) -> bytes:
    row = database.session.execute(
        text(f"select {column} from cases where id = :id"), {"id": case.id}
    ).one()
    return bytes(row[0])


def set_raw(case: Case, column: str, value: bytes) -> None:
    database.session.execute(
        text(f"update cases set {column} = :value where id = :id"), {"value": value, "id": case.id}
    )
    database.session.commit()
    database.session.expire_all()


@pytest.fixture
def keep_keyring(app, monkeypatch):
    """Let a test swap the app's key ring or key ring file; put the original back after."""
    saved = dict(app.extensions)
    monkeypatch.delenv("HAVEN_KEYRING", raising=False)
    yield
    app.extensions.clear()
    app.extensions.update(saved)


@pytest.fixture
def file_keyring(app, db, keep_keyring, tmp_path, monkeypatch):
    """Point the app at a key ring file of its own, as a one-machine deployment has."""
    path = tmp_path / "keys" / "keyring.json"
    write_keyring_file(path, current_keyring())
    monkeypatch.setitem(app.config, "HAVEN_KEYRING_FILE", str(path))
    crypto.init_app(app)
    return path


# --------------------------------------------------------------------------- key ring


def test_keyring_survives_its_json_form():
    ring = KeyRing.generate().with_new_kek()
    again = KeyRing.from_json(ring.to_json())
    assert again == ring
    document = json.loads(ring.to_json())
    assert document["kek"]["current"] == "k2"
    assert set(document["kek"]["keys"]) == {"k1", "k2"}
    assert set(document) == {"kek", "index_root", "audit_signing"}


def test_keyring_never_shows_its_keys():
    ring = KeyRing.generate()
    shown = repr(ring) + str(ring)
    for key in [*ring.keks.values(), ring.index_root_key, ring.audit_signing_key]:
        assert key.hex() not in shown
        assert crypto._b64(key) not in shown


def test_a_new_kek_becomes_current_and_old_ones_stay_for_reading():
    ring = KeyRing.generate()
    rotated = ring.with_new_kek()
    assert rotated.current_kek_id == "k2"
    assert rotated.keks["k1"] == ring.keks["k1"]
    assert rotated.keks["k2"] != ring.keks["k1"]
    assert rotated.index_root_key == ring.index_root_key
    assert rotated.with_new_kek().current_kek_id == "k3"
    with pytest.raises(KeyRingError):
        rotated.without_kek("k2")
    assert set(rotated.without_kek("k1").keks) == {"k2"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["kek"].update(current="k9"),
        lambda d: d["kek"]["keys"].update(k1="c2hvcnQ="),
        lambda d: d.pop("index_root"),
        lambda d: d.update(audit_signing="not base64!"),
    ],
)
def test_a_malformed_keyring_is_refused(mutate):
    document = json.loads(KeyRing.generate().to_json())
    mutate(document)
    with pytest.raises(KeyRingError):
        KeyRing.from_json(json.dumps(document))


def test_the_audit_signing_key_signs_and_verifies():
    ring = KeyRing.generate()
    signature = ring.audit_private_key().sign(b"checkpoint")
    ring.audit_public_key().verify(signature, b"checkpoint")


def test_the_keyring_file_is_written_private_and_whole(tmp_path):
    path = tmp_path / "keys" / "keyring.json"
    ring = KeyRing.generate()
    write_keyring_file(path, ring)
    write_keyring_file(path, ring.with_new_kek())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["keyring.json"]
    assert KeyRing.from_json(path.read_text()).current_kek_id == "k2"


def test_the_keyring_comes_from_the_environment_before_the_file(tmp_path, monkeypatch):
    app = Flask("keyring-test", instance_path=str(tmp_path))
    app.config["HAVEN_KEYRING_FILE"] = str(tmp_path / "missing.json")
    monkeypatch.delenv("HAVEN_KEYRING", raising=False)
    with pytest.raises(KeyRingError, match="no key ring"):
        load_keyring(app)
    ring = KeyRing.generate()
    monkeypatch.setenv("HAVEN_KEYRING", ring.to_json())
    assert load_keyring(app) == ring


# --------------------------------------------------------------------------- AEAD


@pytest.mark.parametrize(
    "plaintext", ["Aysel Məmmədova", "", "Мамедова", b"\x00\xffbinary", bytes(range(256)) * 10]
)
def test_values_roundtrip(db, plaintext):
    key = new_data_key()
    where = {"table": "cases", "column": "x_enc", "row_id": "r1"}
    ciphertext = encrypt_value(key, plaintext, **where)
    expected = plaintext.encode() if isinstance(plaintext, str) else plaintext
    assert decrypt_value(key, ciphertext, **where) == expected
    assert ciphertext[0] == crypto.FORMAT_VERSION
    assert ciphertext[1:17] == uuid.UUID(key.id).bytes


def test_none_stays_none(db):
    key = new_data_key()
    assert encrypt_value(key, None, table="t", column="c", row_id=1) is None
    assert decrypt_value(key, None, table="t", column="c", row_id=1) is None


def test_the_same_value_encrypts_differently_each_time(db):
    key = new_data_key()
    one = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    two = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    assert one != two


@pytest.mark.parametrize("position", [0, 1, 16, 17, 28, 29, 33, -16, -1])
def test_a_tampered_byte_fails_to_decrypt(db, position):
    key = new_data_key()
    ciphertext = bytearray(encrypt_value(key, "Aysel", table="t", column="c", row_id=1))
    ciphertext[position] ^= 0x01
    with pytest.raises(DecryptionError):
        decrypt_value(key, bytes(ciphertext), table="t", column="c", row_id=1)


def test_a_truncated_ciphertext_fails_to_decrypt(db):
    key = new_data_key()
    ciphertext = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    with pytest.raises(DecryptionError):
        decrypt_value(key, ciphertext[:20], table="t", column="c", row_id=1)


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"table": "t", "column": "c", "row_id": 2},
        {"table": "t", "column": "d", "row_id": 1},
        {"table": "u", "column": "c", "row_id": 1},
    ],
)
def test_a_ciphertext_moved_to_another_row_or_column_fails(db, elsewhere):
    key = new_data_key()
    ciphertext = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    with pytest.raises(DecryptionError):
        decrypt_value(key, ciphertext, **elsewhere)


def test_another_data_key_cannot_decrypt(db):
    key, other = new_data_key(), new_data_key()
    ciphertext = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    with pytest.raises(DecryptionError, match="another data key"):
        decrypt_value(other, ciphertext, table="t", column="c", row_id=1)
    # Relabelling the ciphertext with the other key's id does not help either.
    relabelled = ciphertext[:1] + uuid.UUID(other.id).bytes + ciphertext[17:]
    with pytest.raises(DecryptionError):
        decrypt_value(other, relabelled, table="t", column="c", row_id=1)


def test_a_destroyed_data_key_decrypts_nothing(db):
    key = new_data_key()
    ciphertext = encrypt_value(key, "Aysel", table="t", column="c", row_id=1)
    destroy_data_key(key)
    assert key.wrapped is None and key.is_destroyed
    with pytest.raises(KeyDestroyed):
        decrypt_value(key, ciphertext, table="t", column="c", row_id=1)
    with pytest.raises(KeyDestroyed):
        unwrap_data_key(key)
    db.session.commit()


def test_a_wrapped_key_under_the_wrong_kek_does_not_unwrap(db):
    key = new_data_key()
    key.wrapped = DataKey.generate(KeyRing.generate()).wrapped
    with pytest.raises(DecryptionError, match="does not unwrap"):
        unwrap_data_key(key)


def test_data_keys_are_stored_only_wrapped(db):
    key = new_data_key()
    raw = unwrap_data_key(key)
    db.session.commit()
    row = db.session.execute(text("select * from data_keys")).one()
    assert all(raw not in bytes(value) for value in row if isinstance(value, bytes | memoryview))
    assert row.kek_id == current_keyring().current_kek_id


# --------------------------------------------------------------------------- encrypted fields


def test_encrypted_fields_map_to_binary_columns():
    columns = Case.__table__.c
    for name in ("given_name", "family_name", "date_of_birth", "phone", "circumstances"):
        assert f"{name}_enc" in columns
        assert name not in columns
    assert set(crypto.encrypted_fields(Case)) >= {"given_name", "date_of_birth", "address"}


def test_case_fields_roundtrip_through_the_database(db):
    case = make_case(aliases=None)
    db.session.commit()
    case_id = case.id
    db.session.expunge_all()
    case = db.session.get(Case, case_id)
    assert case.given_name == "Aysel"
    assert case.family_name == "Məmmədova"
    assert case.date_of_birth == date(1999, 4, 17)
    assert isinstance(case.date_of_birth, date)
    assert case.phone == "+994 50 123 45 67"
    assert case.aliases is None
    assert case._aliases_enc is None


def test_an_encrypted_field_refuses_the_wrong_type(db):
    case = make_case()
    with pytest.raises(TypeError):
        case.given_name = 42
    with pytest.raises(TypeError):
        case.date_of_birth = "1999-04-17"


def test_an_encrypted_field_cannot_be_compared_in_sql():
    with pytest.raises(TypeError, match="blind index"):
        select(Case).where(Case.given_name == "Aysel")


def test_an_encrypted_field_needs_a_row_id_first(db):
    case = Case(reference="HVN-2026-999999", owner_agency_id=1)
    case.id = None
    with pytest.raises(ValueError, match="primary key"):
        case.given_name = "Aysel"


def test_assigning_the_same_value_changes_nothing(db):
    case = make_case()
    db.session.commit()
    before = ciphertext_of(case, "given_name_enc")
    case.given_name = "Aysel"
    db.session.commit()
    assert case.version == 1
    assert ciphertext_of(case, "given_name_enc") == before
    case.given_name = "Leyla"
    db.session.commit()
    assert case.version == 2


def test_a_stale_version_is_refused(db):
    case = make_case()
    db.session.commit()
    db.session.execute(
        text("update cases set version = version + 1 where id = :id"), {"id": case.id}
    )
    case.given_name = "Leyla"
    with pytest.raises(StaleDataError):
        db.session.commit()
    db.session.rollback()


def test_raw_rows_hold_no_plaintext(db):
    case = make_case()
    case.refresh_blind_indexes()
    db.session.commit()
    needles = [
        "Aysel",
        "Məmmədova",
        "Mammadova",
        "50 123 45 67",
        "501234567",
        "AA1234567",
        "1999-04-17",
        "online job",
    ]
    ring = current_keyring()
    secrets = [unwrap_data_key(case.data_key), *ring.keks.values(), ring.index_root_key]
    for table in ("cases", "data_keys", "case_blind_indexes"):
        rows = db.session.execute(text(f"select * from {table}")).all()
        assert rows
        for row in rows:
            for value in row:
                if isinstance(value, bytes | memoryview):
                    blob = bytes(value)
                    assert not any(needle.encode() in blob for needle in needles)
                    assert not any(secret in blob for secret in secrets)
                elif isinstance(value, str):
                    assert not any(needle.casefold() in value.casefold() for needle in needles)


def test_a_ciphertext_copied_to_another_row_fails(db):
    agency = make_agency()
    victim = make_case(agency)
    # Same data key, so only the row id in the associated data can tell them apart.
    other = make_case(agency, given_name="Leyla", data_key=victim.data_key)
    another_key = make_case(agency, given_name="Nigar")
    db.session.commit()
    set_raw(victim, "given_name_enc", ciphertext_of(other, "given_name_enc"))
    with pytest.raises(DecryptionError):
        _ = victim.given_name
    set_raw(victim, "given_name_enc", ciphertext_of(another_key, "given_name_enc"))
    with pytest.raises(DecryptionError):
        _ = victim.given_name
    assert other.given_name == "Leyla"


def test_a_ciphertext_copied_to_another_column_fails(db):
    case = make_case()
    db.session.commit()
    assert case.family_name == "Məmmədova"  # cached plaintext must not hide the swap
    set_raw(case, "family_name_enc", ciphertext_of(case, "given_name_enc"))
    with pytest.raises(DecryptionError):
        _ = case.family_name
    assert case.given_name == "Aysel"


def test_an_erased_case_reads_nothing(db):
    case = make_case()
    case.refresh_blind_indexes()
    db.session.commit()
    assert case.blind_indexes
    case.erase_personal_data()
    db.session.commit()
    db.session.expunge_all()
    case = db.session.scalars(select(Case)).one()
    assert case.is_erased
    assert case.blind_indexes == []
    with pytest.raises(KeyDestroyed):
        _ = case.given_name
    row = db.session.execute(text("select wrapped, destroyed_at from data_keys")).one()
    assert row.wrapped is None and row.destroyed_at is not None


# --------------------------------------------------------------------------- rotation and checks


def _cases(count: int) -> list[tuple[str, str]]:
    agency = make_agency()
    cases = [make_case(agency, given_name=f"Person {n}") for n in range(count)]
    database.session.commit()
    return [(case.id, case.given_name) for case in cases]


def _read_all(expected: list[tuple[str, str]]) -> None:
    database.session.expunge_all()
    for case_id, name in expected:
        assert database.session.get(Case, case_id).given_name == name


def _kek_counts() -> dict[str, int]:
    rows = database.session.execute(
        text("select kek_id, count(*) from data_keys group by kek_id")
    ).all()
    return dict(rows)


def test_rotation_keeps_every_value_readable_without_the_old_kek(app, db, keep_keyring):
    expected = _cases(5)
    old = current_keyring()
    # Without rotation, dropping the old KEK loses the data: the check below means something.
    use_keyring(app, old.with_new_kek().without_kek("k1"))
    db.session.expunge_all()
    with pytest.raises(KeyRingError):
        _ = db.session.get(Case, expected[0][0]).given_name
    db.session.rollback()

    use_keyring(app, old.with_new_kek())
    assert rotate_data_keys(batch_size=2) == 5
    assert _kek_counts() == {"k2": 5}
    use_keyring(app, current_keyring().without_kek("k1"))
    _read_all(expected)
    assert rotate_data_keys() == 0


def test_an_interrupted_rotation_resumes(app, db, keep_keyring):
    expected = _cases(5)
    use_keyring(app, current_keyring().with_new_kek())
    assert rotate_data_keys(batch_size=2, max_batches=1) == 2
    assert _kek_counts() == {"k1": 3, "k2": 2}
    # Half-way through, both KEKs are in the ring and everything reads.
    _read_all(expected)
    # New data keys made meanwhile are wrapped by the new KEK.
    assert new_data_key().kek_id == "k2"
    db.session.rollback()
    assert rotate_data_keys(batch_size=2) == 3
    assert _kek_counts() == {"k2": 5}
    use_keyring(app, current_keyring().without_kek("k1"))
    _read_all(expected)


def test_rotation_never_revives_a_destroyed_key(app, db, keep_keyring):
    _cases(2)
    key = db.session.scalars(select(DataKey)).first()
    destroy_data_key(key)
    db.session.commit()
    use_keyring(app, current_keyring().with_new_kek())
    assert rotate_data_keys() == 1
    row = db.session.execute(
        text("select kek_id, wrapped from data_keys where id = :id"), {"id": key.id}
    ).one()
    assert row.kek_id == "k1" and row.wrapped is None


def test_rotation_reports_keys_it_cannot_unwrap_and_rewraps_the_rest(app, db, keep_keyring):
    _cases(3)
    broken = db.session.scalars(select(DataKey.id)).first()
    db.session.execute(
        text("update data_keys set wrapped = :junk where id = :id"),
        {"junk": os.urandom(40), "id": broken},
    )
    db.session.commit()
    use_keyring(app, current_keyring().with_new_kek())
    with pytest.raises(KeyRotationError, match=broken):
        rotate_data_keys()
    assert _kek_counts() == {"k1": 1, "k2": 2}


def test_check_keys_reports_counts_destroyed_and_unreadable_keys(app, db, file_keyring):
    _cases(3)
    report = check_keys()
    assert report.ok
    assert report.live_per_kek == {"k1": 3}
    assert report.destroyed == 0
    assert report.keyring_file == file_keyring
    assert report.pending_rotation == 0

    keys = db.session.scalars(select(DataKey).order_by(DataKey.id)).all()
    destroy_data_key(keys[0])
    keys[1].wrapped = os.urandom(40)
    db.session.commit()
    use_keyring(app, current_keyring().with_new_kek())
    report = check_keys()
    assert not report.ok
    assert report.destroyed == 1
    assert report.unreadable == [keys[1].id]
    assert report.pending_rotation == 2
    assert any("do not unwrap" in line for line in report.lines())


def test_check_keys_wants_a_private_keyring_file(app, db, file_keyring):
    assert check_keys().ok
    os.chmod(file_keyring, 0o644)
    report = check_keys()
    assert not report.ok
    assert "0644" in report.problems[0]


def test_keys_check_exits_non_zero_on_problems(app, db, file_keyring):
    _cases(1)
    runner = app.test_cli_runner()
    result = runner.invoke(keys_cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "data keys under k1: 1" in result.output
    os.chmod(file_keyring, 0o640)
    result = runner.invoke(keys_cli, ["check"])
    assert result.exit_code == 1
    assert "PROBLEM" in result.output


def test_keys_rotate_with_a_new_kek_writes_the_file_then_rewraps(app, db, file_keyring):
    expected = _cases(3)
    old = KeyRing.from_json(file_keyring.read_text())
    result = app.test_cli_runner().invoke(keys_cli, ["rotate", "--new-kek", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "rewrapped 3 data keys under k2" in result.output
    on_disk = KeyRing.from_json(file_keyring.read_text())
    assert on_disk.current_kek_id == "k2"
    assert on_disk.keks["k1"] == old.keks["k1"]
    assert stat.S_IMODE(file_keyring.stat().st_mode) == 0o600
    assert current_keyring() == on_disk
    assert _kek_counts() == {"k2": 3}

    result = app.test_cli_runner().invoke(keys_cli, ["retire", "k1"])
    assert result.exit_code == 0, result.output
    assert set(KeyRing.from_json(file_keyring.read_text()).keks) == {"k2"}
    _read_all(expected)


def test_keys_retire_refuses_a_kek_still_in_use(app, db, file_keyring):
    _cases(1)
    write_keyring_file(file_keyring, current_keyring().with_new_kek())
    crypto.init_app(app)
    result = app.test_cli_runner().invoke(keys_cli, ["retire", "k1"])
    assert result.exit_code != 0
    assert "still wrapped" in result.output


def test_keys_rotate_new_kek_refuses_an_environment_keyring(app, db, keep_keyring, monkeypatch):
    monkeypatch.setenv("HAVEN_KEYRING", current_keyring().to_json())
    crypto.init_app(app)
    assert keyring_file_in_use(app) is None
    result = app.test_cli_runner().invoke(keys_cli, ["rotate", "--new-kek"])
    assert result.exit_code != 0
    assert "HAVEN_KEYRING" in result.output


def test_a_worker_picks_up_a_new_kek_written_by_another_process(app, db, file_keyring):
    expected = _cases(2)
    # Another process adds k2 and rewraps; this one still holds the ring with k1 only.
    newer = current_keyring().with_new_kek()
    write_keyring_file(file_keyring, newer)
    os.utime(file_keyring, ns=(1, 1))  # a different mtime, whatever the clock resolution
    new_wrapped = {}
    for key in db.session.scalars(select(DataKey)):
        raw = unwrap_data_key(key)
        new_wrapped[key.id] = aes_key_wrap_with_padding(newer.keks["k2"], raw)
    for key_id, wrapped in new_wrapped.items():
        db.session.execute(
            text("update data_keys set kek_id = 'k2', wrapped = :w where id = :id"),
            {"w": wrapped, "id": key_id},
        )
    db.session.commit()
    g.pop(crypto._G_CIPHERS, None)
    assert current_keyring().current_kek_id == "k1"
    _read_all(expected)
    assert current_keyring().current_kek_id == "k2"
