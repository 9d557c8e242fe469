"""Case pages: the agency's case list, opening a case, reading it (audited) and editing it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_date, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from casework.forms import CaseEditForm, CaseForm
from casework.intake import case_sections, coded_rows, conflict_rows, nrm_summary, safeguarding
from casework.models import CASE_STATUS_LABELS, Case, CaseStatus
from casework.reference import label_for
from casework.search import (
    SORT_LABELS,
    BadAnchor,
    CaseFilterForm,
    CaseSearchForm,
    ListedCase,
    available_filters,
    case_page,
    search_cases,
)
from casework.services import (
    PERSON_FIELDS,
    EditConflict,
    case_values,
    conflicting_fields,
    open_case,
    update_case,
)
from casework.supervision import confirmed_erasure
from core import audit
from core.db import db
from core.policy import (
    can_create_case,
    can_edit_case,
    can_list_cases,
    can_read_case_file,
    case_or_404,
)
from core.security import mark_sensitive

bp = Blueprint("casework", __name__, url_prefix="/cases")

PAGE_SIZE = 50
# The list shows names only; reading them is audited like any read of personal data.
LIST_FIELDS = ("given_name", "family_name", "aliases")

STATUS_LABELS = CASE_STATUS_LABELS
STATUS_BADGES = {
    CaseStatus.DRAFT: "badge--warn",
    CaseStatus.OPEN: "badge--ok",
    CaseStatus.CLOSED: "",
}


@dataclass(frozen=True)
class CaseRow:
    id: str
    reference: str
    display_name: str
    status_label: str
    status_badge: str
    created_at: datetime
    # created_at as the page shows it (the |date filter's output), formatted once per day.
    opened: str = ""
    # The case page's address (url_for once per page, not once per row).
    url: str = ""
    # A minor's case whose guardian appointment is overdue (the child path).
    guardian_overdue: bool = False
    # A follow-up visit of the case is past its due day (return and reintegration).
    follow_up_overdue: bool = False


@dataclass(frozen=True)
class CasePage:
    rows: list[CaseRow]
    is_first: bool
    # Id of the last case shown, when older cases follow; the next page starts after it.
    next_after: str | None


def _status(case: Case | ListedCase) -> tuple[str, str]:
    status = CaseStatus(case.status)
    return str(STATUS_LABELS[status]), STATUS_BADGES[status]


def _display_name(case: Case | ListedCase) -> str:
    if case.is_erased:
        return str(_l("(personal data erased)"))
    name = " ".join(part for part in (case.given_name, case.family_name) if part)
    return name or (case.aliases or "")


@bp.route("/", methods=["GET", "POST"])
def index():
    """List the agency's cases (filters in the query string) or, on POST, search them.

    The search is a POST so its terms (names, documents, phones) never reach a URL, a
    browser history or an access log; its results are rendered directly, never stored.
    """
    if not can_list_cases(current_user):
        abort(404)
    mark_sensitive()
    search_form = CaseSearchForm()
    if request.method == "POST" and search_form.validate_on_submit():
        # The results page shows no filter form and no list: neither is built.
        return render_template(
            "casework/index.html",
            page=None,
            results=_search_rows(search_form),
            filter_form=None,
            filter_args={},
            available_filters=frozenset(),
            sort_label="",
            search_form=search_form,
            may_create=can_create_case(current_user),
        )
    filter_form = CaseFilterForm(formdata=request.args)
    # An invalid filter value is shown as an error and ignored: the form only narrows a list.
    filter_form.validate()
    page, results, status = None, None, 200
    criteria = filter_form.criteria()
    if request.method == "POST":
        status = 400
    else:
        try:
            found = case_page(current_user, criteria, request.args.get("after"), listed=True)
        except BadAnchor:
            abort(404)
        rows = _mark_follow_up_overdue(_mark_guardian_overdue(_case_rows(found.cases)))
        if rows:
            audit.record("case.listed", object_type="case", field_names=LIST_FIELDS)
        page = CasePage(rows, is_first=found.is_first, next_after=found.next_after)
    return render_template(
        "casework/index.html",
        page=page,
        results=results,
        filter_form=filter_form,
        filter_args=_filter_args(filter_form),
        available_filters=available_filters(),
        sort_label=SORT_LABELS[criteria.sort],
        search_form=search_form,
        may_create=can_create_case(current_user),
    ), status


def _case_rows(cases: list[Case] | list[ListedCase]) -> list[CaseRow]:
    """Return the list's rows; labels and dates are translated once per page, not per row."""
    statuses: dict[str, tuple[str, str]] = {}
    days: dict[date, str] = {}
    erased = None
    rows = []
    zone = get_timezone()
    # Case ids are UUIDs: build each address from one url_for with a stand-in id.
    stand_in = "00000000-0000-0000-0000-000000000000"
    address = url_for("casework.detail", case_id=uuid.UUID(stand_in))
    for case in cases:
        status = statuses.get(case.status)
        if status is None:
            status = statuses[case.status] = _status(case)
        # What to_user_timezone does, with the zone looked up once per page.
        day = zone.normalize(case.created_at.astimezone(zone)).date()
        opened = days.get(day)
        if opened is None:
            opened = days[day] = format_date(day, "medium")
        # An erased case stays listed (its coded fields remain); its names are gone.
        if case.is_erased:
            erased = erased or _("(personal data erased)")
            name = erased
        else:
            name = _display_name(case)
        url = address.replace(stand_in, str(uuid.UUID(case.id)))
        rows.append(CaseRow(case.id, case.reference, name, *status, case.created_at, opened, url))
    return rows


