"""Supervisor pages: assign, closure, transfer requests, restriction, break-the-glass reads,
erasure requests, and the administrators' erasure confirmations at /admin/erasure.

Supervision pages show no personal data (reference, status, people, coded reasons), so a
supervisor reaches them for restricted cases too; notes are shown only to users who may
read the case, and those reads are audited. Each action is one small POST view.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from casework import supervision as services
from casework.models import Case
from casework.supervision import (
    BestInterestsRequired,
    ClosureRequest,
    ErasureRequest,
    ErasureStatus,
    SupervisionError,
    TransferRequest,
)
from casework.supervision_forms import (
    ActionForm,
    BreakGlassForm,
    CaseAssignForm,
    CaseRestrictForm,
    ClosureRejectForm,
    ClosureRequestForm,
    ErasureRequestForm,
    TransferDeclineForm,
    TransferRejectForm,
    TransferRequestForm,
    select_choices,
)
from core import audit, policy
from core.db import db
from core.models import Agency, User
from core.security import mark_sensitive

bp = Blueprint("supervision", __name__)


def _actor() -> User:
    return current_user._get_current_object()


def _supervised_case_or_404(case_id: uuid.UUID) -> Case:
    """Load a case through the supervision scope, auditing a refused existing case."""
    try:
        return policy.get_visible_or_404(policy.supervised_cases(current_user), case_id)
    except NotFound:
        if db.session.get(Case, str(case_id)) is not None:
            audit.record_denied("case.view_denied", object_type="case", object_id=case_id)
        raise


def _supervisor_case(case_id: uuid.UUID) -> Case:
    case = _supervised_case_or_404(case_id)
    if not policy.can_supervise_case(current_user, case):
        abort(403)
    return case


def _child_or_404(model: type, case: Case, object_id: uuid.UUID):
    found = db.session.scalars(
        select(model).where(model.id == str(object_id), model.case_id == case.id)
    ).first()
    if found is None:
        abort(404)
    return found


def _refused(error: SupervisionError) -> None:
    db.session.rollback()
    flash(str(error), "error")


def _back(case_id) -> object:
    return redirect(url_for("supervision.detail", case_id=case_id))


@bp.app_context_processor
def supervision_context() -> dict:
    """Give the case page the supervision links the current user may follow."""
    return {"supervision_actions": supervision_actions}


def supervision_actions(case: Case) -> list[tuple[str, str]]:
    """Return (label, url) of the supervision pages the current user may open for the case."""
    actions = []
    if policy.can_supervise_case(current_user, case):
        actions.append((_("Supervision"), url_for("supervision.detail", case_id=case.id)))
    if policy.can_edit_case(current_user, case):
        actions.append(
            (_("Request closure"), url_for("supervision.request_closure", case_id=case.id))
        )
        actions.append(
            (_("Request transfer"), url_for("supervision.request_transfer", case_id=case.id))
        )
    return actions


# The supervision page ---------------------------------------------------------------------


@bp.get("/cases/<uuid:case_id>/supervision")
def detail(case_id: uuid.UUID):
    case = _supervisor_case(case_id)
    mark_sensitive()
    return _render_detail(case)


def _render_detail(case: Case, status: int = 200, **forms):
    may_read = policy.can_view_case(current_user, case) and not case.is_erased
    closure = services.pending_closure(case)
    transfer = services.pending_transfer(case)
    awaiting = services.awaiting_transfer(case)
    declined = services.last_declined_transfer(case)
    restriction = services.restriction_of(case)
    assign_form = forms.get("assign_form") or CaseAssignForm(
        data={"assignee": case.assigned_user_id}
    )
    assign_form.assignee.choices = _assignee_choices(case)
    read = []
    if may_read and closure is not None and closure.note:
        read.append("closure_request.note")
    if may_read and transfer is not None:
        read.append("transfer_request.reason")
    if may_read and declined is not None:
        read.append("transfer_request.decline_reason")
    if read:
        audit.record("case.viewed", object_type="case", object_id=case.id, field_names=read)
    page = render_template(
        "casework/supervision/detail.html",
        case=case,
        may_read=may_read,
        closure=closure,
        transfer=transfer,
        awaiting=awaiting,
        declined=declined,
        restriction=restriction,
        erasure=services.pending_erasure(case),
        may_break_glass=restriction is not None
        and not may_read
        and policy.can_break_glass(current_user, case),
        assign_form=assign_form,
        closure_reject_form=forms.get("closure_reject_form") or ClosureRejectForm(),
        transfer_reject_form=forms.get("transfer_reject_form") or TransferRejectForm(),
        restrict_form=forms.get("restrict_form") or CaseRestrictForm(),
        action_form=ActionForm(),
    )
    return page, status


# Assignment ------------------------------------------------------------------------------


def _assignee_choices(case: Case) -> list:
    return select_choices((user.id, user.display_name) for user in services.assignable_users(case))


@bp.post("/cases/<uuid:case_id>/assign")
def assign(case_id: uuid.UUID):
    case = _supervisor_case(case_id)
    if not policy.can_assign_case(current_user, case):
        abort(403)
    form = CaseAssignForm()
    form.assignee.choices = _assignee_choices(case)
    if not form.validate():
        return _render_detail(case, 400, assign_form=form)
    assignee = db.session.get(User, form.assignee.data)
    try:
        services.assign_case(case, assignee, _actor())
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Case assigned to %(name)s.", name=assignee.display_name), "success")
    return _back(case_id)


# Closure ---------------------------------------------------------------------------------


@bp.route("/cases/<uuid:case_id>/closure", methods=["GET", "POST"])
def request_closure(case_id: uuid.UUID):
    case = policy.case_or_404(current_user, case_id)
    if not policy.can_edit_case(current_user, case):
        abort(403)
    mark_sensitive()
    form = ClosureRequestForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        page = render_template("casework/supervision/request_closure.html", case=case, form=form)
        return page, status
    try:
        services.request_closure(case, _actor(), form.reason_code.data, form.note.data)
    except BestInterestsRequired as error:
        # A child's case: shown on the form, with what was typed (the child path).
        db.session.rollback()
        form.reason_code.errors.append(str(error))
        page = render_template("casework/supervision/request_closure.html", case=case, form=form)
        return page, 400
    except SupervisionError as error:
        _refused(error)
        return redirect(url_for("casework.detail", case_id=case_id))
    db.session.commit()
    flash(_("Closure requested; a supervisor will decide."), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


@bp.post("/cases/<uuid:case_id>/closure/<uuid:request_id>/approve")
def approve_closure(case_id: uuid.UUID, request_id: uuid.UUID):
    case = _supervisor_case(case_id)
    closure = _child_or_404(ClosureRequest, case, request_id)
    if not ActionForm().validate():
        abort(400)
    try:
        services.approve_closure(closure, _actor())
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("The case is closed."), "success")
    return _back(case_id)


@bp.post("/cases/<uuid:case_id>/closure/<uuid:request_id>/reject")
def reject_closure(case_id: uuid.UUID, request_id: uuid.UUID):
    case = _supervisor_case(case_id)
    closure = _child_or_404(ClosureRequest, case, request_id)
    form = ClosureRejectForm()
    if not form.validate():
        return _render_detail(case, 400, closure_reject_form=form)
    try:
        services.reject_closure(closure, _actor(), form.reason.data)
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Closure request rejected."), "success")
    return _back(case_id)


# Transfer --------------------------------------------------------------------------------


def _transfer_choices(case: Case) -> list:
    agencies = db.session.scalars(
        policy.visible_agencies(current_user)
        .where(Agency.id != case.owner_agency_id, Agency.active.is_(True))
        .order_by(Agency.name)
    )
    return select_choices((agency.id, agency.name) for agency in agencies)


@bp.route("/cases/<uuid:case_id>/transfer", methods=["GET", "POST"])
def request_transfer(case_id: uuid.UUID):
    case = policy.case_or_404(current_user, case_id)
    if not policy.can_edit_case(current_user, case):
        abort(403)
    mark_sensitive()
    form = TransferRequestForm()
    form.to_agency.choices = _transfer_choices(case)
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        page = render_template("casework/supervision/request_transfer.html", case=case, form=form)
        return page, status
    to_agency = db.session.get(Agency, form.to_agency.data)
    try:
        services.request_transfer(case, _actor(), to_agency, form.reason.data)
    except BestInterestsRequired as error:
        # A child's case: shown on the form, with what was typed (the child path).
        db.session.rollback()
        form.to_agency.errors.append(str(error))
        page = render_template("casework/supervision/request_transfer.html", case=case, form=form)
        return page, 400
    except SupervisionError as error:
        _refused(error)
        return redirect(url_for("casework.detail", case_id=case_id))
    db.session.commit()
    flash(_("Transfer requested; a supervisor will decide."), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


@bp.post("/cases/<uuid:case_id>/transfer/<uuid:request_id>/approve")
def approve_transfer(case_id: uuid.UUID, request_id: uuid.UUID):
    case = _supervisor_case(case_id)
    transfer = _child_or_404(TransferRequest, case, request_id)
    if not ActionForm().validate():
        abort(400)
    try:
        services.approve_transfer(transfer, _actor())
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Transfer approved; it completes when the receiving agency accepts."), "success")
    return _back(case_id)


@bp.post("/cases/<uuid:case_id>/transfer/<uuid:request_id>/reject")
def reject_transfer(case_id: uuid.UUID, request_id: uuid.UUID):
    case = _supervisor_case(case_id)
    transfer = _child_or_404(TransferRequest, case, request_id)
    form = TransferRejectForm()
    if not form.validate():
        return _render_detail(case, 400, transfer_reject_form=form)
    try:
        services.reject_transfer(transfer, _actor(), form.note.data)
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Transfer request rejected."), "success")
    return _back(case_id)


@bp.post("/cases/<uuid:case_id>/transfer/<uuid:request_id>/cancel")
def cancel_transfer(case_id: uuid.UUID, request_id: uuid.UUID):
    case = _supervisor_case(case_id)
    transfer = _child_or_404(TransferRequest, case, request_id)
    if not ActionForm().validate():
        abort(400)
    try:
        services.cancel_transfer(transfer, _actor())
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Transfer request cancelled."), "success")
    return _back(case_id)


# The receiving side of a transfer --------------------------------------------------------


def _incoming_or_404(request_id: uuid.UUID) -> TransferRequest:
    """Load a transfer waiting for the user's agency, auditing a refused existing one."""
    try:
        transfer = policy.get_visible_or_404(
            policy.visible_incoming_transfers(current_user), request_id
        )
    except NotFound:
        if db.session.get(TransferRequest, str(request_id)) is not None:
            audit.record_denied(
                "transfer.open_denied", object_type="transfer_request", object_id=request_id
            )
        raise
    if not policy.can_accept_transfer(current_user, transfer):
        abort(403)
    return transfer


