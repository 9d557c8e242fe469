"""Case file pages: indicators, assessments, consent, services, notes and attachments.

Every page loads the case through the access scope (404), checks the write right for a
change (403), audits the read of the section, and never lets a browser cache it.
"""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError
from wtforms.fields.choices import SelectChoice

from casework import casefile_services as services
from casework.casefile import (
    RISK_FIELDS,
    Attachment,
    CaseNote,
    ConsentPurpose,
    ConsentRecord,
    ConsentStatus,
    NeedsAssessment,
    RiskAssessment,
    ServiceOutcome,
    ServiceRecord,
    ServiceType,
)
from casework.casefile_forms import (
    AttachmentForm,
    CaseNoteEditForm,
    CaseNoteForm,
    ConsentForm,
    ConsentWithdrawForm,
    NeedsAssessmentForm,
    RiskAssessmentForm,
    ServiceRecordEditForm,
    ServiceRecordForm,
    indicators_form,
)
from casework.services import EditConflict
from casework.timeline import timeline_for
from core import audit
from core.db import db
from core.models import Agency
from core.policy import can_edit_case, can_edit_case_note, case_or_404, visible_agencies
from core.security import mark_sensitive

bp = Blueprint("casefile", __name__, url_prefix="/cases/<uuid:case_id>")

# Section -> (label, the personal fields a read of its page shows, for the audit entry).
SECTIONS = {
    "indicators": (_l("Indicators"), ("answer", "note")),
    "assessments": (_l("Assessments"), ("risk_levels", "risk_notes", "plan", "needs", "notes")),
    "consent": (_l("Consent"), ("status", "guardian", "best_interests_decision")),
    "services": (_l("Services"), ("service_type", "provider", "dates", "outcome_note")),
    "notes": (_l("Notes"), ("body", "author")),
    "attachments": (_l("Attachments"), ("original_filename", "description")),
}


@bp.app_template_global()
def case_file_sections() -> list[tuple[str, str]]:
    """Return (endpoint, label) of each case-file section, for the section navigation."""
    return [(f"casefile.{name}", label) for name, (label, _fields) in SECTIONS.items()]


@bp.app_template_global()
def case_timeline(case):
    """Return the case's timeline, newest first, for the case page's timeline partial."""
    return timeline_for(case)


def _case(case_id: uuid.UUID, *, write: bool = False):
    """Load the case the user may see (404) and, for a change, may edit (403)."""
    case = case_or_404(current_user, case_id)
    if case.is_erased:
        # Nothing personal is left to show or change: the case page says why.
        abort(redirect(url_for("casework.detail", case_id=case.id)))
    if write and not can_edit_case(current_user, case):
        abort(403)
    mark_sensitive()
    return case


def _audit_section(case, section: str) -> None:
    # Committed with the response by the audit hook; if that fails, the page is not shown.
    audit.record(
        "case.section_viewed",
        object_type="case",
        object_id=case.id,
        field_names=[f"{section}.{name}" for name in SECTIONS[section][1]],
    )


def _render(case, section: str, status: int = 200, template: str | None = None, **context):
    _audit_section(case, section)
    page = render_template(
        f"casework/file/{template or section}.html",
        case=case,
        section=section,
        is_minor=services.is_minor_case(case),
        may_edit=can_edit_case(current_user, case),
        **context,
    )
    return page, status


def _agency_choices(blank) -> list[SelectChoice]:
    agencies = sorted(db.session.scalars(visible_agencies(current_user)), key=lambda a: a.name)
    return [SelectChoice("", blank)] + [SelectChoice(str(a.id), a.name) for a in agencies]


def _done(message: str, endpoint: str, case_id: uuid.UUID):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for(endpoint, case_id=case_id))


# Indicators --------------------------------------------------------------------------------


