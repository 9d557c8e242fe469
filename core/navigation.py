"""Navigation by role: each role sees the areas it may use, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.models import Role


@dataclass(frozen=True)
class NavigationEntry:
    endpoint: str
    label: object
    roles: frozenset[Role]
    description: object = None


NAVIGATION = [
    NavigationEntry(
        "casework.index",
        _l("Cases"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
        _l("Your agency's cases"),
    ),
    NavigationEntry(
        "duplicates.index",
        _l("Possible duplicates"),
        frozenset({Role.COORDINATOR}),
        _l("Cases of the same person at several agencies"),
    ),
    NavigationEntry(
        "admin.agencies", _l("Agencies"), frozenset({Role.ADMIN}), _l("Agencies and their types")
    ),
    NavigationEntry(
        "admin.users", _l("Users"), frozenset({Role.ADMIN}), _l("Accounts, roles and two-factor")
    ),
    NavigationEntry(
        "reference.index",
        _l("Reference lists"),
        frozenset({Role.ADMIN}),
        _l("Coded values and their labels"),
    ),
    NavigationEntry(
        "audit.index",
        _l("Audit log"),
        frozenset({Role.AUDITOR}),
        _l("Who did what, and whether the chain is intact"),
    ),
]


def navigation_for(user) -> list[dict]:
    """Return the navigation entries the user's roles open, for endpoints that exist."""
    items = []
    for entry in NAVIGATION:
        if entry.endpoint not in current_app.view_functions:
            continue
        if not user.has_role(*entry.roles):
            continue
        items.append(
            {
                "url": url_for(entry.endpoint),
                "label": entry.label,
                "description": entry.description,
                "active": request.endpoint == entry.endpoint,
            }
        )
    return items


def init_app(app: Flask) -> None:
    @app.context_processor
    def inject_navigation():
        verified = bool(g.get("session_verified"))
        items = navigation_for(current_user) if current_user.is_authenticated and verified else []
        return {"navigation_items": items, "session_verified": verified}
