"""Return and reintegration pages: the return plan and its steps, the signing side's sign-off,
the reintegration plan with its measures, and follow-up visits.

The case's pages load the case through the access scope (404) and check the write right for
a change (403); the signing side loads the plan through ``return_plan_or_404``. Every read
of personal data is audited, and no page is cached by the browser.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError
from wtforms.fields.choices import SelectChoice

from casework import reintegration, returns
from casework.aftercare_forms import (
    AdviseAgainstForm,
    CancelReturnForm,
    FollowUpForm,
    MarkReadyForm,
    MeasureEditForm,
    MeasureForm,
    RecordReturnForm,
    ReintegrationPlanForm,
    ReturnPlanEditForm,
    ReturnPlanForm,
    ReturnRiskForm,
    SignOffForm,
    StayForm,
)
from casework.models import Case
from casework.reference import label_for
from casework.return_workflow import Action, InvalidTransition, State
from casework.services import EditConflict
from core import audit
from core.db import db
from core.navigation import register_navigation_count
from core.policy import (
    can_edit_aftercare,
    can_list_return_sign_offs,
    can_read_case_file,
    case_or_404,
    return_plan_actions,
    return_plan_or_404,
    visible_agencies,
    visible_return_plans_to_sign,
)
from core.security import mark_sensitive

bp = Blueprint("aftercare", __name__)
# Overdue is decided on one clock, ``reintegration.local_today`` (tests control it there).

# The personal fields each page shows, for the audit entry of the read.
PAGE_FIELDS = (
    "return_plan.risk_notes",
    "return_plan.sign_off_note",
    "return_plan.outcome_note",
    "return_transition.reason",
    "reintegration_plan.goals",
    "reintegration_measure.notes",
    "follow_up_visit.notes",
)
# What each step's flash message says once it is done.
DONE_MESSAGES = {
    Action.ASSESS_RISK: _l("Risk assessment recorded: the plan waits for the sign-off."),
    Action.SIGN_OFF: _l("Return signed off."),
    Action.ADVISE_AGAINST: _l("Recorded: return not advised."),
    Action.MARK_READY: _l("The return is ready."),
    Action.RECORD_RETURN: _l("Return recorded; follow-up visits scheduled."),
    Action.CANCEL: _l("Return cancelled."),
    Action.STAY: _l("Recorded: the person chose to stay."),
}
SIGNER_FIELDS = (
    "return_plan.risk_notes",
    "return_plan.sign_off_note",
    "return_transition.reason",
)


def _waiting_sign_offs(user):
    """Select the plans waiting for the user's side to sign them off (the navigation badge)."""
    from sqlalchemy import func

    query = visible_return_plans_to_sign(user).where(
        returns.ReturnPlan.state == State.RISK_ASSESSED.value
    )
    return query.with_only_columns(func.count(returns.ReturnPlan.id)).order_by(None)


register_navigation_count("aftercare.sign_offs", _waiting_sign_offs)


@bp.app_template_global()
def aftercare_summary(case: Case) -> dict[str, Any]:
    """Return what the case page's "Return and reintegration" panel shows (coded, no notes)."""
    plans = returns.return_plans_of(case)
    return {
        "plan": next((plan for plan in plans if plan.is_open), plans[0] if plans else None),
        "reintegration": reintegration.reintegration_plan_of(case),
        "follow_ups": reintegration.follow_up_summary(case),
        "today": reintegration.local_today(),
    }


def _case(case_id: uuid.UUID, *, write: bool = False) -> Case:
    """Load the case the user may read (404) and, for a change, may edit (403)."""
    case = case_or_404(current_user, case_id)
    if case.is_erased:
        abort(redirect(url_for("casework.detail", case_id=case.id)))
    if write and not can_edit_aftercare(current_user, case):
        abort(403)
    mark_sensitive()
    return case


def _agency_choices() -> list[SelectChoice]:
    agencies = sorted(db.session.scalars(visible_agencies(current_user)), key=lambda a: a.name)
    return [SelectChoice("", _l("Not recorded"))] + [
        SelectChoice(str(agency.id), agency.name) for agency in agencies
    ]


