"""Blind indexes: normalisation, keyed truncated HMACs, widths, and a case's index rows."""

from __future__ import annotations

import math
from datetime import date

import pytest
from sqlalchemy import select

from casework.models import Case, CaseBlindIndex
from core.crypto import (
    KeyRing,
    blind_index,
    blind_index_bits,
    configured_index_bits,
    document_number_index,
    name_birth_year_index,
    normalise_document_number,
    normalise_for_index,
    normalise_phone,
    phone_index,
)
from tests.factories import make_agency

RING = KeyRing.generate()
WHERE = {"table": "cases", "column": "family_name", "index_name": "family_name"}


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("spellings", "expected"),
    [
        (["MƏMMƏDOVA", "Məmmədova", "mammadova", "MAMMADOVA", "  Məmmədova "], "mammadova"),
        (["Мамедова", "МАМЕДОВА", "mamedova", "Mamedova"], "mamedova"),
        (["ŞÜKÜROVA", "Şükürova", "sukurova"], "sukurova"),
        (["İSMAYIL", "İsmayıl", "ismayil", "ISMAYIL"], "ismayil"),
        (["Gülnarə", "GÜLNARƏ", "Gu\u0308lnar\u0259", "gulnara"], "gulnara"),
        (["Çələbi", "ÇƏLƏBİ", "calabi"], "calabi"),
        (["Ağayeva", "AĞAYEVA", "agayeva"], "agayeva"),
        (["Öztürk", "ozturk"], "ozturk"),
        # ǝ (U+01DD) and ä (the 1991 Latin alphabet) are written for ə.
        (["Mǝmmǝdova", "Mämmädova"], "mammadova"),
        # Azerbaijani Cyrillic letters follow the Latin alphabet: Әлијев is Əliyev.
        (["Әлијев", "ӘЛИЈЕВ", "Əliyev", "Aliyev"], "aliyev"),
        (["Һүсејнова", "Hüseynova"], "huseynova"),
        (["Өмәрова", "Ömərova"], "omarova"),
        (["Ҝүлнарә", "Gülnarə"], "gulnara"),
        (["Ғафаров", "Ğafarov"], "gafarov"),
        (["Ҹавадова", "Cavadova"], "cavadova"),
        # Russian letters use the common English-style romanisation.
        (["Гусейнова", "Guseynova"], "guseynova"),
        (["Халилова", "Khalilova"], "khalilova"),
        (["Щукина", "Shchukina"], "shchukina"),
        (["Юлия", "Yuliya"], "yuliya"),
        (["Рыбакова", "Rybakova"], "rybakova"),
        (["Ёлкина", "Елкина"], "elkina"),
        (["Мамед-оглы", "Mamed Ogly", "MAMED--OGLY"], "mamed ogly"),
        (["O'Neil", "O’Neil", "ONeil", "Oʻneil"], "oneil"),
        (["Aysel\u00a0 \t Məmmədova", "aysel, məmmədova.", "AYSEL-MƏMMƏDOVA"], "aysel mammadova"),
        (["ＡＹＳＥＬ"], "aysel"),
    ],
)
def test_spellings_that_differ_only_in_case_script_or_marks_normalise_alike(spellings, expected):
    assert {normalise_for_index(s) for s in spellings} == {expected}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Məmmədova", "Mamedova"),  # different spellings stay different: exact match only
        ("Hüseynova", "Гусейнова"),
        ("Əliyeva", "Алиева"),
        ("Aysel Məmmədova", "Məmmədova Aysel"),
    ],
)
def test_different_spellings_do_not_match(one, other):
    assert normalise_for_index(one) != normalise_for_index(other)


def test_punctuation_alone_normalises_to_nothing():
    assert normalise_for_index(" -.,/ ") == ""


def test_document_numbers_lose_case_spaces_and_punctuation():
    assert normalise_document_number("aa 123-45 67") == "aa1234567"
    assert normalise_document_number("AA1234567") == "aa1234567"
    assert normalise_document_number("АА1234567") == "aa1234567"  # Cyrillic А


@pytest.mark.parametrize(
    "spelling",
    [
        "+994 50 123 45 67",
        "+994 (50) 123-45-67",
        "00994501234567",
        "050 123 45 67",
        "050-123-45-67",
        "501234567",
        "994501234567",
        "+９９４５０１２３４５６７",
    ],
)
def test_phone_numbers_normalise_to_international_digits(spelling):
    assert normalise_phone(spelling) == "994501234567"


