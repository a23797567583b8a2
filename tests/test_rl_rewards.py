"""Open rewards and data for RL: module:function rewards with TRL's signature, weighted sums, train rl --data."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from test_rl import KindTask, ScriptedEngine

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.tasks.base import Problem, Verdict
from tailor_evo.tasks.registry import register, unregister
from tailor_evo.trainers import rl_step as step_module
from tailor_evo.trainers.base import EvalSettings
from tailor_evo.trainers.rewards import parse_reward, score_round
from tailor_evo.trainers.rl import RLConfig, train_rl

PUBLIC_KK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kk-official" / "test-sample.jsonl"
CALLS: list[dict] = []


# --- reward functions with TRL's signature, imported by name as test_rl_rewards:... ---------------

def says_yes(prompts, completions, completion_ids, **columns):
    """1 for a 'yes', 0 otherwise; None (does not apply) for the 'hard' problems."""
    CALLS.append({"prompts": prompts, "completions": completions, "completion_ids": completion_ids, **columns})
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]     # chat completions: messages
    return [None if q.startswith("hard") else float("yes" in t) for q, t in zip(columns["question"], texts)]


def brevity(prompts, completions, **_):
    return [-0.1 * len(c.split()) for c in completions]


def wrong_length(prompts, completions, **_):
    return [1.0]


def not_a_number(prompts, completions, **_):
    return ["high"] * len(completions)


# --- parsing and scoring, without a model ------------------------------------------------------------


def test_reward_settings_are_parsed_and_checked():
    assert parse_reward("binary").single_builtin == "binary"
    spec = parse_reward("shaped, 0.25*test_rl_rewards:brevity")
    assert [(t.name, t.weight, t.fn is brevity) for t in spec.terms] == [("shaped", 1.0, False),
                                                                          ("test_rl_rewards:brevity", 0.25, True)]
    assert spec.single_builtin is None and parse_reward("2*binary").single_builtin is None
    for bad in ("dense", "no_such_module_xyz:f", "test_rl_rewards:missing", "binary, binary", "0.5*", "", "json:dumps x"):
        with pytest.raises(InputError) as err:
            parse_reward(bad)
        assert err.value.field == "reward", bad


@dataclass
class _C:
    text: str
    token_ids: list


@dataclass
class _R:
    problem: Problem
    completion: _C
    verdict: Verdict


def _rollouts(texts_by_question: dict[str, list[str]]) -> list[_R]:
    out = []
    for i, (q, texts) in enumerate(texts_by_question.items()):
        p = Problem(id=f"p{i}", task="toy-kinds", difficulty=1, question=q, answer="yes", answer_text="yes")
        out += [_R(p, _C(t, list(range(len(t.split())))), Verdict(reward=float("yes" in t), correct="yes" in t,
                                                                      format_ok=True, reason="r")) for t in texts]
    return out


def test_function_rewards_get_trl_arguments_and_sum_with_weights():
    task = KindTask()
    flat = _rollouts({"mixed question a": ["yes", "no no"], "hard question b": ["no", "yes yes yes"]})
    CALLS.clear()
    verdicts = score_round(parse_reward("test_rl_rewards:says_yes, 0.5*test_rl_rewards:brevity"), task, flat,
                           lambda p: {"question": p.question, "id": p.id, "prompt": "hidden"}, chat=False)
    call = CALLS[0]
    assert call["prompts"] == [task.prompt(r.problem) for r in flat] and call["completions"] == ["yes", "no no", "no",
                                                                                                "yes yes yes"]
    assert call["completion_ids"] == [[0], [0, 1], [0], [0, 1, 2]] and call["id"] == ["p0", "p0", "p1", "p1"]
    assert "prompt" not in call                       # the call's own keywords are not overwritten by columns
    # says_yes is None on the hard problem: only brevity's share is left there
    assert [v.reward for v in verdicts] == pytest.approx([1 - 0.05, -0.1, -0.05, -0.15])
    assert [v.correct for v in verdicts] == [True, False, False, True]      # accuracy stays the task's
    only = score_round(parse_reward("test_rl_rewards:says_yes"), task, flat, lambda p: {"question": p.question},
                       chat=True)
    assert math.isnan(only[2].reward) and math.isnan(only[3].reward) and only[0].reward == 1.0
    assert CALLS[-1]["completions"][0] == [{"role": "assistant", "content": "yes"}]   # chat prompts: messages
    for bad in ("test_rl_rewards:wrong_length", "test_rl_rewards:not_a_number"):
        with pytest.raises(InputError, match="reward"):
            score_round(parse_reward(bad), task, flat, lambda p: {}, chat=False)


# --- through the trainer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from test_rl import CORPUS

    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=2, heads=2,
                      vocab_size=400, max_positions=1024, corpus=CORPUS)


def test_rl_trains_on_a_function_reward_and_skips_what_it_returns_none_for(tiny_dir, tmp_path, monkeypatch):
    register(KindTask)
    seen = []
    original = step_module.optimise
    monkeypatch.setattr(step_module, "optimise", lambda m, o, s, batch, adv, *a, **k: seen.append((batch, adv))
                        or original(m, o, s, batch, adv, *a, **k))
    try:
        run = RunDir.create(tmp_path / "rl")
        train_rl(RLConfig(model=str(tiny_dir), task="toy-kinds", levels=[1], seed=3, steps=3, prompts_per_step=3,
                          group_size=4, max_new_tokens=8, micro_batch=4, pool_size=12, save_every=0, threads=1,
                          coverage=False, reward="test_rl_rewards:says_yes", rollout_log_every=1,
                          eval=EvalSettings(every=0, n=0)),
                 run, engine_factory=lambda m, t: ScriptedEngine(t))
    finally:
        unregister(KindTask.name)
    rows = [r for r in run.read_metrics() if "reward" in r]
    assert len(rows) == 3 and any(r["skipped"] > 0 for r in rows)
    skipped_rows = 0
    for batch, adv in seen:
        skipped = batch.completion_mask.sum(dim=1) == 0            # the 'hard' groups: out of the loss
        assert torch.all(adv[skipped] == 0)
        skipped_rows += int(skipped.sum())
    assert skipped_rows == 4 * sum(round(r["skipped"] * 3) for r in rows) > 0
    logged = [json.loads(x) for x in (run.path / "rollouts.jsonl").read_text().splitlines()]
    assert any(x["reward"] is None for x in logged) and "says_yes" in (run.path / "report.md").read_text()


def _our_records(path: Path, n: int) -> Path:
    from tailor_evo.tasks import get_task

    kk = get_task("kk")
    with open(path, "w") as fh:
        for p in kk.generate(n, seed=12345, levels=[2, 3]):
            fh.write(json.dumps(kk.to_record(p)) + "\n")
    return path


def test_rl_on_records_of_a_file_uses_them_at_the_configured_levels(tiny_dir, tmp_path):
    from click.testing import CliRunner

    from tailor_evo.cli import cli

    data = _our_records(tmp_path / "kk.jsonl", 10)
    wanted = {json.loads(x)["id"] for x in data.read_text().splitlines() if json.loads(x)["difficulty"] == 2}
    out = tmp_path / "rl"
    res = CliRunner().invoke(cli, ["train", "rl", "--model", str(tiny_dir), "--task", "kk", "--data", str(data),
                                    "--out", str(out), "--set", "steps=1", "--set", "levels=[2]",
                                    "--set", "prompts_per_step=2", "--set", "group_size=2",
                                    "--set", "max_new_tokens=4", "--set", "eval.n=0", "--set", "threads=1",
                                    "--set", "coverage=false"])
    assert res.exit_code == 0, res.output
    logged = [json.loads(x) for x in (out / "rollouts.jsonl").read_text().splitlines()]
    assert logged and {x["prompt_id"] for x in logged} <= wanted
    assert str(data) in (out / "report.md").read_text()
    with pytest.raises(InputError) as err:
        CliRunner().invoke(cli, ["train", "rl", "--model", str(tiny_dir), "--task", "kk", "--data", str(data),
                                 "--out", str(tmp_path / "bad"), "--set", "levels=[7]"],
                           catch_exceptions=False, standalone_mode=False)
    assert err.value.field == "levels" and "2: 5, 3: 5" in str(err.value)


@pytest.mark.skipif(not PUBLIC_KK.exists(), reason="the public K&K sample is not on this machine")
def test_rl_on_the_public_kk_sample(tiny_dir, tmp_path):
    run = RunDir.create(tmp_path / "rl")
    train_rl(RLConfig(model=str(tiny_dir), task="kk", data=str(PUBLIC_KK), levels=[3], steps=1, prompts_per_step=2,
                      group_size=2, max_new_tokens=4, micro_batch=4, save_every=0, threads=1, coverage=False,
                      eval=EvalSettings(every=0, n=0)), run)
    public = [json.loads(x) for x in PUBLIC_KK.read_text().splitlines()]
    logged = [json.loads(x) for x in (run.path / "rollouts.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and all(x["difficulty"] == 3 for x in logged)
    assert len(public) == 100                                      # read in place, 20 of them with 3 people
