import math

import pytest

from tailor_evo.errors import InputError
from tailor_evo.experiment.grid import ExperimentConfig, expand, teacher_budget, teacher_for
from tailor_evo.experiment.runner import cell_run_config
from tailor_evo.experiment.summary import CellSummary, aggregate, mean_std, results_table, smooth, steps_to_target


def cell(method, seed, acc_sft, acc_final, rewards, cov=10.0):
    return CellSummary(task="kk", backbone="tiny", method=method, seed=seed, levels=[3], acc_sft=acc_sft,
                       acc_final=acc_final, acc_sft_per_level={"3": acc_sft}, acc_final_per_level={"3": acc_final},
                       steps_to_target=steps_to_target(rewards, 0.5, window=2), reward_auc=sum(rewards) / len(rewards),
                       warmstart_coverage=cov, warmstart_size=8, rl_steps=len(rewards), reward_curve=rewards)


def test_smooth_and_steps_to_target():
    assert smooth([0, 1, 1, 0], 2) == [0, 0.5, 1.0, 0.5]
    assert steps_to_target([0.0, 0.2, 0.6, 0.8], 0.5, window=2) == 4   # smoothed: 0, .1, .4, .7
    assert steps_to_target([0.1, 0.1], 0.5) is None


def test_mean_std_uses_sample_std():
    m, s = mean_std([1.0, 3.0])
    assert m == 2.0 and s == pytest.approx(math.sqrt(2.0))
    assert mean_std([0.4]) == (0.4, 0.0)


def test_aggregate_groups_by_method_and_counts_unreached_targets_as_the_budget():
    cells = [cell("tailor", 0, 0.2, 0.5, [0.2, 0.6, 0.9]), cell("tailor", 1, 0.1, 0.3, [0.1, 0.1, 0.1]),
             cell("rule-based", 0, 0.2, 0.2, [0.0, 0.0, 0.1])]
    rows = {r.method: r for r in aggregate(cells)}
    assert rows["tailor"].seeds == 2 and rows["tailor"].acc_final[0] == pytest.approx(0.4)
    assert rows["tailor"].rl_gain[0] == pytest.approx(0.25)
    assert rows["tailor"].reached_target == 1
    # seed 0 reaches 0.5 (smoothed over 2) at step 3; seed 1 never: counted as 3 (the RL budget)
    assert rows["tailor"].steps_to_target[0] == pytest.approx(3.0)
    table = results_table(list(rows.values()))
    assert "tailor" in table and "rule-based" in table and "0.400 ± 0.141" in table


def test_grid_orders_rule_based_before_redistill_and_needs_its_model(tmp_path):
    cfg = ExperimentConfig(seeds=[0, 1])
    cells = expand(cfg)
    assert len(cells) == 8
    names = [c.name for c in cells]
    for seed in (0, 1):
        assert names.index(f"kk-L3-tiny-rule-based-s{seed}") < names.index(f"kk-L3-tiny-redistill-s{seed}")
    redistill = next(c for c in cells if c.method == "redistill")
    with pytest.raises(InputError, match="rule-based"):
        teacher_for(cfg, redistill, tmp_path)
    marker = tmp_path / "cells" / "kk-L3-tiny-rule-based-s0" / "stages" / "sft.json"
    marker.parent.mkdir(parents=True)
    marker.write_text('{"model": "/models/rule-based-sft"}')
    assert teacher_for(cfg, redistill, tmp_path) == "hf:/models/rule-based-sft"
    rl = ExperimentConfig(seeds=[0, 1], redistill_teacher="rl:rule-based")
    with pytest.raises(InputError, match="rl stage of cell kk-L3-tiny-rule-based-s0"):
        teacher_for(rl, redistill, tmp_path)
    (marker.parent / "rl.json").write_text('{"model": "/models/rule-based-rl"}')
    assert teacher_for(rl, redistill, tmp_path) == "hf:/models/rule-based-rl"
    assert teacher_for(ExperimentConfig(redistill_teacher="hf:smollm2-135m"), redistill, tmp_path) == "hf:smollm2-135m"
    with pytest.raises(InputError, match="not in methods"):
        ExperimentConfig(methods=["tailor", "redistill"], redistill_teacher="rl:rule-based").check()


