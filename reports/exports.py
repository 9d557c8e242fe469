"""CSV and XLSX files of what the statistics pages show: protected tables and anonymised rows.

A table export writes the strings the page shows ("<5" stays "<5"); it never sees a true
count, so it cannot leak one. Cells are written as text: a spreadsheet would run a cell
starting with ``=``, ``+``, ``-`` or ``@`` as a formula (CSV formula injection), so such
cells get a leading ``'``, and XlsxWriter is told never to turn strings into formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import xlsxwriter
from flask_babel import gettext as _

# Characters a spreadsheet reads as the start of a formula (tab and CR too, per OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel's limit on a sheet name; XlsxWriter refuses longer ones.
SHEET_NAME_LENGTH = 31


class ProtectedTable(Protocol):
    """A table after disclosure control (``reports.disclosure``): display strings only."""

    title: str
    row_dimension: Any
    column_dimension: Any
    rows: list[tuple[str, str]]
    columns: list[tuple[str, str]]
    grand_total: str
    too_few: bool

    def display(self, row_code: str, col_code: str | None) -> str: ...

    def row_total(self, row_code: str) -> str: ...

    def column_total(self, col_code: str) -> str: ...


def neutralise(value: object) -> str:
    """Return the cell as text that no spreadsheet runs as a formula.

    Numbers are not passed through here: CTDC's missing value -99 stays a number.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _label(dimension: Any) -> str:
    """Return the heading of a dimension: its label when it has one, else its text."""
    if dimension is None:
        return ""
    return str(getattr(dimension, "label", dimension))


def table_grid(protected: ProtectedTable) -> list[list[str]]:
    """Return the table as the page shows it: a heading row, one row per row code, totals.

    A table over too few cases has nothing but the notice the page shows.
    """
    if protected.too_few:
        return [[_("Too few cases to show any figures.")]]
    corner = _label(protected.row_dimension)
    if protected.column_dimension is not None and protected.columns:
        corner = f"{corner} / {_label(protected.column_dimension)}"
        heading = [corner, *(str(label) for _code, label in protected.columns), _("Total")]
        grid = [heading]
        for code, label in protected.rows:
            grid.append(
                [
                    str(label),
                    *(protected.display(code, column) for column, _label_ in protected.columns),
                    protected.row_total(code),
                ]
            )
        grid.append(
            [
                _("Total"),
                *(protected.column_total(column) for column, _label_ in protected.columns),
                protected.grand_total,
            ]
        )
        return grid
    grid = [[corner, _("Cases")]]
    for code, label in protected.rows:
        grid.append([str(label), protected.row_total(code)])
    grid.append([_("Total"), protected.grand_total])
    return grid


def rows_to_csv(rows: Iterable[Sequence[object]]) -> bytes:
    """Return the rows as UTF-8 CSV with a byte order mark (Excel then reads ə and Cyrillic)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell if _is_number(cell) else neutralise(cell) for cell in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def rows_to_xlsx(sheet_name: str, rows: Iterable[Sequence[object]]) -> bytes:
    """Return the rows as an XLSX workbook of one sheet; numbers stay numbers, text is text.

    The first row is bold (the heading).
    """
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {
            "in_memory": True,
            # Never turn "=..." into a formula, nor "123" or a URL into something else.
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    sheet = workbook.add_worksheet(_sheet_name(sheet_name))
    bold = workbook.add_format({"bold": True})
    for row_number, row in enumerate(rows):
        for column_number, cell in enumerate(row):
            if not _is_number(cell):
                sheet.write_string(
                    row_number,
                    column_number,
                    neutralise(cell),
                    bold if row_number == 0 else None,
                )
            else:
                sheet.write_number(row_number, column_number, cell)
    workbook.close()
    return buffer.getvalue()


def _is_number(cell: object) -> bool:
    return isinstance(cell, int | float) and not isinstance(cell, bool)


def _sheet_name(title: str) -> str:
    """Return a sheet name Excel accepts: no []:*?/\\ and at most 31 characters."""
    cleaned = "".join(" " if char in "[]:*?/\\" else char for char in str(title)).strip("' ")
    return (cleaned or "Haven")[:SHEET_NAME_LENGTH]


def table_to_csv(protected: ProtectedTable) -> bytes:
    """Return the protected table as CSV, exactly as the page shows it."""
    return rows_to_csv([[str(protected.title)], *table_grid(protected)])


def table_to_xlsx(protected: ProtectedTable) -> bytes:
    """Return the protected table as XLSX, exactly as the page shows it (all cells text)."""
    return rows_to_xlsx(str(protected.title), [[str(protected.title)], *table_grid(protected)])
