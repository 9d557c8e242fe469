"""Forms of the admin pages: agencies, accounts, the user filter and one-button actions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, Regexp

from core.forms import CheckboxesField, HavenForm
from core.i18n import LANGUAGE_NAMES
from core.models import AGENCY_TYPE_LABELS, ROLE_LABELS, Agency, AgencyType, Role
from core.passwords import PasswordPolicy

# Deliberately loose: one @, no spaces, a dot in the domain. The address is only an
# account name; nothing is sent to it by this form.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def strip(value: object) -> object:
    """Trim surrounding spaces, so a name of spaces only counts as empty."""
    return value.strip() if isinstance(value, str) else value


def agency_type_choices() -> list[SelectChoice]:
    return [SelectChoice(item.value, AGENCY_TYPE_LABELS[item]) for item in AgencyType]


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


def language_choices() -> list[SelectChoice]:
    return [SelectChoice(code, name) for code, name in LANGUAGE_NAMES.items()]


def agency_choices(agencies: list[Agency], *, any_label: object = None) -> list[SelectChoice]:
    """Return the agencies as choices, led by an "any" option when any_label is given."""
    choices = [SelectChoice(str(agency.id), agency.name) for agency in agencies]
    if any_label is not None:
        choices.insert(0, SelectChoice("", any_label))
    return choices


class AgencyForm(HavenForm):
    name = StringField(_l("Name"), filters=[strip], validators=[DataRequired(), Length(max=200)])
    type = SelectField(_l("Type"), choices=agency_type_choices(), validators=[InputRequired()])
    is_national_coordinator = BooleanField(_l("National coordinator (NRM body)"))
    keeps_case_files = BooleanField(_l("Keeps case files"), default=True)


class UserCreateForm(HavenForm):
    email = EmailField(
        _l("E-mail address"),
        filters=[strip],
        validators=[
            DataRequired(),
            Length(max=254),
            Regexp(EMAIL_PATTERN, message=_l("Enter an e-mail address like name@example.org.")),
        ],
    )
    display_name = StringField(
        _l("Display name"), filters=[strip], validators=[DataRequired(), Length(max=200)]
    )
    agency = SelectField(_l("Agency"), coerce=int, validators=[InputRequired()])
    roles = CheckboxesField(_l("Roles"), choices=role_choices())
    language = SelectField(_l("Language"), choices=language_choices(), default="en")
    # The policy checks length (and the maximum), the breached list and the e-mail name.
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), PasswordPolicy()])
    password_confirm = PasswordField(
        _l("Initial password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


class UserEditForm(HavenForm):
    display_name = StringField(
        _l("Display name"), filters=[strip], validators=[DataRequired(), Length(max=200)]
    )
    agency = SelectField(_l("Agency"), coerce=int, validators=[InputRequired()])
    roles = CheckboxesField(_l("Roles"), choices=role_choices())
    language = SelectField(_l("Language"), choices=language_choices())


STATUS_CHOICES = [
    SelectChoice("", _l("Any")),
    SelectChoice("active", _l("Active")),
    SelectChoice("inactive", _l("Deactivated")),
]


class UserFilterForm(HavenForm):
    """The users list filter: a GET form, so no CSRF token (it changes nothing)."""

    class Meta:
        csrf = False

    agency = SelectField(_l("Agency"), default="")
    role = SelectField(
        _l("Role"), choices=[SelectChoice("", _l("Any")), *role_choices()], default=""
    )
    status = SelectField(_l("Status"), choices=STATUS_CHOICES, default="")


class ActionForm(HavenForm):
    """A one-button POST form (deactivate, reactivate, reset 2FA): the CSRF token only."""
