"""A run directory keeps its record: one writer at a time, a resume that never starts again in
silence, outputs that are never renamed over, file-system failures and bad options as one line.

The lock and the concurrency test use real processes; a full disk and a read-only file system
are simulated by making the system call fail with their errno (or with the error safetensors
raises), since making them real needs a mount.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tailor_evo.errors import InputError
from tailor_evo.io import atomic_open, is_special, write_records, write_text_atomic
from tailor_evo.rundir import LOCK, RunDir
from tests.cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _lock_record(run: Path) -> dict:
    text = (run / LOCK).read_text() if (run / LOCK).exists() else ""
    return json.loads(text) if text.strip() else {}


HOLD = """
import sys, time
from tailor_evo.rundir import RunDir
rd = RunDir.locked(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


# --- one writer per run directory ----------------------------------------------------------------

def test_a_second_process_is_refused_naming_the_holder_resume_or_not(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (run / "config.yaml").write_text("seed: 0\n")
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "step-000001").mkdir()
        for kwargs in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(InputError) as exc:
                RunDir.create(run, **kwargs)
            assert f"in use by another process (pid {holder.pid} " in str(exc.value)
        assert (run / "config.yaml").read_text() == "seed: 0\n"        # --overwrite deleted nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    proc = _python(f"""
        import os, signal
        from tailor_evo.rundir import RunDir
        rd = RunDir.locked({str(run)!r})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and _lock_record(run)["pid"] == proc.pid
    with caplog.at_level("WARNING"):
        rd = RunDir.create(run, overwrite=True)
    assert f"taking over the lock left by a process that is no longer running (pid {proc.pid} " in caplog.text
    assert _lock_record(run)["pid"] == os.getpid()
    rd.release()
    assert not (run / LOCK).exists()


def test_the_lock_is_reentrant_in_one_process_and_released_by_the_last_holder(tmp_path):
    first = RunDir.create(tmp_path / "run")
    second = RunDir.create(tmp_path / "run", overwrite=True)        # the same process, e.g. a retry
    assert _lock_record(first.path)["pid"] == os.getpid()
    first.release()
    assert (first.path / LOCK).exists()
    second.release()
    assert not (first.path / LOCK).exists()


def test_the_lock_file_does_not_make_a_directory_non_empty(tmp_path):
    held = RunDir.locked(tmp_path / "run")
    fresh = RunDir.create(tmp_path / "run")           # only .lock inside: a fresh start is allowed
    assert sorted(p.name for p in fresh.path.iterdir()) == [LOCK, "checkpoints", "plots"]
    held.release()
    fresh.release()


SLOW_FIRST = """
import sys, time
from pathlib import Path
import tailor_evo.trainers.loop as loop
original = loop.save_checkpoint
go = Path(sys.argv[1])

def save_then_wait(root, state, *args, **kwargs):
    path = original(root, state, *args, **kwargs)
    while state.step == 2 and not go.exists():      # keep the run going while the test starts another
        time.sleep(0.05)
    return path

loop.save_checkpoint = save_then_wait
sys.argv = ["tailor-evo", *sys.argv[2:]]
from tailor_evo.cli import main
main()
"""


def _sft_args(tiny: Path, data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "sft", "--model", str(tiny), "--data", str(data), "--out", str(run), "--set", "max_steps=4",
            "--set", "save_every=2", "--set", "batch_size=2", "--set", "threads=1", *extra]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=1, heads=2, vocab_size=400,
                      max_positions=512, corpus=["Question: add one and one. <answer> 2 </answer>"] * 20)


@pytest.fixture()
def sft_data(tmp_path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Question: add {i} and one.\nAssistant:",
                                        "completion": f" <answer> {i + 1} </answer>"}) + "\n" for i in range(8)))
    return path


