"""Access policy: the one place that decides who may see and do what in Haven.

Every question is a pure function ``can_<verb>_<noun>(user, obj)`` over the user's agency
and roles (and, once referrals exist, what was shared with the user's agency); list pages
and object loads go through the ``visible_<nouns>(user) -> Select`` scopes instead of
checking rows one by one. ``may(user, action, obj)`` answers the same questions through
one table, so the policy can be asked generically and tested as a matrix.

Layering exception: ``core`` never imports a blueprint, but the case rules need
``casework.models.Case``. Splitting the policy per blueprint would scatter the rules the
whole system depends on, so the case functions import ``casework.models`` lazily, inside
the function body. This is the one sanctioned exception; nothing else in ``core`` does it.

Separation of duties: a user holding ``admin`` never gets any case access, whatever other
roles they hold (DESIGN: admin "never reads case personal data"). An admin manages
accounts, so an admin who could also read cases could give themselves any case; the role
combinations are refused when accounts are saved (``role_problems``) and, as a second
line, ignored here. Analysts and auditors never see cases either. Coordinator rights
count only while the user's agency is the national coordinator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import abort
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, exists, false, or_, select

from core.db import db, utcnow
from core.models import Agency, Role, User

if TYPE_CHECKING:
    from casework.models import Case

# Larger ids cannot exist and would overflow PostgreSQL's integer columns.
MAX_INTEGER_ID = 2**31 - 1
# Roles that work with the own agency's cases.
CASE_ROLES = frozenset({Role.CASEWORKER, Role.SUPERVISOR})
# Roles an administrator may not also hold: each of them opens case personal data.
ROLES_EXCLUSIVE_OF_ADMIN = frozenset({Role.CASEWORKER, Role.SUPERVISOR, Role.COORDINATOR})


# Who the user is ------------------------------------------------------------------------


def _is_active(user: Any) -> bool:
    """Return whether the user is signed in with an active account in an active agency."""
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def _holds(user: Any, *roles: Role) -> bool:
    return _is_active(user) and user.has_role(*roles)


def _works_cases(user: Any) -> bool:
    """Return whether the user may work the own agency's cases (never an admin)."""
    return _holds(user, *CASE_ROLES) and not user.has_role(Role.ADMIN)


def _is_coordinator(user: Any) -> bool:
    """Return whether the user acts for the national coordinator (never an admin)."""
    return (
        _holds(user, Role.COORDINATOR)
        and not user.has_role(Role.ADMIN)
        and bool(user.agency.is_national_coordinator)
    )


def _owns(user: Any, case: Case) -> bool:
    return case is not None and case.owner_agency_id == user.agency_id


def _is_open(case: Case) -> bool:
    from casework.models import CaseStatus  # lazy: see the module docstring

    # A draft intake is worked on like an open case.
    return case.status in (CaseStatus.OPEN, CaseStatus.DRAFT)


def _shared_with_nrm(user: Any, case: Case) -> bool:
    """Return whether the case is shared with the national coordinator through a referral.

    Hook for the referral issue: until referrals exist nothing is shared, so coordinators
    see no case. Keep this in step with the coordinator branch of ``visible_cases``.
    """
    return False


# Cases ----------------------------------------------------------------------------------


def can_create_case(user: Any) -> bool:
    """Return whether the user may open a case for the own agency."""
    return _works_cases(user)


def can_list_cases(user: Any) -> bool:
    """Return whether the user has a case list: the own agency's cases.

    Coordinators get their list of cases shared with the NRM with the referral work.
    """
    return _works_cases(user)


def _restriction_allows(user: Any, case: Case, *, reading: bool) -> bool:
    """Return whether a restricted case's restriction lets the user in (unrestricted: yes).

    A restricted case is open to its assigned user and, for reading only, to a supervisor
    holding an unexpired break-the-glass grant. Keep in step with ``visible_cases``.
    """
    from casework.supervision import CaseRestriction, active_grant  # lazy: see docstring

    if db.session.get(CaseRestriction, case.id) is None:
        return True
    if case.assigned_user_id == user.id:
        return True
    return reading and user.has_role(Role.SUPERVISOR) and active_grant(case, user) is not None


def can_view_case(user: Any, case: Case) -> bool:
    """Return whether the user may read the case."""
    if _works_cases(user) and _owns(user, case):
        return _restriction_allows(user, case, reading=True)
    return _is_coordinator(user) and _shared_with_nrm(user, case)


