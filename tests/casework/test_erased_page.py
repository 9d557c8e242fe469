"""The page of an erased (crypto-shredded) case: who erased it, what coded fields remain."""

from __future__ import annotations

from datetime import date

import pytest

from casework import supervision
from casework.casefile_services import add_case_note
from casework.models import Case
from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from tests.factories import client_for, make_agency, make_user

PERSON = {
    "given_name": "Nərgiz",
    "family_name": "Quliyeva",
    "document_number": "AA4417265",
    "sex": "Feminine",
    "citizenship": "AZ",
    "identified_on": date(2026, 3, 14),
    "exploitation_form": ["ForcedLabour"],
    "destination_country": ["AE"],
}


@pytest.fixture
def world(db):
    seed_reference_lists()
    north = make_agency(AgencyType.NGO, name="NGO North")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "admin": make_user(nrm, Role.ADMIN),
    }
    case = open_case(people["alice"], PERSON)
    add_case_note(people["alice"], case, "Met Nərgiz at the bus station.")
    db.session.commit()
    return {"case_id": case.id, **people}


def erase_through_the_pages(app, db, world) -> None:
    bob = client_for(app, world["bob"])
    response = bob.post_form(
        f"/cases/{world['case_id']}/erasure", {"reason_code": "subject_request"}
    )
    assert response.status_code == 302
    erasure = supervision.pending_erasure(db.session.get(Case, world["case_id"]))
    admin = client_for(app, world["admin"])
    assert admin.post_form(f"/admin/erasure/{erasure.id}/confirm").status_code == 302
    db.session.expire_all()


def test_the_erased_case_page_says_who_erased_it_and_keeps_coded_fields(app, db, world):
    erase_through_the_pages(app, db, world)
    page = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    case = db.session.get(Case, world["case_id"])
    assert case.reference in text and "Erased" in text
    assert "can never be read again" in text
    assert "The person asked for erasure" in text
    assert world["bob"].display_name in text and world["admin"].display_name in text
    # Coded fields, as labels; the month identified, not the day.
    assert "Female" in text and "Forced labour" in text and "2026-03" in text
    # Nothing personal, and no broken sections.
    for secret in ("Nərgiz", "Quliyeva", "AA4417265", "bus station"):
        assert secret not in text


def test_a_purged_case_names_the_retention_purge(app, db, world):
    case = db.session.get(Case, world["case_id"])
    supervision.erase_case(case, None)
    db.session.commit()
    text = client_for(app, world["bob"]).get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "retention purge" in text


@pytest.mark.parametrize(
    "section", ["indicators", "assessments", "consent", "services", "notes", "attachments"]
)
def test_case_file_sections_of_an_erased_case_lead_to_the_case_page(app, db, world, section):
    erase_through_the_pages(app, db, world)
    response = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}/{section}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/cases/{world['case_id']}")