@pytest.mark.integration
def test_two_processes_on_one_run_directory_one_is_refused_and_the_record_is_intact(tiny, sft_data, tmp_path):
    run, go = tmp_path / "run", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", SLOW_FIRST, str(go), *_sft_args(tiny, sft_data, run)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run / "checkpoints" / "step-000002").is_dir() or first.poll() is not None, 120)
        assert first.poll() is None, first.communicate()
        for extra in (["--resume"], []):
            second = subprocess.run([sys.executable, "-m", "tailor_evo", *_sft_args(tiny, sft_data, run, *extra)],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and f"in use by another process (pid {first.pid} " in lines[0], lines
            assert "train sft" in lines[0]
        assert first.poll() is None              # the refused processes did not disturb the first
        go.touch()
        out, err = first.communicate(timeout=120)
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (run / "model" / "config.json").exists() and not (run / LOCK).exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert not [p for p in run.rglob(".*") if p.name != ".gitignore"]          # no temporary left


# --- --resume never starts again in silence ------------------------------------------------------

@pytest.fixture()
def small_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def _run_with_checkpoint(tmp_path, small_model, steps: int = 4, saved_at: int = 3) -> RunDir:
    """A run directory whose log holds rows 1..steps and whose checkpoint is at step ``saved_at``."""
    from tailor_evo.trainers.checkpoint import TrainState, save_checkpoint

    model, opt = small_model
    run = RunDir.create(tmp_path / "run")
    for step in range(1, steps + 1):
        run.log({"step": step, "loss": 1.0 / step})
        if step == saved_at:
            save_checkpoint(run.checkpoints, TrainState(step=step), model, None, opt, None)
    return run


def test_resume_with_no_checkpoint_is_an_error_and_keeps_the_rows(tmp_path, small_model):
    from tailor_evo.trainers.checkpoint import resume_state

    run = _run_with_checkpoint(tmp_path, small_model)
    (run.path / "config.yaml").write_text("seed: 0\n")
    for ckpt in run.checkpoints.iterdir():
        import shutil

        shutil.rmtree(ckpt)
    before = run.metrics_path.read_text()
    with pytest.raises(InputError, match="nothing to resume from"):
        RunDir.create(run.path, resume=True)
    with pytest.raises(InputError, match="nothing to resume from"):
        resume_state(run, True, *small_model, None)
    assert run.metrics_path.read_text() == before


def test_resume_cli_with_deleted_checkpoints_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: d.jsonl\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    code, cap = run_cli(monkeypatch, capsys, ["train", "sft", "--out", str(run), "--resume"])
    assert code == 2 and len(cap.err.strip().splitlines()) == 1 and "nothing to resume from" in cap.err
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n' and not (run / LOCK).exists()


def test_a_truncated_metrics_log_is_reported_and_rebuilt_from_the_checkpoint(tmp_path, small_model, caplog):
    from tailor_evo.trainers.checkpoint import resume_state

    run = _run_with_checkpoint(tmp_path, small_model)
    text = run.metrics_path.read_text()
    lines = text.splitlines()
    run.metrics_path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:7])       # row 3 torn, row 4 lost
    with caplog.at_level("WARNING"):
        state = resume_state(run, True, *small_model, None)
    assert state.step == 3
    assert "damaged line(s) 3" in caplog.text and "rebuilt its 3 row(s)" in caplog.text
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    assert run.read_metrics() == [json.loads(x) for x in lines[:3]]


def test_a_deleted_metrics_log_is_reported_and_rebuilt_from_the_checkpoint(tmp_path, small_model, caplog):
    from tailor_evo.trainers.checkpoint import resume_state

    run = _run_with_checkpoint(tmp_path, small_model)
    run.metrics_path.unlink()
    with caplog.at_level("WARNING"):
        resume_state(run, True, *small_model, None)
    assert "metrics.jsonl is missing" in caplog.text
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_a_checkpoint_without_a_copy_keeps_what_the_log_holds_and_says_rows_are_lost(tmp_path, small_model,
                                                                                     caplog):
    from tailor_evo.trainers.checkpoint import list_checkpoints, resume_state

    run = _run_with_checkpoint(tmp_path, small_model)
    (list_checkpoints(run.checkpoints)[-1] / "metrics.jsonl").unlink()     # as written before copies were kept
    run.metrics_path.write_text(run.metrics_path.read_text().replace('{"step": 2', '{"step": 2x'))
    with caplog.at_level("WARNING"):
        resume_state(run, True, *small_model, None)
    assert "holds no copy" in caplog.text and "2 row(s) kept" in caplog.text
    assert [r["step"] for r in run.read_metrics()] == [1, 3]


