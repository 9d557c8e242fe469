"""What the case page and the conflict page show of the intake: sections, labels and codes.

Read-only helpers for the views: they turn a case's fields (decrypted person fields, codes
of reference lists) into display rows, so templates only loop and print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l

from casework.forms import FIELD_LABELS
from casework.models import Case, NrmStatus
from casework.reference import labels_for, labels_of
from casework.services import CODE_LIST_FIELDS, CODED_FIELDS, case_values
from core.models import AgencyType

NRM_LABELS = {
    NrmStatus.PRESUMED: _l("Presumed victim"),
    NrmStatus.PENDING_DECISION: _l("Decision pending"),
    NrmStatus.RECOGNISED: _l("Recognised as a victim"),
    NrmStatus.NOT_RECOGNISED: _l("Not recognised"),
}
NRM_BADGES = {
    NrmStatus.PRESUMED: "",
    NrmStatus.PENDING_DECISION: "badge--warn",
    NrmStatus.RECOGNISED: "badge--ok",
    NrmStatus.NOT_RECOGNISED: "badge--danger",
}

# The case page's sections, in the intake form's order.
SECTIONS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (
        _l("Identity"),
        (
            "given_name",
            "family_name",
            "aliases",
            "date_of_birth",
            "estimated_age",
            "place_of_birth",
            "document_type",
            "document_number",
        ),
    ),
    (_l("Contact"), ("phone", "address", "contact_person")),
    (_l("Languages and interpreter"), ("languages_spoken", "interpreter_needed")),
    (
        _l("Identification"),
        ("identified_on", "identification_region", "identification_circumstances"),
    ),
    (
        _l("Exploitation"),
        (
            "exploitation_form",
            "origin_country",
            "transit_country",
            "destination_country",
            "industry",
            "means_of_control",
            "recruitment_type",
            "circumstances",
            "exploitation_narrative",
            "recruitment_narrative",
        ),
    ),
    (_l("Health"), ("medical_notes",)),
    (
        _l("Coded for statistics"),
        ("sex", "citizenship", "age_band", "is_minor", "agency_type", "intake_channel"),
    ),
)

EXTRA_LABELS = {
    "age_band": _l("Age band at identification"),
    "is_minor": _l("Minor at identification"),
    "agency_type": _l("Identifying agency type"),
    "identified_month": _l("Month identified"),
}


@dataclass(frozen=True)
class Row:
    name: str
    label: Any
    # Text to show (None: not recorded); dates stay dates for the |date filter.
    value: Any
    is_date: bool = False


@dataclass(frozen=True)
class Section:
    title: Any
    rows: list[Row]


def _reference_list(name: str) -> str | None:
    return CODED_FIELDS.get(name) or CODE_LIST_FIELDS.get(name)


def shown_value(name: str, value: Any, labels: dict[str, dict[str, str]]) -> Any:
    """Return a field's value as shown: codes as labels, yes/no, lists joined."""
    list_name = _reference_list(name)
    if isinstance(value, bool):
        return str(_l("Yes") if value else _l("No"))
    if value in (None, "", [], ()):
        return None
    if list_name is not None:
        names = labels.get(list_name)
        if names is None:
            names = labels[list_name] = labels_of(list_name)
        if isinstance(value, list | tuple):
            return ", ".join(names.get(code, code) for code in value)
        return names.get(value, value)
    return value


def _labels_needed(*sources: tuple[str, Any]) -> dict[str, dict[str, str]]:
    """Return, for every reference list the fields use, the labels of the codes they hold.

    One query for all of them, instead of reading whole lists (the country list alone has
    some 250 items) to show a few codes; ``shown_value`` then finds every list filled in.
    """
    lists: dict[str, dict[str, str]] = {}
    wanted = []
    for name, value in sources:
        list_name = _reference_list(name)
        if list_name is None:
            continue
        lists.setdefault(list_name, {})
        if isinstance(value, list | tuple):
            wanted.extend((list_name, code) for code in value if isinstance(code, str))
        elif isinstance(value, str) and value:
            wanted.append((list_name, value))
    for (list_name, code), label in labels_for(wanted).items():
        lists[list_name][code] = label
    return lists


