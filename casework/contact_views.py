"""Incoming report pages: hotline calls, notifications sent, the receivers' inbox, actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from casework.contact_forms import (
    HotlineCallForm,
    NotificationForm,
    ReportActionForm,
    ReportCaseForm,
    ReportCloseForm,
)
from casework.contact_workflow import OPEN_STATES, Action, InvalidTransition, State
from casework.contacts import (
    CALL_LANGUAGES,
    CALLER_RELATION_LABELS,
    DEFAULT_CHANNEL_BY_AGENCY_TYPE,
    PERSON_FIELDS,
    SENDER_STATE_LABELS,
    STATE_BADGES,
    STATE_LABELS,
    WITHDRAWN_LABEL,
    CallerRelation,
    ContactError,
    IncomingReport,
    acknowledge_report,
    actions_for,
    case_prefill,
    close_report,
    convert_report,
    open_incoming_count_query,
    record_hotline_call,
    send_notification,
    source_report,
    state_label,
    withdraw_report,
)
from casework.reference import labels_for
from core import audit
from core.db import db, utcnow
from core.models import Agency
from core.navigation import register_navigation_count
from core.policy import (
    can_choose_case_owner,
    can_read_report_details,
    can_receive_reports,
    can_record_hotline_call,
    can_send_notification,
    can_view_case,
    can_view_report,
    report_or_404,
    visible_hotline_calls,
    visible_incoming_reports,
    visible_sent_notifications,
)
from core.security import mark_sensitive

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

PAGE_SIZE = 100

ACTION_LABELS = {
    Action.ACKNOWLEDGE: _l("Acknowledge"),
    Action.CONVERT: _l("Open a case"),
    Action.CLOSE: _l("Close without a case"),
    Action.WITHDRAW: _l("Withdraw the notification"),
}

register_navigation_count("contacts.incoming", open_incoming_count_query)


@bp.app_template_global()
def case_source(case) -> dict | None:
    """Return the report a case was opened from, for the case page's "Opened from" line:
    its reference (says nothing about anyone), and whether the reader may open it."""
    report = source_report(case)
    if report is None:
        return None
    return {
        "reference": report.reference,
        "id": report.id,
        "may_open": can_view_report(current_user, report),
    }


def _assistance_agencies() -> list[Agency]:
    """Return the agencies a report may be routed to: active, keeping case files, not the NRM."""
    return list(
        db.session.scalars(
            select(Agency)
            .where(
                Agency.active.is_(True),
                Agency.keeps_case_files.is_(True),
                Agency.is_national_coordinator.is_(False),
            )
            .order_by(Agency.name)
        )
    )


def _coordinator() -> Agency | None:
    return db.session.scalars(
        select(Agency).where(Agency.is_national_coordinator.is_(True), Agency.active.is_(True))
    ).first()


def _agency(agency_id: int | str | None, allowed: list[Agency]) -> Agency | None:
    for agency in allowed:
        if str(agency.id) == str(agency_id):
            return agency
    return None


def _list(query, *, sender: bool):
    rows = db.session.scalars(
        query.options(
            selectinload(IncomingReport.receiving_agency),
            selectinload(IncomingReport.sender_agency),
        )
        .order_by(IncomingReport.created_at.desc(), IncomingReport.id)
        .limit(PAGE_SIZE)
    ).all()
    now = utcnow()
    labels = SENDER_STATE_LABELS if sender else STATE_LABELS
    return [
        {
            "report": report,
            "state_label": state_label(report, labels),
            "state_badge": STATE_BADGES[State(report.state)],
            "deadline": report.deadline(now),
        }
        for report in rows
    ]


# Lists ----------------------------------------------------------------------------------


@bp.get("/calls")
def calls():
    """The own agency's hotline calls (coded facts and status; no personal data)."""
    if not can_record_hotline_call(current_user):
        abort(404)
    rows = _list(visible_hotline_calls(current_user), sender=True)
    return render_template("casework/contacts/calls.html", rows=rows)


@bp.get("/sent")
def sent():
    """The own agency's notifications, with their status only."""
    if not can_send_notification(current_user):
        abort(404)
    rows = _list(visible_sent_notifications(current_user), sender=True)
    return render_template("casework/contacts/sent.html", rows=rows)


@bp.get("/incoming")
def incoming():
    """Reports routed or sent to the user's agency, open ones first, overdue marked."""
    if not can_receive_reports(current_user):
        abort(404)
    show_all = request.args.get("show") == "all"
    query = visible_incoming_reports(current_user)
    if not show_all:
        query = query.where(IncomingReport.state.in_([state.value for state in OPEN_STATES]))
    rows = _list(query, sender=False)
    return render_template("casework/contacts/incoming.html", rows=rows, show_all=show_all)


# Recording ------------------------------------------------------------------------------


