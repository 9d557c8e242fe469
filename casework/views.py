"""Case pages: the agency's case list, opening a case, reading it (audited) and editing it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import tuple_
from sqlalchemy.orm.exc import StaleDataError

from casework.forms import FIELD_LABELS, CaseEditForm, CaseForm
from casework.models import Case, CaseStatus
from casework.services import (
    PERSON_FIELDS,
    EditConflict,
    conflicting_fields,
    open_case,
    person_values,
    update_case,
)
from core import audit
from core.db import db
from core.policy import (
    can_create_case,
    can_edit_case,
    can_list_cases,
    case_or_404,
    visible_cases,
)
from core.security import mark_sensitive

bp = Blueprint("casework", __name__, url_prefix="/cases")

PAGE_SIZE = 50
# The list shows names only; reading them is audited like any read of personal data.
LIST_FIELDS = ("given_name", "family_name", "aliases")

STATUS_LABELS = {CaseStatus.OPEN: _l("Open"), CaseStatus.CLOSED: _l("Closed")}
STATUS_BADGES = {CaseStatus.OPEN: "badge--ok", CaseStatus.CLOSED: ""}


@dataclass(frozen=True)
class CaseRow:
    id: str
    reference: str
    display_name: str
    status_label: str
    status_badge: str
    created_at: datetime


@dataclass(frozen=True)
class CasePage:
    rows: list[CaseRow]
    is_first: bool
    # Id of the last case shown, when older cases follow; the next page starts after it.
    next_after: str | None


def _status(case: Case) -> tuple[str, str]:
    status = CaseStatus(case.status)
    return str(STATUS_LABELS[status]), STATUS_BADGES[status]


def _display_name(case: Case) -> str:
    name = " ".join(part for part in (case.given_name, case.family_name) if part)
    return name or (case.aliases or "")


@bp.get("/")
def index():
    if not can_list_cases(current_user):
        abort(404)
    mark_sensitive()
    scope = visible_cases(current_user)
    after = request.args.get("after")
    query = scope.order_by(Case.created_at.desc(), Case.id.desc()).limit(PAGE_SIZE + 1)
    if after is not None:
        anchor = _page_anchor(scope, after)
        query = query.where(tuple_(Case.created_at, Case.id) < tuple_(*anchor))
    cases = list(db.session.scalars(query))
    more = len(cases) > PAGE_SIZE
    cases = cases[:PAGE_SIZE]
    rows = []
    for case in cases:
        label, badge = _status(case)
        rows.append(
            CaseRow(case.id, case.reference, _display_name(case), label, badge, case.created_at)
        )
    if rows:
        audit.record("case.listed", object_type="case", field_names=LIST_FIELDS)
    page = CasePage(rows, is_first=after is None, next_after=rows[-1].id if more else None)
    return render_template(
        "casework/index.html", page=page, may_create=can_create_case(current_user)
    )


def _page_anchor(scope, after: str) -> tuple[datetime, str]:
    """Return (created_at, id) of the case a page starts after, loaded through the scope."""
    try:
        case_id = str(uuid.UUID(after))
    except ValueError:
        abort(404)
    anchor = db.session.execute(
        scope.with_only_columns(Case.created_at, Case.id).where(Case.id == case_id)
    ).first()
    if anchor is None:
        abort(404)
    return anchor.created_at, anchor.id


@bp.route("/new", methods=["GET", "POST"])
def create():
    if not can_create_case(current_user):
        abort(404)
    mark_sensitive()
    form = CaseForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("casework/create.html", form=form), status
    case = open_case(current_user, form.person_data())
    case_id, reference = case.id, case.reference
    db.session.commit()
    flash(_("Case %(reference)s opened.", reference=reference), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


@bp.get("/<uuid:case_id>")
def detail(case_id: uuid.UUID):
    case = case_or_404(current_user, case_id)
    mark_sensitive()
    values = person_values(case)
    fields = [
        {
            "name": name,
            "label": FIELD_LABELS[name],
            "value": values[name],
            "is_date": name == "date_of_birth",
        }
        for name in PERSON_FIELDS
    ]
    # Committed with the response by the audit hook; if that fails, the page is not shown.
    audit.record("case.viewed", object_type="case", object_id=case.id, field_names=PERSON_FIELDS)
    label, badge = _status(case)
    return render_template(
        "casework/detail.html",
        case=case,
        fields=fields,
        status={"label": label, "badge": badge},
        may_edit=can_edit_case(current_user, case),
    )


@bp.route("/<uuid:case_id>/edit", methods=["GET", "POST"])
def edit(case_id: uuid.UUID):
    case = case_or_404(current_user, case_id)
    if not can_edit_case(current_user, case):
        abort(403)
    mark_sensitive()
    if request.method == "GET":
        form = CaseEditForm(data={**person_values(case), "version": str(case.version)})
        audit.record(
            "case.viewed", object_type="case", object_id=case.id, field_names=PERSON_FIELDS
        )
        return render_template("casework/edit.html", form=form, case=case, conflicts=None)
    form = CaseEditForm()
    if not form.validate():
        return render_template("casework/edit.html", form=form, case=case, conflicts=None), 400
    try:
        update_case(current_user, case, form.person_data(), expected_version=int(form.version.data))
        reference = case.reference
        db.session.commit()
    except (EditConflict, StaleDataError):
        db.session.rollback()
        return _conflict_page(case_id, form)
    flash(_("Case %(reference)s saved.", reference=reference), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


def _conflict_page(case_id: uuid.UUID, form: CaseEditForm):
    """Show what is saved now next to what the user typed; a re-submit saves over it."""
    case = case_or_404(current_user, case_id)
    typed = form.person_data()
    names = conflicting_fields(case, typed)
    conflicts = [
        {
            "name": name,
            "label": FIELD_LABELS[name],
            "saved": _shown(getattr(case, name)),
            "typed": _shown(typed[name]),
        }
        for name in names
    ]
    # The form now carries the saved version: submitting it again replaces that version,
    # knowingly, with what the user typed.
    form.version.data = str(case.version)
    if names:
        audit.record("case.viewed", object_type="case", object_id=case.id, field_names=names)
    return render_template("casework/edit.html", form=form, case=case, conflicts=conflicts), 409


def _shown(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value
