"""Forms of incoming reports: the hotline quick intake, the notification, closing one."""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from casework.contacts import (
    CALL_LANGUAGES,
    CALLER_RELATION_LABELS,
    NOTIFICATION_CHANNELS,
    CallerRelation,
    ClosureReason,
)
from casework.forms import CaseForm, _strip
from casework.models import AGE_BANDS
from casework.reference import choices_for
from core.forms import CheckboxesField, HavenForm

ADVICE_ONLY = "advice"
NAME_MAX = 200
CONTACT_MAX = 500
ACCOUNT_MAX = 10000


def _text(label, max_length: int, *, area: bool = False, required: bool = False, **kwargs):
    validators = [Length(max=max_length, message=_l("At most %(max)d characters."))]
    if required:
        validators.insert(0, DataRequired(message=_l("Please fill this in.")))
    else:
        validators.insert(0, Optional())
    return (TextAreaField if area else StringField)(
        label, filters=[_strip], validators=validators, **kwargs
    )


_YES_NO = [SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))]
_MINOR = [*_YES_NO, SelectChoice("", _l("Not known"))]


class _ReportFields(HavenForm):
    """Where and the coded hints, shared by the call and the notification."""

    country = SelectField(_l("Country where it happened or where the person is"), default="")
    region = SelectField(
        _l("Region (in Azerbaijan)"),
        default="",
        description=_l("Only for Azerbaijan; abroad is recorded as such."),
    )
    sex = SelectField(_l("Sex"), default="")
    age_band = SelectField(_l("Approximate age"), default="")
    is_minor = RadioField(_l("Is the person a child?"), choices=_MINOR, default="")
    exploitation_form = CheckboxesField(_l("Forms of exploitation, if known"), choices=[])

    def load_report_choices(self) -> None:
        """Offer the active reference items (call before validating or showing)."""
        not_known = ("", _l("Not known"))
        self.country.choices = [not_known, *choices_for("country")]
        self.region.choices = [
            not_known,
            *[choice for choice in choices_for("region") if choice[0] != "abroad"],
        ]
        self.sex.choices = [not_known, *choices_for("sex")]
        self.age_band.choices = [not_known, *[(code, code) for _low, code in reversed(AGE_BANDS)]]
        self.exploitation_form.choices = choices_for("exploitation_form")

    def validate_region(self, field) -> None:
        if field.data and self.country.data not in ("", "AZ"):
            raise ValidationError(_l("A region is for Azerbaijan only; leave it empty abroad."))

    def coded_data(self) -> dict[str, object]:
        """Return the coded hints as plain data for the services (blank → None)."""
        minor = self.is_minor.data
        return {
            "country": self.country.data or None,
            "region": self.region.data or None,
            "sex": self.sex.data or None,
            "age_band": self.age_band.data or None,
            "is_minor": None if not minor else minor == "yes",
            "exploitation_form": list(self.exploitation_form.data or []),
        }


