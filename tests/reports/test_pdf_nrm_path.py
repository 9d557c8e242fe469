"""The case summary PDF's NRM path sections: status decisions, the child path, return and
reintegration; shown only to whom the case page shows them, audited by field name."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from casework import child_protection as child
from casework import reintegration, returns
from casework.casefile_services import ConsentDecision, record_consent
from casework.reference import seed_reference_lists
from casework.services import open_case
from core.audit import AuditEntry
from core.models import AgencyType, Role
from referrals import decisions, reconsiderations
from referrals import services as referral_services
from tests.factories import client_for, make_agency, make_user
from tests.reports.test_pdf import pdf_text

GUARDIAN = "Səbinə Quliyeva-Щукина"
CONSENT = ConsentDecision(
    "given", date(2026, 3, 10), "written", "2026-1", given_by="guardian", guardian=GUARDIAN
)
# Labels only the sections print (the timeline names the events, as on the case page).
CHILD_HEADINGS = ("Guardian to be appointed by", "Options considered", "Traced by", "Assessed by")
AFTERCARE_HEADINGS = ("Reintegration measures", "Risk level", "Trafficked again", "Sign-off")


@pytest.fixture
def world(db, monkeypatch):
    """Alice (NGO North) owns a 15-year-old's case with the whole NRM path recorded; Bob
    supervises there; Charlie is another agency's; the coordinator decided the status."""
    today = date(2026, 6, 15)
    seed_reference_lists()
    monkeypatch.setattr("casework.models.local_today", lambda: today)
    monkeypatch.setattr("casework.reintegration.local_today", lambda: today)
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.SHELTER, name="Shelter South")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
        "coordinator": make_user(nrm, Role.COORDINATOR),
    }
    alice = people["alice"]
    case = open_case(
        alice,
        {"given_name": "Leyla", "estimated_age": "15", "identified_on": date(2026, 3, 2)},
    )
    assert case.is_minor
    # A negative first decision, and a pending request to reconsider it.
    record_consent(alice, case, "referral", CONSENT, agency_id=nrm.id)
    referral = referral_services.create_referral(
        alice,
        case,
        receiving_agency=nrm,
        service_type="status_decision",
        urgency="urgent",
        reason="Presumed victim identified at the border.",
        sections=("identity",),
    )
    referral_services.send_referral(alice, referral)
    referral_services.accept_referral(people["coordinator"], referral)
    decisions.record_status_decision(
        people["coordinator"],
        referral,
        "not_recognised",
        date(2026, 6, 1),
        "insufficient_indicators",
    )
    reconsiderations.request_reconsideration(
        alice, case, "New witness statement", ["health"], today=today
    )
    # The child path.
    child.record_guardian(
        alice,
        case,
        guardian_name=GUARDIAN,
        role="state_guardian",
        appointing_body="guardianship_authority",
        appointed_on=date(2026, 3, 10),
    )
    child.record_best_interests(
        alice,
        case,
        deciding_body="multidisciplinary_panel",
        decided_by_name="Panel",
        decided_on=date(2026, 3, 30),
        options=["reunification_azerbaijan", "foster_kinship_care"],
        decision="reunification_azerbaijan",
        reasoning="PLANTED-BID-REASONING",
        child_heard=True,
        heard_how="with_psychologist",
    )
    child.start_family_tracing(alice, case, traced_by="iom", started_on=date(2026, 3, 12))
    child.record_family_assessment(
        alice, case, assessed_on=date(2026, 4, 2), assessed_by="social_worker", outcome="safe"
    )
    # Return and reintegration.
    plan = returns.start_return_plan(
        alice,
        case,
        {
            "destination_country": "AZ",
            "destination_region": "lankaran_astara",
            "travel_document_status": "valid_passport",
            "escort": "ngo",
            "planned_on": date(2026, 7, 1),
        },
    )
    returns.assess_return_risk(alice, plan, "medium", "PLANTED-RISK-NOTES")
    returns.sign_off_return(people["coordinator"], plan, "PLANTED-SIGN-OFF")
    integration = reintegration.start_reintegration_plan(alice, case, date(2026, 4, 1))
    reintegration.add_measure(
        alice,
        integration,
        {"measure_type": "grant", "amount": Decimal("1500.00"), "currency": "AZN"},
    )
    reintegration.schedule_follow_ups(alice, case, date(2026, 4, 1))
    visits = reintegration.visits_of(case)
    reintegration.record_follow_up(
        alice,
        visits[0],
        done_on=date(2026, 5, 2),
        method="visit",
        outcome="re_trafficked",
        retrafficked=True,
        notes="PLANTED-VISIT-NOTES",
    )
    db.session.commit()
    return {"case": case, "case_id": case.id, **people}


