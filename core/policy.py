"""Access policy: the one place that decides who may see and do what in Haven.

Every question is a pure function ``can_<verb>_<noun>(user, obj)`` over the user's agency
and roles (and, once referrals exist, what was shared with the user's agency); list pages
and object loads go through the ``visible_<nouns>(user) -> Select`` scopes instead of
checking rows one by one. ``may(user, action, obj)`` answers the same questions through
one table, so the policy can be asked generically and tested as a matrix.

Layering exception: ``core`` never imports a blueprint, but the case rules need
``casework.models.Case``. Splitting the policy per blueprint would scatter the rules the
whole system depends on, so the case functions import ``casework.models`` (and the referral
functions ``referrals``) lazily, inside the function body. This is the one sanctioned
exception; nothing else in ``core`` does it.

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
from sqlalchemy import Select, and_, exists, false, or_, select
from sqlalchemy.orm import joinedload

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
    """Return whether the case is shared with the user's agency for the status decision: a
    ``status_decision`` referral to it is accepted or in progress.

    What the coordinator then reads of the case is the referral's shared sections only
    (``referral_sections``), never the whole file (``can_read_case_file``). Keep this in
    step with ``_nrm_share_condition``, the coordinator branch of ``visible_cases``.
    """
    from referrals.models import Referral  # lazy: see the module docstring

    if case is None:
        return False
    return (
        db.session.scalar(
            select(Referral.id).where(Referral.case_id == case.id, _nrm_referral_condition(user))
        )
        is not None
    )


def _nrm_referral_condition(user: Any) -> Any:
    """Return the SQL condition of a status-decision referral the coordinator works now."""
    from casework.casefile import ServiceType  # lazy: see the module docstring
    from referrals.models import Referral
    from referrals.workflow import SHARING_STATES

    return (
        (Referral.receiving_agency_id == user.agency_id)
        & (Referral.service_type == ServiceType.STATUS_DECISION.value)
        & Referral.state.in_([state.value for state in SHARING_STATES])
    )


def _nrm_share_condition(user: Any) -> Any:
    """Return the SQL condition of the cases shared with the user's agency for the decision."""
    from casework.models import Case  # lazy: see the module docstring
    from referrals.models import Referral

    return exists().where(Referral.case_id == Case.id, _nrm_referral_condition(user))


# Cases ----------------------------------------------------------------------------------


def can_create_case(user: Any) -> bool:
    """Return whether the user may open a case for the own agency (one that keeps case
    files; the others send presumed-victim notifications, casework.contacts)."""
    return _works_cases(user) and bool(user.agency.keeps_case_files)


def can_list_cases(user: Any) -> bool:
    """Return whether the user has a case list: the own agency's cases.

    Coordinators get their list of cases shared with the NRM with the referral work. An
    agency that keeps no case files has no case list.
    """
    return _works_cases(user) and bool(user.agency.keeps_case_files)


def _restriction_allows(user: Any, case: Case, *, reading: bool) -> bool:
    """Return whether a restricted case's restriction lets the user in (unrestricted: yes).

    A restricted case is open to its assigned user and, for reading only, to a supervisor
    holding an unexpired break-the-glass grant. Keep in step with ``visible_cases``.
    """
    from casework.supervision import active_grant  # lazy: see docstring

    if case.restriction is None:
        return True
    if case.assigned_user_id == user.id:
        return True
    return reading and user.has_role(Role.SUPERVISOR) and active_grant(case, user) is not None


def can_view_case(user: Any, case: Case) -> bool:
    """Return whether the user may read the case."""
    if _works_cases(user) and _owns(user, case):
        return _restriction_allows(user, case, reading=True)
    return _is_coordinator(user) and _shared_with_nrm(user, case)


def can_read_case_file(user: Any, case: Case) -> bool:
    """Return whether the user may read the whole case file: notes, services, documents,
    every intake field. The own agency's case staff only; a coordinator who may see the
    case reads just the sections a status-decision referral shares."""
    return (
        _works_cases(user) and _owns(user, case) and _restriction_allows(user, case, reading=True)
    )


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


def can_edit_case_note(user: Any, note: Any) -> bool:
    """Return whether the user may correct a note: its author or a supervisor, while the
    case may be changed."""
    return can_edit_case(user, note.case) and (
        note.author_user_id == user.id or user.has_role(Role.SUPERVISOR)
    )


def can_oversee_requests(user: Any) -> bool:
    """Return whether the user has the overview of the own agency's pending requests,
    break-the-glass reads and incoming transfers (a supervisor)."""
    return _works_cases(user) and user.has_role(Role.SUPERVISOR)


def can_accept_transfer(user: Any, request: Any) -> bool:
    """Return whether the user may accept or decline a transfer: a supervisor of the
    receiving agency, once the sending agency's supervisor approved it."""
    from casework.supervision import TransferStatus  # lazy: see the module docstring

    return (
        can_oversee_requests(user)
        and request.to_agency_id == user.agency_id
        and request.status == TransferStatus.APPROVED
    )


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


# Notifications ----------------------------------------------------------------------------


def can_view_notification(user: Any, notification: Any) -> bool:
    """Return whether the notification is the user's own (and, if sent to an agency, the
    user still works there). A notification never grants access to what it links to."""
    if not _is_active(user) or notification is None or notification.user_id != user.id:
        return False
    return notification.agency_id is None or notification.agency_id == user.agency_id


