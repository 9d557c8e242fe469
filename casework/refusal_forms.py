"""The anonymous refusal form: coded fields only, no free text anywhere."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectField
from wtforms.fields import MonthField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, ValidationError

from casework.models import local_today
from casework.reference import choices_for
from casework.refusals import (
    AGE_BAND_CODES,
    MINOR_AGE_BANDS,
    REFUSAL_CODE_LISTS,
    REFUSAL_CODED_FIELDS,
)
from core.forms import CheckboxesField, HavenForm

EARLIEST_MONTH = date(2000, 1, 1)

FIELD_LABELS = {
    "month": _l("Month identified"),
    "sex": _l("Sex"),
    "age_band": _l("Age band"),
    "is_minor": _l("A child (under 18)"),
    "citizenship": _l("Citizenship"),
    "identification_region": _l("Region of identification"),
    "exploitation_form": _l("Forms of exploitation"),
    "intake_channel": _l("Intake channel"),
    "refusal_reason": _l("Main reason for refusing"),
    "services_offered": _l("Advice or information was still given"),
}

_YES_NO_UNKNOWN = [
    SelectChoice("", _l("Not known")),
    SelectChoice("yes", _l("Yes")),
    SelectChoice("no", _l("No")),
]
_YES_NO = [SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))]


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def _month_in_range(form, field) -> None:
    if field.data is None:
        return
    if field.data > local_today():
        raise ValidationError(_l("The month cannot be in the future."))
    if field.data < EARLIEST_MONTH:
        raise ValidationError(_l("Please enter a month after 2000."))


class RefusalForm(HavenForm):
    """What Haven keeps of a person who refused the NRM: codes chosen from lists.

    Call ``load_choices()`` before validating or showing.
    """

    month = MonthField(
        FIELD_LABELS["month"],
        default=lambda: local_today().replace(day=1),
        validators=[InputRequired(message=_l("Give the month.")), _month_in_range],
        invalid_value_message=_l("Please enter a month, for example 2026-03."),
    )
    sex = SelectField(FIELD_LABELS["sex"], choices=[], default="")
    age_band = SelectField(FIELD_LABELS["age_band"], choices=[], default="")
    is_minor = SelectField(FIELD_LABELS["is_minor"], choices=_YES_NO_UNKNOWN, default="")
    citizenship = SelectField(FIELD_LABELS["citizenship"], choices=[], default="")
    identification_region = SelectField(
        FIELD_LABELS["identification_region"], choices=[], default=""
    )
    exploitation_form = CheckboxesField(FIELD_LABELS["exploitation_form"], choices=[])
    intake_channel = SelectField(FIELD_LABELS["intake_channel"], choices=[], default="")
    refusal_reason = SelectField(
        FIELD_LABELS["refusal_reason"],
        choices=[],
        default="",
        validators=[InputRequired(message=_l("Choose the main reason."))],
    )
    services_offered = RadioField(
        FIELD_LABELS["services_offered"],
        choices=_YES_NO,
        validators=[InputRequired(message=_l("Say whether advice or information was given."))],
    )

    def load_choices(self) -> None:
        """Offer the active reference items of each coded field."""
        for name, list_name in REFUSAL_CODED_FIELDS.items():
            if list_name is None:
                continue
            blank = _l("Choose…") if name == "refusal_reason" else _l("Not recorded")
            self[name].choices = _choices([("", blank), *choices_for(list_name)])
        self.age_band.choices = _choices(
            [("", _l("Not known")), *((code, code) for code in AGE_BAND_CODES)]
        )
        for name, list_name in REFUSAL_CODE_LISTS.items():
            self[name].choices = _choices(choices_for(list_name))

    def validate_is_minor(self, field) -> None:
        band = self.age_band.data
        if band and field.data and (field.data == "yes") != (band in MINOR_AGE_BANDS):
            raise ValidationError(_l("The age band says otherwise."))

    def refusal_data(self) -> dict[str, object]:
        """Return the values for ``record_refusal``."""
        data: dict[str, object] = {name: self[name].data or None for name in REFUSAL_CODED_FIELDS}
        data["month"] = self.month.data
        data["is_minor"] = {"yes": True, "no": False}.get(self.is_minor.data or "")
        data["services_offered"] = self.services_offered.data == "yes"
        data["exploitation_form"] = list(self.exploitation_form.data or [])
        return data
