"""The reconsideration state machine: states, actions and the one transition table.

Pure on purpose, like ``referrals.workflow``: no Flask, no database. The case owner requests
the reconsideration of a negative status decision; the coordinator reviews it (by accepting
the status-decision request that carries it) and records the second decision, which either
upholds the first or overturns it. The requester may withdraw it until then. When the
carrying request ends without a decision (the coordinator declined it, it expired, the
person withdrew the consent it was sent on), the reconsideration lapses: Haven's own move.

A request made too late (after the configured period from the decision) or for a case
already reconsidered is refused by the service before anything is created: it is an error
shown to the user, not a state a row can be in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.workflow import InvalidTransition as InvalidTransition  # raised by the table
from core.workflow import TransitionTable


class State(enum.StrEnum):
    REQUESTED = "requested"
    UNDER_REVIEW = "under_review"
    UPHELD = "upheld"
    OVERTURNED = "overturned"
    WITHDRAWN = "withdrawn"
    LAPSED = "lapsed"


class Action(enum.StrEnum):
    REVIEW = "review"
    UPHOLD = "uphold"
    OVERTURN = "overturn"
    WITHDRAW = "withdraw"
    LAPSE = "lapse"


class Side(enum.StrEnum):
    """Who takes an action: the case owner's staff, the coordinator, or Haven itself."""

    REQUESTER = "requester"
    COORDINATOR = "coordinator"
    SYSTEM = "system"


@dataclass(frozen=True)
class Transition:
    next_state: State
    actor: Side


_OPEN = (State.REQUESTED, State.UNDER_REVIEW)

# (state, action) -> the move. Anything not in this table is refused.
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    (State.REQUESTED, Action.REVIEW): Transition(State.UNDER_REVIEW, Side.COORDINATOR),
    # The second decision is recorded on a request under review only (accepted first).
    (State.UNDER_REVIEW, Action.UPHOLD): Transition(State.UPHELD, Side.COORDINATOR),
    (State.UNDER_REVIEW, Action.OVERTURN): Transition(State.OVERTURNED, Side.COORDINATOR),
    **{(state, Action.WITHDRAW): Transition(State.WITHDRAWN, Side.REQUESTER) for state in _OPEN},
    **{(state, Action.LAPSE): Transition(State.LAPSED, Side.SYSTEM) for state in _OPEN},
}

# Waiting for, or under, the coordinator's review.
OPEN_STATES = frozenset(_OPEN)
# A second decision was recorded: the case was reconsidered (once only).
DECIDED_STATES = frozenset({State.UPHELD, State.OVERTURNED})
# No action leads out of these.
FINAL_STATES = frozenset(set(State) - {state for state, _action in TRANSITIONS})
# These use up the case's one reconsideration; a withdrawn or lapsed request does not.
COUNTED_STATES = OPEN_STATES | DECIDED_STATES


TABLE = TransitionTable("reconsideration", State, Action, TRANSITIONS)
# The questions every workflow asks of its table (core.workflow); InvalidTransition for a
# pair the table does not have.
transition_for = TABLE.transition_for
next_state = TABLE.next_state
actions_from = TABLE.actions_from
