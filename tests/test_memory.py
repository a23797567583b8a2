"""The memory estimate of --dry-run: parameter counts and every part against hand arithmetic,
gpu-paper.yaml within one 80 GB GPU, and the table printed by the commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.errors import InputError
from tailor_evo.models.registry import model_config
from tailor_evo.trainers.memory import (
    GB,
    RUNTIME_BYTES,
    ModelShape,
    estimate_grid,
    estimate_pipeline,
    estimate_rl,
    estimate_sft,
    format_estimates,
)
from tailor_evo.trainers.rl import RLConfig
from tailor_evo.trainers.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
# hidden 64, 2 layers, MLP 128, vocabulary 100, 4 heads of 16 with 2 KV heads, untied head
SMALL = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
         "vocab_size": 100, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}
SHAPE = ModelShape.from_config(SMALL)
# per layer: q 64x64, k and v 64x32, o 64x64, gate/up/down 3 x 64x128, two norms of 64
LAYER = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64
PARAMS = 2 * 100 * 64 + 2 * LAYER + 64          # embeddings + head, layers, final norm


def test_parameter_count_by_hand():
    assert SHAPE.layer_parameters() == LAYER == 36992
    assert SHAPE.parameters() == PARAMS == 86848
    assert SHAPE.lora_parameters(4, ["q_proj", "v_proj"]) == 2 * 4 * ((64 + 64) + (64 + 32))
    with pytest.raises(InputError, match="lora.target_modules"):
        SHAPE.lora_parameters(4, ["qkv"])


@pytest.mark.parametrize("model_type,tied", [("llama", False), ("llama", True), ("qwen2", True)])
def test_parameter_count_matches_transformers(model_type, tied):
    """The formula is the count of the real module (Qwen2: with its q, k, v biases)."""
    import transformers

    config = dict(SMALL, model_type=model_type, tie_word_embeddings=tied)
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[model_type]
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    with torch.device("meta"):          # shapes only: no memory, no initialisation
        model = transformers.AutoModelForCausalLM.from_config(cls(**kwargs))
    real = sum(p.numel() for p in model.parameters())
    assert ModelShape.from_config(config).parameters() == real


def test_lora_count_matches_peft():
    import transformers
    from peft import LoraConfig, get_peft_model

    kwargs = {k: v for k, v in SMALL.items() if k != "model_type"}
    with torch.device("meta"):
        base = transformers.AutoModelForCausalLM.from_config(transformers.LlamaConfig(**kwargs))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                      task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert SHAPE.lora_parameters(4, ["q_proj", "k_proj", "v_proj", "o_proj"]) == trainable


def _parts(est) -> dict[str, float]:
    return {line.part: line.bytes for line in est.lines}


def test_rl_estimate_by_hand():
    cfg = RLConfig(model="small", dtype="float32", micro_batch=2, max_new_tokens=10, beta=0.1, gen_batch_size=4)
    cfg.eval.every = 0
    parts = _parts(estimate_rl(cfg, SHAPE, prompt_tokens=6))
    tokens = 6 + 10
    assert parts["weights"] == PARAMS * 4 and parts["gradients"] == PARAMS * 4
    assert parts["optimiser"] == 2 * PARAMS * 4 and parts["reference"] == PARAMS * 4
    # 2 layers x 2 rows x 16 tokens x (12 x 64 + 4 x 128) values x 4 bytes
    assert parts["activations"] == 2 * 2 * tokens * (12 * 64 + 4 * 128) * 4
    assert parts["logits"] == 2 * 10 * 100 * (4 + 8)                   # completion positions only
    assert parts["KV cache"] == 4 * tokens * (2 * 2 * 32 * 4)          # layers x (k, v) x kv_dim x bytes
    assert parts["runtime"] == RUNTIME_BYTES
    est = estimate_rl(cfg, SHAPE, prompt_tokens=6)
    held = (1 + 1 + 2 + 1) * PARAMS * 4 + RUNTIME_BYTES        # weights, gradients, 2 moments, reference
    assert est.peak == held + max(parts["activations"] + parts["logits"], parts["KV cache"])


def test_checkpointing_chunking_bfloat16_and_lora_by_hand():
    cfg = RLConfig(model="small", dtype="auto", micro_batch=2, max_new_tokens=10, beta=0.1,
                   gradient_checkpointing=True, logprob_chunk=4, rollout_backend="vllm", vllm_gpu_memory=0.25)
    parts = _parts(estimate_rl(cfg, SHAPE, prompt_tokens=6, device_gb=80))
    tokens = 16
    # one saved input per layer, plus one layer's whole set while it is recomputed; bfloat16
    assert parts["activations"] == 2 * 2 * tokens * 64 * 2 + 2 * tokens * (12 * 64 + 4 * 128) * 2
    assert parts["logits"] == 2 * 4 * 100 * (2 + 8)
    assert parts["vLLM"] == 0.25 * 80 * GB and "KV cache" not in parts
    cfg.lora.enabled, cfg.lora.r = True, 4
    parts = _parts(estimate_rl(cfg, SHAPE, prompt_tokens=6))
    adapters = SHAPE.lora_parameters(4, list(cfg.lora.target_modules))
    assert parts["weights"] == PARAMS * 2 + adapters * 4
    assert parts["gradients"] == adapters * 4 and parts["optimiser"] == 2 * adapters * 4
    assert parts["reference"] == 0                                      # the base with adapters off


def test_sft_estimate_micro_batch_follows_the_batching():
    cfg = SFTConfig(model="small", dtype="float32", max_length=32, batch_size=3, batching="padded")
    assert _parts(estimate_sft(cfg, SHAPE))["logits"] == 3 * 32 * 100 * 12
    cfg.batching, cfg.bucket_tokens = "bucketed", 64       # at most 64 tokens: 2 rows of 32
    parts = _parts(estimate_sft(cfg, SHAPE))
    assert parts["activations"] == 2 * 2 * 32 * (12 * 64 + 4 * 128) * 4
    assert "reference" not in parts


def test_gpu_paper_fits_one_80_gb_gpu():
    from tailor_evo.commands.experiment import grid_memory
    from tailor_evo.config import load_config
    from tailor_evo.experiment.grid import ExperimentConfig, cell_config, expand

    cfg = load_config(ExperimentConfig, str(ROOT / "configs" / "experiments" / "gpu-paper.yaml"), [])
    cells = expand(cfg)
    runs = [(cell_config(cfg, c), cfg.redistill_teacher if c.method == "redistill" else None) for c in cells]
    estimates = estimate_grid(runs)
    assert {e.model for e in estimates} >= {"Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct"}
    assert all(e.fits for e in estimates), format_estimates(estimates)
    rl3 = next(e for e in estimates if e.stage == "train rl" and e.model.endswith("3B-Instruct"))
    assert 60 * GB < rl3.peak <= 80 * GB
    assert "fits one 80 GB device" in grid_memory(cfg, cells)


def test_a_32b_teacher_in_process_does_not_leave_room():
    """The reason gpu-paper serves its 32B LLM elsewhere: in vLLM's 0.85 share it leaves a KV
    cache for about two sequences, which the estimate refuses for a 16k-token one."""
    from tailor_evo.pipeline import PipelineConfig

    pc = PipelineConfig(backbone="Qwen/Qwen2.5-1.5B-Instruct", method="redistill")
    ests = estimate_pipeline(pc, teacher="vllm:Qwen/Qwen2.5-32B-Instruct")
    teacher = next(e for e in ests if e.stage == "warm-start teacher")
    assert teacher.fits                                        # 384 new tokens: it starts
    pc.warmstart.teacher_max_new_tokens = 16000
    teacher = next(e for e in estimate_pipeline(pc, teacher="vllm:Qwen/Qwen2.5-32B-Instruct")
                   if e.stage == "warm-start teacher")
    assert not teacher.fits and "KV cache of" in teacher.warnings[0]


def test_model_config_reads_directories_and_known_shapes(tmp_path):
    assert model_config("Qwen/Qwen2.5-3B-Instruct")["hidden_size"] == 2048
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    (tmp_path / "tokenizer.json").write_text("{}")
    assert model_config(str(tmp_path))["vocab_size"] == 100
    with pytest.raises(InputError, match="not a known architecture"):
        model_config("nobody/no-such-model")
    with pytest.raises(InputError, match="num_hidden_layers"):
        ModelShape.from_config({k: v for k, v in SMALL.items() if k != "num_hidden_layers"})


def test_dry_run_prints_the_table_and_trains_nothing(tmp_path):
    runner = CliRunner()
    out = tmp_path / "rl"
    result = runner.invoke(cli, ["train", "rl", "--model", "Qwen/Qwen2.5-3B-Instruct", "--out", str(out),
                                 "--dry-run", "--set", "gradient_checkpointing=true", "--set", "logprob_chunk=256",
                                 "--set", "max_new_tokens=4096", "--set", "micro_batch=8"])
    assert result.exit_code == 0, result.output
    for part in ("weights", "gradients", "optimiser", "reference", "activations", "logits", "peak", "fits"):
        assert part in result.output
    assert not out.exists()
    result = runner.invoke(cli, ["train", "sft", "--model", "tiny", "--dry-run"])
    assert result.exit_code == 0 and "train sft: tiny" in result.output
    result = runner.invoke(cli, ["train", "sft", "--model", "tiny"])
    assert result.exit_code == 2 and "--out" in result.output
    result = runner.invoke(cli, ["run", "--dry-run", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0 and "train rl: tiny-base" in result.output and "evaluation" in result.output
    assert not (tmp_path / "run").exists()
    result = runner.invoke(cli, ["experiment", "--config", str(ROOT / "configs/experiments/gpu-paper.yaml"),
                                 "--out", str(tmp_path / "x"), "--dry-run"])
    assert result.exit_code == 0 and "largest stage: train rl of Qwen/Qwen2.5-3B-Instruct" in result.output
