"""Service directory pages: search providers, browse agencies, keep services and capacity.

Open to the people who refer (caseworkers, supervisors, the national coordinator) and the
admins who keep it; everyone else gets 404. Supervisors keep their own agency's services
and report its free places; admins keep every agency's services. Refusals of pages a user
can see are 403 and, like every refused attempt, audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func

from casework.reference import collation_key, labels_of
from core import audit, policy
from core.db import db, utcnow
from core.forms import HavenForm
from core.models import Agency, User
from referrals import directory_services as services
from referrals.directory import (
    AgencyService,
    language_labels,
    search_services,
    visible_agency_services,
)
from referrals.directory_forms import (
    AgencyServiceEditForm,
    AgencyServiceForm,
    CapacityForm,
    DirectoryFilterForm,
)

bp = Blueprint("directory", __name__, url_prefix="/directory")

INVALID = 400
CONFLICT = 409


@bp.before_request
def require_directory_user():
    """Send anonymous visitors to login; hide the area from those who do not refer."""
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    if not policy.can_view_directory(current_user):
        audit.record_denied("directory.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)
    return None


@bp.app_template_filter("time_ago")
def time_ago(moment: datetime | None) -> str:
    """Format how long ago a UTC moment was, in the reader's language ("3 days ago")."""
    if moment is None:
        return ""
    # A moment slightly ahead (another instance's clock) still reads as past, not "in 0 s".
    return format_timedelta(min(moment - utcnow(), -timedelta(seconds=1)), add_direction=True)


def _actor() -> User:
    return current_user._get_current_object()


def _labels() -> dict:
    """Labels the directory templates show next to codes, in the reader's language."""
    return {
        "region_labels": labels_of("region"),
        "language_labels": language_labels(),
    }


def _service_or_404(service_id: int) -> AgencyService:
    return policy.get_visible_or_404(visible_agency_services(current_user), service_id)


def _agency_or_404(agency_id: int) -> Agency:
    return policy.get_visible_or_404(policy.visible_agencies(current_user), agency_id)


def _forbid(action: str, object_type: str, object_id: int) -> None:
    """Refuse an action on something the user may see (403), audited."""
    audit.record_denied(action, object_type=object_type, object_id=object_id)
    abort(403)


def _require_manage(agency: Agency) -> None:
    if not policy.can_manage_agency_services(current_user, agency):
        _forbid("directory.manage_denied", "agency", agency.id)


def _require_capacity(service: AgencyService) -> None:
    if not policy.can_update_capacity(current_user, service):
        _forbid("directory.capacity_denied", "agency_service", service.id)


def _refused(form, error: services.DirectoryError) -> None:
    """Put a service's refusal on the form field it concerns (or flash it)."""
    db.session.rollback()
    if error.field and error.field in form:
        form[error.field].errors = [*form[error.field].errors, str(error)]
    else:
        flash(str(error), "error")


# Search -------------------------------------------------------------------------------------


@bp.get("/")
def index():
    form = DirectoryFilterForm(formdata=request.args)
    form.load_choices()
    # An unknown filter value is shown as an error and ignored: this form only narrows a list.
    form.validate()

    def chosen(field):
        return field.data if field.data and not field.errors else None

    results = search_services(
        chosen(form.service_type),
        region=chosen(form.region),
        language=chosen(form.language),
        accepts=chosen(form.accepts),
        with_capacity=bool(form.with_capacity.data),
    )
    own = current_user.agency
    return render_template(
        "referrals/directory/index.html",
        form=form,
        results=results,
        searched=bool(request.args),
        manage_own=policy.can_manage_agency_services(current_user, own),
        own_agency=own,
        **_labels(),
    )


@bp.get("/agencies")
def agencies():
    counts = dict(
        db.session.execute(
            visible_agency_services(current_user)
            .with_only_columns(AgencyService.agency_id, func.count(AgencyService.id))
            .where(AgencyService.active.is_(True))
            .group_by(AgencyService.agency_id)
        ).all()
    )
    rows = sorted(
        db.session.scalars(policy.visible_agencies(current_user)),
        key=lambda agency: collation_key(agency.name),
    )
    return render_template("referrals/directory/agencies.html", agencies=rows, counts=counts)


@bp.get("/agencies/<int:agency_id>")
def agency(agency_id: int):
    agency = _agency_or_404(agency_id)
    rows = db.session.scalars(
        visible_agency_services(current_user).where(AgencyService.agency_id == agency.id)
    ).all()
    rows = sorted(rows, key=lambda service: (not service.active, service.service_type_label))
    return render_template(
        "referrals/directory/agency.html",
        agency=agency,
        services=rows,
        may_manage=policy.can_manage_agency_services(current_user, agency),
        may_report={
            service.id: policy.can_update_capacity(current_user, service) for service in rows
        },
        action_form=HavenForm(),
        **_labels(),
    )


