"""Executor throughput: trajectories rendered per second, per task, seed primitive and difficulty.

For every registered task that offers a move grammar and for every seed library in
``populations/seeds/<task>/``, each seed primitive is run on a batch of freshly
generated problems per difficulty level; the table reports trajectories per second
and the share that finished. Problem generation speed is reported alongside, since
the search generates its own batches.

    .venv/bin/python benchmarks/executor.py [--n 100] [--tasks igsm,kk] [--levels 2,4,6]
"""

from __future__ import annotations

import argparse
import random
import time

from tailor_evo.tasks.base import Task
from tailor_evo.tasks.registry import get_task, task_names


def seed_libraries(task: str) -> dict[str, list[dict]]:
    """Library name -> primitives of every seed library shipped for ``task`` (validated on load)."""
    from tailor_evo.populations.library import list_libraries, load_library

    return {path.stem: list(load_library(path, task)) for path in list_libraries(task)}


def has_grammar(task: Task) -> bool:
    try:
        task.grammar()
    except NotImplementedError:
        return False
    return True


def bench_task(task: Task, n: int, levels: list[int] | None, seed: int) -> None:
    levels = levels or list(task.default_levels)
    problems: dict[int, list] = {}
    print(f"\n## {task.name}  ({task.difficulty_name} levels {levels}, {n} problems each)")
    print(f"{'level':>6} {'problems/s':>11}")
    for lv in levels:
        t0 = time.perf_counter()
        problems[lv] = task.generate(n, seed, levels=[lv])
        dt = time.perf_counter() - t0
        print(f"{lv:>6} {n / dt:>11.0f}")
    header = f"{'library':<16} {'primitive':<34} " + " ".join(f"{task.difficulty_name}={lv:<3}".rjust(14)
                                                           for lv in levels)
    print("\ntrajectories/s (finished %)")
    print(header)
    for lib, prims in seed_libraries(task.name).items():
        for prim in prims:
            cells = []
            for lv in levels:
                rng = random.Random(seed)
                t0 = time.perf_counter()
                done = sum(task.execute(prim["program"], p, rng).finished for p in problems[lv])
                dt = time.perf_counter() - t0
                cells.append(f"{n / dt:>8.0f} ({100 * done // n:>3}%)")
            print(f"{lib:<16} {prim['name'][:34]:<34} " + " ".join(c.rjust(14) for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="problems per level")
    ap.add_argument("--tasks", default=None, help="comma-separated task names (default: all with a grammar)")
    ap.add_argument("--levels", default=None, help="comma-separated difficulty levels (default: the task's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = args.tasks.split(",") if args.tasks else task_names()
    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    for name in names:
        task = get_task(name)
        if not has_grammar(task):
            print(f"\n## {name}: no move grammar, skipped")
            continue
        bench_task(task, args.n, levels, args.seed)


if __name__ == "__main__":
    main()
