"""Disclosure control: every count leaving Haven goes through ``protect`` (pure: no Flask, no DB).

Cells and totals
----------------
A table is a grid of counts with its margins (row totals, column totals, grand total). The
grid and its margins together form an "augmented" array of entries in which every line (a
row with its row total, a column with its column total, the total row, the total column)
obeys one linear relation: the cells add up to the total.

1. **Primary suppression.** An entry (cell or total) of 1 .. k-1 is shown as "<k".
2. **Zeros are shown.** Haven's coded fields are coarse and its tables are counts of cases,
   not of rare attributes of known people; a 0 says that nobody in the table has the value,
   which discloses nothing about a person (a structural zero). Zeros are never suppressed,
   so they never serve as complementary cells either.
3. **Complementary suppression** (shown as "x"): the attacker may subtract, so
   - every line holds no suppressed entry or at least two (choose the smallest non-zero
     cell of the line; the line's total only when no cell is left);
   - no suppressed entry may be a *bridge* of the bipartite graph whose nodes are the lines
     (rows and columns of the augmented array) and whose edges are the suppressed entries.
     The relations of a table with margins are those of a transportation problem: a
     suppressed entry is determined by the published numbers exactly when it is a bridge
     (it lies on no cycle). A bridge is broken by suppressing one more entry across it;
   - line-wise bounds do not pin an entry: a "<k" cell lies in 1 .. k-1 and an "x" cell is
     at least k (it would be "<k" otherwise), so a line such as "<5", x, total 6 would give
     1 and 5 back. Such a line gets one more suppressed entry (one larger than k when there
     is one: an entry of exactly k adds no slack).
   The three rules are applied until nothing changes. Totals are computed from the true
   counts; a total that would give a single suppressed cell back is itself suppressed.
4. **Too few cases.** A table over fewer than k cases (its population) publishes nothing.

Linked tables and differencing
------------------------------
Two queries that differ by a filter (a period, here) are two tables over nested sets of
cases; their difference is a table nobody protected. Haven's rule (``reports.statistics``):

- the only filters are whole calendar periods and the coded dimensions of the table itself;
- every number published is taken from, or is a sum of published numbers of, one **base
  table** per calendar year: the dimension by the months of that year, with its margins.
  Quarters and years, multi-year ranges and their totals are sums of base entries, and a sum
  is published only when every base entry in it is published (``combine``). A published
  number is then a linear combination of published base entries, and so is any difference
  of two queries: whatever a difference gives back was already published.
- margins shared by several tables (cases per month, the year's totals per code) are
  *locked*: protected once, in the table they come from, and given to every table that
  repeats them with the same status, so two tables never show one margin differently.
  Complementary suppression then uses inner cells only; when a table cannot be protected
  that way it is withheld as a whole.

What this does not claim: an attacker solving a linear program over all published tables
at once could in principle narrow intervals further than line-wise bounds; exact recovery
is what the rules above exclude (and what the tests try).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_K = 5
# The code of the total row and column, and of the pseudo column of a one-dimensional table.
TOTAL = "__total__"
COUNT = "__count__"

Entry = tuple[str, str]

PRIMARY = "primary"
SECONDARY = "secondary"
# A cell hidden with its whole line (zeros too): its marker bounds nothing.
WITHHELD = "withheld"


@dataclass(frozen=True)
class CountTable:
    """True counts of one table, before disclosure control.

    ``counts`` maps (row code, column code) to a count; missing cells are 0. A one-dimensional
    table has ``columns == [(COUNT, label)]``. ``population`` is the number of cases behind
    the table when cells overlap (a case with two forms of exploitation counts in both);
    otherwise the grand total. ``locked`` fixes the status of margins that other tables
    publish: entry -> True (published, as there) or False (suppressed there).
    """

    title: str
    row_dimension: str
    rows: list[tuple[str, str]]
    counts: Mapping[Entry, int]
    column_dimension: str | None = None
    columns: list[tuple[str, str]] = field(default_factory=lambda: [(COUNT, "")])
    population: int | None = None
    locked: Mapping[Entry, bool] = field(default_factory=dict)


class ProtectedTable:
    """A table after disclosure control: display strings, and values only where published."""

    def __init__(
        self,
        *,
        title: str,
        row_dimension: str,
        column_dimension: str | None,
        rows: list[tuple[str, str]],
        columns: list[tuple[str, str]],
        values: dict[Entry, int],
        status: dict[Entry, str],
        k: int,
        too_few: bool,
    ) -> None:
        self.title = title
        self.row_dimension = row_dimension
        self.column_dimension = column_dimension
        self.rows = rows
        self.columns = columns
        self.k = k
        self.too_few = too_few
        self._values = values
        self._status = status

    # Single entries --------------------------------------------------------------------

    def status(self, row_code: str, col_code: str) -> str | None:
        """Return "primary", "secondary" or None (published) for an entry (TOTAL for margins)."""
        if self.too_few:
            return PRIMARY
        return self._status.get((row_code, col_code))

    def value(self, row_code: str, col_code: str) -> int | None:
        """Return the published count of a cell or total (TOTAL codes), None when suppressed."""
        if self.too_few or self._status.get((row_code, col_code)):
            return None
        return self._values.get((row_code, col_code), 0)

    def _display(self, entry: Entry) -> str:
        if self.too_few:
            return ""
        status = self._status.get(entry)
        if status == PRIMARY:
            return f"<{self.k}"
        if status in (SECONDARY, WITHHELD):
            return "x"
        return str(self._values.get(entry, 0))

    def display(self, row_code: str, col_code: str) -> str:
        """Return what to show for a cell: "12", "0", "<5" (small) or "x" (complementary)."""
        return self._display((row_code, col_code))

    def row_total(self, row_code: str) -> str:
        return self._display((row_code, TOTAL))

    def column_total(self, col_code: str) -> str:
        return self._display((TOTAL, col_code))

    @property
    def grand_total(self) -> str:
        return self._display((TOTAL, TOTAL))

    @property
    def is_one_dimensional(self) -> bool:
        return self.column_dimension is None

    def published_numbers(self) -> list[int]:
        """Return every number the table shows (cells and totals), for checks."""
        if self.too_few:
            return []
        return [
            self._values.get(entry, 0) for entry in self._entries() if not self._status.get(entry)
        ]

    def _entries(self) -> Iterable[Entry]:
        row_codes = [code for code, _label in self.rows] + [TOTAL]
        col_codes = [code for code, _label in self.columns] + [TOTAL]
        return [(r, c) for r in row_codes for c in col_codes]


def configured_k(config: Mapping[str, object] | None = None) -> int:
    """Return k from HAVEN_DISCLOSURE_K (at least 2: a k of 1 would protect nothing)."""
    value = (config or {}).get("HAVEN_DISCLOSURE_K", DEFAULT_K)
    return max(2, int(value))


def augmented_values(table: CountTable) -> dict[Entry, int]:
    """Return every cell and every total of the table, totals from the true counts."""
    row_codes = [code for code, _label in table.rows]
    col_codes = [code for code, _label in table.columns]
    values: dict[Entry, int] = {}
    for r in row_codes:
        for c in col_codes:
            values[(r, c)] = int(table.counts.get((r, c), 0))
    for r in row_codes:
        values[(r, TOTAL)] = sum(values[(r, c)] for c in col_codes)
    for c in col_codes:
        values[(TOTAL, c)] = sum(values[(r, c)] for r in row_codes)
    values[(TOTAL, TOTAL)] = sum(values[(r, TOTAL)] for r in row_codes)
    return values


def protect(counts: CountTable, k: int = DEFAULT_K) -> ProtectedTable:
    """Apply primary and complementary suppression to a table (see the module docstring)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    values = augmented_values(counts)
    population = counts.population if counts.population is not None else values[(TOTAL, TOTAL)]
    status: dict[Entry, str] = {}
    too_few = population < k
    if not too_few:
        status = _suppress(counts, values, k)
        too_few = status is None
    return ProtectedTable(
        title=counts.title,
        row_dimension=counts.row_dimension,
        column_dimension=counts.column_dimension,
        rows=list(counts.rows),
        columns=list(counts.columns),
        values=values,
        status=status or {},
        k=k,
        too_few=too_few,
    )


