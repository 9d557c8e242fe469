"""Personas and referrals for the referral tests (plain functions, like tests/factories.py).

Alice (caseworker, NGO North) owns the case and refers it; Bob supervises at NGO North;
Hana (caseworker) and Hugo (supervisor) work at Clinic East, the receiving health provider;
Charlie works at Shelter South, a third agency that must never see the referral; plus the
admin, analyst, auditor and coordinator, who never see personal data.
"""

from __future__ import annotations

from datetime import date

from casework.casefile_services import (
    ConsentDecision,
    add_attachment,
    add_needs_assessment,
    add_risk_assessment,
    record_consent,
)
from casework.services import open_case
from core.models import AgencyType, Role
from referrals import services
from tests.factories import make_agency, make_user

# Plaintext of the case, by the section that shares it: none may leak to whom it is not shared.
IDENTITY_SECRET = "Zümrüd"
CONTACT_SECRET = "Nizami küçəsi 77"
HEALTH_SECRET = "Insulin twice a day"
EXPLOITATION_SECRET = "Kept in a basement in Dubai"
RISK_SECRET = "Recruiter phoned her mother"
DOCUMENT_SECRET = "scan-of-passport.pdf"
REASON = "Needs a medical check after the raid; speaks Azerbaijani only."
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

PERSON = {
    "given_name": IDENTITY_SECRET,
    "family_name": "Əliyeva",
    "phone": "+994 55 123 45 67",
    "address": CONTACT_SECRET,
    "medical_notes": HEALTH_SECRET,
    "exploitation_narrative": EXPLOITATION_SECRET,
}
SECRETS = {
    "identity": IDENTITY_SECRET,
    "contact": CONTACT_SECRET,
    "health": HEALTH_SECRET,
    "exploitation": EXPLOITATION_SECRET,
    "assessments": RISK_SECRET,
    "documents": DOCUMENT_SECRET,
}
CONSENT = ConsentDecision("given", date(2026, 1, 10), "written", "2026-1")
WITHDRAWN = ConsentDecision("withdrawn", date(2026, 1, 20), "written", "2026-1")


def build_world(db) -> dict:
    north = make_agency(AgencyType.NGO, name="NGO North")
    east = make_agency(AgencyType.HEALTH, name="Clinic East")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "hana": make_user(east, Role.CASEWORKER),
        "hugo": make_user(east, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    alice = people["alice"]
    case = open_case(alice, PERSON)
    add_risk_assessment(
        alice,
        case,
        {"retaliation": "high", "retrafficking": "medium", "health_emergency": "low"}
        | {"self_harm": "low"},
        notes=RISK_SECRET,
    )
    add_needs_assessment(alice, case, ["medical"], notes="Needs a doctor")
    add_attachment(alice, case, filename=DOCUMENT_SECRET, content=PDF, max_bytes=10_000)
    db.session.commit()
    return {
        "case": case,
        "case_id": case.id,
        "north": north,
        "east": east,
        "south": south,
        "nrm": nrm,
        **people,
    }


def consent_to(world, agency) -> None:
    record_consent(world["alice"], world["case"], "referral", CONSENT, agency_id=agency.id)


def draft(world, *, sections=("health", "identity"), agency=None, **kwargs):
    """Draft a referral from Alice to Clinic East (or ``agency``)."""
    values = {
        "receiving_agency": agency or world["east"],
        "service_type": "medical",
        "urgency": "urgent",
        "reason": REASON,
        "sections": sections,
        **kwargs,
    }
    return services.create_referral(world["alice"], world["case"], **values)


def sent(world, **kwargs):
    """Send a referral from Alice to Clinic East on the person's consent."""
    agency = kwargs.get("agency") or world["east"]
    consent_to(world, agency)
    referral = draft(world, **kwargs)
    services.send_referral(world["alice"], referral)
    return referral
