"""Child path pages: a minor's guardian, best-interests determination, family tracing and
family assessment, and the case page's child-protection panel.

Every page loads the case through the access scope (404; an adult's case has no child path:
404 too), checks the write right for a change (403), audits the read of the records it
shows, and never lets a browser cache it.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from casework import child_protection as services
from casework.child_forms import (
    BestInterestsForm,
    FamilyAssessmentForm,
    GuardianForm,
    TracingForm,
    TracingResultForm,
)
from casework.child_protection import (
    BestInterestsDetermination,
    ChildProtectionError,
    FamilyAssessment,
    FamilyTracing,
    GuardianAppointment,
)
from core import audit
from core.db import db
from core.policy import can_record_child_path, can_view_child_path, case_or_404
from core.security import mark_sensitive

bp = Blueprint("child", __name__, url_prefix="/cases/<uuid:case_id>/child")

# The personal fields the child page shows, for the audit entry of a read.
PAGE_FIELDS = (
    "guardian.guardian_name",
    "guardian.notes",
    "best_interests.decided_by_name",
    "best_interests.reasoning",
    "tracing.notes",
    "family_assessment.notes",
)
# What the case page's panel shows of them.
PANEL_FIELDS = ("guardian.guardian_name", "best_interests.decision")


def _case(case_id: uuid.UUID, *, write: bool = False):
    """Load a minor's case the user reads in full (404) and, for a change, may edit (403)."""
    case = case_or_404(current_user, case_id)
    if case.is_erased:
        abort(redirect(url_for("casework.detail", case_id=case.id)))
    if not can_view_child_path(current_user, case):
        abort(404)
    if write and not can_record_child_path(current_user, case):
        abort(403)
    mark_sensitive()
    return case


@bp.app_template_global()
def child_protection_panel(case):
    """Return the child path of a minor's case for the case page's panel, or None.

    None for an adult's case and for a reader who may not see the records; a read is
    audited (the guardian's name is personal data).
    """
    if not case.is_minor or case.is_erased or not can_view_child_path(current_user, case):
        return None
    path = services.child_path(case)
    audit.record(
        "case.section_viewed", object_type="case", object_id=case.id, field_names=PANEL_FIELDS
    )
    return path


def _page(case, status: int = 200, **forms):
    audit.record(
        "case.section_viewed", object_type="case", object_id=case.id, field_names=PAGE_FIELDS
    )
    may_record = can_record_child_path(current_user, case)
    tracings = services.tracings_of(case)
    result_forms = {
        tracing.id: forms.get(f"result_{tracing.id}")
        or TracingResultForm(
            formdata=None,
            prefix=f"t-{tracing.id}",
            data={"result": tracing.result, "version": str(tracing.version)},
        )
        for tracing in tracings
    }
    page = render_template(
        "casework/child/index.html",
        case=case,
        section="child",
        is_minor=True,
        may_record=may_record,
        path=services.child_path(case),
        guardians=services.history_of(GuardianAppointment, case, GuardianAppointment.appointed_on),
        determinations=services.history_of(
            BestInterestsDetermination, case, BestInterestsDetermination.decided_on
        ),
        tracings=tracings,
        assessments=services.history_of(FamilyAssessment, case, FamilyAssessment.assessed_on),
        guardian_form=forms.get("guardian_form") or GuardianForm(formdata=None),
        bid_form=forms.get("bid_form") or BestInterestsForm(formdata=None),
        tracing_form=forms.get("tracing_form") or TracingForm(formdata=None),
        assessment_form=forms.get("assessment_form") or FamilyAssessmentForm(formdata=None),
        result_forms=result_forms,
    )
    return page, status


def _refused(form, error: ChildProtectionError) -> None:
    db.session.rollback()
    field = error.field if error.field and error.field in form else None
    if field is None:
        field = next(name for name in form._fields if name != "csrf_token")
    form[field].errors = [*form[field].errors, str(error)]


def _done(message: str, case_id: uuid.UUID):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("child.index", case_id=case_id))


@bp.get("")
def index(case_id: uuid.UUID):
    return _page(_case(case_id))


@bp.post("/guardian")
def record_guardian(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = GuardianForm()
    if form.validate():
        try:
            services.record_guardian(
                current_user,
                case,
                guardian_name=form.guardian_name.data,
                role=form.role.data,
                appointing_body=form.appointing_body.data,
                appointed_on=form.appointed_on.data,
                notes=form.guardian_notes.data,
            )
        except ChildProtectionError as error:
            _refused(form, error)
        else:
            return _done(_("Guardian appointment recorded."), case_id)
    return _page(case, 400, guardian_form=form)


@bp.post("/best-interests")
def record_best_interests(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = BestInterestsForm()
    if form.validate():
        try:
            services.record_best_interests(
                current_user,
                case,
                deciding_body=form.deciding_body.data,
                decided_by_name=form.decided_by_name.data,
                decided_on=form.decided_on.data,
                options=form.options.data,
                decision=form.decision.data,
                reasoning=form.reasoning.data,
                child_heard=form.child_heard.data == "yes",
                heard_how=form.heard_how.data or None,
            )
        except ChildProtectionError as error:
            _refused(form, error)
        else:
            return _done(_("Best-interests determination recorded."), case_id)
    return _page(case, 400, bid_form=form)


@bp.post("/tracing")
def start_tracing(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = TracingForm()
    if form.validate():
        try:
            services.start_family_tracing(
                current_user,
                case,
                traced_by=form.traced_by.data,
                started_on=form.started_on.data,
                result=form.result.data,
                notes=form.tracing_notes.data,
            )
        except ChildProtectionError as error:
            _refused(form, error)
        else:
            return _done(_("Family tracing recorded."), case_id)
    return _page(case, 400, tracing_form=form)


@bp.post("/tracing/<uuid:tracing_id>/result")
def update_tracing(case_id: uuid.UUID, tracing_id: uuid.UUID):
    case = _case(case_id, write=True)
    tracing = db.session.scalars(
        select(FamilyTracing).where(
            FamilyTracing.case_id == case.id, FamilyTracing.id == str(tracing_id)
        )
    ).first()
    if tracing is None:
        abort(404)
    form = TracingResultForm(prefix=f"t-{tracing.id}")
    if form.validate():
        try:
            services.update_tracing_result(
                current_user,
                tracing,
                result=form.result.data,
                notes=form.result_notes.data,
                expected_version=int(form.version.data),
            )
            db.session.commit()
        except ChildProtectionError as error:
            _refused(form, error)
            form.version.data = str(tracing.version)
            return _page(
                case, 409 if error.field == "version" else 400, **{f"result_{tracing.id}": form}
            )
        except StaleDataError:
            db.session.rollback()
            form.result.errors = [
                *form.result.errors,
                _("Someone else changed this tracing request meanwhile; check it and try again."),
            ]
            form.version.data = str(tracing.version)
            return _page(case, 409, **{f"result_{tracing.id}": form})
        flash(_("Family tracing result recorded."), "success")
        return redirect(url_for("child.index", case_id=case_id))
    return _page(case, 400, **{f"result_{tracing.id}": form})


@bp.post("/assessment")
def record_assessment(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = FamilyAssessmentForm()
    if form.validate():
        try:
            services.record_family_assessment(
                current_user,
                case,
                assessed_on=form.assessed_on.data,
                assessed_by=form.assessed_by.data,
                outcome=form.outcome.data,
                notes=form.assessment_notes.data,
            )
        except ChildProtectionError as error:
            _refused(form, error)
        else:
            return _done(_("Family assessment recorded."), case_id)
    return _page(case, 400, assessment_form=form)