def can_edit_case(user: Any, case: Case) -> bool:
    """Return whether the user may change the case: own agency's, and only while open.

    A closed case is a record of what was done; it is read, not rewritten.
    """
    return (
        _works_cases(user)
        and _owns(user, case)
        and _is_open(case)
        and not case.is_erased
        and _restriction_allows(user, case, reading=False)
    )


def can_assign_case(user: Any, case: Case) -> bool:
    """Return whether the user may assign the case: a supervisor of the owner agency."""
    return _works_cases(user) and user.has_role(Role.SUPERVISOR) and _owns(user, case)


def can_break_glass(user: Any, case: Case) -> bool:
    """Return whether the user may open a break-the-glass read (supervisor, own agency)."""
    return _works_cases(user) and user.has_role(Role.SUPERVISOR) and _owns(user, case)


def can_supervise_case(user: Any, case: Case) -> bool:
    """Return whether the user may decide on the case: approve closure and transfer,
    restrict it, request its erasure (a supervisor of the owner agency).

    Supervision pages show no personal data, so this holds for restricted cases too.
    """
    return _works_cases(user) and user.has_role(Role.SUPERVISOR) and _owns(user, case)


def can_resolve_duplicates(user: Any) -> bool:
    """Return whether the user may open the duplicate queue, compare and resolve flags."""
    return _is_coordinator(user)


# Administration, audit and statistics -----------------------------------------------------


def can_manage_agencies(user: Any) -> bool:
    """Return whether the user may create, edit and deactivate agencies."""
    return _holds(user, Role.ADMIN)


def can_manage_users(user: Any) -> bool:
    """Return whether the user may create accounts, change roles and reset 2FA."""
    return _holds(user, Role.ADMIN)


def can_view_audit_log(user: Any) -> bool:
    """Return whether the user may read and verify the audit log."""
    return _holds(user, Role.AUDITOR)


def can_confirm_erasure(user: Any) -> bool:
    """Return whether the user may confirm case erasures (admins, who never read the case)."""
    return _holds(user, Role.ADMIN)


def can_manage_reference_lists(user: Any) -> bool:
    """Return whether the user may edit the reference lists (labels, added or retired codes)."""
    return _holds(user, Role.ADMIN)


def can_view_statistics(user: Any) -> bool:
    """Return whether the user may see statistics and anonymised exports."""
    return _holds(user, Role.ANALYST) or _is_coordinator(user)


# One table for generic questions ----------------------------------------------------------


class UnknownAction(LookupError):
    """Raised by ``may`` for an action that is not in the table (a typo, not a denial)."""


@dataclass(frozen=True)
class Rule:
    check: Callable[..., bool]
    # True when the rule is about one object (a case); False when it is about the user alone.
    needs_object: bool


RULES: dict[str, Rule] = {
    "create_case": Rule(can_create_case, needs_object=False),
    "list_cases": Rule(can_list_cases, needs_object=False),
    "view_case": Rule(can_view_case, needs_object=True),
    "edit_case": Rule(can_edit_case, needs_object=True),
    "assign_case": Rule(can_assign_case, needs_object=True),
    "break_glass": Rule(can_break_glass, needs_object=True),
    "resolve_duplicates": Rule(can_resolve_duplicates, needs_object=False),
    "supervise_case": Rule(can_supervise_case, needs_object=True),
    "confirm_erasure": Rule(can_confirm_erasure, needs_object=False),
    "manage_agencies": Rule(can_manage_agencies, needs_object=False),
    "manage_users": Rule(can_manage_users, needs_object=False),
    "manage_reference_lists": Rule(can_manage_reference_lists, needs_object=False),
    "view_audit_log": Rule(can_view_audit_log, needs_object=False),
    "view_statistics": Rule(can_view_statistics, needs_object=False),
}


def may(user: Any, action: str, obj: Any = None) -> bool:
    """Return whether the user may do the action (on the object, for object rules).

    :raises UnknownAction: for an action not in ``RULES``.
    :raises TypeError: when an object rule is asked without an object.
    """
    try:
        rule = RULES[action]
    except KeyError:
        raise UnknownAction(action) from None
    if not rule.needs_object:
        return rule.check(user)
    if obj is None:
        raise TypeError(f"action {action!r} needs an object")
    return rule.check(user, obj)


# Query scopes -----------------------------------------------------------------------------


