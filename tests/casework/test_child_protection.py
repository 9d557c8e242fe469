"""The child path: guardian deadline on working days, best-interests determination before
return, transfer and closure, family tracing and assessment, and who may see and do what."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from casework import child_protection as child
from casework import supervision
from casework.child_forms import BestInterestsForm
from casework.child_protection import (
    BestInterestsDetermination,
    BidOption,
    ChildProtectionError,
    FamilyTracing,
    best_interests_problem,
)
from casework.models import Case, CaseStatus
from casework.services import open_case
from casework.supervision import BestInterestsRequired, ClosureRequest
from casework.timeline import TimelineEvent
from core import policy
from core.audit import AuditEntry
from core.models import AgencyType, Role
from core.working_days import seed_public_holidays
from tests.factories import client_for, make_agency, make_user

# Identified on the Thursday before Novruz 2026: 15 working days end on 14 April.
IDENTIFIED = date(2026, 3, 19)
DUE = date(2026, 4, 14)
GUARDIAN = "Səbinə Quliyeva"
REASONING = "Mother located in Sumqayit; the child wants to live with her."


@pytest.fixture
def clock(monkeypatch):
    """Set the working clock (``casework.models.local_today``) to a chosen day."""

    def set_today(day: date) -> None:
        monkeypatch.setattr("casework.models.local_today", lambda: day)

    set_today(date(2026, 4, 1))
    return set_today


@pytest.fixture
def world(db, clock):
    """Alice (caseworker) and Bob (supervisor) of NGO North own a child's and an adult's
    case; Charlie is another NGO's, Carol a child-protection agency's caseworker."""
    seed_public_holidays([2026])
    north = make_agency(AgencyType.NGO, name="NGO North")
    south = make_agency(AgencyType.NGO, name="NGO South")
    centre = make_agency(AgencyType.CHILD_PROTECTION, name="Child Centre")
    nrm = make_agency(AgencyType.MINISTRY, name="NRM Office", coordinator=True)
    people = {
        "alice": make_user(north, Role.CASEWORKER),
        "bob": make_user(north, Role.SUPERVISOR),
        "charlie": make_user(south, Role.CASEWORKER),
        "carol": make_user(centre, Role.CASEWORKER),
        "coordinator": make_user(nrm, Role.COORDINATOR),
        "admin": make_user(nrm, Role.ADMIN),
        "analyst": make_user(nrm, Role.ANALYST),
        "auditor": make_user(nrm, Role.AUDITOR),
    }
    minor = open_case(
        people["alice"],
        {"given_name": "Leyla", "estimated_age": "15", "identified_on": IDENTIFIED},
    )
    adult = open_case(
        people["alice"],
        {"given_name": "Rauf", "estimated_age": "30", "identified_on": IDENTIFIED},
    )
    db.session.commit()
    assert minor.is_minor and adult.is_minor is False
    return {
        "minor_id": minor.id,
        "adult_id": adult.id,
        "north": north,
        "south": south,
        "centre": centre,
        **people,
    }


def case_of(db, world, key="minor_id") -> Case:
    db.session.expire_all()
    return db.session.get(Case, world[key])


def bid(db, world, **overrides) -> BestInterestsDetermination:
    values = {
        "deciding_body": "multidisciplinary_panel",
        "decided_by_name": "Panel of the Child Centre",
        "decided_on": date(2026, 3, 30),
        "options": ["reunification_azerbaijan", "foster_kinship_care"],
        "decision": "reunification_azerbaijan",
        "reasoning": REASONING,
        "child_heard": True,
        "heard_how": "with_psychologist",
    }
    values.update(overrides)
    return child.record_best_interests(world["alice"], case_of(db, world), **values)


def guardian(db, world, day=date(2026, 3, 30)):
    return child.record_guardian(
        world["alice"],
        case_of(db, world),
        guardian_name=GUARDIAN,
        role="state_guardian",
        appointing_body="guardianship_authority",
        appointed_on=day,
    )


# The guardian deadline ---------------------------------------------------------------------


def test_the_deadline_counts_15_working_days_across_novruz(db, world):
    assert child.guardian_due_on(case_of(db, world)) == DUE


def test_a_holiday_the_admin_adds_moves_the_guardian_deadline(app, db, world):
    response = client_for(app, world["admin"]).post_form(
        "/admin/holidays/", {"day": "2026-04-01", "label_en": "Ramazan bayram"}
    )
    assert response.status_code == 302
    assert child.guardian_due_on(case_of(db, world)) == date(2026, 4, 15)


def test_the_deadline_is_configurable(app, db, world):
    app.config["HAVEN_GUARDIAN_DAYS"] = 3
    try:
        assert child.guardian_due_on(case_of(db, world)) == date(2026, 3, 27)
    finally:
        app.config["HAVEN_GUARDIAN_DAYS"] = 15


@pytest.mark.parametrize(
    ("today", "state", "left"),
    [
        (date(2026, 4, 1), "running", 9),
        (date(2026, 4, 8), "running", 4),
        (date(2026, 4, 9), "due_soon", 3),
        (date(2026, 4, 14), "due_soon", 0),
        (date(2026, 4, 15), "overdue", -1),
    ],
)
def test_the_deadline_warns_in_the_last_3_working_days_then_is_overdue(
    db, world, clock, today, state, left
):
    clock(today)
    deadline = child.guardian_deadline(case_of(db, world))
    assert (deadline.due_on, deadline.state, deadline.days_left) == (DUE, state, left)


def test_an_appointment_ends_the_warning(db, world, clock):
    clock(date(2026, 4, 20))
    guardian(db, world, day=date(2026, 4, 10))
    assert child.guardian_deadline(case_of(db, world)).state == "appointed"
    other = case_of(db, world)
    assert not child.guardian_overdue_ids([other.id])


def test_a_late_appointment_is_marked_late(db, world, clock):
    clock(date(2026, 4, 20))
    guardian(db, world, day=date(2026, 4, 16))
    assert child.guardian_deadline(case_of(db, world)).state == "appointed_late"


def test_the_case_page_shows_the_deadline_and_the_warning(app, db, world, clock):
    client = client_for(app, world["alice"])
    clock(date(2026, 4, 9))
    page = client.get(f"/cases/{world['minor_id']}").get_data(as_text=True)
    assert "Child protection" in page and "Due soon" in page and "3 working days left" in page
    clock(date(2026, 4, 15))
    page = client.get(f"/cases/{world['minor_id']}").get_data(as_text=True)
    assert "Overdue" in page and "guardian-overdue" in page
    adult = client.get(f"/cases/{world['adult_id']}").get_data(as_text=True)
    assert "child-protection" not in adult


def test_the_case_list_marks_and_filters_overdue_guardians(app, db, world, clock):
    other_minor = open_case(
        world["alice"], {"given_name": "Aysel", "estimated_age": "12", "identified_on": IDENTIFIED}
    )
    child.record_guardian(
        world["alice"],
        other_minor,
        guardian_name="Parent",
        role="parent",
        appointing_body="court",
        appointed_on=date(2026, 3, 25),
    )
    db.session.commit()
    minor, adult = case_of(db, world), case_of(db, world, "adult_id")
    client = client_for(app, world["alice"])
    clock(date(2026, 4, 14))
    assert minor.reference not in client.get("/cases/?guardian=overdue").get_data(as_text=True)
    clock(date(2026, 4, 15))
    listed = client.get("/cases/?guardian=overdue").get_data(as_text=True)
    assert minor.reference in listed
    assert adult.reference not in listed and other_minor.reference not in listed
    everything = client.get("/cases/").get_data(as_text=True)
    assert everything.count("Guardian overdue</span>") == 1
    # Another agency's overdue child never shows in Charlie's list.
    other = client_for(app, world["charlie"]).get("/cases/?guardian=overdue")
    assert minor.reference not in other.get_data(as_text=True)


def test_a_case_without_identification_day_runs_from_opening(db, world, clock):
    case = open_case(world["alice"], {"given_name": "Nigar", "estimated_age": "10"})
    db.session.commit()
    opened = case.created_at.date()
    assert child.guardian_start(case) == opened


# Best interests before closure, transfer and return ----------------------------------------


def test_closure_of_a_minors_case_is_refused_without_a_determination(db, world):
    case = case_of(db, world)
    with pytest.raises(BestInterestsRequired) as refused:
        supervision.request_closure(case, world["alice"], "services_completed", None)
    assert "best-interests determination" in str(refused.value)
    bid(db, world)
    request = supervision.request_closure(
        case_of(db, world), world["alice"], "services_completed", None
    )
    supervision.approve_closure(request, world["bob"])
    assert case_of(db, world).status == CaseStatus.CLOSED


def test_approval_is_refused_for_a_request_made_before_the_child_path_applied(db, world):
    adult = case_of(db, world, "adult_id")
    request = supervision.request_closure(adult, world["alice"], "services_completed", None)
    adult.is_minor = True  # the age was corrected meanwhile
    db.session.flush()
    with pytest.raises(BestInterestsRequired):
        supervision.approve_closure(request, world["bob"])


def test_transfer_of_a_minors_case_is_refused_without_a_determination(db, world):
    with pytest.raises(BestInterestsRequired):
        supervision.request_transfer(
            case_of(db, world), world["alice"], world["south"], "Shelter place in the south."
        )
    bid(db, world)
    transfer = supervision.request_transfer(
        case_of(db, world), world["alice"], world["south"], "Shelter place in the south."
    )
    assert transfer.status == "requested"


def test_an_adults_case_is_never_blocked(db, world):
    adult = case_of(db, world, "adult_id")
    for purpose in child.PURPOSES:
        assert best_interests_problem(adult, purpose) is None


def test_a_return_needs_a_determination_and_a_safe_family_assessment(db, world):
    assert "family assessment" in best_interests_problem(case_of(db, world), "return")
    bid(db, world)
    assert "family assessment" in best_interests_problem(case_of(db, world), "return")
    assert best_interests_problem(case_of(db, world), "closure") is None

    def assess(outcome: str) -> None:
        child.record_family_assessment(
            world["alice"],
            case_of(db, world),
            assessed_on=date(2026, 3, 31),
            assessed_by="social_worker",
            outcome=outcome,
            notes="Visited the home in Sumqayit.",
        )
        db.session.flush()

    assess("unsafe")
    assert "unsafe" in best_interests_problem(case_of(db, world), "return")
    assess("needs_support")
    assert best_interests_problem(case_of(db, world), "return") is None


def test_an_unknown_purpose_is_a_programming_error(db, world):
    with pytest.raises(ValueError):
        best_interests_problem(case_of(db, world), "detention")


def test_the_closure_form_shows_the_refusal_and_keeps_what_was_typed(app, db, world):
    client = client_for(app, world["alice"])
    url = f"/cases/{world['minor_id']}/closure"
    typed = {"reason_code": "services_completed", "note": "Typed closure note kept"}
    response = client.post_form(url, typed)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "it cannot be closed until a best-interests determination is recorded" in page
    assert "Typed closure note kept" in page
    assert db.session.scalar(select(ClosureRequest.id)) is None
    bid(db, world)
    db.session.commit()
    assert client.post_form(url, typed).status_code == 302
    assert db.session.scalar(select(ClosureRequest.id)) is not None


def test_the_transfer_form_shows_the_refusal_and_keeps_what_was_typed(app, db, world):
    client = client_for(app, world["alice"])
    url = f"/cases/{world['minor_id']}/transfer"
    typed = {"to_agency": str(world["south"].id), "reason": "Typed transfer reason kept"}
    response = client.post_form(url, typed)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "cannot be transferred until a best-interests determination" in page
    assert "Typed transfer reason kept" in page
    bid(db, world)
    db.session.commit()
    assert client.post_form(url, typed).status_code == 302


def test_the_refusal_is_translated(app, db, world):
    world["alice"].language = "ru"
    db.session.commit()
    client = client_for(app, world["alice"])
    response = client.post_form(
        f"/cases/{world['minor_id']}/closure", {"reason_code": "services_completed"}
    )
    assert response.status_code == 400
    # Whatever the catalog holds today, the message goes through gettext in the user's
    # language: the English msgid is what an untranslated catalog returns.
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale("ru"):
        expected = gettext(
            "This is a child's case: it cannot be closed until a best-interests "
            "determination is recorded."
        )
    assert expected.replace("'", "&#39;") in response.get_data(as_text=True)


# Detention is never an option --------------------------------------------------------------


def test_no_option_admits_detention():
    codes = [member.value for member in BidOption]
    assert all("detention" not in code for code in codes)
    labels = [str(label).lower() for _code, label in BidOption.choices()]
    assert all("detention" not in label and "custody" not in label for label in labels)


def test_no_form_choice_admits_detention(app):
    with app.test_request_context():
        form = BestInterestsForm(meta={"csrf": False})
        offered = [choice.value for choice in form.options.choices]
        offered += [choice.value for choice in form.decision.choices]
    assert offered and all("detention" not in value for value in offered)


def test_the_service_refuses_detention(db, world):
    with pytest.raises(ChildProtectionError):
        bid(db, world, options=["detention", "local_integration"], decision="local_integration")
    with pytest.raises(ChildProtectionError):
        bid(db, world, options=["local_integration"], decision="detention")


def test_the_form_refuses_detention(app, db, world):
    response = client_for(app, world["alice"]).post_form(
        f"/cases/{world['minor_id']}/child/best-interests",
        {
            "deciding_body": "court",
            "decided_on": "2026-03-30",
            "options": ["detention"],
            "decision": "detention",
            "reasoning": "Typed reasoning kept",
            "child_heard": "no",
        },
    )
    assert response.status_code == 400
    assert "Typed reasoning kept" in response.get_data(as_text=True)
    assert db.session.scalar(select(BestInterestsDetermination.id)) is None


@pytest.mark.parametrize(
    ("options", "decision"),
    [("detention", "local_integration"), ("local_integration,detention", "local_integration")],
)
def test_the_database_refuses_detention(db, world, options, decision):
    case = case_of(db, world)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.execute(
            text(
                "INSERT INTO child_best_interests (id, case_id, deciding_body, decided_on,"
                " options_considered, decision, child_heard, recorded_at)"
                " VALUES ('x', :case_id, 'court', '2026-03-30', :options, :decision, false,"
                " '2026-03-30 10:00:00')"
            ),
            {"case_id": case.id, "options": options, "decision": decision},
        )


def test_the_database_refuses_detention_as_the_decision(db, world):
    case = case_of(db, world)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.execute(
            text(
                "INSERT INTO child_best_interests (id, case_id, deciding_body, decided_on,"
                " options_considered, decision, child_heard, recorded_at)"
                " VALUES ('y', :case_id, 'court', '2026-03-30', 'local_integration',"
                " 'detention', false, '2026-03-30 10:00:00')"
            ),
            {"case_id": case.id},
        )


# Records: validation, audit, timeline, raw rows --------------------------------------------


def test_the_decision_must_be_among_the_options(db, world):
    with pytest.raises(ChildProtectionError) as refused:
        bid(db, world, options=["local_integration"], decision="foster_kinship_care")
    assert refused.value.field == "decision"


def test_a_heard_child_needs_how(db, world):
    with pytest.raises(ChildProtectionError) as refused:
        bid(db, world, heard_how=None)
    assert refused.value.field == "heard_how"


def test_an_adults_case_has_no_child_records(db, world):
    with pytest.raises(ChildProtectionError):
        child.record_guardian(
            world["alice"],
            case_of(db, world, "adult_id"),
            guardian_name="X",
            role="parent",
            appointing_body="court",
            appointed_on=date(2026, 3, 30),
        )


def test_every_record_is_audited_and_on_the_timeline(db, world):
    guardian(db, world)
    bid(db, world)
    tracing = child.start_family_tracing(
        world["alice"], case_of(db, world), traced_by="iss", started_on=date(2026, 3, 25)
    )
    child.update_tracing_result(
        world["alice"], tracing, result="found", notes="Aunt found.", expected_version=1
    )
    child.record_family_assessment(
        world["alice"],
        case_of(db, world),
        assessed_on=date(2026, 3, 31),
        assessed_by="iom",
        outcome="safe",
    )
    db.session.commit()
    kinds = set(db.session.scalars(select(TimelineEvent.kind)))
    expected = {
        "child.guardian_appointed",
        "child.best_interests_determined",
        "child.tracing_started",
        "child.tracing_updated",
        "child.family_assessed",
    }
    assert expected <= kinds
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert expected <= actions
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "child.guardian_appointed")
    ).one()
    assert "guardian_name" in entry.field_names and GUARDIAN not in str(entry.field_names)


def test_a_stale_tracing_result_is_refused(app, db, world):
    tracing = child.start_family_tracing(
        world["alice"], case_of(db, world), traced_by="iom", started_on=date(2026, 3, 25)
    )
    db.session.commit()
    client = client_for(app, world["alice"])
    prefix = f"t-{tracing.id}"
    url = f"/cases/{world['minor_id']}/child/tracing/{tracing.id}/result"
    first = {f"{prefix}-result": "found", f"{prefix}-version": "1"}
    assert client.post_form(url, first).status_code == 302
    stale = {f"{prefix}-result": "not_found", f"{prefix}-version": "1"}
    assert client.post_form(url, stale).status_code == 409
    db.session.expire_all()
    assert db.session.get(FamilyTracing, tracing.id).result == "found"


def raw_dump(db, table: str) -> str:
    dump = ""
    for row in db.session.execute(text(f"SELECT * FROM {table}")).all():
        for column in row:
            if isinstance(column, bytes | memoryview):
                dump += bytes(column).decode("latin-1")
            else:
                dump += repr(column)
    return dump


def test_raw_rows_hold_no_plaintext(app, db, world):
    client = client_for(app, world["alice"])
    base = f"/cases/{world['minor_id']}/child"
    forms = [
        (
            "/guardian",
            {
                "guardian_name": GUARDIAN,
                "role": "state_guardian",
                "appointing_body": "guardianship_authority",
                "appointed_on": "2026-03-30",
                "guardian_notes": "Lives at Nizami street 12",
            },
        ),
        (
            "/best-interests",
            {
                "deciding_body": "multidisciplinary_panel",
                "decided_by_name": "Dr Günel Həsənova",
                "decided_on": "2026-03-30",
                "options": ["reunification_azerbaijan", "foster_kinship_care"],
                "decision": "reunification_azerbaijan",
                "reasoning": REASONING,
                "child_heard": "yes",
                "heard_how": "interview",
            },
        ),
        (
            "/tracing",
            {
                "traced_by": "iss",
                "started_on": "2026-03-25",
                "result": "ongoing",
                "tracing_notes": "Uncle Tofiq in Bakı",
            },
        ),
        (
            "/assessment",
            {
                "assessed_on": "2026-03-31",
                "assessed_by": "social_worker",
                "outcome": "safe",
                "assessment_notes": "Grandmother Zəhra cares well",
            },
        ),
    ]
    for path, data in forms:
        assert client.post_form(base + path, data).status_code == 302, path
    page = client.get(base).get_data(as_text=True)
    assert GUARDIAN in page and "Reasoning" in page
    secrets = {
        "child_guardian_appointments": [GUARDIAN, "Nizami street"],
        "child_best_interests": ["Günel", "Sumqayit"],
        "child_family_tracings": ["Tofiq"],
        "child_family_assessments": ["Zəhra"],
        "case_events": [GUARDIAN, "Günel", "Tofiq", "Zəhra"],
    }
    for table, values in secrets.items():
        dump = raw_dump(db, table)
        assert dump, table
        for secret in values:
            assert secret not in dump
            assert secret.encode("utf-8").decode("latin-1") not in dump


# Child-protection agency involvement -------------------------------------------------------


def test_no_child_protection_agency_is_warned_with_a_referral_link(app, db, world):
    page = client_for(app, world["alice"]).get(f"/cases/{world['minor_id']}").get_data(as_text=True)
    assert "No child-protection agency is involved" in page
    assert f"/referrals/new/{world['minor_id']}?service_type=child_protection" in page


def test_a_referral_to_a_child_protection_agency_involves_it(db, world):
    from referrals import services as referrals

    assert child.child_protection_involvement(case_of(db, world)) is None
    referral = referrals.create_referral(
        world["alice"],
        case_of(db, world),
        receiving_agency=world["centre"],
        service_type="child_protection",
        urgency="urgent",
        reason="Unaccompanied child, needs a guardian.",
        sections=["identity"],
        consent_exception="minor",
        exception_note="A child: referred in the child's best interests.",
    )
    assert child.child_protection_involvement(case_of(db, world)) is None  # a draft
    referrals.send_referral(world["alice"], referral)
    assert child.child_protection_involvement(case_of(db, world)) == "referral"


def test_a_transfer_to_a_child_protection_agency_involves_it(db, world):
    bid(db, world)
    supervision.request_transfer(
        case_of(db, world), world["alice"], world["centre"], "The centre takes the child."
    )
    assert child.child_protection_involvement(case_of(db, world)) == "transfer"


def test_the_owner_being_a_child_protection_agency_involves_it(db, world):
    case = open_case(world["carol"], {"given_name": "Elvin", "estimated_age": "9"})
    assert child.child_protection_involvement(case) == "owner"


# Access ------------------------------------------------------------------------------------

GUARDIAN_FORM = {
    "guardian_name": GUARDIAN,
    "role": "parent",
    "appointing_body": "court",
    "appointed_on": "2026-03-30",
}
ROUTES = [
    ("get", ""),
    ("post", "/guardian", GUARDIAN_FORM),
    (
        "post",
        "/best-interests",
        {
            "deciding_body": "court",
            "decided_on": "2026-03-30",
            "options": ["local_integration"],
            "decision": "local_integration",
            "reasoning": REASONING,
            "child_heard": "no",
        },
    ),
    ("post", "/tracing", {"traced_by": "iom", "started_on": "2026-03-25", "result": "ongoing"}),
    (
        "post",
        "/assessment",
        {"assessed_on": "2026-03-31", "assessed_by": "iom", "outcome": "safe"},
    ),
]
ALLOWED = {"alice": (200, 302), "bob": (200, 302)}
PERSONAS = ["alice", "bob", "charlie", "carol", "coordinator", "admin", "analyst", "auditor"]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("route", range(len(ROUTES)))
def test_access_matrix(app, db, world, persona, route):
    method, path, *data = ROUTES[route]
    client = client_for(app, world[persona])
    url = f"/cases/{world['minor_id']}/child{path}"
    response = client.get(url) if method == "get" else client.post_form(url, data[0])
    read, write = ALLOWED.get(persona, (404, 404))
    assert response.status_code == (read if method == "get" else write)
    if persona not in ALLOWED:
        assert GUARDIAN not in response.get_data(as_text=True)


@pytest.mark.parametrize("persona", PERSONAS)
def test_an_adults_case_has_no_child_page(app, db, world, persona):
    client = client_for(app, world[persona])
    assert client.get(f"/cases/{world['adult_id']}/child").status_code == 404
    response = client.post_form(f"/cases/{world['adult_id']}/child/guardian", GUARDIAN_FORM)
    assert response.status_code == 404


def test_a_closed_childs_case_is_read_but_not_written(app, db, world):
    bid(db, world)
    request = supervision.request_closure(
        case_of(db, world), world["alice"], "services_completed", None
    )
    supervision.approve_closure(request, world["bob"])
    db.session.commit()
    client = client_for(app, world["alice"])
    assert client.get(f"/cases/{world['minor_id']}/child").status_code == 200
    response = client.post_form(f"/cases/{world['minor_id']}/child/guardian", GUARDIAN_FORM)
    assert response.status_code == 403


def test_the_policy_questions(db, world):
    minor, adult = case_of(db, world), case_of(db, world, "adult_id")
    assert policy.may(world["alice"], "view_child_path", minor)
    assert policy.may(world["alice"], "record_child_path", minor)
    assert not policy.may(world["alice"], "view_child_path", adult)
    assert not policy.may(world["alice"], "record_child_path", adult)
    for persona in ("charlie", "carol", "coordinator", "admin", "analyst", "auditor"):
        assert not policy.may(world[persona], "view_child_path", minor)
        assert not policy.may(world[persona], "record_child_path", minor)


def test_the_child_page_read_is_audited(app, db, world):
    client_for(app, world["alice"]).get(f"/cases/{world['minor_id']}/child")
    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "case.section_viewed", AuditEntry.object_id == world["minor_id"]
        )
    ).first()
    assert entry is not None and "guardian.guardian_name" in entry.field_names


# Demo data ---------------------------------------------------------------------------------


def test_the_demo_covers_the_child_path(db):
    from casework.models import local_today
    from core.demo import load_demo_data

    load_demo_data()
    guardians = db.session.scalars(select(child.GuardianAppointment)).all()
    states = {child.guardian_deadline(row.case).state for row in guardians}
    assert "appointed" in states
    assert db.session.scalar(select(BestInterestsDetermination.id).limit(1)) is not None
    results = set(db.session.scalars(select(FamilyTracing.result)))
    assert {"found", "ongoing"} <= results
    assert db.session.scalar(select(child.FamilyAssessment.outcome).limit(1)) == "safe"
    minors = db.session.scalars(
        select(Case).where(Case.is_minor.is_(True), Case.status == "open")
    ).all()
    deadlines = [child.guardian_deadline(case).state for case in minors]
    assert "overdue" in deadlines and "due_soon" in deadlines
    assert child.guardian_overdue_ids([case.id for case in minors], local_today())
    # A second load adds nothing.
    count = len(guardians)
    load_demo_data()
    assert len(db.session.scalars(select(child.GuardianAppointment)).all()) == count