def test_an_intact_log_is_only_cut_back_to_the_checkpoint(tmp_path, small_model, caplog):
    from tailor_evo.trainers.checkpoint import resume_state

    run = _run_with_checkpoint(tmp_path, small_model)
    with caplog.at_level("WARNING"):
        resume_state(run, True, *small_model, None)
    assert caplog.text == "" and [r["step"] for r in run.read_metrics()] == [1, 2, 3]


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_saved_config_is_named_as_such(tmp_path, monkeypatch, capsys, content):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    (run / "config.yaml").write_text(content)
    code, cap = run_cli(monkeypatch, capsys, ["train", "sft", "--out", str(run), "--resume"])
    assert code == 2 and len(cap.err.strip().splitlines()) == 1
    assert f"{run / 'config.yaml'}: the saved config is empty" in cap.err


def test_an_unreadable_saved_config_is_named_as_such(tmp_path, monkeypatch, capsys):
    from pathlib import Path as P

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    real = P.read_bytes

    def denied(self):
        if self.name == "config.yaml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(P, "read_bytes", denied)
    code, cap = run_cli(monkeypatch, capsys, ["train", "sft", "--out", str(run), "--resume"])
    assert code == 2 and "config.yaml: cannot read the config file: permission denied" in cap.err


def test_search_resume_with_no_checkpoint_is_an_error_and_a_deleted_log_is_rebuilt(tmp_path, caplog):
    from test_search_run import small_cfg

    from tailor_evo.search.engine import CHECKPOINT, run_search

    run = tmp_path / "run"
    run_search(small_cfg(tmp_path, 2), run, progress=False, report=False)
    rows = RunDir(run).read_metrics()
    (run / "metrics.jsonl").unlink()
    with caplog.at_level("WARNING"):
        run_search(small_cfg(tmp_path, 3), run, resume=True, progress=False, report=False)
    assert "metrics.jsonl is missing; rebuilt its 3 row(s)" in caplog.text
    again = RunDir(run).read_metrics()
    assert again[:3] == json.loads(json.dumps(rows)) and [r["generation"] for r in again] == [0, 1, 2, 3]
    (run / "checkpoints" / CHECKPOINT).unlink()
    with pytest.raises(InputError, match="nothing to resume from"):
        run_search(small_cfg(tmp_path, 4), run, resume=True, progress=False, report=False)
    assert [r["generation"] for r in RunDir(run).read_metrics()] == [0, 1, 2, 3]


# --- outputs: devices, FIFOs, standard output, symbolic links ------------------------------------

def test_a_fifo_is_written_in_place_not_replaced(tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "kk", "--n", "2", "-o", str(fifo)])
    reader.join(10)
    assert code == 0, cap.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(x)["task"] for x in got[0].decode().splitlines()] == ["kk", "kk"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]        # no temporary sibling


def test_devices_fifos_and_standard_output_are_special_targets(tmp_path):
    os.mkfifo(tmp_path / "p")
    (tmp_path / "f.jsonl").write_text("")
    assert is_special("/dev/null") and is_special("-") and is_special(tmp_path / "p")
    assert not is_special(tmp_path / "f.jsonl") and not is_special(tmp_path / "missing.jsonl")


def test_standard_output_takes_the_records_and_the_summary_goes_to_stderr(monkeypatch, capsys):
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "kk", "--n", "3", "-o", "-"])
    assert code == 0
    assert [json.loads(x)["task"] for x in cap.out.splitlines()] == ["kk"] * 3
    assert "wrote 3 kk problems to -" in cap.err


def test_a_symbolic_link_is_followed_the_target_replaced_and_the_link_kept(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "v1.jsonl"
    target.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    write_records(link, [{"a": 1}])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == '{"a": 1}\n'
    dangling = tmp_path / "next.jsonl"
    dangling.symlink_to(tmp_path / "data" / "v2.jsonl")
    write_text_atomic(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "data" / "v2.jsonl").read_text() == "x"


# --- file-system failures: one line naming the path ----------------------------------------------

def _fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_read_only_output_names_the_output_not_its_temporary(tmp_path, monkeypatch, capsys):
    import tailor_evo.io as io

    monkeypatch.setattr(io.tempfile, "mkstemp", _fail_with(errno.EROFS))
    out = tmp_path / "g.jsonl"
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "kk", "--n", "2", "-o", str(out)])
    assert code == 2 and cap.err.strip() == f"error: {out}: cannot write: read-only file system"