def _suppress(table: CountTable, values: dict[Entry, int], k: int) -> dict[Entry, str] | None:
    """Return the status of every suppressed entry, or None when the table must be withheld."""
    row_nodes = [code for code, _label in table.rows] + [TOTAL]
    col_nodes = [code for code, _label in table.columns] + [TOTAL]
    locked = dict(table.locked)
    status: dict[Entry, str] = {}
    for entry, value in values.items():
        if entry in locked:
            if not locked[entry]:
                status[entry] = PRIMARY if 0 < value < k else SECONDARY
        elif 0 < value < k:
            status[entry] = PRIMARY
    lines = [("row", r) for r in row_nodes] + [("col", c) for c in col_nodes]

    def line_entries(line: tuple[str, str]) -> list[Entry]:
        kind, code = line
        if kind == "row":
            return [(code, c) for c in col_nodes]
        return [(r, code) for r in row_nodes]

    def is_total_of(line: tuple[str, str], entry: Entry) -> bool:
        return entry[1] == TOTAL if line[0] == "row" else entry[0] == TOTAL

    def candidates(pool: Iterable[Entry], line=None, above: int = 0) -> list[Entry]:
        found = [
            e
            for e in pool
            if e not in status and e not in locked and values[e] > above and values[e] > 0
        ]
        # Inner cells first (a total only when no cell is left), then the smallest.
        return sorted(
            found, key=lambda e: (line is not None and is_total_of(line, e), values[e], e)
        )

    for _round in range(10 * len(values) + 10):
        changed = False
        # Rule 1: no line with exactly one suppressed entry; rule 3: no pinned entry.
        for line in lines:
            entries = line_entries(line)
            hidden = [e for e in entries if e in status]
            if len(hidden) == 1 or (hidden and _line_pins(line, entries, values, status, k)):
                above = k if len(hidden) > 1 else 0
                options = candidates(entries, line, above) or candidates(entries, line)
                if not options:
                    inner = [e for e in entries if not is_total_of(line, e)]
                    if line[1] == TOTAL or all(status.get(e) == WITHHELD for e in inner):
                        return None
                    # Only a locked (published elsewhere) total is left: withhold the whole
                    # line, zeros too, so no marker bounds any of its cells.
                    for entry in inner:
                        if entry not in locked:
                            status[entry] = WITHHELD
                    changed = True
                    continue
                status[options[0]] = SECONDARY
                changed = True
        if changed:
            continue
        # Rule 2: no bridge.
        bridge = _find_bridge(status)
        if bridge is not None:
            side = _component_without(status, bridge)
            other = _component_of(status, bridge) - side
            pool = [
                e
                for e in values
                if e != bridge
                and (
                    (("r", e[0]) in side and ("c", e[1]) in other)
                    or (("r", e[0]) in other and ("c", e[1]) in side)
                )
            ]
            options = candidates(pool)
            if not options:
                return None
            status[options[0]] = SECONDARY
            continue
        return status
    return None