def case_sections(case: Case) -> list[Section]:
    """Return the case page's sections with every field's shown value."""
    values = case_values(case)
    values["age_band"] = case.age_band
    values["is_minor"] = case.is_minor
    agency_type = case.identifying_agency_type
    values["agency_type"] = (
        AgencyType(agency_type).label if agency_type in set(AgencyType) else agency_type
    )
    labels = _labels_needed(*((name, values[name]) for _title, names in SECTIONS for name in names))
    sections = []
    for title, names in SECTIONS:
        rows = []
        for name in names:
            value = shown_value(name, values[name], labels)
            label = FIELD_LABELS.get(name) or EXTRA_LABELS[name]
            rows.append(Row(name, label, value, is_date=isinstance(value, date)))
        sections.append(Section(title, rows))
    return sections


# What remains of an erased case: the coded fields in clear, counted in statistics.
ERASED_FIELDS = (
    "sex",
    "age_band",
    "is_minor",
    "citizenship",
    "identification_region",
    "identified_month",
    "agency_type",
    "intake_channel",
    "exploitation_form",
    "origin_country",
    "transit_country",
    "destination_country",
    "industry",
    "means_of_control",
    "recruitment_type",
    "interpreter_needed",
)


def coded_rows(case: Case) -> list[Row]:
    """Return the case's coded (non-personal) fields as rows, reading no encrypted column.

    Safe on an erased case: nothing here needs the destroyed data key.
    """
    values: dict[str, Any] = {name: getattr(case, name) for name in CODED_FIELDS}
    values.update({name: case.codes_in(name) for name in CODE_LIST_FIELDS})
    values["age_band"] = case.age_band
    values["is_minor"] = case.is_minor
    values["identified_month"] = case.identified_month
    agency_type = case.identifying_agency_type
    values["agency_type"] = (
        AgencyType(agency_type).label if agency_type in set(AgencyType) else agency_type
    )
    labels = _labels_needed(*((name, values[name]) for name in ERASED_FIELDS))
    rows = []
    for name in ERASED_FIELDS:
        if name == "is_minor" and values[name] is None:
            value = None  # unknown age: neither yes nor no
        else:
            value = shown_value(name, values[name], labels)
        label = FIELD_LABELS.get(name) or EXTRA_LABELS[name]
        rows.append(Row(name, label, value))
    return rows


def conflict_rows(case: Case, typed: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Return (label, saved, typed) for each field in conflict, codes shown as labels."""
    saved = case_values(case)
    labels = _labels_needed(
        *((name, saved[name]) for name in names), *((name, typed.get(name)) for name in names)
    )
    return [
        {
            "name": name,
            "label": FIELD_LABELS[name],
            "saved": _text(shown_value(name, saved[name], labels)),
            "typed": _text(shown_value(name, typed.get(name), labels)),
        }
        for name in names
    ]


def _text(value: Any) -> Any:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def nrm_summary(case: Case) -> dict[str, Any]:
    """Return the NRM status, the reflection period end and its warning state for the page."""
    status = NrmStatus(case.nrm_status)
    return {
        "label": NRM_LABELS[status],
        "badge": NRM_BADGES[status],
        "decided_on": case.nrm_decided_on,
        "reflection_ends_on": case.reflection_period_ends_on,
        # "none", "running", "ending" or "ended" (see Case.reflection_state).
        "reflection_state": case.reflection_state(),
    }


def safeguarding(case: Case) -> dict[str, bool]:
    """Return whether to show the child-safeguarding banner and the missing-guardian warning."""
    minor = bool(case.is_minor)
    return {"minor": minor, "guardian_missing": minor and not case.contact_person}