@bp.route("/calls/new", methods=["GET", "POST"])
def new_call():
    """The hotline quick intake."""
    if not can_record_hotline_call(current_user):
        abort(404)
    mark_sensitive()
    agencies = _assistance_agencies()
    form = HotlineCallForm()
    form.load_choices(agencies)
    if request.method == "GET":
        return render_template("casework/contacts/call_form.html", form=form)
    if not form.validate():
        return render_template("casework/contacts/call_form.html", form=form), 400
    receiver_id = form.receiving_agency_id
    receiver = _agency(receiver_id, agencies) if receiver_id is not None else None
    if receiver_id is not None and receiver is None:
        abort(400)
    report = record_hotline_call(current_user, form.report_data(), receiving_agency=receiver)
    report_id, reference = report.id, report.reference
    db.session.commit()
    if receiver is None:
        flash(_("Call %(reference)s recorded as advice only.", reference=reference), "success")
    else:
        flash(
            _(
                "Call %(reference)s routed to %(agency)s.",
                reference=reference,
                agency=receiver.name,
            ),
            "success",
        )
    return redirect(url_for("contacts.detail", report_id=report_id))


def _local_to_utc(moment: datetime) -> datetime:
    zone = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", "Asia/Baku"))
    return moment.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


@bp.route("/notifications/new", methods=["GET", "POST"])
def new_notification():
    """A presumed-victim notification from an agency that keeps no case file."""
    if not can_send_notification(current_user):
        abort(404)
    mark_sensitive()
    agencies = _assistance_agencies()
    coordinator = _coordinator()
    form = NotificationForm()
    form.load_choices(agencies, coordinator)
    if request.method == "GET":
        form.intake_channel.data = DEFAULT_CHANNEL_BY_AGENCY_TYPE.get(
            current_user.agency.type, "other"
        )
        if coordinator is not None:
            form.recipient.data = str(coordinator.id)
        return render_template("casework/contacts/notification_form.html", form=form)
    valid = form.validate()
    identified_at = None
    if form.identified_at.data is not None:
        identified_at = _local_to_utc(form.identified_at.data)
        if identified_at > utcnow():
            form.identified_at.errors = [
                _l("The moment of identification cannot be in the future.")
            ]
            form._errors = None
            valid = False
    if not valid:
        return render_template("casework/contacts/notification_form.html", form=form), 400
    receiver = _agency(form.recipient.data, [*([coordinator] if coordinator else []), *agencies])
    if receiver is None:
        abort(400)
    try:
        report = send_notification(
            current_user, form.report_data(), receiving_agency=receiver, identified_at=identified_at
        )
    except ContactError as error:
        form.identified_at.errors = [error.args[0]]
        form._errors = None
        return render_template("casework/contacts/notification_form.html", form=form), 400
    report_id, reference = report.id, report.reference
    db.session.commit()
    flash(
        _(
            "Notification %(reference)s sent to %(agency)s.",
            reference=reference,
            agency=receiver.name,
        ),
        "success",
    )
    return redirect(url_for("contacts.detail", report_id=report_id))


# One report -----------------------------------------------------------------------------


def _coded_facts(report: IncomingReport) -> list[tuple[object, object]]:
    """Return the report's coded facts as (label, shown value), codes as labels."""
    wanted = [("country", report.country), ("region", report.region), ("sex", report.sex)]
    wanted += [("intake_channel", report.intake_channel)]
    wanted += [("exploitation_form", code) for code in report.exploitation_form_codes]
    labels = labels_for([(name, code) for name, code in wanted if code])

    def label(list_name, code):
        return labels.get((list_name, code), code) if code else None

    yes_no = {True: _l("Yes"), False: _l("No"), None: None}
    facts = [
        (_l("Intake channel"), label("intake_channel", report.intake_channel)),
        (_l("Country"), label("country", report.country)),
        (_l("Region"), label("region", report.region)),
        (_l("Sex"), label("sex", report.sex)),
        (_l("Approximate age"), report.age_band),
        (_l("A child"), yes_no[report.is_minor]),
        (
            _l("Forms of exploitation"),
            ", ".join(
                str(label("exploitation_form", code)) for code in report.exploitation_form_codes
            )
            or None,
        ),
    ]
    if report.is_call:
        facts += [
            (_l("Language of the call"), CALL_LANGUAGES.get(report.call_language)),
            (
                _l("Who called"),
                CALLER_RELATION_LABELS.get(CallerRelation(report.caller_relation))
                if report.caller_relation
                else None,
            ),
            (_l("Anonymous"), yes_no[bool(report.anonymous)]),
            (_l("May be called back"), yes_no[report.callback_consent]),
        ]
    else:
        facts.append((_l("Incoming returnee"), yes_no[bool(report.incoming_returnee)]))
    return facts


def _detail_page(report: IncomingReport, close_form: ReportCloseForm | None = None) -> str:
    is_receiver = report.receiving_agency_id == current_user.agency_id and can_receive_reports(
        current_user
    )
    details = can_read_report_details(current_user, report)
    if details:
        mark_sensitive()
        audit.record(
            "contact.viewed",
            object_type="incoming_report",
            object_id=report.id,
            field_names=PERSON_FIELDS,
        )
    labels = STATE_LABELS if is_receiver else SENDER_STATE_LABELS
    case = report.case if is_receiver else None
    return render_template(
        "casework/contacts/detail.html",
        report=report,
        details=details,
        is_receiver=is_receiver,
        state_label=state_label(report, labels),
        state_badge=STATE_BADGES[State(report.state)],
        history=[
            (
                row,
                WITHDRAWN_LABEL
                if row.action == Action.WITHDRAW.value
                else labels[State(row.to_state)],
            )
            for row in report.transitions
        ],
        facts=_coded_facts(report),
        deadline=report.deadline(),
        actions=actions_for(current_user, report),
        action_labels=ACTION_LABELS,
        acknowledge_form=ReportActionForm(),
        close_form=close_form or ReportCloseForm(),
        # The sender never gets the case; the receiver only when it may open it.
        case_link=case.id if case is not None and can_view_case(current_user, case) else None,
    )