def _page(case: Case, status: int = 200, **forms: Any):
    """Render the case's return and reintegration page with blank forms except those given."""
    plans = returns.return_plans_of(case)
    plan = next((row for row in plans if row.is_open), None)
    plan_form = forms.get("plan_form") or ReturnPlanForm(formdata=None)
    plan_form.load_choices()
    measure_form = forms.get("measure_form") or MeasureForm(formdata=None)
    measure_form.provider.choices = _agency_choices()
    audit.record("aftercare.viewed", object_type="case", object_id=case.id, field_names=PAGE_FIELDS)
    actions = return_plan_actions(current_user, plan) if plan is not None else []
    page = render_template(
        "casework/aftercare/detail.html",
        case=case,
        plan=plan,
        past_plans=[row for row in plans if not row.is_open],
        steps=returns.transitions_of(plan) if plan is not None else [],
        actions=actions,
        problems={action: returns.return_problems(plan, action) for action in actions},
        reintegration_plan=reintegration.reintegration_plan_of(case),
        measures=reintegration.measures_of(case),
        visits=reintegration.visits_of(case),
        today=reintegration.local_today(),
        may_edit=can_edit_aftercare(current_user, case),
        plan_form=plan_form,
        risk_form=forms.get("risk_form") or ReturnRiskForm(formdata=None),
        ready_form=MarkReadyForm(formdata=None),
        returned_form=forms.get("returned_form") or RecordReturnForm(formdata=None),
        cancel_form=forms.get("cancel_form") or CancelReturnForm(formdata=None),
        stay_form=forms.get("stay_form") or StayForm(formdata=None),
        reintegration_form=forms.get("reintegration_form") or ReintegrationPlanForm(formdata=None),
        measure_form=measure_form,
        region_label=lambda code: label_for("region", code),
        country_label=lambda code: label_for("country", code),
        Action=Action,
    )
    return page, status


def _done(message: str, case_id: Any, anchor: str | None = None):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("aftercare.detail", case_id=case_id, _anchor=anchor))


@bp.get("/cases/<uuid:case_id>/aftercare")
def detail(case_id: uuid.UUID):
    return _page(_case(case_id))


# Return plan (the owner's side) ------------------------------------------------------------


