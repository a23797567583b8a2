"""The typed move grammar of Knights-and-Knaves strategies.

A program is ``primitive(Style, Strategy)``. A strategy is a chain of phases
ending in a conclusion, so programs compose like sentences:
``then(restate_claims(order_given), then(split(order_mentioned, knight_first, check_claims), verify_conclude))``.
Phases differ in the reasoning states they visit (what is assumed, what is
derived, in which order), not just in wording; the style changes only wording.
Every argument type has at least one terminal so that DEAP's strongly typed
generators can always complete a tree.
"""

from __future__ import annotations

from tailor_evo.tasks.base import Grammar, MoveSpec

STYLES = ("style_classic", "style_terse", "style_formal", "style_chatty")
ORDERS = ("order_given", "order_mentioned", "order_most_referenced", "order_self_first", "order_shortest")

MOVES: list[MoveSpec] = [
    MoveSpec("primitive", "Primitive", ("Style", "Strategy"), "{1}. Write the reasoning in {0}."),
    # wording styles
    MoveSpec("style_classic", "Style", (), "the plain wording of the standard worked solutions"),
    MoveSpec("style_terse", "Style", (), "short, note-like sentences"),
    MoveSpec("style_formal", "Style", (), "formal logic notation (K(x) means x is a knight)"),
    MoveSpec("style_chatty", "Style", (), "a conversational first-person voice"),
    # strategies
    MoveSpec("then", "Strategy", ("Phase", "Strategy"), "{0}; then {1}"),
    MoveSpec("conclude", "Strategy", (), "state each person's role once all are known"),
    MoveSpec("verify_conclude", "Strategy", (),
             "verify every claim against the final assignment before stating each person's role"),
    # phases
    MoveSpec("restate_claims", "Phase", ("Order",), "restate every claim in logical form ({0})"),
    MoveSpec("propagate", "Phase", (), "draw every consequence of the roles already known"),
    MoveSpec("eliminate", "Phase", ("Order",),
             "go through the undecided people ({0}) and rule out any role that immediately contradicts a claim"),
    MoveSpec("refute", "Phase", ("Order",),
             "for each undecided person ({0}), assume a role, chain its consequences, and eliminate the role "
             "if a contradiction appears"),
    MoveSpec("backward", "Phase", ("Order",),
             "chain backward: pick a person whose role is needed ({0}), first settle the people who talk about "
             "them, then derive their role"),
    MoveSpec("plan", "Phase", ("Order",),
             "set subgoals: settle the undecided people one at a time ({0}), each by refutation"),
    MoveSpec("split", "Phase", ("Order", "Role", "Check"),
             "search by cases ({0}), trying {1}; after each assumption {2}; on a contradiction try the other "
             "role and backtrack when both fail"),
    MoveSpec("enumerate", "Phase", ("Order",),
             "enumerate every complete assignment of the undecided people ({0}) and test it against all claims"),
    # parameters
    MoveSpec("order_given", "Order", (), "in the order given"),
    MoveSpec("order_mentioned", "Order", (), "next the people the last accepted claim mentions"),
    MoveSpec("order_most_referenced", "Order", (), "most talked-about person first"),
    MoveSpec("order_self_first", "Order", (), "people who talk about themselves first"),
    MoveSpec("order_shortest", "Order", (), "shortest claim first"),
    MoveSpec("knight_first", "Role", (), "knight first"),
    MoveSpec("knave_first", "Role", (), "knave first"),
    MoveSpec("check_claims", "Check", (), "check every assigned person's claim"),
    MoveSpec("check_forward", "Check", (), "propagate the consequences to the others"),
]

GRAMMAR = Grammar(task="kk", root="Primitive", moves=MOVES)

# Step kinds counted by behaviour descriptors: case splits, backtracking, elimination, and the
# four habits (verification, subgoals, backward chaining; backtracking again). Kept short on
# purpose: each one is a dimension of the search's behaviour grid.
BEHAVIOUR_KINDS: tuple[str, ...] = ("assume", "backtrack", "eliminate", "verify", "subgoal", "backward")
# Every kind the executor emits.
STEP_KINDS: tuple[str, ...] = BEHAVIOUR_KINDS + ("restate", "propagate", "check", "conflict", "enumerate",
                                                 "choose", "conclude")