# Keeping services ---------------------------------------------------------------------------


@bp.route("/agencies/<int:agency_id>/services/new", methods=["GET", "POST"])
def create(agency_id: int):
    agency = _agency_or_404(agency_id)
    _require_manage(agency)
    form = AgencyServiceForm()
    form.load_choices()
    if form.validate_on_submit():
        try:
            service = services.create_service(agency, **form.service_data(), actor=_actor())
        except services.DirectoryError as error:
            _refused(form, error)
        else:
            label = service.service_type_label
            db.session.commit()
            flash(_("%(service)s added to the directory.", service=label), "success")
            return redirect(url_for("directory.agency", agency_id=agency_id))
    status = INVALID if request.method == "POST" else 200
    return (
        render_template(
            "referrals/directory/service_form.html", form=form, agency=agency, service=None
        ),
        status,
    )


@bp.route("/services/<int:service_id>/edit", methods=["GET", "POST"])
def edit(service_id: int):
    service = _service_or_404(service_id)
    _require_manage(service.agency)
    agency_id = service.agency_id
    if request.method == "GET":
        form = AgencyServiceEditForm(data=AgencyServiceForm.data_of(service))
        form.load_choices(service)
        return render_template(
            "referrals/directory/service_form.html",
            form=form,
            agency=service.agency,
            service=service,
        )
    form = AgencyServiceEditForm()
    form.load_choices(service)
    conflict = False
    if form.validate():
        try:
            services.update_service(
                service,
                **form.service_data(),
                expected_version=int(form.version.data),
                actor=_actor(),
            )
            label = service.service_type_label
            db.session.commit()
        except services.DirectoryError as error:
            _refused(form, error)
        except services.EditConflict:
            db.session.rollback()
            conflict = True
        else:
            flash(_("%(service)s saved.", service=label), "success")
            return redirect(url_for("directory.agency", agency_id=agency_id))
    service = _service_or_404(service_id)
    if conflict:
        # Submitting the form again saves what the user typed over the newer version.
        form.version.data = str(service.version)
    return (
        render_template(
            "referrals/directory/service_form.html",
            form=form,
            agency=service.agency,
            service=service,
            conflict=conflict,
        ),
        CONFLICT if conflict else INVALID,
    )


def _service_for_action(service_id: int) -> AgencyService:
    service = _service_or_404(service_id)
    _require_manage(service.agency)
    if not HavenForm().validate_on_submit():
        abort(400)
    return service


@bp.post("/services/<int:service_id>/deactivate")
def deactivate(service_id: int):
    service = _service_for_action(service_id)
    label, agency_id = service.service_type_label, service.agency_id
    services.deactivate_service(service, actor=_actor())
    db.session.commit()
    flash(_("%(service)s taken out of the directory.", service=label), "success")
    return redirect(url_for("directory.agency", agency_id=agency_id))


@bp.post("/services/<int:service_id>/reactivate")
def reactivate(service_id: int):
    service = _service_for_action(service_id)
    label, agency_id = service.service_type_label, service.agency_id
    services.reactivate_service(service, actor=_actor())
    db.session.commit()
    flash(_("%(service)s is back in the directory.", service=label), "success")
    return redirect(url_for("directory.agency", agency_id=agency_id))


# Capacity -----------------------------------------------------------------------------------


@bp.route("/services/<int:service_id>/capacity", methods=["GET", "POST"])
def update_capacity(service_id: int):
    service = _service_or_404(service_id)
    _require_capacity(service)
    agency_id = service.agency_id
    if request.method == "GET":
        form = CapacityForm(
            data={"free_places": service.free_places, "version": str(service.version)}
        )
        return render_template("referrals/directory/capacity.html", form=form, service=service)
    form = CapacityForm()
    conflict = False
    if form.validate():
        try:
            services.update_capacity(
                service,
                free_places=form.free_places.data,
                expected_version=int(form.version.data),
                actor=_actor(),
            )
            label = service.service_type_label
            db.session.commit()
        except services.DirectoryError as error:
            _refused(form, error)
        except services.EditConflict:
            db.session.rollback()
            conflict = True
        else:
            flash(_("Free places of %(service)s reported.", service=label), "success")
            return redirect(url_for("directory.agency", agency_id=agency_id))
    service = _service_or_404(service_id)
    if conflict:
        # The typed figure stays in the form; saving it again replaces the newer report.
        form.version.data = str(service.version)
    return (
        render_template(
            "referrals/directory/capacity.html", form=form, service=service, conflict=conflict
        ),
        CONFLICT if conflict else INVALID,
    )
