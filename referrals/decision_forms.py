"""The national coordinator's status decision form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from casework.casefile_forms import choices_of
from casework.models import local_today
from core.forms import CheckboxesField, HavenForm
from referrals.decisions import REASON_MAX, DecisionOutcome, NegativeReason
from referrals.forms import ReferralActionForm
from referrals.models import SharedSection
from referrals.reconsiderations import INFORMATION_MAX


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class StatusDecisionForm(ReferralActionForm):
    """Recognised or not, the decision's date and its reason (coded when negative)."""

    outcome = RadioField(
        _l("Decision"),
        choices=[SelectChoice(value, label) for value, label in DecisionOutcome.choices()],
        validators=[InputRequired(message=_l("Choose the decision."))],
    )
    decided_on = DateField(
        _l("Date of the decision"),
        default=local_today,
        validators=[InputRequired(message=_l("Give the date of the decision."))],
        invalid_value_message=_l("Please enter a real date, for example 2026-03-21."),
    )
    reason_code = SelectField(
        _l("Reason for a negative decision"),
        choices=choices_of(NegativeReason, blank=_l("— not for a recognition —")),
        validators=[Optional()],
    )
    reason_text = TextAreaField(
        _l("Reason (only the owner agency and the coordinator read it)"),
        filters=[_strip],
        validators=[
            Optional(),
            Length(max=REASON_MAX, message=_l("Write at most %(max)d characters.")),
        ],
    )


class ReconsiderationRequestForm(HavenForm):
    """The case owner's request to reconsider a negative decision: what is new, and what
    the coordinator may read of the case (the first request's sections, and any more)."""

    new_information = TextAreaField(
        _l("New information"),
        filters=[_strip],
        validators=[
            InputRequired(message=_l("Give the new information.")),
            Length(max=INFORMATION_MAX, message=_l("Write at most %(max)d characters.")),
        ],
    )
    sections = CheckboxesField(
        _l("Case sections to share with the coordinator"),
        choices=[SelectChoice(value, label) for value, label in SharedSection.choices()],
    )


class ReconsiderationWithdrawForm(HavenForm):
    """Withdraw a reconsideration request: one button (CSRF only)."""
