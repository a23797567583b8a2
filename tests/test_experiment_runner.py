"""Grid orchestration with a stand-in pipeline: skip finished cells, report failures, write every output."""

import json
import random

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.experiment import runner
from tailor_evo.experiment.grid import ExperimentConfig


def fake_pipeline(calls, fail=(), records=None):
    def run(cfg, root, *, resume=False, search_dir=None, teacher_spec=None):
        calls.append((cfg.method, cfg.seed, teacher_spec))
        if cfg.method in fail:
            raise RuntimeError("boom")
        rng = random.Random(f"{cfg.method}{cfg.seed}")
        bonus = {"tailor": 0.3, "four-behaviour": 0.1}.get(cfg.method, 0.0)
        rewards = [min(1.0, bonus + 0.02 * i + rng.random() * 0.05) for i in range(20)]
        acc_sft = 0.2 + bonus / 2
        stages = {
            "warmstart": {"records": (records or {}).get(cfg.method, 16), "coverage": 100 + 100 * bonus,
                          "coverage_abstract": 10 + 10 * bonus + cfg.seed, "stats": {"size": 16}},
            "eval_sft": {"accuracy": acc_sft, "per_level": {"3": acc_sft}},
            "rl": {"reward_curve": rewards, "accuracy_curve": rewards},
            "eval_rl": {"accuracy": acc_sft + bonus, "per_level": {"3": acc_sft + bonus}},
        }
        root.mkdir(parents=True, exist_ok=True)
        if cfg.method == "rule-based":   # the redistill teacher of the same seed
            (root / "stages").mkdir(parents=True)
            (root / "stages" / "sft.json").write_text(json.dumps({"model": str(root / "sft" / "model")}))
        (root / "summary.json").write_text(json.dumps({"stages": stages, "seconds": {"sft": 1.0}}))
    return run


def test_grid_runs_each_cell_once_and_writes_all_outputs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    cfg = ExperimentConfig(seeds=[0, 1])
    outcome = runner.run_experiment(cfg, tmp_path)
    assert len(calls) == 8 and not outcome.failed and not outcome.pending
    redistill = [c for c in calls if c[0] == "redistill"]
    assert all(t and t.endswith("rule-based-s%d/sft/model" % s) for _, s, t in redistill)
    for name in ("results.md", "results.json", "report.md", "plots/kk-curves.png", "plots/kk-accuracy.png",
                 "plots/kk-coverage-vs-gain.png", "config.yaml"):
        assert (tmp_path / name).exists(), name
    report = (tmp_path / "report.md").read_text()
    assert "better final accuracy than rule-based" in report and "supported (higher by" in report
    assert "more diverse warm-start data than rule-based (coverage of reasoning steps, names abstracted: 13.5" in report
    assert "every cell ends above chance (0.125)" in report
    assert "all backbones" not in report    # one backbone: no pooled section
    # a second invocation finds every cell complete and runs nothing
    runner.run_experiment(cfg, tmp_path)
    assert len(calls) == 8


def test_a_failing_cell_is_reported_not_fatal(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls, fail=("four-behaviour",)))
    outcome = runner.run_experiment(ExperimentConfig(seeds=[0]), tmp_path)
    assert outcome.failed == ["kk-L3-tiny-four-behaviour-s0"]
    assert len(outcome.done) == 3
    assert "boom" in (tmp_path / "failures.jsonl").read_text()
    assert "1 failed" in (tmp_path / "report.md").read_text()


def test_dry_run_prints_grid_and_estimate(tmp_path):
    result = CliRunner().invoke(cli, ["experiment", "--out", str(tmp_path / "x"), "--dry-run",
                                      "--set", "seeds=[0, 1, 2]"])
    assert result.exit_code == 0, result.output
    assert "12 cells" in result.output and "rough total" in result.output
    assert not (tmp_path / "x").exists()


def test_cells_without_abstract_coverage_get_it_from_their_data(tmp_path):
    from tailor_evo.experiment.grid import expand
    from tailor_evo.tasks import get_task

    cfg = ExperimentConfig(seeds=[0], methods=["rule-based"])
    cell = expand(cfg)[0]
    cell_dir = tmp_path / "cells" / cell.name
    task = get_task("kk")
    problems = task.generate(5, 0, levels=[3])
    (cell_dir / "warmstart").mkdir(parents=True)
    (cell_dir / "warmstart" / "data.jsonl").write_text("".join(
        json.dumps({"question": p.question, "completion": task.reference_completion(p)}) + "\n" for p in problems))
    stages = {"warmstart": {"records": 5, "coverage": 99.0},
              "eval_sft": {"accuracy": 0.0, "per_level": {}, "format_error_rate": 0.75},
              "rl": {"reward_curve": [0.0]}, "eval_rl": {"accuracy": 0.0, "per_level": {}, "format_error_rate": 0.25}}
    (cell_dir / "summary.json").write_text(json.dumps({"stages": stages}))
    summary = runner.summarise(cfg, cell, cell_dir)
    assert summary.warmstart_coverage_text == 99.0
    assert (summary.format_err_sft, summary.format_err_final) == (0.75, 0.25)
    assert 0 < summary.warmstart_coverage < 99.0
    stages["warmstart"]["coverage_abstract"] = 7.0
    (cell_dir / "summary.json").write_text(json.dumps({"stages": stages}))
    assert runner.summarise(cfg, cell, cell_dir).warmstart_coverage == 7.0


