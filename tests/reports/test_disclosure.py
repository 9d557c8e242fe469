"""Disclosure control without a database: suppression, totals, too few, attacks that fail."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from reports.disclosure import COUNT, TOTAL, CountTable, ProtectedTable, combine, protect

K = 5


def table(grid: list[list[int]], **kwargs) -> CountTable:
    rows = [(f"r{i}", f"Row {i}") for i in range(len(grid))]
    columns = [(f"c{j}", f"Column {j}") for j in range(len(grid[0]))]
    counts = {(f"r{i}", f"c{j}"): v for i, line in enumerate(grid) for j, v in enumerate(line)}
    return CountTable(
        "Test", "Rows", rows, counts, column_dimension="Columns", columns=columns, **kwargs
    )


def one_dimensional(values: list[int]) -> CountTable:
    rows = [(f"r{i}", f"Row {i}") for i in range(len(values))]
    return CountTable("Test", "Rows", rows, {(f"r{i}", COUNT): v for i, v in enumerate(values)})


def augmented(protected: ProtectedTable) -> tuple[list[str], list[str]]:
    return (
        [code for code, _ in protected.rows] + [TOTAL],
        [code for code, _ in protected.columns] + [TOTAL],
    )


def published(protected: ProtectedTable) -> dict[tuple[str, str], int | None]:
    rows, cols = augmented(protected)
    return {(r, c): protected.value(r, c) for r in rows for c in cols}


def lines(protected: ProtectedTable):
    """Yield each relation of the table as (cells, total)."""
    rows, cols = augmented(protected)
    for r in rows:
        yield [(r, c) for c in cols[:-1]], (r, TOTAL)
    for c in cols:
        yield [(r, c) for r in rows[:-1]], (TOTAL, c)


def recover_by_subtraction(protected: ProtectedTable) -> dict[tuple[str, str], int]:
    """Play the attacker: fill any line with one unknown left, until nothing changes."""
    known = {e: v for e, v in published(protected).items() if v is not None}
    recovered = {}
    changed = True
    while changed:
        changed = False
        for cells, total in lines(protected):
            unknown = [e for e in [*cells, total] if e not in known]
            if len(unknown) != 1:
                continue
            (entry,) = unknown
            if entry == total:
                value = sum(known[e] for e in cells)
            else:
                value = known[total] - sum(known[e] for e in cells if e != entry)
            known[entry] = recovered[entry] = value
            changed = True
    return recovered


def determined_by_linear_algebra(protected: ProtectedTable) -> set[tuple[str, str]]:
    """Return the suppressed entries the published numbers fix exactly (Gaussian elimination)."""
    values = published(protected)
    unknown = sorted(e for e, v in values.items() if v is None)
    index = {e: i for i, e in enumerate(unknown)}
    matrix = []
    for cells, total in lines(protected):
        row = [Fraction(0)] * len(unknown)
        for entry, sign in [*((e, 1) for e in cells), (total, -1)]:
            if entry in index:
                row[index[entry]] += sign
        if any(row):
            matrix.append(row)
    # Reduced row echelon form; an unknown is determined when a row has only it.
    pivot_row = 0
    for col in range(len(unknown)):
        pivot = next((r for r in range(pivot_row, len(matrix)) if matrix[r][col]), None)
        if pivot is None:
            continue
        matrix[pivot_row], matrix[pivot] = matrix[pivot], matrix[pivot_row]
        lead = matrix[pivot_row][col]
        matrix[pivot_row] = [v / lead for v in matrix[pivot_row]]
        for r in range(len(matrix)):
            if r != pivot_row and matrix[r][col]:
                factor = matrix[r][col]
                pivot_values = matrix[pivot_row]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], pivot_values, strict=True)]
        pivot_row += 1
    return {
        unknown[row.index(next(v for v in row if v))]
        for row in matrix
        if sum(1 for v in row if v) == 1
    }


def test_it_shows_small_cells_as_less_than_k():
    protected = protect(one_dimensional([3, 12, 0, 40]), K)
    assert protected.display("r0", COUNT) == "<5"
    assert protected.value("r0", COUNT) is None
    assert protected.display("r2", COUNT) == "0"
    assert protected.display("r3", COUNT) == "40"


def test_it_suppresses_a_second_cell_so_the_total_does_not_give_the_first_back():
    protected = protect(one_dimensional([3, 12, 0, 40]), K)
    assert protected.grand_total == "55"
    # 55 - 12 - 0 - 40 would be 3: the smallest other non-zero cell goes too.
    assert protected.display("r1", COUNT) == "x"
    assert protected.display("r3", COUNT) == "40"
    assert recover_by_subtraction(protected) == {}


def test_it_protects_rows_and_columns_of_a_cross_tab():
    protected = protect(table([[3, 10, 30], [8, 12, 25], [20, 30, 40]]), K)
    assert protected.display("r0", "c0") == "<5"
    hidden_in_row = [c for c in ("c0", "c1", "c2") if protected.value("r0", c) is None]
    hidden_in_col = [r for r in ("r0", "r1", "r2") if protected.value(r, "c0") is None]
    assert len(hidden_in_row) >= 2 and len(hidden_in_col) >= 2
    assert protected.grand_total == "178"
    assert recover_by_subtraction(protected) == {}
    assert determined_by_linear_algebra(protected) == set()


def test_a_total_that_would_give_a_single_cell_back_is_protected():
    # The only non-zero cell of the row is small: its row total is that cell.
    protected = protect(table([[3, 0], [20, 30]]), K)
    assert protected.row_total("r0") == "<5"
    assert recover_by_subtraction(protected) == {}
    assert determined_by_linear_algebra(protected) == set()


def test_it_breaks_a_bridge_between_two_protected_blocks():
    grid = [
        [2, 9, 50, 60],
        [9, 2, 50, 60],
        [50, 50, 3, 9],
        [60, 60, 9, 3],
    ]
    protected = protect(table(grid), K)
    assert determined_by_linear_algebra(protected) == set()


def test_it_does_not_let_line_bounds_pin_a_small_cell():
    # "<5" + x = 6 - 0 would say 1 and 5 if the x were the 5.
    protected = protect(one_dimensional([1, 5, 0, 20]), K)
    hidden = [r for r in ("r0", "r1", "r2", "r3") if protected.value(r, COUNT) is None]
    assert len(hidden) >= 3 or protected.too_few


def test_a_query_over_fewer_than_k_cases_returns_nothing():
    protected = protect(one_dimensional([1, 2, 1]), K)
    assert protected.too_few
    assert protected.grand_total == ""
    assert protected.display("r0", COUNT) == ""
    assert protected.value(TOTAL, TOTAL) is None
    assert protected.published_numbers() == []


def test_k_is_configurable():
    protected = protect(one_dimensional([7, 12, 40]), 10)
    assert protected.display("r0", COUNT) == "<10"


def test_locked_margins_keep_their_status_and_complementary_cells_are_inner():
    counts = table([[3, 20], [20, 30]], locked={(TOTAL, "c0"): True, ("r0", TOTAL): True})
    protected = protect(counts, K)
    assert protected.column_total("c0") == "23"
    assert protected.row_total("r0") == "23"
    assert determined_by_linear_algebra(protected) == set()


def months_table(monthly: list[list[int]]) -> CountTable:
    """Rows by months of one year (the base of every published period)."""
    return table(monthly)


def test_differencing_two_periods_gives_nothing_back():
    # Row 0 has 2 cases in the last month; each period query is built from the base table.
    base = protect(table([[10, 12, 2], [30, 25, 20]]), K)
    parts = {"2025": base}
    whole = combine(
        "t", parts, [("all", "all", [("2025", "c0"), ("2025", "c1"), ("2025", "c2")])], k=K
    )
    first_two = combine("t", parts, [("two", "two", [("2025", "c0"), ("2025", "c1")])], k=K)
    last = combine("t", parts, [("last", "last", [("2025", "c2")])], k=K)
    assert last.display("r0", "last") in ("<5", "x")
    a, b = whole.value("r0", "all"), first_two.value("r0", "two")
    # Either sum is withheld, or their difference is a number the base table published.
    assert a is None or b is None or (a - b) == base.value("r0", "c2")
    assert base.value("r0", "c2") is None


def test_differencing_a_total_against_published_cells_fails():
    base = protect(table([[10, 12, 2], [30, 25, 20]]), K)
    row_total = base.value("r0", TOTAL)
    others = [base.value("r0", c) for c in ("c0", "c1")]
    assert row_total is None or None in others


@st.composite
def grids(draw):
    rows = draw(st.integers(1, 5))
    cols = draw(st.integers(1, 5))
    cell = st.one_of(st.integers(0, 6), st.integers(0, 60))
    return [[draw(cell) for _ in range(cols)] for _ in range(rows)]


@settings(max_examples=300, deadline=None)
@given(grids())
def test_no_suppressed_cell_can_be_derived_from_the_published_numbers(grid):
    protected = protect(table(grid), K)
    if protected.too_few:
        assert protected.published_numbers() == []
        return
    values = published(protected)
    for entry, value in values.items():
        if value is not None:
            assert value == 0 or value >= K, (entry, value)
    assert recover_by_subtraction(protected) == {}
    assert determined_by_linear_algebra(protected) == set()


@settings(max_examples=200, deadline=None)
@given(grids(), st.data())
def test_sums_of_base_entries_add_nothing_new(grid, data):
    base = protect(table(grid), K)
    cols = [code for code, _ in base.columns]
    chosen = data.draw(st.lists(st.sampled_from(cols), min_size=1, unique=True))
    summed = combine("t", {"y": base}, [("s", "s", [("y", c) for c in chosen])], k=K)
    for code, _label in base.rows:
        value = summed.value(code, "s")
        if value is not None:
            assert all(base.value(code, c) is not None for c in chosen)