@bp.get("/transfers/incoming")
def incoming_transfers():
    return _render_incoming()


def _render_incoming(status: int = 200, forms: dict | None = None):
    """List the transfers waiting for the agency: reference, sender and reason only.

    Nothing else of the case is shown before the agency accepts it; reading the reason
    (encrypted free text written for the receiver) is audited.
    """
    if not policy.can_oversee_requests(current_user):
        abort(404)
    mark_sensitive()
    transfers = db.session.scalars(
        policy.visible_incoming_transfers(current_user).order_by(TransferRequest.decided_at)
    ).all()
    for transfer in transfers:
        audit.record(
            "transfer.viewed",
            object_type="case",
            object_id=transfer.case_id,
            field_names=["transfer_request.reason"],
        )
    forms = forms or {}
    page = render_template(
        "casework/supervision/incoming_transfers.html",
        transfers=transfers,
        decline_forms={t.id: forms.get(t.id) or TransferDeclineForm() for t in transfers},
        action_form=ActionForm(),
    )
    return page, status


@bp.post("/transfers/<uuid:request_id>/accept")
def accept_transfer(request_id: uuid.UUID):
    transfer = _incoming_or_404(request_id)
    if not ActionForm().validate():
        abort(400)
    case_id, reference = transfer.case_id, transfer.case.reference
    try:
        services.accept_transfer(transfer, _actor())
    except SupervisionError as error:
        _refused(error)
        return redirect(url_for("supervision.incoming_transfers"))
    db.session.commit()
    flash(
        _("Case %(reference)s now belongs to your agency; assign it.", reference=reference),
        "success",
    )
    return redirect(url_for("supervision.detail", case_id=case_id))


