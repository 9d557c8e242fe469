"""Referral pages: inbox and outbox, a new referral from a case, the referral page, and one
small POST view per workflow action.

Every page first moves the agency's overdue sent referrals to ``expired``. A referral is
loaded through the access scope (404 for a third agency), the action authorised by the
policy (403), the form validated (400), one service called, and the view commits once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from casework.casefile import ConsentPurpose, ServiceType
from casework.casefile_services import current_consents
from casework.forms import FIELD_LABELS
from casework.reference import labels_of
from core import audit, policy
from core.db import db
from core.models import Agency
from core.navigation import register_navigation_count
from core.security import mark_sensitive
from referrals import services
from referrals.directory import find_providers, language_labels
from referrals.directory_forms import DirectoryFilterForm
from referrals.forms import (
    ReferralActionForm,
    ReferralCancelForm,
    ReferralCompleteForm,
    ReferralDeclineForm,
    ReferralForm,
    ServiceNoteForm,
)
from referrals.models import ACTION_LABELS, EXCEPTION_LABELS, Referral, ReferralNote
from referrals.services import ReferralError
from referrals.sharing import RISK_LABELS, shared_content
from referrals.workflow import Action, InvalidTransition, State

bp = Blueprint("referrals", __name__, url_prefix="/referrals")

LIST_LIMIT = 200
# Inbox and outbox tabs: key -> (label, states).
TABS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "new": (_l("New"), (State.SENT,)),
    "overdue": (_l("Overdue"), (State.EXPIRED,)),
    "accepted": (_l("Accepted"), (State.ACCEPTED,)),
    "in_progress": (_l("In progress"), (State.IN_PROGRESS,)),
    "closed": (_l("Completed and closed"), (State.COMPLETED, State.DECLINED, State.CANCELLED)),
}
OUTBOX_TABS = {"draft": (_l("Drafts"), (State.DRAFT,)), **TABS}

# Workflow action -> (form class, service call, success message).
ACTION_FORMS: dict[Action, type[ReferralActionForm]] = {
    Action.SEND: ReferralActionForm,
    Action.ACCEPT: ReferralActionForm,
    Action.DECLINE: ReferralDeclineForm,
    Action.START: ReferralActionForm,
    Action.COMPLETE: ReferralCompleteForm,
    Action.CANCEL: ReferralCancelForm,
}


def _actor():
    return current_user._get_current_object()


@bp.before_request
def expire_overdue() -> None:
    """Move the agency's overdue sent referrals to ``expired`` before showing anything."""
    if not policy.can_list_referrals(current_user):
        return
    try:
        if services.expire_overdue_referrals(agency_id=current_user.agency_id):
            db.session.commit()
    except (StaleDataError, IntegrityError):
        # A concurrent request expired them first: nothing left to do.
        db.session.rollback()


def received_waiting_count_query(user) -> Select:
    """Select how many referrals wait for the user's agency to answer (new, overdue too)."""
    query = policy.visible_referrals_received(user).where(Referral.state == State.SENT.value)
    return query.with_only_columns(func.count(Referral.id)).order_by(None)


register_navigation_count("referrals.index", received_waiting_count_query)


@bp.app_template_global()
def case_referrals(case) -> dict[str, Any]:
    """Return the case's referrals the current user sees, for the case page's section."""
    query = (
        policy.visible_referrals_sent(current_user)
        .where(Referral.case_id == case.id)
        .options(joinedload(Referral.receiving_agency))
        .order_by(Referral.created_at.desc())
    )
    return {
        "referrals": db.session.scalars(query).all(),
        "may_refer": policy.can_create_referral(current_user, case),
    }


# Lists -------------------------------------------------------------------------------------


@bp.get("/")
def index():
    if not policy.can_list_referrals(current_user):
        abort(404)
    return redirect(url_for("referrals.inbox"))


@bp.get("/inbox")
def inbox():
    return _list_page(policy.visible_referrals_received(current_user), TABS, "inbox")


