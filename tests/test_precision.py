"""Precision and memory settings: dtype, gradient checkpointing, chunked log-probs, attention implementation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from test_rl import KindTask, ScriptedEngine
from test_sft import CORPUS as SFT_CORPUS
from test_sft import write_data

from tailor_evo.errors import InputError
from tailor_evo.generation.base import SamplingParams
from tailor_evo.rundir import RunDir
from tailor_evo.tasks.registry import register, unregister
from tailor_evo.trainers import rl_batch as batch_module
from tailor_evo.trainers.base import EvalSettings, TrainerConfig, load_trainable, resolve_dtype
from tailor_evo.trainers.checkpoint import load_backbone
from tailor_evo.trainers.rl import RLConfig, train_rl
from tailor_evo.trainers.rl_batch import build_batch, token_outputs
from tailor_evo.trainers.rl_step import optimise
from tailor_evo.trainers.sft import SFTConfig, forward_logits, train_sft

CORPUS = SFT_CORPUS + ["Question: say yes or no. Assistant: yes no yes"] * 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=2, heads=2,
                      vocab_size=400, max_positions=512, corpus=CORPUS)


@pytest.fixture(scope="module")
def rollout_batch(tiny_dir):
    """Two prompts of different lengths, four sampled completions each, of different lengths."""
    from tailor_evo.generation.hf import HFEngine

    model, tok = load_backbone(str(tiny_dir))
    engine = HFEngine(model, tok, batch_size=8, show_progress=False)
    prompts = ["Question: add one and two.\nAssistant:", "Question: a longer prompt, add three and four.\nAssistant:"]
    flat = [c for g in engine.generate(prompts, SamplingParams(n=4, max_new_tokens=11, seed=4)) for c in g]
    return build_batch([(c.prompt_token_ids, c.token_ids, c.logprobs) for c in flat],
                       [float(i % 3) for i in range(8)], [False] * 8, [True] * 8, tok.pad_token_id)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("share", [1, 4])
def test_chunked_logprobs_equal_those_of_the_whole_micro_batch(tiny_dir, rollout_batch, share):
    """Same log-probs, entropies and gradients whether the LM head sees all positions at once or a few at a time."""
    results = []
    for chunk in (0, 1, 4):
        model, _ = load_backbone(str(tiny_dir))
        model.train()
        logp, ent = token_outputs(model, rollout_batch, share, chunk, with_entropy=True)
        (logp * rollout_batch.completion_mask).sum().backward()
        results.append((logp.detach(), ent, _grads(model)))
    (lp0, ent0, g0) = results[0]
    mask = rollout_batch.completion_mask.bool()
    for lp, ent, g in results[1:]:
        assert torch.allclose(lp[mask], lp0[mask], atol=1e-6, rtol=0)
        assert torch.allclose(ent[mask], ent0[mask], atol=1e-6, rtol=0)
        assert g.keys() == g0.keys()
        for n in g0:
            assert torch.allclose(g[n], g0[n], atol=1e-6, rtol=1e-5), n


def test_chunked_logprobs_never_hold_a_whole_micro_batch_of_logits(tiny_dir, rollout_batch, monkeypatch):
    """The LM head only ever sees ``chunk`` positions (forward and the backward's recompute)."""
    model, _ = load_backbone(str(tiny_dir))
    model.train()
    head = model.get_output_embeddings()
    widths = []
    head.register_forward_hook(lambda _m, args, out: widths.append(tuple(out.shape[:2])))
    logp, _ = token_outputs(model, rollout_batch, 4, 3)
    logp.sum().backward()
    assert widths and all(w[1] <= 3 for w in widths)
    assert sum(w[1] for w in widths if w[1] > 0) >= 2 * rollout_batch.width    # recomputed in backward


def test_chunked_logprobs_refuse_a_model_that_scales_its_logits(tiny_dir):
    from tailor_evo.trainers.rl_batch import check_chunkable

    model, _ = load_backbone(str(tiny_dir))
    check_chunkable(model)
    model.config.logits_scaling = 4.0
    with pytest.raises(InputError) as err:
        check_chunkable(model)
    assert err.value.field == "logprob_chunk"


def _sft_grads(tiny_dir: Path, data: Path, checkpointing: bool) -> dict[str, torch.Tensor]:
    from tailor_evo.trainers.data import collate, load_sft_data
    from tailor_evo.trainers.losses import sft_loss

    model, tok = load_trainable(TrainerConfig(model=str(tiny_dir), dtype="float32",
                                              gradient_checkpointing=checkpointing))
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules()) == checkpointing
    model.train()
    batch = collate(load_sft_data(data, tok, 256).examples[:6], tok.pad_token_id)
    sft_loss(forward_logits(model, batch), batch["labels"]).backward()
    return _grads(model)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_dir, rollout_batch, tmp_path):
    data = write_data(tmp_path / "d.jsonl")
    plain, ckpt = _sft_grads(tiny_dir, data, False), _sft_grads(tiny_dir, data, True)
    assert plain.keys() == ckpt.keys()
    for n in plain:
        assert torch.allclose(plain[n], ckpt[n], atol=1e-6, rtol=1e-5), n
    # the RL update: checkpointing runs the plain pass (no shared prompt cache), same gradients
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.2, -0.2, 1.0, -1.0])
    grads = []
    for checkpointing in (False, True):
        cfg = RLConfig(model=str(tiny_dir), micro_batch=4, group_size=4, beta=0.0, dtype="float32",
                       gradient_checkpointing=checkpointing)
        model, _ = load_trainable(cfg)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        opt.zero_grad = lambda set_to_none=True: None      # keep the gradients after the step
        optimise(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), rollout_batch, advantages,
                 None, None, cfg)
        grads.append(_grads(model))
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4), n


