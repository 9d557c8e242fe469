"""Forms of the case file: indicators, assessments, consent, services, notes, attachments."""

from __future__ import annotations

from datetime import datetime

from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from casework.casefile import (
    Answer,
    ConsentGivenBy,
    ConsentMethod,
    ConsentPurpose,
    ConsentStatus,
    IndicatorCategory,
    IndicatorDefinition,
    Need,
    RiskLevel,
    ServiceOutcome,
    ServiceType,
)
from casework.casefile_services import ConsentDecision
from casework.models import local_today
from core.forms import CheckboxesField, HavenForm

CONSENT_TEXT_VERSION = "2026-1"
_MAX = _l("At most %(max)d characters.")
_REQUIRED = _l("Please choose one.")


def _strip(value):
    # Text areas send CRLF; store "\n" only.
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _not_in_future(form, field) -> None:
    if field.data is not None and field.data > datetime.now(get_timezone()).date():
        raise ValidationError(_l("The date cannot be in the future."))



def _date_field(label, *validators, default=None) -> DateField:
    return DateField(
        label,
        default=default,
        validators=list(validators),
        invalid_value_message=_l("Please enter a real date, for example 2026-03-21."),
    )


def choices_of(enum_cls, *, blank=None) -> list[SelectChoice]:
    """Return an enum's values as WTForms choices, optionally after a blank one."""
    options = [SelectChoice("", blank)] if blank is not None else []
    return options + [SelectChoice(value, label) for value, label in enum_cls.choices()]


# Indicators --------------------------------------------------------------------------------


class IndicatorsForm(HavenForm):
    """One answer and note per indicator; the fields are added per checklist."""

    def answers(self, definitions: list[IndicatorDefinition]) -> dict[str, tuple[str, str | None]]:
        """Return code -> (answer, note) as plain data for the service."""
        return {
            row.code: (
                self[f"answer_{row.code}"].data or Answer.UNKNOWN.value,
                self[f"note_{row.code}"].data or None,
            )
            for row in definitions
        }


def indicators_form(definitions: list[IndicatorDefinition], answers: dict, **kwargs):
    """Build and return an indicators form for this checklist, filled with saved answers."""

    class Form(IndicatorsForm):
        pass

    for row in definitions:
        setattr(
            Form,
            f"answer_{row.code}",
            RadioField(
                row.label,
                choices=choices_of(Answer),
                default=Answer.UNKNOWN.value,
                # A question left out of the submission stays "unknown".
                validators=[Optional()],
            ),
        )
        setattr(
            Form,
            f"note_{row.code}",
            StringField(_l("Note"), filters=[_strip], validators=[Length(max=500, message=_MAX)]),
        )
    data = {}
    for code, saved in answers.items():
        data[f"answer_{code}"] = saved.answer
        data[f"note_{code}"] = saved.note
    return Form(data=data, **kwargs)


class IndicatorForm(HavenForm):
    """An indicator of the checklist as the administrator edits it: category, labels, place."""

    category = SelectField(
        _l("Category"),
        choices=choices_of(IndicatorCategory),
        validators=[InputRequired(message=_REQUIRED)],
    )
    label_en = StringField(
        _l("Label in English"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter the English label.")),
            Length(max=300, message=_MAX),
        ],
    )
    label_az = StringField(
        _l("Label in Azerbaijani"), filters=[_strip], validators=[Length(max=300, message=_MAX)]
    )
    label_ru = StringField(
        _l("Label in Russian"), filters=[_strip], validators=[Length(max=300, message=_MAX)]
    )
    position = IntegerField(
        _l("Position"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=10000)],
        description=_l("Lower numbers come first within the category."),
    )

    def labels(self) -> dict[str, str]:
        return {language: self[f"label_{language}"].data or "" for language in ("en", "az", "ru")}


class IndicatorCreateForm(IndicatorForm):
    """A new indicator: its code as well (never changed afterwards, answers refer to it)."""

    code = StringField(
        _l("Code"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter a code.")),
            Regexp(
                r"^[a-z0-9_]{1,40}$",
                message=_l("Lower-case letters, digits and _ only, at most 40 characters."),
            ),
        ],
    )


# Assessments -------------------------------------------------------------------------------


def _level_field(label) -> RadioField:
    return RadioField(
        label, choices=choices_of(RiskLevel), validators=[InputRequired(message=_REQUIRED)]
    )


class RiskAssessmentForm(HavenForm):
    retaliation = _level_field(_l("Risk of retaliation"))
    retrafficking = _level_field(_l("Risk of re-trafficking"))
    health_emergency = _level_field(_l("Risk of a health emergency"))
    self_harm = _level_field(_l("Risk of self-harm"))
    notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )
    plan = TextAreaField(
        _l("Safety plan"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )

    def levels(self) -> dict[str, str]:
        return {
            name: self[name].data
            for name in ("retaliation", "retrafficking", "health_emergency", "self_harm")
        }


class NeedsAssessmentForm(HavenForm):
    needs = CheckboxesField(_l("Needs"), choices=choices_of(Need))
    needs_notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )

    def validate_needs(self, field) -> None:
        if not field.data and not self.needs_notes.data:
            raise ValidationError(_l("Choose at least one need or write a note."))


# Consent -----------------------------------------------------------------------------------


