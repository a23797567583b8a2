"""Dynamic sampling, truncation and the rollout log, on scripted rewards (no model)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tailor_evo.trainers.checkpoint import TrainState
from tailor_evo.trainers.rollout_log import append_rows, cut_back, due, read_rows, rollout_rows
from tailor_evo.trainers.sampling import PromptStream, ScoredGroup, Truncation, refill_size, sample_step


@dataclass
class P:
    id: str
    difficulty: int = 1


@dataclass
class C:
    text: str
    token_ids: list
    finish_reason: str = "stop"


@dataclass
class R:
    problem: P
    completion: C


@dataclass
class V:
    reward: float
    correct: bool = False
    format_ok: bool = True
    reason: str = "ok"


def scripted(rewards: dict[str, list[float]], cut: dict[str, list[bool]] | None = None, calls: list | None = None):
    """A generate callable: problem id -> its group's rewards (and truncation flags)."""
    def generate(problems, round_):
        if calls is not None:
            calls.append((round_, [p.id for p in problems]))
        groups = []
        for p in problems:
            flags = (cut or {}).get(p.id, [False] * len(rewards[p.id]))
            rollouts = [R(p, C(f"s{i}", [1, 2], "length" if f else "stop")) for i, f in enumerate(flags)]
            groups.append(ScoredGroup(p, rollouts, [V(r, r == 1.0) for r in rewards[p.id]], round=round_))
        return groups
    return generate


def stream_of(ids: list[str]):
    """A draw callable over ``ids`` in order, recording the sizes asked for."""
    queue, asked = list(ids), []

    def draw(k):
        asked.append(k)
        out = [P(i) for i in queue[:k]]
        del queue[:k]
        return out
    return draw, asked


def test_dynamic_sampling_refills_the_batch_and_never_keeps_a_zero_variance_group():
    rewards = {"easy1": [1, 1, 1, 1], "hard1": [0, 0, 0, 0], "mix1": [1, 0, 0, 0], "easy2": [1, 1, 1, 1],
               "mix2": [0, 1, 1, 0], "mix3": [0.5, 0.5, 0, 0.5], "mix4": [1, 0, 1, 1], "hard2": [0, 0, 0, 0],
               "hard3": [0, 0, 0, 0], "easy3": [1, 1, 1, 1]}
    calls: list = []
    draw, asked = stream_of(["easy2", "mix2", "hard3", "mix3", "mix4", "easy3", "hard1"])
    sample = sample_step([P("easy1"), P("hard1"), P("mix1"), P("hard2")], scripted(rewards, calls=calls), draw,
                         wanted=4, dynamic=True, max_refill_rounds=3, truncation=Truncation())
    kept = [g.problem.id for g in sample.kept]
    assert kept == ["mix1", "mix2", "mix3", "mix4"]
    assert all(len(set(g.rewards)) > 1 for g in sample.kept)
    # round 0 kept 1 of 4 groups: the first refill asks for the 3 missing ones over that share, capped at 4;
    # then 3 of 8 were useful, so the last missing group needs ceil(1 / (3/8)) = 3 prompts
    assert asked == [4, 3] and [r for r, _ in calls] == [0, 1, 2]
    assert sample.counts() == {"generation_rounds": 3, "groups_generated": 11, "groups_dropped": 7,
                               "groups_refilled": 3, "groups_trained": 4}
    assert [g.problem.id for g in sample.first_round] == ["easy1", "hard1", "mix1", "hard2"]


def test_refill_rounds_are_bounded_and_a_step_may_keep_nothing():
    rewards = {f"p{i}": [1, 1] for i in range(20)}
    draw, asked = stream_of([f"p{i}" for i in range(2, 20)])
    sample = sample_step([P("p0"), P("p1")], scripted(rewards), draw, wanted=2, dynamic=True,
                         max_refill_rounds=2, truncation=Truncation())
    assert sample.rounds == 3 and asked == [2, 2] and sample.kept == []
    assert sample.counts()["groups_dropped"] == 6


def test_without_dynamic_sampling_every_group_is_trained():
    rewards = {"a": [1, 1], "b": [0, 1]}
    sample = sample_step([P("a"), P("b")], scripted(rewards), lambda k: pytest.fail("no refill"), wanted=2,
                         dynamic=False, max_refill_rounds=3, truncation=Truncation())
    assert [g.kept for g in sample.groups] == [True, True] and sample.rounds == 1


def test_surplus_useful_groups_of_a_refill_are_not_trained():
    rewards = {"a": [1, 1], "b": [0, 1], "c": [1, 0], "d": [0, 1]}
    draw, _ = stream_of(["c", "d"])
    sample = sample_step([P("a"), P("b")], scripted(rewards), draw, wanted=2, dynamic=True, max_refill_rounds=1,
                         truncation=Truncation())
    assert [g.problem.id for g in sample.kept] == ["b", "c"]
    assert [(g.problem.id, g.kept) for g in sample.groups if g.round == 1] == [("c", True), ("d", False)]


