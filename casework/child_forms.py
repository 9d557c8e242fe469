"""Forms of the child path: guardian, best-interests determination, tracing, family assessment.

The choices come from the enums in ``casework.child_protection``: a best-interests form can
offer nothing else (detention is not among them, and a submitted code outside the list fails).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from casework.casefile_forms import _date_field, _not_in_future, _strip, choices_of
from casework.child_protection import (
    AppointingBody,
    AssessmentOutcome,
    Assessor,
    BidOption,
    DecidingBody,
    GuardianRole,
    HeardHow,
    Tracer,
    TracingResult,
)
from casework.models import local_today
from core.forms import CheckboxesField, HavenForm

_MAX = _l("At most %(max)d characters.")
_REQUIRED = _l("Please choose one.")
_DATE_REQUIRED = _l("Please enter the date.")


class GuardianForm(HavenForm):
    guardian_name = StringField(
        _l("Guardian's name"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Enter the guardian's name.")),
            Length(max=300, message=_MAX),
        ],
    )
    role = SelectField(
        _l("Role"),
        choices=choices_of(GuardianRole, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    appointing_body = SelectField(
        _l("Appointed by"),
        choices=choices_of(AppointingBody, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    appointed_on = _date_field(
        _l("Appointed on"), DataRequired(message=_DATE_REQUIRED), _not_in_future
    )
    guardian_notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=2000, message=_MAX)]
    )


class BestInterestsForm(HavenForm):
    deciding_body = SelectField(
        _l("Decided by"),
        choices=choices_of(DecidingBody, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    decided_by_name = StringField(
        _l("Name of the person or panel deciding"),
        filters=[_strip],
        validators=[Length(max=300, message=_MAX)],
    )
    decided_on = _date_field(
        _l("Decided on"), DataRequired(message=_DATE_REQUIRED), _not_in_future, default=local_today
    )
    options = CheckboxesField(_l("Options considered"), choices=choices_of(BidOption))
    decision = RadioField(
        _l("Decision"),
        choices=choices_of(BidOption),
        validators=[InputRequired(message=_REQUIRED)],
    )
    reasoning = TextAreaField(
        _l("Reasoning"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Write down the reasoning.")),
            Length(max=10000, message=_MAX),
        ],
    )
    child_heard = RadioField(
        _l("Was the child heard?"),
        choices=[SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))],
        validators=[InputRequired(message=_REQUIRED)],
    )
    heard_how = SelectField(
        _l("How the child was heard"),
        choices=choices_of(HeardHow, blank=_l("Not heard")),
        default="",
    )

    def validate_options(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Choose the options considered."))

    def validate_decision(self, field) -> None:
        if field.data and field.data not in (self.options.data or []):
            raise ValidationError(_l("The decision must be one of the options considered."))

    def validate_heard_how(self, field) -> None:
        if self.child_heard.data == "yes" and not field.data:
            raise ValidationError(_l("Say how the child was heard."))


class TracingForm(HavenForm):
    traced_by = SelectField(
        _l("Traced by"),
        choices=choices_of(Tracer, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    started_on = _date_field(
        _l("Started on"), DataRequired(message=_DATE_REQUIRED), _not_in_future, default=local_today
    )
    result = SelectField(
        _l("Result"),
        choices=choices_of(TracingResult),
        default=TracingResult.ONGOING.value,
        validators=[DataRequired(message=_REQUIRED)],
    )
    tracing_notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )


class TracingResultForm(HavenForm):
    result = SelectField(
        _l("Result"),
        choices=choices_of(TracingResult),
        validators=[DataRequired(message=_REQUIRED)],
    )
    result_notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )
    version = HiddenField()

    def validate_version(self, field) -> None:
        if not (field.data or "").isdigit():
            raise ValidationError(_l("The form expired. Please submit it again."))


class FamilyAssessmentForm(HavenForm):
    assessed_on = _date_field(
        _l("Assessed on"), DataRequired(message=_DATE_REQUIRED), _not_in_future, default=local_today
    )
    assessed_by = SelectField(
        _l("Assessed by"),
        choices=choices_of(Assessor, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    outcome = RadioField(
        _l("Outcome"),
        choices=choices_of(AssessmentOutcome),
        validators=[InputRequired(message=_REQUIRED)],
    )
    assessment_notes = TextAreaField(
        _l("Notes"), filters=[_strip], validators=[Length(max=5000, message=_MAX)]
    )
