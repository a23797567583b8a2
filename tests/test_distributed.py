"""The rules for several processes that need no second process to check: how rows merge, which
strategies and settings are refused, and the launch that asked for processes and got one.
(The two-process runs themselves are in tests/test_multiprocess.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tailor_evo.errors import InputError
from tailor_evo.trainers.distributed import check_strategy, merge_rows
from tailor_evo.trainers.loop import check_launch
from tailor_evo.trainers.rl import check_processes
from tailor_evo.trainers.rl_config import RLConfig


def fake(kind: str = "MULTI_CPU", processes: int = 2) -> SimpleNamespace:
    return SimpleNamespace(distributed_type=kind, num_processes=processes)


def test_rows_merge_by_their_rules():
    rows = [{"step": 3, "reward": 1.0, "_n": 1, "groups": 2, "seconds": 4.0, "loss": 0.5, "lr": 0.1},
            {"step": 3, "reward": 0.0, "_n": 3, "groups": 1, "seconds": 6.0, "loss": 1.5, "lr": 0.1}]
    rules = {"reward": "mean:_n", "groups": "sum", "seconds": "max", "loss": "mean"}
    assert merge_rows(rows, rules) == {"step": 3, "reward": 0.25, "groups": 3, "seconds": 6.0, "loss": 1.0, "lr": 0.1}
    assert merge_rows(rows[:1], rules) == {"step": 3, "reward": 1.0, "groups": 2, "seconds": 4.0, "loss": 0.5,
                                           "lr": 0.1}
    with pytest.raises(ValueError, match="unknown merge rule"):
        merge_rows(rows, {"reward": "median"})


def test_rl_row_rules_name_only_logged_keys():
    from tailor_evo.trainers.rl_report import MERGE_RULES, step_record
    from tailor_evo.trainers.rl_step import StepResult
    from tailor_evo.trainers.sampling import StepSample

    row = step_record(1, StepSample(groups=[], rounds=1), StepResult(), 0.1, seconds=1.0,
                      times={"generate": 0.0, "score": 0.0, "logprobs": 0.0, "train": 0.0})
    assert set(MERGE_RULES) <= set(row)
    weights = {rule.split(":")[1] for rule in MERGE_RULES.values() if ":" in rule}
    assert weights <= set(row) and all(w.startswith("_") for w in weights)


@pytest.mark.parametrize("kind", ["DEEPSPEED"])
def test_deepspeed_is_refused_with_the_reason(kind):
    with pytest.raises(InputError, match="steps the optimiser inside each backward"):
        check_strategy(fake(kind), "sft", resume=False, live_eval=False, lora=False)


@pytest.mark.parametrize("stage,resume,live_eval,lora,why", [
    ("rl", False, False, False, "RL generates its rollouts"),
    ("sft", False, True, False, "live evaluation"),
    ("sft", False, False, True, "LoRA"),
    ("sft", True, False, False, "--resume is supported under DDP"),
])
def test_fsdp_refuses_what_needs_whole_weights(stage, resume, live_eval, lora, why):
    with pytest.raises(InputError, match="not supported under FSDP") as err:
        check_strategy(fake("FSDP"), stage, resume=resume, live_eval=live_eval, lora=lora)
    assert why in str(err.value)


def test_fsdp_sft_without_those_settings_and_ddp_everything_pass():
    check_strategy(fake("FSDP"), "sft", resume=False, live_eval=False, lora=False)
    for stage in ("sft", "rl"):
        check_strategy(fake("MULTI_GPU"), stage, resume=True, live_eval=True, lora=True)


def test_a_cpu_launch_that_got_one_process_is_refused():
    env = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(InputError, match="started a single process"):
        check_launch(fake("NO", 1), env)
    check_launch(fake("NO", 1), {"ACCELERATE_USE_CPU": "True"})                  # plain single-process launch
    check_launch(fake("MULTI_CPU", 2), {**env, "WORLD_SIZE": "2"})              # really two processes


def test_rl_under_several_processes_refuses_uneven_shares_and_dynamic_sampling():
    with pytest.raises(InputError, match="does not split over 2 processes"):
        check_processes(RLConfig(prompts_per_step=3), fake(), resume=False)
    with pytest.raises(InputError, match="dynamic sampling runs in one process"):
        check_processes(RLConfig(prompts_per_step=4, dynamic_sampling=True), fake(), resume=False)
    check_processes(RLConfig(prompts_per_step=4), fake(), resume=False)
    check_processes(RLConfig(prompts_per_step=3, dynamic_sampling=True), fake("NO", 1), resume=False)


def test_the_whole_job_refuses_several_processes():
    from tailor_evo.pipeline import check_single_process

    with pytest.raises(InputError, match="runs in one process, and this launch has 2"):
        check_single_process({"WORLD_SIZE": "2"})
    check_single_process({})
    check_single_process({"WORLD_SIZE": "1"})


def test_a_process_left_without_examples_takes_part_with_nothing_supervised():
    from tailor_evo.trainers.data import IGNORE_INDEX, SFTExample
    from tailor_evo.trainers.sft import _share

    examples = [SFTExample([1, 2, 3], [IGNORE_INDEX, 2, 3], f"r{i}") for i in range(3)]
    assert [e.record_id for e in _share(examples, [2, 0, 1], 1, 2)] == ["r0"]
    spare = _share(examples, [2], 1, 2)                       # one example for two processes
    assert [e.input_ids for e in spare] == [[1, 2, 3]] and spare[0].labels == [IGNORE_INDEX] * 3
    assert [e.record_id for e in _share(examples, [2], 0, 2)] == ["r2"]
    assert _share(examples, [2], 0, 1)[0] is examples[2]
