"""Fault injection: a run directory never claims what did not happen, and bad input is a clear error.

One test (or a few) per class of fault: settings accepted then ignored, a resume that
rewrites history, an overwrite that does not overwrite, success on nothing, uncaught
faults on damaged input, and the smaller cases (file modes, server limits).
"""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from tailor_evo.config import dump_yaml, load_config, resumed_config
from tailor_evo.errors import InputError
from tailor_evo.io import iter_jsonl, read_records, write_text_atomic
from tailor_evo.pipeline import PipelineConfig
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.rl import RLConfig
from tailor_evo.trainers.sft import SFTConfig
from tests.cli_helpers import run_cli

# --- 1. accepted, then ignored -------------------------------------------------------------------

@pytest.mark.parametrize("key", ["rl.task=igsm", "sft.model=smollm2-135m", "search.task=igsm", "rl.levels=[4]",
                                 "sft.data=other.jsonl"])
def test_a_key_the_pipeline_owns_is_refused_by_name(key):
    cfg = load_config(PipelineConfig, None, [key])
    with pytest.raises(InputError) as exc:
        cfg.check()
    assert exc.value.field == key.split("=")[0]


def test_the_pipeline_field_is_honoured_in_every_stage():
    cfg = load_config(PipelineConfig, None, ["task=igsm", "levels=[2]", "seed=5"])
    cfg.check()
    cfg.fill_owned()
    assert (cfg.search.task, cfg.sft.task, cfg.rl.task) == ("igsm", "igsm", "igsm")
    assert (cfg.search.seed, cfg.sft.seed, cfg.rl.seed) == (5, 5, 5)
    assert cfg.rl.levels == [2] and cfg.search.problems.levels == [2] and cfg.sft.model == cfg.backbone
    cfg.check()      # a filled (saved, then reloaded) config is still valid


