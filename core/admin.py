"""Admin pages: agencies and user accounts, for administrators only.

Everyone else gets 404 (the pages' existence is not revealed); a visitor who is not signed
in is sent to the login page. Each view loads through the policy's scopes, validates the
form, calls one service from ``core.admin_services``, commits once and redirects.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core import admin_services as services
from core import audit, policy
from core.admin_forms import (
    ActionForm,
    AgencyForm,
    UserCreateForm,
    UserEditForm,
    UserFilterForm,
    agency_choices,
)
from core.db import db
from core.models import Agency, Role, User, UserRole

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Shown once the form is invalid or a service refused it: the page is re-rendered as typed.
INVALID = 400


@bp.before_request
def require_admin():
    """Send anonymous visitors to login; hide the whole area from everyone but admins."""
    # The session gate already sends half-signed-in users to their second factor; checked
    # again here because this area can hand out every other permission.
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    if not (policy.can_manage_agencies(current_user) or policy.can_manage_users(current_user)):
        # Denied attempts are audited too; the hook commits the entry with the 404.
        audit.record_denied("admin.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)
    return None


def _allow(allowed: bool) -> None:
    if not allowed:
        abort(404)


def _actor() -> User:
    return current_user._get_current_object()


def _refused(form, error: services.AdminError) -> None:
    """Put a service's refusal on the form field it concerns (or flash it)."""
    db.session.rollback()
    if error.field and error.field in form:
        form[error.field].errors = [*form[error.field].errors, *map(str, error.messages)]
    else:
        flash(str(error), "error")


# Agencies -------------------------------------------------------------------------------


@bp.get("/agencies")
def agencies():
    _allow(policy.can_manage_agencies(current_user))
    rows = db.session.scalars(policy.visible_agencies(current_user).order_by(Agency.name)).all()
    return render_template("admin/agencies.html", agencies=rows)


@bp.route("/agencies/new", methods=["GET", "POST"])
def create_agency():
    _allow(policy.can_manage_agencies(current_user))
    form = AgencyForm()
    if form.validate_on_submit():
        try:
            agency = services.create_agency(
                name=form.name.data,
                type=form.type.data,
                is_national_coordinator=form.is_national_coordinator.data,
                keeps_case_files=form.keeps_case_files.data,
                actor=_actor(),
            )
        except services.AdminError as error:
            _refused(form, error)
        else:
            db.session.commit()
            flash(_("Agency %(name)s created.", name=agency.name), "success")
            return redirect(url_for("admin.agencies"))
    status = INVALID if request.method == "POST" else 200
    return render_template("admin/agency_form.html", form=form, agency=None), status


@bp.route("/agencies/<int:agency_id>/edit", methods=["GET", "POST"])
def edit_agency(agency_id: int):
    _allow(policy.can_manage_agencies(current_user))
    agency = policy.get_visible_or_404(policy.visible_agencies(current_user), agency_id)
    form = AgencyForm(obj=agency)
    if form.validate_on_submit():
        try:
            services.update_agency(
                agency,
                name=form.name.data,
                type=form.type.data,
                is_national_coordinator=form.is_national_coordinator.data,
                keeps_case_files=form.keeps_case_files.data,
                actor=_actor(),
            )
        except services.AdminError as error:
            _refused(form, error)
        else:
            db.session.commit()
            flash(_("Agency %(name)s saved.", name=agency.name), "success")
            return redirect(url_for("admin.agencies"))
    status = INVALID if request.method == "POST" else 200
    return (
        render_template(
            "admin/agency_form.html", form=form, agency=agency, action_form=ActionForm()
        ),
        status,
    )


def _run(service, obj) -> bool:
    """Run a one-button action's service and commit, or flash its refusal."""
    try:
        service(obj, actor=_actor())
    except services.AdminError as error:
        db.session.rollback()
        flash(str(error), "error")
        return False
    db.session.commit()
    return True


