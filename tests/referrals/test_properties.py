"""Property-based: random sequences of actions by random users, through the services.

Whatever the sequence, a referral only ever moves along ``TRANSITIONS``, by the side the
table names; a refused step changes nothing; what the policy allows succeeds; and no user
ever sees a section that was not shared, nor any section outside accepted/in progress.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casework.casefile_services import CaseFileError, withdraw_consent
from core import policy
from core.db import utcnow
from referrals import services
from referrals.models import SharedSection
from referrals.services import ReferralError
from referrals.sharing import shared_content
from referrals.workflow import SHARING_STATES, TRANSITIONS, Action, InvalidTransition, State
from tests.referrals.builders import SECRETS, WITHDRAWN, build_world, consent_to, draft

PERSONAS = ["alice", "bob", "hana", "hugo", "charlie", "admin", "coordinator"]
STEPS = ["send", "accept", "decline", "start", "complete", "cancel", "expire", "withdraw", "note"]
# Users of the receiving agency: the only ones who may ever see shared sections.
RECEIVERS = {"hana", "hugo"}


@pytest.fixture
def world(db):
    return build_world(db)


def run(world, referral, step: str, user):
    """Call the service for one step; return the workflow action it stands for, if any."""
    if step == "send":
        services.send_referral(user, referral)
    elif step == "accept":
        services.accept_referral(user, referral)
    elif step == "decline":
        services.decline_referral(user, referral, "Declined in a generated run.")
    elif step == "start":
        services.start_referral(user, referral)
    elif step == "complete":
        services.complete_referral(user, referral, "service_provided")
    elif step == "cancel":
        services.cancel_referral(user, referral)
    elif step == "expire":
        services.expire_overdue_referrals(utcnow() + timedelta(days=30))
        return Action.EXPIRE
    elif step == "withdraw":
        withdraw_consent(user, world["case"], "referral", WITHDRAWN, agency_id=world["east"].id)
        return Action.WITHDRAW_CONSENT
    elif step == "note":
        services.add_service_note(user, referral, "A generated note.")
        return None
    return Action(step)


def check_visibility(world, referral) -> None:
    shared = set(referral.sections)
    for name in PERSONAS:
        user = world[name]
        seen = set(policy.referral_sections(user, referral))
        assert seen <= shared
        if seen:
            assert name in RECEIVERS
            assert State(referral.state) in SHARING_STATES
        through_case = policy.shared_case_sections(user, world["case"])
        if name not in RECEIVERS:
            assert through_case == frozenset()
        elif State(referral.state) in SHARING_STATES:
            assert {section.value for section in shared} <= through_case
        text = repr([vars(block) for block in shared_content(world["case"], seen)])
        for section, secret in SECRETS.items():
            if SharedSection(section) not in seen:
                assert secret not in text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sections=st.sets(st.sampled_from([section.value for section in SharedSection])),
    emergency=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from(STEPS), st.sampled_from(PERSONAS)), max_size=10),
)
def test_random_walks_stay_on_the_table_and_never_leak(db, world, sections, emergency, steps):
    consent_to(world, world["east"])
    if emergency:
        referral = draft(
            world,
            sections=sections,
            urgency="emergency",
            consent_exception="emergency",
            exception_note="Generated emergency.",
        )
    else:
        referral = draft(world, sections=sections)
    db.session.commit()
    for step, name in steps:
        user = world[name]
        before = State(referral.state)
        rule = f"{step}_referral"
        allowed = rule in policy.RULES and policy.may(user, rule, referral)
        savepoint = db.session.begin_nested()
        try:
            action = run(world, referral, step, user)
        except (ReferralError, InvalidTransition, CaseFileError):
            savepoint.rollback()
            assert State(referral.state) is before, "a refused step changed the state"
            # What the policy allows must not be refused, unless the consent went meanwhile.
            assert not allowed or (step == "send" and not emergency)
        else:
            savepoint.commit()
            after = State(referral.state)
            if after is not before:
                move = TRANSITIONS[(before, action)]
                assert move.next_state is after
                if rule in policy.RULES:
                    assert allowed, f"{name} could {step} though the policy refuses"
        db.session.flush()
        check_visibility(world, referral)
    db.session.commit()