class HotlineCallForm(_ReportFields):
    """The hotline quick intake: short, filled in during the call."""

    call_language = RadioField(
        _l("Language of the call"),
        choices=[SelectChoice(code, label) for code, label in CALL_LANGUAGES.items()],
        validators=[InputRequired(message=_l("Please choose the language of the call."))],
    )
    caller_relation = RadioField(
        _l("Who is calling?"),
        choices=[
            SelectChoice(relation.value, CALLER_RELATION_LABELS[relation])
            for relation in CallerRelation
        ],
        validators=[InputRequired(message=_l("Please choose who is calling."))],
    )
    anonymous = BooleanField(_l("The caller stays anonymous (no name is recorded)"))
    person_name = _text(_l("Name of the person concerned, if given"), NAME_MAX)
    circumstances = _text(_l("What happened"), ACCOUNT_MAX, area=True, required=True)
    callback_consent = RadioField(
        _l("May we call back?"),
        choices=_YES_NO,
        validators=[InputRequired(message=_l("Please record whether we may call back."))],
    )
    contact_details = _text(
        _l("How to call back safely"),
        CONTACT_MAX,
        area=True,
        description=_l("Number, safe times to call, a safe word; only what the caller agreed."),
    )
    routing = SelectField(
        _l("Route to"),
        validators=[InputRequired(message=_l("Please choose where the call goes."))],
        default="",
    )

    def load_choices(self, agencies) -> None:
        """Offer the reference items and the agencies a call may be routed to."""
        self.load_report_choices()
        self.routing.choices = [
            ("", _l("Choose…")),
            (ADVICE_ONLY, _l("Advice only (no referral)")),
            *[(str(agency.id), agency.name) for agency in agencies],
        ]

    def validate_person_name(self, field) -> None:
        if field.data and self.anonymous.data:
            raise ValidationError(_l("An anonymous call records no name: leave it empty."))

    def validate(self, extra_validators=None) -> bool:
        # Here, not in validate_contact_details: Optional() stops an empty field's checks.
        valid = super().validate(extra_validators)
        consent, details = self.callback_consent.data, self.contact_details.data
        message = None
        if consent == "yes" and not details:
            message = _l("Please say how to call back safely.")
        elif consent == "no" and details:
            message = _l("The caller did not agree to be called back: record no contact details.")
        if message is not None:
            self.contact_details.errors = [*self.contact_details.errors, message]
            self._errors = None
            valid = False
        return valid

    def validate_routing(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Please choose where the call goes."))

    def report_data(self) -> dict[str, object]:
        """Return the call as plain data for ``record_hotline_call``."""
        return {
            **self.coded_data(),
            "call_language": self.call_language.data,
            "caller_relation": self.caller_relation.data,
            "anonymous": bool(self.anonymous.data),
            "callback_consent": self.callback_consent.data == "yes",
            "person_name": None if self.anonymous.data else (self.person_name.data or None),
            "contact_details": self.contact_details.data or None,
            "circumstances": self.circumstances.data or None,
        }

    @property
    def receiving_agency_id(self) -> int | None:
        return None if self.routing.data == ADVICE_ONLY else int(self.routing.data)


class NotificationForm(_ReportFields):
    """A presumed-victim notification from an agency that keeps no case file."""

    recipient = SelectField(
        _l("Send to"),
        validators=[InputRequired(message=_l("Please choose who receives it."))],
        default="",
    )
    identified_at = DateTimeLocalField(
        _l("Identified at (date and time)"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        validators=[InputRequired(message=_l("Please enter when the person was identified."))],
        invalid_value_message=_l("Please enter a date and time, for example 2026-03-21 14:30."),
    )
    intake_channel = SelectField(_l("How the person was identified"), default="")
    incoming_returnee = BooleanField(
        _l("Incoming returnee: a citizen abroad who is to be returned")
    )
    person_name = _text(_l("Name, if known"), NAME_MAX)
    contact_details = _text(_l("How to reach the person"), CONTACT_MAX, area=True)
    circumstances = _text(_l("Circumstances"), ACCOUNT_MAX, area=True, required=True)

    def load_choices(self, agencies, coordinator) -> None:
        """Offer the reference items, the coordinator and the assistance agencies."""
        self.load_report_choices()
        recipients = [("", _l("Choose…"))]
        if coordinator is not None:
            recipients.append(
                (str(coordinator.id), _l("National coordinator: %(name)s", name=coordinator.name))
            )
        recipients += [(str(agency.id), agency.name) for agency in agencies]
        self.recipient.choices = recipients
        channels = dict(choices_for("intake_channel"))
        self.intake_channel.choices = [
            (code, channels[code]) for code in NOTIFICATION_CHANNELS if code in channels
        ]

    def validate_recipient(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Please choose who receives it."))

    def validate_intake_channel(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Please choose how the person was identified."))

    def report_data(self) -> dict[str, object]:
        """Return the notification as plain data for ``send_notification``."""
        return {
            **self.coded_data(),
            "intake_channel": self.intake_channel.data,
            "incoming_returnee": bool(self.incoming_returnee.data),
            "person_name": self.person_name.data or None,
            "contact_details": self.contact_details.data or None,
            "circumstances": self.circumstances.data or None,
        }

    def identified_local(self) -> datetime | None:
        return self.identified_at.data


class ReportCloseForm(HavenForm):
    """Closing a report without a case: a coded reason."""

    closure_reason = SelectField(
        _l("Why is it closed without a case?"),
        choices=[
            SelectChoice("", _l("Choose…")),
            *[SelectChoice(code, label) for code, label in ClosureReason.choices()],
        ],
        validators=[InputRequired(message=_l("Please choose why it is closed."))],
        default="",
    )

    def validate_closure_reason(self, field) -> None:
        if not field.data:
            raise ValidationError(_l("Please choose why it is closed."))


class ReportActionForm(HavenForm):
    """A bare POST form (CSRF only) for one-click actions such as acknowledging."""


class ReportCaseForm(CaseForm):
    """The intake opened from a report, plus (for the coordinator) the agency holding it."""

    owner_agency = SelectField(_l("Agency that will hold the case"), default="")

    def load_owners(self, agencies) -> None:
        self.owner_agency.choices = [
            ("", _l("Choose…")),
            *[(str(agency.id), agency.name) for agency in agencies],
        ]

    def check_owner(self) -> bool:
        """Add the error of a missing owner agency; return whether there was none."""
        if self.owner_agency.data:
            return True
        self.owner_agency.errors = [_l("Please choose the agency that will hold the case.")]
        self._errors = None
        return False
