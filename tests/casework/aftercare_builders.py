"""Personas and plans for the return and reintegration tests (plain functions).

Alice (caseworker, NGO North) owns the case, Bob supervises there; Charlie works at Shelter
South, another agency; Lena works at Legal Aid East, which works an accepted referral on the
case; Larry works at Legal Aid West, which has none; plus the coordinator (who signs
returns off), the admin, analyst and auditor, who never see personal data.
"""

from __future__ import annotations

from datetime import date

from casework import returns
from casework.casefile_services import ConsentDecision, record_consent
from casework.services import open_case
from core.models import AgencyType, Role
from referrals import services as referral_services
from tests.factories import make_agency, make_user

RISK_SECRET = "Recruiter Rəşid waits at the Astara bus station"
SIGNER_SECRET = "Safe: the recruiter was convicted in March"
VISIT_SECRET = "Works at the bakery on Nizami street, feels watched"
MEASURE_SECRET = "Sewing course paid to Gülnarə's cousin"
GOALS_SECRET = "Own tailoring stall in Lənkəran"
CONSENT = ConsentDecision("given", date(2026, 1, 10), "written", "2026-1")
PLAN = {
    "destination_country": "AZ",
    "destination_region": "lankaran_astara",
    "travel_document_status": "valid_passport",
    "escort": "ngo",
    "planned_on": date(2026, 3, 1),
}


def build_world(db) -> dict:
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    east = make_agency(AgencyType.LEGAL_AID, name="Legal Aid East")
    west = make_agency(AgencyType.LEGAL_AID, name="Legal Aid West")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "lena": make_user(east, Role.CASEWORKER),
        "larry": make_user(west, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    case = open_case(people["alice"], {"given_name": "Gülnarə", "family_name": "Əsgərova"})
    # Legal Aid East works an accepted referral on the case; Legal Aid West none.
    record_consent(people["alice"], case, "referral", CONSENT, agency_id=east.id)
    referral = referral_services.create_referral(
        people["alice"],
        case,
        receiving_agency=east,
        service_type="legal_aid",
        urgency="routine",
        reason="Advice on the risks of return",
        sections=("identity",),
    )
    referral_services.send_referral(people["alice"], referral)
    referral_services.accept_referral(people["lena"], referral)
    db.session.commit()
    return {
        "case": case,
        "case_id": case.id,
        "referral": referral,
        "north": north,
        "east": east,
        "west": west,
        "nrm": nrm,
        **people,
    }


def assessed_plan(world, risk: str = "medium", **values):
    """Start Alice's return plan and submit a risk assessment for sign-off."""
    plan = returns.start_return_plan(world["alice"], world["case"], {**PLAN, **values})
    returns.assess_return_risk(world["alice"], plan, risk, RISK_SECRET)
    return plan


def signed_plan(world, **values):
    plan = assessed_plan(world, **values)
    returns.sign_off_return(world["coordinator"], plan, SIGNER_SECRET)
    return plan
