"""Table exports: CSV and XLSX write what the page shows, never a true small count, no formulas."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from openpyxl import load_workbook

from reports.disclosure import COUNT, CountTable, protect
from reports.exports import neutralise, rows_to_csv, rows_to_xlsx, table_to_csv, table_to_xlsx


@dataclass
class FakeTable:
    """A protected table as the disclosure protocol describes it, with fixed strings."""

    title: str = "Cases by sex"
    row_dimension: str = "Sex"
    column_dimension: str | None = "Year"
    rows: list = field(default_factory=lambda: [("F", "Female"), ("M", "Male")])
    columns: list = field(default_factory=lambda: [("2025", "2025"), ("2026", "2026")])
    cells: dict = field(
        default_factory=lambda: {
            ("F", "2025"): "41",
            ("F", "2026"): "<5",
            ("M", "2025"): "37",
            ("M", "2026"): "x",
        }
    )
    grand_total: str = "87"
    too_few: bool = False

    def display(self, row_code, col_code):
        return self.cells[row_code, col_code]

    def row_total(self, row_code):
        return {"F": "44", "M": "43"}[row_code]

    def column_total(self, col_code):
        return {"2025": "78", "2026": "9"}[col_code]


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(body: bytes) -> list[list]:
    sheet = load_workbook(io.BytesIO(body)).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_it_writes_the_fake_table_as_the_page_shows_it():
    expected = [
        ["Cases by sex"],
        ["Sex / Year", "2025", "2026", "Total"],
        ["Female", "41", "<5", "44"],
        ["Male", "37", "x", "43"],
        ["Total", "78", "9", "87"],
    ]
    assert read_csv(table_to_csv(FakeTable())) == expected
    rows = read_xlsx(table_to_xlsx(FakeTable()))
    assert [[value for value in row if value is not None] for row in rows] == expected


# Through the real disclosure control --------------------------------------------------------


def small_cell_table() -> CountTable:
    """Citizenship by sex with one small cell: 3 women from Tajikistan."""
    return CountTable(
        title="Citizenship by sex",
        row_dimension="Citizenship",
        column_dimension="Sex",
        rows=[("AZ", "Azerbaijan"), ("TJ", "Tajikistan"), ("UZ", "Uzbekistan")],
        columns=[("F", "Female"), ("M", "Male")],
        counts={
            ("AZ", "F"): 120,
            ("AZ", "M"): 96,
            ("TJ", "F"): 3,
            ("TJ", "M"): 17,
            ("UZ", "F"): 23,
            ("UZ", "M"): 31,
        },
    )


def test_it_writes_less_than_k_never_the_true_small_count():
    protected = protect(small_cell_table(), k=5)
    assert protected.display("TJ", "F") == "<5"
    page = [
        [protected.display(row, column) for column, _label in protected.columns]
        for row, _label in protected.rows
    ]

    csv_rows = read_csv(table_to_csv(protected))
    xlsx_rows = read_xlsx(table_to_xlsx(protected))
    for rows in (csv_rows, xlsx_rows):
        tajikistan = next(row for row in rows if row[0] == "Tajikistan")
        assert tajikistan[1] == "<5"
        # The complementary cell is hidden too, so the row total cannot give 3 back.
        assert "3" not in tajikistan and 3 not in tajikistan
        assert tajikistan[2] == "x"
        body = [row[1:3] for row in rows[2:5]]
        assert body == page
    # Every number in the file is one the page publishes.
    published = {str(number) for number in protected.published_numbers()}
    for row in csv_rows[2:]:
        for cell in row[1:]:
            assert cell in published or cell in ("<5", "x")


def test_a_one_dimensional_table_has_a_count_column():
    table = CountTable(
        title="Cases by sex",
        row_dimension="Sex",
        rows=[("F", "Female"), ("M", "Male"), ("O", "Other")],
        counts={("F", COUNT): 40, ("M", COUNT): 38, ("O", COUNT): 2},
    )
    rows = read_csv(table_to_csv(protect(table, k=5)))
    assert rows[1] == ["Sex", "Cases"]
    assert rows[4] == ["Other", "<5"]
    assert rows[2][1] != "40" or rows[3][1] != "38"  # one of them hides the 2
    assert "2" not in [row[1] for row in rows[2:]]


def test_a_table_over_too_few_cases_exports_no_figure():
    table = CountTable(
        title="Cases by sex",
        row_dimension="Sex",
        rows=[("F", "Female"), ("M", "Male")],
        counts={("F", COUNT): 2, ("M", COUNT): 1},
    )
    protected = protect(table, k=5)
    assert protected.too_few
    for rows in (read_csv(table_to_csv(protected)), read_xlsx(table_to_xlsx(protected))):
        assert rows == [["Cases by sex"], ["Too few cases to show any figures."]]


# Formula injection ----------------------------------------------------------------------------


def test_it_neutralises_formulas_in_csv_and_xlsx():
    evil = FakeTable(
        rows=[("F", '=HYPERLINK("http://evil.example","x")'), ("M", "+1+1"), ("X", "@SUM(A1)")],
        cells={
            ("F", "2025"): "41",
            ("F", "2026"): "-2+3",
            ("M", "2025"): "37",
            ("M", "2026"): "x",
            ("X", "2025"): "1",
            ("X", "2026"): "2",
        },
    )
    evil.row_total = lambda code: "=1+2"  # type: ignore[method-assign]
    csv_rows = read_csv(table_to_csv(evil))
    labels = [row[0] for row in csv_rows[2:5]]
    assert labels == ['\'=HYPERLINK("http://evil.example","x")', "'+1+1", "'@SUM(A1)"]
    assert csv_rows[2][2] == "'-2+3"
    assert csv_rows[2][3] == "'=1+2"

    workbook = load_workbook(io.BytesIO(table_to_xlsx(evil)))
    cells = [cell for row in workbook.active.iter_rows() for cell in row if cell.value]
    assert all(cell.data_type == "s" for cell in cells)
    assert not any(str(cell.value).startswith(("=", "+", "-", "@")) for cell in cells)


def test_numbers_stay_numbers_and_text_stays_text():
    assert neutralise("-99") == "'-99"
    assert read_csv(rows_to_csv([["a", "b"], [-99, 1]])) == [["a", "b"], ["-99", "1"]]
    rows = read_xlsx(rows_to_xlsx("Sheet [1]: x/y", [["a", "b"], [-99, "=1"]]))
    assert rows == [["a", "b"], [-99, "'=1"]]
