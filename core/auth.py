"""Signing in and out: password, TOTP two-factor, recovery codes, lockout, password change.

The first half of the module is the services (they change data and write audit entries,
never commit); the second half is the blueprint's views.

Failed sign-ins say the same thing whatever went wrong (unknown e-mail, wrong password,
locked or deactivated account): "E-mail or password is incorrect, or sign-in is paused
after too many attempts", so the page never confirms that an account exists. Unknown
e-mails still cost one argon2 verification, so timing does not tell either. Only after the
password was right does the TOTP page say that sign-in is paused, since the visitor then
knows the account exists anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from datetime import timedelta

import pyotp
import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import delete, func, or_, select, update

from core import audit
from core.auth_forms import (
    LoginForm,
    PasswordChangeForm,
    RecoveryCodeForm,
    RecoveryCodesRegenerateForm,
    TotpEnrolForm,
    TotpForm,
)
from core.db import db, utcnow
from core.extensions import limiter
from core.models import RecoveryCode, User
from core.passwords import MIN_LENGTH, hash_password, verify_password
from core.sessions import (
    complete_second_factor,
    current_session,
    end_all_sessions,
    end_session,
    second_factor_endpoint,
    start_session,
)

RECOVERY_CODE_COUNT = 10
# 12 characters from 31 unambiguous ones: about 59 bits, so SHA-256 is enough to store them.
RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 12

LOGIN_FAILED = _l(
    "E-mail or password is incorrect, or sign-in is paused after too many attempts. "
    "Please try again later."
)
CODE_INCORRECT = _l("The code is not correct, or it was used already. Please try again.")
SIGN_IN_PAUSED = _l("Too many failed attempts: sign-in is paused. Please try again later.")


# Services -------------------------------------------------------------------------------


def authenticate(email: str, password: str) -> User | None:
    """Return the user if the password is right and the account may sign in, else None.

    Every failure is audited as ``auth.login_failed`` (denied) and wrong passwords count
    towards the lockout.
    """
    user = db.session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower()).limit(1)
    ).first()
    # Verified whatever happens next, so every path costs the same.
    matches, new_hash = verify_password(user.password_hash if user else None, password)
    if user is None:
        audit.record_denied("auth.login_failed", reason="unknown_account")
        return None
    if is_locked(user):
        _login_failed(user, "locked")
        return None
    if not user.is_active:
        _login_failed(user, "inactive")
        return None
    if not matches:
        _login_failed(user, "wrong_password")
        register_failed_attempt(user)
        return None
    if new_hash:
        user.password_hash = new_hash
    return user


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def register_failed_attempt(user: User) -> None:
    """Count a wrong password or code; lock the account when the threshold is reached."""
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins < current_app.config["HAVEN_LOCKOUT_THRESHOLD"]:
        return
    minutes = current_app.config["HAVEN_LOCKOUT_MINUTES"]
    user.locked_until = utcnow() + timedelta(minutes=minutes)
    # After the pause the account gets the full number of attempts again.
    user.failed_logins = 0
    audit.record_denied("auth.locked", object_type="user", object_id=user.id, user=user)


def finish_login(user: User) -> None:
    """Record a complete sign-in (password and second factor)."""
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    audit.record("auth.login", object_type="user", object_id=user.id, user=user)


def check_totp(user: User, code: str) -> bool:
    """Accept a current TOTP code once; a wrong or replayed one counts as a failed attempt."""
    if is_locked(user):
        return False
    step = _matching_step(user.totp_secret, code)
    if step is not None and _claim_step(user, step):
        return True
    audit.record_denied("auth.totp_failed", object_type="user", object_id=user.id, user=user)
    register_failed_attempt(user)
    return False


def use_recovery_code(user: User, code: str) -> bool:
    """Accept one of the user's unused recovery codes, once."""
    if is_locked(user):
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        audit.record("auth.recovery_code_used", object_type="user", object_id=user.id, user=user)
        return True
    audit.record_denied(
        "auth.totp_failed",
        object_type="user",
        object_id=user.id,
        reason="recovery_code",
        user=user,
    )
    register_failed_attempt(user)
    return False


