"""The national coordinator's pages: cases waiting for the status decision, and the decision.

The coordinator reads a case only through its status-decision referral, and only the shared
sections, while that referral is accepted or in progress (``policy.referral_sections``).
The case owner asks here for the reconsideration of a negative decision; the request joins
the coordinator's list like a first request.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload
from sqlalchemy.orm.exc import StaleDataError

from casework.casefile import ServiceType
from casework.intake import nrm_summary
from casework.models import Case, NrmStatus
from core import audit, policy
from core.db import db
from core.navigation import register_navigation_count
from core.security import mark_sensitive
from referrals import decisions, reconsiderations, services
from referrals.decision_forms import (
    ReconsiderationRequestForm,
    ReconsiderationWithdrawForm,
    StatusDecisionForm,
)
from referrals.models import Referral
from referrals.reconsideration_workflow import OPEN_STATES as RECONSIDERATION_OPEN_STATES
from referrals.reconsiderations import Reconsideration
from referrals.services import ReferralError
from referrals.sharing import RISK_LABELS, shared_content
from referrals.workflow import OPEN_STATES, SHARING_STATES, InvalidTransition

bp = Blueprint("decisions", __name__, url_prefix="/nrm")

LIST_LIMIT = 200


def _actor():
    return current_user._get_current_object()


def _open_reconsideration_referrals():
    """Return the select of the referral ids that carry an open reconsideration."""
    return select(Reconsideration.referral_id).where(
        Reconsideration.state.in_([state.value for state in RECONSIDERATION_OPEN_STATES])
    )


def _waiting(user):
    """Return the select of open status-decision requests of cases still pending, and of
    open reconsiderations (their case keeps its negative status meanwhile)."""
    return (
        policy.visible_status_decision_referrals(user)
        .join(Referral.case)
        .where(
            Referral.state.in_([state.value for state in OPEN_STATES]),
            or_(
                Case.nrm_status == NrmStatus.PENDING_DECISION.value,
                Referral.id.in_(_open_reconsideration_referrals()),
            ),
        )
    )


def waiting_count_query(user) -> Select:
    """Select how many status-decision requests wait for the coordinator."""
    return _waiting(user).with_only_columns(func.count(Referral.id)).order_by(None)


def waiting_count(user) -> int:
    return db.session.scalar(waiting_count_query(user)) or 0


register_navigation_count("decisions.index", waiting_count_query)


@bp.app_template_global()
def nrm_notification(case) -> dict[str, Any]:
    """Return whether the case page warns that the coordinator was not notified in time."""
    return {"missing": decisions.needs_notification(case), "due": decisions.notification_due(case)}


@bp.app_template_global()
def status_decision_of(referral) -> dict[str, Any]:
    """Return what the referral page shows of a status-decision request's decision."""
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        return {"applies": False}
    return {
        "applies": True,
        "may_record": policy.can_record_status_decision(current_user, referral),
        "decisions": db.session.scalars(
            select(decisions.Decision)
            .where(decisions.Decision.referral_id == referral.id)
            .order_by(decisions.Decision.recorded_at)
        ).all(),
    }


@bp.get("/")
def index():
    if not policy.can_list_status_decisions(current_user):
        abort(404)
    rows = db.session.scalars(
        _waiting(current_user)
        .options(contains_eager(Referral.case), joinedload(Referral.sending_agency))
        .order_by(Referral.sent_at, Referral.id)
        .limit(LIST_LIMIT)
    ).all()
    ids = [referral.id for referral in rows]
    reconsidering = set(
        db.session.scalars(
            select(Reconsideration.referral_id).where(Reconsideration.referral_id.in_(ids))
        )
    )
    return render_template("referrals/decisions/index.html", rows=rows, reconsidering=reconsidering)


@bp.get("/cases/<uuid:case_id>")
def case(case_id: uuid.UUID):
    """Send the coordinator from a case's address to the request it shares the case by."""
    found = policy.case_or_404(current_user, case_id, whole_file=False)
    referral = db.session.scalars(
        policy.visible_status_decision_referrals(current_user)
        .where(
            Referral.case_id == found.id,
            Referral.state.in_([state.value for state in SHARING_STATES]),
        )
        .order_by(Referral.sent_at.desc())
        .limit(1)
    ).first()
    if referral is None:
        abort(404)
    return redirect(url_for("decisions.decide", referral_id=referral.id))


def _decision_referral(referral_id: uuid.UUID) -> Referral:
    """Load a status-decision referral the user may see (404) and decide on (403)."""
    referral = policy.referral_or_404(current_user, referral_id)
    if referral.service_type != ServiceType.STATUS_DECISION.value:
        abort(404)
    if not policy.can_record_status_decision(current_user, referral):
        abort(403)
    mark_sensitive()
    return referral


@bp.get("/referrals/<uuid:referral_id>/decision")
def decide(referral_id: uuid.UUID):
    referral = _decision_referral(referral_id)
    form = StatusDecisionForm(formdata=None, data={"version": str(referral.version)})
    return _render_decide(referral, form)


