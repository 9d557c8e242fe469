"""Forms shared by every area, and the base class every Haven form derives from."""

from flask_babel import get_translations
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, SelectMultipleField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from core.i18n import LANGUAGE_NAMES


class _CatalogTranslations:
    """WTForms' built-in messages, looked up in Haven's own catalogs.

    WTForms ships Russian but no Azerbaijani messages; its English msgids are in
    core/wtforms_messages.py, so every language gets them from the same catalogs.
    """

    # flask_babel's gettext/ngettext would fill in %(...)s placeholders themselves;
    # WTForms fills them after translating, so the raw catalog lookups are used.
    def gettext(self, string: str) -> str:
        return get_translations().ugettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return get_translations().ungettext(singular, plural, n)


CATALOG_TRANSLATIONS = _CatalogTranslations()


class CodesField(SelectMultipleField):
    """A multiple choice of coded values; only values offered in ``choices`` pass.

    Checks the choices itself, with one translated message, instead of WTForms' message
    that echoes the submitted values.
    """

    def pre_validate(self, form) -> None:
        offered = {
            str(choice.value if isinstance(choice, SelectChoice) else choice[0])
            for choice in self.choices or ()
        }
        if any(value not in offered for value in self.data or ()):
            raise ValidationError(_l("Please choose from the list."))


class CheckboxesField(CodesField):
    """A multiple choice shown as checkboxes, one per option (templates: ``render_field``)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class HavenForm(FlaskForm):
    """A Flask-WTF form (CSRF on) whose built-in messages are translated by Haven."""

    class Meta:
        def get_translations(self, form):
            return CATALOG_TRANSLATIONS


class LanguageForm(HavenForm):
    language = SelectField(
        choices=[SelectChoice(code, name) for code, name in LANGUAGE_NAMES.items()]
    )
    next = HiddenField()
