"""Forms for signing in, two-factor authentication and changing the password."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from core.forms import HavenForm
from core.passwords import PasswordPolicy

TOTP_CODE = Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Enter the 6 digits from your app."))


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class LoginForm(HavenForm):
    email = EmailField(
        _l("E-mail"),
        validators=[DataRequired(message=_l("Enter your e-mail address.")), Length(max=254)],
        filters=[_strip],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    # Not limited to MAX_LENGTH: an over-long password is simply wrong, with the same message.
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(message=_l("Enter your password.")), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class TotpForm(HavenForm):
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(message=_l("Enter the 6 digits from your app.")), TOTP_CODE],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "pattern": r"[0-9 ]*",
            "maxlength": "7",
            "class": "code-input",
        },
    )


class RecoveryCodeForm(HavenForm):
    recovery_code = StringField(
        _l("Recovery code"),
        validators=[
            DataRequired(message=_l("Enter one of your recovery codes.")),
            Length(max=40),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )


class TotpEnrolForm(TotpForm):
    """Confirms a new authenticator app with its first code."""


class RecoveryCodesRegenerateForm(TotpForm):
    """Asks for a current code before new recovery codes replace the old ones."""


class PasswordChangeForm(HavenForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(message=_l("Enter a new password.")), PasswordPolicy()],
        render_kw={"autocomplete": "new-password"},
    )
    repeat_password = PasswordField(
        _l("Repeat the new password"),
        validators=[
            DataRequired(message=_l("Repeat the new password.")),
            EqualTo("new_password", message=_l("The two new passwords are not the same.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Read by PasswordPolicy: the new password must not contain the user's e-mail name.
        self.policy_user = user