@bp.get("/outbox")
def outbox():
    return _list_page(policy.visible_referrals_sent(current_user), OUTBOX_TABS, "outbox")


def _list_page(scope, tabs: dict, box: str):
    if not policy.can_list_referrals(current_user):
        abort(404)
    tab = request.args.get("tab", "new")
    if tab not in tabs:
        abort(404)
    counted = dict(
        db.session.execute(
            scope.with_only_columns(Referral.state, func.count(Referral.id)).group_by(
                Referral.state
            )
        ).all()
    )
    counts = {
        key: sum(counted.get(state.value, 0) for state in states)
        for key, (_label, states) in tabs.items()
    }
    rows = db.session.scalars(
        scope.where(Referral.state.in_([state.value for state in tabs[tab][1]]))
        .options(
            joinedload(Referral.case),
            joinedload(Referral.sending_agency),
            joinedload(Referral.receiving_agency),
        )
        .order_by(Referral.response_due_at.desc(), Referral.created_at.desc())
        .limit(LIST_LIMIT)
    ).all()
    return render_template(
        "referrals/index.html",
        box=box,
        tabs=[(key, label, counts[key]) for key, (label, _states) in tabs.items()],
        tab=tab,
        rows=rows,
    )


# A new referral ----------------------------------------------------------------------------


def _agencies(exclude: int | None = None) -> list[Agency]:
    """Return the agencies a referral may go to: active ones other than the own."""
    agencies = db.session.scalars(
        policy.visible_agencies(current_user)
        .where(Agency.active.is_(True), Agency.id != current_user.agency_id)
        .order_by(Agency.name)
    )
    return [agency for agency in agencies if agency.id != exclude]


def _directory_step(
    form: ReferralForm, *, exclude: int | None = None, service_type: str | None = None
) -> dict[str, Any]:
    """Find the providers of the page's directory step and set what the form may choose.

    The step is a GET form on the page itself (``?service_type=shelter&region=baku...``),
    so it works without JavaScript; the referral form posts back to the same address and
    so still knows the filters. ``service_type`` is the step's default (a re-referral's).
    """
    own = current_user.agency_id
    filters = DirectoryFilterForm(formdata=request.args)
    filters.load_choices()
    if not request.args.get("service_type") and service_type:
        filters.service_type.data = service_type
    filters.validate()
    for field in filters:
        # The referral form has fields of the same names on the page.
        field.id = f"find-{field.name}"
        field.label.field_id = field.id

    def chosen(field):
        return field.data if field.data and not field.errors else None

    wanted = chosen(filters.service_type)
    if request.method == "GET" and wanted:
        form.service_type.data = wanted
    agencies = _agencies(exclude)
    coordinators = {agency.id for agency in agencies if agency.is_national_coordinator}

    def offered(service) -> bool:
        # The national coordinator takes the status decision, and only it.
        is_coordinator = service.agency.is_national_coordinator
        return service.agency_id != exclude and is_coordinator == (
            service.service_type == ServiceType.STATUS_DECISION.value
        )

    providers: dict[str, set[int]] = {}
    for code in {wanted, form.service_type.data} - {None, ""}:
        try:
            listed = find_providers(code, exclude_agency_id=own)
        except ValueError:
            continue
        providers[code] = {service.agency_id for service in listed if offered(service)}
    results = []
    if wanted:
        results = [
            service
            for service in find_providers(
                wanted,
                region=chosen(filters.region),
                language=chosen(filters.language),
                accepts=chosen(filters.accepts),
                with_capacity=bool(filters.with_capacity.data),
                exclude_agency_id=own,
            )
            if offered(service)
        ]
    form.load_agencies(
        providers=providers,
        agencies=[(agency.id, agency.name) for agency in agencies],
        coordinators=coordinators,
    )
    return {
        "filters": filters,
        "providers": results,
        "chosen_service": ServiceType(wanted) if wanted else None,
        "region_labels": labels_of("region"),
        "language_labels": language_labels(),
    }


