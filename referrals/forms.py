"""Referral forms: the new referral, and one small form per workflow action."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from casework.casefile import ServiceType
from core.forms import CheckboxesField, HavenForm
from referrals.models import (
    EXCEPTION_LABELS,
    URGENCY_LABELS,
    ConsentException,
    ReferralOutcome,
    SharedSection,
)
from referrals.services import REASON_MAX
from referrals.workflow import Urgency

_LENGTH = _l("Write at most %(max)d characters.")
# The consent basis radio: the person's consent, or one of the recorded exceptions.
CONSENT = "consent"


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _text(label, *, required: bool) -> TextAreaField:
    first = DataRequired() if required else Optional()
    return TextAreaField(
        label, filters=[_strip], validators=[first, Length(max=REASON_MAX, message=_LENGTH)]
    )


# The provider radio that points at the fallback agency list.
OTHER_AGENCY = "other"


def _agency_id(value):
    """Coerce a posted agency id; blank (no agency chosen) is None."""
    if value in (None, "") or isinstance(value, int):
        return value or None
    return int(value)


class ReferralForm(HavenForm):
    """A new referral (or a re-referral): to whom, for what, how urgent, why, what is shared.

    The receiving agency comes from a provider found in the service directory (``provider``)
    or, for an agency not in the directory, from the plain list (``receiving_agency``). Call
    ``load_agencies`` before validating: which agencies may be chosen depends on the user.
    """

    provider = RadioField(_l("Provider"), choices=[], validators=[Optional()])
    receiving_agency = SelectField(
        _l("Another agency not in the directory"),
        coerce=_agency_id,
        validate_choice=False,
        validators=[Optional()],
    )
    service_type = SelectField(
        _l("Service"),
        choices=[SelectChoice(value, label) for value, label in ServiceType.choices()],
        validators=[DataRequired()],
    )
    urgency = RadioField(
        _l("Urgency"),
        choices=[SelectChoice(urgency.value, URGENCY_LABELS[urgency]) for urgency in Urgency],
        default=Urgency.ROUTINE.value,
        validators=[DataRequired()],
    )
    reason = _text(_l("Why you refer the person"), required=True)
    sections = CheckboxesField(
        _l("Sections of the case file to share"),
        choices=[SelectChoice(value, label) for value, label in SharedSection.choices()],
    )
    consent_basis = RadioField(
        _l("Consent"),
        choices=[
            SelectChoice(CONSENT, _l("The person consented to a referral to this agency")),
            *(SelectChoice(item.value, EXCEPTION_LABELS[item]) for item in ConsentException),
        ],
        default=CONSENT,
        validators=[DataRequired()],
    )
    exception_note = _text(_l("Why the referral goes without consent"), required=False)

    def load_agencies(
        self,
        *,
        providers: dict[str, set[int]],
        agencies: list[tuple[int, str]],
        coordinators: set[int],
    ) -> None:
        """Set what may be chosen.

        ``providers``: by service type, the ids of the agencies the directory lists for it
        (active, not the own); ``agencies``: the fallback list (active, not the own, the
        national coordinator included); ``coordinators``: the national coordinator's ids.
        """
        self._providers = providers
        self._agency_ids = {agency_id for agency_id, _name in agencies}
        self._coordinators = coordinators
        self.receiving_agency.choices = [("", _l("Choose an agency"))] + [
            (agency_id, name)
            for agency_id, name in agencies
            if self._offered(agency_id, self.service_type.data)
        ]
        listed = set().union(*providers.values()) if providers else set()
        self.provider.choices = [(str(agency_id), "") for agency_id in sorted(listed)] + [
            (OTHER_AGENCY, _l("Another agency not in the directory"))
        ]

    def _offered(self, agency_id: int, service_type: str | None) -> bool:
        """The national coordinator takes the status decision, and only it."""
        is_coordinator = agency_id in self._coordinators
        return is_coordinator == (service_type == ServiceType.STATUS_DECISION.value)

    def chosen_agency_id(self) -> int | None:
        """Return the id of the agency chosen, from the directory or from the list."""
        provider = self.provider.data
        if provider and provider != OTHER_AGENCY:
            return int(provider)
        return self.receiving_agency.data

    def _validate_agency(self) -> bool:
        if self.provider.errors or self.receiving_agency.errors:
            return False
        service_type = self.service_type.data
        provider = self.provider.data
        if provider and provider != OTHER_AGENCY:
            if int(provider) not in self._providers.get(service_type, set()):
                self.provider.errors = [
                    *self.provider.errors,
                    _l("This provider does not offer the service chosen. Search again."),
                ]
                return False
            return True
        agency_id = self.receiving_agency.data
        if agency_id is None:
            field = self.provider if self.provider.choices[:-1] else self.receiving_agency
            field.errors = [*field.errors, _l("Choose the agency to refer to.")]
            return False
        if agency_id not in self._agency_ids:
            error = _l("Choose an active agency other than your own.")
        elif not self._offered(agency_id, service_type):
            error = (
                _l("The formal status decision is referred to the national coordinator.")
                if service_type == ServiceType.STATUS_DECISION.value
                else _l("The national coordinator is referred to for the status decision only.")
            )
        else:
            return True
        self.receiving_agency.errors = [*self.receiving_agency.errors, error]
        return False

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        valid = self._validate_agency() and valid
        # Checked here: the note's Optional() would stop an inline validator on a blank note.
        if self.consent_basis.data != CONSENT and not self.exception_note.data:
            self.exception_note.errors = [
                *self.exception_note.errors,
                _l("Explain why the referral goes without consent."),
            ]
            return False
        return valid

    def consent_exception(self) -> str | None:
        """Return the exception chosen, or None when the referral relies on consent."""
        basis = self.consent_basis.data
        return None if basis == CONSENT else basis

    def values(self) -> dict:
        """Return the service arguments the form holds (the view looks up
        ``chosen_agency_id()``)."""
        exception = self.consent_exception()
        return {
            "service_type": self.service_type.data,
            "urgency": self.urgency.data,
            "reason": self.reason.data,
            "sections": self.sections.data or [],
            "consent_exception": exception,
            "exception_note": self.exception_note.data if exception else None,
        }


class ReferralActionForm(HavenForm):
    """A one-button workflow action (send, accept, start): the CSRF token and the version."""

    version = HiddenField()

    def expected_version(self) -> int | None:
        data = (self.version.data or "").strip()
        return int(data) if data.isdigit() else None


class ReferralDeclineForm(ReferralActionForm):
    reason = _text(_l("Why you decline"), required=True)


class ReferralCancelForm(ReferralActionForm):
    reason = _text(_l("Why you cancel (optional)"), required=False)


class ReferralCompleteForm(ReferralActionForm):
    outcome = SelectField(
        _l("Outcome"),
        choices=[SelectChoice(value, label) for value, label in ReferralOutcome.choices()],
        validators=[DataRequired()],
    )
    outcome_note = _text(_l("Outcome note (the sending agency reads it)"), required=False)


class ServiceNoteForm(HavenForm):
    body = _text(_l("Service note"), required=True)
    shared_with_sender = BooleanField(_l("Share this note with the sending agency"))
