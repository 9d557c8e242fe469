"""Forms for the intake of a case (new, edit, conflict) and for the reference list admin pages."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from casework.models import local_today
from casework.reference import choices_for
from casework.services import CODE_LIST_FIELDS, CODED_FIELDS, PERSON_FIELDS
from core.forms import CheckboxesField, CodesField, HavenForm

# Labels of the case fields, shared by the forms, the case page and the conflict page.
FIELD_LABELS = {
    "given_name": _l("Given name"),
    "family_name": _l("Family name"),
    "aliases": _l("Other names and aliases"),
    "date_of_birth": _l("Date of birth"),
    "estimated_age": _l("Estimated age at identification"),
    "place_of_birth": _l("Place of birth"),
    "document_type": _l("Identity document type"),
    "document_number": _l("Identity document number"),
    "phone": _l("Phone"),
    "address": _l("Address"),
    "contact_person": _l("Contact person or guardian"),
    "languages_spoken": _l("Languages spoken"),
    "interpreter_needed": _l("An interpreter is needed"),
    "identified_on": _l("Date of identification"),
    "identification_region": _l("Region of identification"),
    "identification_circumstances": _l("How the person was identified"),
    "circumstances": _l("Circumstances"),
    "exploitation_form": _l("Forms of exploitation"),
    "origin_country": _l("Countries of origin"),
    "transit_country": _l("Countries of transit"),
    "destination_country": _l("Countries of destination"),
    "industry": _l("Industry"),
    "means_of_control": _l("Means of control"),
    "recruitment_type": _l("Recruitment"),
    "exploitation_narrative": _l("Exploitation, in the person's words"),
    "recruitment_narrative": _l("Recruitment, in the person's words"),
    "medical_notes": _l("Medical notes"),
    "sex": _l("Sex"),
    "citizenship": _l("Citizenship"),
    "intake_channel": _l("Intake channel"),
}

EARLIEST_BIRTH_DATE = date(1900, 1, 1)
EARLIEST_IDENTIFICATION_DATE = date(2000, 1, 1)
REQUIRED_TO_OPEN = ("sex", "identified_on", "identification_region", "exploitation_form")


def _strip(value):
    # Browsers send CRLF line breaks from text areas; store "\n" only, so re-saving an
    # unchanged text is no change (and no new version).
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()



def _not_in_future(form, field) -> None:
    if field.data is None:
        return
    if field.data > local_today():
        raise ValidationError(_l("The date cannot be in the future."))
    if field.data < EARLIEST_BIRTH_DATE:
        raise ValidationError(_l("Please enter a date after 1900."))


def _identified_in_range(form, field) -> None:
    if field.data is None:
        return
    if field.data > local_today():
        raise ValidationError(_l("The date cannot be in the future."))
    if field.data < EARLIEST_IDENTIFICATION_DATE:
        raise ValidationError(_l("Please enter a date after 2000."))


def _text(label, max_length: int, area: bool = False):
    field = TextAreaField if area else StringField
    return field(
        label,
        filters=[_strip],
        validators=[Length(max=max_length, message=_l("At most %(max)d characters."))],
    )


class CaseForm(HavenForm):
    """The intake: every field a caseworker types when opening or editing a case.

    ``validate()`` checks formats only (what a draft needs); ``check_complete()`` adds the
    fields required to open the case. Call ``load_choices()`` before validating or showing.
    """

    # Identity
    given_name = _text(FIELD_LABELS["given_name"], 100)
    family_name = _text(FIELD_LABELS["family_name"], 100)
    aliases = _text(FIELD_LABELS["aliases"], 300)
    date_of_birth = DateField(
        FIELD_LABELS["date_of_birth"],
        validators=[Optional(), _not_in_future],
        invalid_value_message=_l("Please enter a real date, for example 1994-03-21."),
    )
    estimated_age = IntegerField(
        FIELD_LABELS["estimated_age"],
        validators=[
            Optional(),
            NumberRange(min=0, max=120, message=_l("Please enter an age from 0 to 120.")),
        ],
    )
    place_of_birth = _text(FIELD_LABELS["place_of_birth"], 200)
    document_type = _text(FIELD_LABELS["document_type"], 100)
    document_number = _text(FIELD_LABELS["document_number"], 50)
    # Contact
    phone = StringField(
        FIELD_LABELS["phone"],
        filters=[_strip],
        validators=[
            Optional(),
            Regexp(
                r"^\+?[0-9][0-9 ()\-]{3,28}[0-9]$",
                message=_l("Please enter digits only, optionally starting with +."),
            ),
        ],
    )
    address = _text(FIELD_LABELS["address"], 500, area=True)
    contact_person = _text(FIELD_LABELS["contact_person"], 500, area=True)
    # Languages and interpreter
    languages_spoken = _text(FIELD_LABELS["languages_spoken"], 300)
    interpreter_needed = BooleanField(FIELD_LABELS["interpreter_needed"])
    # Identification
    identified_on = DateField(
        FIELD_LABELS["identified_on"],
        validators=[Optional(), _identified_in_range],
        invalid_value_message=_l("Please enter a real date, for example 2026-03-21."),
    )
    identification_region = SelectField(
        FIELD_LABELS["identification_region"], choices=[], default=""
    )
    identification_circumstances = _text(
        FIELD_LABELS["identification_circumstances"], 10000, area=True
    )
    # Exploitation
    exploitation_form = CheckboxesField(FIELD_LABELS["exploitation_form"], choices=[])
    origin_country = CodesField(FIELD_LABELS["origin_country"], choices=[])
    transit_country = CodesField(FIELD_LABELS["transit_country"], choices=[])
    destination_country = CodesField(FIELD_LABELS["destination_country"], choices=[])
    industry = SelectField(FIELD_LABELS["industry"], choices=[], default="")
    means_of_control = CheckboxesField(FIELD_LABELS["means_of_control"], choices=[])
    recruitment_type = SelectField(FIELD_LABELS["recruitment_type"], choices=[], default="")
    circumstances = _text(FIELD_LABELS["circumstances"], 10000, area=True)
    exploitation_narrative = _text(FIELD_LABELS["exploitation_narrative"], 10000, area=True)
    recruitment_narrative = _text(FIELD_LABELS["recruitment_narrative"], 10000, area=True)
    # Health
    medical_notes = _text(FIELD_LABELS["medical_notes"], 10000, area=True)
    # Coded fields for statistics
    sex = SelectField(FIELD_LABELS["sex"], choices=[], default="")
    citizenship = SelectField(FIELD_LABELS["citizenship"], choices=[], default="")
    intake_channel = SelectField(FIELD_LABELS["intake_channel"], choices=[], default="")

    def load_choices(self, saved: dict[str, object] | None = None) -> None:
        """Offer the active reference items, plus the inactive ones the case already holds."""
        saved = saved or {}
        for name, list_name in CODED_FIELDS.items():
            if list_name is None:
                continue
            keep = [saved[name]] if saved.get(name) else []
            self[name].choices = [("", _l("Not recorded")), *choices_for(list_name, keep)]
        for name, list_name in CODE_LIST_FIELDS.items():
            self[name].choices = choices_for(list_name, saved.get(name) or [])

    def check_complete(self) -> bool:
        """Add the errors of fields required to open a case; return whether there were none."""
        complete = True
        # A person may refuse to give a name, but a case needs something to recognise them
        # by: a given name, a family name or an alias.
        if not (self.given_name.data or self.family_name.data or self.aliases.data):
            self.given_name.errors = [
                *self.given_name.errors,
                _l("Please enter a given name, a family name or an alias (it may be a nickname)."),
            ]
            complete = False
        for name in REQUIRED_TO_OPEN:
            field = self[name]
            if field.errors or field.data not in (None, "", []):
                continue
            field.errors = [*field.errors, _l("Required to open the case.")]
            complete = False
        # WTForms caches form.errors once read; make it see the errors added here.
        self._errors = None
        return complete

    def case_data(self) -> dict[str, object]:
        """Return the typed fields as plain data for the services (blank → None)."""
        data: dict[str, object] = {}
        for name in PERSON_FIELDS:
            data[name] = self[name].data if self[name].data not in ("", None) else None
        for name in CODED_FIELDS:
            data[name] = self[name].data if self[name].data not in ("",) else None
        data["interpreter_needed"] = bool(self.interpreter_needed.data)
        for name in CODE_LIST_FIELDS:
            data[name] = list(self[name].data or [])
        return data

    # The foundation's name for it, kept for callers that predate the intake.
    person_data = case_data


class CaseEditForm(CaseForm):
    """The same fields plus the version the user started from, for optimistic locking."""

    version = HiddenField(
        _l("Version"),
        validators=[
            DataRequired(message=_l("The form expired. Please open the case again.")),
            Regexp(r"^[0-9]{1,9}$", message=_l("The form expired. Please open the case again.")),
        ],
    )


# Reference list admin -------------------------------------------------------------------


class ReferenceItemForm(HavenForm):
    """An item's labels in each language and its position in the list."""

    label_en = StringField(
        _l("Label in English"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter the English label.")),
            Length(max=200, message=_l("At most %(max)d characters.")),
        ],
    )
    label_az = _text(_l("Label in Azerbaijani"), 200)
    label_ru = _text(_l("Label in Russian"), 200)
    sort_order = IntegerField(
        _l("Position"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=10000)],
        description=_l("Lower numbers come first; items with the same number sort by label."),
    )

    def labels(self) -> dict[str, str]:
        return {language: self[f"label_{language}"].data or "" for language in ("en", "az", "ru")}


class ReferenceItemCreateForm(ReferenceItemForm):
    """A new item: its code as well (never changed afterwards, cases store it)."""

    code = StringField(
        _l("Code"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter a code.")),
            Regexp(
                r"^[A-Za-z0-9_]{1,40}$",
                message=_l("Letters, digits and _ only, at most 40 characters."),
            ),
        ],
    )
