"""End to end on the tiny backbone: every stage writes its files, and a resumed run skips finished stages."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.config import load_config
from tailor_evo.errors import InputError
from tailor_evo.pipeline import PipelineConfig, run_pipeline

SMALL = [
    "levels=[3]",
    "search.evolution.generations=1", "search.evolution.population=6", "search.evolution.offspring=6",
    "search.evolution.init_random=4", "search.problems.per_eval=8", "search.problems.probe=4",
    "search.problems.pool=64", "search.problems.report=8", "search.archive.min_problems=8",
    "warmstart.size=12", "warmstart.fit_rl_budget=false", "budget=fixed",
    "sft.max_steps=2", "sft.batch_size=4", "sft.save_every=0",
    "rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.max_new_tokens=16", "rl.eval.n=0",
    "eval.n_per_level=3", "eval.max_new_tokens=16",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    result = CliRunner().invoke(cli, ["run", "--out", str(out)] + [a for s in SMALL for a in ("--set", s)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_every_stage_writes_its_outputs(finished_run):
    out, output = finished_run
    for name in ("search", "warmstart", "eval_base", "sft", "eval_sft", "rl", "eval_rl"):
        assert (out / "stages" / f"{name}.json").exists(), name
    assert (out / "search" / "archive.jsonl").exists()
    records = [json.loads(line) for line in (out / "warmstart" / "data.jsonl").read_text().splitlines()]
    assert 0 < len(records) <= 12 and all(r["method"] == "tailor" and r["correct"] for r in records)
    assert (out / "sft" / "model" / "config.json").exists()
    rl_rows = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rl_rows if "reward" in r] == [1, 2]
    for stage in ("eval_base", "eval_sft", "eval_rl"):
        res = json.loads((out / stage / "results.json").read_text())
        assert res["overall"]["n_problems"] == 3
    report = (out / "report.md").read_text()
    assert "Accuracy of the base backbone" in report and "Accuracy after SFT" in report
    assert (out / "plots" / "rl_reward.png").exists()
    assert "report:" in output and "eval after RL" in output


def test_the_run_records_how_fast_its_machine_was(finished_run):
    from tailor_evo.machine import MachineSpeed

    out, _ = finished_run
    machine = MachineSpeed.from_dict(json.loads((out / "stages" / "machine.json").read_text()))
    assert machine.gflops > 0 and machine.cores >= 1 and machine.threads >= 1 and machine.cpu
    assert f"fp32 matmul {machine.gflops:.0f} GFLOP/s" in (out / "report.md").read_text()


def test_exported_models_carry_cards_with_their_results(finished_run):
    from huggingface_hub import ModelCard

    out, _ = finished_run
    sft = ModelCard.load(out / "sft" / "model" / "README.md").data.to_dict()
    assert sft["base_model"] == "tiny-base" and sft["tailor_evo"]["stage"] == "sft"
    assert sft["tailor_evo"]["data"]["warm_start"][0]["method"] == "tailor"
    rl = ModelCard.load(out / "rl" / "model" / "README.md")
    meta = rl.data.to_dict()
    assert meta["tailor_evo"]["lineage"] == [str(out / "sft" / "model"), "tiny-base"]
    assert meta["tailor_evo"]["seed"] == 0 and meta["tailor_evo"]["recipe"]["steps"] == 2
    accuracy = json.loads((out / "eval_rl" / "results.json").read_text())["overall"]["accuracy"]
    held = [r for r in rl.data.eval_results if r.dataset_split == "held-out" and r.dataset_config == "level-3"]
    assert [r.metric_value for r in held] == [round(accuracy, 4)]


def test_the_report_lists_only_the_evaluations_that_ran(finished_run, tmp_path):
    import shutil

    from tailor_evo.pipeline import PipelineResult
    from tailor_evo.pipeline_report import write_run_report

    out, _ = finished_run
    assert "`eval_base/`, `eval_sft/`, `eval_rl/`" in (out / "report.md").read_text()
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "eval_base")               # what `eval.base: false` leaves
    summary = json.loads((copy / "summary.json").read_text())
    stages = {k: v for k, v in summary["stages"].items() if k != "eval_base"}
    cfg = load_config(PipelineConfig, copy / "config.yaml")
    text = write_run_report(cfg, PipelineResult(copy, stages, summary["seconds"])).path.read_text()
    assert "eval_base" not in text and "eval of the base" not in text
    assert "`eval_sft/`, `eval_rl/`" in text


def test_the_report_tests_rls_change_on_the_paired_problems(finished_run, tmp_path):
    from scipy.stats import binomtest

    from tailor_evo.pipeline_report import paired_change, rl_verdict, sign_test

    out, _ = finished_run
    assert "exact sign test" in (out / "report.md").read_text()
    for gained, lost in [(0, 0), (10, 0), (3, 2), (7, 1), (12, 30), (0, 6)]:
        expected = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
        assert sign_test(gained, lost) == pytest.approx(expected)

    def results(name: str, correct: list[bool]) -> object:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"outcomes": [{"problem_id": f"p{i}", "correct": c}
                                                 for i, c in enumerate(correct)]}))
        return path

    sft = results("sft", [False] * 12 + [True] * 88)
    better = paired_change(sft, results("rl", [True] * 12 + [True] * 88))           # 12 turned right, none wrong
    assert (better.problems, better.gained, better.lost) == (100, 12, 0)
    assert rl_verdict(0.12, better).startswith("RL improved held-out accuracy")
    noisy = paired_change(sft, results("noisy", [True] * 4 + [False] * 8 + [False] * 2 + [True] * 86))
    assert (noisy.gained, noisy.lost) == (4, 2) and noisy.p_value > 0.5
    assert rl_verdict(0.02, noisy).startswith("RL did not change held-out accuracy beyond chance")
    worse = paired_change(sft, results("worse", [False] * 12 + [False] * 10 + [True] * 78))
    assert rl_verdict(-0.10, worse).startswith("RL lowered")
    assert paired_change(sft, tmp_path / "missing.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"outcomes": [{"correct": true}]}')                       # no problem_id
    assert paired_change(sft, broken) is None
    assert rl_verdict(0.01, None).startswith("RL changed held-out accuracy by +0.010, not tested")
    twice = results("twice", [False, False])                                     # one problem drawn twice
    twice.write_text(twice.read_text().replace('"p1"', '"p0"'))
    assert (paired_change(twice, twice).problems, paired_change(sft, twice)) == (2, None)


def test_resume_of_a_finished_run_skips_every_stage(finished_run):
    out, _ = finished_run
    before = json.loads((out / "summary.json").read_text())
    cfg = load_config(PipelineConfig, out / "config.yaml")
    result = run_pipeline(cfg, out, resume=True)
    assert result.stages == before["stages"]


def test_refuses_to_mix_into_a_non_empty_directory(finished_run):
    out, _ = finished_run
    with pytest.raises(InputError, match="--resume"):
        run_pipeline(load_config(PipelineConfig, out / "config.yaml"), out)


def test_bad_method_is_a_clear_error():
    with pytest.raises(InputError, match="method"):
        PipelineConfig(method="magic").check()


def test_the_igsm_smollm2_config_changes_only_what_it_names_and_is_accepted():
    """The shipped iGSM recipe on SmolLM2 is a partial config: what it leaves out keeps the main
    job's defaults (one SFT epoch at batch 4, RL without refill rounds), and the pipeline accepts it."""
    from pathlib import Path

    cfg = load_config(PipelineConfig, Path(__file__).parents[1] / "configs" / "igsm-smollm2.yaml")
    cfg.check()
    defaults = PipelineConfig()
    assert (cfg.task, cfg.backbone, cfg.chat, cfg.eval.base) == ("igsm", "smollm2-135m", True, False)
    assert (cfg.warmstart.size, cfg.sft.lr, cfg.rl.lr) == (600, 1e-4, 1e-5)
    assert cfg.rendering == "quoted" and defaults.rendering is None    # the main job keeps the task's default
    assert (cfg.sft.epochs, cfg.sft.batch_size) == (defaults.sft.epochs, defaults.sft.batch_size) == (1, 4)
    assert cfg.rl.max_refill_rounds == defaults.rl.max_refill_rounds == 0
    assert cfg.rl.steps == defaults.rl.steps