def begin_totp_enrolment(user: User) -> None:
    """Give the user a new, unconfirmed TOTP secret.

    A new one at every sign-in: a secret shown to whoever knew the password earlier is
    never the one the user confirms later.
    """
    user.totp_secret = pyotp.random_base32()
    user.totp_confirmed_at = None
    user.totp_last_step = None


def confirm_totp_enrolment(user: User, code: str) -> list[str] | None:
    """Confirm the pending secret with its first code; return new recovery codes, or None."""
    if user.totp_secret is None or user.has_totp:
        return None
    step = _matching_step(user.totp_secret, code)
    if step is None or not _claim_step(user, step):
        return None
    user.totp_confirmed_at = utcnow()
    audit.record("auth.totp_enrolled", object_type="user", object_id=user.id, user=user)
    return issue_recovery_codes(user)


def issue_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with new ones; return them (shown once only)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(code)) for code in codes
    )
    audit.record(
        "auth.recovery_codes_issued",
        object_type="user",
        object_id=user.id,
        field_names=("recovery_codes",),
        user=user,
    )
    return codes


def check_current_password(user: User, password: str) -> bool:
    """Check the password of a signed-in user; a wrong one counts as a failed attempt."""
    matches, _new_hash = verify_password(user.password_hash, password)
    if not matches:
        audit.record_denied(
            "auth.password_change_failed", object_type="user", object_id=user.id, user=user
        )
        register_failed_attempt(user)
    return matches


def change_password(user: User, new_password: str) -> None:
    """Set a new password and end every session of the user."""
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    end_all_sessions(user)
    audit.record(
        "auth.password_changed",
        object_type="user",
        object_id=user.id,
        field_names=("password_hash",),
        user=user,
    )


def totp_qr_data_uri(user: User) -> str:
    """Return the provisioning QR code as an SVG data URI (for an <img>, CSP-safe)."""
    issuer = current_app.config.get("HAVEN_TOTP_ISSUER", "Haven")
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=5, border=2, xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _login_failed(user: User, reason: str) -> None:
    audit.record_denied(
        "auth.login_failed", object_type="user", object_id=user.id, reason=reason, user=user
    )


def _matching_step(secret: str | None, code: str) -> int | None:
    """Return the 30-second step (now, one before or one after) the code belongs to."""
    code = "".join(code.split())
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(utcnow())
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _claim_step(user: User, step: int) -> bool:
    """Record the step as used unless it, or a later one, was used already.

    One conditional UPDATE, so two requests racing with the same code cannot both win.
    """
    result = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.expire(user, ["totp_last_step"])
    return True


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def _hash_recovery_code(code: str) -> str:
    normalised = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


# Views ----------------------------------------------------------------------------------

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["HAVEN_LOGIN_LIMIT"]


# Only the attempts are limited, not looking at the forms.
rate_limited = limiter.limit(_login_limit, methods=["POST"])


