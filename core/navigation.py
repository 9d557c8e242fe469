"""Navigation by role: each role sees the areas it may use, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, select

from core.models import Role


@dataclass(frozen=True)
class NavigationEntry:
    endpoint: str
    label: object
    roles: frozenset[Role]
    description: object = None
    # A further question about the user (agency type, case files), asked after the roles.
    show: Callable[[Any], bool] | None = None


NAVIGATION = [
    NavigationEntry(
        "casework.index",
        _l("Cases"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
        _l("Your agency's cases"),
        show=lambda user: _policy().can_list_cases(user),
    ),
    NavigationEntry(
        "contacts.calls",
        _l("Hotline calls"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
        _l("Calls taken, routed to an agency or answered with advice"),
        show=lambda user: _policy().can_record_hotline_call(user),
    ),
    NavigationEntry(
        "contacts.sent",
        _l("Notifications sent"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
        _l("Presumed victims your agency notified, and what became of each"),
        show=lambda user: _policy().can_send_notification(user),
    ),
    NavigationEntry(
        "contacts.incoming",
        _l("Incoming reports"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR, Role.COORDINATOR}),
        _l("Hotline calls and notifications sent to your agency"),
        show=lambda user: _policy().can_receive_reports(user),
    ),
    NavigationEntry(
        "referrals.index",
        _l("Referrals"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR, Role.COORDINATOR}),
        _l("Referrals your agency received and sent"),
    ),
    NavigationEntry(
        "supervision.index",
        _l("Supervision"),
        frozenset({Role.SUPERVISOR}),
        _l("Pending requests, break-the-glass reads and incoming transfers"),
    ),
    NavigationEntry(
        "directory.index",
        _l("Service directory"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR, Role.COORDINATOR, Role.ADMIN}),
        _l("Which agency offers what, where, and free places"),
    ),
    NavigationEntry(
        "refusals.index",
        _l("Refusals"),
        frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
        _l("Presumed victims who did not consent to the NRM, recorded as codes only"),
    ),
    NavigationEntry(
        "decisions.index",
        _l("Status decisions"),
        frozenset({Role.COORDINATOR}),
        _l("Cases waiting for the formal decision on victim status"),
    ),
    NavigationEntry(
        "duplicates.index",
        _l("Possible duplicates"),
        frozenset({Role.COORDINATOR}),
        _l("Cases of the same person at several agencies"),
    ),
    NavigationEntry(
        "aftercare.sign_offs",
        _l("Return sign-offs"),
        frozenset({Role.COORDINATOR}),
        _l("Pre-return risk assessments waiting for your sign-off"),
    ),
    NavigationEntry(
        "admin.agencies", _l("Agencies"), frozenset({Role.ADMIN}), _l("Agencies and their types")
    ),
    NavigationEntry(
        "admin.users", _l("Users"), frozenset({Role.ADMIN}), _l("Accounts, roles and two-factor")
    ),
    NavigationEntry(
        "supervision.erasure_requests",
        _l("Erasure requests"),
        frozenset({Role.ADMIN}),
        _l("Confirm or reject requests to erase a case's personal data"),
    ),
    NavigationEntry(
        "reference.index",
        _l("Reference lists"),
        frozenset({Role.ADMIN}),
        _l("Coded values and their labels"),
    ),
    NavigationEntry(
        "holidays.index",
        _l("Public holidays"),
        frozenset({Role.ADMIN}),
        _l("Days off that working-day deadlines skip"),
    ),
    NavigationEntry(
        "population.index",
        _l("Population"),
        frozenset({Role.ADMIN}),
        _l("Population figures for victims per 100,000"),
    ),
    NavigationEntry(
        "audit.index",
        _l("Audit log"),
        frozenset({Role.AUDITOR}),
        _l("Who did what, and whether the chain is intact"),
    ),
    NavigationEntry(
        "statistics.index",
        _l("Statistics"),
        frozenset({Role.ANALYST, Role.COORDINATOR}),
        _l("Counts over coded fields, protected against disclosure"),
    ),
    NavigationEntry(
        "report_jobs.index",
        _l("Reports"),
        frozenset({Role.ANALYST, Role.COORDINATOR}),
        _l("Statistics reports as PDFs, built in the background"),
    ),
    NavigationEntry(
        "notifications.index",
        _l("Notifications"),
        frozenset(Role),
        _l("New referrals, answers and deadlines that concern you"),
    ),
]


def _policy():
    # core.policy imports the models; read it when the navigation is built, not at import.
    from core import policy

    return policy


# Endpoint -> function(user) -> a SELECT of one count, shown beside the entry (areas register
# their own, so core imports no blueprint). Keep each one a cheap, indexed count: every page
# runs them, all in one statement.
NAVIGATION_COUNTS: dict[str, Callable[[Any], Select]] = {}


def register_navigation_count(endpoint: str, count_query: Callable[[Any], Select]) -> None:
    """Show the count ``count_query(user)`` selects beside ``endpoint``'s entry when not 0."""
    NAVIGATION_COUNTS[endpoint] = count_query


def navigation_for(user) -> list[dict]:
    """Return the navigation entries the user's roles open, for endpoints that exist."""
    items = []
    counted = []
    for entry in NAVIGATION:
        if entry.endpoint not in current_app.view_functions:
            continue
        if not user.has_role(*entry.roles):
            continue
        if entry.show is not None and not entry.show(user):
            continue
        items.append(
            {
                "url": url_for(entry.endpoint),
                "label": entry.label,
                "description": entry.description,
                "active": request.endpoint == entry.endpoint,
                "count": None,
            }
        )
        if entry.endpoint in NAVIGATION_COUNTS:
            counted.append((items[-1], NAVIGATION_COUNTS[entry.endpoint](user)))
    if counted:
        # One round trip for all the badges of the page.
        from core.db import db

        values = db.session.execute(
            select(*(query.scalar_subquery() for _item, query in counted))
        ).one()
        for (item, _query), value in zip(counted, values, strict=True):
            item["count"] = value or 0
    return items


def init_app(app: Flask) -> None:
    @app.context_processor
    def inject_navigation():
        verified = bool(g.get("session_verified"))
        items = navigation_for(current_user) if current_user.is_authenticated and verified else []
        return {"navigation_items": items, "session_verified": verified}
