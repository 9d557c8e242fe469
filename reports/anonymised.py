"""Anonymised record-level export: one row per case in CTDC variables, k-anonymous.

What is exported
----------------
One row per counted case (drafts do not count; erased cases do: their coded fields
survive), in the CTDC Global Dataset's variables and codings (``/shared/HTCDS.md``):
flags 0/1, missing ``-99``. Only coded fields are read: no free text, no ids or
references, no date finer than a year. Rows are sorted by their values, so their order says
nothing about when a case was opened. Variables Haven does not record are left out rather
than filled with -99 everywhere: ``majorityStatusAtExploit``, ``majorityEntry``,
``typeOfSex*``, ``isAbduction``, ``RecruiterRelationship``, ``recruiterRelation*`` and the
``*Concatenated`` columns (their label text is unconfirmed).

Mapping from Haven's coded fields:

- ``yearOfRegistration``: year of identification, else of opening — the year the statistics
  pages count the case in.
- ``gender``: Feminine → Female, Masculine → Male, NonConforming → NonConforming,
  NonSpecifiedUnknown → Unknown, none recorded → -99 (kept apart: the pages count them
  apart, and pooling them would let one be worked out from the other).
- ``ageBroad``: Haven's bands in CTDC's notation (``0--11``, ``12--17``, ``18--24``,
  ``25--34``, ``35--49``, ``50+``). CTDC's own bands (0--8, 9--17, 18--20 …) cannot be
  derived: the exact age is encrypted, and gone for erased cases.
- ``majorityStatus``: Minor / Adult from the minor flag.
- ``citizenship``: ISO 3166-1 alpha-2.
- ``CountryOfExploitation``: the destination country; ``Several`` when more than one.
- ``isForcedLabour``, ``isSexualExploit``: the HTCDS forms; ``isOtherExploit``: any other
  form; ``isSexAndLabour``: both. CTDC's finer flags (forced marriage, organ removal…) are
  not exported: they would publish, below the generalisation, counts the statistics pages
  show only after disclosure control.
- ``meansOfControl*``: from HTCDS ``vic_MethodsOfControl`` (threats against children or
  family count as Threats); ``RestrictsMovement`` and ``UsesChildren`` have no Haven source
  and stay -99; nothing recorded gives ``NotSpecified`` = 1 and -99 elsewhere.
- ``typeOfLabour*``: from the ISIC section of the industry (A Agriculture, B Mining, C
  Manufacturing, F Construction, H Transportation, I Hospitality, T DomesticWork, any other
  section Other); Aquafarming, Begging, IllicitActivities and Peddling have no source (-99).

Disclosure control
------------------
Quasi-identifiers (what an outsider may know of a person, plus every variable the
statistics pages tabulate, so that no count read off the export can undercut the pages'
k): ``yearOfRegistration``, ``gender``, ``ageBroad``, ``majorityStatus``, ``citizenship``,
``CountryOfExploitation``, ``isForcedLabour``, ``isSexualExploit``, ``isOtherExploit``.
Means of control and type of labour are the sensitive attributes.

Generalisation is global (full-domain): one level per quasi-identifier for every row, so a
value means the same thing on every row. The ladders:

- year → two-year band → five-year band → ``*``;
- ageBroad → 0--17 / 18--34 / 35+ → ``*`` (majorityStatus keeps minor/adult);
- citizenship and CountryOfExploitation → UN M49 sub-region → continent → ``*``;
- gender, majorityStatus, isOtherExploit → ``*``.

Starting from no generalisation, the quasi-identifier whose next level leaves the fewest
rows in classes smaller than ``k_export`` is raised, one level at a time, until at most
``HAVEN_EXPORT_MAX_SUPPRESSION`` of the rows remain in such classes; those rows are then
suppressed (and counted). A guard against differencing with the pages' tables runs at each
step: a generalised value pools several page categories (two ages bands, two years, the
countries of a region, the "other" forms); when such a pool — alone or crossed with another
tabulated variable — holds exactly one category the pages suppress (1 to k-1 cases) next to
categories they show, the pool's count minus the shown ones would give the small one back,
so that variable is generalised further first.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select

from casework.models import Case, CaseCode, CaseStatus
from core.db import db
from reports.disclosure import configured_k

DEFAULT_EXPORT_K = 11
DEFAULT_MAX_SUPPRESSION = 0.1
MISSING = -99
ANY = "*"

# Continent → UN M49 sub-region → ISO 3166-1 alpha-2 codes (Kosovo with Southern Europe).
M49_REGIONS: dict[str, dict[str, str]] = {
    "Africa": {
        "Northern Africa": "DZ EG EH LY MA SD TN",
        "Eastern Africa": "BI DJ ER ET IO KE KM MG MU MW MZ RE RW SC SO SS TF TZ UG YT ZM ZW",
        "Middle Africa": "AO CD CF CG CM GA GQ ST TD",
        "Southern Africa": "BW LS NA SZ ZA",
        "Western Africa": "BF BJ CI CV GH GM GN GW LR ML MR NE NG SH SL SN TG",
    },
    "Americas": {
        "Caribbean": "AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS PR SX TC "
        "TT VC VG VI",
        "Central America": "BZ CR GT HN MX NI PA SV",
        "South America": "AR BO BR BV CL CO EC FK GF GS GY PE PY SR UY VE",
        "Northern America": "BM CA GL PM US",
    },
    "Asia": {
        "Central Asia": "KG KZ TJ TM UZ",
        "Eastern Asia": "CN HK JP KP KR MN MO TW",
        "South-eastern Asia": "BN ID KH LA MM MY PH SG TH TL VN",
        "Southern Asia": "AF BD BT IN IR LK MV NP PK",
        "Western Asia": "AE AM AZ BH CY GE IL IQ JO KW LB OM PS QA SA SY TR YE",
    },
    "Europe": {
        "Eastern Europe": "BG BY CZ HU MD PL RO RU SK UA",
        "Northern Europe": "AX DK EE FI FO GB GG IE IM IS JE LT LV NO SE SJ",
        "Southern Europe": "AD AL BA ES GI GR HR IT ME MK MT PT RS SI SM VA XK",
        "Western Europe": "AT BE CH DE FR LI LU MC NL",
    },
    "Oceania": {
        "Australia and New Zealand": "AU CC CX HM NF NZ",
        "Melanesia": "FJ NC PG SB VU",
        "Micronesia": "FM GU KI MH MP NR PW UM",
        "Polynesia": "AS CK NU PF PN TK TO TV WF WS",
    },
    "Antarctica": {"Antarctica": "AQ"},
}
SUB_REGION = {
    code: region
    for regions in M49_REGIONS.values()
    for region, codes in regions.items()
    for code in codes.split()
}
CONTINENT = {
    code: continent
    for continent, regions in M49_REGIONS.items()
    for codes in regions.values()
    for code in codes.split()
}
OTHER_AREA = "Other"
SEVERAL = "Several"

GENDER = {
    "Feminine": "Female",
    "Masculine": "Male",
    "NonConforming": "NonConforming",
    "NonSpecifiedUnknown": "Unknown",
}
AGE_BROAD = {
    "0-11": "0--11",
    "12-17": "12--17",
    "18-24": "18--24",
    "25-34": "25--34",
    "35-49": "35--49",
    "50+": "50+",
}
AGE_BROADER = {
    "0-11": "0--17",
    "12-17": "0--17",
    "18-24": "18--34",
    "25-34": "18--34",
    "35-49": "35+",
    "50+": "35+",
}
FORCED_LABOUR = "ForcedLabour"
SEXUAL_EXPLOITATION = "SexualExploitation"

# CTDC meansOfControl columns and the HTCDS vic_MethodsOfControl codes behind each.
MEANS_OF_CONTROL: dict[str, tuple[str, ...]] = {
    "DebtBondage": ("DebtBondage",),
    "TakesEarnings": ("TakesEarnings",),
    "RestrictsFinancialAccess": ("RestrictsFinancialAccess",),
    "Threats": ("PhysicalThreats", "ThreatensChildrenFamily"),
    "PsychologicalAbuse": ("PsychologicalAbuse",),
    "PhysicalAbuse": ("PhysicalAbuse",),
    "SexualAbuse": ("SexualAbuse",),
    "FalsePromises": ("FalsePromises",),
    "PsychoactiveSubstances": ("PsychoactiveSubstance",),
    "RestrictsMovement": (),
    "RestrictsMedicalCare": ("RestrictsMedicalCare",),
    "ExcessiveWorkingHours": ("ExcessiveWorkingHours",),
    "UsesChildren": (),
    "ThreatOfLawEnforcement": ("ThreatsLawEnforcement",),
    "WithholdsNecessities": ("WithholdsNecessities",),
    "WithholdsDocuments": ("WithholdsDocuments",),
    "Other": ("Other",),
}
# CTDC typeOfLabour columns and the ISIC sections behind each ("*": every other section).
TYPE_OF_LABOUR: dict[str, tuple[str, ...]] = {
    "Agriculture": ("A",),
    "Aquafarming": (),
    "Begging": (),
    "Construction": ("F",),
    "DomesticWork": ("T",),
    "Hospitality": ("I",),
    "IllicitActivities": (),
    "Manufacturing": ("C",),
    "MiningOrDrilling": ("B",),
    "Peddling": (),
    "Transportation": ("H",),
    "Other": ("*",),
}
LABOUR_SECTIONS = {
    section for sections in TYPE_OF_LABOUR.values() for section in sections if section != "*"
}


# Generalisation ladders ---------------------------------------------------------------------


def _top(_raw: Any) -> str:
    return ANY


def _year_band(width: int) -> Callable[[int], str]:
    def band(year: int) -> str:
        start = year - year % width
        return f"{start}--{start + width - 1}"

    return band


def _missing_or(mapping: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda raw: MISSING if raw is None else mapping(raw)


def _area(level: Mapping[str, str]) -> Callable[[str], str]:
    return lambda code: level.get(code, OTHER_AREA)


def _exploitation_area(level: Mapping[str, str] | None) -> Callable[[frozenset], Any]:
    def area(codes: frozenset) -> Any:
        if not codes:
            return MISSING
        values = {code if level is None else level.get(code, OTHER_AREA) for code in codes}
        return values.pop() if len(values) == 1 else SEVERAL

    return area


def _form_flag(form: str) -> Callable[[frozenset], int]:
    return lambda forms: MISSING if not forms else int(form in forms)


def _other_flag(forms: frozenset) -> int:
    if not forms:
        return MISSING
    return int(bool(forms - {FORCED_LABOUR, SEXUAL_EXPLOITATION}))


def _other_forms(forms: frozenset) -> list[frozenset]:
    return [frozenset({form}) for form in sorted(forms - {FORCED_LABOUR, SEXUAL_EXPLOITATION})]


@dataclass(frozen=True)
class QuasiIdentifier:
    """A quasi-identifying CTDC variable: its generalisation ladder, lowest level first.

    ``ladder[level](raw)`` gives the exported value of Haven's raw value; the last level
    is ``*``. ``tabulated`` says whether the statistics pages count by this variable, and
    ``categories(raw)`` the page categories a raw value is counted in (itself, by default).
    """

    column: str
    ladder: tuple[Callable[[Any], Any], ...]
    tabulated: bool = True
    categories: Callable[[Any], Iterable[Any]] = field(default=lambda raw: (raw,))

    @property
    def top(self) -> int:
        return len(self.ladder) - 1


QUASI_IDENTIFIERS: tuple[QuasiIdentifier, ...] = (
    QuasiIdentifier("yearOfRegistration", (int, _year_band(2), _year_band(5), _top)),
    QuasiIdentifier("gender", (lambda raw: GENDER.get(raw or "", MISSING), _top)),
    QuasiIdentifier(
        "ageBroad",
        (
            _missing_or(lambda band: AGE_BROAD.get(band, MISSING)),
            _missing_or(lambda band: AGE_BROADER.get(band, MISSING)),
            _top,
        ),
    ),
    QuasiIdentifier(
        "majorityStatus",
        (_missing_or(lambda minor: "Minor" if minor else "Adult"), _top),
    ),
    QuasiIdentifier(
        "citizenship",
        (_missing_or(str), _missing_or(_area(SUB_REGION)), _missing_or(_area(CONTINENT)), _top),
    ),
    QuasiIdentifier(
        "CountryOfExploitation",
        (
            _exploitation_area(None),
            _exploitation_area(SUB_REGION),
            _exploitation_area(CONTINENT),
            _top,
        ),
        tabulated=False,
    ),
    # One category each, so they pool nothing: no ladder and no differencing guard needed.
    QuasiIdentifier("isForcedLabour", (_form_flag(FORCED_LABOUR),), tabulated=False),
    QuasiIdentifier("isSexualExploit", (_form_flag(SEXUAL_EXPLOITATION),), tabulated=False),
    QuasiIdentifier("isOtherExploit", (_other_flag, _top), categories=_other_forms),
)
QI_COLUMNS = tuple(qi.column for qi in QUASI_IDENTIFIERS)
# Variables whose first level already pools page categories (the forms counted as "other").
POOLING_AT_FIRST_LEVEL = frozenset(
    i for i, qi in enumerate(QUASI_IDENTIFIERS) if qi.column == "isOtherExploit"
)
COLUMNS: tuple[str, ...] = (
    *QI_COLUMNS,
    "isSexAndLabour",
    *(f"meansOfControl{name}" for name in MEANS_OF_CONTROL),
    "meansOfControlNotSpecified",
    *(f"typeOfLabour{name}" for name in TYPE_OF_LABOUR),
    "typeOfLabourNotSpecified",
)


# Reading the cases ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """The coded facts of one case that the export reads (raw Haven values, no ids)."""

    year: int
    sex: str | None
    age_band: str | None
    is_minor: bool | None
    citizenship: str | None
    destinations: frozenset[str]
    forms: frozenset[str]
    means: frozenset[str]
    industry: str | None

    def quasi_identifiers(self) -> tuple:
        """Return the raw values in ``QUASI_IDENTIFIERS`` order."""
        return (
            self.year,
            self.sex,
            self.age_band,
            self.is_minor,
            self.citizenship,
            self.destinations,
            self.forms,
            self.forms,
            self.forms,
        )


CODE_LISTS_READ = ("exploitation_form", "destination_country", "means_of_control")


def counted_case_facts() -> list[CaseFacts]:
    """Return the facts of every counted case (not drafts; erased cases included).

    Reads coded columns only, never a case object: nothing is decrypted.
    """
    codes: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    code_rows = db.session.execute(
        select(CaseCode.case_id, CaseCode.list_name, CaseCode.code)
        .join(Case, Case.id == CaseCode.case_id)
        .where(
            Case.status != CaseStatus.DRAFT.value,
            CaseCode.list_name.in_(
                ["exploitation_form", "destination_country", "means_of_control"]
            ),
        )
    )
    for case_id, list_name, code in code_rows:
        codes[case_id][list_name].add(code)
    facts = []
    case_rows = db.session.execute(
        select(
            Case.id,
            Case.identified_on,
            Case.created_at,
            Case.sex,
            Case.age_band,
            Case.is_minor,
            Case.citizenship,
            Case.industry,
        ).where(Case.status != CaseStatus.DRAFT.value)
    )
    for case_id, identified_on, created_at, sex, band, minor, citizenship, industry in case_rows:
        of_case = codes.get(case_id, {})
        facts.append(
            CaseFacts(
                year=_year(identified_on, created_at),
                sex=sex,
                age_band=band,
                is_minor=minor,
                citizenship=citizenship,
                destinations=frozenset(of_case.get("destination_country", ())),
                forms=frozenset(of_case.get("exploitation_form", ())),
                means=frozenset(of_case.get("means_of_control", ())),
                industry=industry,
            )
        )
    return facts


def _year(identified_on: date | None, created_at: datetime) -> int:
    # As reports.statistics counts it: the day identified, else the (UTC) day opened.
    if identified_on is not None:
        return identified_on.year
    return created_at.year


# Sensitive attributes -------------------------------------------------------------------------


def sensitive_values(facts: CaseFacts) -> dict[str, int]:
    """Return the non-identifying CTDC columns of a case: means of control, type of labour."""
    values: dict[str, int] = {}
    flags = [_form_flag(FORCED_LABOUR)(facts.forms), _form_flag(SEXUAL_EXPLOITATION)(facts.forms)]
    values["isSexAndLabour"] = MISSING if MISSING in flags else int(all(flags))
    for name, codes in MEANS_OF_CONTROL.items():
        known = bool(facts.means) and bool(codes)
        values[f"meansOfControl{name}"] = int(bool(facts.means & set(codes))) if known else MISSING
    values["meansOfControlNotSpecified"] = int(not facts.means)
    section = facts.industry
    for name, sections in TYPE_OF_LABOUR.items():
        if section is None or not sections:
            values[f"typeOfLabour{name}"] = MISSING
        elif sections == ("*",):
            values[f"typeOfLabour{name}"] = int(section not in LABOUR_SECTIONS)
        else:
            values[f"typeOfLabour{name}"] = int(section in sections)
    labour = FORCED_LABOUR in facts.forms
    values["typeOfLabourNotSpecified"] = (0 if section else 1) if (section or labour) else MISSING
    return values


# k-anonymity ------------------------------------------------------------------------------------


def k_anonymity(rows: Sequence[Mapping[str, Any]], quasi_identifiers: Sequence[str]) -> int:
    """Return the size of the smallest class of rows sharing the quasi-identifiers (0: none)."""
    classes = Counter(tuple(row[name] for name in quasi_identifiers) for row in rows)
    return min(classes.values(), default=0)


@dataclass
class AnonymisedExport:
    """The export: CTDC rows, the k they satisfy, the levels used and what was suppressed."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    k: int
    levels: dict[str, int]
    suppressed: int
    total: int

    def as_table(self) -> list[list[Any]]:
        """Return the heading and the rows as lists (for CSV and XLSX)."""
        return [list(self.columns), *([row[name] for name in self.columns] for row in self.rows)]