def visible_notifications(user: Any) -> Select:
    """Return a select of the user's own notifications; keep in step with the question."""
    from core.notifications import Notification  # core module, imported late: no cycle

    if not _is_active(user):
        return select(Notification).where(false())
    return select(Notification).where(
        Notification.user_id == user.id,
        or_(Notification.agency_id.is_(None), Notification.agency_id == user.agency_id),
    )


RULES: dict[str, Rule] = {
    "create_case": Rule(can_create_case, needs_object=False),
    "list_cases": Rule(can_list_cases, needs_object=False),
    "view_case": Rule(can_view_case, needs_object=True),
    "read_case_file": Rule(can_read_case_file, needs_object=True),
    "edit_case": Rule(can_edit_case, needs_object=True),
    "assign_case": Rule(can_assign_case, needs_object=True),
    "break_glass": Rule(can_break_glass, needs_object=True),
    "resolve_duplicates": Rule(can_resolve_duplicates, needs_object=False),
    "supervise_case": Rule(can_supervise_case, needs_object=True),
    "edit_case_note": Rule(can_edit_case_note, needs_object=True),
    "oversee_requests": Rule(can_oversee_requests, needs_object=False),
    "accept_transfer": Rule(can_accept_transfer, needs_object=True),
    "confirm_erasure": Rule(can_confirm_erasure, needs_object=False),
    "manage_agencies": Rule(can_manage_agencies, needs_object=False),
    "manage_users": Rule(can_manage_users, needs_object=False),
    "manage_reference_lists": Rule(can_manage_reference_lists, needs_object=False),
    "view_audit_log": Rule(can_view_audit_log, needs_object=False),
    "view_statistics": Rule(can_view_statistics, needs_object=False),
    "view_notification": Rule(can_view_notification, needs_object=True),
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
    shared with the national coordinator through a status-decision referral while it is
    accepted or in progress. Admins, analysts and auditors: never any case.
    """
    from casework.models import Case  # lazy: see the module docstring
    from casework.supervision import BreakGlassGrant, CaseRestriction

    query = select(Case)
    visible = []
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
        visible.append(and_(Case.owner_agency_id == user.agency_id, or_(*allowed)))
    if _is_coordinator(user):
        # Keep in step with ``_shared_with_nrm``.
        visible.append(_nrm_share_condition(user))
    return query.where(or_(*visible)) if visible else query.where(false())


def supervised_cases(user: Any) -> Select:
    """Return a select of the cases whose supervision pages the user may load.

    Supervisors: every case of the own agency, restricted ones included (those pages show
    no personal data). Everyone else: ``visible_cases``.
    """
    from casework.models import Case  # lazy: see the module docstring

    if _works_cases(user) and user.has_role(Role.SUPERVISOR):
        return select(Case).where(Case.owner_agency_id == user.agency_id)
    return visible_cases(user)


def visible_incoming_transfers(user: Any) -> Select:
    """Return a select of the approved transfers waiting for the user's agency to answer.

    Supervisors of the receiving agency only; everyone else: nothing.
    """
    from casework.supervision import TransferRequest, TransferStatus  # lazy: see docstring

    query = select(TransferRequest)
    if not can_oversee_requests(user):
        return query.where(false())
    return query.where(
        TransferRequest.to_agency_id == user.agency_id,
        TransferRequest.status == TransferStatus.APPROVED.value,
    )


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


def case_or_404(user: Any, case_id: Any, *, whole_file: bool = True) -> Case:
    """Load a case the user may see, or abort with 404.

    By default only for a user who reads the whole case file (``can_read_case_file``): the
    case file's pages show every section. A page that shows only what the user may see of
    the case passes ``whole_file=False`` (the national coordinator's shared sections).

    A refused attempt on a case that exists is audited as denied (DESIGN: denied attempts
    are logged, not only reads); the answer stays a plain 404 either way.
    """
    from werkzeug.exceptions import NotFound

    from casework.models import Case  # lazy: see the module docstring

    # The policy reads the restriction on every check: load it with the case.
    scope = visible_cases(user).options(joinedload(Case.restriction))
    try:
        case = get_visible_or_404(scope, case_id)
        if whole_file and not can_read_case_file(user, case):
            abort(404)
        return case
    except NotFound:
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


# Referrals --------------------------------------------------------------------------------
# Who may act follows ``referrals.workflow.TRANSITIONS``: an action is allowed when the table
# has it from the referral's state and the user is on the side the table names. The sending
# side is the sending agency's case staff who may read the case; the receiving side is the
# receiving agency's case staff (and coordinators, when it is the national coordinator),
# once the referral was sent. Everyone else gets a 404. ``referrals`` is imported lazily,
# like ``casework`` (see the module docstring).


def _works_referrals(user: Any) -> bool:
    """Return whether the user may work the referrals the own agency receives."""
    return _works_cases(user) or _is_coordinator(user)


def _is_referral_sender(user: Any, referral: Any) -> bool:
    return (
        _works_cases(user)
        and referral.sending_agency_id == user.agency_id
        and can_view_case(user, referral.case)
    )


def _is_referral_receiver(user: Any, referral: Any) -> bool:
    from referrals.workflow import State  # lazy: see the module docstring

    return (
        _works_referrals(user)
        and referral.receiving_agency_id == user.agency_id
        and referral.state != State.DRAFT.value
    )


def _may_act_on_referral(user: Any, referral: Any, action: str) -> bool:
    """Return whether the table allows the action from the referral's state to the user."""
    from referrals.workflow import TRANSITIONS, Action, Side, State

    move = TRANSITIONS.get((State(referral.state), Action(action)))
    if move is None or referral.case.is_erased:
        return False
    if move.actor is Side.SENDER:
        if action == Action.SEND and not can_create_referral(user, referral.case):
            return False
        return _is_referral_sender(user, referral)
    if move.actor is Side.RECEIVER:
        if action == Action.COMPLETE and _is_status_decision(referral):
            # Completed only by recording the decision (``can_record_status_decision``).
            return False
        return _is_referral_receiver(user, referral)
    return False  # Haven's own moves (expiry, consent withdrawn) are nobody's button


def can_list_referrals(user: Any) -> bool:
    """Return whether the user has referral inbox and outbox pages (the own agency's)."""
    return _works_referrals(user)


def can_create_referral(user: Any, case: Case) -> bool:
    """Return whether the user may refer the case: one they may edit, opened, not a draft."""
    from casework.models import CaseStatus  # lazy: see the module docstring

    return can_edit_case(user, case) and case.status == CaseStatus.OPEN.value


def can_view_referral(user: Any, referral: Any) -> bool:
    """Return whether the user may open the referral: its sender or its receiver."""
    return _is_referral_sender(user, referral) or _is_referral_receiver(user, referral)


def can_read_referral_reason(user: Any, referral: Any) -> bool:
    """Return whether the user may read the sender's texts (reason, exception note).

    The sender always; the receiver while the referral waits or is worked on, not after.
    """
    from referrals.workflow import OPEN_STATES, State

    if referral.case.is_erased:
        return False
    if _is_referral_sender(user, referral):
        return True
    return _is_referral_receiver(user, referral) and State(referral.state) in OPEN_STATES


def can_send_referral(user: Any, referral: Any) -> bool:
    """Return whether the user may send the draft (the sender, the case still open)."""
    return _may_act_on_referral(user, referral, "send")


def can_accept_referral(user: Any, referral: Any) -> bool:
    return _may_act_on_referral(user, referral, "accept")


def can_decline_referral(user: Any, referral: Any) -> bool:
    return _may_act_on_referral(user, referral, "decline")


def can_start_referral(user: Any, referral: Any) -> bool:
    return _may_act_on_referral(user, referral, "start")


def can_complete_referral(user: Any, referral: Any) -> bool:
    return _may_act_on_referral(user, referral, "complete")


def can_cancel_referral(user: Any, referral: Any) -> bool:
    return _may_act_on_referral(user, referral, "cancel")


def can_rerefer_referral(user: Any, referral: Any) -> bool:
    """Return whether the user may refer the person elsewhere after a decline or expiry."""
    from referrals.workflow import REREFERABLE_STATES, State

    return (
        State(referral.state) in REREFERABLE_STATES
        and _is_referral_sender(user, referral)
        and can_create_referral(user, referral.case)
    )


def can_add_referral_note(user: Any, referral: Any) -> bool:
    """Return whether the user may write a service note: the receiver, while it works it."""
    from referrals.workflow import SHARING_STATES, State

    return (
        not referral.case.is_erased
        and _is_referral_receiver(user, referral)
        and State(referral.state) in SHARING_STATES
    )


def referral_actions(user: Any, referral: Any) -> list:
    """Return the workflow actions the user may take on the referral, in table order."""
    from referrals.workflow import actions_from

    return [
        action
        for action in actions_from(referral.state)
        if f"{action.value}_referral" in RULES and may(user, f"{action.value}_referral", referral)
    ]


def referral_sections(user: Any, referral: Any) -> list:
    """Return the case sections the user sees through this referral.

    The receiver sees exactly the shared sections, only while the referral is accepted or in
    progress; the sender reads the case itself, not through the referral: nothing here.
    """
    from referrals.workflow import SHARING_STATES, State

    if referral.case.is_erased or State(referral.state) not in SHARING_STATES:
        return []
    if not _is_referral_receiver(user, referral):
        return []
    return referral.sections


def shared_case_sections(user: Any, case: Case) -> frozenset[str]:
    """Return the section codes of the case the user's agency sees through its referrals."""
    from referrals.models import Referral
    from referrals.workflow import SHARING_STATES

    if not _works_referrals(user) or case.is_erased:
        return frozenset()
    rows = db.session.scalars(
        select(Referral.section_codes).where(
            Referral.case_id == case.id,
            Referral.receiving_agency_id == user.agency_id,
            Referral.state.in_([state.value for state in SHARING_STATES]),
        )
    )
    return frozenset(code for row in rows for code in row.split(",") if code)


def _sent_condition(user: Any) -> Any:
    from casework.models import Case
    from referrals.models import Referral

    if not _works_cases(user):
        return false()
    readable = visible_cases(user).with_only_columns(Case.id)
    return (Referral.sending_agency_id == user.agency_id) & Referral.case_id.in_(readable)


def _received_condition(user: Any) -> Any:
    from referrals.models import Referral
    from referrals.workflow import State

    if not _works_referrals(user):
        return false()
    return (Referral.receiving_agency_id == user.agency_id) & (Referral.state != State.DRAFT.value)


def visible_referrals_sent(user: Any) -> Select:
    """Return a select of the referrals the user's agency sent, of cases the user may read."""
    from referrals.models import Referral

    return select(Referral).where(_sent_condition(user))


def visible_referrals_received(user: Any) -> Select:
    """Return a select of the referrals sent to the user's agency (drafts never)."""
    from referrals.models import Referral

    return select(Referral).where(_received_condition(user))


def visible_referrals(user: Any) -> Select:
    """Return a select of every referral the user may open, sent or received."""
    from referrals.models import Referral

    return select(Referral).where(or_(_sent_condition(user), _received_condition(user)))


def visible_referral_notes(user: Any, referral: Any) -> Select:
    """Return a select of the referral's service notes the user may read.

    The receiver reads its own agency's notes; the sender only those shared with it.
    """
    from referrals.models import ReferralNote

    query = select(ReferralNote).where(ReferralNote.referral_id == referral.id)
    if referral.case.is_erased:
        return query.where(false())
    if _is_referral_receiver(user, referral):
        return query.where(ReferralNote.agency_id == user.agency_id)
    if _is_referral_sender(user, referral):
        return query.where(ReferralNote.shared_with_sender.is_(True))
    return query.where(false())


def referral_or_404(user: Any, referral_id: Any) -> Any:
    """Load a referral the user may open, or abort with 404 (auditing a refused one)."""
    from werkzeug.exceptions import NotFound

    try:
        return get_visible_or_404(visible_referrals(user), referral_id)
    except NotFound:
        from referrals.models import Referral

        if _is_uuid(referral_id) and db.session.get(Referral, str(referral_id)) is not None:
            from core.audit import record_denied

            record_denied("referral.view_denied", object_type="referral", object_id=referral_id)
        raise


RULES.update(
    {
        "list_referrals": Rule(can_list_referrals, needs_object=False),
        "create_referral": Rule(can_create_referral, needs_object=True),
        "view_referral": Rule(can_view_referral, needs_object=True),
        "read_referral_reason": Rule(can_read_referral_reason, needs_object=True),
        "send_referral": Rule(can_send_referral, needs_object=True),
        "accept_referral": Rule(can_accept_referral, needs_object=True),
        "decline_referral": Rule(can_decline_referral, needs_object=True),
        "start_referral": Rule(can_start_referral, needs_object=True),
        "complete_referral": Rule(can_complete_referral, needs_object=True),
        "cancel_referral": Rule(can_cancel_referral, needs_object=True),
        "rerefer_referral": Rule(can_rerefer_referral, needs_object=True),
        "add_referral_note": Rule(can_add_referral_note, needs_object=True),
    }
)


# The national coordinator's status decision ----------------------------------------------
# A ``status_decision`` referral to the national coordinator requests the formal decision on
# the person's victim status (DESIGN). The coordinator works it like any receiver (accept,
# see the shared sections while it is accepted or in progress) and completes it only by
# recording the decision.


def _is_status_decision(referral: Any) -> bool:
    from casework.casefile import ServiceType  # lazy: see the module docstring

    return referral.service_type == ServiceType.STATUS_DECISION.value


def can_list_status_decisions(user: Any) -> bool:
    """Return whether the user has the list of cases waiting for the status decision."""
    return _is_coordinator(user)


def can_record_status_decision(user: Any, referral: Any) -> bool:
    """Return whether the user may record the decision a status-decision referral asks for:
    a coordinator of the receiving agency, while the referral is accepted or in progress and
    the case is open."""
    from referrals.workflow import SHARING_STATES, State  # lazy: see the module docstring

    return (
        _is_coordinator(user)
        and _is_status_decision(referral)
        and _is_referral_receiver(user, referral)
        and State(referral.state) in SHARING_STATES
        and not referral.case.is_erased
        and _is_open(referral.case)
    )


def visible_status_decision_referrals(user: Any) -> Select:
    """Return a select of the status-decision referrals sent to the coordinator's agency."""
    from casework.casefile import ServiceType  # lazy: see the module docstring
    from referrals.models import Referral

    if not _is_coordinator(user):
        return select(Referral).where(false())
    return select(Referral).where(
        _received_condition(user), Referral.service_type == ServiceType.STATUS_DECISION.value
    )


RULES.update(
    {
        "list_status_decisions": Rule(can_list_status_decisions, needs_object=False),
        "record_status_decision": Rule(can_record_status_decision, needs_object=True),
    }
)


# Service directory ------------------------------------------------------------------------
# What agencies offer, where, to whom and with how many free places: no personal data. The
# directory's queries live in ``referrals.directory``; these functions read only plain
# attributes (``agency.id``, ``service.agency_id``), so core imports nothing from there.


def can_view_directory(user: Any) -> bool:
    """Return whether the user may search the service directory: the people who refer
    (caseworkers, supervisors, the national coordinator) and the admins who keep it."""
    return _works_cases(user) or _is_coordinator(user) or _holds(user, Role.ADMIN)


def can_manage_agency_services(user: Any, agency: Agency) -> bool:
    """Return whether the user may add, edit and deactivate the agency's services: an
    admin for any agency, a supervisor for the own agency."""
    if agency is None:
        return False
    if _holds(user, Role.ADMIN):
        return True
    return _works_cases(user) and user.has_role(Role.SUPERVISOR) and agency.id == user.agency_id


def can_update_capacity(user: Any, service: Any) -> bool:
    """Return whether the user may report the service's free places: a supervisor of the
    agency offering it (the figure is the agency's own, live, operational knowledge)."""
    return (
        service is not None
        and _works_cases(user)
        and user.has_role(Role.SUPERVISOR)
        and service.agency_id == user.agency_id
    )


# Registered here rather than in the table above: the functions are defined after it.
RULES.update(
    {
        "view_directory": Rule(can_view_directory, needs_object=False),
        "manage_agency_services": Rule(can_manage_agency_services, needs_object=True),
        "update_capacity": Rule(can_update_capacity, needs_object=True),
    }
)


# PDFs -------------------------------------------------------------------------------------
# The case summary follows ``can_read_case_file`` (through ``case_or_404``); the audit
# extract follows ``can_view_audit_log``. The referral form prints what the receiver was
# shared, so it follows the referral page's rule for the shared sections.


def can_download_referral_form(user: Any, referral: Any) -> bool:
    """Return whether the user may download the referral form: its sender (who may read the
    case), or its receiver only while the referral shows the receiver the shared sections
    (accepted or in progress)."""
    from referrals.workflow import SHARING_STATES, State  # lazy: see the module docstring

    if _is_referral_sender(user, referral):
        return True
    return (
        _is_referral_receiver(user, referral)
        and State(referral.state) in SHARING_STATES
        and not referral.case.is_erased
    )


RULES.update(
    {"download_referral_form": Rule(can_download_referral_form, needs_object=True)},
)


# The child path and the working-day calendar ------------------------------------------------
# A minor's guardian, best-interests determination, family tracing and assessment are part of
# the case file: read by who reads the whole file, recorded by who may edit the case, and only
# for a minor's case. Public holidays hold no personal data; the admin keeps them.


def can_view_child_path(user: Any, case: Case) -> bool:
    """Return whether the user may read the case's child-protection records."""
    return bool(case.is_minor) and can_read_case_file(user, case)


def can_record_child_path(user: Any, case: Case) -> bool:
    """Return whether the user may record a guardian, a best-interests determination, a
    family tracing or a family assessment for the case (a minor's, open, own agency's)."""
    return bool(case.is_minor) and can_edit_case(user, case)


def can_manage_public_holidays(user: Any) -> bool:
    """Return whether the user may add and remove public holidays (the admin)."""
    return _holds(user, Role.ADMIN)


RULES.update(
    {
        "view_child_path": Rule(can_view_child_path, needs_object=True),
        "record_child_path": Rule(can_record_child_path, needs_object=True),
        "manage_public_holidays": Rule(can_manage_public_holidays, needs_object=False),
    }
)


# Voluntary return and reintegration ------------------------------------------------------
# The return plan, reintegration plan, measures and follow-up visits are part of the case
# file: the own agency's case staff read them (``can_read_case_file``) and change them while
# they may edit the case. The pre-return risk assessment is signed off by the signing side
# of ``casework.return_workflow``: the national coordinator, or the case staff of a legal-aid
# agency working an accepted or in-progress referral on the case. The signing side reads the
# plan (never the rest of the file) once an assessment was submitted to it. ``casework`` and
# ``referrals`` are imported lazily (see the module docstring).


def can_view_aftercare(user: Any, case: Case) -> bool:
    """Return whether the user may read the case's return and reintegration pages."""
    return can_read_case_file(user, case) and not case.is_erased


def can_edit_aftercare(user: Any, case: Case) -> bool:
    """Return whether the user may plan the return and reintegration and record visits."""
    return can_edit_case(user, case)


def _legal_aid_referral_condition(case_id: Any, agency_id: Any) -> Any:
    """Return the SQL condition: a referral of the case to the agency is being worked."""
    from referrals.models import Referral  # lazy: see the module docstring
    from referrals.workflow import SHARING_STATES

    return exists().where(
        Referral.case_id == case_id,
        Referral.receiving_agency_id == agency_id,
        Referral.state.in_([state.value for state in SHARING_STATES]),
    )


def _is_legal_aid_worker(user: Any) -> bool:
    from core.models import AgencyType

    return _works_cases(user) and user.agency.type == AgencyType.LEGAL_AID.value


def legal_aid_agency_ids(case: Case) -> list[int]:
    """Return the legal-aid agencies working an accepted or in-progress referral on the case."""
    from referrals.models import Referral  # lazy: see the module docstring
    from referrals.workflow import SHARING_STATES

    return list(
        db.session.scalars(
            select(Agency.id)
            .join(Referral, Referral.receiving_agency_id == Agency.id)
            .where(
                Referral.case_id == case.id,
                Agency.type == "legal_aid",
                Referral.state.in_([state.value for state in SHARING_STATES]),
            )
            .distinct()
        )
    )


def can_sign_return_plan(user: Any, plan: Any) -> bool:
    """Return whether the user is on the signing side of the plan: the national
    coordinator, or a legal-aid agency's case staff while it works a referral on the case."""
    if plan is None or plan.case.is_erased:
        return False
    if _is_coordinator(user):
        return True
    if not _is_legal_aid_worker(user):
        return False
    return bool(
        db.session.scalar(
            select(_legal_aid_referral_condition(plan.case_id, user.agency_id))
        )
    )


def can_view_return_plan(user: Any, plan: Any) -> bool:
    """Return whether the user may open the plan: the case's staff, or the signing side
    once a risk assessment was submitted to it."""
    from casework.return_workflow import SIGNER_VISIBLE_STATES, State

    if plan is None or plan.case.is_erased:
        return False
    if can_read_case_file(user, plan.case):
        return True
    return State(plan.state) in SIGNER_VISIBLE_STATES and can_sign_return_plan(user, plan)


def _may_act_on_return_plan(user: Any, plan: Any, action: str) -> bool:
    """Return whether the table allows the action from the plan's state to the user."""
    from casework.return_workflow import TRANSITIONS, Action, Side, State

    move = TRANSITIONS.get((State(plan.state), Action(action)))
    if move is None or plan.case.is_erased:
        return False
    if move.actor is Side.OWNER:
        return can_edit_case(user, plan.case)
    # The owner agency never signs its own plan off, even if it were a legal-aid agency; a
    # closed case's plan is a record, not signed any more.
    return (
        _is_open(plan.case)
        and not can_edit_case(user, plan.case)
        and can_sign_return_plan(user, plan)
    )


def return_plan_actions(user: Any, plan: Any) -> list:
    """Return the return-plan actions the user may take, in table order."""
    from casework.return_workflow import actions_from

    return [
        action
        for action in actions_from(plan.state)
        if _may_act_on_return_plan(user, plan, action.value)
    ]


def visible_return_plans_to_sign(user: Any) -> Select:
    """Return a select of the return plans the user sees as the signing side (no drafts).

    Coordinators: every plan past the draft; legal-aid case staff: the plans of cases whose
    referral to their agency is accepted or in progress; everyone else: nothing.
    """
    from casework.models import Case
    from casework.return_workflow import SIGNER_VISIBLE_STATES
    from casework.returns import ReturnPlan

    query = (
        select(ReturnPlan)
        .join(Case, Case.id == ReturnPlan.case_id)
        .where(ReturnPlan.state.in_([state.value for state in SIGNER_VISIBLE_STATES]))
    )
    if _is_coordinator(user):
        return query
    if _is_legal_aid_worker(user):
        return query.where(_legal_aid_referral_condition(ReturnPlan.case_id, user.agency_id))
    return query.where(false())


def can_list_return_sign_offs(user: Any) -> bool:
    """Return whether the user has the list of return plans waiting for a sign-off."""
    return _is_coordinator(user) or _is_legal_aid_worker(user)


def return_plan_or_404(user: Any, plan_id: Any) -> Any:
    """Load a return plan the user may open, or abort with 404 (auditing a refused one).

    The case's staff load it through the case scope; the signing side through
    ``visible_return_plans_to_sign``.
    """
    from werkzeug.exceptions import NotFound

    from casework.models import Case  # lazy: see the module docstring
    from casework.returns import ReturnPlan

    try:
        owned = (
            select(ReturnPlan)
            .join(Case, Case.id == ReturnPlan.case_id)
            .where(Case.id.in_(visible_cases(user).with_only_columns(Case.id)))
        )
        wanted = str(uuid.UUID(str(plan_id)))
        plan = db.session.scalars(owned.where(ReturnPlan.id == wanted)).first()
        if plan is not None and can_view_return_plan(user, plan):
            return plan
        return get_visible_or_404(visible_return_plans_to_sign(user), plan_id)
    except (NotFound, ValueError):
        if _is_uuid(plan_id) and db.session.get(ReturnPlan, str(plan_id)) is not None:
            from core.audit import record_denied

            record_denied("return_plan.view_denied", object_type="return_plan", object_id=plan_id)
        abort(404)


RULES.update(
    {
        "view_aftercare": Rule(can_view_aftercare, needs_object=True),
        "edit_aftercare": Rule(can_edit_aftercare, needs_object=True),
        "sign_return_plan": Rule(can_sign_return_plan, needs_object=True),
        "view_return_plan": Rule(can_view_return_plan, needs_object=True),
        "list_return_sign_offs": Rule(can_list_return_sign_offs, needs_object=False),
    }
)


# Anonymous refusals and reconsideration of status decisions --------------------------------
# A refusal holds codes only (``casework.refusals``): the staff of the agency that met the
# person record it and list their own agency's; statistics count everyone's. Staff of an
# agency that keeps no case files identify people too, so the rule is the case roles, not
# the agency's files. A reconsideration (``referrals.reconsiderations``) travels as a
# status-decision referral: the coordinator works it through the rules above; these add the
# owner's request and withdrawal and who reads the new information.


def can_record_refusal(user: Any) -> bool:
    """Return whether the user may record an anonymous refusal (case staff of any agency)."""
    return _works_cases(user)


def can_list_refusals(user: Any) -> bool:
    """Return whether the user has the list of the own agency's refusals."""
    return _works_cases(user)


def visible_refusals(user: Any) -> Select:
    """Return a select of the refusals the user's agency recorded (nothing for others)."""
    from casework.refusals import NrmRefusal  # lazy: see the module docstring

    if not _works_cases(user):
        return select(NrmRefusal).where(false())
    return select(NrmRefusal).where(NrmRefusal.agency_id == user.agency_id)


def can_request_reconsideration(user: Any, case: Case) -> bool:
    """Return whether the user may ask for the reconsideration of the case's negative
    decision: the owner agency's case staff who may change the case. The period and the
    once-per-case rule are the service's (``request_problem``), shown as errors."""
    from casework.models import NrmStatus  # lazy: see the module docstring

    return can_edit_case(user, case) and case.nrm_status == NrmStatus.NOT_RECOGNISED.value


def _is_reconsideration_owner(user: Any, reconsideration: Any) -> bool:
    case = reconsideration.case
    return _works_cases(user) and _owns(user, case) and can_view_case(user, case)


def _is_reconsideration_coordinator(user: Any, reconsideration: Any) -> bool:
    receiving_agency_id = reconsideration.referral.receiving_agency_id
    return _is_coordinator(user) and receiving_agency_id == user.agency_id


def can_view_reconsideration(user: Any, reconsideration: Any) -> bool:
    """Return whether the user sees the request (state, dates): the owner's case staff, or
    the coordinator it was sent to."""
    return _is_reconsideration_owner(user, reconsideration) or _is_reconsideration_coordinator(
        user, reconsideration
    )


def can_read_reconsideration_information(user: Any, reconsideration: Any) -> bool:
    """Return whether the user may read the new information: the owner's staff who read the
    case file, or the coordinator while the request waits or is under review (as a
    referral's reason)."""
    if reconsideration.case.is_erased:
        return False
    if _is_reconsideration_owner(user, reconsideration):
        return can_read_case_file(user, reconsideration.case)
    return _is_reconsideration_coordinator(user, reconsideration) and reconsideration.is_open


def can_withdraw_reconsideration(user: Any, reconsideration: Any) -> bool:
    """Return whether the user may withdraw the request: the owner's case staff who may
    change the case, while the request is open."""
    return reconsideration.is_open and can_edit_case(user, reconsideration.case)


def visible_reconsiderations(user: Any) -> Select:
    """Return a select of the reconsiderations the user may see (keep in step with
    ``can_view_reconsideration``)."""
    from casework.models import Case  # lazy: see the module docstring
    from referrals.models import Referral
    from referrals.reconsiderations import Reconsideration

    visible = []
    if _works_cases(user):
        own = visible_cases(user).where(Case.owner_agency_id == user.agency_id)
        visible.append(Reconsideration.case_id.in_(own.with_only_columns(Case.id)))
    if _is_coordinator(user):
        sent_here = select(Referral.id).where(Referral.receiving_agency_id == user.agency_id)
        visible.append(Reconsideration.referral_id.in_(sent_here))
    query = select(Reconsideration)
    return query.where(or_(*visible)) if visible else query.where(false())


RULES.update(
    {
        "record_refusal": Rule(can_record_refusal, needs_object=False),
        "list_refusals": Rule(can_list_refusals, needs_object=False),
        "request_reconsideration": Rule(can_request_reconsideration, needs_object=True),
        "view_reconsideration": Rule(can_view_reconsideration, needs_object=True),
        "read_reconsideration_information": Rule(
            can_read_reconsideration_information, needs_object=True
        ),
        "withdraw_reconsideration": Rule(can_withdraw_reconsideration, needs_object=True),
    }
)


# Incoming reports: hotline calls and presumed-victim notifications --------------------------
# Something reported before there is a case (casework.contacts). Hotline staff record calls
# for their agency; staff of an agency that keeps no case file send notifications; the
# receiving agency (an assistance agency's case staff, or the national coordinator) works
# them. The sending agency sees the status of what it sent, never the case; the author reads
# what they wrote only until it becomes a case. Analysts, admins and auditors: 404.


def can_record_hotline_call(user: Any) -> bool:
    """Return whether the user takes hotline calls: case staff of a hotline agency."""
    from core.models import AgencyType

    return _works_cases(user) and user.agency.type == AgencyType.HOTLINE.value


def can_send_notification(user: Any) -> bool:
    """Return whether the user sends presumed-victim notifications: case-role staff of an
    agency that keeps no case file."""
    return _works_cases(user) and not user.agency.keeps_case_files


def can_receive_reports(user: Any) -> bool:
    """Return whether the user has an inbox of incoming reports: case staff of an agency
    that keeps case files, or the national coordinator."""
    return (_works_cases(user) and bool(user.agency.keeps_case_files)) or _is_coordinator(user)


def _is_report_sender(user: Any, report: Any) -> bool:
    return (
        _works_cases(user)
        and report is not None
        and report.sender_agency_id == user.agency_id
        and (can_record_hotline_call(user) or can_send_notification(user))
    )


def _is_report_receiver(user: Any, report: Any) -> bool:
    from casework.contact_workflow import State  # lazy: see the module docstring

    return (
        report is not None
        and can_receive_reports(user)
        and report.receiving_agency_id == user.agency_id
        and report.state != State.NEW.value
    )


def can_view_report(user: Any, report: Any) -> bool:
    """Return whether the user may open the report's page (status at least)."""
    return _is_report_sender(user, report) or _is_report_receiver(user, report)


def can_read_report_details(user: Any, report: Any) -> bool:
    """Return whether the user may read the report's encrypted fields: the receiver, or the
    author while it has not become a case (afterwards the sender sees the status only)."""
    from casework.contact_workflow import State  # lazy: see the module docstring

    if _is_report_receiver(user, report):
        return True
    return (
        _is_report_sender(user, report)
        and report.created_by_id == user.id
        and report.state != State.CONVERTED.value
    )


def _may_act_on_report(user: Any, report: Any, action: str) -> bool:
    """Return whether the user may take a receiver action on the report now: the table
    (casework.contact_workflow) allows it from the state and the user is the receiver."""
    from casework.contact_workflow import Side, actions_from  # lazy: see the module docstring

    if not _is_report_receiver(user, report):
        return False
    return action in {item.value for item in actions_from(report.state, Side.RECEIVER)}


def can_acknowledge_report(user: Any, report: Any) -> bool:
    """Return whether the user may acknowledge the report (the receiver, while it is new)."""
    return _may_act_on_report(user, report, "acknowledge")


def can_convert_report(user: Any, report: Any) -> bool:
    """Return whether the user may turn the report into a case (the receiver, while open)."""
    return _may_act_on_report(user, report, "convert")


def can_close_report(user: Any, report: Any) -> bool:
    """Return whether the user may close the report without a case (the receiver, while open)."""
    return _may_act_on_report(user, report, "close")


def can_withdraw_report(user: Any, report: Any) -> bool:
    """Return whether the user may withdraw the report: a notification the user's agency
    sent, while the receiver has not acknowledged it (the sender side of the table)."""
    from casework.contact_workflow import Kind, Side, actions_from  # lazy: see the docstring

    return (
        _is_report_sender(user, report)
        and report.kind == Kind.AGENCY_NOTIFICATION.value
        and "withdraw" in {item.value for item in actions_from(report.state, Side.SENDER)}
    )


def can_choose_case_owner(user: Any) -> bool:
    """Return whether the user opens a case from a report for another agency (the national
    coordinator, which keeps no case of its own); case staff open it for the own agency."""
    return _is_coordinator(user) and not (
        _works_cases(user) and bool(user.agency.keeps_case_files)
    )


def visible_hotline_calls(user: Any) -> Select:
    """Return a select of the own agency's hotline calls (hotline staff only)."""
    from casework.contact_workflow import Kind  # lazy: see the module docstring
    from casework.contacts import IncomingReport

    query = select(IncomingReport)
    if not can_record_hotline_call(user):
        return query.where(false())
    return query.where(
        IncomingReport.kind == Kind.HOTLINE_CALL.value,
        IncomingReport.sender_agency_id == user.agency_id,
    )


def visible_sent_notifications(user: Any) -> Select:
    """Return a select of the own agency's notifications (their status is what is shown)."""
    from casework.contact_workflow import Kind  # lazy: see the module docstring
    from casework.contacts import IncomingReport

    query = select(IncomingReport)
    if not can_send_notification(user):
        return query.where(false())
    return query.where(
        IncomingReport.kind == Kind.AGENCY_NOTIFICATION.value,
        IncomingReport.sender_agency_id == user.agency_id,
    )


def visible_incoming_reports(user: Any) -> Select:
    """Return a select of the reports routed or sent to the user's agency (keep in step with
    ``_is_report_receiver``)."""
    from casework.contact_workflow import State  # lazy: see the module docstring
    from casework.contacts import IncomingReport

    query = select(IncomingReport)
    if not can_receive_reports(user):
        return query.where(false())
    return query.where(
        IncomingReport.receiving_agency_id == user.agency_id,
        IncomingReport.state != State.NEW.value,
    )


def visible_reports(user: Any) -> Select:
    """Return a select of every report the user may open (keep in step with
    ``can_view_report``)."""
    from casework.contacts import IncomingReport  # lazy: see the module docstring

    conditions = [
        scope.whereclause
        for scope in (
            visible_hotline_calls(user),
            visible_sent_notifications(user),
            visible_incoming_reports(user),
        )
        if scope.whereclause is not None
    ]
    return select(IncomingReport).where(or_(*conditions))


def report_or_404(user: Any, report_id: Any) -> Any:
    """Load a report through the user's scope, or answer 404 (also for a malformed id)."""
    if not _is_uuid(report_id):
        abort(404)
    from casework.contacts import IncomingReport  # lazy: see the module docstring

    report = db.session.scalars(
        visible_reports(user).where(IncomingReport.id == str(report_id))
    ).first()
    if report is None or not can_view_report(user, report):
        abort(404)
    return report


RULES.update(
    {
        "record_hotline_call": Rule(can_record_hotline_call, needs_object=False),
        "send_notification": Rule(can_send_notification, needs_object=False),
        "receive_reports": Rule(can_receive_reports, needs_object=False),
        "view_report": Rule(can_view_report, needs_object=True),
        "read_report_details": Rule(can_read_report_details, needs_object=True),
        "acknowledge_report": Rule(can_acknowledge_report, needs_object=True),
        "convert_report": Rule(can_convert_report, needs_object=True),
        "close_report": Rule(can_close_report, needs_object=True),
        "withdraw_report": Rule(can_withdraw_report, needs_object=True),
        "choose_case_owner": Rule(can_choose_case_owner, needs_object=False),
    }
)
