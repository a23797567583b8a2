"""The verifiers' fuzz suite in numbers: adversarial answers drawn per task, and how each was judged.

Draws the same cases as ``tests/test_answer_fuzz.py`` (the mutations of
``tests/answer_mutations.py``), reproducibly, and prints per task and mutation how many
were drawn, what they mean (``same``: the gold answer in an allowed form; ``other``:
something else; ``outside``: beyond the answer grammar) and how the verifier judged
them: scored right, or refused by reason kind. An outcome marked ``WRONG`` is judged
against the case's meaning (an adversarial answer scored right, an allowed form refused) or
loses the format that every case keeps (a verifier error does). Exit status 1 if any is.

    .venv/bin/python benchmarks/answer_fuzz.py [--n 2000] [--tasks kk,igsm,countdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root, for tests/

from tailor_evo.tasks import get_task  # noqa: E402
from tests.answer_mutations import CASES, SAME, Case  # noqa: E402


def tally(task_name: str, n: int) -> tuple[Counter, Counter, float]:
    """(per (kind, label): count, per (kind, label, outcome): count, seconds) for ``n`` drawn cases."""
    task = get_task(task_name)
    strategy, _ = CASES[task_name]
    drawn: Counter = Counter()
    outcomes: Counter = Counter()

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def draw(case: Case) -> None:
        verdict = task.verify(case.problem, case.completion)
        outcome = "scored right" if verdict.correct else task.reason_kind(verdict.reason)
        bad = verdict.correct != (case.label == SAME) or not verdict.format_ok
        drawn[case.kind, case.label] += 1
        outcomes[case.kind, case.label, outcome, bad] += 1

    t0 = time.perf_counter()
    draw()
    return drawn, outcomes, time.perf_counter() - t0


def report(task_name: str, n: int) -> int:
    """Print one task's table; return how many cases were judged against their meaning."""
    drawn, outcomes, seconds = tally(task_name, n)
    total, wrong = sum(drawn.values()), sum(c for (_, _, _, bad), c in outcomes.items() if bad)
    labels = Counter()
    for (_, label), c in drawn.items():
        labels[label] += c
    print(f"\n## {task_name}: {total} cases in {seconds:.1f} s "
          f"({', '.join(f'{lab} {c}' for lab, c in sorted(labels.items()))}); judged against their meaning: {wrong}")
    for (kind, label), count in sorted(drawn.items()):
        judged = sorted(((o, c, bad) for (k, lab, o, bad), c in outcomes.items() if (k, lab) == (kind, label)),
                        key=lambda t: -t[1])
        parts = ", ".join(f"{o} {c}" + (" WRONG" if bad else "") for o, c, bad in judged)
        print(f"  {kind:<20} {label:<8} {count:>5}  {parts}")
    return wrong


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="cases drawn per task")
    ap.add_argument("--tasks", default=",".join(sorted(CASES)), help="comma-separated task names")
    args = ap.parse_args()
    wrong = sum(report(name, args.n) for name in args.tasks.split(","))
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