def _line_pins(
    line: tuple[str, str],
    entries: list[Entry],
    values: dict[Entry, int],
    status: dict[Entry, str],
    k: int,
) -> bool:
    """Return whether line-wise bounds give some suppressed entry of the line back exactly."""
    kind = line[0]

    def sign(entry: Entry) -> int:
        is_total = entry[1] == TOTAL if kind == "row" else entry[0] == TOTAL
        return -1 if is_total else 1

    known = sum(sign(e) * values[e] for e in entries if e not in status)
    hidden = [e for e in entries if e in status]
    big = 10**12
    bounds = {
        e: (1, k - 1) if status[e] == PRIMARY else (0, big) if status[e] == WITHHELD else (k, big)
        for e in hidden
    }
    for entry in hidden:
        # sign(entry) * x = -known - sum(sign(other) * other)
        low = high = -known
        for other in hidden:
            if other == entry:
                continue
            lo, hi = bounds[other]
            if sign(other) > 0:
                low, high = low - hi, high - lo
            else:
                low, high = low + lo, high + hi
        if sign(entry) < 0:
            low, high = -high, -low
        lo, hi = bounds[entry]
        if max(lo, low) == min(hi, high) and abs(high - low) < big // 2:
            return True
    return False


def _edges(status: Mapping[Entry, str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    return [(("r", r), ("c", c)) for (r, c) in status]


def _find_bridge(status: Mapping[Entry, str]) -> Entry | None:
    """Return a suppressed entry that lies on no cycle of the suppression graph, if any."""
    edges = _edges(status)
    adjacency: dict[tuple[str, str], list[tuple[tuple[str, str], int]]] = {}
    for index, (a, b) in enumerate(edges):
        adjacency.setdefault(a, []).append((b, index))
        adjacency.setdefault(b, []).append((a, index))
    order: dict[tuple[str, str], int] = {}
    low: dict[tuple[str, str], int] = {}
    counter = 0
    for start in adjacency:
        if start in order:
            continue
        order[start] = low[start] = counter
        counter += 1
        stack = [(start, -1, iter(adjacency[start]))]
        while stack:
            node, via, neighbours = stack[-1]
            advanced = False
            for nxt, index in neighbours:
                if index == via:
                    continue
                if nxt in order:
                    low[node] = min(low[node], order[nxt])
                else:
                    order[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append((nxt, index, iter(adjacency[nxt])))
                    advanced = True
                    break
            if advanced:
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > order[parent]:
                    a, b = edges[via]
                    return (a[1], b[1])
    return None


def _component_of(status: Mapping[Entry, str], bridge: Entry) -> set[tuple[str, str]]:
    return _reach(status, ("r", bridge[0]), None) | _reach(status, ("c", bridge[1]), None)


def _component_without(status: Mapping[Entry, str], bridge: Entry) -> set[tuple[str, str]]:
    """Return the nodes reached from the bridge's row without crossing the bridge."""
    return _reach(status, ("r", bridge[0]), bridge)


def _reach(status, start, skip: Entry | None) -> set[tuple[str, str]]:
    adjacency: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for entry in status:
        if entry == skip:
            continue
        a, b = ("r", entry[0]), ("c", entry[1])
        adjacency.setdefault(a, set()).add(b)
        adjacency.setdefault(b, set()).add(a)
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in adjacency.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# Sums of protected tables --------------------------------------------------------------


def combine(
    title: str,
    parts: Mapping[str, ProtectedTable],
    groups: list[tuple[str, str, list[tuple[str, str]]]],
    *,
    k: int,
    row_dimension: str | None = None,
    column_dimension: str | None = None,
) -> ProtectedTable:
    """Build a table whose entries are sums of entries of protected base tables.

    ``parts`` maps a key to a base table with the same rows; ``groups`` lists the new columns:
    (code, label, [(part key, column code of that part), ...]); the total column sums the
    parts' total columns. A sum is published only when every entry in it is published, so
    nothing new can be derived from it (see the module docstring).
    """
    first = next(iter(parts.values()))
    rows = first.rows
    row_codes = [code for code, _label in rows] + [TOTAL]
    values: dict[Entry, int] = {}
    status: dict[Entry, str] = {}
    columns = [(code, label) for code, label, _members in groups]
    members = {code: list(group) for code, _label, group in groups}
    members[TOTAL] = [(key, TOTAL) for key in parts]
    for r in row_codes:
        for c, group in members.items():
            total = 0
            hidden: str | None = None
            for key, part_col in group:
                part = parts[key]
                if part.too_few:
                    hidden = SECONDARY
                    continue
                total += part._values.get((r, part_col), 0)
                part_status = part._status.get((r, part_col))
                if part_status and hidden is None:
                    hidden = part_status if len(group) == 1 else SECONDARY
            values[(r, c)] = total
            if hidden:
                status[(r, c)] = hidden
    too_few = all(part.too_few for part in parts.values())
    return ProtectedTable(
        title=title,
        row_dimension=row_dimension or first.row_dimension,
        column_dimension=column_dimension,
        rows=list(rows),
        columns=columns,
        values=values,
        status=status,
        k=k,
        too_few=too_few,
    )