def test_phone_numbers_of_other_countries_keep_their_code():
    assert normalise_phone("+7 912 345 67 89") == "79123456789"
    assert normalise_phone("0049 30 1234567") == "49301234567"
    assert normalise_phone("0 30 1234567", country_code="49") == "49301234567"
    assert normalise_phone("no number") == ""


# --------------------------------------------------------------------------- blind_index


def test_equivalent_spellings_share_a_blind_index():
    values = {blind_index(s, **WHERE, bits=32, ring=RING) for s in ("MƏMMƏDOVA", "mammadova")}
    values.add(blind_index("Məmmədova", **WHERE, bits=32, ring=RING))
    assert len(values) == 1
    cyrillic = blind_index("Мамедова", **WHERE, bits=32, ring=RING)
    assert cyrillic == blind_index("mamedova", **WHERE, bits=32, ring=RING)
    assert cyrillic not in values


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"table": "cases", "column": "given_name", "index_name": "family_name"},
        {"table": "cases", "column": "family_name", "index_name": "family_name_2"},
        {"table": "persons", "column": "family_name", "index_name": "family_name"},
    ],
)
def test_each_table_column_and_index_has_its_own_key(elsewhere):
    here = blind_index("mammadova", **WHERE, bits=63, ring=RING)
    assert blind_index("mammadova", **elsewhere, bits=63, ring=RING) != here


def test_another_key_ring_gives_other_values():
    one = blind_index("mammadova", **WHERE, bits=63, ring=RING)
    assert blind_index("mammadova", **WHERE, bits=63, ring=KeyRing.generate()) != one


def test_a_blind_index_is_not_a_plain_hash_of_the_value():
    import hashlib

    value = blind_index("mammadova", **WHERE, bits=63, ring=RING)
    plain = int.from_bytes(hashlib.sha256(b"mammadova").digest()[:8], "big") >> 1
    assert value != plain


@pytest.mark.parametrize("bits", [1, 8, 16, 17, 32, 63])
def test_a_blind_index_is_truncated_to_its_bits(bits):
    values = [blind_index(f"name {n}", **WHERE, bits=bits, ring=RING) for n in range(200)]
    assert all(0 <= v < 2**bits for v in values)
    wide = [blind_index(f"name {n}", **WHERE, bits=63, ring=RING) for n in range(200)]
    # Truncation keeps the leading bits of the same HMAC.
    assert values == [w >> (63 - bits) for w in wide]
    if bits >= 8:
        assert max(values) >= 2 ** (bits - 2)  # the high bits are used, not only low ones


def test_few_bits_make_different_values_collide():
    values = {blind_index(f"person {n}", **WHERE, bits=4, ring=RING) for n in range(200)}
    assert len(values) <= 16


@pytest.mark.parametrize("bits", [0, 64, -1])
def test_a_blind_index_refuses_impossible_widths(bits):
    with pytest.raises(ValueError):
        blind_index("mammadova", **WHERE, bits=bits, ring=RING)


def test_a_blind_index_refuses_an_empty_value():
    with pytest.raises(ValueError):
        blind_index(" - ", **WHERE, bits=16, ring=RING)


def test_index_identifiers_cannot_be_confused():
    with pytest.raises(ValueError):
        blind_index("x", table="cases|family_name", column="x", index_name="y", bits=8, ring=RING)


# --------------------------------------------------------------------------- widths


@pytest.mark.parametrize("rows", [16, 1000, 100_000, 2**17, 200_000, 10**6, 10**8, 10**9])
def test_the_width_follows_the_design_rule(rows):
    bits = blind_index_bits(rows)
    assert 2 <= rows / 2**bits <= math.sqrt(rows)
    assert rows / 2 ** (bits + 1) < 2  # and it is the largest width that does


@pytest.mark.parametrize("rows", [16, 100, 1000, 5000, 100_000])
def test_the_rule_alone_holds_for_small_deployments(rows):
    bits = blind_index_bits(rows, minimum=1)
    assert 2 <= rows / 2**bits <= math.sqrt(rows)


def test_widths_for_typical_deployments():
    assert blind_index_bits(1) == 1
    assert blind_index_bits(1000) == 8
    assert blind_index_bits(100_000) == 15
    assert blind_index_bits(10**6) == 18
    assert blind_index_bits(10**15) == 32
    assert blind_index_bits(1000, minimum=16) == 16
    with pytest.raises(ValueError):
        blind_index_bits(0)


# --------------------------------------------------------------------------- composites


