"""The national coordinator's pages: cases waiting for the status decision, and the decision.

The coordinator reads a case only through its status-decision referral, and only the shared
sections, while that referral is accepted or in progress (``policy.referral_sections``).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, joinedload
from sqlalchemy.orm.exc import StaleDataError

from casework.casefile import ServiceType
from casework.intake import nrm_summary
from casework.models import Case, NrmStatus
from core import policy
from core.db import db
from core.navigation import register_navigation_count
from core.security import mark_sensitive
from referrals import decisions, services
from referrals.decision_forms import StatusDecisionForm
from referrals.models import Referral
from referrals.services import ReferralError
from referrals.sharing import RISK_LABELS, shared_content
from referrals.workflow import OPEN_STATES, SHARING_STATES, InvalidTransition

bp = Blueprint("decisions", __name__, url_prefix="/nrm")

LIST_LIMIT = 200


def _actor():
    return current_user._get_current_object()


def _waiting(user):
    """Return the select of open status-decision requests of cases still pending."""
    return (
        policy.visible_status_decision_referrals(user)
        .join(Referral.case)
        .where(
            Referral.state.in_([state.value for state in OPEN_STATES]),
            Case.nrm_status == NrmStatus.PENDING_DECISION.value,
        )
    )


def waiting_count(user) -> int:
    """Return how many status-decision requests wait for the coordinator."""
    query = _waiting(user).with_only_columns(func.count(Referral.id))
    return db.session.scalar(query) or 0


register_navigation_count("decisions.index", waiting_count)


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
    return render_template("referrals/decisions/index.html", rows=rows)


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
    page = render_template(
        "referrals/decisions/decide.html",
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
