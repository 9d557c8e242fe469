"""Reference list admin pages: the lists, their items, labels, added and retired codes.

Administrators only (everyone else gets 404); every change is audited by the services in
``casework.reference``.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from casework import casefile_services
from casework.casefile import IndicatorDefinition
from casework.casefile_forms import IndicatorCreateForm, IndicatorForm
from casework.forms import ReferenceItemCreateForm, ReferenceItemForm
from casework.reference import (
    LIST_TITLES,
    ReferenceItem,
    ReferenceListError,
    add_reference_item,
    items_of,
    set_reference_item_active,
    update_reference_item,
)
from core import audit
from core.db import db
from core.forms import HavenForm
from core.policy import can_manage_reference_lists

bp = Blueprint("reference", __name__, url_prefix="/admin/lists")


@bp.before_request
def require_admin():
    """Send anonymous visitors to login; hide the area from everyone but admins."""
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    if not can_manage_reference_lists(current_user):
        audit.record_denied("reference.open", object_type="endpoint", object_id="reference")
        abort(404)
    return None


def _list_or_404(list_name: str) -> str:
    if list_name not in LIST_TITLES:
        abort(404)
    return list_name


def _item_or_404(list_name: str, item_id: int) -> ReferenceItem:
    item = db.session.get(ReferenceItem, item_id)
    if item is None or item.list_name != list_name:
        abort(404)
    return item


@bp.get("/")
def index():
    counts = dict(
        db.session.execute(
            select(ReferenceItem.list_name, func.count()).group_by(ReferenceItem.list_name)
        ).all()
    )
    lists = [
        {"name": name, "title": title, "count": counts.get(name, 0)}
        for name, title in LIST_TITLES.items()
    ]
    indicator_count = db.session.scalar(select(func.count()).select_from(IndicatorDefinition))
    return render_template("reference/index.html", lists=lists, indicator_count=indicator_count)


@bp.get("/<list_name>")
def items(list_name: str):
    _list_or_404(list_name)
    return render_template(
        "reference/items.html",
        list_name=list_name,
        title=LIST_TITLES[list_name],
        items=items_of(list_name),
        action_form=HavenForm(),
    )


@bp.route("/<list_name>/new", methods=["GET", "POST"])
def create(list_name: str):
    _list_or_404(list_name)
    form = ReferenceItemCreateForm()
    if form.validate_on_submit():
        try:
            add_reference_item(
                list_name,
                form.code.data,
                form.labels(),
                form.sort_order.data or 0,
                actor=current_user._get_current_object(),
            )
        except ReferenceListError as error:
            db.session.rollback()
            form.code.errors = [*form.code.errors, str(error.args[0])]
        else:
            db.session.commit()
            flash(_("Item %(code)s added.", code=form.code.data), "success")
            return redirect(url_for("reference.items", list_name=list_name))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "reference/item_form.html",
        form=form,
        list_name=list_name,
        title=LIST_TITLES[list_name],
        item=None,
    ), status


@bp.route("/<list_name>/<int:item_id>/edit", methods=["GET", "POST"])
def edit(list_name: str, item_id: int):
    _list_or_404(list_name)
    item = _item_or_404(list_name, item_id)
    form = ReferenceItemForm(obj=item)
    if form.validate_on_submit():
        update_reference_item(
            item, form.labels(), form.sort_order.data or 0, actor=current_user._get_current_object()
        )
        db.session.commit()
        flash(_("Item %(code)s saved.", code=item.code), "success")
        return redirect(url_for("reference.items", list_name=list_name))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "reference/item_form.html",
        form=form,
        list_name=list_name,
        title=LIST_TITLES[list_name],
        item=item,
    ), status


def _set_active(list_name: str, item_id: int, active: bool):
    _list_or_404(list_name)
    item = _item_or_404(list_name, item_id)
    if not HavenForm().validate_on_submit():
        abort(400)
    set_reference_item_active(item, active, actor=current_user._get_current_object())
    db.session.commit()
    if active:
        flash(_("Item %(code)s is offered in forms again.", code=item.code), "success")
    else:
        flash(
            _(
                "Item %(code)s is no longer offered; cases that have it still show it.",
                code=item.code,
            ),
            "success",
        )
    return redirect(url_for("reference.items", list_name=list_name))


@bp.post("/<list_name>/<int:item_id>/deactivate")
def deactivate(list_name: str, item_id: int):
    return _set_active(list_name, item_id, False)


@bp.post("/<list_name>/<int:item_id>/reactivate")
def reactivate(list_name: str, item_id: int):
    return _set_active(list_name, item_id, True)


# The identification-indicators checklist ------------------------------------------------
# Static paths: they win over the "<list_name>" routes above.


def _indicator_or_404(indicator_id: int) -> IndicatorDefinition:
    indicator = db.session.get(IndicatorDefinition, indicator_id)
    if indicator is None:
        abort(404)
    return indicator


@bp.get("/indicators")
def indicators():
    return render_template(
        "reference/indicators.html",
        indicators=casefile_services.all_indicators(),
        action_form=HavenForm(),
    )


@bp.route("/indicators/new", methods=["GET", "POST"])
def create_indicator():
    form = IndicatorCreateForm()
    if form.validate_on_submit():
        try:
            casefile_services.add_indicator(
                form.code.data,
                form.category.data,
                form.labels(),
                form.position.data or 0,
                actor=current_user._get_current_object(),
            )
        except casefile_services.IndicatorError as error:
            db.session.rollback()
            form.code.errors = [*form.code.errors, str(error)]
        else:
            db.session.commit()
            flash(_("Indicator %(code)s added.", code=form.code.data), "success")
            return redirect(url_for("reference.indicators"))
    status = 400 if form.is_submitted() else 200
    return render_template("reference/indicator_form.html", form=form, indicator=None), status


@bp.route("/indicators/<int:indicator_id>/edit", methods=["GET", "POST"])
def edit_indicator(indicator_id: int):
    indicator = _indicator_or_404(indicator_id)
    form = IndicatorForm(obj=indicator)
    if form.validate_on_submit():
        casefile_services.update_indicator(
            indicator,
            form.category.data,
            form.labels(),
            form.position.data or 0,
            actor=current_user._get_current_object(),
        )
        db.session.commit()
        flash(_("Indicator %(code)s saved.", code=indicator.code), "success")
        return redirect(url_for("reference.indicators"))
    status = 400 if form.is_submitted() else 200
    return render_template("reference/indicator_form.html", form=form, indicator=indicator), status


def _set_indicator_active(indicator_id: int, active: bool):
    indicator = _indicator_or_404(indicator_id)
    if not HavenForm().validate_on_submit():
        abort(400)
    casefile_services.set_indicator_active(
        indicator, active, actor=current_user._get_current_object()
    )
    db.session.commit()
    if active:
        flash(_("Indicator %(code)s is asked again.", code=indicator.code), "success")
    else:
        flash(
            _(
                "Indicator %(code)s is no longer asked; cases that answered it still show it.",
                code=indicator.code,
            ),
            "success",
        )
    return redirect(url_for("reference.indicators"))


@bp.post("/indicators/<int:indicator_id>/deactivate")
def deactivate_indicator(indicator_id: int):
    return _set_indicator_active(indicator_id, False)


@bp.post("/indicators/<int:indicator_id>/reactivate")
def reactivate_indicator(indicator_id: int):
    return _set_indicator_active(indicator_id, True)
