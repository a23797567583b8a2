"""The problem streams: which problems each stage draws from one run seed (the one home of them).

Every stage draws from its own named stream, a split of the run seed
(:func:`~tailor_evo.tasks.base.split_seed`), so no two stages share a generator; the
stages that must not overlap still check it by question text, because two streams can
draw the same small puzzle.

Two shapes:

- :func:`flat` — one generator call over the levels: the search pool, probe and report
  problems, the RL pool, the held-out problems trainers evaluate on while they train,
  and the pretraining probe;
- :func:`per_level` — each level from its own sub-stream, so that asking for more levels
  or more problems never changes another level's problems: the evaluation sets
  (:func:`eval_problems`) and the warm-start problems (:func:`training_problems`).
"""

from __future__ import annotations

from collections.abc import Sequence

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Problem, Task, split_seed

# the streams, by the stage that draws them
STREAMS = ("search", "search-probe", "search-report", "warmstart", "rl", "eval", "pretrain-probe")


# the streams whose problems models are trained on: drawn with the task's training options
TRAINING_STREAMS = ("warmstart", "rl")


def _options(task: Task, name: str) -> dict:
    return task.training_options() if name in TRAINING_STREAMS else {}


def _check(name: str) -> None:
    if name not in STREAMS:   # a misspelt name would silently be a new, unchecked stream
        raise ValueError(f"unknown problem stream {name!r} (known: {', '.join(STREAMS)})")


def _levels(task: Task, levels: Sequence[int] | None) -> list[int]:
    levels = list(levels) if levels else list(task.default_levels)
    if not levels:
        raise InputError(f"task {task.name!r} has no default levels; pass levels", field="levels")
    return levels


def flat(task: Task, seed: int, name: str, n: int, levels: Sequence[int] | None = None) -> list[Problem]:
    """``n`` problems of stream ``name`` in one call over ``levels`` (the task's own mix when None)."""
    _check(name)
    return task.generate(n, split_seed(seed, name), list(levels) if levels else None, **_options(task, name))


def per_level(task: Task, seed: int, name: str, counts: Sequence[tuple[int, int]]) -> list[Problem]:
    """``count`` problems of each ``(level, count)``, each level from its own sub-stream of ``name``."""
    _check(name)
    base = split_seed(seed, name)
    out: list[Problem] = []
    for level, count in counts:
        if count:
            out.extend(task.generate(count, split_seed(base, f"level-{level}"), [level], **_options(task, name)))
    return out


def eval_problems(task: Task, seed: int, levels: Sequence[int] | None = None, n_per_level: int = 50) -> list[Problem]:
    """``n_per_level`` evaluation problems for each level (the task's default levels when None)."""
    return per_level(task, seed, "eval", [(level, n_per_level) for level in _levels(task, levels)])


def training_problems(task: Task, seed: int, n: int, levels: Sequence[int] | None = None) -> list[Problem]:
    """``n`` warm-start problems, spread evenly over ``levels`` (the first levels get the remainder)."""
    levels = _levels(task, levels)
    return per_level(task, seed, "warmstart",
                     [(lv, n // len(levels) + (1 if i < n % len(levels) else 0)) for i, lv in enumerate(levels)])
