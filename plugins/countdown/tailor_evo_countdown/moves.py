"""The Countdown move grammar: typed building blocks of a search strategy.

A program is a ``plan``: one or more strategies, optionally preceded by a stated plan
and followed by a check. A strategy is a forward search (combine two numbers at a
time), a greedy pass, or backward chaining from the target; its arguments choose the
order in which pairs and operations are tried and how much search it may spend.
"""

from __future__ import annotations

from tailor_evo.tasks.base import Grammar, MoveSpec

# Step kinds the behaviour descriptors count.
BEHAVIOUR_KINDS = ("combine", "backtrack", "subgoal", "prune", "verify", "plan", "switch")

MOVES = [
    MoveSpec("attempt", "plan", ("strategy",), "{0}"),
    MoveSpec("fallback", "plan", ("strategy", "plan"), "{0}; if that fails within its budget, {1}"),
    MoveSpec("checked", "plan", ("plan",), "{0}, then recompute the expression and check it uses every number once"),
    MoveSpec("plan_first", "plan", ("plan",),
             "first compare the target with the numbers to decide which operations it needs, then {0}"),
    MoveSpec("forward", "strategy", ("pairs", "ops", "budget"),
             "combine two numbers at a time, trying {0} and {1}, backtracking from dead ends with {2}"),
    MoveSpec("greedy", "strategy", ("pairs", "ops"), "combine two numbers at a time without going back, taking {0} and {1}"),
    MoveSpec("backward", "strategy", ("pairs", "ops", "budget"),
             "work backward from the target: peel off one number at a time ({0}, {1}) and set the rest a smaller "
             "target, with {2}"),
    MoveSpec("pair_largest", "pairs", (), "the largest numbers first"),
    MoveSpec("pair_smallest", "pairs", (), "the smallest numbers first"),
    MoveSpec("pair_in_order", "pairs", (), "the numbers in the order given"),
    MoveSpec("pair_near_target", "pairs", (), "the numbers closest to the target first"),
    MoveSpec("op_add_first", "ops", (), "addition before the other operations"),
    MoveSpec("op_mul_first", "ops", (), "multiplication before the other operations"),
    MoveSpec("op_sub_first", "ops", (), "subtraction and division before addition and multiplication"),
    MoveSpec("op_toward_target", "ops", (), "the operation whose result lands closest to the target"),
    MoveSpec("budget_small", "budget", (), "a small budget of steps"),
    MoveSpec("budget_large", "budget", (), "a large budget of steps"),
    MoveSpec("budget_pruned", "budget", (), "a large budget, abandoning any value far above the target"),
]

GRAMMAR = Grammar("countdown", "plan", MOVES)
