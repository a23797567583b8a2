"""vLLM rollouts for RL: weights are pushed into vLLM before every generation; clear errors off-GPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tailor_evo.errors import InputError, TailorError
from tailor_evo.generation import vllm_backend
from tailor_evo.generation.base import SamplingParams


class FakeVLLMModel:
    def __init__(self):
        self.loaded: list[dict[str, torch.Tensor]] = []

    def load_weights(self, weights):
        self.loaded.append({name: t.clone() for name, t in weights})


def fake_llm(model, v1: bool = False):
    runner = SimpleNamespace(model=model)
    worker = SimpleNamespace(worker=SimpleNamespace(model_runner=runner)) if v1 else SimpleNamespace(model_runner=runner)
    llm = SimpleNamespace(llm_engine=SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker)))
    llm.resets = 0

    def reset_prefix_cache():
        llm.resets += 1
    llm.reset_prefix_cache = reset_prefix_cache
    return llm


@pytest.mark.parametrize("v1", [False, True])
def test_vllm_model_is_found_in_both_engine_layouts(v1):
    model = FakeVLLMModel()
    assert vllm_backend.vllm_model(fake_llm(model, v1)) is model


def test_unreachable_vllm_model_is_a_clear_error():
    with pytest.raises(TailorError, match="rollout_backend: hf"):
        vllm_backend.vllm_model(SimpleNamespace(llm_engine=None))


def test_push_prefers_the_workers_in_place_reload():
    """vLLM 0.2x+ turns parameters into kernel format after loading; its worker's
    reload_weights is the way in there, and the model's load_weights only for older releases."""
    model = FakeVLLMModel()
    llm = fake_llm(model, v1=True)
    reloaded = []
    worker = llm.llm_engine.model_executor.driver_worker.worker
    worker.reload_weights = lambda weights_iterator, is_checkpoint_format: reloaded.append(
        (dict(weights_iterator), is_checkpoint_format))
    vllm_backend.push_weights(llm, [("w", torch.ones(1))])
    assert len(reloaded) == 1 and reloaded[0][1] is True and set(reloaded[0][0]) == {"w"} and model.loaded == []
    del worker.reload_weights
    vllm_backend.push_weights(llm, [("w", torch.ones(1))])
    assert len(model.loaded) == 1


def test_every_generation_pushes_the_current_policy_weights(monkeypatch):
    policy = torch.nn.Linear(3, 2)
    target = FakeVLLMModel()
    calls = []

    class FakeEngine:
        def __init__(self, model, **kwargs):
            self.llm, self.tokenizer = fake_llm(target), None

        def generate(self, prompts, params):
            calls.append(len(target.loaded))
            return [[] for _ in prompts]

    monkeypatch.setattr(vllm_backend, "VLLMEngine", FakeEngine)
    engine = vllm_backend.VLLMRolloutEngine(policy, "some/model")
    engine.generate(["a"], SamplingParams())
    with torch.no_grad():
        policy.weight.add_(1.0)          # an optimiser step
    engine.generate(["a"], SamplingParams())
    assert calls == [1, 2] and engine.syncs == 2 and engine.engine.llm.resets == 2
    first, second = target.loaded
    assert set(first) == {"weight", "bias"}
    assert torch.allclose(second["weight"], first["weight"] + 1.0)
    assert torch.equal(second["weight"], policy.weight.detach())


def test_lora_policies_are_refused(monkeypatch):
    monkeypatch.setattr(vllm_backend, "VLLMEngine", lambda *a, **k: pytest.fail("engine must not be built"))
    policy = torch.nn.Linear(2, 2)
    policy.peft_config = {"default": None}
    with pytest.raises(TailorError, match="LoRA"):
        vllm_backend.VLLMRolloutEngine(policy, "some/model")


def test_vllm_rollouts_without_vllm_name_the_setting(monkeypatch):
    from tailor_evo.trainers.rl import RLConfig, rollout_engine_factory

    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    with pytest.raises(InputError, match="rollout_backend"):
        rollout_engine_factory(RLConfig(rollout_backend="vllm"))
    assert callable(rollout_engine_factory(RLConfig()))


def test_unknown_rollout_backend_is_rejected():
    from tailor_evo.trainers.rl_config import RLConfig, check_rl_config

    with pytest.raises(InputError, match="rollout_backend"):
        check_rl_config(RLConfig(rollout_backend="sglang"))


def test_unknown_eval_backend_is_rejected(tmp_path):
    from tailor_evo.pipeline import PipelineConfig, stage_eval

    cfg = PipelineConfig()
    cfg.eval.backend = "sglang"
    cfg.eval.n_per_level = 2
    with pytest.raises(InputError, match="eval.backend"):
        stage_eval(cfg, tmp_path / "eval", str(tmp_path / "model"))


def test_eval_backend_turns_a_bare_model_into_a_spec():
    from tailor_evo.generation import engine_spec

    assert engine_spec("tiny-base", "vllm") == "vllm:tiny-base"
    assert engine_spec("/models/m", "hf") == "hf:/models/m"
    assert engine_spec("openai:http://127.0.0.1:8000/v1#m", "vllm") == "openai:http://127.0.0.1:8000/v1#m"
    assert engine_spec("hf:tiny", "vllm") == "hf:tiny"


def test_unknown_eval_command_backend_is_rejected(tmp_path):
    from tailor_evo.trainers.eval_cli import EvalConfig, run_eval

    with pytest.raises(InputError, match="backend"):
        run_eval(EvalConfig(model="tiny", backend="sglang", n_per_level=2), tmp_path / "e")


def test_missing_vllm_names_how_to_get_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm":
            raise ImportError("no vllm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(vllm_backend.MissingExtraError, match="make vllm-env"):
        vllm_backend.VLLMEngine("tiny")


def test_seeded_cpu_batches_are_split_to_prefill_in_one_step():
    from tailor_evo.generation.vllm_backend import split_for_budget

    runs = split_for_budget([100, 100, 100, 300, 50], n=2, tokens=500, seqs=8)
    assert [list(r) for r in runs] == [[0, 1], [2], [3], [4]]        # 2 x 100 x 2 = 400 <= 500 < 600
    assert [list(r) for r in split_for_budget([10] * 5, n=4, tokens=10**6, seqs=8)] == [[0, 1], [2, 3], [4]]
    assert [list(r) for r in split_for_budget([900], n=1, tokens=500, seqs=8)] == [[0]]   # alone when over
    assert split_for_budget([], n=1, tokens=500, seqs=8) == []
