"""``tailor-evo train sft`` then ``train rl`` on the result, through the CLI, with --set overrides and --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=1, heads=2,
                      vocab_size=400, max_positions=1024, tasks=("kk",), corpus=None)


def test_train_sft_then_rl_through_the_cli(tiny_dir, tmp_path):
    from tailor_evo.tasks import get_task

    task = get_task("kk")
    data = tmp_path / "warm.jsonl"
    with open(data, "w") as fh:
        for p in task.generate(6, 11, [2]):
            fh.write(json.dumps({"id": p.id, "prompt": task.prompt(p), "completion": task.reference_completion(p),
                                 "correct": True}) + "\n")
    runner = CliRunner()
    sft_out = tmp_path / "sft"
    res = runner.invoke(cli, ["train", "sft", "--model", str(tiny_dir), "--data", str(data), "--out", str(sft_out),
                              "--set", "max_steps=2", "--set", "batch_size=3", "--set", "threads=1",
                              "--set", "max_length=1024", "--set", "task=kk", "--set", "eval.every=2",
                              "--set", "eval.n=2", "--set", "eval.levels=[2]", "--set", "eval.max_new_tokens=4"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (sft_out / "model" / "config.json").exists()
    rows = [json.loads(x) for x in (sft_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "eval_accuracy" in rows[1] and "eval_accuracy" not in rows[0]
    assert rows[1]["eval_n"] == 2

    # resume with a larger step budget continues from the saved config and checkpoint
    res = runner.invoke(cli, ["train", "sft", "--out", str(sft_out), "--resume", "--set", "max_steps=3"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    steps = [json.loads(x)["step"] for x in (sft_out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    rl_out = tmp_path / "rl"
    res = runner.invoke(cli, ["train", "rl", "--model", str(sft_out / "model"), "--task", "kk", "--out", str(rl_out),
                              "--set", "steps=1", "--set", "prompts_per_step=2", "--set", "group_size=2",
                              "--set", "max_new_tokens=4", "--set", "levels=[2]", "--set", "eval.n=2",
                              "--set", "eval.max_new_tokens=4", "--set", "eval.levels=[2]", "--set", "threads=1",
                              "--set", "pool_size=8"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (rl_out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 1 and "reward" in rows[-1]
    assert (rl_out / "model" / "config.json").exists() and (rl_out / "report.md").exists()


def test_bad_override_is_reported_with_its_field(tmp_path):
    from tailor_evo.errors import InputError

    with pytest.raises(InputError) as err:
        CliRunner().invoke(cli, ["train", "rl", "--out", str(tmp_path / "x"), "--set", "nonsense=1"],
                           catch_exceptions=False, standalone_mode=False)
    assert err.value.field == "nonsense"