def test_read_only_run_directory_in_train_sft_is_one_line(tmp_path, monkeypatch, capsys):
    from pathlib import Path as P

    monkeypatch.setattr(P, "mkdir", _fail_with(errno.EROFS))
    out = tmp_path / "run"
    code, cap = run_cli(monkeypatch, capsys, ["train", "sft", "--model", "tiny", "--data", "d.jsonl", "--out", str(out)])
    assert code == 2 and cap.err.strip() == f"error: {out}: cannot create the run directory: read-only file system"


@pytest.mark.parametrize("where", ["out", "out/sub"])
def test_a_symbolic_link_loop_in_out_is_one_line(tmp_path, monkeypatch, capsys, where):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    out = tmp_path / "a" if where == "out" else tmp_path / "a" / "sub"
    code, cap = run_cli(monkeypatch, capsys, ["train", "sft", "--model", "tiny", "--data", "d.jsonl", "--out", str(out)])
    assert code == 2 and len(cap.err.strip().splitlines()) == 1
    assert str(out) in cap.err and "symbolic link loop" in cap.err
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "kk", "--n", "1", "-o",
                                            str(tmp_path / "a" / "g.jsonl")])
    assert code == 2 and "symbolic link loop" in cap.err and len(cap.err.strip().splitlines()) == 1


class SafetensorError(Exception):
    """What safetensors raises (its own type, not an OSError) when the disk fills during a save."""


def test_disk_full_in_the_safetensors_save_of_the_model_is_one_line_and_leaves_nothing_half_written(
        tmp_path, small_model, monkeypatch):
    import safetensors.torch

    from tailor_evo.trainers.base import export_model

    model, _ = small_model
    out = tmp_path / "run" / "model"
    export_model(model, None, out)
    before = sorted(p.name for p in out.iterdir())

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    import transformers.modeling_utils as mu

    monkeypatch.setattr(mu, "safe_save_file", full, raising=False)
    with pytest.raises(InputError) as exc:
        export_model(model, None, out)
    assert exc.value.file == str(out) and "no space left on the device while saving the model" in exc.value.detail
    assert sorted(p.name for p in out.iterdir()) == before                   # the earlier export is intact
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]           # and no temporary directory


def test_disk_full_in_a_checkpoint_that_torch_reports_vaguely_is_recognised(tmp_path, small_model, monkeypatch):
    import torch

    import tailor_evo.io as io
    from tailor_evo.trainers.checkpoint import TrainState, save_checkpoint

    model, opt = small_model

    def vague(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", vague)
    monkeypatch.setattr(io, "disk_nearly_full", lambda directory, margin=1 << 20: True)
    with pytest.raises(InputError, match="no space left"):
        save_checkpoint(tmp_path / "ckpt", TrainState(step=1), model, None, opt, None)
    assert list((tmp_path / "ckpt").iterdir()) == []
    monkeypatch.setattr(io, "disk_nearly_full", lambda directory, margin=1 << 20: False)
    with pytest.raises(RuntimeError, match="unexpected pos"):                 # a real bug is not hidden
        save_checkpoint(tmp_path / "ckpt", TrainState(step=1), model, None, opt, None)


def test_disk_full_while_appending_a_metric_row_is_one_line(tmp_path, monkeypatch):
    import builtins

    run = RunDir.create(tmp_path / "run")
    run.log({"step": 1})
    real_open = builtins.open

    def full_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(InputError) as exc:
        run.log({"step": 2})
    assert exc.value.file == str(run.metrics_path) and "no space left on the device" in exc.value.detail
    monkeypatch.undo()
    assert run.read_metrics() == [{"step": 1}]


def test_a_file_system_failure_no_command_caught_is_still_one_line(monkeypatch, capsys, tmp_path):
    import tailor_evo.commands.data as data

    def readonly(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x"))

    monkeypatch.setattr(data, "write_records", readonly)
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "kk", "--n", "1", "-o",
                                            str(tmp_path / "g.jsonl")])
    assert code == 2 and cap.err.strip() == f"error: {tmp_path / 'x'}: file-system error: read-only file system"


# --- wrongly typed fields ------------------------------------------------------------------------

