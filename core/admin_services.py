"""Writes behind the admin pages: agencies and user accounts, each one audited.

Every function takes model objects and plain data, checks the rules the database cannot
(one national coordinator, role combinations, unique names), flushes, writes one audit
entry naming the fields it touched (never their values) and returns the object. Nothing
here commits: the view or CLI command does, once. A rule broken raises ``AdminError``
before anything is changed.

Changes to what a user may do (deactivation, roles, agency, 2FA reset) end all the user's
sessions, so they take effect on the very next request.

Initial passwords: the admin types one, checked by the password policy, and hands it over
in person. A generated one-time password was the alternative; it would have to be shown on
a page (and so sit in the admin's browser history and screen) exactly like a typed one, and
the account is useless without enrolling TOTP at the first sign-in either way.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select

from core import audit
from core.db import db
from core.models import Agency, AgencyType, RecoveryCode, Role, User
from core.passwords import hash_password, password_problems
from core.policy import role_problems
from core.sessions import end_all_sessions


class AdminError(ValueError):
    """A change the rules refuse; ``field`` names the form field it concerns, if any.

    The messages may be lazy translations: they are rendered when shown, in the reader's
    language.
    """

    def __init__(self, *messages: object, field: str | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages)
        self.field = field

    def __str__(self) -> str:
        return " ".join(str(message) for message in self.messages)


# Agencies -------------------------------------------------------------------------------


def _check_agency_name(name: str, agency: Agency | None = None) -> None:
    query = select(Agency.id).where(func.lower(Agency.name) == name.lower())
    if agency is not None and agency.id is not None:
        query = query.where(Agency.id != agency.id)
    if db.session.scalars(query).first() is not None:
        raise AdminError(_l("An agency with this name already exists."), field="name")


def _check_single_coordinator(agency: Agency | None = None) -> None:
    """Refuse a second national coordinator: exactly one agency decides victim status."""
    query = select(Agency).where(Agency.is_national_coordinator.is_(True))
    if agency is not None and agency.id is not None:
        query = query.where(Agency.id != agency.id)
    other = db.session.scalars(query).first()
    if other is not None:
        raise AdminError(
            _l(
                "%(name)s is already the national coordinator. Only one agency can be; "
                "remove the mark there first.",
                name=other.name,
            ),
            field="is_national_coordinator",
        )


def create_agency(
    *,
    name: str,
    type: AgencyType | str,
    is_national_coordinator: bool = False,
    keeps_case_files: bool = True,
    actor=None,
) -> Agency:
    """Create an agency.

    :raises AdminError: if the name is taken or another agency is the national coordinator.
    """
    name = name.strip()
    type = AgencyType(type)
    _check_agency_name(name)
    if is_national_coordinator:
        _check_single_coordinator()
    agency = Agency(
        name=name,
        type=type.value,
        is_national_coordinator=is_national_coordinator,
        keeps_case_files=bool(keeps_case_files),
        active=True,
    )
    db.session.add(agency)
    db.session.flush()
    audit.record(
        "agency.create",
        object_type="agency",
        object_id=agency.id,
        field_names=("name", "type", "is_national_coordinator", "keeps_case_files", "active"),
        user=actor,
    )
    return agency


def update_agency(
    agency: Agency,
    *,
    name: str,
    type: AgencyType | str,
    is_national_coordinator: bool,
    keeps_case_files: bool = True,
    actor=None,
) -> Agency:
    """Change an agency's name, type, national-coordinator mark and case-file flag.

    :raises AdminError: if the name is taken or another agency is the national coordinator.
    """
    name = name.strip()
    type = AgencyType(type)
    _check_agency_name(name, agency)
    if is_national_coordinator and not agency.is_national_coordinator:
        _check_single_coordinator(agency)
    changed = []
    if agency.name != name:
        agency.name = name
        changed.append("name")
    if agency.type != type.value:
        agency.type = type.value
        changed.append("type")
    if bool(agency.is_national_coordinator) != bool(is_national_coordinator):
        agency.is_national_coordinator = is_national_coordinator
        changed.append("is_national_coordinator")
        # Coordinator rights follow the agency mark: its coordinators' access changed.
        _end_sessions_of_agency(agency, role=Role.COORDINATOR)
    if bool(agency.keeps_case_files) != bool(keeps_case_files):
        # Case work follows the flag on the users' next request (the policy reads it).
        agency.keeps_case_files = bool(keeps_case_files)
        changed.append("keeps_case_files")
    db.session.flush()
    if changed:
        audit.record(
            "agency.update",
            object_type="agency",
            object_id=agency.id,
            field_names=tuple(changed),
            user=actor,
        )
    return agency


def _end_sessions_of_agency(agency: Agency, role: Role | None = None) -> None:
    """End the sessions of the agency's users (only those holding ``role``, if given)."""
    for user in db.session.scalars(select(User).where(User.agency_id == agency.id)):
        if role is None or user.has_role(role):
            end_all_sessions(user)


def deactivate_agency(agency: Agency, *, actor=None) -> Agency:
    """Deactivate an agency: none of its users can sign in or keep a session."""
    if not agency.active:
        return agency
    if actor is not None and actor.agency_id == agency.id:
        raise AdminError(_l("You cannot deactivate your own agency."))
    agency.active = False
    _end_sessions_of_agency(agency)
    db.session.flush()
    audit.record(
        "agency.deactivate",
        object_type="agency",
        object_id=agency.id,
        field_names=("active",),
        user=actor,
    )
    return agency


