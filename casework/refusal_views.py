"""Anonymous refusal pages: the own agency's list and the form that records one."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from casework.reference import labels_for
from casework.refusal_forms import RefusalForm
from casework.refusals import REFUSAL_CODED_FIELDS, NrmRefusal, record_refusal
from core.db import db
from core.models import AgencyType
from core.policy import can_list_refusals, can_record_refusal, visible_refusals

bp = Blueprint("refusals", __name__, url_prefix="/refusals")

LIST_LIMIT = 500


@bp.get("/")
def index():
    if not can_list_refusals(current_user):
        abort(404)
    refusals = db.session.scalars(
        visible_refusals(current_user)
        .options(selectinload(NrmRefusal.codes))
        .order_by(NrmRefusal.created_at.desc(), NrmRefusal.id)
        .limit(LIST_LIMIT)
    ).all()
    # Codes only: nothing personal is read, so nothing is audited here.
    return render_template(
        "casework/refusals/index.html",
        rows=_rows(refusals),
        may_record=can_record_refusal(current_user),
    )


def _rows(refusals: list[NrmRefusal]) -> list[dict[str, object]]:
    """Return the list's rows with every code as its label (looked up once per page)."""
    wanted = set()
    for refusal in refusals:
        for name, list_name in REFUSAL_CODED_FIELDS.items():
            value = getattr(refusal, name)
            if list_name and value:
                wanted.add((list_name, value))
        wanted.update((row.list_name, row.code) for row in refusal.codes)
    labels = labels_for(wanted)

    def label(list_name: str | None, code: str | None) -> str | None:
        if not code:
            return None
        return labels.get((list_name, code), code) if list_name else code

    rows = []
    for refusal in refusals:
        row: dict[str, object] = {
            name: label(list_name, getattr(refusal, name))
            for name, list_name in REFUSAL_CODED_FIELDS.items()
        }
        row["month"] = refusal.month
        row["is_minor"] = refusal.is_minor
        row["services_offered"] = refusal.services_offered
        row["agency_type"] = AgencyType(refusal.identifying_agency_type).label
        row["exploitation_form"] = [label(code.list_name, code.code) for code in refusal.codes]
        rows.append(row)
    return rows


@bp.route("/new", methods=["GET", "POST"])
def create():
    if not can_record_refusal(current_user):
        abort(404)
    form = RefusalForm()
    form.load_choices()
    if request.method == "GET":
        return render_template("casework/refusals/create.html", form=form)
    if not form.validate():
        return render_template("casework/refusals/create.html", form=form), 400
    record_refusal(current_user, form.refusal_data())
    db.session.commit()
    flash(_("The refusal was recorded, without any personal data."), "success")
    return redirect(url_for("refusals.index"))
