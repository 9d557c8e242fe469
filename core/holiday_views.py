"""The admin's public-holiday page: the working-day calendar's days off, by year.

Administrators only (everyone else gets 404, as the other admin pages); each change is one
small POST that calls one service of ``core.working_days``, commits once and redirects.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user

from core import audit, policy
from core import working_days as services
from core.db import db
from core.forms import HavenForm
from core.holiday_forms import PublicHolidayForm

bp = Blueprint("holidays", __name__, url_prefix="/admin/holidays")


@bp.before_request
def require_admin():
    """Send anonymous visitors to login; hide the page from everyone but admins."""
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    if not policy.can_manage_public_holidays(current_user):
        audit.record_denied("holidays.open", object_type="endpoint", object_id="holidays")
        abort(404)
    return None


def _year() -> int:
    text = request.args.get("year", "")
    if text.isascii() and text.isdigit() and 2000 <= int(text) <= 2100:
        return int(text)
    return services._local_today().year


def _page(year: int, form: PublicHolidayForm, status: int = 200):
    page = render_template(
        "admin/holidays.html",
        year=year,
        holidays=services.holidays_of_year(year),
        form=form,
        action_form=HavenForm(),
    )
    return page, status


@bp.get("/")
def index():
    return _page(_year(), PublicHolidayForm(formdata=None))


@bp.post("/")
def add():
    form = PublicHolidayForm()
    year = form.day.data.year if form.day.data else _year()
    if form.validate():
        try:
            holiday = services.add_public_holiday(
                current_user._get_current_object(),
                form.day.data,
                form.label_en.data,
                form.label_az.data or "",
                form.label_ru.data or "",
            )
        except services.HolidayError as error:
            db.session.rollback()
            form.day.errors = [*form.day.errors, str(error)]
        else:
            day = holiday.day
            db.session.commit()
            flash(_("%(day)s is now a public holiday.", day=format_date(day, "long")), "success")
            return redirect(url_for("holidays.index", year=day.year))
    return _page(year, form, 400)


@bp.post("/<int:holiday_id>/remove")
def remove(holiday_id: int):
    holiday = db.session.get(services.PublicHoliday, holiday_id)
    if holiday is None:
        abort(404)
    if not HavenForm().validate():
        abort(400)
    day = holiday.day
    services.remove_public_holiday(current_user._get_current_object(), holiday)
    db.session.commit()
    flash(_("%(day)s is no longer a public holiday.", day=format_date(day, "long")), "success")
    return redirect(url_for("holidays.index", year=day.year))
