"""The national coordinator's duplicate queue: open flags, the reasoned comparison, resolution.

Only the coordinator (of the national coordinator agency) may open these pages; everyone
else gets 404 and the refused visit is audited. The queue shows references and agency types
only. Person fields are shown only in the response to a comparison request that carries a
written reason, which is audited with it; nothing personal ever goes into a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from casework.duplicates import (
    DuplicateFlag,
    DuplicateStatus,
    FlagAlreadyResolved,
    NotCompared,
    compare_duplicate_flag,
    duplicate_notice,
    open_flags,
    resolve_duplicate_flag,
)
from casework.forms import FIELD_LABELS
from casework.models import Case
from casework.services import PERSON_FIELDS, person_values
from core import audit
from core.db import db
from core.forms import HavenForm
from core.models import AgencyType
from core.policy import MAX_INTEGER_ID, can_resolve_duplicates
from core.security import mark_sensitive

bp = Blueprint("duplicates", __name__, url_prefix="/duplicates")

PAGE_SIZE = 50
INDEX_LABELS = {
    "name_birth_year": _l("Full name and year of birth"),
    "document_number": _l("Identity document number"),
    "phone": _l("Phone"),
}


class DuplicateCompareForm(HavenForm):
    reason = TextAreaField(
        _l("Why do you need to compare these cases?"),
        validators=[
            DataRequired(message=_l("Write the reason for the comparison.")),
            Length(min=10, max=1000, message=_l("Between %(min)d and %(max)d characters.")),
        ],
    )


class DuplicateResolveForm(HavenForm):
    decision = HiddenField(
        validators=[AnyOf([DuplicateStatus.SAME_PERSON.value, DuplicateStatus.DIFFERENT.value])]
    )


@dataclass(frozen=True)
class QueueRow:
    id: int
    created_at: datetime
    matched_on: list[str]
    reference_a: str
    agency_type_a: str
    reference_b: str
    agency_type_b: str


@bp.app_template_global("possible_duplicate")
def possible_duplicate(case: Case) -> str | None:
    """Tell a case page whether to show the owner's duplicate notice (status only)."""
    return duplicate_notice(case)


def _require_coordinator() -> None:
    if not can_resolve_duplicates(current_user):
        audit.record_denied("duplicates.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def _flag_or_404(flag_id: int) -> DuplicateFlag:
    if not 0 < flag_id <= MAX_INTEGER_ID:
        abort(404)
    flag = db.session.get(DuplicateFlag, flag_id)
    if flag is None:
        abort(404)
    return flag


def _agency_type(case: Case) -> str:
    return AgencyType(case.owner_agency.type).label


@bp.get("/")
def index():
    _require_coordinator()
    after = request.args.get("after", type=int)
    anchor = None
    if after is not None:
        flag = _flag_or_404(after)
        anchor = (flag.created_at, flag.id)
    flags = open_flags(after=anchor, limit=PAGE_SIZE + 1)
    more = len(flags) > PAGE_SIZE
    flags = flags[:PAGE_SIZE]
    rows = [
        QueueRow(
            id=flag.id,
            created_at=flag.created_at,
            matched_on=[str(INDEX_LABELS.get(name, name)) for name in flag.matched_names],
            reference_a=flag.case_a.reference,
            agency_type_a=_agency_type(flag.case_a),
            reference_b=flag.case_b.reference,
            agency_type_b=_agency_type(flag.case_b),
        )
        for flag in flags
    ]
    return render_template(
        "duplicates/index.html",
        rows=rows,
        is_first=after is None,
        next_after=rows[-1].id if more else None,
    )


@bp.route("/<int:flag_id>/compare", methods=["GET", "POST"])
def compare(flag_id: int):
    _require_coordinator()
    flag = _flag_or_404(flag_id)
    form = DuplicateCompareForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("duplicates/reason.html", flag=flag, form=form), status
    mark_sensitive()
    compare_duplicate_flag(current_user, flag, form.reason.data, field_names=PERSON_FIELDS)
    sides = [_side(flag.case_a), _side(flag.case_b)]
    rows = [
        {
            "label": FIELD_LABELS[name],
            "values": [side["values"].get(name) for side in sides],
            "is_date": name == "date_of_birth",
        }
        for name in PERSON_FIELDS
    ]
    response = render_template(
        "duplicates/compare.html",
        flag=flag,
        sides=sides,
        rows=rows,
        matched_on=[INDEX_LABELS.get(name, name) for name in flag.matched_names],
        resolve_form=DuplicateResolveForm(),
    )
    db.session.commit()
    return response


def _side(case: Case) -> dict:
    erased = case.is_erased
    return {
        "reference": case.reference,
        "agency": case.owner_agency.name,
        "agency_type": _agency_type(case),
        "created_at": case.created_at,
        "erased": erased,
        "values": {} if erased else person_values(case),
    }


@bp.post("/<int:flag_id>/resolve")
def resolve(flag_id: int):
    _require_coordinator()
    flag = _flag_or_404(flag_id)
    form = DuplicateResolveForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        resolve_duplicate_flag(current_user, flag, form.decision.data)
    except FlagAlreadyResolved:
        flash(_("This possible duplicate was already resolved."), "warning")
        return redirect(url_for("duplicates.index"))
    except NotCompared:
        flash(_("Compare the two cases, with a reason, before deciding."), "warning")
        return redirect(url_for("duplicates.compare", flag_id=flag_id))
    decision = DuplicateStatus(flag.status)
    db.session.commit()
    flash(_("Recorded: %(decision)s.", decision=decision.label), "success")
    return redirect(url_for("duplicates.index"))
