"""Admin pages for the population table: list the years, enter, correct or remove a year.

Administrators only (the same holders as the reference lists); everyone else gets 404 and
the refused visit is audited. Every change goes through ``reports.population``'s services,
which audit it; edits carry the version the admin loaded (optimistic locking).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import Length

from casework.reference import labels_of
from core import audit
from core.db import db
from core.forms import HavenForm
from core.policy import can_manage_reference_lists
from reports import population as services
from reports.population import (
    POPULATION_AGE_BANDS,
    POPULATION_SEXES,
    PopulationConflict,
    PopulationError,
    PopulationYear,
    field_name,
)

bp = Blueprint("population", __name__, url_prefix="/admin/population")

INVALID = 400


def can_manage_population(user) -> bool:
    """Population figures are reference data: whoever manages the reference lists."""
    return can_manage_reference_lists(user)


@bp.before_request
def require_admin():
    """Send anonymous visitors to login; hide the area from everyone but admins."""
    if not current_user.is_authenticated or not g.get("session_verified"):
        return current_app.login_manager.unauthorized()
    if not can_manage_population(current_user):
        audit.record_denied("population.open", object_type="endpoint", object_id="population")
        abort(404)
    return None


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class PopulationForm(HavenForm):
    """A year's table: one text box per sex and age band, or a pasted CSV."""

    year = StringField(_l("Year"), filters=[_strip])
    source = StringField(
        _l("Source"),
        filters=[_strip],
        validators=[Length(max=300)],
        description=_l("Who published the figures and for which date."),
    )
    csv = TextAreaField(
        _l("Or paste CSV"),
        description=_l(
            "One line per sex and age band: sex,age_band,population (for example"
            " Feminine,18-24,412500). It replaces the figures typed above."
        ),
    )
    version = HiddenField()

    def cell(self, sex: str, band: str):
        return self[field_name(sex, band)]

    def validate(self, extra_validators=None) -> bool:
        """Check every figure; keep what was typed, and the figures read in ``self.figures``."""
        valid = super().validate(extra_validators)
        self.figures: dict[tuple[str, str], int | None] = {}
        if (self.csv.data or "").strip():
            try:
                self.figures = services.parse_population_csv(self.csv.data)
            except PopulationError as error:
                self.csv.errors = [*self.csv.errors, str(error)]
                return False
            return valid
        for sex in POPULATION_SEXES:
            for band in POPULATION_AGE_BANDS:
                field = self.cell(sex, band)
                try:
                    self.figures[(sex, band)] = services.parse_count(field.data)
                except PopulationError as error:
                    field.errors = [*field.errors, str(error)]
                    valid = False
        return valid

    def label_cells(self, sex_labels: dict[str, str]) -> None:
        """Label each cell by its sex's label and its band, as the grid and errors show it."""
        for sex in POPULATION_SEXES:
            for band in POPULATION_AGE_BANDS:
                self.cell(sex, band).label.text = f"{sex_labels.get(sex, sex)}, {band}"

    def fill(self, table: PopulationYear) -> None:
        """Show a saved table's figures (on GET)."""
        for (sex, band), count in table.counts().items():
            self.cell(sex, band).data = str(count)


for _sex in POPULATION_SEXES:
    for _band in POPULATION_AGE_BANDS:
        setattr(
            PopulationForm,
            field_name(_sex, _band),
            StringField(f"{_sex} {_band}", filters=[_strip]),
        )


def _table_or_404(year: int) -> PopulationYear:
    table = services.population_of(year)
    if table is None:
        abort(404)
    return table


def _refused(form: PopulationForm, error: PopulationError) -> None:
    db.session.rollback()
    if error.field and error.field in form:
        form[error.field].errors = [*form[error.field].errors, str(error)]
    else:
        form.form_errors.append(str(error))


def _render(form: PopulationForm, table: PopulationYear | None, status: int = 200):
    sex_labels = labels_of("sex")
    form.label_cells(sex_labels)
    return (
        render_template(
            "population/form.html",
            form=form,
            table=table,
            sexes=[(code, sex_labels.get(code, code)) for code in POPULATION_SEXES],
            bands=POPULATION_AGE_BANDS,
            delete_form=HavenForm(),
        ),
        status,
    )


@bp.get("/")
def index():
    return render_template(
        "population/index.html",
        tables=services.population_years(),
        cells=len(POPULATION_SEXES) * len(POPULATION_AGE_BANDS),
    )


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = PopulationForm()
    if not form.is_submitted():
        return _render(form, None)
    if form.validate():
        try:
            table = services.save_population(
                form.year.data,
                form.figures,
                form.source.data,
                actor=current_user._get_current_object(),
            )
        except PopulationError as error:
            _refused(form, error)
        else:
            db.session.commit()
            flash(_("Population of %(year)s saved.", year=table.year), "success")
            return redirect(url_for("population.index"))
    return _render(form, None, INVALID)


@bp.route("/<int:year>/edit", methods=["GET", "POST"])
def edit(year: int):
    table = _table_or_404(year)
    form = PopulationForm()
    if not form.is_submitted():
        form.year.data = str(table.year)
        form.source.data = table.source
        form.version.data = str(table.version)
        form.fill(table)
        return _render(form, table)
    # The year of an existing table is the URL's; the form cannot move it.
    form.year.data = str(year)
    if form.validate():
        try:
            services.save_population(
                year,
                form.figures,
                form.source.data,
                actor=current_user._get_current_object(),
                expected_version=_version(form),
            )
        except PopulationError as error:
            _refused(form, error)
        except PopulationConflict:
            db.session.rollback()
            table = _table_or_404(year)
            # What was typed stays; submitting again saves it over the newer version.
            form.version.data = str(table.version)
            form.form_errors.append(
                _(
                    "Someone changed this year's figures since you opened the page. The saved"
                    " figures are listed below; your input is kept. Save again to replace them."
                )
            )
            return _render(form, table, 409)
        else:
            db.session.commit()
            flash(_("Population of %(year)s saved.", year=year), "success")
            return redirect(url_for("population.index"))
    return _render(form, table, INVALID)


def _version(form: PopulationForm) -> int:
    try:
        return int(form.version.data)
    except (TypeError, ValueError):
        return -1


@bp.post("/<int:year>/delete")
def delete(year: int):
    table = _table_or_404(year)
    form = PopulationForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.delete_population(
            table, actor=current_user._get_current_object(), expected_version=_version(form)
        )
    except PopulationConflict:
        db.session.rollback()
        flash(_("Someone changed this year's figures meanwhile; nothing was removed."), "error")
        return redirect(url_for("population.edit", year=year))
    db.session.commit()
    flash(_("Population of %(year)s removed.", year=year), "success")
    return redirect(url_for("population.index"))