def _consented_agencies(case) -> list[str]:
    """Return the names of the agencies the person currently consents to be referred to."""
    return sorted(
        record.agency.name
        for record in current_consents(case)
        if record.purpose == ConsentPurpose.REFERRAL.value and record.is_given and record.agency
    )


@bp.route("/new/<uuid:case_id>", methods=["GET", "POST"])
def create(case_id: uuid.UUID):
    case = policy.case_or_404(current_user, case_id)
    if not policy.can_create_referral(current_user, case):
        abort(403)
    mark_sensitive()
    form = ReferralForm()
    return _draft_page(
        case,
        form,
        _directory_step(form),
        previous=None,
        draft=lambda agency, values: services.create_referral(
            _actor(), case, receiving_agency=agency, **values
        ),
        drafted=_("Referral drafted. Check it, then send it."),
    )


@bp.route("/<uuid:referral_id>/rerefer", methods=["GET", "POST"])
def rerefer(referral_id: uuid.UUID):
    previous = policy.referral_or_404(current_user, referral_id)
    if not policy.can_rerefer_referral(current_user, previous):
        abort(403)
    mark_sensitive()
    if request.method == "GET":
        form = ReferralForm(data=services.rerefer_values(previous))
        audit.record(
            "referral.viewed", object_type="referral", object_id=previous.id, field_names=["reason"]
        )
    else:
        form = ReferralForm()
    step = _directory_step(
        form, exclude=previous.receiving_agency_id, service_type=previous.service_type
    )
    return _draft_page(
        previous.case,
        form,
        step,
        previous=previous,
        draft=lambda agency, values: services.rerefer_referral(
            _actor(), previous, receiving_agency=agency, **values
        ),
        drafted=_("New referral drafted. Check it, then send it."),
    )


def _draft_page(case, form: ReferralForm, step: dict, *, previous, draft: Callable, drafted: str):
    """Save the referral form as a draft and go to it, or show the form again (400)."""
    service_error = None
    if form.validate_on_submit():
        agency = db.session.get(Agency, form.chosen_agency_id())
        try:
            referral = draft(agency, form.values())
        except ReferralError as error:
            db.session.rollback()
            service_error = str(error)
        else:
            referral_id = referral.id
            db.session.commit()
            flash(drafted, "success")
            return redirect(url_for("referrals.detail", referral_id=referral_id))
    page = render_template(
        "referrals/create.html",
        form=form,
        case=case,
        previous=previous,
        consented=_consented_agencies(case),
        service_error=service_error,
        **step,
    )
    return page, 400 if form.is_submitted() else 200


# The referral page -------------------------------------------------------------------------


@bp.get("/<uuid:referral_id>")
def detail(referral_id: uuid.UUID):
    referral = policy.referral_or_404(current_user, referral_id)
    mark_sensitive()
    return _render_detail(referral)


def _render_detail(referral: Referral, status: int = 200, failed: tuple | None = None):
    user = current_user
    may_read = policy.can_read_referral_reason(user, referral)
    sections = policy.referral_sections(user, referral)
    blocks = shared_content(referral.case, sections)
    if sections:
        # Committed with the response by the audit hook; if that fails, nothing is shown.
        services.record_shared_read(_actor(), referral, sections)
    notes = db.session.scalars(
        policy.visible_referral_notes(user, referral).order_by(ReferralNote.created_at)
    ).all()
    erased = referral.case.is_erased
    read = []
    if may_read:
        read += ["reason", *(["exception_note"] if referral.consent_exception else [])]
    if not erased:
        read += [
            name
            for name in ("decline_reason", "cancel_reason", "outcome_note")
            if getattr(referral, f"_{name}_enc") is not None
        ]
    if notes:
        read.append("notes.body")
    if read:
        audit.record(
            "referral.viewed", object_type="referral", object_id=referral.id, field_names=read
        )
    forms = []
    for action in policy.referral_actions(user, referral):
        if failed is not None and failed[0] is action:
            form = failed[1]
        else:
            form = ACTION_FORMS[action](formdata=None, data={"version": str(referral.version)})
        forms.append((action, form))
    note_form = None
    if policy.can_add_referral_note(user, referral):
        note_form = failed[1] if failed is not None and failed[0] == "note" else None
        note_form = note_form or ServiceNoteForm(formdata=None)
    page = render_template(
        "referrals/detail.html",
        referral=referral,
        case=referral.case,
        is_receiver=user.agency_id == referral.receiving_agency_id,
        may_read=may_read,
        erased=erased,
        blocks=blocks,
        notes=notes,
        action_forms=forms,
        note_form=note_form,
        may_rerefer=policy.can_rerefer_referral(user, referral),
        may_open_case=policy.can_view_case(user, referral.case),
        may_download=policy.can_download_referral_form(user, referral),
        transitions=services.transitions_of(referral),
        receipts=services.receipts_of(referral),
        field_labels=FIELD_LABELS,
        action_labels=ACTION_LABELS,
        exception_labels=EXCEPTION_LABELS,
        risk_labels=RISK_LABELS,
    )
    return page, status


