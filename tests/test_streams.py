"""The problem streams (tailor_evo.tasks.streams): one home, the same problems as before it."""

from __future__ import annotations

import pytest

from tailor_evo.tasks import get_task, streams
from tailor_evo.tasks.base import question_key, split_seed


def _keys(problems):
    return [question_key(p) for p in problems]


def test_streams_draw_what_the_stages_drew_before_they_shared_a_home():
    """The figures in docs/results were made from these exact problems; the module must not move them.
    The training streams (warm start, RL) draw with the task's training options (balanced KK solutions)."""
    kk = get_task("kk")
    train = kk.training_options()
    assert train == {"balanced": True}
    assert _keys(streams.flat(kk, 3, "rl", 12, [3])) == _keys(kk.generate(12, split_seed(3, "rl"), [3], **train))
    assert _keys(streams.flat(kk, 3, "search", 6, None)) == _keys(kk.generate(6, split_seed(3, "search"), None))
    base = split_seed(3, "eval")
    expected = [p for lv in (2, 3) for p in kk.generate(5, split_seed(base, f"level-{lv}"), [lv])]
    assert _keys(streams.eval_problems(kk, 3, [2, 3], 5)) == _keys(expected)
    base = split_seed(3, "warmstart")
    expected = (kk.generate(4, split_seed(base, "level-2"), [2], **train)
                + kk.generate(3, split_seed(base, "level-3"), [3], **train))
    assert _keys(streams.training_problems(kk, 3, 7, [2, 3])) == _keys(expected)


def test_a_level_keeps_its_problems_when_more_levels_are_asked_for():
    igsm = get_task("igsm")
    alone = streams.eval_problems(igsm, 0, [3], 6)
    together = streams.eval_problems(igsm, 0, [2, 3, 4], 6)
    assert _keys(alone) == _keys([p for p in together if p.difficulty == 3])


def test_streams_are_distinct_and_names_are_checked():
    kk = get_task("kk")
    assert set(_keys(streams.flat(kk, 0, "rl", 20, [3]))) != set(_keys(streams.flat(kk, 0, "eval", 20, [3])))
    with pytest.raises(ValueError, match="unknown problem stream 'rll'"):
        streams.flat(kk, 0, "rll", 2, [3])


def test_training_problems_have_balanced_solutions() -> None:
    """No role assignment is a safe guess in training data: each of the 8 solutions of 3-person
    puzzles is drawn about equally often (the plain draw favours all-knight 1.5x over all-knave)."""
    from collections import Counter

    counts = Counter(tuple(p.answer) for p in streams.training_problems(get_task("kk"), 0, 1600, [3]))
    assert len(counts) == 8 and max(counts.values()) < 1.3 * min(counts.values())
