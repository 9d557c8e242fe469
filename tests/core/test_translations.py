"""Translations: complete Azerbaijani and Russian catalogs, up to date with the sources, served.

A developer who adds or changes a marked string without running ``make messages`` and
translating it gets a failing test here that names the string. See docs/translating.md.
"""

from __future__ import annotations

import functools
import os
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from markupsafe import escape

from core.config import PROJECT_ROOT
from tests.factories import login_as, make_agency, make_user

TRANSLATIONS = PROJECT_ROOT / "translations"
# Catalogs that must translate every string; English is the source language, and an empty
# msgstr in its catalog means "show the msgid".
TRANSLATED = ("az", "ru")
LANGUAGES = ("en", "az", "ru")
# The keywords and ignored directories `make messages` passes to pybabel extract. Babel's
# default would also skip every directory starting with "_", such as templates/_macros.
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "_l": None,
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
    "lazy_pgettext": ((1, "c"), 2),
}
IGNORE_DIRS = (".*", "__pycache__")
NPLURALS = {"az": 2, "ru": 3, "en": 2}
# %(name)s, %(count)d, %s, %%: the printf-style placeholders of python-format strings.
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?([diouxXeEfFgGcrsa%])")


def po_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


@functools.cache
def catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as file:
        return read_po(file, locale=language, abort_invalid=True)


def entries(language: str) -> list:
    return [message for message in catalog(language) if message.id]


def singular(message) -> str:
    return message.id[0] if isinstance(message.id, tuple | list) else message.id


def forms(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def placeholders(text: str) -> list[tuple[str, str]]:
    """Return the placeholders of a python-format string: named ones as a sorted set."""
    found = [(name, kind) for name, kind in PLACEHOLDER.findall(text) if kind != "%"]
    named = sorted({item for item in found if item[0]})
    positional = [item for item in found if not item[0]]
    return named + positional


def scanned(dirpath: str) -> bool:
    return not any(fnmatch(os.path.basename(dirpath), pattern) for pattern in IGNORE_DIRS)


@functools.cache
def source_messages() -> dict[str, list[str]]:
    """Extract the sources as `make messages` does: msgid -> ["file:line", ...]."""
    with (PROJECT_ROOT / "babel.cfg").open() as file:
        method_map, options_map = parse_mapping_cfg(file, filename="babel.cfg")
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        PROJECT_ROOT, method_map, options_map, keywords=KEYWORDS, directory_filter=scanned
    ):
        msgid = message[0] if isinstance(message, tuple | list) else message
        if not msgid:
            continue
        key = f"{context}\x04{msgid}" if context else msgid
        found.setdefault(key, []).append(f"{filename}:{lineno}")
    return found


def catalog_ids(language: str) -> set[str]:
    return {
        f"{message.context}\x04{singular(message)}" if message.context else singular(message)
        for message in entries(language)
    }


# (a) complete ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_header(language):
    cat = catalog(language)
    assert str(cat.locale) == language
    assert cat.num_plurals == NPLURALS[language], cat.plural_forms
    # A fuzzy header makes pybabel compile skip the whole catalog.
    assert not cat.fuzzy, f"{po_path(language)}: the header is marked fuzzy"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language):
    cat = catalog(language)
    assert entries(language), f"{po_path(language)} holds no messages"
    untranslated = [
        singular(message)
        for message in entries(language)
        if not all(form.strip() for form in forms(message.string))
        or len(forms(message.string)) != (cat.num_plurals if message.pluralizable else 1)
    ]
    fuzzy = [singular(message) for message in entries(language) if message.fuzzy]
    assert not untranslated, (
        f"{len(untranslated)} untranslated message(s) in {po_path(language)}: {untranslated}"
    )
    assert not fuzzy, f"fuzzy message(s) in {po_path(language)}, check and unmark: {fuzzy}"


# (b) placeholders -------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_match(language):
    mismatches = []
    for message in entries(language):
        ids = forms(message.id)
        # Every plural form must carry the plural's placeholders (Russian form 0 is also
        # used for 21, 31, ..., so it cannot leave the number out).
        expected = placeholders(ids[-1]) if message.pluralizable else placeholders(ids[0])
        for form in forms(message.string):
            if form and placeholders(form) != expected:
                mismatches.append(f"{singular(message)!r} -> {form!r}")
    assert not mismatches, f"placeholders differ in {po_path(language)}:\n" + "\n".join(mismatches)


