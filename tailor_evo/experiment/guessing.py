"""Do a grid's final answers guess or reason? Read from how their wrong answers miss.

Accuracy alone cannot tell a model that guesses from one that reasons a little when
both sit near chance. An answer made of independent parts (KK: one role per person)
can: a blind guesser gets each part right with the task's per-part chance, so the
number of wrong parts in its well-formed answers follows a binomial distribution
and the share of right parts equals that chance. A model that reasons gets more
parts right than that, even while whole answers stay wrong.

The counts come from each cell's final evaluation (``eval_rl/results.json``, the
verifier's ``reason`` of every answer). A cell whose evaluation files were not kept
has no counts; the report says over how many cells it counted.
"""

from __future__ import annotations

from pathlib import Path

from scipy.stats import binom, binomtest, chisquare

from tailor_evo.experiment.summary import CellSummary
from tailor_evo.io import read_json
from tailor_evo.tasks.base import GuessParts


def miss_counts(task_name: str, results_path: Path) -> dict[str, list[int]]:
    """Per level, ``counts[k]`` = well-formed answers with ``k`` wrong parts, from an evaluation's
    ``results.json``; empty when the file is not there or the task's answers have no parts."""
    from tailor_evo.tasks import get_task

    task = get_task(task_name)
    if not results_path.exists():
        return {}
    counts: dict[str, list[int]] = {}
    for outcome in read_json(results_path).get("outcomes", []):
        level = int(outcome["difficulty"])
        parts = task.guess_parts(level)
        wrong = task.parts_wrong(outcome["reason"])
        if parts is None or wrong is None:
            continue
        counts.setdefault(str(level), [0] * (parts.count + 1))[wrong] += 1
    return counts


def pooled(cells: list[CellSummary], level: str) -> list[int]:
    """The cells' counts at one level, added up."""
    rows = [c.answer_misses[level] for c in cells if level in c.answer_misses]
    return [sum(col) for col in zip(*rows)] if rows else []


def parts_right_test(counts: list[int], chance: float) -> tuple[int, int, float]:
    """(right parts, all parts, one-sided p of that many right parts under blind guessing)."""
    n = len(counts) - 1
    right = sum((n - k) * c for k, c in enumerate(counts))
    total = n * sum(counts)
    return right, total, binomtest(right, total, chance, alternative="greater").pvalue


def level_line(counts: list[int], parts: GuessParts) -> str:
    """How the pooled well-formed answers of one level miss, against independent blind guesses."""
    n, answers, chance, noun = len(counts) - 1, sum(counts), parts.chance, parts.noun
    expected = [binom.pmf(k, n, 1.0 - chance) for k in range(n + 1)]
    fit_p = chisquare(counts, [e * answers for e in expected]).pvalue
    right, total, p = parts_right_test(counts, chance)
    if p < 0.05:
        verdict = f"more {noun} right than guessing"
    elif fit_p < 0.05:
        verdict = f"not independent guesses, but no more {noun} right than guessing"
    else:
        verdict = f"consistent with guessing all {noun}"
    shares = "/".join(f"{100 * c / answers:.1f}" for c in counts)
    guesses = "/".join(f"{100 * e:.1f}" for e in expected)
    return (f"{answers} answers with {'/'.join(map(str, range(n + 1)))} {noun} wrong: "
            f"{'/'.join(map(str, counts))} ({shares}%) vs independent guesses {guesses}%, chi-square p={fit_p:.2g}; "
            f"{noun} right {right}/{total} = {right / total:.3f} vs {chance:.3f}, p={p:.2g} -> {verdict}")


def guessing_lines(cells: list[CellSummary]) -> list[str]:
    """Report lines for one task and backbone: every level pooled over the cells that have counts,
    then the share of right parts per method."""
    from tailor_evo.tasks import get_task

    counted = [c for c in cells if c.answer_misses]
    if not counted:
        return []
    task = get_task(counted[0].task)
    lines = []
    for level in sorted({lv for c in counted for lv in c.answer_misses}, key=int):
        parts = task.guess_parts(int(level))
        lines.append(f"- how the well-formed final answers miss, level {level}, {_over(len(counted), len(cells))}: "
                     f"{level_line(pooled(counted, level), parts)}")
        per_method = []
        for method in sorted({c.method for c in counted}):
            counts = pooled([c for c in counted if c.method == method], level)
            if counts:
                right, total, p = parts_right_test(counts, parts.chance)
                per_method.append(f"{method} {right}/{total} = {right / total:.3f} (p={p:.2g})")
        lines.append(f"  - {parts.noun} right per method: " + "; ".join(per_method))
    return lines


def _over(counted: int, cells: int) -> str:
    if counted == cells:
        return f"all {cells} cells"
    return f"{counted} of {cells} cells (the others' evaluation files were not kept)"
