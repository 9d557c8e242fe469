"""PDF downloads: who gets which PDF, what it shows (and hides), its headers and audit entry."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from casework.casefile_services import add_risk_assessment
from casework.reference import seed_reference_lists
from casework.services import open_case
from casework.supervision import erase_case, restrict_case
from core.audit import AuditEntry
from core.models import AgencyType, Role
from referrals import services
from tests.factories import client_for, make_agency, make_user
from tests.referrals.builders import consent_to, draft

FAMILY_NAME = "MƏMMƏDOVA"
GIVEN_NAME = "Gülşən"
# Russian text in a shared section and plaintext planted in every section, by section code.
RUSSIAN = "Наталья Щукина, ёлка"
SECRETS = {
    "identity": GIVEN_NAME,
    "contact": "Şəhriyar küçəsi 19 ğ ı",
    "health": "PLANTED-HEALTH-7731",
    "exploitation": "PLANTED-EXPLOIT-4410",
    "assessments": "PLANTED-RISK-2208",
}
PERSON = {
    "given_name": GIVEN_NAME,
    "family_name": FAMILY_NAME,
    "aliases": RUSSIAN,
    "date_of_birth": date(1999, 3, 14),
    "address": SECRETS["contact"],
    "medical_notes": SECRETS["health"],
    "exploitation_narrative": SECRETS["exploitation"],
}


@pytest.fixture
def world(db):
    """Alice (NGO North) owns the case and refers it to Clinic East (Hana); Charlie works
    at Shelter South; admin, analyst, auditor and coordinator never read the case."""
    north = make_agency(AgencyType.NGO, name="NGO North")
    east = make_agency(AgencyType.HEALTH, name="Clinic East")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "hana": make_user(east, Role.CASEWORKER),
        "charlie": make_user(south, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    seed_reference_lists()
    case = open_case(people["alice"], PERSON)
    add_risk_assessment(
        people["alice"],
        case,
        {"retaliation": "high", "retrafficking": "low", "health_emergency": "low"}
        | {"self_harm": "low"},
        notes=SECRETS["assessments"],
    )
    db.session.commit()
    return {"case": case, "case_id": case.id, "north": north, "east": east, **people}


def referral_in(world, db, state: str, sections=("identity", "health")):
    """Return a referral from Alice to Clinic East, moved to the state."""
    consent_to(world, world["east"])
    referral = draft(world, sections=sections)
    if state != "draft":
        services.send_referral(world["alice"], referral)
    hana = world["hana"]
    if state in ("accepted", "in_progress", "completed"):
        services.accept_referral(hana, referral)
    if state in ("in_progress", "completed"):
        services.start_referral(hana, referral)
    if state == "completed":
        services.complete_referral(hana, referral, "service_provided")
    if state == "declined":
        services.decline_referral(hana, referral, "No free place")
    if state == "cancelled":
        services.cancel_referral(world["alice"], referral, "Person moved")
    db.session.commit()
    return referral


def pdf_text(response) -> str:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.data))
    return "\n".join(page.extract_text() for page in reader.pages)


def summary_url(world) -> str:
    return f"/cases/{world['case_id']}/summary.pdf"


# Access matrix ---------------------------------------------------------------------------

CASE_SUMMARY = {
    "alice": 200,
    "bob": 200,
    "hana": 404,
    "charlie": 404,
    "admin": 404,
    "analyst": 404,
    "auditor": 404,
    "coordinator": 404,
}


@pytest.mark.parametrize(("persona", "expected"), CASE_SUMMARY.items())
def test_case_summary_access_matrix(app, world, persona, expected):
    response = client_for(app, world[persona]).get(summary_url(world))
    assert response.status_code == expected


# persona -> referral state -> expected status of the referral form
REFERRAL_FORM = {
    "alice": dict.fromkeys(
        ("draft", "sent", "accepted", "in_progress", "completed", "declined", "cancelled"), 200
    ),
    "hana": {
        "sent": 404,
        "accepted": 200,
        "in_progress": 200,
        "completed": 404,
        "declined": 404,
        "cancelled": 404,
    },
    **{
        persona: {"accepted": 404, "in_progress": 404}
        for persona in ("charlie", "admin", "analyst", "auditor", "coordinator")
    },
}
REFERRAL_MATRIX = [
    (persona, state, status)
    for persona, states in REFERRAL_FORM.items()
    for state, status in states.items()
]


@pytest.mark.parametrize(("persona", "state", "expected"), REFERRAL_MATRIX)
def test_referral_form_access_matrix(app, db, world, persona, state, expected):
    referral = referral_in(world, db, state)
    response = client_for(app, world[persona]).get(f"/referrals/{referral.id}/form.pdf")
    assert response.status_code == expected


AUDIT_EXTRACT = dict.fromkeys(("alice", "bob", "hana", "charlie", "admin", "analyst"), 404)
AUDIT_EXTRACT |= {"coordinator": 404, "auditor": 200}


@pytest.mark.parametrize(("persona", "expected"), AUDIT_EXTRACT.items())
def test_audit_extract_access_matrix(app, world, persona, expected):
    response = client_for(app, world[persona]).get("/audit/extract.pdf")
    assert response.status_code == expected


@pytest.mark.parametrize(
    "url", ["/cases/{case_id}/summary.pdf", "/audit/extract.pdf", "/referrals/{case_id}/form.pdf"]
)
def test_anonymous_visitors_are_sent_to_sign_in(app, world, url):
    response = app.test_client().get(url.format(case_id=world["case_id"]))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# Case summary ----------------------------------------------------------------------------


def test_case_summary_shows_the_case_page_sections_in_azerbaijani_and_russian(app, world):
    text = pdf_text(client_for(app, world["alice"]).get(summary_url(world)))
    assert FAMILY_NAME in text
    assert GIVEN_NAME in text
    assert RUSSIAN in text
    assert SECRETS["contact"] in text
    assert SECRETS["health"] in text
    assert SECRETS["exploitation"] in text
    for title in ("Identity", "Contact", "Health", "Exploitation", "Victim status", "Timeline"):
        assert title in text


def test_every_page_carries_confidential_reference_and_page_numbers(app, world):
    response = client_for(app, world["alice"]).get(summary_url(world))
    reader = PdfReader(io.BytesIO(response.data))
    reference = world["case"].reference
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "Confidential" in text
        assert reference in text
        assert f"Page {number} of {len(reader.pages)}" in text
        assert f"Generated by {world['alice'].display_name} on" in text
    assert "1 of" in reader.pages[0].extract_text()


def test_pdf_text_is_in_the_readers_language(app, db, world):
    world["alice"].language = "ru"
    db.session.commit()
    text = pdf_text(client_for(app, world["alice"]).get(summary_url(world)))
    # Labels come from the Russian catalogue; the person's data stays as written.
    assert "Identity" not in text
    assert FAMILY_NAME in text
    assert RUSSIAN in text


def test_case_summary_download_headers(app, world):
    response = client_for(app, world["alice"]).get(summary_url(world))
    reference = world["case"].reference
    assert response.headers["Cache-Control"] == "no-store"
    assert (
        response.headers["Content-Disposition"] == f'attachment; filename="{reference}-summary.pdf"'
    )
    assert FAMILY_NAME not in response.headers["Content-Disposition"]


def test_case_summary_download_is_audited_with_field_names_only(app, db, world):
    client_for(app, world["alice"]).get(summary_url(world))
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.summary_downloaded")
    ).one()
    assert entry.object_id == world["case_id"]
    assert entry.user_id == world["alice"].id
    assert {"given_name", "family_name", "medical_notes"} <= set(entry.field_name_list)
    assert not any(FAMILY_NAME in name or GIVEN_NAME in name for name in entry.field_name_list)


def test_other_agencies_refusal_is_audited_as_denied(app, db, world):
    client_for(app, world["charlie"]).get(summary_url(world))
    denied = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.view_denied")
    ).one()
    assert denied.user_id == world["charlie"].id


def test_a_restricted_case_follows_the_restriction(app, db, world):
    restrict_case(world["case"], world["bob"], "Family member works at the agency")
    db.session.commit()
    assert world["case"].assigned_user_id == world["alice"].id
    # Alice is assigned; Bob, her supervisor, holds no break-the-glass grant.
    assert client_for(app, world["alice"]).get(summary_url(world)).status_code == 200
    assert client_for(app, world["bob"]).get(summary_url(world)).status_code == 404


def test_an_erased_case_prints_no_personal_data(app, db, world):
    erase_case(world["case"], world["bob"])
    db.session.commit()
    text = pdf_text(client_for(app, world["alice"]).get(summary_url(world)))
    assert "erased" in text
    assert world["case"].reference in text
    for secret in (FAMILY_NAME, *SECRETS.values()):
        assert secret not in text


# Referral form ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "hana"])
def test_referral_form_shows_exactly_the_shared_sections(app, db, world, persona):
    referral = referral_in(world, db, "accepted", sections=("identity", "health"))
    text = pdf_text(client_for(app, world[persona]).get(f"/referrals/{referral.id}/form.pdf"))
    assert FAMILY_NAME in text
    assert RUSSIAN in text
    assert SECRETS["health"] in text
    for section in ("contact", "exploitation", "assessments"):
        assert SECRETS[section] not in text, section
    assert "Confidential" in text
    assert world["case"].reference in text


def test_referral_form_follows_the_disclosure_receipt_not_later_edits(app, db, world):
    referral = referral_in(world, db, "in_progress", sections=("assessments",))
    text = pdf_text(client_for(app, world["hana"]).get(f"/referrals/{referral.id}/form.pdf"))
    assert SECRETS["assessments"] in text
    for section in ("identity", "contact", "health", "exploitation"):
        assert SECRETS[section] not in text, section
    assert FAMILY_NAME not in text


def test_a_draft_form_discloses_nothing(app, db, world):
    referral = referral_in(world, db, "draft", sections=("identity", "health"))
    text = pdf_text(client_for(app, world["alice"]).get(f"/referrals/{referral.id}/form.pdf"))
    assert SECRETS["health"] not in text
    assert FAMILY_NAME not in text


def test_referral_form_download_is_audited_and_named_by_reference(app, db, world):
    referral = referral_in(world, db, "accepted", sections=("health",))
    response = client_for(app, world["hana"]).get(f"/referrals/{referral.id}/form.pdf")
    reference = world["case"].reference
    assert response.headers["Cache-Control"] == "no-store"
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="{reference}-referral.pdf"'
    )
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "referral.form_downloaded")
    ).one()
    assert entry.object_id == referral.id
    assert entry.user_id == world["hana"].id
    assert "case.medical_notes" in entry.field_name_list
    assert "case.family_name" not in entry.field_name_list


# Audit extract ---------------------------------------------------------------------------


def test_audit_extract_lists_metadata_filtered_like_the_page(app, db, world):
    client_for(app, world["alice"]).get(summary_url(world))
    client_for(app, world["charlie"]).get(summary_url(world))
    response = client_for(app, world["auditor"]).get("/audit/extract.pdf?outcome=denied")
    text = pdf_text(response)
    assert "case.view_denied" in text
    assert "case.summary_downloaded" not in text
    assert "Confidential" in text
    assert "1 of" in text
    for secret in (FAMILY_NAME, *SECRETS.values()):
        assert secret not in text
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="HVN-AUDIT-')
    assert disposition.endswith('-extract.pdf"')
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "audit.extract_downloaded")
    ).one()
    assert entry.user_id == world["auditor"].id
    assert "filter.outcome" in entry.field_name_list


def test_download_buttons_are_on_the_pages(app, db, world):
    referral = referral_in(world, db, "accepted")
    case_page = client_for(app, world["alice"]).get(f"/cases/{world['case_id']}")
    assert f"/cases/{world['case_id']}/summary.pdf" in case_page.get_data(as_text=True)
    referral_page = client_for(app, world["hana"]).get(f"/referrals/{referral.id}")
    assert f"/referrals/{referral.id}/form.pdf" in referral_page.get_data(as_text=True)
    audit_page = client_for(app, world["auditor"]).get("/audit/?outcome=denied")
    assert "/audit/extract.pdf?outcome=denied" in audit_page.get_data(as_text=True)
