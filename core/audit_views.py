"""Auditor pages: the audit log with filters, and "verify now". Metadata only, no case data.

Only auditors may open them; everyone else signed in gets 404 (and the refused visit is
audited), a visitor who is not signed in is sent to the login page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import to_utc
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from core import audit, policy
from core.audit import OUTCOME_LABELS, AuditEntry, Outcome
from core.db import db
from core.forms import HavenForm
from core.models import Agency, User

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE_SIZE = 50
MAX_ID = 2**63 - 1


class AuditFilterForm(HavenForm):
    """The audit list filter: a GET form, so no CSRF token (it changes nothing)."""

    class Meta:
        csrf = False

    action = StringField(
        _l("Action starts with"), validators=[Optional(), Length(max=audit.MAX_NAME_LENGTH)]
    )
    user = IntegerField(_l("User id"), validators=[Optional(), NumberRange(min=1, max=MAX_ID)])
    object_type = StringField(
        _l("Object type"), validators=[Optional(), Length(max=audit.MAX_NAME_LENGTH)]
    )
    object_id = StringField(
        _l("Object id"), validators=[Optional(), Length(max=audit.MAX_NAME_LENGTH)]
    )
    outcome = SelectField(
        _l("Outcome"),
        choices=[
            SelectChoice("", _l("Any")),
            *(SelectChoice(outcome.value, OUTCOME_LABELS[outcome]) for outcome in Outcome),
        ],
        default="",
    )
    date_from = DateField(_l("From (date)"), validators=[Optional()])
    date_to = DateField(_l("To (date, inclusive)"), validators=[Optional()])


class VerifyForm(HavenForm):
    """The "verify now" button: the CSRF token only."""


@dataclass(frozen=True)
class AuditRow:
    entry: AuditEntry
    user_name: str | None
    agency_name: str | None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    # Keyset pagination by id, newest first: the next page holds ids below this one.
    next_before: int | None
    is_first: bool


def _require_auditor() -> None:
    if not policy.can_view_audit_log(current_user):
        # Denied attempts are audited too; the after-request hook commits the entry.
        audit.record_denied("audit.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def _local_midnight_utc(day: date) -> datetime:
    """Return the start of a day in the user's time zone, as an aware UTC datetime."""
    return to_utc(datetime.combine(day, time.min)).replace(tzinfo=UTC)


def _filtered(query: Select, form: AuditFilterForm) -> Select:
    """Narrow the query by the valid filter fields; an invalid one is ignored."""
    data = {name: field.data for name, field in form._fields.items() if not field.errors}
    if data.get("action"):
        query = query.where(AuditEntry.action.startswith(data["action"].strip(), autoescape=True))
    if data.get("user"):
        query = query.where(AuditEntry.user_id == data["user"])
    if data.get("object_type"):
        query = query.where(AuditEntry.object_type == data["object_type"].strip())
    if data.get("object_id"):
        query = query.where(AuditEntry.object_id == data["object_id"].strip())
    if data.get("outcome"):
        query = query.where(AuditEntry.outcome == data["outcome"])
    if data.get("date_from"):
        query = query.where(AuditEntry.occurred_at >= _local_midnight_utc(data["date_from"]))
    if data.get("date_to"):
        end = _local_midnight_utc(data["date_to"] + timedelta(days=1))
        query = query.where(AuditEntry.occurred_at < end)
    return query


def audit_page(form: AuditFilterForm, before: int | None) -> AuditPage:
    """Return one page of entries matching the filter, newest first, with names joined."""
    query = (
        select(AuditEntry, User.display_name, Agency.name)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .outerjoin(Agency, Agency.id == AuditEntry.agency_id)
        .order_by(AuditEntry.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    query = _filtered(query, form)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    found = db.session.execute(query).all()
    rows = [AuditRow(entry, user_name, agency_name) for entry, user_name, agency_name in found]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return AuditPage(
        rows=rows,
        next_before=rows[-1].entry.id if more else None,
        is_first=before is None,
    )


def _filter_args(form: AuditFilterForm) -> dict[str, str]:
    """Return the filter as query arguments, for the pagination links."""
    return {
        name: request.args[name]
        for name in form._fields
        if request.args.get(name) and not form[name].errors
    }


@bp.get("/")
@login_required
def index():
    _require_auditor()
    form = AuditFilterForm(formdata=request.args)
    # An invalid filter value is shown as an error and ignored: this form only narrows a list.
    form.validate()
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_ID:
        abort(404)
    page = audit_page(form, before)
    return render_template(
        "audit/index.html",
        page=page,
        filter_form=form,
        filter_args=_filter_args(form),
        verify_form=VerifyForm(),
    )


@bp.post("/verify")
@login_required
def verify():
    _require_auditor()
    form = VerifyForm()
    if not form.validate_on_submit():
        abort(400)
    result = audit.verify_chain()
    audit.record(
        "audit.verified",
        object_type="audit_log",
        object_id=result.head_seq,
        outcome=Outcome.ALLOWED,
    )
    db.session.commit()
    flash(result.summary, "success" if result.ok else "error")
    return redirect(url_for("audit.index"))
