"""The referral rules of the access policy: sides, states, sections and the scopes."""

from __future__ import annotations

import pytest

from core import policy
from referrals import services
from referrals.models import SharedSection
from tests.referrals.builders import build_world, draft, sent

PERSONAS = ["alice", "bob", "hana", "hugo", "charlie", "admin", "analyst", "auditor"]
PERSONAS += ["coordinator"]


@pytest.fixture
def world(db):
    return build_world(db)


def referral_in(world, state: str):
    if state == "draft":
        return draft(world)
    referral = sent(world)
    if state in ("accepted", "in_progress", "completed"):
        services.accept_referral(world["hana"], referral)
    if state in ("in_progress", "completed"):
        services.start_referral(world["hana"], referral)
    if state == "completed":
        services.complete_referral(world["hana"], referral, "service_provided")
    if state == "declined":
        services.decline_referral(world["hana"], referral, "Full.")
    if state == "cancelled":
        services.cancel_referral(world["alice"], referral)
    return referral


SENDERS = {"alice", "bob"}
RECEIVERS = {"hana", "hugo"}
# state -> {persona: actions they may take}
ACTIONS = {
    "draft": {"alice": ["send", "cancel"], "bob": ["send", "cancel"]},
    "sent": {
        "alice": ["cancel"],
        "bob": ["cancel"],
        "hana": ["accept", "decline"],
        "hugo": ["accept", "decline"],
    },
    "accepted": {"alice": ["cancel"], "bob": ["cancel"], "hana": ["start"], "hugo": ["start"]},
    "in_progress": {
        "alice": ["cancel"],
        "bob": ["cancel"],
        "hana": ["complete"],
        "hugo": ["complete"],
    },
    "completed": {},
    "declined": {},
    "cancelled": {},
}


@pytest.mark.parametrize("state", list(ACTIONS))
def test_who_may_do_what_in_each_state(world, state):
    referral = referral_in(world, state)
    for persona in PERSONAS:
        user = world[persona]
        got = [action.value for action in policy.referral_actions(user, referral)]
        assert got == ACTIONS[state].get(persona, []), persona
        viewers = SENDERS if state == "draft" else SENDERS | RECEIVERS
        assert policy.can_view_referral(user, referral) is (persona in viewers), persona
        visible = {row.id for row in policy.db.session.scalars(policy.visible_referrals(user))}
        assert (referral.id in visible) is (persona in viewers), persona


@pytest.mark.parametrize("state", list(ACTIONS))
def test_only_the_receiver_sees_the_shared_sections_while_it_works_them(world, state):
    referral = referral_in(world, state)
    sharing = state in ("accepted", "in_progress")
    for persona in PERSONAS:
        user = world[persona]
        expected = referral.sections if sharing and persona in RECEIVERS else []
        assert policy.referral_sections(user, referral) == expected
        codes = policy.shared_case_sections(user, world["case"])
        assert codes == {section.value for section in expected}


def test_the_receiver_reads_the_reason_only_while_the_referral_is_open(world):
    referral = referral_in(world, "in_progress")
    assert policy.can_read_referral_reason(world["hana"], referral)
    services.complete_referral(world["hana"], referral, "service_provided")
    assert not policy.can_read_referral_reason(world["hana"], referral)
    assert policy.can_read_referral_reason(world["alice"], referral)
    assert not policy.can_read_referral_reason(world["charlie"], referral)


def test_notes_scope_hides_internal_notes_from_the_sender(world):
    referral = referral_in(world, "accepted")
    services.add_service_note(world["hana"], referral, "Internal")
    services.add_service_note(world["hana"], referral, "Shared", shared_with_sender=True)
    session = policy.db.session

    def bodies(user):
        return sorted(
            n.body for n in session.scalars(policy.visible_referral_notes(user, referral))
        )

    assert bodies(world["hugo"]) == ["Internal", "Shared"]
    assert bodies(world["alice"]) == ["Shared"]
    assert bodies(world["charlie"]) == []


def test_only_case_staff_of_the_owner_may_refer_an_open_case(world):
    case = world["case"]
    assert policy.can_create_referral(world["alice"], case)
    for persona in ("hana", "charlie", "admin", "analyst", "auditor", "coordinator"):
        assert not policy.can_create_referral(world[persona], case)


def test_sections_are_the_designed_six():
    assert [section.value for section in SharedSection] == [
        "identity",
        "contact",
        "health",
        "exploitation",
        "assessments",
        "documents",
    ]