def test_report_only_reaggregates_without_running_cells(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls, fail=("redistill",)))
    runner.run_experiment(ExperimentConfig(seeds=[0]), tmp_path)
    assert len(calls) == 4
    (tmp_path / "report.md").unlink()
    (tmp_path / "results.md").unlink()
    monkeypatch.setattr(runner, "run_pipeline", lambda *a, **k: pytest.fail("report-only must run no cell"))
    result = CliRunner().invoke(cli, ["experiment", "--out", str(tmp_path), "--report-only", "--set", "seeds=[0]"])
    assert result.exit_code == 0, result.output
    assert "3 cells done, 1 failed, 0 pending" in result.output
    assert "tailor" in (tmp_path / "results.md").read_text()
    assert "kk-L3-tiny-redistill-s0" in (tmp_path / "report.md").read_text()


def test_report_only_on_an_empty_directory_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import sys

    from tailor_evo.cli import main

    monkeypatch.setattr(sys, "argv", ["tailor-evo", "experiment", "--out", str(tmp_path / "nothing"), "--report-only"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "holds no experiment cells" in err and len(err.strip().splitlines()) == 1


def test_claims_are_judged_against_the_seed_spread():
    assert runner._judge((0.5, 0.05), (0.3, 0.05), 3).startswith("supported (higher by 0.200")
    assert runner._judge((0.32, 0.05), (0.3, 0.05), 3).startswith("undecided (difference +0.020")
    assert runner._judge((0.1, 0.02), (0.3, 0.05), 3).startswith("refuted (not higher: behind by 0.200")
    assert runner._judge((0.0, 0.0), (0.0, 0.0), 3).startswith("undecided")
    assert runner._judge((0.5, 0.0), (0.3, 0.0), 1) == "not judged (one seed, no spread; tailor is higher)"
    assert runner._judge((float("nan"), 0.0), (0.3, 0.0), 3) == "not judged (no figures)"


def test_a_method_short_of_the_budget_judges_no_claim_and_the_table_says_so(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls, records={"redistill": 5}))
    runner.run_experiment(ExperimentConfig(seeds=[0, 1]), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert ("tailor vs redistill: not judged: redistill had fewer verified warm-start records than the budget "
            "of 16 in 2/2 seed(s)") in report
    assert "better final accuracy than redistill" not in report
    assert "better final accuracy than rule-based" in report
    row = next(line for line in (tmp_path / "results.md").read_text().splitlines() if "| redistill |" in line)
    assert "5 ± 0 of 16 (2/2)" in row
    # the coverage-gain relation leaves the short cells out: 6 of the 8 cells are used
    assert "coverage vs RL gain over 6 cells" in report


def test_cells_at_chance_are_named(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    runner.run_experiment(ExperimentConfig(seeds=[0]), tmp_path)
    cell = tmp_path / "cells" / "kk-L3-tiny-rule-based-s0" / "summary.json"
    data = json.loads(cell.read_text())
    data["stages"]["eval_rl"]["accuracy"] = 0.1
    cell.write_text(json.dumps(data))
    runner.report_only(ExperimentConfig(seeds=[0]), tmp_path)
    assert ("1/4 cell(s) end at or below chance (0.125) after RL**: rule-based/seed 0 0.100"
            in (tmp_path / "report.md").read_text())


def test_a_grid_at_chance_is_told_apart_from_one_above_it_by_its_pooled_answers(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    cfg = ExperimentConfig(seeds=[0])
    cfg.base.eval.n_per_level = 100
    runner.run_experiment(cfg, tmp_path)
    report = (tmp_path / "report.md").read_text()
    # the fake cells end at 0.2 (rule-based, redistill), 0.35 and 0.65: 140 of 400 answers
    assert "all 4 cells pooled: 140/400 correct = 0.350 vs 0.125, p=" in report
    assert "-> above chance; per method:" in report
    # every cell at 0.13 on 100 problems: above 0.125 cell by cell, but 52/400 is what guessing gives
    for cell in (tmp_path / "cells").iterdir():
        data = json.loads((cell / "summary.json").read_text())
        data["stages"]["eval_rl"]["accuracy"] = 0.13
        (cell / "summary.json").write_text(json.dumps(data))
    runner.report_only(cfg, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "every cell ends above chance (0.125)" in report
    assert "all 4 cells pooled: 52/400 correct = 0.130 vs 0.125, p=0.4 -> not distinguishable from chance" in report
    assert "rule-based 13/100 correct = 0.130 vs 0.125, p=0.48 -> not distinguishable from chance" in report


def test_a_setting_changed_after_the_grid_started_is_named_in_the_report(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    first = ExperimentConfig(seeds=[0], methods=["rule-based"])
    runner.run_experiment(first, tmp_path)
    assert runner.config_changes(first, tmp_path) == []
    assert "configuration changed" not in (tmp_path / "report.md").read_text()
    # the next part of the grid: other seeds and methods are how a grid runs in parts, not a change;
    # a warm-start setting is
    later = ExperimentConfig(seeds=[1], methods=["rule-based", "redistill"])
    later.base.warmstart.teacher_rounds = 4
    with caplog.at_level("WARNING"):
        runner.run_experiment(later, tmp_path)
    assert runner.config_changes(later, tmp_path) == ["base.warmstart.teacher_rounds: 1 -> 4"]
    assert "base.warmstart.teacher_rounds: 1 -> 4" in caplog.text
    report = (tmp_path / "report.md").read_text()
    assert "**The configuration changed after the grid started**" in report
    assert "base.warmstart.teacher_rounds: 1 -> 4" in report


def test_a_saved_config_that_names_only_what_it_changes_is_read_through_the_defaults(tmp_path):
    (tmp_path / "config.yaml").write_text("# kept by hand\nseeds: [0, 1]\nbase:\n  rl: {steps: 20}\n")
    cfg = ExperimentConfig(seeds=[2])
    cfg.base.rl.steps = 20
    assert runner.config_changes(cfg, tmp_path) == []
    cfg.base.rl.steps = 30
    assert runner.config_changes(cfg, tmp_path) == ["base.rl.steps: 20 -> 30"]
    # a setting this version no longer knows: compared as written, so the change still shows
    (tmp_path / "config.yaml").write_text("retired_setting: 1\n")
    assert "retired_setting: 1 -> None" in runner.config_changes(cfg, tmp_path)


def test_the_coverage_gain_relation_is_also_taken_over_every_backbone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    runner.run_experiment(ExperimentConfig(seeds=[0], backbones=["tiny", "tiny-base"]), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert report.count("coverage vs RL gain over 4 cells") == 2
    assert "**kk, all backbones** (tiny, tiny-base; a seed's warm-start data" in report
    assert "coverage vs RL gain over 8 cells" in report


def test_comparison_cells_render_the_archive_elites_and_refill_while_the_main_job_does_neither():
    from tailor_evo.pipeline import PipelineConfig
    from tailor_evo.warmstart.config import WarmstartConfig

    assert PipelineConfig().warmstart.max_primitives == 1
    assert ExperimentConfig().base.warmstart.max_primitives == WarmstartConfig().max_primitives == 32
    # the main job's RL starts near the ceiling and spends no round refilling; comparison cells keep one
    assert PipelineConfig().rl.max_refill_rounds == 0 and ExperimentConfig().base.rl.max_refill_rounds == 1


def test_figures_are_redrawn_after_slow_cells_and_always_at_the_end(tmp_path, monkeypatch):
    calls, draws = [], []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    draw = runner.draw_figures
    monkeypatch.setattr(runner, "draw_figures", lambda *a: draws.append(1) or draw(*a))
    cfg = ExperimentConfig(seeds=[0], methods=["rule-based", "tailor"])
    monkeypatch.setattr(runner, "REDRAW_EVERY_S", 0.0)       # every cell is slow enough to redraw
    runner.run_experiment(cfg, tmp_path / "slow")
    assert len(draws) == 2 + 1
    draws.clear()
    monkeypatch.setattr(runner, "REDRAW_EVERY_S", 3600.0)    # cells within seconds: one drawing, at the end
    runner.run_experiment(cfg, tmp_path / "fast")
    assert len(draws) == 1
    # a write between two drawings links the figures already drawn, the same ones a drawing links
    outcome = runner.write_outputs(cfg, tmp_path / "fast", runner.expand(cfg), [], draw=False)
    assert len(draws) == 1
    report = outcome.report.read_text()
    for kind in runner.FIGURE_KINDS:
        assert f"](plots/kk-{kind}.png)" in report, kind
    assert report == (tmp_path / "slow" / "report.md").read_text().replace(str(tmp_path / "slow"), str(tmp_path / "fast"))
