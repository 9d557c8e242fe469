"""PDF downloads: case summary, referral form and audit extract.

Each is loaded through the same policy as its page (404 for whom may not see it), audited
with field names only, never cached (``no-store``), and named by the reference alone.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from flask import Blueprint, Response, abort, request
from flask_babel import format_datetime
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from casework import child_protection, reintegration, returns
from casework.intake import case_sections, nrm_summary, safeguarding
from casework.models import CASE_STATUS_LABELS, CaseStatus
from casework.reference import label_for
from casework.timeline import timeline_for
from core import audit, policy
from core.audit import AuditEntry
from core.audit_views import AuditFilterForm, AuditRow, _filtered
from core.db import db, utcnow
from core.models import Agency, User
from core.security import mark_sensitive
from referrals import reconsiderations
from referrals.decisions import decisions_of
from referrals.models import EXCEPTION_LABELS, Referral
from referrals.services import disclosed_field_names, receipts_of
from referrals.sharing import RISK_LABELS, shared_content
from reports.pdf import render_pdf

bp = Blueprint("pdf", __name__)

# The newest entries an audit extract lists; narrower filters reach older ones.
AUDIT_EXTRACT_LIMIT = 500
# The audit extract's columns: metadata only (DESIGN "Audit log"), as the chain hashes them.
AUDIT_COLUMNS = audit.CONTENT_COLUMNS


def _filename(reference: str, kind: str) -> str:
    """Return the download's file name: the reference and the kind, nothing personal."""
    safe = re.sub(r"[^A-Za-z0-9-]", "", reference) or "haven"
    return f"{safe}-{kind}.pdf"


def _pdf_response(body: bytes, filename: str) -> Response:
    mark_sensitive()
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(template: str, reference: str, now: datetime, **context) -> bytes:
    return render_pdf(
        template,
        reference=reference,
        generated_by=current_user.display_name,
        generated_at=now,
        **context,
    )


@bp.get("/cases/<uuid:case_id>/summary.pdf")
@login_required
def case_summary(case_id: uuid.UUID):
    """Download the case summary: what the case page shows, for the case's own staff."""
    # The whole-file rule of the case page: other agencies, coordinators, admins, analysts
    # and auditors get a 404 (and the refused attempt is audited).
    case = policy.case_or_404(current_user, case_id)
    now = utcnow()
    filename = _filename(case.reference, "summary")
    if case.is_erased:
        # Crypto-shredded: the PDF only says so.
        body = _render("case_erased.html", case.reference, now, case=case)
        audit.record("case.summary_downloaded", object_type="case", object_id=case.id)
        return _pdf_response(body, filename)
    sections = case_sections(case)
    referrals = db.session.scalars(
        policy.visible_referrals_sent(current_user)
        .where(Referral.case_id == case.id)
        .options(joinedload(Referral.receiving_agency))
        .order_by(Referral.created_at.desc())
    ).all()
    timeline = timeline_for(case)
    path = nrm_path_sections(case)
    body = _render(
        "case_summary.html",
        case.reference,
        now,
        case=case,
        sections=sections,
        nrm=nrm_summary(case),
        safeguarding=safeguarding(case),
        status_label=CASE_STATUS_LABELS[CaseStatus(case.status)],
        referrals=referrals,
        timeline=timeline,
        path=path,
    )
    names = [row.name for section in sections for row in section.rows]
    names += path["field_names"]
    if timeline:
        names.append("timeline.summary")
    # Committed with the response by the audit hook; if that fails, no PDF is sent.
    audit.record(
        "case.summary_downloaded", object_type="case", object_id=case.id, field_names=names
    )
    return _pdf_response(body, filename)


# The personal (encrypted) fields the child-protection section prints, for the audit entry.
CHILD_FIELDS = ("guardian.guardian_name",)