# One POST per action -----------------------------------------------------------------------


def _act(referral_id: uuid.UUID, action: Action, call: Callable, message: str):
    referral = policy.referral_or_404(current_user, referral_id)
    if not policy.may(current_user, f"{action.value}_referral", referral):
        abort(403)
    mark_sensitive()
    form = ACTION_FORMS[action]()
    if not form.validate():
        return _render_detail(referral, 400, failed=(action, form))
    try:
        call(referral, form, expected_version=form.expected_version())
        db.session.commit()
    except (ReferralError, InvalidTransition) as error:
        db.session.rollback()
        flash(str(error), "error")
    except StaleDataError:
        db.session.rollback()
        flash(_("Someone changed this referral meanwhile. Look at it again."), "error")
    else:
        flash(message, "success")
    return redirect(url_for("referrals.detail", referral_id=referral_id))


@bp.post("/<uuid:referral_id>/send")
def send(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.SEND,
        lambda referral, form, **kw: services.send_referral(_actor(), referral, **kw),
        _("Referral sent."),
    )


@bp.post("/<uuid:referral_id>/accept")
def accept(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.ACCEPT,
        lambda referral, form, **kw: services.accept_referral(_actor(), referral, **kw),
        _("Referral accepted."),
    )


@bp.post("/<uuid:referral_id>/decline")
def decline(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.DECLINE,
        lambda referral, form, **kw: services.decline_referral(
            _actor(), referral, form.reason.data, **kw
        ),
        _("Referral declined."),
    )


@bp.post("/<uuid:referral_id>/start")
def start(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.START,
        lambda referral, form, **kw: services.start_referral(_actor(), referral, **kw),
        _("Service started."),
    )


@bp.post("/<uuid:referral_id>/complete")
def complete(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.COMPLETE,
        lambda referral, form, **kw: services.complete_referral(
            _actor(), referral, form.outcome.data, form.outcome_note.data, **kw
        ),
        _("Referral completed."),
    )


@bp.post("/<uuid:referral_id>/cancel")
def cancel(referral_id: uuid.UUID):
    return _act(
        referral_id,
        Action.CANCEL,
        lambda referral, form, **kw: services.cancel_referral(
            _actor(), referral, form.reason.data, **kw
        ),
        _("Referral cancelled."),
    )


@bp.post("/<uuid:referral_id>/notes")
def add_note(referral_id: uuid.UUID):
    referral = policy.referral_or_404(current_user, referral_id)
    if not policy.can_add_referral_note(current_user, referral):
        abort(403)
    mark_sensitive()
    form = ServiceNoteForm()
    if not form.validate():
        return _render_detail(referral, 400, failed=("note", form))
    try:
        services.add_service_note(
            _actor(), referral, form.body.data, shared_with_sender=form.shared_with_sender.data
        )
    except ReferralError as error:
        db.session.rollback()
        flash(str(error), "error")
    else:
        db.session.commit()
        flash(_("Service note added."), "success")
    return redirect(url_for("referrals.detail", referral_id=referral_id))
