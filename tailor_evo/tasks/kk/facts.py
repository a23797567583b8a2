"""Machine-checkable facts that executor steps claim, and their checker.

Each step of a trajectory carries a small JSON fact; ``check_fact`` decides it
from the statements and the unique solution alone, so tests (and users) can
confirm that a trajectory never asserts something false. Facts made under a
hypothesis are stated as entailments (``given`` partial assignment), which are
true whatever the hypothesis.

Partial assignments are JSON objects ``{"<person index>": true|false}``. The explicit
rendering's facts are about the written three-valued evaluation (:mod:`kleene`):
``value3`` (a claim's value under ``given``), ``refutes`` (that value contradicts the
speaker's role, which the exact check must confirm) and ``open3`` (no listed claim is
contradicted yet).
"""

from __future__ import annotations

from typing import Any, Sequence

from tailor_evo.tasks.kk.kleene import CONTRADICTION, value3, verdict, word
from tailor_evo.tasks.kk.logic import Puzzle, evaluate, mentions, size, to_json


def given_of(fact: dict) -> dict[int, bool]:
    return {int(k): bool(v) for k, v in fact.get("given", {}).items()}


def enc(partial: dict[int, bool]) -> dict[str, bool]:
    return {str(k): v for k, v in sorted(partial.items())}


def check_fact(puzzle: Puzzle, solution: Sequence[bool], fact: dict[str, Any]) -> bool:
    """True iff the fact holds for this puzzle (whose unique solution is ``solution``)."""
    kind = fact.get("type")
    if kind == "all":
        return all(check_fact(puzzle, solution, f) for f in fact["facts"])
    if kind == "statement":
        return to_json(puzzle.statements[fact["person"]]) == fact["tree"]
    if kind == "role":
        return bool(solution[fact["person"]]) == fact["knight"]
    if kind == "solution":
        return [bool(x) for x in solution] == list(fact["roles"])
    if kind == "claim":
        return evaluate(puzzle.statements[fact["person"]], solution) == fact["value"]
    g = given_of(fact)
    pm = puzzle.partial_mask(g)
    if kind == "sat":
        return all(puzzle.claim_mask(k, g[k]) & pm for k in fact["people"])
    if kind == "unsat":
        q = fact["person"]
        return q in g and not puzzle.claim_mask(q, g[q]) & pm
    if kind == "value3":
        return fact["person"] in g and word(value3(puzzle.statements[fact["person"]], g)) == fact["value"]
    if kind == "refutes":
        q = fact["person"]
        return q in g and verdict(g[q], value3(puzzle.statements[q], g)) == CONTRADICTION \
            and not puzzle.claim_mask(q, g[q]) & pm
    if kind == "open3":
        return all(k in g and verdict(g[k], value3(puzzle.statements[k], g)) != CONTRADICTION
                   for k in fact["people"])
    if kind == "infeasible":
        return not pm & puzzle.solutions_mask()
    if kind == "entails":
        m = pm
        for k in fact["using"]:
            if k not in g:
                return False
            m &= puzzle.consistent[k]
        return m != 0 and not m & puzzle.role_mask(fact["person"], not fact["knight"])
    if kind == "candidate":
        if len(g) != puzzle.n:
            return False
        roles = [g[i] for i in range(puzzle.n)]
        if fact["consistent"]:
            return list(solution) == roles
        k = fact["person"]
        return evaluate(puzzle.statements[k], roles) != roles[k]
    if kind == "mentions":
        ment = mentions(puzzle.statements[fact["person"]])
        return all(j in ment for j in fact["about"])
    if kind == "referenced":
        j = fact["person"]
        count = sum(1 for i, s in enumerate(puzzle.statements) if i != j and j in mentions(s))
        return count == fact["count"]
    if kind == "size":
        return size(puzzle.statements[fact["person"]]) == fact["leaves"]
    return False