def reactivate_agency(agency: Agency, *, actor=None) -> Agency:
    """Reactivate an agency; its users' own accounts keep their state."""
    if agency.active:
        return agency
    agency.active = True
    db.session.flush()
    audit.record(
        "agency.reactivate",
        object_type="agency",
        object_id=agency.id,
        field_names=("active",),
        user=actor,
    )
    return agency


# Users ----------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _check_email_free(email: str) -> None:
    query = select(User.id).where(func.lower(User.email) == email)
    if db.session.scalars(query).first() is not None:
        raise AdminError(_l("An account with this e-mail address already exists."), field="email")


def _check_roles(roles: set[Role], agency: Agency) -> None:
    problems = role_problems(roles, agency)
    if problems:
        raise AdminError(*problems, field="roles")


def _check_agency_usable(agency: Agency) -> None:
    if not agency.active:
        raise AdminError(_l("This agency is deactivated."), field="agency")


def create_user(
    *,
    email: str,
    display_name: str,
    agency: Agency,
    roles: Iterable[Role | str],
    language: str,
    password: str,
    actor=None,
) -> User:
    """Create an account with an initial password the password policy accepts.

    The user has no second factor yet: enrolling TOTP is the first thing they do.

    :raises AdminError: for a taken e-mail, a refused role combination or a weak password.
    """
    email = normalise_email(email)
    display_name = display_name.strip()
    wanted = {Role(role) for role in roles}
    _check_email_free(email)
    _check_agency_usable(agency)
    _check_roles(wanted, agency)
    problems = password_problems(password, email=email)
    if problems:
        raise AdminError(*problems, field="password")
    user = User(
        email=email,
        display_name=display_name,
        agency=agency,
        language=language,
        password_hash=hash_password(password),
        active=True,
    )
    user.set_roles(wanted)
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        object_type="user",
        object_id=user.id,
        field_names=(
            "email",
            "display_name",
            "agency_id",
            "roles",
            "language",
            "password_hash",
            "active",
        ),
        user=actor,
    )
    return user


def _check_not_own_admin_role(user: User, roles: set[Role], actor) -> None:
    # An admin removing their own admin role could lock every admin out.
    if actor is not None and actor.id == user.id and Role.ADMIN not in roles:
        raise AdminError(_l("You cannot remove your own administrator role."), field="roles")


def update_user_roles(user: User, roles: Iterable[Role | str], *, actor=None) -> User:
    """Replace the user's roles; their sessions end so the change applies at once.

    :raises AdminError: for a refused role combination.
    """
    wanted = {Role(role) for role in roles}
    _check_roles(wanted, user.agency)
    _check_not_own_admin_role(user, wanted, actor)
    if wanted == set(user.roles):
        return user
    user.set_roles(wanted)
    end_all_sessions(user)
    db.session.flush()
    audit.record(
        "user.update_roles",
        object_type="user",
        object_id=user.id,
        field_names=("roles",),
        user=actor,
    )
    return user


def update_user(
    user: User,
    *,
    display_name: str,
    agency: Agency,
    roles: Iterable[Role | str],
    language: str,
    actor=None,
) -> User:
    """Change the user's name, agency, roles and language in one audited step.

    A change of agency or roles ends the user's sessions, so it applies on the next request.

    :raises AdminError: for an inactive agency or a refused role combination.
    """
    display_name = display_name.strip()
    wanted = {Role(role) for role in roles}
    if agency.id != user.agency_id:
        _check_agency_usable(agency)
    _check_roles(wanted, agency)
    _check_not_own_admin_role(user, wanted, actor)
    changed = []
    if user.display_name != display_name:
        user.display_name = display_name
        changed.append("display_name")
    if user.agency_id != agency.id:
        user.agency = agency
        changed.append("agency_id")
    if wanted != set(user.roles):
        user.set_roles(wanted)
        changed.append("roles")
    if user.language != language:
        user.language = language
        changed.append("language")
    if {"agency_id", "roles"} & set(changed):
        end_all_sessions(user)
    db.session.flush()
    if changed:
        audit.record(
            "user.update",
            object_type="user",
            object_id=user.id,
            field_names=tuple(changed),
            user=actor,
        )
    return user


def deactivate_user(user: User, *, actor=None) -> User:
    """Deactivate an account and end its sessions.

    :raises AdminError: when an admin tries to deactivate themselves.
    """
    if actor is not None and actor.id == user.id:
        raise AdminError(_l("You cannot deactivate your own account."))
    if not user.active:
        return user
    user.active = False
    end_all_sessions(user)
    db.session.flush()
    audit.record(
        "user.deactivate",
        object_type="user",
        object_id=user.id,
        field_names=("active",),
        user=actor,
    )
    return user


def reactivate_user(user: User, *, actor=None) -> User:
    """Reactivate an account; the user signs in again with their password and 2FA."""
    if user.active:
        return user
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    db.session.flush()
    audit.record(
        "user.reactivate",
        object_type="user",
        object_id=user.id,
        field_names=("active", "failed_logins", "locked_until"),
        user=actor,
    )
    return user


def reset_user_totp(user: User, *, actor=None) -> User:
    """Clear the user's TOTP secret and recovery codes and end their sessions.

    The user has to enrol a new authenticator at their next sign-in.
    """
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_all_sessions(user)
    db.session.flush()
    audit.record(
        "user.reset_totp",
        object_type="user",
        object_id=user.id,
        field_names=("totp_secret", "totp_confirmed_at", "totp_last_step", "recovery_codes"),
        user=actor,
    )
    return user