def _mark_guardian_overdue(rows: list[CaseRow]) -> list[CaseRow]:
    """Mark the rows of minors whose guardian appointment is overdue (one query a page)."""
    import dataclasses

    from casework.child_protection import guardian_overdue_ids

    overdue = guardian_overdue_ids([row.id for row in rows])
    return [
        dataclasses.replace(row, guardian_overdue=True) if row.id in overdue else row
        for row in rows
    ]


def _mark_follow_up_overdue(rows: list[CaseRow]) -> list[CaseRow]:
    """Mark the rows whose case has a follow-up visit overdue (one query for the page)."""
    if not rows:
        return rows
    import dataclasses

    from casework.reintegration import cases_with_overdue_follow_up

    overdue = cases_with_overdue_follow_up([row.id for row in rows])
    return [
        dataclasses.replace(row, follow_up_overdue=True) if row.id in overdue else row
        for row in rows
    ]


def _search_rows(form: CaseSearchForm) -> dict:
    """Run the search; audit it when it found something (index names only, never terms)."""
    result = search_cases(current_user, form.terms())
    rows = _mark_follow_up_overdue(_mark_guardian_overdue(_case_rows(result.cases)))
    if rows:
        audit.record(
            "case.searched",
            object_type="case",
            field_names=[*result.searched_on, *LIST_FIELDS],
        )
    return {"rows": rows, "incomplete": result.incomplete}


def _filter_args(form: CaseFilterForm) -> dict[str, str]:
    """Return the valid filters as query arguments, for the pagination links."""
    return {
        name: request.args[name]
        for name in form._fields
        if request.args.get(name) and not form[name].errors
    }


@bp.route("/new", methods=["GET", "POST"])
def create():
    if not can_create_case(current_user):
        abort(404)
    mark_sensitive()
    form = CaseForm()
    form.load_choices()
    if request.method == "GET":
        return render_template("casework/create.html", form=form)
    # "Save as draft" checks formats only; "Open the case" checks the required fields too.
    draft = request.form.get("action") == "draft"
    if not (form.validate() and (draft or form.check_complete())):
        return render_template("casework/create.html", form=form), 400
    case = open_case(current_user, form.case_data(), draft=draft)
    case_id, reference = case.id, case.reference
    db.session.commit()
    if draft:
        flash(_("Draft %(reference)s saved.", reference=reference), "success")
    else:
        flash(_("Case %(reference)s opened.", reference=reference), "success")
    return redirect(url_for("casework.detail", case_id=case_id))


@bp.get("/<uuid:case_id>")
def detail(case_id: uuid.UUID):
    case = case_or_404(current_user, case_id, whole_file=False)
    if not can_read_case_file(current_user, case):
        # The national coordinator reads only what the status-decision referral shares.
        return redirect(url_for("decisions.case", case_id=case_id))
    mark_sensitive()
    if case.is_erased:
        # Crypto-shredded: nothing personal is left to read, only the reference and codes.
        return render_template(
            "casework/supervision/erased.html",
            case=case,
            erasure=confirmed_erasure(case),
            coded=coded_rows(case),
            nrm=nrm_summary(case),
            closure_reason=label_for("closure_reason", case.closure_reason),
        )
    sections = case_sections(case)
    # Committed with the response by the audit hook; if that fails, the page is not shown.
    audit.record("case.viewed", object_type="case", object_id=case.id, field_names=PERSON_FIELDS)
    label, badge = _status(case)
    return render_template(
        "casework/detail.html",
        case=case,
        sections=sections,
        nrm=nrm_summary(case),
        safeguarding=safeguarding(case),
        status={"label": label, "badge": badge},
        may_edit=can_edit_case(current_user, case),
    )


@bp.route("/<uuid:case_id>/edit", methods=["GET", "POST"])
def edit(case_id: uuid.UUID):
    case = case_or_404(current_user, case_id)
    if not can_edit_case(current_user, case):
        abort(403)
    mark_sensitive()
    saved = case_values(case)
    if request.method == "GET":
        form = CaseEditForm(data={**saved, "version": str(case.version)})
        form.load_choices(saved)
        audit.record(
            "case.viewed", object_type="case", object_id=case.id, field_names=PERSON_FIELDS
        )
        return render_template("casework/edit.html", form=form, case=case, conflicts=None)
    form = CaseEditForm()
    form.load_choices(saved)
    # A draft may be saved again as a draft; an open case is always checked in full.
    draft = case.is_draft and request.form.get("action") == "draft"
    if not (form.validate() and (draft or form.check_complete())):
        return render_template("casework/edit.html", form=form, case=case, conflicts=None), 400
    try:
        update_case(
            current_user,
            case,
            form.case_data(),
            expected_version=int(form.version.data),
            open_draft=not draft,
        )
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
    typed = form.case_data()
    names = conflicting_fields(case, typed)
    conflicts = conflict_rows(case, typed, names)
    # The form now carries the saved version: submitting it again replaces that version,
    # knowingly, with what the user typed.
    form.version.data = str(case.version)
    form.load_choices(case_values(case))
    if names:
        audit.record("case.viewed", object_type="case", object_id=case.id, field_names=names)
    return render_template("casework/edit.html", form=form, case=case, conflicts=conflicts), 409
