"""Task throughput: problems generated per second per difficulty level, for every registered task.

Also reports how fast the reference solution is rendered and a reference
completion verified, since data building and RL rewards call those per sample.

    .venv/bin/python benchmarks/tasks.py [--n 200] [--tasks kk,igsm] [--levels 3,5,7] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from tailor_evo.tasks.registry import get_task, task_names


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10.0f}" if seconds > 0 else f"{'inf':>10}"


def bench(name: str, n: int, levels: list[int] | None, seed: int) -> None:
    task = get_task(name)
    levels = levels or list(task.default_levels)
    print(f"\n## {name}  ({n} problems per {task.difficulty_name} level)")
    print(f"{task.difficulty_name:>8} {'generate/s':>10} {'reference/s':>11} {'verify/s':>10}")
    for lv in levels:
        t0 = time.perf_counter()
        problems = task.generate(n, seed, levels=[lv])
        t1 = time.perf_counter()
        completions = [task.reference_completion(p) for p in problems]
        t2 = time.perf_counter()
        correct = sum(task.verify(p, c).correct for p, c in zip(problems, completions))
        t3 = time.perf_counter()
        note = "" if correct == n else f"  ({n - correct} reference completions NOT verified correct)"
        print(f"{lv:>8} {rate(n, t1 - t0)} {rate(n, t2 - t1):>11} {rate(n, t3 - t2)}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="problems per level")
    ap.add_argument("--tasks", default=None, help="comma-separated task names (default: all registered)")
    ap.add_argument("--levels", default=None, help="comma-separated levels (default: each task's own)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    for name in (args.tasks.split(",") if args.tasks else task_names()):
        bench(name, args.n, levels, args.seed)


if __name__ == "__main__":
    main()
