"""The referral state machine, without database or HTTP: the table, deadlines, overdue."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from referrals import workflow
from referrals.workflow import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    Requirement,
    Side,
    State,
    Urgency,
)

# The moves DESIGN names, written out once more by hand: the table must say exactly this.
EXPECTED = {
    (State.DRAFT, Action.SEND): (State.SENT, Side.SENDER),
    (State.DRAFT, Action.CANCEL): (State.CANCELLED, Side.SENDER),
    (State.SENT, Action.ACCEPT): (State.ACCEPTED, Side.RECEIVER),
    (State.SENT, Action.DECLINE): (State.DECLINED, Side.RECEIVER),
    (State.SENT, Action.EXPIRE): (State.EXPIRED, Side.SYSTEM),
    (State.SENT, Action.CANCEL): (State.CANCELLED, Side.SENDER),
    (State.SENT, Action.WITHDRAW_CONSENT): (State.CANCELLED, Side.SYSTEM),
    (State.ACCEPTED, Action.START): (State.IN_PROGRESS, Side.RECEIVER),
    (State.ACCEPTED, Action.CANCEL): (State.CANCELLED, Side.SENDER),
    (State.ACCEPTED, Action.WITHDRAW_CONSENT): (State.CANCELLED, Side.SYSTEM),
    (State.IN_PROGRESS, Action.COMPLETE): (State.COMPLETED, Side.RECEIVER),
    (State.IN_PROGRESS, Action.CANCEL): (State.CANCELLED, Side.SENDER),
    (State.IN_PROGRESS, Action.WITHDRAW_CONSENT): (State.CANCELLED, Side.SYSTEM),
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
        workflow.next_state("lost", "send")
    with pytest.raises(InvalidTransition):
        workflow.next_state("draft", "teleport")


def test_requirements_are_in_the_table():
    assert TRANSITIONS[(State.DRAFT, Action.SEND)].requires == {Requirement.CONSENT}
    assert TRANSITIONS[(State.SENT, Action.DECLINE)].requires == {Requirement.REASON}
    assert TRANSITIONS[(State.IN_PROGRESS, Action.COMPLETE)].requires == {Requirement.OUTCOME}
    assert TRANSITIONS[(State.SENT, Action.ACCEPT)].requires == frozenset()


def test_final_states_have_no_way_out():
    assert {
        State.DECLINED,
        State.COMPLETED,
        State.CANCELLED,
        State.EXPIRED,
    } == workflow.FINAL_STATES
    for state in workflow.FINAL_STATES:
        assert workflow.actions_from(state) == []


def test_actions_from_a_state_by_side():
    assert workflow.actions_from(State.SENT, Side.RECEIVER) == [Action.ACCEPT, Action.DECLINE]
    assert workflow.actions_from(State.SENT, Side.SENDER) == [Action.CANCEL]
    assert workflow.actions_from(State.DRAFT) == [Action.SEND, Action.CANCEL]


def test_sections_are_shared_only_while_accepted_or_in_progress():
    assert {State.ACCEPTED, State.IN_PROGRESS} == workflow.SHARING_STATES


SENT_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("urgency", "hours"), [(Urgency.EMERGENCY, 4), (Urgency.URGENT, 24), (Urgency.ROUTINE, 120)]
)
def test_default_deadlines_follow_the_design(urgency, hours):
    assert workflow.response_due(SENT_AT, urgency) == SENT_AT + timedelta(hours=hours)


def test_deadlines_are_configurable_as_a_mapping_or_as_text():
    assert workflow.response_due(SENT_AT, "urgent", {"urgent": 12}) == SENT_AT + timedelta(hours=12)
    hours = workflow.deadline_hours("emergency=2, routine=72")
    assert hours == {Urgency.EMERGENCY: 2, Urgency.URGENT: 24, Urgency.ROUTINE: 72}


@pytest.mark.parametrize("configured", ["urgent", "urgent=0", {"soon": 3}, {"urgent": -1}])
def test_bad_deadline_configuration_is_refused(configured):
    with pytest.raises(ValueError):
        workflow.deadline_hours(configured)


def test_overdue_means_sent_and_past_the_deadline():
    due = SENT_AT + timedelta(hours=4)
    assert not workflow.is_overdue(State.SENT, due, due - timedelta(seconds=1))
    assert workflow.is_overdue(State.SENT, due, due)
    assert not workflow.is_overdue(State.ACCEPTED, due, due + timedelta(days=1))
    assert not workflow.is_overdue(State.DRAFT, None, due)