def _agency_for_action(agency_id: int) -> Agency:
    _allow(policy.can_manage_agencies(current_user))
    agency = policy.get_visible_or_404(policy.visible_agencies(current_user), agency_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return agency


@bp.post("/agencies/<int:agency_id>/deactivate")
def deactivate_agency(agency_id: int):
    agency = _agency_for_action(agency_id)
    if _run(services.deactivate_agency, agency):
        flash(
            _("Agency %(name)s deactivated. Its users can no longer sign in.", name=agency.name),
            "success",
        )
    return redirect(url_for("admin.edit_agency", agency_id=agency_id))


@bp.post("/agencies/<int:agency_id>/reactivate")
def reactivate_agency(agency_id: int):
    agency = _agency_for_action(agency_id)
    if _run(services.reactivate_agency, agency):
        flash(_("Agency %(name)s reactivated.", name=agency.name), "success")
    return redirect(url_for("admin.edit_agency", agency_id=agency_id))


# Users ----------------------------------------------------------------------------------


def _usable_agencies(current: Agency | None = None) -> list[Agency]:
    """Return the active agencies (and the user's current one) to choose from."""
    rows = list(
        db.session.scalars(
            policy.visible_agencies(current_user)
            .where(Agency.active.is_(True))
            .order_by(Agency.name)
        )
    )
    if current is not None and current not in rows:
        rows.append(current)
    return rows


def _agency_by_id(agency_id: int) -> Agency | None:
    query = policy.visible_agencies(current_user).where(Agency.id == agency_id)
    return db.session.scalars(query).first()


def _validate_account_form(form) -> bool:
    """Validate the form, role combinations included, so every error shows at once.

    The service checks the roles again; this only puts its answer next to the other errors.
    """
    valid = form.validate()
    agency = _agency_by_id(form.agency.data) if isinstance(form.agency.data, int) else None
    if agency is None or form.roles.errors:
        return valid
    problems = policy.role_problems({Role(role) for role in form.roles.data or ()}, agency)
    form.roles.errors = [*form.roles.errors, *map(str, problems)]
    return valid and not problems


@bp.get("/users")
def users():
    _allow(policy.can_manage_users(current_user))
    all_agencies = db.session.scalars(
        policy.visible_agencies(current_user).order_by(Agency.name)
    ).all()
    form = UserFilterForm(formdata=request.args)
    form.agency.choices = agency_choices(all_agencies, any_label=_("Any"))
    query = policy.visible_users(current_user).order_by(User.display_name, User.id)
    # An unknown filter value is ignored rather than an error: this form only narrows a list.
    form.validate()
    if form.agency.data and not form.agency.errors:
        query = query.where(User.agency_id == int(form.agency.data))
    if form.role.data and not form.role.errors:
        query = query.where(
            User.id.in_(select(UserRole.user_id).where(UserRole.role == Role(form.role.data)))
        )
    if form.status.data == "active":
        query = query.where(User.active.is_(True))
    elif form.status.data == "inactive":
        query = query.where(User.active.is_(False))
    rows = db.session.scalars(query).unique().all()
    return render_template("admin/users.html", users=rows, filter_form=form)


@bp.route("/users/new", methods=["GET", "POST"])
def create_user():
    _allow(policy.can_manage_users(current_user))
    form = UserCreateForm()
    form.agency.choices = agency_choices(_usable_agencies())
    if form.is_submitted() and _validate_account_form(form):
        try:
            user = services.create_user(
                email=form.email.data,
                display_name=form.display_name.data,
                agency=_agency_by_id(form.agency.data),
                roles=form.roles.data,
                language=form.language.data,
                password=form.password.data,
                actor=_actor(),
            )
        except services.AdminError as error:
            _refused(form, error)
        else:
            db.session.commit()
            flash(
                _(
                    "Account for %(name)s created. Give them the initial password in person; "
                    "they set up two-factor sign-in at their first login.",
                    name=user.display_name,
                ),
                "success",
            )
            return redirect(url_for("admin.edit_user", user_id=user.id))
    status = INVALID if request.method == "POST" else 200
    return render_template("admin/user_create.html", form=form), status


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def edit_user(user_id: int):
    _allow(policy.can_manage_users(current_user))
    user = policy.get_visible_or_404(policy.visible_users(current_user), user_id)
    form = UserEditForm(
        data={
            "display_name": user.display_name,
            "agency": user.agency_id,
            "roles": sorted(role.value for role in user.roles),
            "language": user.language,
        }
    )
    form.agency.choices = agency_choices(_usable_agencies(user.agency))
    if form.is_submitted() and _validate_account_form(form):
        try:
            services.update_user(
                user,
                display_name=form.display_name.data,
                agency=_agency_by_id(form.agency.data),
                roles=form.roles.data,
                language=form.language.data,
                actor=_actor(),
            )
        except services.AdminError as error:
            _refused(form, error)
        else:
            db.session.commit()
            flash(_("Account of %(name)s saved.", name=user.display_name), "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    status = INVALID if request.method == "POST" else 200
    return (
        render_template("admin/user_edit.html", form=form, user=user, action_form=ActionForm()),
        status,
    )


def _user_for_action(user_id: int) -> User:
    _allow(policy.can_manage_users(current_user))
    user = policy.get_visible_or_404(policy.visible_users(current_user), user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return user


@bp.post("/users/<int:user_id>/deactivate")
def deactivate_user(user_id: int):
    user = _user_for_action(user_id)
    if _run(services.deactivate_user, user):
        flash(
            _(
                "Account of %(name)s deactivated. Their sessions have ended.",
                name=user.display_name,
            ),
            "success",
        )
    return redirect(url_for("admin.edit_user", user_id=user_id))


@bp.post("/users/<int:user_id>/reactivate")
def reactivate_user(user_id: int):
    user = _user_for_action(user_id)
    if _run(services.reactivate_user, user):
        flash(_("Account of %(name)s reactivated.", name=user.display_name), "success")
    return redirect(url_for("admin.edit_user", user_id=user_id))


@bp.post("/users/<int:user_id>/reset-2fa")
def reset_user_totp(user_id: int):
    user = _user_for_action(user_id)
    if _run(services.reset_user_totp, user):
        flash(
            _(
                "Two-factor sign-in of %(name)s reset. They set up a new authenticator at "
                "their next sign-in.",
                name=user.display_name,
            ),
            "success",
        )
    return redirect(url_for("admin.edit_user", user_id=user_id))
