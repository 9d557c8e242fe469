"""The notification centre: the signed-in user's own notifications, read and marked read.

Every user has one; nobody sees anyone else's (404). A notification's link goes to the
object's own page, which checks access itself.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField

from core import notifications as services
from core import policy
from core.db import db
from core.forms import HavenForm
from core.notifications import Notification

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

# The newest this many are listed; older ones stay in the database.
PAGE_SIZE = 100


class NotificationActionForm(HavenForm):
    """A one-button POST form (mark read, mark all read): the CSRF token only."""


class EmailPreferenceForm(HavenForm):
    notify_by_email = BooleanField(_l("Also send me an e-mail for each notification"))


@bp.before_request
def require_verified_user():
    """Send visitors who are not fully signed in to the login page."""
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    return None


@bp.get("")
def index():
    rows = db.session.scalars(
        policy.visible_notifications(current_user)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "notifications/index.html",
        notifications=rows,
        action_form=NotificationActionForm(),
        email_form=EmailPreferenceForm(notify_by_email=current_user.notify_by_email),
        mail_configured=services.mail_configured(),
    )


@bp.post("/<int:notification_id>/read")
def mark_read(notification_id: int):
    notification = policy.get_visible_or_404(
        policy.visible_notifications(current_user), notification_id
    )
    if NotificationActionForm().validate_on_submit():
        services.mark_notification_read(notification)
        db.session.commit()
    return redirect(url_for("notifications.index"))


@bp.post("/read-all")
def mark_all_read():
    if NotificationActionForm().validate_on_submit():
        services.mark_all_notifications_read(current_user._get_current_object())
        db.session.commit()
        flash(_("All notifications marked read."), "success")
    return redirect(url_for("notifications.index"))


@bp.post("/email")
def email_preference():
    form = EmailPreferenceForm()
    if form.validate_on_submit():
        services.set_email_preference(
            current_user._get_current_object(), bool(form.notify_by_email.data)
        )
        db.session.commit()
        if form.notify_by_email.data:
            flash(_("Notification e-mails turned on."), "success")
        else:
            flash(_("Notification e-mails turned off."), "success")
    return redirect(url_for("notifications.index"))
