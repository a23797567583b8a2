import math

import pytest

from tailor_evo.experiment.grid import ExperimentConfig, expand, teacher_for
from tailor_evo.experiment.summary import CellSummary, aggregate, mean_std, results_table, smooth, steps_to_target
from tailor_evo.errors import InputError


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


def test_grid_rejects_unknown_method():
    with pytest.raises(InputError, match="unknown method"):
        ExperimentConfig(methods=["tailor", "magic"]).check()
