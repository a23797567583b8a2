"""The llm operator and renderer end to end against a real ``tailor-evo serve`` (tiny backbone; smollm2 when slow)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailor_evo.rundir import RunDir

TINY_CFG = ["--set", "evolution.generations=1", "--set", "evolution.population=4", "--set", "evolution.offspring=4",
            "--set", "evolution.init_random=1", "--set", "problems.per_eval=2", "--set", "problems.probe=2",
            "--set", "problems.pool=8", "--set", "problems.report=2", "--set", "llm.max_new_tokens=48",
            "--set", "llm.render_max_new_tokens=48", "--set", "workers=1"]


def start_server(model: str) -> tuple[subprocess.Popen, str]:
    """Run ``tailor-evo serve`` on a free loopback port; return the process and its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tailor_evo", "serve", "--model", model, "--port", "0",
                             "--threads", "1", "--served-name", "m"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        m = re.search(r"serving \S+ at (http://\S+)", line)
        if m:
            return proc, m.group(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("server did not start")


def run_llm_search(model: str, tmp_path: Path, extra: list[str]) -> list[dict]:
    proc, url = start_server(model)
    try:
        out = tmp_path / "run"
        res = subprocess.run([sys.executable, "-m", "tailor_evo", "search", "--task", "kk", "--operator", "llm",
                              "--renderer", "llm", "--llm", f"openai:{url}#m", "--out", str(out), "--quiet",
                              *extra], capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "archive:" in res.stdout
        return RunDir(out).read_metrics()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _totals(metrics: list[dict]) -> tuple[dict, int, int]:
    invalid: dict[str, int] = {}
    for m in metrics:
        for k, v in m["llm_invalid"].items():
            invalid[k] = invalid.get(k, 0) + v
    return invalid, sum(m["llm_valid"] for m in metrics), metrics[-1]["renderer_wrong"]


@pytest.mark.integration
def test_llm_operator_and_renderer_against_served_tiny(tmp_path):
    from tailor_evo.models.registry import prepare

    prepare("tiny")
    # the openai client sends the reply schema as response_format; the server decodes under it,
    # so even the untrained tiny model writes only well-typed programs (only a copy of a parent,
    # or a tree over the node limit, may still be refused, and is counted)
    metrics = run_llm_search("tiny", tmp_path, TINY_CFG[:-6] + ["--set", "llm.max_new_tokens=384",
                                                                "--set", "llm.render_max_new_tokens=48",
                                                                "--set", "evolution.offspring=2"])
    invalid, valid, wrong = _totals(metrics)
    assert metrics[-1]["llm_mode"] == "constrained"
    assert sum(invalid.values()) + valid == 2
    assert valid >= 1 and set(invalid) <= {"copy of a parent or sibling", "already evaluated"}, invalid
    assert wrong > 0 and metrics[0]["evaluated"] > 0
    assert (tmp_path / "run" / "report.md").exists()
    json.loads((tmp_path / "run" / "coverage.json").read_text())


@pytest.mark.slow
def test_llm_operator_and_renderer_against_served_smollm2(tmp_path):
    from tailor_evo.models.registry import is_prepared, prepare

    try:
        prepare("smollm2-135m")
    except Exception as exc:  # the wheel is an optional extra (make backbones)
        pytest.skip(f"smollm2-135m not available: {exc}")
    assert is_prepared("smollm2-135m")
    metrics = run_llm_search("smollm2-135m", tmp_path, TINY_CFG[:-6] + [
        "--set", "llm.max_new_tokens=160", "--set", "llm.render_max_new_tokens=128", "--set", "llm.chat=true"])
    invalid, valid, wrong = _totals(metrics)
    assert sum(invalid.values()) + valid == 4 and wrong > 0