def nrm_path_sections(case) -> dict:
    """Return the NRM path sections of the case summary the reader may see.

    The same rules as the case page's panels: the child path for a minor's case to whom may
    view it, return and reintegration to whom may view aftercare, the status decisions (coded
    outcome and reasons only, never the coordinator's free-text reason) and the
    reconsideration requests the reader may see. A section the reader may not see is None.
    """
    child = None
    names: list[str] = []
    if case.is_minor and policy.can_view_child_path(current_user, case):
        child = {
            "path": child_protection.child_path(case),
            "assessments": child_protection.history_of(
                child_protection.FamilyAssessment,
                case,
                child_protection.FamilyAssessment.assessed_on,
            ),
        }
        if child["path"].guardian is not None:
            names += CHILD_FIELDS
    aftercare = None
    if policy.can_view_aftercare(current_user, case):
        plans = returns.return_plans_of(case)
        aftercare = {
            "plan": next((plan for plan in plans if plan.is_open), plans[0] if plans else None),
            "reintegration": reintegration.reintegration_plan_of(case),
            "measures": reintegration.measures_of(case),
            "visits": reintegration.visits_of(case),
            "today": reintegration.local_today(),
        }
        plan = aftercare["plan"]
        if plan is not None:
            aftercare["country"] = label_for("country", plan.destination_country)
            aftercare["region"] = (
                label_for("region", plan.destination_region) if plan.destination_region else None
            )
    requests = [
        item
        for item in reconsiderations.reconsiderations_of(case)
        if policy.can_view_reconsideration(current_user, item)
    ]
    return {
        "child": child,
        "aftercare": aftercare,
        "decisions": decisions_of(case),
        "pending": [item for item in requests if item.is_open],
        "field_names": names,
    }


@bp.get("/referrals/<uuid:referral_id>/form.pdf")
@login_required
def referral_form(referral_id: uuid.UUID):
    """Download the referral form: exactly the sections the receiver was shared."""
    referral = policy.referral_or_404(current_user, referral_id)
    if not policy.can_download_referral_form(current_user, referral):
        # The receiver sees the shared sections only while it works the referral.
        audit.record_denied("referral.form_denied", object_type="referral", object_id=referral.id)
        abort(404)
    receipts = receipts_of(referral)
    receipt = receipts[-1] if receipts else None
    disclosed = receipt.sections if receipt is not None else []
    if current_user.agency_id == referral.receiving_agency_id:
        visible = set(policy.referral_sections(current_user, referral))
        disclosed = [section for section in disclosed if section in visible]
    case = referral.case
    blocks = shared_content(case, disclosed)
    may_read = policy.can_read_referral_reason(current_user, referral)
    now = utcnow()
    body = _render(
        "referral_form.html",
        case.reference,
        now,
        referral=referral,
        case=case,
        receipt=receipt,
        blocks=blocks,
        may_read=may_read,
        erased=case.is_erased,
        exception_labels=EXCEPTION_LABELS,
        risk_labels=RISK_LABELS,
    )
    names = [f"case.{name}" for name in disclosed_field_names(block.section for block in blocks)]
    if may_read:
        names += ["reason", *(["exception_note"] if referral.consent_exception else [])]
    audit.record(
        "referral.form_downloaded",
        object_type="referral",
        object_id=referral.id,
        field_names=names,
    )
    return _pdf_response(body, _filename(case.reference, "referral"))


@bp.get("/audit/extract.pdf")
@login_required
def audit_extract():
    """Download the audit log as the auditor page filters it (metadata only)."""
    if not policy.can_view_audit_log(current_user):
        audit.record_denied("audit.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)
    form = AuditFilterForm(formdata=request.args)
    # Like the page: an invalid filter value is ignored.
    form.validate()
    query = (
        select(AuditEntry, User.display_name, Agency.name)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .outerjoin(Agency, Agency.id == AuditEntry.agency_id)
        .order_by(AuditEntry.id.desc())
        .limit(AUDIT_EXTRACT_LIMIT + 1)
    )
    found = db.session.execute(_filtered(query, form)).all()
    rows = [AuditRow(entry, user_name, agency_name) for entry, user_name, agency_name in found]
    truncated = len(rows) > AUDIT_EXTRACT_LIMIT
    rows = rows[:AUDIT_EXTRACT_LIMIT]
    filters = [
        (field.label.text, _filter_text(field))
        for field in form
        if field.data not in (None, "") and not field.errors
    ]
    now = utcnow()
    reference = "HVN-AUDIT-" + format_datetime(now, "yyyyMMdd-HHmm")
    body = _render(
        "audit_extract.html",
        reference,
        now,
        rows=rows,
        filters=filters,
        truncated=truncated,
    )
    audit.record(
        "audit.extract_downloaded",
        object_type="audit_log",
        field_names=[
            *AUDIT_COLUMNS,
            *(f"filter.{field.name}" for field in form if field.data not in (None, "")),
        ],
    )
    return _pdf_response(body, _filename(reference, "extract"))


def _filter_text(field) -> str:
    """Return a filter's value as the auditor chose it (a choice's label, a date's text)."""
    for choice in getattr(field, "choices", None) or ():
        value, label, *_rest = choice
        if value == field.data:
            return str(label)
    return str(field.data)
