"""Forms of the supervisor actions: assignment, closure, transfer, restriction, erasure."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from casework.supervision import ERASURE_REASONS, MIN_REASON_LENGTH, closure_reason_choices
from core.forms import HavenForm

NOTE_MAX = 4000


def _reason_field(label) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[
            DataRequired(),
            Length(
                min=MIN_REASON_LENGTH,
                max=NOTE_MAX,
                message=_l("Write between %(min)d and %(max)d characters."),
            ),
        ],
    )


def select_choices(pairs) -> list[SelectChoice]:
    """Turn (value, label) pairs into WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


class ActionForm(HavenForm):
    """A one-button POST form (approve, cancel, lift): the CSRF token only."""


class CaseAssignForm(HavenForm):
    assignee = SelectField(_l("Assign to"), coerce=int, validators=[InputRequired()])


class ClosureRequestForm(HavenForm):
    reason_code = SelectField(_l("Closure reason"), validators=[DataRequired()])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reason_code.choices = select_choices(closure_reason_choices())


class ClosureRejectForm(HavenForm):
    reason = _reason_field(_l("Why the case stays open"))


class TransferRequestForm(HavenForm):
    to_agency = SelectField(_l("Transfer to"), coerce=int, validators=[InputRequired()])
    reason = _reason_field(_l("Reason for the transfer"))


class TransferRejectForm(HavenForm):
    note = _reason_field(_l("Why the transfer is refused"))


class TransferDeclineForm(HavenForm):
    reason = _reason_field(_l("Why your agency does not take the case over"))


class CaseRestrictForm(HavenForm):
    reason = _reason_field(_l("Why access is restricted"))


class BreakGlassForm(HavenForm):
    reason = _reason_field(_l("Why you need to read this case"))


class ErasureRequestForm(HavenForm):
    reason_code = SelectField(
        _l("Reason for erasure"),
        choices=select_choices(ERASURE_REASONS.items()),
        validators=[DataRequired()],
    )
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