def test_placeholder_check_catches_a_mismatch():
    assert placeholders("Case %(reference)s saved.") == placeholders("Дело %(reference)s.")
    assert placeholders("Case %(reference)s saved.") != placeholders("Дело %(ref)s.")
    assert placeholders("At most %(max)d characters.") != placeholders("Не более %(max)s.")
    assert placeholders("100%% sure, %(name)s") == placeholders("%(name)s: 100%%")


# (c) up to date ---------------------------------------------------------------------------


def test_extraction_finds_the_sources():
    # Guards the check below: an extraction that finds nothing would pass it vacuously.
    found = source_messages()
    assert "Sign in to Haven" in found
    places = [place for where in found.values() for place in where]
    assert any(place.startswith("core/") for place in places)
    assert any(place.startswith("templates/_macros/") for place in places)
    assert not any(".venv" in place for place in places)


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_every_source_string(language):
    missing = {
        msgid: places
        for msgid, places in source_messages().items()
        if msgid not in catalog_ids(language)
    }
    assert not missing, (
        f"{len(missing)} marked string(s) are not in {po_path(language)}; run `make messages`, "
        "translate them in the az and ru catalogs and run `make translations`:\n"
        + "\n".join(f"  {msgid!r} ({', '.join(places)})" for msgid, places in missing.items())
    )


# (d) served -------------------------------------------------------------------------------


@pytest.fixture
def compiled():
    """Require compiled catalogs, as `make test` builds them; never compile them here."""
    for language in LANGUAGES:
        mo = po_path(language).with_suffix(".mo")
        if not mo.exists():
            pytest.fail(f"{mo} is missing: run `make translations` first")
        if mo.stat().st_mtime < po_path(language).stat().st_mtime:
            pytest.fail(f"{mo} is older than its .po file: run `make translations` first")


def translated(language: str, msgid: str) -> str:
    """Return the catalog's translation of msgid, HTML-escaped as the page shows it."""
    text = catalog(language)[msgid].string
    assert text and text != msgid, f"{msgid!r} has no {language} translation"
    return str(escape(text))


def login_page(client, **headers) -> str:
    response = client.get("/login", headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_login_page_follows_the_browser_language(client, compiled):
    english = login_page(client, **{"Accept-Language": "en"})
    assert '<html lang="en">' in english
    assert "Sign in to Haven" in english

    for language in TRANSLATED:
        page = login_page(client, **{"Accept-Language": f"{language},en;q=0.5"})
        assert f'<html lang="{language}">' in page
        assert translated(language, "Sign in to Haven") in page
        assert translated(language, "Password") in page
        assert "Sign in to Haven" not in page


def test_login_page_is_azerbaijani_and_russian_by_hand():
    # Guards translated(): the catalogs say what a speaker would expect, not just anything.
    assert "Daxil ol" in translated("az", "Sign in")
    assert "Войти" in translated("ru", "Sign in")


def test_language_switch_changes_the_login_page(client, compiled):
    assert "Sign in to Haven" in login_page(client, **{"Accept-Language": "en"})

    response = client.post_form("/language", {"language": "az", "next": "/login"})
    assert response.status_code == 302
    assert response.location == "/login"

    # The choice wins over the browser's language, on every page after.
    page = login_page(client, **{"Accept-Language": "en"})
    assert '<html lang="az">' in page
    assert translated("az", "Sign in to Haven") in page
    assert translated("az", "Sign in") in page
    assert "Sign in to Haven" not in page

    client.post_form("/language", {"language": "ru", "next": "/login"})
    assert translated("ru", "Sign in to Haven") in login_page(client)


def test_unknown_language_is_refused(client, compiled):
    response = client.post_form("/language", {"language": "xx", "next": "/login"})
    assert response.status_code == 400
    assert "Sign in to Haven" in login_page(client, **{"Accept-Language": "en"})


def test_signed_in_user_sees_their_language(client, db, compiled):
    user = make_user(make_agency(), language="ru")
    db.session.commit()
    login_as(client, user)
    page = client.get("/", headers={"Accept-Language": "az"}).get_data(as_text=True)
    assert '<html lang="ru">' in page
    assert translated("ru", "Sign out") in page
    assert translated("ru", "Cases") in page


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "2,500.00"), ("az", "2.500,00"), ("ru", "2\u00a0500,00")]
)
def test_amounts_follow_the_language(app, language, expected):
    from decimal import Decimal

    from flask_babel import force_locale

    from core.i18n import format_amount

    with app.test_request_context(), force_locale(language):
        assert format_amount(Decimal("2500")) == expected
        assert format_amount(None) == ""
