"""What the SFT and RL trainers share: the common config fields, LoRA, the optimiser and
schedule, the exported model, the evaluation engine on the live model and the curve plot.

Both trainers (and pretraining) import this module; neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tailor_evo.errors import InputError
from tailor_evo.extras import require
from tailor_evo.io import raise_save_failure, save_figure
from tailor_evo.trainers.checkpoint import save_model, unwrap

if TYPE_CHECKING:
    from tailor_evo.trainers.model_card import CardInfo


@dataclass
class LoraSettings:
    """Optional LoRA adapters through ``peft`` (for backbones too large to fine-tune fully)."""

    enabled: bool = False            # train LoRA adapters instead of every weight (needs peft)
    r: int = 8                       # rank of the adapters
    alpha: int = 16                  # adapter scale numerator: updates are scaled by alpha / r
    dropout: float = 0.0             # dropout on the adapters' input
    # the backbone's modules that get adapters (attention projections of Llama-style models)
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class EvalSettings:
    """Greedy accuracy on held-out problems of the task every ``every`` steps (0 = off)."""

    every: int = 0                   # steps between evaluations (0: none while training; RL still evaluates at the end)
    n: int = 32                      # held-out problems solved greedily at each evaluation (RL: 0 = no evaluation)
    levels: list[int] = field(default_factory=list)   # levels evaluated; empty: the training levels (RL), task's (SFT)
    max_new_tokens: int = 320        # answer length limit of the evaluation
    batch_size: int = 16             # sequences per generation batch of the evaluation


@dataclass
class TrainerConfig:
    """The fields every trainer has. SFT and RL extend it (and may change a default)."""

    model: str = "tiny"              # starting model: a backbone name (tiny, smollm2-135m, ...) or a model directory
    task: str = "kk"                 # the task whose problems and verifier are used (SFT: the evaluation's only)
    chat: bool = False               # prompts in chat form (the tokenizer's chat template)
    seed: int = 0                    # seeds torch, the order of the data or prompts and the held-out problems
    lr: float = 1e-3                 # AdamW learning rate (the peak of the schedule)
    weight_decay: float = 0.0        # AdamW weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])    # AdamW betas
    grad_clip: float = 1.0           # clip the gradient norm to this (0 = no clipping)
    save_every: int = 50             # optimizer steps between checkpoints (0 = only at the end)
    keep_checkpoints: int = 2        # newest checkpoints kept on disk (older ones are deleted)
    threads: int = 2                 # torch intra-op threads
    lora: LoraSettings = field(default_factory=LoraSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    report_to: list[str] = field(default_factory=list)   # trackers: tensorboard, wandb (tailor_evo.trackers)
    # weights of the trained model, of the RL reference and of the engines on them: auto (bfloat16 on a GPU
    # that has it, else float32), float32, bfloat16 or float16; losses and log-probs are computed in float32
    dtype: str = "auto"
    gradient_checkpointing: bool = False   # recompute activations in the backward pass: less memory, more compute
    attn_implementation: str = ""    # passed to transformers (sdpa, eager, flash_attention_2, ...); "" = its default


DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``dtype`` setting; ``auto`` is bfloat16 on a CUDA GPU that supports
    it (half the memory of float32, the range of float32) and float32 everywhere else."""
    if name == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def check_trainer_settings(cfg: TrainerConfig) -> None:
    """The checks of the fields every trainer shares (the precision and memory ones)."""
    if cfg.dtype not in DTYPES:
        raise InputError(f"invalid value {cfg.dtype!r} (valid: {', '.join(DTYPES)})", file="config", field="dtype")
    if not isinstance(cfg.gradient_checkpointing, bool):
        raise InputError(f"expected true or false, got {cfg.gradient_checkpointing!r}", file="config",
                         field="gradient_checkpointing")
    if not isinstance(cfg.attn_implementation, str):
        raise InputError(f"expected a name such as sdpa or eager, got {cfg.attn_implementation!r}", file="config",
                         field="attn_implementation")


def load_trainable(cfg: TrainerConfig) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) of ``cfg.model`` in the configured dtype and attention implementation,
    with gradient checkpointing switched on when asked (non-reentrant, so LoRA needs no input grads).
    An attention implementation transformers does not know (or whose package is missing) stops the
    run with an error naming the setting."""
    from tailor_evo.trainers.checkpoint import load_backbone

    try:
        model, tokenizer = load_backbone(cfg.model, dtype=resolve_dtype(cfg.dtype),
                                         attn_implementation=cfg.attn_implementation or None)
    except (ValueError, ImportError) as exc:
        if not cfg.attn_implementation:
            raise
        raise InputError(f"{cfg.attn_implementation!r} cannot be used here: {str(exc).splitlines()[0][:200]}",
                         field="attn_implementation") from None
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):       # the name in newer transformers
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters when enabled; ``peft`` is imported only then."""
    if not settings.enabled:
        return model
    require("lora", what="LoRA", field="lora.enabled")
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                     target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def export_model(model: torch.nn.Module, tokenizer: Any, out: Path, card: "CardInfo | None" = None,
                 state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """The final model directory (config + safetensors + tokenizer, and a model card when
    ``card`` is given); LoRA adapters are merged in so that later commands can load it like
    any backbone. ``state_dict``: the weights gathered from every process; merging adapters
    uses the live model instead, which holds whole weights wherever LoRA is allowed."""
    import shutil

    model = unwrap(model)
    if hasattr(model, "merge_and_unload"):
        import copy

        model, state_dict = copy.deepcopy(model).merge_and_unload(), None
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        save_model(model, tokenizer, tmp, state_dict=state_dict)
        if card is not None:
            from tailor_evo.trainers.model_card import write_model_card

            write_model_card(tmp, card)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException as exc:
        # nothing half-written stays behind: the checkpoints are intact and --resume exports again
        raise_save_failure(exc, tmp, out, "saving the model", "save the model", "the checkpoints are intact")
    return out


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas: list[float]) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(betas[0], betas[1]))


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                    min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak, then cosine decay to ``min_ratio`` of it."""
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` scheduler steps, then constant (0: constant from the start)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)


def live_engine(model: torch.nn.Module, tokenizer: Any, batch_size: int, threads: int) -> Any:
    """The HF generation engine on the live model (shares its weights, so no copy per step)."""
    from tailor_evo.generation.hf import HFEngine

    return HFEngine(model, tokenizer, batch_size=batch_size, num_threads=threads, show_progress=False)


def plot_lines(path: Path, series: list[tuple[str, list, list]], title: str, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, xs, ys in series:
        ax.plot(xs, ys, label=label)
    ax.set(title=title, xlabel=xlabel)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110, bbox_inches="tight")