@bp.get("/<uuid:report_id>")
def detail(report_id: uuid.UUID):
    """A report: status for everyone who may open it; details for the receiver and author."""
    report = report_or_404(current_user, report_id)
    return _detail_page(report)


def _acting_report(report_id: uuid.UUID, action: Action) -> IncomingReport:
    report = report_or_404(current_user, report_id)
    if action not in actions_for(current_user, report):
        abort(403)
    return report


@bp.post("/<uuid:report_id>/acknowledge")
def acknowledge(report_id: uuid.UUID):
    report = _acting_report(report_id, Action.ACKNOWLEDGE)
    form = ReportActionForm()
    if not form.validate():
        abort(400)
    try:
        acknowledge_report(current_user, report)
        db.session.commit()
    except (InvalidTransition, StaleDataError):
        db.session.rollback()
        flash(_("The report changed meanwhile; nothing was done."), "warning")
        return redirect(url_for("contacts.detail", report_id=report_id))
    flash(_("Report %(reference)s acknowledged.", reference=report.reference), "success")
    return redirect(url_for("contacts.detail", report_id=report_id))


@bp.post("/<uuid:report_id>/close")
def close(report_id: uuid.UUID):
    report = _acting_report(report_id, Action.CLOSE)
    form = ReportCloseForm()
    if not form.validate():
        return _detail_page(report, close_form=form), 400
    reference = report.reference
    try:
        close_report(current_user, report, form.closure_reason.data)
        db.session.commit()
    except (InvalidTransition, StaleDataError):
        db.session.rollback()
        flash(_("The report changed meanwhile; nothing was done."), "warning")
        return redirect(url_for("contacts.detail", report_id=report_id))
    flash(_("Report %(reference)s closed without a case.", reference=reference), "success")
    return redirect(url_for("contacts.detail", report_id=report_id))


@bp.post("/<uuid:report_id>/withdraw")
def withdraw(report_id: uuid.UUID):
    """The sender takes back a notification the receiver has not acknowledged yet."""
    report = _acting_report(report_id, Action.WITHDRAW)
    form = ReportActionForm()
    if not form.validate():
        abort(400)
    reference = report.reference
    try:
        withdraw_report(current_user, report)
        db.session.commit()
    except (InvalidTransition, StaleDataError):
        db.session.rollback()
        flash(_("The report changed meanwhile; nothing was done."), "warning")
        return redirect(url_for("contacts.detail", report_id=report_id))
    flash(_("Notification %(reference)s withdrawn.", reference=reference), "success")
    return redirect(url_for("contacts.detail", report_id=report_id))


@bp.route("/<uuid:report_id>/convert", methods=["GET", "POST"])
def convert(report_id: uuid.UUID):
    """Open a case from the report: the normal intake, pre-filled with what the report holds."""
    report = _acting_report(report_id, Action.CONVERT)
    mark_sensitive()
    choose_owner = can_choose_case_owner(current_user)
    owners = _assistance_agencies() if choose_owner else []
    if request.method == "GET":
        prefill = case_prefill(report)
        audit.record(
            "contact.viewed",
            object_type="incoming_report",
            object_id=report.id,
            field_names=PERSON_FIELDS,
        )
        form = ReportCaseForm(data=prefill)
    else:
        form = ReportCaseForm()
    form.load_choices()
    if choose_owner:
        form.load_owners(owners)
    else:
        del form.owner_agency
    page = {"form": form, "report": report, "choose_owner": choose_owner}
    if request.method == "GET":
        return render_template("casework/contacts/convert.html", **page)
    valid = form.validate()
    complete = form.check_complete()
    owner = None
    if choose_owner:
        complete = form.check_owner() and complete
        owner = _agency(form.owner_agency.data, owners)
    if not (valid and complete):
        return render_template("casework/contacts/convert.html", **page), 400
    try:
        case = convert_report(current_user, report, form.case_data(), owner_agency=owner)
    except (InvalidTransition, StaleDataError):
        db.session.rollback()
        flash(_("The report changed meanwhile; nothing was done."), "warning")
        return redirect(url_for("contacts.detail", report_id=report_id))
    case_id, case_reference = case.id, case.reference
    db.session.commit()
    flash(_("Case %(reference)s opened.", reference=case_reference), "success")
    if owner is not None:
        # Opened for another agency: the coordinator does not read its file.
        return redirect(url_for("contacts.detail", report_id=report_id))
    return redirect(url_for("casework.detail", case_id=case_id))
