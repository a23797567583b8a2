"""Two processes under ``accelerate launch`` (DDP with gloo on this machine's CPUs).

* SFT with 2 processes of batch 4 ends at the weights of 1 process of batch 8 (the same
  global batch), within ``SAME_WEIGHTS_ATOL``, with the same logged losses and tokens; its
  last step holds one example, so the second process takes part with nothing supervised.
* ``--resume`` with 2 processes, from a checkpoint they wrote, reproduces the uninterrupted
  2-process run (SFT and RL); a checkpoint of 2 processes is refused by 1.
* RL's logged row is gathered over both processes: its counts and means agree with the
  rollouts both processes logged.

Marked ``multiprocess`` (``make test-multiprocess``, run by CI): about a minute on `tiny`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli_helpers import run_cli
from tests.test_sft import write_data

pytestmark = pytest.mark.multiprocess

# Float32 sums taken in another order (two halves of a batch, then DDP's all-reduce) differ
# by rounding only: after 4 AdamW steps (lr 1e-3) the largest weight difference measured was
# 3.5e-6, and 4.4e-6 after 5. With each process dividing by its own tokens instead of the whole
# step's it was 3.3e-3 after 4.
SAME_WEIGHTS_ATOL = 2e-5
SFT_ARGS = ["--model", "tiny", "--overwrite", "--set", "max_steps=5", "--set", "threads=1", "--set", "eval.every=0",
            "--set", "save_every=2", "--set", "keep_checkpoints=3"]
RL_ARGS = ["--task", "kk", "--overwrite", "--set", "steps=3", "--set", "threads=1", "--set", "prompts_per_step=2",
           "--set", "group_size=4", "--set", "max_new_tokens=12", "--set", "eval.n=4",
           "--set", "eval.max_new_tokens=12", "--set", "save_every=2", "--set", "keep_checkpoints=3",
           "--set", "rollout_log_every=1", "--set", "lr=0.001",
           "--set", "reward=tests.test_multiprocess:length_reward"]


def length_reward(prompts: list, completions: list, **columns) -> list[float]:
    """A reward that varies within a group whatever the model writes, so that every step trains."""
    return [float(len(c) % 5) for c in completions]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    """``tailor-evo ARGS`` in ``processes`` processes: ``accelerate launch --multi_gpu`` starts them
    with torch's launcher, and on a machine without GPUs accelerate joins them with gloo."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "tailor_evo.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def back_to_step(run: Path, step: int) -> None:
    """The run directory as a crash right after the checkpoint of ``step`` leaves it: later
    checkpoints and the exported model gone, the metric rows logged since still there."""
    for ckpt in (run / "checkpoints").glob("step-*"):
        if int(ckpt.name.split("-")[1]) > step:
            shutil.rmtree(ckpt)
    shutil.rmtree(run / "model")


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    # 4 steps of 8, then 1 example: the second process has none of its own
    return write_data(tmp_path_factory.mktemp("data") / "sft.jsonl", n=33)


@pytest.fixture(scope="module")
def sft_runs(sft_data, tmp_path_factory) -> dict[str, Path]:
    """The same SFT in 1 process of batch 8 and in 2 processes of batch 4 each."""
    root = tmp_path_factory.mktemp("sft")
    one, two = root / "one", root / "two"
    subprocess.run([sys.executable, "-m", "tailor_evo.cli", "train", "sft", *SFT_ARGS, "--data", str(sft_data),
                    "--out", str(one), "--set", "batch_size=8"], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = launch(["train", "sft", *SFT_ARGS, "--data", str(sft_data), "--out", str(two), "--set", "batch_size=4"])
    assert done.stdout.count("model: ") == 1           # said once, by the main process
    return {"one": one, "two": two}


def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(sft_runs):
    one, two = sft_runs["one"], sft_runs["two"]
    assert max_difference(weights(one / "model"), weights(two / "model")) < SAME_WEIGHTS_ATOL
    # the last two steps alone moved the weights far more than the bound (the comparison is not vacuous)
    halfway = weights(Path(one / "checkpoints" / "step-000002" / "model"))
    assert max_difference(halfway, weights(one / "model")) > 10 * SAME_WEIGHTS_ATOL
    rows_one, rows_two = metrics(one), metrics(two)
    assert [r["tokens"] for r in rows_one] == [r["tokens"] for r in rows_two]     # gathered, not rank 0's half
    for a, b in zip(rows_one, rows_two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    config = (two / "config.yaml").read_text()
    assert "batch_size: 4" in config


def test_sft_resume_with_two_processes_matches_the_uninterrupted_run(sft_runs, sft_data, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(sft_runs["two"], run)
    back_to_step(run, 2)
    launch(["train", "sft", "--resume", "--out", str(run)])
    assert max_difference(weights(sft_runs["two"] / "model"), weights(run / "model")) < 1e-6
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4, 5]


def test_a_checkpoint_of_two_processes_is_refused_by_one(sft_runs, tmp_path, monkeypatch, capsys):
    run = tmp_path / "resumed"
    shutil.copytree(sft_runs["two"], run)
    back_to_step(run, 2)
    code, out = run_cli(monkeypatch, capsys, ["train", "sft", "--resume", "--out", str(run)])
    assert code == 2
    assert "written by 2 process(es)" in out.err and "--num_processes 2" in out.err


@pytest.fixture(scope="module")
def rl_run(sft_runs, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rl") / "two"
    launch(["train", "rl", *RL_ARGS, "--model", str(sft_runs["one"] / "model"), "--out", str(run)])
    return run


def test_rl_rows_are_gathered_over_the_processes(rl_run):
    rows = [r for r in metrics(rl_run) if "reward" in r]
    rollouts = [json.loads(line) for line in (rl_run / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        mine = [r for r in rollouts if r["step"] == row["step"]]
        assert len(mine) == 2 * 4                                   # both processes' groups, 4 rollouts each
        assert row["groups_generated"] == 2
        assert row["rollout_tokens"] == sum(r["tokens"] for r in mine)
        assert row["reward"] == pytest.approx(sum(r["reward"] for r in mine) / len(mine))
        assert len({r["reward"] for r in mine}) > 1                  # the mean is not of equal values
    assert not any(k.startswith("_") for r in rows for k in r)      # the merge weights are not logged
    assert (rl_run / "model" / "model.safetensors").is_file()


def test_rl_resume_with_two_processes_matches_the_uninterrupted_run(rl_run, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(rl_run, run)
    back_to_step(run, 2)
    launch(["train", "rl", "--resume", "--out", str(run)])
    assert max_difference(weights(rl_run / "model"), weights(run / "model")) < 1e-6
    assert [r["step"] for r in metrics(run)] == [0, 1, 2, 3]
    assert len((run / "rollouts.jsonl").read_text().splitlines()) == 3 * 2 * 4
