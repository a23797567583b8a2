"""Trackers mirror metrics.jsonl: TensorBoard event files hold the same curves, W&B offline
writes its run directory, and a bad or missing tracker is a clear error."""

from __future__ import annotations

import json

import pytest

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trackers import Trackers, check_report_to, scalars

pytest.importorskip("tensorboard")


def _read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_names_are_checked():
    assert check_report_to("none") == [] and check_report_to(["tensorboard"]) == ["tensorboard"]
    with pytest.raises(InputError) as exc:
        check_report_to(["tensorbored"])
    assert exc.value.field == "report_to" and "tensorbored" in str(exc.value)


def test_rows_are_flattened_and_only_numbers_sent():
    row = {"step": 3, "loss": 0.5, "ok": True, "note": "x", "admission": {"not novel": 2}, "nan": float("nan"),
           "levels": [1, 2]}
    assert scalars(row) == {"step": 3.0, "loss": 0.5, "ok": 1.0, "admission/not novel": 2.0}


def test_a_run_directory_mirrors_its_rows_to_tensorboard(tmp_path):
    rd = RunDir.create(tmp_path / "run")
    rd.track(["tensorboard"], {"lr": 0.1}, "sft")
    rows = [{"step": s, "loss": 1.0 / s, "eval": {"acc": s / 10}} for s in (1, 2, 3)]
    for r in rows:
        rd.log(r)
    rd.close_trackers()
    got = _read_scalars(tmp_path / "run" / "tensorboard")
    assert got["loss"] == [(r["step"], pytest.approx(r["loss"])) for r in rows]
    assert got["eval/acc"] == [(r["step"], pytest.approx(r["eval"]["acc"])) for r in rows]
    assert len(rd.read_metrics()) == 3


def test_rl_run_reward_curve_in_tensorboard_equals_metrics_jsonl(tmp_path):
    from tailor_evo.trainers.rl import RLConfig, train_rl

    cfg = RLConfig(model="tiny", task="kk", levels=[3], steps=3, prompts_per_step=2, group_size=2,
                   max_new_tokens=8, save_every=0, report_to=["tensorboard"])
    cfg.eval.n = 0
    rd = RunDir.create(tmp_path / "rl")
    train_rl(cfg, rd)
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    reward = [(r["step"], r["reward"]) for r in rows if "reward" in r]
    got = _read_scalars(tmp_path / "rl" / "tensorboard")
    assert [s for s, _ in got["reward"]] == [s for s, _ in reward] == [1, 2, 3]
    assert [v for _, v in got["reward"]] == pytest.approx([v for _, v in reward])
    assert set(got) >= {"kl", "loss", "accuracy"}


def test_wandb_offline_writes_a_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    trackers = Trackers(["wandb"], tmp_path, {"lr": 0.1}, "sft")
    for s in (1, 2):
        trackers.log({"step": s, "loss": 1.0 / s})
    trackers.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    run_id = (tmp_path / "wandb-run-id").read_text().strip()
    assert runs[0].name.endswith(run_id)


def test_a_missing_tracker_package_is_named(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(InputError, match=r"tailor-evo\[wandb\]"):
        Trackers(["wandb"], tmp_path, {}, "rl")
