"""The shipped smoke experiment, for real: every method through every stage on the tiny backbone."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "cpu-smoke.yaml"


@pytest.mark.slow
def test_cpu_smoke_experiment_produces_every_output(tmp_path):
    out = tmp_path / "smoke"
    result = CliRunner().invoke(cli, ["experiment", "--config", str(CONFIG), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    results = json.loads((out / "results.json").read_text())
    assert not results["failed"] and not results["pending"]
    assert sorted(c["method"] for c in results["cells"]) == ["four-behaviour", "redistill", "rule-based", "tailor"]
    for name in ("results.md", "report.md", "config.yaml", "plots/kk-curves.png", "plots/kk-accuracy.png",
                 "plots/kk-coverage-vs-gain.png"):
        assert (out / name).stat().st_size > 0, name
    for cell in results["cells"]:
        cell_dir = out / "cells" / f"kk-L3-tiny-{cell['method']}-s0"
        assert (cell_dir / "warmstart" / "card.md").exists() and (cell_dir / "rl" / "model").exists()
        assert len(cell["reward_curve"]) == 3
        assert [step for step, _ in cell["eval_curve"]] == [0, 3]      # held-out accuracy at steps 0 and 3
        assert 0 <= cell["accuracy_auc"] <= 1
    report = (out / "report.md").read_text()
    assert "Target held-out accuracy for \"steps to target\": 0.5" in report and "fixed in the configuration" in report
    # running it again finds every cell finished
    again = CliRunner().invoke(cli, ["experiment", "--config", str(CONFIG), "--out", str(out)])
    assert again.exit_code == 0 and "4 cells done" in again.output
