"""Population figures: admin-only pages, validation, audit, locking, and victims per 100,000."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.audit import AuditEntry
from core.db import db as database
from core.models import AgencyType, Role
from reports.disclosure import TOTAL
from reports.population import (
    NO_POPULATION,
    NOT_COUNTED,
    POPULATION_AGE_BANDS,
    POPULATION_SEXES,
    SUPPRESSED,
    PopulationConflict,
    PopulationError,
    PopulationFigure,
    PopulationYear,
    field_name,
    parse_population_csv,
    population_of,
    save_population,
    victims_per_100k,
)
from reports.statistics import Period, Statistics, refresh_statistics
from tests.factories import client_for, make_agency, make_user

SOURCE = "Dövlət Statistika Komitəsi, 1 yanvar 2026"
# 100,000 women and 200,000 men per age band: rates are easy to check by hand.
FIGURES = {
    (sex, band): (100_000 if sex == "Feminine" else 200_000)
    for sex in POPULATION_SEXES
    for band in POPULATION_AGE_BANDS
}


@pytest.fixture
def people(db):
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    found = {
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "auditor": make_user(nrm, Role.AUDITOR),
        "caseworker": make_user(north, Role.CASEWORKER),
    }
    seed_reference_lists()
    database.session.commit()
    return found


def _form(year="2025", source=SOURCE, figures=None, **extra) -> dict:
    data = {"year": year, "source": source}
    for (sex, band), value in (FIGURES if figures is None else figures).items():
        data[field_name(sex, band)] = str(value)
    return data | extra


def _audit(action: str) -> list[AuditEntry]:
    return list(database.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("admin", 200), ("analyst", 404), ("coordinator", 404), ("auditor", 404), ("caseworker", 404)],
)
@pytest.mark.parametrize("url", ["/admin/population/", "/admin/population/new", "/edit"])
def test_only_admins_see_the_population_pages(app, people, persona, expected, url):
    save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    if url == "/edit":
        url = "/admin/population/2025/edit"
    response = client_for(app, people[persona]).get(url)
    assert response.status_code == expected
    if expected == 404:
        denied = _audit("population.open")
        assert denied and denied[-1].outcome != "allowed"


def test_others_cannot_post_figures(app, people):
    client = client_for(app, people["analyst"])
    response = client.post_form("/admin/population/new", _form())
    assert response.status_code == 404
    assert population_of(2025) is None


def test_anonymous_visitors_are_sent_to_login(app, people):
    response = app.test_client().get("/admin/population/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# Entering and correcting ------------------------------------------------------------------


def test_the_admin_enters_a_year_and_it_is_audited(app, people):
    client = client_for(app, people["admin"])
    response = client.post_form("/admin/population/new", _form())
    assert response.status_code == 302
    table = population_of(2025)
    assert table.source == SOURCE
    assert table.counts() == FIGURES
    assert table.is_complete
    entry = _audit("population.created")[-1]
    assert entry.object_id == "2025"
    assert "source" in entry.field_name_list
    assert field_name("Feminine", "18-24") in entry.field_name_list
    page = client.get("/admin/population/").get_data(as_text=True)
    assert "Dövlət Statistika Komitəsi" in page


def test_an_invalid_figure_keeps_what_was_typed(app, people):
    client = client_for(app, people["admin"])
    figures = dict(FIGURES)
    figures[("Masculine", "25-34")] = "41x500"
    figures[("Feminine", "0-11")] = "-3"
    response = client.post_form("/admin/population/new", _form(figures=figures))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'value="41x500"' in page
    assert 'value="-3"' in page
    assert "Dövlət Statistika Komitəsi" in page
    assert "Enter a whole number of people" in page
    assert database.session.scalar(select(PopulationYear)) is None
    assert not _audit("population.created")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("year", "1700"),
        ("year", "20x5"),
        ("source", ""),
        (field_name("Feminine", "50+"), "99000000"),
    ],
)
def test_implausible_input_is_refused(app, people, field, value):
    client = client_for(app, people["admin"])
    response = client.post_form("/admin/population/new", _form() | {field: value})
    assert response.status_code == 400
    assert f'value="{value}"' in response.get_data(as_text=True) or value == ""
    assert population_of(2025) is None


def test_grouped_digits_are_read(app, people):
    client = client_for(app, people["admin"])
    figures = dict(FIGURES)
    figures[("Feminine", "35-49")] = "1 100 000"
    client.post_form("/admin/population/new", _form(figures=figures))
    assert population_of(2025).counts()[("Feminine", "35-49")] == 1_100_000


def test_a_year_is_entered_once(app, people):
    save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    client = client_for(app, people["admin"])
    response = client.post_form("/admin/population/new", _form())
    assert response.status_code == 400
    assert "already has a population table" in response.get_data(as_text=True)


def test_pasted_csv_fills_the_table(app, people):
    text = "sex,age_band,population\nFeminine,18-24,412 500\nM;12-17;1\n"
    with pytest.raises(PopulationError, match="Line 3"):
        parse_population_csv(text)
    text = "sex,age_band,population\nFeminine,18-24,412 500\nM,12–17,390000\n"
    assert parse_population_csv(text) == {
        ("Feminine", "18-24"): 412_500,
        ("Masculine", "12-17"): 390_000,
    }
    client = client_for(app, people["admin"])
    response = client.post_form(
        "/admin/population/new", _form(figures={}, csv="F,50+,1500000\nM,50+,1200000")
    )
    assert response.status_code == 302
    assert population_of(2025).counts() == {
        ("Feminine", "50+"): 1_500_000,
        ("Masculine", "50+"): 1_200_000,
    }


def test_a_bad_csv_line_is_named_and_kept(app, people):
    client = client_for(app, people["admin"])
    response = client.post_form("/admin/population/new", _form(figures={}, csv="F,50+,lots"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Line 1" in page and "F,50+,lots" in page


def test_the_admin_corrects_a_figure_and_names_it(app, people):
    table = save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    client = client_for(app, people["admin"])
    figures = dict(FIGURES)
    figures[("Masculine", "0-11")] = 199_000
    del figures[("Feminine", "50+")]
    response = client.post_form(
        "/admin/population/2025/edit", _form(figures=figures, version=str(table.version))
    )
    assert response.status_code == 302
    database.session.expire_all()
    table = population_of(2025)
    assert table.counts()[("Masculine", "0-11")] == 199_000
    assert ("Feminine", "50+") not in table.counts()
    assert not table.is_complete
    entry = _audit("population.updated")[-1]
    assert set(entry.field_name_list) == {
        field_name("Masculine", "0-11"),
        field_name("Feminine", "50+"),
    }


def test_an_edit_of_an_older_version_is_refused_and_keeps_the_input(app, people):
    table = save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    loaded = table.version
    # Someone else saves first.
    other = dict(FIGURES)
    other[("Feminine", "0-11")] = 111_111
    save_population(2025, other, SOURCE, actor=people["admin"], expected_version=loaded)
    database.session.commit()
    client = client_for(app, people["admin"])
    mine = dict(FIGURES)
    mine[("Feminine", "0-11")] = 222_222
    response = client.post_form(
        "/admin/population/2025/edit", _form(figures=mine, version=str(loaded))
    )
    assert response.status_code == 409
    assert 'value="222222"' in response.get_data(as_text=True)
    database.session.expire_all()
    assert population_of(2025).counts()[("Feminine", "0-11")] == 111_111
    with pytest.raises(PopulationConflict):
        save_population(2025, mine, SOURCE, actor=people["admin"], expected_version=loaded)


def test_the_admin_removes_a_year(app, people):
    table = save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    client = client_for(app, people["admin"])
    assert client.post_form("/admin/population/2025/delete", {"version": "0"}).status_code == 302
    assert population_of(2025) is not None
    client.post_form("/admin/population/2025/delete", {"version": str(table.version)})
    database.session.expire_all()
    assert population_of(2025) is None
    assert database.session.scalar(select(PopulationFigure)) is None
    assert _audit("population.deleted")


def test_the_database_refuses_a_negative_figure(people):
    table = save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    database.session.commit()
    table.figures[0].count = -1
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        database.session.flush()
    database.session.rollback()


# Victims per 100,000 ----------------------------------------------------------------------


@pytest.fixture
def cases(people):
    """2025: 20 women and 10 men aged 30, and 3 boys aged 16 (a count below k)."""
    worker = people["caseworker"]
    for number in range(33):
        sex = "Feminine" if number < 20 else "Masculine"
        age = "16" if number >= 30 else "30"
        open_case(
            worker,
            {
                "given_name": f"Person{number}",
                "sex": sex,
                "estimated_age": age,
                "identified_on": date(2025, 3, 10),
            },
        )
    database.session.commit()
    refresh_statistics()
    database.session.commit()


def test_rates_are_counts_over_population_times_100000(people, cases):
    save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    rates = victims_per_100k(2025, Statistics(Period(2025, 2025), k=5))
    by_sex = {row.code: row for row in rates.by_sex.rows}
    assert by_sex["Feminine"].count == "20"
    assert by_sex["Feminine"].population == 600_000
    assert by_sex["Feminine"].rate == pytest.approx(20 / 600_000 * 100_000)
    assert by_sex["Feminine"].rate_display == "3.33"
    assert by_sex["Masculine"].rate == pytest.approx(13 / 1_200_000 * 100_000)
    assert rates.by_sex.total.rate == pytest.approx(33 / 1_800_000 * 100_000)
    # Other sexes have no population to divide by.
    assert by_sex["NonConforming"].reason == NOT_COUNTED
    assert rates.source == SOURCE


def test_a_suppressed_count_gives_a_suppressed_rate(people, cases):
    save_population(2025, FIGURES, SOURCE, actor=people["admin"])
    stats = Statistics(Period(2025, 2025), k=5)
    rates = victims_per_100k(2025, stats)
    by_age = {row.code: row for row in rates.by_age.rows}
    boys = by_age["12-17"]
    assert boys.count == "<5"
    assert boys.rate is None and boys.reason == SUPPRESSED
    assert boys.rate_display == "–"
    # Its complement (25-34, 30 cases) is withheld too: 33 - 30 would give the 3 back.
    adults = by_age["25-34"]
    assert adults.count == "x"
    assert adults.rate is None and adults.reason == SUPPRESSED
    # Every rate shown comes from a published count; none can be multiplied back.
    table = stats.base("age_band", 2025)
    for row in rates.by_age.rows:
        if row.rate is not None:
            assert table.value(row.code, TOTAL) is not None
            assert row.rate * row.population / 100_000 == pytest.approx(
                table.value(row.code, TOTAL)
            )


def test_a_missing_population_is_said_so(people, cases):
    partial = {key: value for key, value in FIGURES.items() if key != ("Masculine", "50+")}
    save_population(2025, partial, SOURCE, actor=people["admin"])
    rates = victims_per_100k(2025, Statistics(Period(2025, 2025), k=5))
    by_sex = {row.code: row for row in rates.by_sex.rows}
    assert by_sex["Feminine"].rate is not None
    assert by_sex["Masculine"].reason == NO_POPULATION
    assert rates.by_sex.total.reason == NO_POPULATION
    no_table = victims_per_100k(2024, Statistics(Period(2024, 2024), k=5))
    assert not no_table.has_population


def test_the_error_summary_names_cells_in_the_readers_language(app, people):
    people["admin"].language = "ru"
    database.session.commit()
    client = client_for(app, people["admin"])
    figures = dict(FIGURES)
    figures[("Masculine", "25-34")] = "41x500"
    response = client.post_form("/admin/population/new", _form(figures=figures))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    summary = page.split('class="error-summary"')[1].split("</div>")[0]
    assert f'href="#{field_name("Masculine", "25-34")}">Мужской, 25-34:' in summary
    assert "Masculine 25-34" not in summary
