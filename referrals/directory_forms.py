"""Forms of the service directory: the search filter, a service, and a capacity report."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from casework.casefile import ServiceType
from casework.reference import choices_for
from core.forms import CheckboxesField, HavenForm
from referrals.directory import ELIGIBILITY_LABELS, MAX_PLACES, AgencyService, language_labels

EXPIRED = _l("The form expired. Please open the page again.")
PLACES_RANGE = _l("Enter a number from %(min)d to %(max)d.")


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def service_type_choices(*, blank: object = None) -> list[tuple[str, object]]:
    options = [("", blank)] if blank is not None else []
    return options + [(value, label) for value, label in ServiceType.choices()]


def eligibility_choices(*, blank: object = None) -> list[tuple[str, object]]:
    options = [("", blank)] if blank is not None else []
    return options + [(group.value, label) for group, label in ELIGIBILITY_LABELS.items()]


def language_choices(*, blank: object = None) -> list[tuple[str, object]]:
    options = [("", blank)] if blank is not None else []
    return options + [(code, name) for code, name in language_labels().items()]


def _version_field() -> HiddenField:
    return HiddenField(
        _l("Version"),
        validators=[InputRequired(message=EXPIRED), Regexp(r"^[0-9]{1,9}$", message=EXPIRED)],
    )


class DirectoryFilterForm(HavenForm):
    """The directory search: a GET form, so no CSRF token (it changes nothing).

    Call ``load_choices()`` before validating: the regions come from the reference list.
    """

    class Meta:
        csrf = False

    service_type = SelectField(_l("Service"), default="")
    region = SelectField(_l("Region"), default="")
    language = SelectField(_l("Language"), default="")
    accepts = SelectField(_l("Accepts"), default="")
    with_capacity = BooleanField(_l("Only with free places (or no place limit)"))

    def load_choices(self) -> None:
        any_label = _l("Any")
        self.service_type.choices = service_type_choices(blank=any_label)
        self.region.choices = [("", any_label)] + [
            (code, label) for code, label in choices_for("region")
        ]
        self.language.choices = language_choices(blank=any_label)
        self.accepts.choices = eligibility_choices(blank=any_label)


class AgencyServiceForm(HavenForm):
    """What a service says about itself; ``version`` is set when editing (optimistic lock).

    Call ``load_choices()`` before validating or showing.
    """

    service_type = SelectField(_l("Service"), validators=[InputRequired()])
    nationwide = BooleanField(_l("Offered nationwide"))
    regions = CheckboxesField(_l("Regions served"), choices=[])
    languages = CheckboxesField(_l("Languages"), choices=[])
    accepts = CheckboxesField(_l("Accepts"), choices=[])
    contact_hours = StringField(
        _l("Contact hours"),
        filters=[_strip],
        validators=[Length(max=200, message=_l("At most %(max)d characters."))],
    )
    notes = TextAreaField(
        _l("Notes for referring agencies"),
        filters=[_strip],
        validators=[Length(max=2000, message=_l("At most %(max)d characters."))],
    )
    total_places = IntegerField(
        _l("Total places"),
        validators=[Optional(), NumberRange(min=0, max=MAX_PLACES, message=PLACES_RANGE)],
    )
    version = HiddenField()

    def load_choices(self, service: AgencyService | None = None) -> None:
        keep = service.regions if service is not None else ()
        self.service_type.choices = service_type_choices(blank=_l("Choose…"))
        self.regions.choices = [(code, label) for code, label in choices_for("region", keep=keep)]
        self.languages.choices = language_choices()
        self.accepts.choices = eligibility_choices()

    def service_data(self) -> dict:
        """Return the typed values as the service functions take them."""
        return {
            "service_type": self.service_type.data,
            "nationwide": bool(self.nationwide.data),
            "regions": list(self.regions.data or ()),
            "languages": list(self.languages.data or ()),
            "accepts": list(self.accepts.data or ()),
            "contact_hours": self.contact_hours.data or "",
            "notes": self.notes.data or "",
            "total_places": self.total_places.data,
        }

    @classmethod
    def data_of(cls, service: AgencyService) -> dict:
        """Return a saved service's values as form data."""
        return {
            "service_type": service.service_type,
            "nationwide": service.nationwide,
            "regions": service.regions,
            "languages": service.languages,
            "accepts": [group.value for group in service.accepts],
            "contact_hours": service.contact_hours,
            "notes": service.notes,
            "total_places": service.total_places,
            "version": str(service.version),
        }


class AgencyServiceEditForm(AgencyServiceForm):
    version = _version_field()


class CapacityForm(HavenForm):
    """A report of free places now, against the version the supervisor saw."""

    free_places = IntegerField(
        _l("Free places now"),
        validators=[
            InputRequired(message=_l("Enter the number of free places.")),
            NumberRange(min=0, max=MAX_PLACES, message=PLACES_RANGE),
        ],
    )
    version = _version_field()
