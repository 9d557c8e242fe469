"""The return state machine, without database or HTTP: the table, sides and requirements."""

from __future__ import annotations

import itertools

import pytest

from casework import return_workflow as workflow
from casework.return_workflow import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    Requirement,
    Side,
    State,
)

OPEN = (State.DRAFT, State.RISK_ASSESSED, State.SIGNED_OFF, State.NOT_ADVISED, State.READY)

# The moves the issue names, written out once more by hand: the table must say exactly this.
EXPECTED = {
    **{(state, Action.ASSESS_RISK): (State.RISK_ASSESSED, Side.OWNER) for state in OPEN},
    (State.RISK_ASSESSED, Action.SIGN_OFF): (State.SIGNED_OFF, Side.SIGNER),
    (State.RISK_ASSESSED, Action.ADVISE_AGAINST): (State.NOT_ADVISED, Side.SIGNER),
    (State.SIGNED_OFF, Action.MARK_READY): (State.READY, Side.OWNER),
    (State.READY, Action.RECORD_RETURN): (State.RETURNED, Side.OWNER),
    **{(state, Action.CANCEL): (State.CANCELLED, Side.OWNER) for state in OPEN},
    **{(state, Action.STAY): (State.STAYED, Side.OWNER) for state in OPEN},
}
ILLEGAL = [pair for pair in itertools.product(State, Action) if pair not in EXPECTED]


def test_the_table_holds_exactly_the_designed_moves():
    assert {key: (move.next_state, move.actor) for key, move in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("state", "action"), list(EXPECTED))
def test_every_legal_move_leads_where_the_table_says(state, action):
    assert workflow.next_state(state, action) is EXPECTED[(state, action)][0]
    assert workflow.next_state(state.value, action.value) is EXPECTED[(state, action)][0]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_every_pair_not_in_the_table_raises(state, action):
    with pytest.raises(InvalidTransition):
        workflow.next_state(state, action)


def test_unknown_states_and_actions_raise_invalid_transition():
    with pytest.raises(InvalidTransition):
        workflow.next_state("lost", "sign_off")
    with pytest.raises(InvalidTransition):
        workflow.next_state("draft", "teleport")


def test_nobody_reaches_ready_or_returned_without_a_sign_off():
    # The only way into "ready" is from "signed_off", and into "returned" from "ready".
    into = {
        target: {key for key, move in TRANSITIONS.items() if move.next_state is target}
        for target in (State.READY, State.RETURNED, State.SIGNED_OFF)
    }
    assert into[State.READY] == {(State.SIGNED_OFF, Action.MARK_READY)}
    assert into[State.RETURNED] == {(State.READY, Action.RECORD_RETURN)}
    assert into[State.SIGNED_OFF] == {(State.RISK_ASSESSED, Action.SIGN_OFF)}


def test_not_advised_blocks_the_return_until_a_new_assessment():
    assert set(workflow.actions_from(State.NOT_ADVISED)) == {
        Action.ASSESS_RISK,
        Action.CANCEL,
        Action.STAY,
    }


def test_the_signing_side_only_signs_and_the_owner_does_the_rest():
    signer = {key for key, move in TRANSITIONS.items() if move.actor is Side.SIGNER}
    assert {action for _state, action in signer} == {Action.SIGN_OFF, Action.ADVISE_AGAINST}
    assert workflow.actions_from(State.RISK_ASSESSED, Side.SIGNER) == [
        Action.SIGN_OFF,
        Action.ADVISE_AGAINST,
    ]
    assert Action.SIGN_OFF not in workflow.actions_from(State.RISK_ASSESSED, Side.OWNER)


def test_requirements_are_in_the_table():
    assert TRANSITIONS[(State.RISK_ASSESSED, Action.SIGN_OFF)].requires == {
        Requirement.NOT_HIGH_RISK
    }
    assert TRANSITIONS[(State.RISK_ASSESSED, Action.ADVISE_AGAINST)].requires == {
        Requirement.REASON
    }
    assert TRANSITIONS[(State.SIGNED_OFF, Action.MARK_READY)].requires == {
        Requirement.TRAVEL_READY,
        Requirement.BEST_INTERESTS,
    }
    assert TRANSITIONS[(State.READY, Action.RECORD_RETURN)].requires == {
        Requirement.RETURN_DATE,
        Requirement.BEST_INTERESTS,
    }
    assert TRANSITIONS[(State.DRAFT, Action.CANCEL)].requires == {Requirement.CANCEL_REASON}
    assert TRANSITIONS[(State.DRAFT, Action.STAY)].requires == frozenset()


def test_final_states_have_no_way_out():
    assert {State.RETURNED, State.CANCELLED, State.STAYED} == workflow.FINAL_STATES
    for state in workflow.FINAL_STATES:
        assert workflow.actions_from(state) == []
    assert set(OPEN) == workflow.OPEN_STATES