MASKED, MASKED_IN_GROUP = Truncation.of(mask_truncated=True), Truncation.of(mask_truncated=True, in_group=True)


def test_a_group_whose_only_differences_are_truncated_has_no_signal_when_they_are_masked():
    group = scripted({"a": [0, 0, 1]}, cut={"a": [False, False, True]})([P("a")], 0)[0]
    assert group.truncated == [False, False, True]
    assert not group.has_signal(MASKED)                   # the trained rows share one reward...
    assert group.has_signal(Truncation())                 # ...but all rows together differ
    two = scripted({"c": [0, 1, 1]}, cut={"c": [False, False, True]})([P("c")], 0)[0]
    assert two.has_signal(MASKED)
    equal_shaped = scripted({"b": [0.1, 0.1, 0.1]})([P("b")], 0)[0]
    assert not equal_shaped.has_signal(Truncation())


def test_a_cut_loop_among_right_answers_is_signal_when_it_stays_in_its_group():
    # the failure RL meets near the ceiling: seven right answers and one loop cut at the budget
    group = scripted({"a": [1, 1, 1, 0]}, cut={"a": [False, False, False, True]})([P("a")], 0)[0]
    assert not group.has_signal(MASKED)                   # as if never sampled: all right, nothing to learn
    assert group.has_signal(MASKED_IN_GROUP)              # counted: the finished siblings are reinforced
    assert group.counted_rows(MASKED_IN_GROUP) == [True] * 4
    assert group.loss_rows(MASKED_IN_GROUP) == [True, True, True, False]
    # only the cut rows differ, and the trained rows sit at the mean: no row of the loss moves
    flat = scripted({"b": [1, 0, 0.5, 0.5]}, cut={"b": [True, True, False, False]})([P("b")], 0)[0]
    assert not flat.has_signal(MASKED_IN_GROUP) and flat.has_signal(Truncation())


def test_the_rule_of_the_settings():
    assert Truncation.of(mask_truncated=False) == Truncation(in_loss=True, in_group=True)
    assert Truncation.of(mask_truncated=True) == Truncation(in_loss=False, in_group=False)
    assert Truncation.of(mask_truncated=True, in_group=True) == Truncation(in_loss=False, in_group=True)


def test_refill_size():
    assert refill_size(8, 8, 0, 0) == 8
    assert refill_size(8, 4, 8, 4) == 8        # half were useful: twice the gap
    assert refill_size(8, 1, 8, 4) == 2
    assert refill_size(8, 3, 8, 0) == 8        # none useful: one full batch
    assert refill_size(8, 3, 8, 8) == 3


def test_prompt_stream_continues_from_the_saved_position():
    pool = list(range(10))
    a = PromptStream(pool, seed=3, state=TrainState())
    first = [a.take(4), a.take(3), a.take(4)]              # the third draw starts epoch 1
    assert a.state.epoch == 1 and a.state.position == 4
    assert len(set(first[0] + first[1])) == 7                    # epoch 0: no problem twice
    assert first[2] == PromptStream(pool, 3, TrainState(epoch=1)).take(4)    # the next epoch's order
    b = PromptStream(pool, seed=3, state=TrainState(epoch=0, position=4))
    assert [b.take(3), b.take(4)] == first[1:]


def test_rollout_log_rows_append_and_cut_back(tmp_path):
    assert [s for s in range(1, 25) if due(s, 10)] == [1, 10, 20] and not due(1, 0)
    group = scripted({"a": [1, 0]}, cut={"a": [False, True]})([P("a", 3)], 1)[0]
    group.kept = False
    rows = rollout_rows(7, [group])
    assert rows[1] == {"step": 7, "round": 1, "prompt_id": "a", "difficulty": 3, "sample": 1, "completion": "s1",
                       "tokens": 2, "reward": 0.0, "correct": False, "format_ok": True, "reason": "ok",
                       "truncated": True, "trained": False}
    path = tmp_path / "rollouts.jsonl"
    append_rows(path, rollout_rows(1, [group]))
    append_rows(path, rows)
    with open(path, "a", encoding="utf-8") as fh:        # a crash mid-write leaves a torn line
        fh.write(json.dumps(rows[0])[:20])
    assert [r["step"] for r in read_rows(path)] == [1, 1, 7, 7]
    cut_back(path, 5)
    assert [r["step"] for r in read_rows(path)] == [1, 1]
    assert path.read_text(encoding="utf-8").endswith("\n")