# bfloat16 keeps 8 bits of mantissa: a few steps' losses stay within 2% of float32 on these tiny runs
BF16_REL_TOL = 0.02


def test_bfloat16_sft_steps_follow_float32(tiny_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", n=16)
    losses = {}
    for dtype in ("float32", "bfloat16"):
        run = RunDir.create(tmp_path / dtype)
        out = train_sft(SFTConfig(model=str(tiny_dir), data=str(data), max_steps=4, batch_size=4, lr=3e-3,
                                  save_every=0, threads=1, dtype=dtype), run)
        losses[dtype] = [r["loss"] for r in run.read_metrics() if "loss" in r]
        with safe_open(str(next(out.glob("*.safetensors"))), framework="pt") as fh:
            assert {fh.get_tensor(k).dtype for k in fh.keys()} == {resolve_dtype(dtype)}     # trained in it
    assert len(losses["float32"]) == 4
    assert losses["float32"][-1] < losses["float32"][0]          # it trains
    for a, b in zip(losses["float32"], losses["bfloat16"]):
        assert b == pytest.approx(a, rel=BF16_REL_TOL)


def test_bfloat16_rl_steps_follow_float32(tiny_dir, tmp_path, monkeypatch):
    """The same scripted rollouts in both runs, so the step losses, KL and entropies are comparable."""
    register(KindTask)
    dtypes = []
    original = batch_module.sequence_logprobs
    monkeypatch.setattr(batch_module, "sequence_logprobs",
                        lambda m, *a, **k: dtypes.append(next(m.parameters()).dtype) or original(m, *a, **k))
    try:
        rows = {}
        for dtype in ("float32", "bfloat16"):
            run = RunDir.create(tmp_path / dtype)
            train_rl(RLConfig(model=str(tiny_dir), task="toy-kinds", levels=[1], seed=5, steps=4, prompts_per_step=3,
                              group_size=4, max_new_tokens=8, lr=3e-3, beta=0.1, micro_batch=4, pool_size=16,
                              save_every=0, threads=1, coverage=False, dtype=dtype,
                              eval=EvalSettings(every=0, n=0)), run, engine_factory=lambda m, t: ScriptedEngine(t))
            rows[dtype] = [r for r in run.read_metrics() if "reward" in r]
    finally:
        unregister(KindTask.name)
    assert dtypes[0] == torch.float32 and dtypes[-1] == torch.bfloat16          # the reference is held in bf16
    fp32, bf16 = rows["float32"], rows["bfloat16"]
    assert [r["reward"] for r in fp32] == [r["reward"] for r in bf16]
    assert any(r["kl"] > 0 for r in fp32)
    for a, b in zip(fp32, bf16):
        assert b["entropy"] == pytest.approx(a["entropy"], rel=BF16_REL_TOL)
        assert b["loss"] == pytest.approx(a["loss"], rel=BF16_REL_TOL, abs=2e-3)
        assert b["kl"] == pytest.approx(a["kl"], rel=0.25, abs=2e-3)


def test_precision_settings_are_checked(tiny_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl")
    for bad, field in ((dict(dtype="fp8"), "dtype"), (dict(gradient_checkpointing="yes"), "gradient_checkpointing"),
                       (dict(attn_implementation=3), "attn_implementation")):
        with pytest.raises(InputError) as err:
            train_sft(SFTConfig(model=str(tiny_dir), data=str(data), **bad), RunDir.create(tmp_path / field))
        assert err.value.field == field
    with pytest.raises(InputError) as err:
        train_rl(RLConfig(model=str(tiny_dir), logprob_chunk=-1), RunDir.create(tmp_path / "chunk"))
    assert err.value.field == "logprob_chunk"
    with pytest.raises(InputError) as err:
        load_trainable(TrainerConfig(model=str(tiny_dir), attn_implementation="no_such_kernel"))
    assert err.value.field == "attn_implementation"
    model, _ = load_trainable(TrainerConfig(model=str(tiny_dir), attn_implementation="eager"))
    assert model.config._attn_implementation == "eager"
    assert resolve_dtype("auto") == (torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                                     else torch.float32)