@bp.post("/transfers/<uuid:request_id>/decline")
def decline_transfer(request_id: uuid.UUID):
    transfer = _incoming_or_404(request_id)
    form = TransferDeclineForm()
    if not form.validate():
        return _render_incoming(400, {transfer.id: form})
    reference = transfer.case.reference
    try:
        services.decline_transfer(transfer, _actor(), form.reason.data)
    except SupervisionError as error:
        _refused(error)
        return redirect(url_for("supervision.incoming_transfers"))
    db.session.commit()
    flash(
        _("Transfer of %(reference)s declined; the sender sees your reason.", reference=reference),
        "success",
    )
    return redirect(url_for("supervision.incoming_transfers"))


# The supervisors' overview ----------------------------------------------------------------


@bp.get("/supervision")
def index():
    """Show what waits for the agency's supervisors: requests, reads, incoming transfers."""
    if not policy.can_oversee_requests(current_user):
        abort(404)
    incoming = db.session.scalars(policy.visible_incoming_transfers(current_user)).all()
    return render_template(
        "casework/supervision/index.html",
        incoming_count=len(incoming),
        **services.agency_overview(current_user.agency_id),
    )


# Restriction and break-the-glass ---------------------------------------------------------


@bp.post("/cases/<uuid:case_id>/restrict")
def restrict(case_id: uuid.UUID):
    case = _supervisor_case(case_id)
    form = CaseRestrictForm()
    if not form.validate():
        return _render_detail(case, 400, restrict_form=form)
    try:
        services.restrict_case(case, _actor(), form.reason.data)
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Access to the case is restricted."), "success")
    return _back(case_id)


