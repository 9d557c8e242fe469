"""Languages: English, Azerbaijani and Russian; the user's choice wins, then the browser's."""

from __future__ import annotations

import re
from decimal import Decimal

from flask import Flask, current_app, has_request_context, request, session
from flask_babel import format_date, format_datetime, format_decimal
from flask_login import current_user

from core.config import PROJECT_ROOT
from core.extensions import babel

# A decimal as the statistics write it (a median: "27.5"), without grouping.
DECIMAL = re.compile(r"\d+\.\d+")
LANGUAGE_NAMES = {"en": "English", "az": "Azərbaycanca", "ru": "Русский"}


def select_locale() -> str:
    languages = current_app.config["HAVEN_LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.language in languages:
        return current_user.language
    chosen = session.get("language")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or "en"


def format_number(value: object) -> str:
    """Return a count with the language's digit grouping (1,234 / 1.234 / 1 234).

    A decimal written with a point ("27.5", a median) gets the language's decimal separator
    (27.5 / 27,5), every digit kept. Anything else ("<5", "x", "12%", "") is shown as it is.
    """
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        return format_decimal(int(value))
    if isinstance(value, str) and DECIMAL.fullmatch(value):
        digits = len(value.split(".")[1])
        return format_decimal(Decimal(value), format="#,##0." + "0" * digits)
    return str(value)


def format_amount(value: object) -> str:
    """Return a sum of money with two decimals in the language's style (2,500.00 / 2 500,00)."""
    if value is None:
        return ""
    return format_decimal(value, format="#,##0.00")


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(PROJECT_ROOT / "translations"))
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["date"] = lambda value, fmt="medium": (
        format_date(value, fmt) if value else ""
    )
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.filters["datetime"] = lambda value, fmt="medium": (
        format_datetime(value, fmt) if value else ""
    )

    @app.context_processor
    def inject_languages():
        from flask_babel import get_locale

        return {"language_names": LANGUAGE_NAMES, "current_language": str(get_locale())}