class _Generaliser:
    """Generalise raw quasi-identifier tuples, each distinct raw value computed once per level."""

    def __init__(self) -> None:
        self._cache: list[list[dict[Any, Any]]] = [
            [{} for _level in qi.ladder] for qi in QUASI_IDENTIFIERS
        ]

    def value(self, i: int, level: int, raw: Any) -> Any:
        cache = self._cache[i][level]
        if raw not in cache:
            cache[raw] = QUASI_IDENTIFIERS[i].ladder[level](raw)
        return cache[raw]

    def generalise(self, raw: tuple, levels: Sequence[int]) -> tuple:
        return tuple(
            self.value(i, level, value)
            for i, (level, value) in enumerate(zip(levels, raw, strict=True))
        )

    def small_rows(self, weights: Mapping[tuple, int], levels: Sequence[int], k: int) -> int:
        """Return how many rows fall in classes smaller than k at these levels."""
        classes: Counter = Counter()
        for raw, weight in weights.items():
            classes[self.generalise(raw, levels)] += weight
        return sum(size for size in classes.values() if size < k)


class _DifferencingGuard:
    """Find a generalised value whose pool of page categories would give a small cell back.

    Counts are over every counted case, as the pages count them; a category is small with
    1 to ``table_k`` - 1 cases (the pages show "<5").
    """

    def __init__(self, weights: Mapping[tuple, int], table_k: int) -> None:
        self.table_k = table_k
        self.tabulated = [i for i, qi in enumerate(QUASI_IDENTIFIERS) if qi.tabulated]
        self.single: dict[int, Counter] = {i: Counter() for i in self.tabulated}
        self.pairs: dict[tuple[int, int], Counter] = {
            pair: Counter() for pair in combinations(self.tabulated, 2)
        }
        for raw, weight in weights.items():
            categories = {i: list(QUASI_IDENTIFIERS[i].categories(raw[i])) for i in self.tabulated}
            for i in self.tabulated:
                for category in categories[i]:
                    self.single[i][category] += weight
            for (i, j), counter in self.pairs.items():
                for first in categories[i]:
                    for second in categories[j]:
                        counter[first, second] += weight

    def _leaks(self, cells: Iterable[tuple[Any, int]], pool_of: Callable[[Any], Any]) -> bool:
        pools: dict[Any, list[int]] = defaultdict(list)
        for category, count in cells:
            if count:
                pools[pool_of(category)].append(count)
        return any(
            len(counts) > 1 and sum(1 for count in counts if count < self.table_k) == 1
            for counts in pools.values()
        )

    def leaking(self, levels: Sequence[int]) -> int | None:
        """Return the index of a quasi-identifier to generalise further, or None.

        The top level (``*``) pools a whole variable: its count is a total the pages show
        themselves, so it is not checked.
        """

        def value(i: int, category: Any) -> Any:
            return QUASI_IDENTIFIERS[i].ladder[levels[i]](category)

        def at_top(i: int) -> bool:
            return levels[i] == QUASI_IDENTIFIERS[i].top

        for i in self.tabulated:
            if not at_top(i) and self._leaks(self.single[i].items(), lambda c, i=i: value(i, c)):
                return i
        for (i, j), counter in self.pairs.items():
            if at_top(i) or at_top(j):
                continue
            if self._leaks(counter.items(), lambda c, i=i, j=j: (value(i, c[0]), value(j, c[1]))):
                # Generalise the one that pools categories: already generalised, or pooling
                # from its first level on.
                pooling = [x for x in (i, j) if levels[x] > 0 or x in POOLING_AT_FIRST_LEVEL]
                return pooling[0] if pooling else i
        return None