def visible_cases(user: Any) -> Select:
    """Return a select of the cases the user may open.

    Caseworkers and supervisors: the own agency's cases, except restricted ones they are
    neither assigned to nor hold a break-the-glass grant for. Coordinators: the cases
    shared with the national coordinator through referrals (added by the referral issue;
    nothing until then). Admins, analysts and auditors: never any case.
    """
    from casework.models import Case  # lazy: see the module docstring
    from casework.supervision import BreakGlassGrant, CaseRestriction

    query = select(Case)
    if _works_cases(user):
        allowed = [
            ~exists().where(CaseRestriction.case_id == Case.id),
            Case.assigned_user_id == user.id,
        ]
        if user.has_role(Role.SUPERVISOR):
            allowed.append(
                exists().where(
                    BreakGlassGrant.case_id == Case.id,
                    BreakGlassGrant.user_id == user.id,
                    BreakGlassGrant.expires_at > utcnow(),
                )
            )
        return query.where(Case.owner_agency_id == user.agency_id, or_(*allowed))
    # Referral hook: OR the coordinator's share condition in here when referrals land.
    return query.where(false())


def supervised_cases(user: Any) -> Select:
    """Return a select of the cases whose supervision pages the user may load.

    Supervisors: every case of the own agency, restricted ones included (those pages show
    no personal data). Everyone else: ``visible_cases``.
    """
    from casework.models import Case  # lazy: see the module docstring

    if _works_cases(user) and user.has_role(Role.SUPERVISOR):
        return select(Case).where(Case.owner_agency_id == user.agency_id)
    return visible_cases(user)


def visible_users(user: Any) -> Select[tuple[User]]:
    """Return a select of the accounts the user may see: all for an admin, else colleagues."""
    query = select(User)
    if can_manage_users(user):
        return query
    if _is_active(user):
        return query.where(User.agency_id == user.agency_id)
    return query.where(false())


def visible_agencies(user: Any) -> Select[tuple[Agency]]:
    """Return a select of the agencies the user may see: all for an admin, else active ones.

    The agency directory holds no personal data; everyone signed in needs it to refer.
    """
    query = select(Agency)
    if can_manage_agencies(user):
        return query
    if _is_active(user):
        return query.where(Agency.active.is_(True))
    return query.where(false())


def get_visible_or_404(scope: Select, object_id: Any):
    """Load one object by id through an access scope, or abort with 404.

    An id of the wrong shape (text for an integer key, a malformed UUID) is a 404 too, so
    nothing tells a made-up id from a hidden one.
    """
    entity = scope.column_descriptions[0]["entity"]
    key = entity.__mapper__.primary_key[0]
    try:
        python_type = key.type.python_type
    except NotImplementedError:  # pragma: no cover - every Haven key type has one
        python_type = None
    try:
        if python_type is int:
            text = str(object_id)
            # ASCII digits only: int() would also take "+3", " 3" or other scripts' digits.
            if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_INTEGER_ID:
                abort(404)
            object_id = int(text)
        elif python_type is uuid.UUID and not isinstance(object_id, uuid.UUID):
            object_id = uuid.UUID(str(object_id))
        elif python_type is str and isinstance(object_id, uuid.UUID):
            object_id = str(object_id)
    except ValueError:
        abort(404)
    found = db.session.scalars(scope.where(key == object_id)).first()
    if found is None:
        abort(404)
    return found


def case_or_404(user: Any, case_id: Any) -> Case:
    """Load a case the user may see, or abort with 404.

    A refused attempt on a case that exists is audited as denied (DESIGN: denied attempts
    are logged, not only reads); the answer stays a plain 404 either way.
    """
    from werkzeug.exceptions import NotFound

    try:
        return get_visible_or_404(visible_cases(user), case_id)
    except NotFound:
        from casework.models import Case

        if _is_uuid(case_id) and db.session.get(Case, str(case_id)) is not None:
            from core.audit import record_denied

            # Committed by the audit hook although the answer is a 404.
            record_denied("case.view_denied", object_type="case", object_id=case_id)
        raise


def _is_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# Role combinations ------------------------------------------------------------------------


def role_problems(roles: set[Role] | frozenset[Role], agency: Agency) -> list:
    """Return why these roles may not be given together to a user of this agency.

    The messages are lazy translations, rendered in the reader's language when shown.
    """
    roles = {Role(role) for role in roles}
    problems = []
    if not roles:
        problems.append(_l("Choose at least one role."))
    if Role.ADMIN in roles and roles & ROLES_EXCLUSIVE_OF_ADMIN:
        problems.append(
            _l(
                "An administrator may not also be a caseworker, supervisor or national "
                "coordinator: administrators never read case data."
            )
        )
    if Role.COORDINATOR in roles and not agency.is_national_coordinator:
        problems.append(
            _l("Only users of the national coordinator agency may have the coordinator role.")
        )
    return problems
