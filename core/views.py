"""Pages that belong to no area: the start page, the language switch and the health check."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import text

from core.db import db
from core.forms import LanguageForm

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def index():
    return render_template("main/index.html")


@bp.post("/language")
def set_language():
    form = LanguageForm()
    if not form.validate_on_submit():
        abort(400)
    language = form.language.data
    session["language"] = language
    if current_user.is_authenticated:
        current_user.language = language
        db.session.commit()
    target = request.form.get("next", "")
    # Only same-site relative paths; anything else goes to the start page.
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("main.index")
    return redirect(target)


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        current_app.logger.exception("health check: database unavailable")
        return {"status": "error", "database": "unavailable"}, 503
    return {"status": "ok", "database": "ok"}
