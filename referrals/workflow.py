"""The referral state machine: states, actions, the one transition table and deadlines.

Pure on purpose: no Flask, no database. The services, the access policy, the views and the
tests all read ``TRANSITIONS``; nothing else decides which move is legal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.workflow import InvalidTransition as InvalidTransition  # raised by the table
from core.workflow import TransitionTable


class State(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(enum.StrEnum):
    SEND = "send"
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"
    EXPIRE = "expire"
    # The person withdrew the consent the referral relied on (DESIGN "Consent").
    WITHDRAW_CONSENT = "withdraw_consent"


class Side(enum.StrEnum):
    """Who may take an action: the sending agency, the receiving agency, or Haven itself."""

    SENDER = "sender"
    RECEIVER = "receiver"
    SYSTEM = "system"


class Urgency(enum.StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"


class Requirement(enum.StrEnum):
    """What an action needs besides being legal from the state."""

    # A current given referral consent for the receiving agency, or a recorded exception.
    CONSENT = "consent"
    # A written reason.
    REASON = "reason"
    # A coded outcome.
    OUTCOME = "outcome"


@dataclass(frozen=True)
class Transition:
    next_state: State
    actor: Side
    requires: frozenset[Requirement] = frozenset()


_OPEN_BY_SENDER = (State.SENT, State.ACCEPTED, State.IN_PROGRESS)

# (state, action) -> the move. Anything not in this table is refused.
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    (State.DRAFT, Action.SEND): Transition(
        State.SENT, Side.SENDER, frozenset({Requirement.CONSENT})
    ),
    # A draft the sender gives up.
    (State.DRAFT, Action.CANCEL): Transition(State.CANCELLED, Side.SENDER),
    (State.SENT, Action.ACCEPT): Transition(State.ACCEPTED, Side.RECEIVER),
    (State.SENT, Action.DECLINE): Transition(
        State.DECLINED, Side.RECEIVER, frozenset({Requirement.REASON})
    ),
    (State.SENT, Action.EXPIRE): Transition(State.EXPIRED, Side.SYSTEM),
    (State.ACCEPTED, Action.START): Transition(State.IN_PROGRESS, Side.RECEIVER),
    (State.IN_PROGRESS, Action.COMPLETE): Transition(
        State.COMPLETED, Side.RECEIVER, frozenset({Requirement.OUTCOME})
    ),
    **{
        (state, Action.CANCEL): Transition(State.CANCELLED, Side.SENDER)
        for state in _OPEN_BY_SENDER
    },
    **{
        (state, Action.WITHDRAW_CONSENT): Transition(State.CANCELLED, Side.SYSTEM)
        for state in _OPEN_BY_SENDER
    },
}

# A referral waiting for, or being worked by, the receiver.
OPEN_STATES = frozenset(_OPEN_BY_SENDER)
# While the referral is in one of these, the receiver sees the shared case sections.
SHARING_STATES = frozenset({State.ACCEPTED, State.IN_PROGRESS})
# No action leads out of these.
FINAL_STATES = frozenset(set(State) - {state for state, _action in TRANSITIONS})
# After these the sender may refer the person elsewhere, prefilled from the referral.
REREFERABLE_STATES = frozenset({State.DECLINED, State.EXPIRED})


TABLE = TransitionTable("referral", State, Action, TRANSITIONS)
# The questions every workflow asks of its table (core.workflow); InvalidTransition for a
# pair the table does not have.
transition_for = TABLE.transition_for
next_state = TABLE.next_state
actions_from = TABLE.actions_from


# Deadlines ---------------------------------------------------------------------------------

# Hours the receiver has to answer a sent referral (DESIGN): 4 h, 24 h, 5 days.
DEFAULT_DEADLINE_HOURS: dict[Urgency, int] = {
    Urgency.EMERGENCY: 4,
    Urgency.URGENT: 24,
    Urgency.ROUTINE: 5 * 24,
}


def deadline_hours(configured: Mapping[str, object] | str | None = None) -> dict[Urgency, int]:
    """Return the answer deadline in hours by urgency, the defaults overridden by config.

    ``configured`` is a mapping (``{"urgent": 12}``) or, from the environment, text such as
    ``"emergency=2,urgent=12,routine=72"``.

    :raises ValueError: for an unknown urgency or a deadline that is not a positive number.
    """
    hours = dict(DEFAULT_DEADLINE_HOURS)
    if not configured:
        return hours
    if isinstance(configured, str):
        pairs = [part.split("=", 1) for part in configured.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"malformed referral deadlines: {configured!r}")
        configured = {key.strip(): value.strip() for key, value in pairs}
    for key, value in configured.items():
        number = int(str(value))
        if number <= 0:
            raise ValueError(f"a referral deadline must be positive: {key}={value}")
        hours[Urgency(key)] = number
    return hours


def response_due(
    sent_at: datetime,
    urgency: Urgency | str,
    configured: Mapping[str, object] | str | None = None,
) -> datetime:
    """Return when the receiver must have answered a referral sent at ``sent_at``."""
    return sent_at + timedelta(hours=deadline_hours(configured)[Urgency(urgency)])


def is_overdue(state: State | str, due_at: datetime | None, now: datetime) -> bool:
    """Return whether a referral is still waiting for an answer after its deadline."""
    return State(state) is State.SENT and due_at is not None and now >= due_at
