"""The voluntary-return state machine: states, actions, who acts, and the one transition table.

Pure on purpose, like ``referrals.workflow``: no Flask, no database. The return services, the
access policy, the views and the tests all read ``TRANSITIONS``; nothing else decides which
move is legal.

The owner side (the case's agency) plans the return and assesses the risk; the signing side
(the national coordinator, or a legal-aid agency working an accepted referral on the case)
signs the assessment off, or records that return is not advised. Nobody is returned without
a sign-off, and a high risk can only be answered "return not advised", which blocks the
return until a new assessment is signed off.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.workflow import InvalidTransition as InvalidTransition  # raised by the table
from core.workflow import TransitionTable


class State(enum.StrEnum):
    DRAFT = "draft"
    RISK_ASSESSED = "risk_assessed"
    SIGNED_OFF = "signed_off"
    NOT_ADVISED = "not_advised"
    READY = "ready"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    # The person chose to stay: a decision of the person, not a failure of the plan.
    STAYED = "stayed"


class Action(enum.StrEnum):
    # Record (or renew) the pre-return risk assessment; any earlier sign-off lapses.
    ASSESS_RISK = "assess_risk"
    SIGN_OFF = "sign_off"
    ADVISE_AGAINST = "advise_against"
    MARK_READY = "mark_ready"
    RECORD_RETURN = "record_return"
    CANCEL = "cancel"
    STAY = "stay"


class Side(enum.StrEnum):
    """Who may take an action: the case's agency, or the side that signs the risk off."""

    OWNER = "owner"
    SIGNER = "signer"


class Requirement(enum.StrEnum):
    """What an action needs besides being legal from the state."""

    # A coded risk level (notes optional).
    RISK_LEVEL = "risk_level"
    # The assessed risk is not high: a high risk can only be answered "not advised".
    NOT_HIGH_RISK = "not_high_risk"
    # A written reason.
    REASON = "reason"
    # A travel document in hand (valid passport or issued) and a planned date.
    TRAVEL_READY = "travel_ready"
    # For a child: the best-interests determination (and family assessment) allows return.
    BEST_INTERESTS = "best_interests"
    # The day the person returned.
    RETURN_DATE = "return_date"
    # A coded cancellation reason.
    CANCEL_REASON = "cancel_reason"


@dataclass(frozen=True)
class Transition:
    next_state: State
    actor: Side
    requires: frozenset[Requirement] = frozenset()


# States from which the person may still give up the return, or the owner cancel it.
_OPEN = (State.DRAFT, State.RISK_ASSESSED, State.SIGNED_OFF, State.NOT_ADVISED, State.READY)

# (state, action) -> the move. Anything not in this table is refused.
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    **{
        (state, Action.ASSESS_RISK): Transition(
            State.RISK_ASSESSED, Side.OWNER, frozenset({Requirement.RISK_LEVEL})
        )
        for state in _OPEN
    },
    (State.RISK_ASSESSED, Action.SIGN_OFF): Transition(
        State.SIGNED_OFF, Side.SIGNER, frozenset({Requirement.NOT_HIGH_RISK})
    ),
    (State.RISK_ASSESSED, Action.ADVISE_AGAINST): Transition(
        State.NOT_ADVISED, Side.SIGNER, frozenset({Requirement.REASON})
    ),
    (State.SIGNED_OFF, Action.MARK_READY): Transition(
        State.READY,
        Side.OWNER,
        frozenset({Requirement.TRAVEL_READY, Requirement.BEST_INTERESTS}),
    ),
    (State.READY, Action.RECORD_RETURN): Transition(
        State.RETURNED,
        Side.OWNER,
        frozenset({Requirement.RETURN_DATE, Requirement.BEST_INTERESTS}),
    ),
    **{
        (state, Action.CANCEL): Transition(
            State.CANCELLED, Side.OWNER, frozenset({Requirement.CANCEL_REASON})
        )
        for state in _OPEN
    },
    **{(state, Action.STAY): Transition(State.STAYED, Side.OWNER) for state in _OPEN},
}

# A plan still being worked on: a case has at most one of these at a time.
OPEN_STATES = frozenset(_OPEN)
# No action leads out of these.
FINAL_STATES = frozenset(set(State) - {state for state, _action in TRANSITIONS})
# The signing side sees the plan once a risk assessment was submitted to it.
SIGNER_VISIBLE_STATES = frozenset(set(State) - {State.DRAFT})
# Plans whose sign-off stands (approved): the return may go ahead.
APPROVED_STATES = frozenset({State.SIGNED_OFF, State.READY, State.RETURNED})


TABLE = TransitionTable("return plan", State, Action, TRANSITIONS)
# The questions every workflow asks of its table (core.workflow); InvalidTransition for a
# pair the table does not have.
transition_for = TABLE.transition_for
next_state = TABLE.next_state
actions_from = TABLE.actions_from
