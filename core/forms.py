"""Forms shared by every area, and the base class every Haven form derives from."""

from flask_babel import get_translations
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.fields.choices import SelectChoice

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
