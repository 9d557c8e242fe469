"""The reconsideration state machine, without database or HTTP: the table, every legal move,
every illegal pair, final and counted states."""

from __future__ import annotations

import itertools

import pytest

from referrals import reconsideration_workflow as flow
from referrals.reconsideration_workflow import TRANSITIONS, Action, InvalidTransition, Side, State

# The moves the design names, written out once more by hand: the table must say exactly this.
EXPECTED = {
    (State.REQUESTED, Action.REVIEW): (State.UNDER_REVIEW, Side.COORDINATOR),
    (State.REQUESTED, Action.WITHDRAW): (State.WITHDRAWN, Side.REQUESTER),
    (State.REQUESTED, Action.LAPSE): (State.LAPSED, Side.SYSTEM),
    (State.UNDER_REVIEW, Action.UPHOLD): (State.UPHELD, Side.COORDINATOR),
    (State.UNDER_REVIEW, Action.OVERTURN): (State.OVERTURNED, Side.COORDINATOR),
    (State.UNDER_REVIEW, Action.WITHDRAW): (State.WITHDRAWN, Side.REQUESTER),
    (State.UNDER_REVIEW, Action.LAPSE): (State.LAPSED, Side.SYSTEM),
}
ILLEGAL = [pair for pair in itertools.product(State, Action) if pair not in EXPECTED]


def test_the_table_holds_exactly_the_designed_moves():
    assert {key: (move.next_state, move.actor) for key, move in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("state", "action"), list(EXPECTED))
def test_every_legal_move_leads_where_the_table_says(state, action):
    assert flow.next_state(state, action) is EXPECTED[(state, action)][0]
    assert flow.next_state(state.value, action.value) is EXPECTED[(state, action)][0]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_every_pair_not_in_the_table_raises(state, action):
    with pytest.raises(InvalidTransition):
        flow.next_state(state, action)


def test_unknown_states_and_actions_raise_invalid_transition():
    with pytest.raises(InvalidTransition):
        flow.next_state("refused_late", "review")
    with pytest.raises(InvalidTransition):
        flow.next_state("requested", "appeal")


def test_a_decision_is_recorded_only_after_review():
    # The coordinator accepts the request before deciding, as for a first decision.
    for action in (Action.UPHOLD, Action.OVERTURN):
        with pytest.raises(InvalidTransition):
            flow.next_state(State.REQUESTED, action)


def test_final_states_have_no_way_out():
    assert {State.UPHELD, State.OVERTURNED, State.WITHDRAWN, State.LAPSED} == flow.FINAL_STATES
    for state in flow.FINAL_STATES:
        assert flow.actions_from(state) == []


def test_only_open_and_decided_requests_use_up_the_one_reconsideration():
    assert {
        State.REQUESTED,
        State.UNDER_REVIEW,
        State.UPHELD,
        State.OVERTURNED,
    } == flow.COUNTED_STATES
    assert {State.UPHELD, State.OVERTURNED} == flow.DECIDED_STATES


def test_actions_by_side():
    assert flow.actions_from(State.REQUESTED, Side.REQUESTER) == [Action.WITHDRAW]
    assert flow.actions_from(State.UNDER_REVIEW, Side.COORDINATOR) == [
        Action.UPHOLD,
        Action.OVERTURN,
    ]
    assert flow.actions_from(State.REQUESTED, Side.SYSTEM) == [Action.LAPSE]