class _ConsentFields(HavenForm):
    recorded_on = _date_field(
        _l("Date"),
        DataRequired(message=_l("Please enter the date.")),
        _not_in_future,
        default=local_today,
    )
    how_obtained = RadioField(
        _l("How it was obtained"),
        choices=choices_of(ConsentMethod),
        validators=[InputRequired(message=_REQUIRED)],
    )
    given_by = RadioField(
        _l("Decided by"),
        choices=choices_of(ConsentGivenBy),
        default=ConsentGivenBy.PERSON.value,
        validators=[InputRequired(message=_REQUIRED)],
    )
    guardian = StringField(
        _l("Guardian's name and relationship to the child"),
        filters=[_strip],
        validators=[Length(max=300, message=_MAX)],
    )
    best_interests_decision = TextAreaField(
        _l("Best-interests decision"),
        filters=[_strip],
        validators=[Length(max=5000, message=_MAX)],
    )

    def __init__(self, *args, is_minor: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_minor = is_minor

    def validate_given_by(self, field) -> None:
        if self.is_minor and field.data == ConsentGivenBy.PERSON.value:
            raise ValidationError(
                _l("For a child, record the guardian or the best-interests decision.")
            )

    def validate_guardian(self, field) -> None:
        if self.given_by.data == ConsentGivenBy.GUARDIAN.value and not field.data:
            raise ValidationError(_l("Enter the guardian's name and relationship."))

    def validate_best_interests_decision(self, field) -> None:
        if self.given_by.data == ConsentGivenBy.BEST_INTERESTS.value and not field.data:
            raise ValidationError(_l("Describe the best-interests decision."))

    def decision(self, status: str, text_version: str = CONSENT_TEXT_VERSION) -> ConsentDecision:
        """Return the decision as plain data for the service."""
        given_by = self.given_by.data
        return ConsentDecision(
            status=status,
            recorded_on=self.recorded_on.data,
            how_obtained=self.how_obtained.data,
            consent_text_version=text_version,
            given_by=given_by,
            guardian=self.guardian.data or None
            if given_by == ConsentGivenBy.GUARDIAN.value
            else None,
            best_interests_decision=self.best_interests_decision.data or None
            if given_by == ConsentGivenBy.BEST_INTERESTS.value
            else None,
        )


class ConsentForm(_ConsentFields):
    purpose = SelectField(
        _l("Purpose"),
        choices=choices_of(ConsentPurpose),
        validators=[InputRequired(message=_REQUIRED)],
    )
    agency = SelectField(
        _l("Agency the referral may go to"), choices=[], validate_choice=False, default=""
    )
    status = RadioField(
        _l("Decision"),
        choices=[
            SelectChoice(ConsentStatus.GIVEN.value, _l("Given")),
            SelectChoice(ConsentStatus.REFUSED.value, _l("Refused")),
        ],
        validators=[InputRequired(message=_REQUIRED)],
    )
    consent_text_version = StringField(
        _l("Version of the consent text shown"),
        default=CONSENT_TEXT_VERSION,
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter the version.")),
            Length(max=40, message=_MAX),
        ],
    )

    def validate_agency(self, field) -> None:
        allowed = {choice.value for choice in field.choices if choice.value}
        if self.purpose.data == ConsentPurpose.REFERRAL.value:
            if field.data not in allowed:
                raise ValidationError(_l("Choose the agency the referral may go to."))
        elif field.data:
            raise ValidationError(_l("Only a referral consent names an agency."))

    def agency_id(self) -> int | None:
        return int(self.agency.data) if self.agency.data else None


class ConsentWithdrawForm(_ConsentFields):
    """Withdraw the current consent of one purpose (and agency): a new record, not an edit."""


# Services, notes, attachments --------------------------------------------------------------


class ServiceRecordForm(HavenForm):
    service_type = SelectField(
        _l("Service"),
        choices=choices_of(ServiceType, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    provider = SelectField(
        _l("Provided by"), choices=[], validators=[DataRequired(message=_REQUIRED)]
    )
    started_on = _date_field(
        _l("Started on"),
        DataRequired(message=_l("Please enter the date.")),
        _not_in_future,
        default=local_today,
    )
    ended_on = _date_field(_l("Ended on"), Optional(), _not_in_future)
    outcome = SelectField(
        _l("Outcome"), choices=choices_of(ServiceOutcome, blank=_l("Not yet known"))
    )
    outcome_note = TextAreaField(
        _l("Outcome note"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )

    def validate_ended_on(self, field) -> None:
        if field.data and self.started_on.data and field.data < self.started_on.data:
            raise ValidationError(_l("A service cannot end before it starts."))


class CaseNoteForm(HavenForm):
    body = TextAreaField(
        _l("Note"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please write the note.")),
            Length(max=20000, message=_MAX),
        ],
    )


def _check_version(form, field) -> None:
    if not (field.data or "").isascii() or not (field.data or "").isdigit():
        raise ValidationError(_l("The form is out of date. Please reload the page."))


class ServiceRecordEditForm(ServiceRecordForm):
    """A service record's fields, with the version the user started from."""

    version = HiddenField(validators=[DataRequired(), _check_version])

    def values(self) -> dict[str, object]:
        """Return the typed values under the service record's field names."""
        return {
            "service_type": self.service_type.data,
            "provider_agency_id": int(self.provider.data),
            "started_on": self.started_on.data,
            "ended_on": self.ended_on.data,
            "outcome": self.outcome.data or None,
            "outcome_note": self.outcome_note.data or None,
        }


class CaseNoteEditForm(CaseNoteForm):
    """A note's corrected text, with the version the user started from."""

    version = HiddenField(validators=[DataRequired(), _check_version])


class AttachmentForm(HavenForm):
    file = FileField(
        _l("File"),
        description=_l("PDF, PNG, JPEG, DOCX, XLSX, ODT or plain text."),
    )
    description = StringField(
        _l("Description"), filters=[_strip], validators=[Length(max=300, message=_MAX)]
    )

    def validate_file(self, field) -> None:
        if not field.data or not getattr(field.data, "filename", ""):
            raise ValidationError(_l("Please choose a file."))