def test_name_and_birth_year_index_needs_every_part():
    kwargs = {"table": "cases", "bits": 32, "ring": RING}
    full = name_birth_year_index("Aysel", "Məmmədova", 1999, **kwargs)
    assert full == name_birth_year_index("AYSEL", "MAMMADOVA", 1999, **kwargs)
    assert full != name_birth_year_index("Aysel", "Məmmədova", 1998, **kwargs)
    # The parts are kept apart: moving a word from one name to the other changes the value.
    assert name_birth_year_index("Aysel Nur", "Əliyeva", 1999, **kwargs) != name_birth_year_index(
        "Aysel", "Nur Əliyeva", 1999, **kwargs
    )
    assert name_birth_year_index("Aysel", "Məmmədova", None, **kwargs) is None
    assert name_birth_year_index("Aysel", "", 1999, **kwargs) is None
    assert name_birth_year_index(None, "Məmmədova", 1999, **kwargs) is None


def test_document_and_phone_indexes_match_their_normal_forms():
    kwargs = {"table": "cases", "bits": 32, "ring": RING}
    assert document_number_index("aa 1234567", **kwargs) == document_number_index(
        "AA1234567", **kwargs
    )
    assert document_number_index("", **kwargs) is None
    assert phone_index("050 123 45 67", **kwargs) == phone_index("+994501234567", **kwargs)
    assert phone_index("050 123 45 67", **kwargs) != phone_index("+994 50 123 45 68", **kwargs)
    assert phone_index(None, **kwargs) is None
    # The same digits as a document number and as a phone give unrelated values.
    assert document_number_index("994501234567", **kwargs) != phone_index("+994501234567", **kwargs)


# --------------------------------------------------------------------------- a case's index rows


def _case(agency, reference: str, **fields) -> Case:
    from core.db import db

    case = Case(reference=reference, owner_agency_id=agency.id, **fields)
    case.refresh_blind_indexes()
    db.session.add(case)
    db.session.flush()
    return case


def _find(index_name: str, value: int) -> set[str]:
    from core.db import db

    return set(
        db.session.scalars(
            select(CaseBlindIndex.case_id).where(
                CaseBlindIndex.index_name == index_name, CaseBlindIndex.value == value
            )
        )
    )


def test_a_case_is_found_by_another_spelling_of_its_name(db):
    agency = make_agency()
    case = _case(
        agency,
        "HVN-2026-000001",
        given_name="Aysel",
        family_name="MƏMMƏDOVA",
        date_of_birth=date(1999, 4, 17),
        phone="050 123 45 67",
        document_number="AA 1234567",
    )
    _case(agency, "HVN-2026-000002", given_name="Leyla", family_name="Əliyeva")
    db.session.commit()
    assert {row.index_name for row in case.blind_indexes} == {
        "name_birth_year",
        "document_number",
        "phone",
    }
    bits = configured_index_bits()
    searched = name_birth_year_index("aysel", "Məmmədova", 1999, table="cases", bits=bits)
    assert case.id in _find("name_birth_year", searched)
    assert case.id in _find("phone", phone_index("+994501234567", table="cases", bits=bits))


def test_refreshing_updates_changes_and_drops_missing_parts(db):
    agency = make_agency()
    case = _case(agency, "HVN-2026-000003", phone="050 123 45 67", document_number="AA1234567")
    db.session.commit()
    rows = {row.index_name: (row.id, row.value) for row in case.blind_indexes}
    assert set(rows) == {"phone", "document_number"}  # no name, no name index

    case.phone = "055 765 43 21"
    case.document_number = None
    case.refresh_blind_indexes()
    db.session.commit()
    after = {row.index_name: (row.id, row.value) for row in case.blind_indexes}
    assert set(after) == {"phone"}
    assert after["phone"][0] == rows["phone"][0]  # same row, updated in place
    assert after["phone"][1] != rows["phone"][1]
    assert _find("document_number", rows["document_number"][1]) == set()


def test_the_same_person_in_two_agencies_shares_index_values(db):
    first = _case(
        make_agency(), "HVN-2026-000004", given_name="Aysel", family_name="Məmmədova",
        date_of_birth=date(1999, 4, 17),
    )  # fmt: skip
    second = _case(
        make_agency(), "HVN-2026-000005", given_name="AYSEL", family_name="MAMMADOVA",
        date_of_birth=date(1999, 1, 1),
    )  # fmt: skip
    db.session.commit()
    value = {r.index_name: r.value for r in first.blind_indexes}["name_birth_year"]
    assert _find("name_birth_year", value) >= {first.id, second.id}