def summary(app, world, persona):
    return client_for(app, world[persona]).get(f"/cases/{world['case_id']}/summary.pdf")


def test_the_owner_gets_every_nrm_path_section(app, world):
    text = pdf_text(summary(app, world, "alice"))
    for heading in ("Status decisions", "Child protection", "Return and reintegration"):
        assert heading in text, heading
    for heading in (*CHILD_HEADINGS, *AFTERCARE_HEADINGS):
        assert heading in text, heading
    # Decisions: coded outcome and reason, the pending reconsideration.
    assert "Not recognised" in text or "not recognised" in text.lower()
    assert "Reconsideration pending" in text
    # The child path: guardian, deadline state, options considered, tracing, assessment.
    assert GUARDIAN in text
    assert "Appointed in time" in text
    assert "Options considered" in text
    # Return and reintegration: sign-off, measure amount, the re-trafficking flag.
    assert "Sign-off" in text and "NRM Office" in text
    assert "Azerbaijan" in text and "lankaran_astara" not in text
    assert "1,500.00" in text or "1 500,00" in text or "1500" in text.replace(",", "")
    assert "trafficked again" in text
    # Free-text notes never reach the summary.
    for planted in ("PLANTED-BID-REASONING", "PLANTED-RISK-NOTES", "PLANTED-VISIT-NOTES"):
        assert planted not in text


@pytest.mark.parametrize("persona", ["charlie", "admin", "analyst", "auditor", "coordinator"])
def test_nobody_else_gets_the_summary(app, world, persona):
    assert summary(app, world, persona).status_code == 404


def test_a_reader_who_may_not_see_the_child_path_gets_no_trace_of_it(app, db, world):
    # An adult's case (the age corrected): the case page shows no child panel, nor does the PDF.
    world["case"].is_minor = False
    db.session.commit()
    text = pdf_text(summary(app, world, "alice"))
    for heading in CHILD_HEADINGS:
        assert heading not in text
    assert GUARDIAN not in text
    assert "Reintegration measures" in text


def test_sections_follow_the_policy(app, db, world, monkeypatch):
    monkeypatch.setattr("core.policy.can_view_child_path", lambda user, case: False)
    monkeypatch.setattr("core.policy.can_view_aftercare", lambda user, case: False)
    text = pdf_text(summary(app, world, "alice"))
    for heading in (*CHILD_HEADINGS, *AFTERCARE_HEADINGS):
        assert heading not in text
    assert GUARDIAN not in text
    assert "Status decisions" in text
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.summary_downloaded")
    ).one()
    assert "guardian.guardian_name" not in entry.field_name_list


def test_the_guardians_name_is_audited_by_field_name(app, db, world):
    summary(app, world, "alice")
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.summary_downloaded")
    ).one()
    assert "guardian.guardian_name" in entry.field_name_list
    assert not any(GUARDIAN in name for name in entry.field_name_list)


@pytest.mark.parametrize("language", ["az", "ru"])
def test_the_sections_render_in_azerbaijani_and_russian(app, db, world, language):
    world["alice"].language = language
    db.session.commit()
    text = pdf_text(summary(app, world, "alice"))
    # The person's data as written, the headings in the reader's language.
    assert GUARDIAN in text
    assert "Child protection" not in text
    assert "Return and reintegration" not in text


def test_an_overdue_follow_up_visit_is_marked_by_the_working_clock(app, world, monkeypatch):
    text = pdf_text(summary(app, world, "alice"))
    assert "Overdue" not in text  # 15 June: the 3-month visit is due on 1 July
    monkeypatch.setattr("casework.reintegration.local_today", lambda: date(2026, 7, 2))
    text = pdf_text(summary(app, world, "alice"))
    assert "Overdue" in text
