"""Forms for opening and editing a case: the encrypted personal fields of the foundation slice."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from casework.services import PERSON_FIELDS
from core.forms import HavenForm

# Labels of the person fields, shared by the forms and the case page.
FIELD_LABELS = {
    "given_name": _l("Given name"),
    "family_name": _l("Family name"),
    "aliases": _l("Other names and aliases"),
    "date_of_birth": _l("Date of birth"),
    "phone": _l("Phone"),
    "document_number": _l("Identity document number"),
    "address": _l("Address"),
    "circumstances": _l("Circumstances"),
}

EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def _strip(value):
    # Browsers send CRLF line breaks from text areas; store "\n" only, so re-saving an
    # unchanged text is no change (and no new version).
    if not isinstance(value, str):
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _not_in_future(form, field) -> None:
    if field.data is None:
        return
    # "Today" where the caseworker is (Haven's configured time zone), not on the server.
    if field.data > datetime.now(get_timezone()).date():
        raise ValidationError(_l("The date of birth cannot be in the future."))
    if field.data < EARLIEST_BIRTH_DATE:
        raise ValidationError(_l("Please enter a date of birth after 1900."))


class CaseForm(HavenForm):
    """The person fields a caseworker types when opening a case."""

    given_name = StringField(
        FIELD_LABELS["given_name"],
        filters=[_strip],
        validators=[Length(max=100, message=_l("At most %(max)d characters."))],
    )
    family_name = StringField(
        FIELD_LABELS["family_name"],
        filters=[_strip],
        validators=[Length(max=100, message=_l("At most %(max)d characters."))],
    )
    aliases = StringField(
        FIELD_LABELS["aliases"],
        filters=[_strip],
        validators=[Length(max=300, message=_l("At most %(max)d characters."))],
    )
    date_of_birth = DateField(
        FIELD_LABELS["date_of_birth"],
        validators=[Optional(), _not_in_future],
        invalid_value_message=_l("Please enter a real date, for example 1994-03-21."),
    )
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
    document_number = StringField(
        FIELD_LABELS["document_number"],
        filters=[_strip],
        validators=[Length(max=50, message=_l("At most %(max)d characters."))],
    )
    address = TextAreaField(
        FIELD_LABELS["address"],
        filters=[_strip],
        validators=[Length(max=500, message=_l("At most %(max)d characters."))],
    )
    circumstances = TextAreaField(
        FIELD_LABELS["circumstances"],
        filters=[_strip],
        validators=[Length(max=10000, message=_l("At most %(max)d characters."))],
    )

    def validate_given_name(self, field) -> None:
        # A person may refuse to give a name, but a case needs something to recognise
        # them by: a given name, a family name or an alias.
        if not (field.data or self.family_name.data or self.aliases.data):
            raise ValidationError(
                _l("Please enter a given name, a family name or an alias (it may be a nickname).")
            )

    def person_data(self) -> dict[str, object]:
        """Return the typed person fields as plain data for the services (blank → None)."""
        return {name: (self[name].data or None) for name in PERSON_FIELDS}


class CaseEditForm(CaseForm):
    """The same fields plus the version the user started from, for optimistic locking."""

    version = HiddenField(
        _l("Version"),
        validators=[
            DataRequired(message=_l("The form expired. Please open the case again.")),
            Regexp(r"^[0-9]{1,9}$", message=_l("The form expired. Please open the case again.")),
        ],
    )
