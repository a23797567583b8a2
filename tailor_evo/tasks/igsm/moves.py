"""The typed move grammar of iGSM strategies.

A program is ``primitive(Style, Phase)``: a wording style and a plan of phases run
one after another on a shared reasoning state (which parameters are known, which
are identified as needed, which goals are open). Phases differ in the states they
visit: listing the stated values first, chaining backwards from the question,
depth-first subgoals, forward computation over ready parameters chosen by a
heuristic (over the needed parameters or over everything, with or without pruning
or abandoning branches), and verification by re-computation. The ``Arith`` argument
says how a single parameter is computed: binary steps with named intermediates,
steps with explicit modular reduction, or one expression; ``checked`` adds a
re-computation after each parameter.

Every argument type has at least one terminal, and names are unique, so the
grammar converts directly to DEAP's ``PrimitiveSetTyped``.
"""

from __future__ import annotations

from tailor_evo.tasks.base import Grammar, MoveSpec

ROOT = "Primitive"

MOVES: list[MoveSpec] = [
    MoveSpec("primitive", ROOT, ("Style", "Phase"), "Strategy: {1}. Write the reasoning {0}."),
    # styles (wording only)
    MoveSpec("style_reference", "Style", (), "as 'Define <quantity> as x; so x = ...' sentences with letter symbols"),
    MoveSpec("style_plain", "Style", (), "plainly, naming every quantity in each equation"),
    MoveSpec("style_explain", "Style", (), "as a spoken explanation of each step"),
    MoveSpec("style_terse", "Style", (), "tersely, one short equation per step"),
    # phases
    MoveSpec("then", "Phase", ("Phase", "Phase"), "{0}; then {1}"),
    MoveSpec("list_givens", "Phase", (), "list every value the problem states directly"),
    MoveSpec("trace_back", "Phase", (),
             "chain backwards from the question to every quantity it depends on"),
    MoveSpec("solve_forward", "Phase", (),
             "compute the quantities the question needs, in the order the problem mentions them, "
             "one binary operation at a time"),
    MoveSpec("check_answer", "Phase", (), "re-compute the final answer to verify it"),
    MoveSpec("list_values", "Phase", ("Scope",), "list the directly stated values of {0}"),
    MoveSpec("backward", "Phase", ("Order",),
             "chain backwards from the question, expanding needed quantities {0}"),
    MoveSpec("compute", "Phase", ("Scope", "Order", "Arith"),
             "compute {0} forward as soon as their inputs are known, taking ready ones {1}, {2}"),
    MoveSpec("depth_first", "Phase", ("Arith",),
             "go depth-first from the question and compute each needed quantity right before "
             "the quantity that uses it, {0}"),
    MoveSpec("subgoals", "Phase", ("Arith",),
             "make the question the goal, split every goal into subgoals for its unknown inputs and "
             "solve each subgoal before returning to its parent, {0}"),
    MoveSpec("prune_forward", "Phase", ("Order", "Arith"),
             "work forward over all quantities {0}, but before computing one check whether the question "
             "depends on it and skip it if not, {1}"),
    MoveSpec("explore_backtrack", "Phase", ("Order", "Arith"),
             "work forward over all quantities {0}, {1}; when a computed quantity turns out to be "
             "unnecessary for the question, abandon that branch"),
    MoveSpec("verify", "Phase", ("Target",), "verify {0} by re-computing it from its inputs"),
    # scopes
    MoveSpec("scope_all", "Scope", (), "every quantity in the problem"),
    MoveSpec("scope_needed", "Scope", (), "only the quantities the question needs"),
    # choice heuristics among ready parameters
    MoveSpec("by_text", "Order", (), "in the order the problem mentions them"),
    MoveSpec("by_fewest_inputs", "Order", (), "with the fewest inputs first"),
    MoveSpec("by_most_used", "Order", (), "that the most other quantities use first"),
    MoveSpec("by_nearest_question", "Order", (), "closest to the question first"),
    MoveSpec("by_random", "Order", (), "in random order"),
    MoveSpec("announce", "Order", ("Order",), "{0}, saying which ones are ready and which is chosen"),
    # arithmetic
    MoveSpec("binary", "Arith", (), "one binary operation at a time with a named variable for each intermediate"),
    MoveSpec("mod_steps", "Arith", (),
             "one binary operation at a time, writing the raw result and then reducing it modulo 23"),
    MoveSpec("direct", "Arith", (), "each in a single expression"),
    MoveSpec("checked", "Arith", ("Arith",), "{0}, and re-compute each quantity right away to check it"),
    # verification targets
    MoveSpec("target_answer", "Target", (), "the answer"),
    MoveSpec("target_all", "Target", (), "every computed quantity"),
]

GRAMMAR = Grammar(task="igsm", root=ROOT, moves=MOVES)

# Step kinds the executor writes; the first group are the behaviours worth counting.
BEHAVIOUR_KINDS: tuple[str, ...] = ("list", "backward", "subgoal", "define", "reduce", "verify", "choose",
                                    "backtrack")
STEP_KINDS: tuple[str, ...] = BEHAVIOUR_KINDS + ("compute", "conclude", "restate", "quote")

STYLES = ("style_reference", "style_plain", "style_explain", "style_terse")
