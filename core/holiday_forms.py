"""Forms of the public-holiday admin page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length

from core.forms import HavenForm

_MAX = _l("At most %(max)d characters.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class PublicHolidayForm(HavenForm):
    day = DateField(
        _l("Day"),
        validators=[DataRequired(message=_l("Please enter the date."))],
        invalid_value_message=_l("Please enter a real date, for example 2026-03-21."),
    )
    label_en = StringField(
        _l("Name in English"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Please enter the English name.")),
            Length(max=200, message=_MAX),
        ],
    )
    label_az = StringField(
        _l("Name in Azerbaijani"), filters=[_strip], validators=[Length(max=200, message=_MAX)]
    )
    label_ru = StringField(
        _l("Name in Russian"), filters=[_strip], validators=[Length(max=200, message=_MAX)]
    )
