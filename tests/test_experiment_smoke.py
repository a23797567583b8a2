"""The shipped smoke experiment, for real: every method through every stage on the default base."""

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
        cell_dir = out / "cells" / f"kk-L3-tiny-base-{cell['method']}-s0"
        assert (cell_dir / "warmstart" / "card.md").exists() and (cell_dir / "rl" / "model").exists()
        assert len(cell["reward_curve"]) == 3
        if cell["method"] != "redistill":       # the teacher (6 SFT steps) may verify nothing at this size
            assert cell["warmstart_size"] == cell["warmstart_budget"] == 24, cell["method"]
        assert [step for step, _ in cell["eval_curve"]] == [0, 3]      # held-out accuracy at steps 0 and 3
        assert 0 <= cell["accuracy_auc"] <= 1
    report = (out / "report.md").read_text()
    assert "Target held-out accuracy for \"steps to target\": 0.5" in report and "fixed in the configuration" in report
    # running it again finds every cell finished
    again = CliRunner().invoke(cli, ["experiment", "--config", str(CONFIG), "--out", str(out)])
    assert again.exit_code == 0 and "4 cells done" in again.output


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "results" / "cpu-smoke"


@pytest.mark.slow
def test_the_committed_smoke_grid_reaggregates_to_its_committed_results(tmp_path):
    """The reporting code must not drift from results in the repository: re-aggregating the
    committed cells (only their summary.json files are kept) gives the committed table and report."""
    import shutil

    out = tmp_path / "grid"
    shutil.copytree(COMMITTED, out, ignore=shutil.ignore_patterns("README.md", "plots"))
    result = CliRunner().invoke(cli, ["experiment", "--config", str(COMMITTED / "config.yaml"), "--out", str(out),
                                      "--report-only"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "4 cells done, 0 failed, 0 pending" in result.output
    for name in ("results.md", "report.md"):
        assert (out / name).read_text() == (COMMITTED / name).read_text(), name
    assert json.loads((out / "results.json").read_text()) == json.loads((COMMITTED / "results.json").read_text())
    assert (out / "plots" / "kk-curves.png").stat().st_size > 0