def test_a_redistill_teacher_answers_within_its_teacher_cells_budget(tmp_path):
    cfg = ExperimentConfig(seeds=[0], redistill_teacher="rl:rule-based")
    cfg.base.warmstart.teacher_max_new_tokens = 320
    cells = {c.method: c for c in expand(cfg)}
    redistill = cells["redistill"]
    assert teacher_budget(cfg, redistill, tmp_path) == 0            # the teacher cell has not run
    assert cell_run_config(cfg, redistill, tmp_path).warmstart.teacher_max_new_tokens == 320
    stages = tmp_path / "cells" / cells["rule-based"].name / "stages"
    stages.mkdir(parents=True)
    (stages / "warmstart.json").write_text('{"records": 512, "max_new_tokens": 1248}')
    assert teacher_budget(cfg, redistill, tmp_path) == 1248
    assert cell_run_config(cfg, redistill, tmp_path).warmstart.teacher_max_new_tokens == 1248
    assert cell_run_config(cfg, cells["tailor"], tmp_path).warmstart.teacher_max_new_tokens == 320
    cfg.base.warmstart.teacher_max_new_tokens = 2000                # raised, never lowered
    assert cell_run_config(cfg, redistill, tmp_path).warmstart.teacher_max_new_tokens == 2000
    cfg.base.warmstart.teacher_max_new_tokens = 320
    cfg.base.budget = "fixed"                                       # a fixed budget is the configured one
    assert cell_run_config(cfg, redistill, tmp_path).warmstart.teacher_max_new_tokens == 320
    external = ExperimentConfig(seeds=[0], redistill_teacher="hf:smollm2-135m")
    assert teacher_budget(external, redistill, tmp_path) == 0


def test_grid_rejects_unknown_method():
    with pytest.raises(InputError, match="unknown method"):
        ExperimentConfig(methods=["tailor", "magic"]).check()


def test_held_out_accuracy_convergence_measures():
    from tailor_evo.experiment.summary import accuracy_auc, eval_steps_to_target

    curve = [[0, 0.1], [10, 0.3], [20, 0.5], [30, 0.4]]
    assert eval_steps_to_target(curve, 0.45) == 20
    assert eval_steps_to_target(curve, 0.9) is None and eval_steps_to_target(curve, None) is None
    # trapezoids: (0.1+0.3)/2 + (0.3+0.5)/2 + (0.5+0.4)/2 = 1.05 per 10 steps, over 30 steps
    assert accuracy_auc(curve) == pytest.approx(1.05 * 10 / 30)
    assert math.isnan(accuracy_auc(curve[:1]))


def test_aggregate_reports_held_out_convergence_and_counts_unreached_as_the_budget():
    from tailor_evo.experiment.summary import accuracy_auc, eval_steps_to_target

    cells = [cell("tailor", s, 0.1, 0.3, [0.1, 0.2, 0.3]) for s in (0, 1)]
    for c, curve in zip(cells, ([[0, 0.1], [3, 0.4]], [[0, 0.1], [3, 0.2]])):
        c.eval_curve, c.accuracy_auc = curve, accuracy_auc(curve)
        c.steps_to_target_acc = eval_steps_to_target(curve, 0.3)
    row = aggregate(cells)[0]
    assert row.reached_target_acc == 1
    assert row.steps_to_target_acc[0] == pytest.approx(3.0)      # reached at 3; never: the budget, 3
    assert row.accuracy_auc[0] == pytest.approx((0.25 + 0.15) / 2)
    assert "0.200 ± 0.071" in results_table([row])


def test_coverage_gain_relation_gives_a_confidence_interval():
    from tailor_evo.experiment.runner import coverage_gain_relation

    cells = [cell("tailor", s, 0.1, 0.1 + 0.05 * s + (0.02 if s % 2 else 0), [0.1], cov=10.0 + s) for s in range(6)]
    line = coverage_gain_relation(cells)
    assert line is not None and "Pearson r 0.9" in line and "95% CI" in line and "Spearman rho" in line
    low, high = (float(v) for v in line.split("95% CI ")[1].split(",")[0].split(" to "))
    assert -1 <= low < high <= 1
    assert coverage_gain_relation(cells[:3]) is None


def test_target_accuracy_is_checked():
    with pytest.raises(InputError, match="accuracy in"):
        ExperimentConfig(target_accuracy=1.5).check()


@pytest.mark.parametrize("name", ["cpu-smoke", "cpu-kk", "cpu-igsm", "gpu-paper"])
def test_shipped_grid_configs_load_and_pass_their_checks(name):
    from pathlib import Path

    from tailor_evo.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "experiments" / f"{name}.yaml"
    cfg = load_config(ExperimentConfig, str(path), [])
    cfg.check()
    if name in ("cpu-kk", "cpu-igsm"):      # the comparison's grids: both bases, a target fixed ahead
        assert cfg.backbones == ["tiny-base", "tiny-base-m"] and cfg.target_accuracy is not None
        assert cfg.redistill_teacher == "rl:rule-based" and cfg.base.warmstart.teacher_rounds > 1
