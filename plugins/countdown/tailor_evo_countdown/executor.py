"""Running a move program on a problem: a trajectory of reasoning steps and an answer.

Each step says what was done in words and records the state it reaches (the values
left and the goal), so that coverage can count distinct reasoning states. The search
is real: a forward search backtracks from dead ends, backward chaining sets subgoals
and abandons them, and a budget bounds each strategy. A strategy that runs out of
budget leaves the trajectory unfinished unless a fallback finds the answer.

Two renderings write the same steps (:data:`RENDERINGS`). ``compact`` states a
decision without the numbers it rests on ("far above the target", "needs a product",
"make 12 from ..."). ``explicit`` (the default) writes them first: the bound a value is
compared with and how it is made, the running sum a plan compares the target with,
the operation that gives a backward subgoal, and each given number ticked off in a
check, so that every decision is one comparison or one operation away from what
precedes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tailor_evo.tasks.base import Problem, Step, Trajectory
from tailor_evo_countdown.arith import Expr, show
from tailor_evo_countdown.generator import legal_moves

BUDGETS = {"budget_small": 6, "budget_large": 40, "budget_pruned": 40}
EXPLICIT, COMPACT = "explicit", "compact"
RENDERINGS = (EXPLICIT, COMPACT)
OP_ORDERS = {"op_add_first": "+*-/", "op_mul_first": "*+-/", "op_sub_first": "-/+*"}


class _OutOfSteps(Exception):
    pass


@dataclass
class _Run:
    target: int
    numbers: list[int]
    max_steps: int
    steps: list[Step] = field(default_factory=list)
    explicit: bool = True

    def bound(self) -> int:
        """Values above this are "far above" the target (pruned searches abandon them)."""
        return 3 * self.target + max(self.numbers)

    def bound_text(self, value: Fraction) -> str:
        """Why a value is far above the target: the bound, made one operation at a time."""
        t3 = 3 * self.target
        return (f"3 * {self.target} = {t3}, {t3} + {max(self.numbers)} = {self.bound()}, and "
                f"{show(value)} > {self.bound()}")

    def add(self, text: str, values: list[Fraction], kind: str, goal: Fraction | None = None) -> None:
        if len(self.steps) >= self.max_steps:
            raise _OutOfSteps
        goal = self.target if goal is None else goal
        state = f"left {', '.join(show(v) for v in sorted(values))}; goal {show(goal)}"
        self.steps.append(Step(text=text, state=state, key=f"{sorted(values)}|{goal}", kind=kind))


# ---- orderings -----------------------------------------------------------------------

def _pair_key(kind: str, target: int):
    def key(pair: tuple[Expr, Expr]) -> Any:
        a, b = pair[0].value, pair[1].value
        if kind == "pair_largest":
            return -(a + b)
        if kind == "pair_smallest":
            return a + b
        if kind == "pair_near_target":
            return min(abs(a - target), abs(b - target))
        return 0        # in order: a stable sort keeps the given order
    return key


def _ordered_moves(items: list[Expr], pairs: str, ops: str, target: Fraction) -> list[tuple[int, int, Expr]]:
    """Every (i, j, combined) from the current values, in the order the program asks for."""
    idx = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
    idx.sort(key=lambda ij: _pair_key(pairs, int(target))((items[ij[0]], items[ij[1]])))
    out = []
    for i, j in idx:
        results = legal_moves(items[i], items[j])
        if ops == "op_toward_target":
            results.sort(key=lambda e: abs(e.value - target))
        else:
            order = OP_ORDERS[ops]
            results.sort(key=lambda e: order.index(e.op))
        out.extend((i, j, e) for e in results)
    return out


# ---- strategies ----------------------------------------------------------------------

def _forward(run: _Run, node: dict, backtrack: bool) -> Expr | None:
    pairs, ops = node["args"][0]["op"], node["args"][1]["op"]
    budget_name = node["args"][2]["op"] if backtrack else None
    budget = [BUDGETS.get(budget_name, 10**9) if backtrack else 10**9]
    bound = 3 * run.target + max(run.numbers)

    def search(items: list[Expr]) -> Expr | None:
        values = [e.value for e in items]
        if len(items) == 1:
            if items[0].value == run.target:
                run.add(f"{items[0].text()} = {run.target}, the target.", values, "combine")
                return items[0]
            run.add(f"Dead end: {show(items[0].value)} is not {run.target}.", values, "backtrack")
            return None
        for i, j, combined in _ordered_moves(items, pairs, ops, Fraction(run.target)):
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            rest = [e for t, e in enumerate(items) if t not in (i, j)] + [combined]
            a, b = combined.left.value, combined.right.value
            run.add(f"{show(a)} {combined.op} {show(b)} = {show(combined.value)}; left: "
                    f"{', '.join(show(e.value) for e in rest)}.", [e.value for e in rest], "combine")
            if budget_name == "budget_pruned" and combined.value > bound:
                why = f"{run.bound_text(combined.value)}: " if run.explicit else ""
                run.add(f"{why}{show(combined.value)} is far above {run.target}; abandon it.",
                        [e.value for e in rest], "prune")
                continue
            found = search(rest)
            if found is not None:
                return found
            if not backtrack:
                return None
            run.add(f"Back to {', '.join(show(v) for v in values)}.", values, "backtrack")
        return None

    return search([Expr.number(n) for n in run.numbers])


def _backward(run: _Run, node: dict) -> Expr | None:
    """Peel off one number n and an operation, and make the subgoal from the others:
    rest + n = g gives rest = g - n; rest - n = g gives g + n; n - rest = g gives n - g;
    rest * n = g gives g / n; rest / n = g gives g * n."""
    pairs, ops, budget_name = (a["op"] for a in node["args"])
    budget = [BUDGETS[budget_name]]
    bound = 3 * run.target + max(run.numbers)

    def subgoals(n: Fraction, goal: Fraction) -> list[tuple[str, Fraction, str]]:
        cands = [("+", goal - n, "rest + n"), ("-", goal + n, "rest - n"), ("-", n - goal, "n - rest"),
                 ("*", goal / n, "rest * n"), ("/", goal * n, "rest / n")]
        cands = [c for c in cands if c[1] > 0 and c[1].denominator == 1]
        if ops == "op_toward_target":
            cands.sort(key=lambda c: abs(c[1] - goal))
        else:
            order = OP_ORDERS[ops]
            cands.sort(key=lambda c: order.index(c[0]))
        return cands

    def search(items: list[Expr], goal: Fraction) -> Expr | None:
        values = [e.value for e in items]
        if len(items) == 1:
            ok = items[0].value == goal
            run.add(f"{show(items[0].value)} {'is' if ok else 'is not'} {show(goal)}.", values,
                    "subgoal" if ok else "backtrack", goal)
            return items[0] if ok else None
        order = sorted(range(len(items)), key=lambda t: _pair_key(pairs, int(goal))((items[t], items[t])))
        for t in order:
            n, rest = items[t], items[:t] + items[t + 1:]
            for op, sub, form in subgoals(n.value, goal):
                if budget[0] <= 0:
                    return None
                budget[0] -= 1
                rest_values = [e.value for e in rest]
                if budget_name == "budget_pruned" and sub > bound:
                    why = f"{run.bound_text(sub)}: " if run.explicit else ""
                    run.add(f"{why}Making {show(sub)} is far above the target; skip it.", rest_values, "prune", sub)
                    continue
                made = f"{_SUBGOAL_OF[form].format(g=show(goal), n=show(n.value))} = {show(sub)}" if run.explicit \
                    else show(sub)
                run.add(f"To make {show(goal)} as {form.replace('n', show(n.value))}, make {made} from "
                        f"{', '.join(show(v) for v in rest_values)}.", rest_values, "subgoal", sub)
                found = search(rest, sub)
                if found is not None:
                    return (Expr.combine(n, op, found) if form == "n - rest" else Expr.combine(found, op, n))
                run.add(f"{show(sub)} cannot be made; back to making {show(goal)}.", values, "backtrack", goal)
        return None

    return search([Expr.number(n) for n in run.numbers], Fraction(run.target))


# the operation that turns a goal into the subgoal for the rest (goal g, peeled number n)
_SUBGOAL_OF = {"rest + n": "{g} - {n}", "rest - n": "{g} + {n}", "n - rest": "{n} - {g}",
               "rest * n": "{g} / {n}", "rest / n": "{g} * {n}"}


def _strategy(run: _Run, node: dict) -> Expr | None:
    op = node["op"]
    if op == "forward":
        return _forward(run, node, backtrack=True)
    if op == "greedy":
        return _forward(run, node, backtrack=False)
    if op == "backward":
        return _backward(run, node)
    raise ValueError(f"unknown strategy {op!r}")


def _plan(run: _Run, node: dict) -> Expr | None:
    op = node["op"]
    if op == "attempt":
        return _strategy(run, node["args"][0])
    if op == "fallback":
        found = _strategy(run, node["args"][0])
        if found is not None:
            return found
        run.add("That did not work; start again another way.", [Fraction(n) for n in run.numbers], "switch")
        return _plan(run, node["args"][1])
    if op == "checked":
        found = _plan(run, node["args"][0])
        if found is not None:
            parts = "; ".join(f"{show(a)} {o} {show(b)} = {show(c)}" for a, o, b, c in found.steps())
            used = sorted(found.literals()) == sorted(run.numbers)
            if run.explicit:     # each given number ticked off against the expression, one at a time
                ticks = ", ".join(f"{n} used" for n in run.numbers)
                run.add(f"Check {found.text()}: {parts}. Numbers: {ticks}"
                        f"{', so each number once' if used else ''}.", [found.value], "verify")
            else:
                run.add(f"Check {found.text()}: {parts}. It uses {', '.join(map(str, found.literals()))}"
                        f"{', each number once' if used else ''}.", [found.value], "verify")
        return found
    if op == "plan_first":
        big = max(run.numbers)
        total = sum(run.numbers)
        if run.explicit:     # the sum the target is compared with, one addition at a time
            sums, acc = [], run.numbers[0]
            for n in run.numbers[1:]:
                sums.append(f"{acc} + {n} = {acc + n}")
                acc += n
            need = (f"{run.target} > {total}, so it needs a product" if run.target > total
                    else f"{run.target} <= {total}, so sums and differences can reach it")
            run.add(f"Plan: {run.target} from {', '.join(map(str, run.numbers))}. They sum to {', '.join(sums)}; "
                    f"{need}.", [Fraction(n) for n in run.numbers], "plan")
        else:
            need = ("a product, since it is larger than every number" if run.target > total
                    else "sums and differences, since it is within their reach")
            run.add(f"Plan: {run.target} from {', '.join(map(str, run.numbers))} (largest {big}) needs {need}.",
                    [Fraction(n) for n in run.numbers], "plan")
        return _plan(run, node["args"][0])
    raise ValueError(f"unknown plan move {op!r}")


def execute(program: dict, problem: Problem, rng: random.Random, max_steps: int = 400,
            rendering: str = EXPLICIT) -> Trajectory:
    """Run ``program`` on ``problem``; never raises (an unusable program gives an unfinished trajectory).

    ``rendering`` (one of :data:`RENDERINGS`) changes what the steps write, never which run.
    """
    if rendering not in RENDERINGS:
        raise ValueError(f"unknown rendering {rendering!r} (known: {', '.join(RENDERINGS)})")
    run = _Run(target=int(problem.meta["target"]), numbers=[int(n) for n in problem.meta["numbers"]],
               max_steps=max_steps, explicit=rendering == EXPLICIT)
    try:
        found = _plan(run, program)
    except _OutOfSteps:
        return Trajectory(run.steps, None, False, "", "step budget")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return Trajectory(run.steps, None, False, "", f"bad program: {type(exc).__name__}")
    if found is None:
        return Trajectory(run.steps, None, False, "", "no solution within budget")
    reasoning = " ".join(s.text for s in run.steps)
    answer = found.text()
    completion = f"<think> {reasoning} </think> <answer> {answer} </answer>"
    return Trajectory(run.steps, answer, True, completion)
