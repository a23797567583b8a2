"""The public data's rule-based chain of thought: a depth-first search with backtracking.

Written directly from the procedure (not via the move executor) so that the
rule-based seed primitive, which runs through the executor, can be checked
against an independent implementation.
"""

from __future__ import annotations

from typing import Sequence

from tailor_evo.tasks.kk import text as T
from tailor_evo.tasks.kk.logic import Puzzle, mentions


def rule_based_steps(puzzle: Puzzle, names: Sequence[str]) -> tuple[list[str], bool]:
    """The CoT's repeated steps and whether the search succeeded."""
    n = puzzle.n
    steps: list[str] = []
    assigned: dict[int, bool] = {}
    clauses = [T.clause(s, names) for s in puzzle.statements]

    def contradicted(mask: int) -> int | None:
        for i in sorted(assigned):
            if not puzzle.claim_mask(i, assigned[i]) & mask:
                return i
        return None

    def search(order: list[int]) -> list[int] | None:
        """None on success, else the people exhausted on the way back up."""
        if not order:
            return None
        p = order[0]
        for knight in (True, False):
            assigned[p] = knight
            q = contradicted(puzzle.partial_mask(assigned))
            if q is not None:
                claimant = "their own" if q == p else names[q]
                steps.append(T.cot_conflict(names[p], knight, claimant, assigned[q], clauses[q]))
                continue
            steps.append(T.cot_ok(names[p], knight, clauses[p]))
            front = [j for j in mentions(puzzle.statements[p]) if j not in assigned]
            rest = front + [j for j in order[1:] if j not in front]
            failed = search(rest)
            if failed is None:
                return None
            if knight:
                steps.append(T.cot_backtrack([names[j] for j in failed], names[p]))
            else:
                del assigned[p]
                return failed + [p]
        del assigned[p]
        return [p]

    ok = search(list(range(n))) is None
    return steps, ok


def rule_based_cot(puzzle: Puzzle, names: Sequence[str]) -> str:
    steps, ok = rule_based_steps(puzzle, names)
    return " ".join([T.COT_HEAD] + steps + [T.COT_FOOT_OK if ok else T.COT_FOOT_FAIL])