@pytest.mark.parametrize("record, field", [
    ({"prompt": ["What is 1+1?"], "completion": "2"}, "prompt"),
    ({"prompt": [{"role": "user", "content": 3}], "completion": "2"}, "prompt"),
    ({"prompt": "q", "messages": "hi", "completion": "2"}, "messages"),
    ({"prompt": "q", "completion": ["2"]}, "completion"),
    ({"prompt": "q", "completion": "2", "correct": "yes"}, "correct"),
])
def test_wrongly_typed_sft_fields_are_named(tmp_path, small_model, record, field):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from tailor_evo.trainers.data import load_sft_data

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                  unk_token="[UNK]", eos_token="[UNK]")
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(InputError) as exc:
        load_sft_data(path, tok, 64)
    assert (exc.value.file, exc.value.line, exc.value.field) == (str(path), 2, field)


def test_the_server_logs_a_client_that_left_in_one_line(small_tiny_dir, caplog):
    import socket

    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.generation.server import OpenAIServer
    from tailor_evo.models.registry import load

    model, tok = load(str(small_tiny_dir))
    server = OpenAIServer(("127.0.0.1", 0), HFEngine(model, tok), "m")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level("WARNING"):
            body = json.dumps({"prompt": "Rosa is", "max_tokens": 64}).encode()
            for _ in range(3):
                sock = socket.create_connection(server.server_address[:2])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                sock.close()                 # gone (with a reset) before the reply
            _wait_for(lambda: caplog.text.count("disconnected") >= 1, 30)
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in caplog.text
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert lines and all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)


def test_atomic_writes_still_replace_a_regular_file_through_a_temporary(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append((Path(a).name, Path(b).name)), real(a, b)))
    with atomic_open(tmp_path / "r.jsonl") as fh:
        fh.write("x\n")
    assert len(seen) == 1 and seen[0][0].startswith(".r.jsonl.") and seen[0][1] == "r.jsonl"


def test_wrongly_typed_lineage_rows_are_named(tmp_path, monkeypatch, capsys):
    row = {"id": "abc123", "task": "kk", "description": "d", "program": {}, "parents": []}
    (tmp_path / "archive.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "lineage.jsonl").write_text(json.dumps({"id": "abc123", "parents": [], "operator": "gp",
                                                        "generation": 1, "quality": "high"}) + "\n")
    code, cap = run_cli(monkeypatch, capsys, ["archive", "lineage", str(tmp_path), "abc"])
    assert code == 2 and cap.err.strip() == (f"error: {tmp_path / 'lineage.jsonl'}:1, field 'quality': "
                                             "expected float, got str")


@pytest.mark.parametrize("value", [5, ["q"], None])
def test_wrongly_typed_question_rows_are_named(tmp_path, value):
    from tailor_evo.io import read_records

    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"question": "q", "completion": "c"}) + "\n"
                    + json.dumps({"question": value, "completion": "c"}) + "\n")
    with pytest.raises(InputError) as exc:
        read_records(path, required=("question",), types={"question": str, "completion": str})
    assert (exc.value.line, exc.value.field) == (2, "question") and "expected str" in exc.value.detail


def test_a_list_prompt_is_named_even_when_the_record_has_messages(tmp_path, small_tiny_dir):
    from tailor_evo.models.registry import load
    from tailor_evo.trainers.data import load_sft_data

    _, tok = load(str(small_tiny_dir))
    messages = [{"role": "user", "content": "What is 1+1?"}]
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": ["What is 1+1?"], "messages": messages, "completion": "2"}) + "\n")
    with pytest.raises(InputError) as exc:
        load_sft_data(path, tok, 64)
    assert (exc.value.line, exc.value.field) == (1, "prompt") and "list of something else" in exc.value.detail
    path.write_text(json.dumps({"prompt": messages, "completion": "2"}) + "\n")      # a chat prompt is fine
    assert len(load_sft_data(path, tok, 64, chat=True).examples) == 1


def test_a_start_that_failed_on_its_input_does_not_block_the_next_start(tmp_path):
    run = RunDir.create(tmp_path / "run")            # made checkpoints/ and plots/, then the data was refused
    run.release()
    again = RunDir.create(tmp_path / "run")
    again.log({"step": 1})
    again.release()
    with pytest.raises(InputError, match="not empty"):
        RunDir.create(tmp_path / "run")
