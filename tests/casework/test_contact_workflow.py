"""The incoming-report state machine, without database or HTTP: the table and the deadline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from casework import contact_workflow as workflow
from casework.contact_workflow import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    Requirement,
    Side,
    State,
)

# The moves, written out once more by hand: the table must say exactly this.
EXPECTED = {
    (State.NEW, Action.SEND): (State.SENT, Side.SENDER),
    (State.NEW, Action.CLOSE): (State.CLOSED, Side.SENDER),
    (State.SENT, Action.ACKNOWLEDGE): (State.ACKNOWLEDGED, Side.RECEIVER),
    # The sender withdraws what the receiver has not acknowledged (closed, reason "withdrawn").
    (State.SENT, Action.WITHDRAW): (State.CLOSED, Side.SENDER),
    (State.SENT, Action.CONVERT): (State.CONVERTED, Side.RECEIVER),
    (State.SENT, Action.CLOSE): (State.CLOSED, Side.RECEIVER),
    (State.ACKNOWLEDGED, Action.CONVERT): (State.CONVERTED, Side.RECEIVER),
    (State.ACKNOWLEDGED, Action.CLOSE): (State.CLOSED, Side.RECEIVER),
}
ILLEGAL = [pair for pair in itertools.product(State, Action) if pair not in EXPECTED]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


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
        workflow.next_state("sent", "teleport")


def test_closing_needs_a_reason_and_converting_a_case():
    for (_state, action), move in TRANSITIONS.items():
        if action is Action.CLOSE:
            assert move.requires == {Requirement.REASON}
        elif action is Action.CONVERT:
            assert move.requires == {Requirement.CASE}
        else:
            assert move.requires == frozenset()


def test_converted_and_closed_are_final():
    assert {State.CONVERTED, State.CLOSED} == workflow.FINAL_STATES
    for state in workflow.FINAL_STATES:
        assert workflow.actions_from(state) == []


def test_the_receiver_acts_only_once_it_was_sent():
    assert workflow.actions_from(State.NEW, Side.RECEIVER) == []
    assert workflow.actions_from(State.SENT, Side.RECEIVER) == [
        Action.ACKNOWLEDGE,
        Action.CONVERT,
        Action.CLOSE,
    ]
    assert workflow.actions_from(State.ACKNOWLEDGED, Side.RECEIVER) == [
        Action.CONVERT,
        Action.CLOSE,
    ]
    assert workflow.actions_from(State.SENT, Side.SENDER) == [Action.WITHDRAW]


def test_the_sender_withdraws_only_before_the_receiver_acknowledged():
    assert workflow.next_state(State.SENT, Action.WITHDRAW) is State.CLOSED
    for state in (State.NEW, State.ACKNOWLEDGED, State.CONVERTED, State.CLOSED):
        assert Action.WITHDRAW not in workflow.actions_from(state, Side.SENDER)
        with pytest.raises(InvalidTransition):
            workflow.next_state(state, Action.WITHDRAW)


def test_the_notification_is_due_the_configured_hours_after_identification():
    assert workflow.notification_due(NOW, 24) == NOW + timedelta(hours=24)
    assert workflow.notification_due(NOW, 12) == NOW + timedelta(hours=12)


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (State.SENT, NOW, None),
        (State.SENT, NOW + timedelta(hours=18, minutes=1), "near"),
        (State.ACKNOWLEDGED, NOW + timedelta(hours=23), "near"),
        (State.SENT, NOW + timedelta(hours=24), "overdue"),
        (State.ACKNOWLEDGED, NOW + timedelta(days=3), "overdue"),
        (State.CONVERTED, NOW + timedelta(days=3), None),
        (State.CLOSED, NOW + timedelta(days=3), None),
    ],
)
def test_only_open_reports_are_warned_about_and_marked_overdue(state, now, expected):
    due = workflow.notification_due(NOW, 24)
    assert workflow.deadline_state(state, due, now, warning_hours=6) == expected


def test_no_deadline_means_no_warning():
    assert workflow.deadline_state(State.SENT, None, NOW, warning_hours=6) is None