def _render_decide(referral: Referral, form: StatusDecisionForm, status: int = 200):
    sections = policy.referral_sections(current_user, referral)
    blocks = shared_content(referral.case, sections)
    if sections:
        # Committed with the response by the audit hook; if that fails, nothing is shown.
        services.record_shared_read(_actor(), referral, sections)
    reconsideration = reconsiderations.reconsideration_for_referral(referral)
    new_information = None
    if reconsideration is not None and policy.can_read_reconsideration_information(
        current_user, reconsideration
    ):
        new_information = reconsideration.new_information
        # A read of personal data: audited like the shared sections above.
        audit.record(
            "nrm.reconsideration_viewed",
            object_type="nrm_reconsideration",
            object_id=reconsideration.id,
            field_names=["new_information"],
        )
    page = render_template(
        "referrals/decisions/decide.html",
        reconsideration=reconsideration,
        new_information=new_information,
        referral=referral,
        case=referral.case,
        nrm=nrm_summary(referral.case),
        identified_on=decisions.identification_day(referral.case),
        blocks=blocks,
        risk_labels=RISK_LABELS,
        form=form,
    )
    return page, status


@bp.post("/referrals/<uuid:referral_id>/decision")
def record(referral_id: uuid.UUID):
    referral = _decision_referral(referral_id)
    form = StatusDecisionForm()
    if form.validate():
        problems = decisions.check_decision(
            referral.case,
            form.outcome.data,
            form.decided_on.data,
            form.reason_code.data or None,
            form.reason_text.data,
        )
        for name, message in problems:
            form[name].errors = [*form[name].errors, message]
    if form.errors:
        return _render_decide(referral, form, 400)
    try:
        decisions.record_status_decision(
            _actor(),
            referral,
            form.outcome.data,
            form.decided_on.data,
            form.reason_code.data or None,
            form.reason_text.data,
            expected_version=form.expected_version(),
        )
        db.session.commit()
    except (ReferralError, InvalidTransition) as error:
        db.session.rollback()
        flash(str(error), "error")
    except StaleDataError:
        db.session.rollback()
        flash(_("Someone changed this referral meanwhile. Look at it again."), "error")
    else:
        flash(_("Status decision recorded."), "success")
    return redirect(url_for("referrals.detail", referral_id=referral_id))


# Reconsideration --------------------------------------------------------------------------


@bp.app_template_global()
def reconsideration_panel(case) -> dict[str, Any]:
    """Return what the case page shows of the reconsideration of a negative decision."""
    if case.nrm_status != NrmStatus.NOT_RECOGNISED.value and not case.nrm_decided_on:
        return {"applies": False}
    requests = [
        item
        for item in reconsiderations.reconsiderations_of(case)
        if policy.can_view_reconsideration(current_user, item)
    ]
    may_request = policy.can_request_reconsideration(current_user, case)
    problem = reconsiderations.request_problem(case) if may_request else None
    decision = reconsiderations.latest_decision(case) if may_request else None
    return {
        "applies": bool(requests) or may_request,
        "requests": requests,
        "may_request": may_request and problem is None,
        "last_day": reconsiderations.last_request_day(decision) if decision else None,
        "may_withdraw": {
            item.id: policy.can_withdraw_reconsideration(current_user, item) for item in requests
        },
    }


def _render_request(case, form, problem=None, status: int = 200):
    decision = reconsiderations.latest_decision(case)
    page = render_template(
        "referrals/decisions/reconsideration.html",
        case=case,
        decision=decision,
        last_day=reconsiderations.last_request_day(decision) if decision else None,
        problem=problem,
        form=form,
    )
    return page, status


@bp.route("/cases/<uuid:case_id>/reconsideration", methods=["GET", "POST"])
def request_reconsideration(case_id: uuid.UUID):
    case = policy.case_or_404(current_user, case_id)
    if not policy.can_request_reconsideration(current_user, case):
        abort(403)
    mark_sensitive()
    if request.method == "GET":
        decision = reconsiderations.latest_decision(case)
        first = decision.referral if decision is not None else None
        sections = [section.value for section in first.sections] if first is not None else []
        form = ReconsiderationRequestForm(formdata=None, data={"sections": sections})
        return _render_request(case, form, reconsiderations.request_problem(case))
    form = ReconsiderationRequestForm()
    if not form.validate():
        return _render_request(case, form, status=400)
    try:
        reconsiderations.request_reconsideration(
            _actor(), case, form.new_information.data, form.sections.data or []
        )
        reference = case.reference
        db.session.commit()
    except ReferralError as error:
        db.session.rollback()
        case = policy.case_or_404(current_user, case_id)
        return _render_request(case, form, str(error), status=400)
    flash(_("Reconsideration of %(reference)s requested.", reference=reference), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


@bp.post("/reconsiderations/<uuid:reconsideration_id>/withdraw")
def withdraw_reconsideration(reconsideration_id: uuid.UUID):
    item = policy.get_visible_or_404(
        policy.visible_reconsiderations(current_user), reconsideration_id
    )
    if not policy.can_withdraw_reconsideration(current_user, item):
        abort(403)
    form = ReconsiderationWithdrawForm()
    case_id = item.case_id
    if not form.validate():
        flash(_("The form expired. Please submit it again."), "error")
        return redirect(url_for("casework.detail", case_id=case_id))
    try:
        reconsiderations.withdraw_reconsideration(_actor(), item)
        db.session.commit()
    except (ReferralError, InvalidTransition, StaleDataError):
        db.session.rollback()
        flash(_("The request could not be withdrawn. Look at it again."), "error")
    else:
        flash(_("The reconsideration request was withdrawn."), "success")
    return redirect(url_for("casework.detail", case_id=case_id))