@bp.post("/cases/<uuid:case_id>/aftercare/return")
def create_return(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = ReturnPlanForm()
    form.load_choices()
    if not form.validate():
        return _page(case, 400, plan_form=form)
    try:
        returns.start_return_plan(current_user, case, form.values())
    except returns.ReturnError as error:
        # A plan in progress hides the form: say it at the top of the page.
        flash(str(error), "error")
        return _page(case, 400, plan_form=form)
    return _done(_("Return plan started."), case_id, "return")


def _open_plan_or_404(case: Case) -> returns.ReturnPlan:
    plan = returns.open_return_plan(case)
    if plan is None:
        abort(404)
    return plan


@bp.route("/cases/<uuid:case_id>/aftercare/return/edit", methods=["GET", "POST"])
def edit_return(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    plan = _open_plan_or_404(case)
    saved = {name: getattr(plan, name) for name in returns.PLAN_FIELDS}
    if request.method == "GET":
        form = ReturnPlanEditForm(formdata=None, data={**saved, "version": str(plan.version)})
        form.load_choices(saved)
        return _edit_page(case, plan, form)
    form = ReturnPlanEditForm()
    form.load_choices(saved)
    if not form.validate():
        return _edit_page(case, plan, form, 400)
    try:
        returns.update_return_plan(
            current_user, plan, form.values(), expected_version=int(form.version.data)
        )
        db.session.commit()
    except returns.ReturnError as error:
        db.session.rollback()
        case = _case(case_id, write=True)
        form.destination_country.errors = [*form.destination_country.errors, str(error)]
        return _edit_page(case, _open_plan_or_404(case), form, 400)
    except (EditConflict, StaleDataError):
        db.session.rollback()
        case = _case(case_id, write=True)
        plan = _open_plan_or_404(case)
        form.version.data = str(plan.version)
        return _edit_page(case, plan, form, 409, conflict=True)
    flash(_("Return plan saved."), "success")
    return redirect(url_for("aftercare.detail", case_id=case_id, _anchor="return"))


def _edit_page(case, plan, form, status: int = 200, conflict: bool = False):
    audit.record(
        "return_plan.viewed", object_type="return_plan", object_id=plan.id, field_names=["plan"]
    )
    page = render_template(
        "casework/aftercare/return_edit.html", case=case, plan=plan, form=form, conflict=conflict
    )
    return page, status


def _step(case_id: uuid.UUID, action: Action, form_name: str, form, run) -> Any:
    """Take one owner step on the open plan: 404/403, validate (400), run, commit, redirect."""
    case = _case(case_id, write=True)
    plan = _open_plan_or_404(case)
    if action not in return_plan_actions(current_user, plan):
        abort(403)
    if not form.validate():
        return _page(case, 400, **{form_name: form})
    try:
        run(plan)
    except (returns.ReturnError, InvalidTransition) as error:
        db.session.rollback()
        flash(str(error), "error")
        return _page(_case(case_id, write=True), 400, **{form_name: form})
    return _done(str(DONE_MESSAGES[action]), case_id, "return")


@bp.post("/cases/<uuid:case_id>/aftercare/return/assess")
def assess_return(case_id: uuid.UUID):
    form = ReturnRiskForm()
    return _step(
        case_id,
        Action.ASSESS_RISK,
        "risk_form",
        form,
        lambda plan: returns.assess_return_risk(
            current_user, plan, form.risk_level.data, form.risk_notes.data
        ),
    )


@bp.post("/cases/<uuid:case_id>/aftercare/return/ready")
def ready_return(case_id: uuid.UUID):
    form = MarkReadyForm()
    return _step(
        case_id,
        Action.MARK_READY,
        "ready_form",
        form,
        lambda plan: returns.mark_return_ready(current_user, plan),
    )


@bp.post("/cases/<uuid:case_id>/aftercare/return/returned")
def record_return(case_id: uuid.UUID):
    form = RecordReturnForm()
    return _step(
        case_id,
        Action.RECORD_RETURN,
        "returned_form",
        form,
        lambda plan: returns.record_return(
            current_user, plan, form.returned_on.data, form.note.data
        ),
    )


@bp.post("/cases/<uuid:case_id>/aftercare/return/cancel")
def cancel_return(case_id: uuid.UUID):
    form = CancelReturnForm()
    return _step(
        case_id,
        Action.CANCEL,
        "cancel_form",
        form,
        lambda plan: returns.cancel_return(
            current_user, plan, form.cancel_reason.data, form.note.data
        ),
    )


@bp.post("/cases/<uuid:case_id>/aftercare/return/stay")
def stay_return(case_id: uuid.UUID):
    form = StayForm()
    return _step(
        case_id,
        Action.STAY,
        "stay_form",
        form,
        lambda plan: returns.record_choice_to_stay(current_user, plan, form.note.data),
    )


# The signing side --------------------------------------------------------------------------


@bp.get("/aftercare/returns")
def sign_offs():
    """List the return plans the user's side signs off: waiting first, then answered."""
    if not can_list_return_sign_offs(current_user):
        abort(404)
    mark_sensitive()
    plans = list(
        db.session.scalars(
            visible_return_plans_to_sign(current_user)
            # The list shows each plan's case reference: load the cases with the plans.
            .options(joinedload(returns.ReturnPlan.case))
            .order_by(returns.ReturnPlan.created_at.desc())
        )
    )
    waiting = [plan for plan in plans if plan.state == State.RISK_ASSESSED]
    answered = [plan for plan in plans if plan.state != State.RISK_ASSESSED]
    # The list shows references and codes only: nothing personal to audit.
    return render_template(
        "casework/aftercare/sign_offs.html",
        waiting=waiting,
        answered=answered,
        country_label=lambda code: label_for("country", code),
    )


def _signer_page(plan, status: int = 200, **forms: Any):
    audit.record(
        "return_plan.viewed",
        object_type="return_plan",
        object_id=plan.id,
        field_names=SIGNER_FIELDS,
    )
    page = render_template(
        "casework/aftercare/return_plan.html",
        plan=plan,
        case=plan.case,
        steps=returns.transitions_of(plan),
        actions=return_plan_actions(current_user, plan),
        owner=can_read_case_file(current_user, plan.case),
        sign_form=forms.get("sign_form") or SignOffForm(formdata=None),
        advise_form=forms.get("advise_form") or AdviseAgainstForm(formdata=None),
        high_risk=plan.risk_level == "high",
        country_label=lambda code: label_for("country", code),
        region_label=lambda code: label_for("region", code),
        Action=Action,
    )
    return page, status


@bp.get("/aftercare/returns/<uuid:plan_id>")
def return_plan(plan_id: uuid.UUID):
    plan = return_plan_or_404(current_user, plan_id)
    mark_sensitive()
    return _signer_page(plan)


def _sign_step(plan_id: uuid.UUID, action: Action, form_name: str, form, run):
    plan = return_plan_or_404(current_user, plan_id)
    mark_sensitive()
    if action not in return_plan_actions(current_user, plan):
        abort(403)
    if not form.validate():
        return _signer_page(plan, 400, **{form_name: form})
    try:
        run(plan)
    except (returns.ReturnError, InvalidTransition) as error:
        db.session.rollback()
        flash(str(error), "error")
        return _signer_page(return_plan_or_404(current_user, plan_id), 400, **{form_name: form})
    db.session.commit()
    flash(str(DONE_MESSAGES[action]), "success")
    return redirect(url_for("aftercare.return_plan", plan_id=plan_id))


@bp.post("/aftercare/returns/<uuid:plan_id>/sign-off")
def sign_off(plan_id: uuid.UUID):
    form = SignOffForm()
    return _sign_step(
        plan_id,
        Action.SIGN_OFF,
        "sign_form",
        form,
        lambda plan: returns.sign_off_return(current_user, plan, form.note.data),
    )


@bp.post("/aftercare/returns/<uuid:plan_id>/not-advised")
def advise_against(plan_id: uuid.UUID):
    form = AdviseAgainstForm()
    return _sign_step(
        plan_id,
        Action.ADVISE_AGAINST,
        "advise_form",
        form,
        lambda plan: returns.advise_against_return(current_user, plan, form.reason.data),
    )


# Reintegration -----------------------------------------------------------------------------


@bp.post("/cases/<uuid:case_id>/aftercare/reintegration")
def start_reintegration(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = ReintegrationPlanForm()
    if not form.validate():
        return _page(case, 400, reintegration_form=form)
    try:
        reintegration.start_reintegration_plan(
            current_user, case, form.started_on.data, form.goals.data
        )
    except reintegration.ReintegrationError as error:
        # The form is not shown once a plan exists: say it at the top of the page.
        flash(str(error), "error")
        return _page(case, 400, reintegration_form=form)
    return _done(
        _("Reintegration plan started; follow-up visits scheduled."), case_id, "reintegration"
    )


@bp.post("/cases/<uuid:case_id>/aftercare/measures")
def add_measure(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    plan = reintegration.reintegration_plan_of(case)
    if plan is None:
        abort(404)
    form = MeasureForm()
    form.provider.choices = _agency_choices()
    if not form.validate():
        return _page(case, 400, measure_form=form)
    try:
        reintegration.add_measure(current_user, plan, form.values())
    except reintegration.ReintegrationError as error:
        form.amount.errors = [*form.amount.errors, str(error)]
        return _page(case, 400, measure_form=form)
    return _done(_("Measure added."), case_id, "measures")


def _child_or_404(model: type, case: Case, object_id: uuid.UUID):
    found = db.session.scalars(
        select(model).where(model.case_id == case.id, model.id == str(object_id))
    ).first()
    if found is None:
        abort(404)
    return found


@bp.route(
    "/cases/<uuid:case_id>/aftercare/measures/<uuid:measure_id>/edit", methods=["GET", "POST"]
)
def edit_measure(case_id: uuid.UUID, measure_id: uuid.UUID):
    case = _case(case_id, write=True)
    measure = _child_or_404(reintegration.ReintegrationMeasure, case, measure_id)
    if request.method == "GET":
        saved = reintegration.measure_values(measure)
        form = MeasureEditForm(
            formdata=None,
            data={
                **saved,
                "provider": str(measure.provider_agency_id or ""),
                "version": str(measure.version),
            },
        )
        form.provider.choices = _agency_choices()
        return _measure_page(case, measure, form)
    form = MeasureEditForm()
    form.provider.choices = _agency_choices()
    if not form.validate():
        return _measure_page(case, measure, form, 400)
    try:
        reintegration.update_measure(
            current_user, measure, form.values(), expected_version=int(form.version.data)
        )
        db.session.commit()
    except reintegration.ReintegrationError as error:
        db.session.rollback()
        form.amount.errors = [*form.amount.errors, str(error)]
        case = _case(case_id, write=True)
        measure = _child_or_404(reintegration.ReintegrationMeasure, case, measure_id)
        return _measure_page(case, measure, form, 400)
    except (EditConflict, StaleDataError):
        db.session.rollback()
        case = _case(case_id, write=True)
        measure = _child_or_404(reintegration.ReintegrationMeasure, case, measure_id)
        form.version.data = str(measure.version)
        return _measure_page(case, measure, form, 409, conflict=True)
    flash(_("Measure saved."), "success")
    return redirect(url_for("aftercare.detail", case_id=case_id, _anchor="measures"))


def _measure_page(case, measure, form, status: int = 200, conflict: bool = False):
    audit.record(
        "measure.viewed",
        object_type="reintegration_measure",
        object_id=measure.id,
        field_names=["notes"],
    )
    page = render_template(
        "casework/aftercare/measure_edit.html",
        case=case,
        measure=measure,
        form=form,
        conflict=conflict,
    )
    return page, status


@bp.route("/cases/<uuid:case_id>/aftercare/visits/<uuid:visit_id>", methods=["GET", "POST"])
def visit(case_id: uuid.UUID, visit_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    row = _child_or_404(reintegration.FollowUpVisit, case, visit_id)
    may_edit = can_edit_aftercare(current_user, case)
    if request.method == "GET":
        data = {
            "done_on": row.done_on or reintegration.local_today(),
            "method": row.method,
            "outcome": row.outcome or "",
            "retrafficked": row.retrafficked,
            "notes": row.notes,
            "version": str(row.version),
        }
        return _visit_page(case, row, FollowUpForm(formdata=None, data=data), may_edit=may_edit)
    form = FollowUpForm()
    if not form.validate():
        return _visit_page(case, row, form, 400, may_edit=may_edit)
    try:
        reintegration.record_follow_up(
            current_user,
            row,
            done_on=form.done_on.data,
            method=form.method.data,
            outcome=form.outcome.data,
            retrafficked=form.retrafficked.data,
            notes=form.notes.data,
            expected_version=int(form.version.data),
        )
        db.session.commit()
    except (EditConflict, StaleDataError):
        db.session.rollback()
        case = _case(case_id, write=True)
        row = _child_or_404(reintegration.FollowUpVisit, case, visit_id)
        form.version.data = str(row.version)
        return _visit_page(case, row, form, 409, may_edit=may_edit, conflict=True)
    flash(_("Follow-up visit recorded."), "success")
    return redirect(url_for("aftercare.detail", case_id=case_id, _anchor="follow-ups"))


def _visit_page(case, row, form, status: int = 200, *, may_edit: bool, conflict: bool = False):
    audit.record(
        "follow_up.viewed", object_type="follow_up_visit", object_id=row.id, field_names=["notes"]
    )
    page = render_template(
        "casework/aftercare/visit.html",
        case=case,
        visit=row,
        form=form,
        may_edit=may_edit,
        conflict=conflict,
        today=reintegration.local_today(),
    )
    return page, status
