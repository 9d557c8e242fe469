"""Downloads for analysts and coordinators: statistics tables and the CTDC record-level export.

Only users who may see statistics get them (everyone else signed in: 404, and the refused
attempt is audited). Every download is audited with its format and row count (no values),
never cached (``no-store``), and named by what it holds (table and years, or the date),
never by anything personal. A table download is built by ``reports.views.requested_table``,
the code path of the page it comes from, so it shows exactly the page's cells.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request
from flask_login import current_user, login_required

from core import audit, policy
from core.security import mark_sensitive
from reports.anonymised import build_anonymised_export
from reports.disclosure import ProtectedTable
from reports.exports import rows_to_csv, rows_to_xlsx, table_to_csv, table_to_xlsx
from reports.views import fresh_statistics, requested_table

bp = Blueprint("exports", __name__, url_prefix="/statistics/exports")

MIMETYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _require_statistics() -> None:
    if not policy.can_view_statistics(current_user):
        audit.record_denied("export.open", object_type="endpoint", object_id=request.endpoint)
        abort(404)


def filename(kind: str, fmt: str) -> str:
    """Return a download's file name: Haven, the kind and today's date, nothing personal."""
    from casework.models import local_today

    return f"haven-{kind}-{local_today().isoformat()}.{fmt}"


def download(body: bytes, fmt: str, name: str) -> Response:
    """Return the file as an attachment that no cache keeps."""
    mark_sensitive()
    response = Response(body, mimetype=MIMETYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/anonymised.<any(csv, xlsx):fmt>")
@login_required
def anonymised(fmt: str):
    """Download the k-anonymous CTDC record-level export as CSV or XLSX."""
    _require_statistics()
    export = build_anonymised_export()
    table = export.as_table()
    body = rows_to_csv(table) if fmt == "csv" else rows_to_xlsx("CTDC", table)
    # Field names only: the format and the count of rows, as names the audit log accepts.
    audit.record(
        "export.anonymised",
        object_type="export",
        object_id=f"{fmt}:{len(export.rows)}:{export.suppressed}",
        field_names=[f"format_{fmt}", "row_count", "suppressed_count"],
    )
    return download(body, fmt, filename("anonymised", fmt))


def table_filename(name: str, first: int, last: int, grain: str, fmt: str) -> str:
    """Return a table download's name: Haven, the table, the years (and grain), the format."""
    grain_part = "" if grain == "year" else f"-by-{grain}"
    return f"haven-statistics-{name.replace('_', '-')}-{first}-{last}{grain_part}.{fmt}"


@bp.get("/table.<any(csv, xlsx):fmt>")
@login_required
def table(fmt: str):
    """Download one table of the statistics pages as CSV or XLSX, as the page shows it.

    The arguments are the page's: ``table`` (a dimension, ``services``, ``referrals``, a
    refusal or decision table)
    with the period and grain of the dashboard, or ``rows`` and ``columns`` of a cross-tab.
    """
    _require_statistics()
    fresh_statistics()
    requested = requested_table(request.args)
    if requested is None:
        abort(404)
    period, protected = requested.period, requested.table
    grain = period.grain if len(requested.dimensions) < 2 else "year"
    if not isinstance(protected, ProtectedTable):
        # Referral outcomes, days to decision: display strings only, as the page shows them.
        rows = [[protected.title], *protected.grid()]
        body = rows_to_csv(rows) if fmt == "csv" else rows_to_xlsx(protected.title, rows)
    else:
        body = table_to_csv(protected) if fmt == "csv" else table_to_xlsx(protected)
    # Names only: the format and the dimensions; the object id says which table and years.
    audit.record(
        "export.table",
        object_type="export",
        object_id=f"{fmt}:{requested.name}:{period.first}-{period.last}:{grain}",
        field_names=[f"format_{fmt}", *requested.dimensions],
    )
    return download(
        body, fmt, table_filename(requested.name, period.first, period.last, grain, fmt)
    )
