"""The incoming-report state machine: states, actions, the one transition table, the deadline.

An incoming report is something reported before there is a case: a hotline call or a
presumed-victim notification from an agency that keeps no case file. Pure on purpose, like
``referrals.workflow``: no Flask, no database. ``casework.contacts.transition`` is the only
place that assigns a report's state, and it asks this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.workflow import InvalidTransition as InvalidTransition  # raised by the table
from core.workflow import TransitionTable


class Kind(enum.StrEnum):
    HOTLINE_CALL = "hotline_call"
    AGENCY_NOTIFICATION = "agency_notification"


class State(enum.StrEnum):
    # Being recorded: the report exists only inside the transaction that sends or closes it.
    NEW = "new"
    # Routed to an agency (a call) or sent to the coordinator or an agency (a notification).
    SENT = "sent"
    # The receiver has seen it and works on it.
    ACKNOWLEDGED = "acknowledged"
    # Turned into a case (the report keeps the link).
    CONVERTED = "converted"
    # Closed without a case, with a coded reason (advice only, not trafficking...), or
    # withdrawn by the sender before the receiver acknowledged it (reason "withdrawn").
    CLOSED = "closed"


class Action(enum.StrEnum):
    SEND = "send"
    ACKNOWLEDGE = "acknowledge"
    CONVERT = "convert"
    CLOSE = "close"
    # The sender takes back what it sent, while the receiver has not acknowledged it yet.
    WITHDRAW = "withdraw"


class Side(enum.StrEnum):
    """Who takes an action: the agency that reported, or the agency that received it."""

    SENDER = "sender"
    RECEIVER = "receiver"


class Requirement(enum.StrEnum):
    # A coded closure reason.
    REASON = "reason"
    # The case the report became.
    CASE = "case"


@dataclass(frozen=True)
class Transition:
    next_state: State
    actor: Side
    requires: frozenset[Requirement] = frozenset()


_WITH_RECEIVER = (State.SENT, State.ACKNOWLEDGED)

# (state, action) -> the move. Anything not in this table is refused.
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    (State.NEW, Action.SEND): Transition(State.SENT, Side.SENDER),
    # A hotline call answered with advice only: closed by the operator during the call.
    (State.NEW, Action.CLOSE): Transition(
        State.CLOSED, Side.SENDER, frozenset({Requirement.REASON})
    ),
    (State.SENT, Action.ACKNOWLEDGE): Transition(State.ACKNOWLEDGED, Side.RECEIVER),
    # Withdrawn by the sender (sent by mistake, or to the wrong receiver): closed, with the
    # reason "withdrawn" set by the service, so statistics count it as closed, not open.
    (State.SENT, Action.WITHDRAW): Transition(State.CLOSED, Side.SENDER),
    **{
        (state, Action.CONVERT): Transition(
            State.CONVERTED, Side.RECEIVER, frozenset({Requirement.CASE})
        )
        for state in _WITH_RECEIVER
    },
    **{
        (state, Action.CLOSE): Transition(
            State.CLOSED, Side.RECEIVER, frozenset({Requirement.REASON})
        )
        for state in _WITH_RECEIVER
    },
}

# Waiting for, or being worked by, the receiver: counted in the inbox, watched for the deadline.
OPEN_STATES = frozenset(_WITH_RECEIVER)
# No action leads out of these.
FINAL_STATES = frozenset(set(State) - {state for state, _action in TRANSITIONS})


TABLE = TransitionTable("report", State, Action, TRANSITIONS)
# The questions every workflow asks of its table (core.workflow); InvalidTransition for a
# pair the table does not have.
transition_for = TABLE.transition_for
next_state = TABLE.next_state
actions_from = TABLE.actions_from


# The 24-hour rule ------------------------------------------------------------------------


def notification_due(identified_at: datetime, hours: int) -> datetime:
    """Return when the national coordinator must have been notified of a person identified
    at ``identified_at`` (the country rule, DESIGN "NRM status")."""
    return identified_at + timedelta(hours=hours)


def deadline_state(
    state: State | str, due_at: datetime | None, now: datetime, warning_hours: int
) -> str | None:
    """Return "overdue", "near" (within the warning hours) or None for a report's deadline.

    Only an open report (waiting for the receiver) is watched; a converted or closed one no
    longer is.
    """
    if due_at is None or State(state) not in OPEN_STATES:
        return None
    if now >= due_at:
        return "overdue"
    if due_at - now <= timedelta(hours=warning_hours):
        return "near"
    return None