@bp.route("/indicators", methods=["GET", "POST"])
def indicators(case_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    definitions = services.checklist_for(case)
    form = indicators_form(definitions, services.indicator_answers(case))
    if request.method == "POST":
        if form.validate():
            services.record_indicator_answers(current_user, case, form.answers(definitions))
            return _done(_("Indicators saved."), "casefile.indicators", case_id)
        return _render(case, "indicators", 400, form=form, groups=_grouped(definitions))
    return _render(case, "indicators", form=form, groups=_grouped(definitions))


def _grouped(definitions: list) -> list[tuple[str, list]]:
    """Return (category label, indicators) in checklist order."""
    groups: dict[str, list] = {}
    for row in definitions:
        groups.setdefault(row.category_label, []).append(row)
    return list(groups.items())


# Assessments -------------------------------------------------------------------------------


def _assessments_page(case, status=200, risk_form=None, needs_form=None):
    risks = db.session.scalars(
        select(RiskAssessment)
        .where(RiskAssessment.case_id == case.id)
        .order_by(RiskAssessment.assessed_at.desc())
    ).all()
    needs = db.session.scalars(
        select(NeedsAssessment)
        .where(NeedsAssessment.case_id == case.id)
        .order_by(NeedsAssessment.assessed_at.desc())
    ).all()
    return _render(
        case,
        "assessments",
        status,
        risk_form=risk_form or RiskAssessmentForm(formdata=None),
        needs_form=needs_form or NeedsAssessmentForm(formdata=None),
        risks=risks,
        needs=needs,
        risk_fields=RISK_FIELDS,
    )


@bp.get("/assessments")
def assessments(case_id: uuid.UUID):
    return _assessments_page(_case(case_id))


@bp.post("/assessments/risk")
def add_risk_assessment(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = RiskAssessmentForm()
    if not form.validate():
        return _assessments_page(case, 400, risk_form=form)
    services.add_risk_assessment(
        current_user, case, form.levels(), notes=form.notes.data, plan=form.plan.data
    )
    return _done(_("Risk assessment saved."), "casefile.assessments", case_id)


@bp.post("/assessments/needs")
def add_needs_assessment(case_id: uuid.UUID):
    case = _case(case_id, write=True)
    form = NeedsAssessmentForm()
    if not form.validate():
        return _assessments_page(case, 400, needs_form=form)
    services.add_needs_assessment(current_user, case, form.needs.data, notes=form.needs_notes.data)
    return _done(_("Needs assessment saved."), "casefile.assessments", case_id)


# Consent -----------------------------------------------------------------------------------


@bp.route("/consent", methods=["GET", "POST"])
def consent(case_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    is_minor = services.is_minor_case(case)
    form = ConsentForm(is_minor=is_minor)
    form.agency.choices = _agency_choices(_("No agency"))
    if request.method == "POST":
        if form.validate():
            try:
                services.record_consent(
                    current_user,
                    case,
                    form.purpose.data,
                    form.decision(form.status.data, form.consent_text_version.data),
                    agency_id=form.agency_id(),
                )
            except services.CaseFileError as error:
                form.given_by.errors.append(str(error))
            else:
                return _done(_("Consent recorded."), "casefile.consent", case_id)
        return _consent_page(case, form, 400)
    return _consent_page(case, form)


def _consent_page(case, form, status=200):
    return _render(
        case,
        "consent",
        status,
        form=form,
        current=services.current_consents(case),
        history=services.consent_history(case),
        given=ConsentStatus.GIVEN.value,
    )


@bp.route("/consent/<uuid:record_id>/withdraw", methods=["GET", "POST"])
def withdraw_consent(case_id: uuid.UUID, record_id: uuid.UUID):
    case = _case(case_id, write=True)
    record = db.session.scalars(
        select(ConsentRecord).where(
            ConsentRecord.case_id == case.id, ConsentRecord.id == str(record_id)
        )
    ).first()
    if record is None:
        abort(404)
    current = services.current_consent(case, record.purpose, record.agency_id)
    if current is None or current.id != record.id or not record.is_given:
        flash(_("This consent is not in force; there is nothing to withdraw."), "warning")
        return redirect(url_for("casefile.consent", case_id=case_id))
    form = ConsentWithdrawForm(is_minor=services.is_minor_case(case))
    if request.method == "POST" and form.validate():
        services.withdraw_consent(
            current_user,
            case,
            ConsentPurpose(record.purpose),
            form.decision(ConsentStatus.WITHDRAWN.value),
            agency_id=record.agency_id,
        )
        return _done(_("Consent withdrawn."), "casefile.consent", case_id)
    status = 400 if request.method == "POST" else 200
    return _render(case, "consent", status, withdraw_form=form, record=record, form=None)


# Services ----------------------------------------------------------------------------------


# Endpoint "casefile.services" like the other sections; "services" names the module here.
@bp.route("/services", methods=["GET", "POST"], endpoint="services")
def services_page(case_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    form = ServiceRecordForm()
    form.provider.choices = _agency_choices(_("Choose…"))
    status = 200
    if request.method == "POST":
        if form.validate():
            services.add_service_record(
                current_user,
                case,
                service_type=form.service_type.data,
                provider_agency_id=int(form.provider.data),
                started_on=form.started_on.data,
                ended_on=form.ended_on.data,
                outcome=form.outcome.data or None,
                outcome_note=form.outcome_note.data or None,
            )
            return _done(_("Service recorded."), "casefile.services", case_id)
        status = 400
    records = db.session.scalars(
        select(ServiceRecord)
        .where(ServiceRecord.case_id == case.id)
        .order_by(ServiceRecord.started_on.desc())
    ).all()
    return _render(case, "services", status, form=form, records=records)


def _child_or_404(model: type, case, object_id: uuid.UUID):
    found = db.session.scalars(
        select(model).where(model.case_id == case.id, model.id == str(object_id))
    ).first()
    if found is None:
        abort(404)
    return found


# Service record field -> its label on the conflict page.
SERVICE_LABELS = {
    "service_type": _l("Service"),
    "provider_agency_id": _l("Provided by"),
    "started_on": _l("Started on"),
    "ended_on": _l("Ended on"),
    "outcome": _l("Outcome"),
    "outcome_note": _l("Outcome note"),
}


def _service_shown(name: str, value) -> str | None:
    """Return a service field's value as the page shows it (labels, names, ISO dates)."""
    if value in (None, ""):
        return None
    if name == "service_type":
        return ServiceType(value).label
    if name == "outcome":
        return ServiceOutcome(value).label
    if name == "provider_agency_id":
        agency = db.session.get(Agency, value)
        return agency.name if agency is not None else str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@bp.route("/services/<uuid:record_id>/edit", methods=["GET", "POST"])
def edit_service(case_id: uuid.UUID, record_id: uuid.UUID):
    case = _case(case_id, write=True)
    record = _child_or_404(ServiceRecord, case, record_id)
    if request.method == "GET":
        saved = services.service_values(record)
        form = ServiceRecordEditForm(
            formdata=None,
            data={
                **saved,
                "provider": str(record.provider_agency_id),
                "outcome": record.outcome or "",
                "version": str(record.version),
            },
        )
    else:
        form = ServiceRecordEditForm()
    form.provider.choices = _agency_choices(_("Choose…"))
    if request.method == "GET":
        return _render(case, "services", template="service_edit", form=form, record=record)
    if not form.validate():
        return _render(case, "services", 400, template="service_edit", form=form, record=record)
    try:
        services.update_service_record(
            current_user, record, form.values(), expected_version=int(form.version.data)
        )
        db.session.commit()
    except services.CaseFileError as error:
        db.session.rollback()
        form.ended_on.errors = [*form.ended_on.errors, str(error)]
        return _render(case, "services", 400, template="service_edit", form=form, record=record)
    except (EditConflict, StaleDataError):
        db.session.rollback()
        return _service_conflict(case_id, record_id, form)
    flash(_("Service saved."), "success")
    return redirect(url_for("casefile.services", case_id=case_id))


def _service_conflict(case_id: uuid.UUID, record_id: uuid.UUID, form: ServiceRecordEditForm):
    """Show the saved service next to what the user typed; a re-submit saves over it."""
    case = _case(case_id, write=True)
    record = _child_or_404(ServiceRecord, case, record_id)
    saved, typed = services.service_values(record), form.values()
    conflicts = [
        {
            "label": SERVICE_LABELS[name],
            "saved": _service_shown(name, saved[name]),
            "typed": _service_shown(name, typed[name]),
        }
        for name in services.SERVICE_FIELDS
        if _service_shown(name, saved[name]) != _service_shown(name, typed[name])
    ]
    # The form now carries the saved version: submitting it again knowingly replaces it.
    form.version.data = str(record.version)
    return _render(
        case,
        "services",
        409,
        template="service_edit",
        form=form,
        record=record,
        conflicts=conflicts,
    )


# Notes -------------------------------------------------------------------------------------


@bp.route("/notes", methods=["GET", "POST"])
def notes(case_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    form = CaseNoteForm()
    status = 200
    if request.method == "POST":
        if form.validate():
            services.add_case_note(current_user, case, form.body.data)
            return _done(_("Note added."), "casefile.notes", case_id)
        status = 400
    rows = db.session.scalars(
        select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.created_at.desc())
    ).all()
    editable = {note.id for note in rows if can_edit_case_note(current_user, note)}
    return _render(case, "notes", status, form=form, notes=rows, editable=editable)


@bp.route("/notes/<uuid:note_id>/edit", methods=["GET", "POST"])
def edit_note(case_id: uuid.UUID, note_id: uuid.UUID):
    case = _case(case_id, write=True)
    note = _child_or_404(CaseNote, case, note_id)
    if not can_edit_case_note(current_user, note):
        abort(403)
    if request.method == "GET":
        form = CaseNoteEditForm(
            formdata=None, data={"body": note.body, "version": str(note.version)}
        )
        return _render(case, "notes", template="note_edit", form=form, note=note)
    form = CaseNoteEditForm()
    if not form.validate():
        return _render(case, "notes", 400, template="note_edit", form=form, note=note)
    try:
        services.edit_case_note(
            current_user, note, form.body.data, expected_version=int(form.version.data)
        )
        db.session.commit()
    except (EditConflict, StaleDataError):
        db.session.rollback()
        case = _case(case_id, write=True)
        note = _child_or_404(CaseNote, case, note_id)
        conflicts = [{"label": _l("Note"), "saved": note.body, "typed": form.body.data}]
        form.version.data = str(note.version)
        return _render(
            case, "notes", 409, template="note_edit", form=form, note=note, conflicts=conflicts
        )
    flash(_("Note saved."), "success")
    return redirect(url_for("casefile.notes", case_id=case_id))


# Attachments -------------------------------------------------------------------------------


@bp.route("/attachments", methods=["GET", "POST"])
def attachments(case_id: uuid.UUID):
    case = _case(case_id, write=request.method == "POST")
    form = AttachmentForm()
    max_bytes = int(current_app.config["HAVEN_ATTACHMENT_MAX_BYTES"])
    status = 200
    if request.method == "POST":
        if form.validate():
            upload = form.file.data
            # Read one byte past the limit: enough to know it is too large, no more.
            content = upload.stream.read(max_bytes + 1)
            try:
                services.add_attachment(
                    current_user,
                    case,
                    filename=upload.filename or "",
                    content=content,
                    max_bytes=max_bytes,
                    description=form.description.data or None,
                )
            except services.CaseFileError as error:
                form.file.errors = [*form.file.errors, str(error)]
            else:
                return _done(_("Attachment uploaded."), "casefile.attachments", case_id)
        status = 400
    return _render(
        case,
        "attachments",
        status,
        form=form,
        attachments=services.attachments_of(case),
        max_megabytes=max(1, max_bytes // (1024 * 1024)),
    )


@bp.get("/attachments/<uuid:attachment_id>")
def download_attachment(case_id: uuid.UUID, attachment_id: uuid.UUID):
    case = _case(case_id)
    attachment = db.session.scalars(
        select(Attachment).where(Attachment.case_id == case.id, Attachment.id == str(attachment_id))
    ).first()
    if attachment is None:
        abort(404)
    content = services.read_attachment(current_user, attachment)
    response = Response(content, content_type=attachment.content_type)
    # The download is named after the reference and number: nothing personal leaks into
    # the browser's download list, file system or a proxy's log.
    name = services.download_name(attachment)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
