"""Making Countdown problems (solvable by construction) and the exhaustive solver.

A problem is ``k`` source numbers and a target. The generator draws the numbers, then
combines two at a time with a random operation until one value is left: that value is
the target, and the combination is a known solution. Intermediate values stay positive
integers (divisions are exact), as in the game, so every problem has such a solution;
the solver searches the same space.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from tailor_evo_countdown.arith import Expr


@dataclass(frozen=True)
class GenOptions:
    max_number: int = 25       # source numbers are drawn from 1..max_number
    max_target: int = 200      # targets above this are redrawn
    max_tries: int = 200


class GenerationError(RuntimeError):
    pass


def legal_moves(a: Expr, b: Expr) -> list[Expr]:
    """Every positive-integer result of combining ``a`` and ``b`` (both orders where it matters)."""
    x, y = a.value, b.value
    out = [Expr.combine(a, "+", b), Expr.combine(a, "*", b)]
    if x > y:
        out.append(Expr.combine(a, "-", b))
    elif y > x:
        out.append(Expr.combine(b, "-", a))
    if y != 0 and (x / y).denominator == 1:
        out.append(Expr.combine(a, "/", b))
    if x != 0 and x != y and (y / x).denominator == 1:
        out.append(Expr.combine(b, "/", a))
    return out


def generate_problem(rng: random.Random, k: int, opts: GenOptions) -> tuple[list[int], int, Expr]:
    """(numbers, target, one solution) with ``k`` numbers; the target is not one of the numbers."""
    for _ in range(opts.max_tries):
        numbers = [rng.randint(1, opts.max_number) for _ in range(k)]
        items = [Expr.number(n) for n in numbers]
        while len(items) > 1:
            i, j = rng.sample(range(len(items)), 2)
            a, b = items[i], items[j]
            items = [e for t, e in enumerate(items) if t not in (i, j)]
            items.append(rng.choice(legal_moves(a, b)))
        target = items[0].value
        if 1 < target <= opts.max_target and target not in numbers:
            return numbers, int(target), items[0]
    raise GenerationError(f"no {k}-number problem with a target in 2..{opts.max_target} "
                          f"after {opts.max_tries} tries")


def solve(numbers: list[int], target: int) -> Expr | None:
    """An expression that uses every number once and equals ``target`` (positive integer
    intermediates), or None. Exhaustive over pair combinations, with failed multisets memoised."""
    failed: set[tuple[Fraction, ...]] = set()

    def search(items: list[Expr]) -> Expr | None:
        if len(items) == 1:
            return items[0] if items[0].value == target else None
        key = tuple(sorted(e.value for e in items))
        if key in failed:
            return None
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                rest = items[:i] + items[i + 1:j] + items[j + 1:]
                for combined in legal_moves(items[i], items[j]):
                    found = search(rest + [combined])
                    if found is not None:
                        return found
        failed.add(key)
        return None

    return search([Expr.number(n) for n in numbers])
