"""Looking moves up in a workflow's transition table: the one way every workflow does it.

Each workflow (referrals, reconsiderations, return plans, incoming reports) keeps its own
states, actions, sides and ``TRANSITIONS`` table ``(state, action) -> move`` in a pure module;
a move names at least ``next_state`` and ``actor`` (the side that may take it). This module
answers the questions all of them ask of such a table, so the answers cannot drift apart.
Pure: no Flask, no database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

StateT = TypeVar("StateT", bound=enum.Enum)
ActionT = TypeVar("ActionT", bound=enum.Enum)
MoveT = TypeVar("MoveT")


class InvalidTransition(ValueError):
    """The action is not allowed from the state (or either is unknown)."""


@dataclass(frozen=True)
class TransitionTable(Generic[StateT, ActionT, MoveT]):
    """A workflow's table, and what may be asked of it."""

    # What the workflow moves, for messages: "referral", "return plan".
    noun: str
    states: type[StateT]
    actions: type[ActionT]
    transitions: Mapping[tuple[StateT, ActionT], MoveT]

    def transition_for(self, state: StateT | str, action: ActionT | str) -> MoveT:
        """Return the move an action makes from a state.

        :raises InvalidTransition: when the pair is not in the table.
        """
        try:
            key = (self.states(state), self.actions(action))
        except ValueError:
            raise InvalidTransition(f"unknown state or action: {state!r}, {action!r}") from None
        try:
            return self.transitions[key]
        except KeyError:
            raise InvalidTransition(
                f"cannot {key[1].value} a {self.noun} that is {key[0].value}"
            ) from None

    def next_state(self, state: StateT | str, action: ActionT | str) -> StateT:
        """Return the state an action leads to from a state.

        :raises InvalidTransition: when the pair is not in the table.
        """
        return self.transition_for(state, action).next_state  # type: ignore[attr-defined]

    def actions_from(self, state: StateT | str, side: Any = None) -> list[ActionT]:
        """Return the actions legal from a state (taken by one side, when given), in table
        order."""
        state = self.states(state)
        return [
            action
            for (from_state, action), move in self.transitions.items()
            if from_state is state and (side is None or move.actor is side)  # type: ignore[attr-defined]
        ]

    @property
    def final_states(self) -> frozenset[StateT]:
        """Return the states no action leads out of."""
        return frozenset(set(self.states) - {state for state, _action in self.transitions})