def test_run_refuses_an_owned_key_before_writing_anything(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, cap = run_cli(monkeypatch, capsys, ["run", "--out", str(out), "--set", "rl.task=igsm"])
    assert code == 2 and "rl.task" in cap.err and "task" in cap.err
    assert not out.exists()


# --- 2. resume that rewrites history -------------------------------------------------------------

def _saved_pipeline_run(tmp_path):
    cfg = PipelineConfig()
    cfg.fill_owned()
    out = tmp_path / "run"
    out.mkdir()
    write_text_atomic(out / "config.yaml", dump_yaml(cfg))
    return out


@pytest.mark.parametrize("argv,needle", [(["--set", "task=igsm"], "task: saved 'kk', given 'igsm'"),
                                         (["--task", "igsm"], "task: saved 'kk', given 'igsm'"),
                                         (["--backbone", "tiny"], "backbone"),
                                         (["--method", "rule-based"], "method")])
def test_run_resume_refuses_a_changed_setting_and_keeps_the_record(tmp_path, monkeypatch, capsys, argv, needle):
    out = _saved_pipeline_run(tmp_path)
    before = (out / "config.yaml").read_text()
    code, cap = run_cli(monkeypatch, capsys, ["run", "--out", str(out), "--resume", *argv])
    assert code == 2 and needle in cap.err, cap.err
    assert (out / "config.yaml").read_text() == before and not (out / "report.md").exists()


def test_train_resume_refuses_another_seed_or_data_and_names_both(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sft"
    out.mkdir()
    write_text_atomic(out / "config.yaml", dump_yaml(SFTConfig(data="ws.jsonl")))
    code, cap = run_cli(monkeypatch, capsys, ["--seed", "7", "train", "sft", "--resume", "--out", str(out),
                                            "--data", "other.jsonl"])
    assert code == 2 and "data: saved 'ws.jsonl', given 'other.jsonl'" in cap.err and "seed" in cap.err


def test_resume_accepts_the_same_settings_and_the_documented_safe_keys(tmp_path):
    saved = tmp_path / "config.yaml"
    write_text_atomic(saved, dump_yaml(RLConfig(steps=10, lr=1e-4)))
    same = resumed_config(RLConfig, saved, overrides=["lr=1e-4", "task=kk"], safe=RLConfig.RESUME_SAFE)
    assert same.steps == 10
    longer = resumed_config(RLConfig, saved, overrides=["steps=40"], safe=RLConfig.RESUME_SAFE)
    assert longer.steps == 40
    with pytest.raises(InputError, match=r"lr: saved 0.0001, given 0.001.*safe to change on resume: steps"):
        resumed_config(RLConfig, saved, overrides=["lr=1e-3"], safe=RLConfig.RESUME_SAFE)


# --- 3. overwrite that does not overwrite --------------------------------------------------------

def test_overwrite_empties_the_run_directory(tmp_path):
    run = RunDir.create(tmp_path / "r")
    (run.checkpoints / "step-000009").mkdir()
    run.log({"step": 1})
    (run.path / "config.yaml").write_text("old: 1\n")
    fresh = RunDir.create(run.path, overwrite=True)
    assert fresh.read_metrics() == [] and not any(fresh.checkpoints.iterdir())
    assert not fresh.config_path.exists()
    with pytest.raises(InputError, match="exclude"):
        RunDir.create(run.path, overwrite=True, resume=True)


def test_overwrite_keeps_only_what_it_is_told_to(tmp_path):
    root = tmp_path / "r"
    (root / "phases" / "a").mkdir(parents=True)
    (root / "metrics.jsonl").write_text("{}\n")
    RunDir.create(root, overwrite=True, keep=("phases",))
    assert (root / "phases" / "a").is_dir() and not (root / "metrics.jsonl").exists()


# --- 4. success on nothing -----------------------------------------------------------------------

def test_warmstart_from_an_archive_of_invalid_programs_fails_with_the_counts(tmp_path, monkeypatch, capsys):
    arch = tmp_path / "search"
    arch.mkdir()
    rows = [{"id": f"p{i}", "task": "kk", "description": "d", "program": {"op": "no-such-op", "args": []}}
            for i in range(3)]
    (arch / "archive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ws.jsonl"
    code, cap = run_cli(monkeypatch, capsys, ["data", "warmstart", "--task", "kk", "--method", "tailor",
                                            "--archive", str(arch), "--size", "4", "--problems", "4",
                                            "-o", str(out)])
    assert code == 2 and "no warm-start records" in cap.err and "3 primitives" in cap.err, cap.err
    assert not out.exists()


# --- 5. uncaught faults --------------------------------------------------------------------------

def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff\xfe"}\n')
    with pytest.raises(InputError) as exc:
        list(iter_jsonl(path))
    assert exc.value.line == 2 and "UTF-8" in exc.value.detail


def test_corrupt_parquet_is_a_one_line_error(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError) as exc:
        read_records(path)
    assert "Parquet" in exc.value.detail and exc.value.file == str(path)


def test_binary_config_file_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    with pytest.raises(InputError) as exc:
        load_config(RLConfig, path)
    assert exc.value.file == str(path) and "UTF-8" in exc.value.detail


def test_a_type_error_in_a_yaml_file_is_labelled_with_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: many\n")
    with pytest.raises(InputError) as exc:
        load_config(RLConfig, path, ["lr=1e-3"])
    assert exc.value.file == str(path) and exc.value.field == "steps"


def test_list_items_of_the_wrong_type_name_the_item():
    with pytest.raises(InputError) as exc:
        load_config(RLConfig, None, ["levels=[3, three]"])
    assert exc.value.field == "levels[1]"


def test_archive_rows_are_type_checked(tmp_path):
    from tailor_evo.search.archive import load_archive

    row = {"id": "p", "task": "kk", "description": "d", "program": {"op": "x"}, "quality": "high"}
    (tmp_path / "archive.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError) as exc:
        load_archive(tmp_path)
    assert (exc.value.line, exc.value.field) == (1, "quality")


@pytest.fixture()
def small_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_good_one(tmp_path, small_model, caplog):
    from tailor_evo.trainers.checkpoint import TrainState, resume_state, save_checkpoint

    model, opt = small_model
    run = RunDir.create(tmp_path / "r")
    save_checkpoint(run.checkpoints, TrainState(step=2), model, None, opt, None, keep=3)
    newest = save_checkpoint(run.checkpoints, TrainState(step=4), model, None, opt, None, keep=3)
    data = (newest / "state.pt").read_bytes()
    (newest / "state.pt").write_bytes(data[: len(data) // 3])
    with caplog.at_level("WARNING"):
        state = resume_state(run, True, model, opt, None)
    assert state.step == 2
    assert "step-000004" in caplog.text and "newest good" in caplog.text


def test_disk_full_while_saving_is_named_and_leaves_no_temporary_directory(tmp_path, small_model, monkeypatch):
    import torch

    from tailor_evo.trainers.checkpoint import TrainState, list_checkpoints, save_checkpoint

    model, opt = small_model
    root = tmp_path / "ckpt"
    save_checkpoint(root, TrainState(step=1), model, None, opt, None)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(InputError) as exc:
        save_checkpoint(root, TrainState(step=2), model, None, opt, None)
    assert "no space left" in exc.value.detail and "step-000002" in exc.value.file
    assert [p.name for p in root.iterdir()] == ["step-000001"] and len(list_checkpoints(root)) == 1


def test_disk_full_on_any_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import tailor_evo.io as io

    target = tmp_path / "report.md"
    target.write_text("old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(InputError) as exc:
        write_text_atomic(target, "new")
    assert exc.value.file == str(target) and target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_non_utf8_json_file_is_named(tmp_path):
    from tailor_evo.io import read_json

    path = tmp_path / "results.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match="UTF-8"):
        read_json(path)


# --- 6. smaller cases ----------------------------------------------------------------------------

def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o644


def test_saved_model_files_honour_the_umask(tmp_path, small_model):
    from tailor_evo.trainers.checkpoint import save_model

    model, _ = small_model
    old = os.umask(0o022)
    try:
        save_model(model, None, tmp_path / "m")
    finally:
        os.umask(old)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "m").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_server_queues_a_burst_and_rejects_non_finite_sampling_values():
    from tailor_evo.generation.server import OpenAIServer, RequestError, parse_params

    assert OpenAIServer.request_queue_size >= 64
    for key in ("temperature", "top_p"):
        with pytest.raises(RequestError, match=key):
            parse_params({key: float("nan")}, 16)
    with pytest.raises(RequestError, match="max_tokens"):
        parse_params({"max_tokens": float("inf")}, 16)