def test_tailor_gp_searches_offline_whatever_the_search_config_says(tmp_path):
    from tailor_evo.experiment.grid import Cell

    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--set", "method=tailor-gp", "--set", "search.operator=llm",
            "--set", "search.renderer=llm"] + [a for s in SMALL for a in ("--set", s)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    from tailor_evo.search.engine import SearchConfig

    searched = load_config(SearchConfig, out / "search" / "config.yaml")
    assert (searched.operator, searched.renderer) == ("gp", "executor")
    records = [json.loads(line) for line in (out / "warmstart" / "data.jsonl").read_text().splitlines()]
    assert records and {r["method"] for r in records} == {"tailor-gp"}
    cells = [Cell("kk", [3], "tiny", m, 0) for m in ("tailor", "tailor-gp")]
    assert cells[0].search_name() != cells[1].search_name()


def test_the_data_budget_fits_the_longest_completion_and_never_lowers_a_setting() -> None:
    from tailor_evo.pipeline import apply_budget, data_budget

    assert data_budget([]) == 0
    assert data_budget([100, 410, 200]) == 512          # 410 x 1.2 = 492, rounded up to 32
    assert data_budget([100, 410, 3000], longest=2048) == 512     # SFT never sees the 3,000-token one
    cfg = PipelineConfig()
    cfg.eval.max_new_tokens = 2000
    apply_budget(cfg, 512)
    assert (cfg.rl.max_new_tokens, cfg.rl.eval.max_new_tokens, cfg.eval.max_new_tokens) == (512, 512, 2000)
    with pytest.raises(InputError, match="budget"):
        PipelineConfig(budget="huge").check()


def test_the_overlong_margin_starts_the_penalty_past_the_longest_warm_start_completion(caplog) -> None:
    from tailor_evo.pipeline import apply_overlong_margin

    cfg = PipelineConfig(overlong_margin=True)
    cfg.rl.max_new_tokens = 512                        # the data budget of a 410-token longest completion
    apply_overlong_margin(cfg, {"longest_trained": 410, "completion_tokens": {"max": 3000}})
    assert cfg.rl.overlong_buffer == 102               # 3,000 tokens were never trained on, so 410 counts
    apply_overlong_margin(cfg, {"completion_tokens": {"max": 500}})   # a run recorded before longest_trained
    assert cfg.rl.overlong_buffer == 12
    for warmstart in ({"longest_trained": 512}, {"records": 0}):        # no margin, or no completions at all
        apply_overlong_margin(cfg, warmstart)
        assert cfg.rl.overlong_buffer == 0
    assert "no overlong penalty" in caplog.text and "has no completions" in caplog.text
    with pytest.raises(InputError, match="would be ignored") as err:
        PipelineConfig(overlong_margin=True, rl=dataclasses.replace(PipelineConfig().rl, overlong_buffer=64)).check()
    assert err.value.field == "overlong_margin"


def test_the_report_lists_each_step_reward_of_a_short_rl_run_and_means_of_a_long_one() -> None:
    from tailor_evo.pipeline_report import _reward_trend

    assert _reward_trend([0.5, 0.25, 0.75, 1.0]) == "rollout reward by step 0.500, 0.250, 0.750, 1.000"
    long = [0.0] * 5 + [0.5] * 10 + [1.0] * 5
    assert _reward_trend(long) == "first 5 steps 0.000 -> last 5 steps 1.000"