def _config(name: str, default: Any) -> Any:
    return current_app.config.get(name, default) if has_app_context() else default


def anonymise(
    facts: Sequence[CaseFacts],
    k: int | None = None,
    *,
    table_k: int | None = None,
    max_suppression: float | None = None,
) -> AnonymisedExport:
    """Generalise and suppress until every quasi-identifier combination has ≥ k rows."""
    k = int(k if k is not None else _config("HAVEN_EXPORT_K", DEFAULT_EXPORT_K))
    if table_k is None:
        table_k = configured_k(current_app.config if has_app_context() else None)
    if max_suppression is None:
        max_suppression = float(_config("HAVEN_EXPORT_MAX_SUPPRESSION", DEFAULT_MAX_SUPPRESSION))
    weights = Counter(fact.quasi_identifiers() for fact in facts)
    budget = math.floor(max_suppression * len(facts))
    levels = [0] * len(QUASI_IDENTIFIERS)
    guard = _DifferencingGuard(weights, table_k)
    generaliser = _Generaliser()
    while True:
        leaking = guard.leaking(levels)
        if leaking is not None:
            levels[leaking] += 1
            continue
        if generaliser.small_rows(weights, levels, k) <= budget:
            break
        candidates = [i for i, qi in enumerate(QUASI_IDENTIFIERS) if levels[i] < qi.top]
        if not candidates:
            break

        def after_raising(i: int) -> int:
            trial = list(levels)
            trial[i] += 1
            return generaliser.small_rows(weights, trial, k)

        levels[min(candidates, key=lambda i: (after_raising(i), i))] += 1

    generalised = [
        (generaliser.generalise(fact.quasi_identifiers(), levels), fact) for fact in facts
    ]
    sizes = Counter(values for values, _fact in generalised)
    rows = []
    for values, fact in generalised:
        if sizes[values] < k:
            continue
        rows.append({**dict(zip(QI_COLUMNS, values, strict=True)), **sensitive_values(fact)})
    rows.sort(key=lambda row: tuple(str(row[name]) for name in COLUMNS))
    return AnonymisedExport(
        columns=COLUMNS,
        rows=rows,
        k=k,
        levels={qi.column: level for qi, level in zip(QUASI_IDENTIFIERS, levels, strict=True)},
        suppressed=len(facts) - len(rows),
        total=len(facts),
    )


def build_anonymised_export(k: int | None = None) -> AnonymisedExport:
    """Return the anonymised export of every counted case."""
    return anonymise(counted_case_facts(), k)