@bp.post("/cases/<uuid:case_id>/unrestrict")
def unrestrict(case_id: uuid.UUID):
    case = _supervisor_case(case_id)
    if not ActionForm().validate():
        abort(400)
    try:
        services.lift_restriction(case, _actor())
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("The restriction is lifted."), "success")
    return _back(case_id)


@bp.route("/cases/<uuid:case_id>/break-glass", methods=["GET", "POST"])
def break_glass(case_id: uuid.UUID):
    case = _supervised_case_or_404(case_id)
    if not policy.can_break_glass(current_user, case):
        abort(403)
    if policy.can_view_case(current_user, case):
        # Not restricted, or already granted: nothing to break.
        return redirect(url_for("casework.detail", case_id=case_id))
    form = BreakGlassForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        page = render_template("casework/supervision/break_glass.html", case=case, form=form)
        return page, status
    try:
        services.break_glass(case, _actor(), form.reason.data)
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Break-the-glass read opened for one hour; it is audited."), "warning")
    return redirect(url_for("casework.detail", case_id=case_id))


# Erasure ---------------------------------------------------------------------------------


@bp.route("/cases/<uuid:case_id>/erasure", methods=["GET", "POST"])
def request_erasure(case_id: uuid.UUID):
    case = _supervisor_case(case_id)
    if case.is_erased:
        abort(404)
    form = ErasureRequestForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        page = render_template("casework/supervision/request_erasure.html", case=case, form=form)
        return page, status
    try:
        services.request_erasure(case, _actor(), form.reason_code.data, form.note.data)
    except SupervisionError as error:
        _refused(error)
        return _back(case_id)
    db.session.commit()
    flash(_("Erasure requested; an administrator will confirm it."), "success")
    return _back(case_id)


def _admin_only() -> None:
    if not policy.can_confirm_erasure(current_user):
        audit.record_denied("admin.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


@bp.get("/admin/erasure")
def erasure_requests():
    _admin_only()
    # Reference, agency, requester and date only: administrators never read case data.
    pending = db.session.scalars(
        select(ErasureRequest)
        .where(ErasureRequest.status == ErasureStatus.REQUESTED.value)
        .order_by(ErasureRequest.requested_at)
    ).all()
    return render_template(
        "casework/supervision/erasure_requests.html", pending=pending, action_form=ActionForm()
    )


def _pending_erasure_or_404(request_id: uuid.UUID) -> ErasureRequest:
    erasure = db.session.get(ErasureRequest, str(request_id))
    if erasure is None or erasure.status != ErasureStatus.REQUESTED.value:
        abort(404)
    return erasure


@bp.post("/admin/erasure/<uuid:request_id>/confirm")
def confirm_erasure(request_id: uuid.UUID):
    _admin_only()
    erasure = _pending_erasure_or_404(request_id)
    if not ActionForm().validate():
        abort(400)
    reference = erasure.case.reference
    services.confirm_erasure(erasure, _actor())
    db.session.commit()
    flash(_("Case %(reference)s erased.", reference=reference), "success")
    return redirect(url_for("supervision.erasure_requests"))


@bp.post("/admin/erasure/<uuid:request_id>/reject")
def reject_erasure(request_id: uuid.UUID):
    _admin_only()
    erasure = _pending_erasure_or_404(request_id)
    if not ActionForm().validate():
        abort(400)
    reference = erasure.case.reference
    services.reject_erasure(erasure, _actor())
    db.session.commit()
    flash(_("Erasure of %(reference)s rejected.", reference=reference), "success")
    return redirect(url_for("supervision.erasure_requests"))
