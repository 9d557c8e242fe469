"""Forms of the return plan, its sign-off and steps, the reintegration plan, measures, visits."""

from __future__ import annotations

from decimal import Decimal

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DecimalField, HiddenField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from casework.casefile_forms import _check_version, _date_field, _not_in_future, _strip, choices_of
from casework.models import local_today
from casework.reference import choices_for
from casework.reintegration import Currency, MeasureStatus, MeasureType, VisitMethod, VisitOutcome
from casework.returns import AZERBAIJAN, CancelReason, Escort, ReturnRisk, TravelDocumentStatus
from core.forms import HavenForm

_MAX = _l("At most %(max)d characters.")
_REQUIRED = _l("Please choose one.")


def _note(label, *validators, max_length: int = 5000) -> TextAreaField:
    return TextAreaField(
        label, filters=[_strip], validators=[*validators, Length(max=max_length, message=_MAX)]
    )


# Return plan -------------------------------------------------------------------------------


class ReturnPlanForm(HavenForm):
    destination_country = SelectField(
        _l("Destination country"), choices=[], validators=[DataRequired(message=_REQUIRED)]
    )
    destination_region = SelectField(
        _l("Region (for a return to Azerbaijan)"), choices=[], default=""
    )
    travel_document_status = SelectField(
        _l("Travel document"),
        choices=choices_of(TravelDocumentStatus, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    escort = SelectField(_l("Escort"), choices=choices_of(Escort), default=Escort.NONE.value)
    planned_on = _date_field(_l("Planned date of travel"), Optional())

    def load_choices(self, keep: dict | None = None) -> None:
        """Fill the country and region lists (keeping codes the plan already carries)."""
        keep = keep or {}
        self.destination_country.choices = [SelectChoice("", _l("Choose…"))] + [
            SelectChoice(code, label)
            for code, label in choices_for("country", [keep.get("destination_country") or ""])
        ]
        self.destination_region.choices = [SelectChoice("", _l("Not recorded"))] + [
            SelectChoice(code, label)
            for code, label in choices_for("region", [keep.get("destination_region") or ""])
        ]

    def validate_destination_region(self, field) -> None:
        if field.data and self.destination_country.data != AZERBAIJAN:
            raise ValidationError(_l("A region is chosen only for a return to Azerbaijan."))
        if self.destination_country.data == AZERBAIJAN and not field.data:
            raise ValidationError(_l("Choose the region the person returns to."))

    def values(self) -> dict[str, object]:
        """Return the typed values under the plan's field names."""
        return {
            "destination_country": self.destination_country.data,
            "destination_region": self.destination_region.data or None,
            "travel_document_status": self.travel_document_status.data,
            "escort": self.escort.data or Escort.NONE.value,
            "planned_on": self.planned_on.data,
        }


class ReturnPlanEditForm(ReturnPlanForm):
    version = HiddenField(validators=[DataRequired(), _check_version])


class ReturnRiskForm(HavenForm):
    risk_level = RadioField(
        _l("Risk of return"),
        choices=choices_of(ReturnRisk),
        validators=[InputRequired(message=_REQUIRED)],
    )
    risk_notes = _note(
        _l("Assessment (threats, family, recruiters at home, health, safety plan)"),
        DataRequired(message=_l("Describe the assessment.")),
    )


class SignOffForm(HavenForm):
    note = _note(_l("Note for the case's agency (optional)"))


class AdviseAgainstForm(HavenForm):
    reason = _note(_l("Why return is not advised"), DataRequired(message=_l("Give the reason.")))


class MarkReadyForm(HavenForm):
    """Only the CSRF token: the requirements are checked by the service."""


class RecordReturnForm(HavenForm):
    returned_on = _date_field(
        _l("Returned on"),
        DataRequired(message=_l("Please enter the date.")),
        _not_in_future,
        default=local_today,
    )
    note = _note(_l("Note"))


class CancelReturnForm(HavenForm):
    cancel_reason = SelectField(
        _l("Reason"),
        choices=choices_of(CancelReason, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    note = _note(_l("Note"))


class StayForm(HavenForm):
    note = _note(_l("Note"))


# Reintegration -----------------------------------------------------------------------------


class ReintegrationPlanForm(HavenForm):
    started_on = _date_field(
        _l("Reintegration starts on"),
        DataRequired(message=_l("Please enter the date.")),
        default=local_today,
    )
    goals = _note(_l("Goals"))


class MeasureForm(HavenForm):
    measure_type = SelectField(
        _l("Measure"),
        choices=choices_of(MeasureType, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    provider = SelectField(_l("Provided by"), choices=[], default="")
    amount = DecimalField(
        _l("Amount"),
        places=2,
        validators=[
            Optional(),
            NumberRange(min=Decimal("0"), message=_l("An amount cannot be negative.")),
        ],
    )
    currency = SelectField(_l("Currency"), choices=choices_of(Currency), default="AZN")
    status = SelectField(
        _l("Status"), choices=choices_of(MeasureStatus), default=MeasureStatus.PLANNED.value
    )
    starts_on = _date_field(_l("Starts on"), Optional())
    ends_on = _date_field(_l("Ends on"), Optional())
    notes = _note(_l("Notes"))

    def validate_provider(self, field) -> None:
        offered = {choice.value for choice in field.choices}
        if field.data and field.data not in offered:
            raise ValidationError(_l("Please choose from the list."))

    def validate_ends_on(self, field) -> None:
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError(_l("A measure cannot end before it starts."))

    def values(self) -> dict[str, object]:
        return {
            "measure_type": self.measure_type.data,
            "provider_agency_id": int(self.provider.data) if self.provider.data else None,
            "amount": self.amount.data,
            "currency": self.currency.data,
            "status": self.status.data,
            "starts_on": self.starts_on.data,
            "ends_on": self.ends_on.data,
            "notes": self.notes.data or None,
        }


class MeasureEditForm(MeasureForm):
    version = HiddenField(validators=[DataRequired(), _check_version])


class FollowUpForm(HavenForm):
    done_on = _date_field(
        _l("Done on"),
        DataRequired(message=_l("Please enter the date.")),
        _not_in_future,
        default=local_today,
    )
    method = RadioField(
        _l("How"), choices=choices_of(VisitMethod), validators=[InputRequired(message=_REQUIRED)]
    )
    outcome = SelectField(
        _l("Outcome"),
        choices=choices_of(VisitOutcome, blank=_l("Choose…")),
        validators=[DataRequired(message=_REQUIRED)],
    )
    retrafficked = BooleanField(_l("Signs that the person was trafficked again"))
    notes = _note(_l("Notes"), max_length=10000)
    version = HiddenField(validators=[DataRequired(), _check_version])