def _safe_target(target: str | None) -> str:
    """Return a same-site path to continue to; anything else goes to the start page."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("main.index")


def _invalid(form) -> int:
    return 400 if form.is_submitted() else 200


@bp.route("/login", methods=["GET", "POST"])
@rate_limited
def login():
    row = current_session()
    if request.method == "GET" and row is not None and row.second_factor_done:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), _invalid(form)
    user = authenticate(form.email.data, form.password.data)
    if user is not None:
        start_session(user)
        if not user.has_totp:
            begin_totp_enrolment(user)
        if form.next.data:
            session["next"] = form.next.data
    db.session.commit()
    if user is None:
        form.password.errors.append(str(LOGIN_FAILED))
        return render_template("auth/login.html", form=form), 400
    return redirect(url_for(second_factor_endpoint(user)))


@bp.post("/logout")
def logout():
    row = current_session()
    if row is not None:
        audit.record("auth.logout", object_type="user", object_id=row.user_id, user=row.user)
    end_session()
    db.session.commit()
    flash(_("You are signed out."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/login/totp", methods=["GET", "POST"])
@rate_limited
def login_totp():
    row = current_session()
    if row.second_factor_done:
        return redirect(url_for("main.index"))
    user = row.user
    if not user.has_totp:
        return redirect(url_for("auth.enrol_totp"))
    totp_form = TotpForm()
    recovery_form = RecoveryCodeForm()
    with_recovery_code = "recovery_code" in request.form
    form = recovery_form if with_recovery_code else totp_form

    def page(status: int):
        return render_template(
            "auth/totp.html",
            form=totp_form,
            recovery_form=recovery_form,
            with_recovery_code=with_recovery_code,
        ), status

    if not form.validate_on_submit():
        return page(_invalid(form))
    if with_recovery_code:
        accepted = use_recovery_code(user, form.recovery_code.data)
    else:
        accepted = check_totp(user, form.code.data)
    if accepted:
        target = session.pop("next", None)
        finish_login(user)
        complete_second_factor()
        db.session.commit()
        return redirect(_safe_target(target))
    paused = is_locked(user)
    if paused:
        end_session()
    db.session.commit()
    if paused:
        flash(str(SIGN_IN_PAUSED), "error")
        return redirect(url_for("auth.login"))
    (form.recovery_code if with_recovery_code else form.code).errors.append(str(CODE_INCORRECT))
    return page(400)


@bp.route("/login/enrol", methods=["GET", "POST"])
@rate_limited
def enrol_totp():
    row = current_session()
    if row.second_factor_done:
        return redirect(url_for("main.index"))
    user = row.user
    if user.has_totp:
        return redirect(url_for("auth.login_totp"))
    if user.totp_secret is None:
        # The pending secret was reset meanwhile: start from the password again.
        end_session()
        db.session.commit()
        return redirect(url_for("auth.login"))
    form = TotpEnrolForm()
    if not form.validate_on_submit():
        return _enrol_page(form, user), _invalid(form)
    codes = confirm_totp_enrolment(user, form.code.data)
    if codes is None:
        form.code.errors.append(str(CODE_INCORRECT))
        return _enrol_page(form, user), 400
    target = session.pop("next", None)
    finish_login(user)
    complete_second_factor()
    db.session.commit()
    # Shown in this response, not stored for a redirect: the codes exist nowhere else.
    return render_template(
        "auth/recovery_codes.html", codes=codes, continue_url=_safe_target(target)
    )


def _enrol_page(form, user: User) -> str:
    secret = user.totp_secret
    return render_template(
        "auth/enrol.html",
        form=form,
        qr_data_uri=totp_qr_data_uri(user),
        secret_groups=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    )


@bp.route("/account/password", methods=["GET", "POST"], endpoint="change_password")
@rate_limited
def change_password_view():
    user = current_user._get_current_object()
    form = PasswordChangeForm(user=user)
    if not form.validate_on_submit():
        return _password_page(form), _invalid(form)
    if not check_current_password(user, form.current_password.data):
        paused = is_locked(user)
        if paused:
            # Someone guessing the password in a signed-in browser: end every session.
            end_all_sessions(user)
            end_session()
        db.session.commit()
        if paused:
            flash(str(SIGN_IN_PAUSED), "error")
            return redirect(url_for("auth.login"))
        form.current_password.errors.append(_("The current password is not correct."))
        return _password_page(form), 400
    change_password(user, form.new_password.data)
    # Every other browser is signed out; this one continues with a new session id.
    start_session(user, second_factor_done=True)
    db.session.commit()
    flash(_("Your password was changed. Every other session was signed out."), "success")
    return redirect(url_for("main.index"))


def _password_page(form) -> str:
    return render_template("auth/change_password.html", form=form, min_length=MIN_LENGTH)


@bp.route("/account/recovery-codes", methods=["GET", "POST"])
@rate_limited
def recovery_codes():
    user = current_user._get_current_object()
    form = RecoveryCodesRegenerateForm()
    if not form.validate_on_submit():
        return render_template("auth/recovery_codes_new.html", form=form), _invalid(form)
    if not check_totp(user, form.code.data):
        db.session.commit()
        form.code.errors.append(str(CODE_INCORRECT))
        return render_template("auth/recovery_codes_new.html", form=form), 400
    codes = issue_recovery_codes(user)
    db.session.commit()
    return render_template(
        "auth/recovery_codes.html", codes=codes, continue_url=url_for("main.index")
    )
