"""Supervised fine-tuning on warm-start data: completion-only loss, AdamW, warm-up + cosine.

The loop is written against ``accelerate.Accelerator`` so that the same code runs on
one CPU, on a GPU, or under ``accelerate launch`` (DDP/FSDP/DeepSpeed). Each process
takes an interleaved share of every batch; the data order depends only on
(seed, epoch), so ``--resume`` continues exactly where the last checkpoint stopped.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.base import (TrainerConfig, apply_lora, check_trainer_settings, cosine_schedule, export_model,
                                      live_engine, load_trainable, make_optimizer, plot_lines)
from tailor_evo.trainers.checkpoint import resume_state, save_checkpoint, unwrap
from tailor_evo.trainers.data import SFTData, collate, collate_buckets, collate_packed, epoch_order, load_sft_data
from tailor_evo.trackers import check_report_to
from tailor_evo.trainers.losses import sft_loss

if TYPE_CHECKING:
    from tailor_evo.trainers.model_card import CardInfo

log = logging.getLogger(__name__)


@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning; ``task`` and ``chat`` serve the periodic evaluation only."""

    # keys that --resume may change: more (or fewer) steps and bookkeeping, not what ran so far
    RESUME_SAFE: ClassVar[tuple[str, ...]] = ("epochs", "max_steps", "save_every", "keep_checkpoints",
                                              "log_every", "threads", "report_to")
    data: str = ""                   # prompt/completion records: JSONL/Parquet, datasets directory or id[:split]
    epochs: int = 3                  # passes over the data (unless max_steps is set)
    max_steps: int = 0               # > 0 overrides epochs
    batch_size: int = 8              # examples per forward pass (padded, packed); x grad_accum = per step
    grad_accum: int = 1              # forward passes per optimizer step
    warmup_ratio: float = 0.05       # share of the steps spent warming the learning rate up linearly
    min_lr_ratio: float = 0.0        # cosine floor as a fraction of lr
    max_length: int = 1024           # tokens of prompt + completion; longer examples are skipped (and counted)
    # How a step's examples become forward passes (all give the same loss and gradients):
    # "bucketed" sorts them by length into right-padded micro-batches of at most
    # bucket_tokens (rows x width) with plain causal attention, the fastest on CPU;
    # "packed" lays them end to end (block-diagonal attention); "padded" right-pads each batch.
    batching: str = "bucketed"
    bucket_tokens: int = 2048        # tokens (rows x width) of one bucketed micro-batch; at least max_length
    log_every: int = 1               # optimizer steps between metric rows


def packing_supported() -> bool:
    """Packed batches need transformers to read restarting position ids as sequence boundaries."""
    try:
        from transformers import masking_utils
    except ImportError:
        return False
    return hasattr(masking_utils, "find_packed_sequence_indices")


BATCHINGS = ("bucketed", "packed", "padded")


def step_batches(examples: list, cfg: SFTConfig, pad_id: int) -> list[dict[str, torch.Tensor]]:
    """One process's examples of a step as the forward passes ``cfg.batching`` asks for."""
    if cfg.batching == "bucketed":
        return collate_buckets(examples, pad_id, cfg.bucket_tokens)
    micro = [examples[i: i + cfg.batch_size] for i in range(0, len(examples), cfg.batch_size)]
    if cfg.batching == "packed":
        return [collate_packed(m, pad_id, cfg.max_length) for m in micro]
    return [collate(m, pad_id) for m in micro]


def _validate(cfg: SFTConfig) -> None:
    check_report_to(cfg.report_to)
    check_trainer_settings(cfg)
    checks = [("batch_size", cfg.batch_size >= 1), ("grad_accum", cfg.grad_accum >= 1), ("lr", cfg.lr > 0),
              ("epochs", cfg.epochs >= 1 or cfg.max_steps > 0), ("max_length", cfg.max_length >= 2),
              ("threads", cfg.threads >= 1), ("betas", len(cfg.betas) == 2)]
    for name, ok in checks:
        if not ok:
            raise InputError(f"invalid value {getattr(cfg, name)!r}", file="config", field=name)
    if not cfg.data:
        raise InputError("no training data given (--data FILE)", field="data")
    if cfg.batching not in BATCHINGS:
        raise InputError(f"invalid value {cfg.batching!r} (valid: {', '.join(BATCHINGS)})", file="config",
                         field="batching")
    if cfg.batching == "bucketed" and cfg.bucket_tokens < cfg.max_length:
        raise InputError(f"bucket_tokens {cfg.bucket_tokens} is below max_length {cfg.max_length}: the longest "
                         "example would not fit a micro-batch", file="config", field="bucket_tokens")
    if cfg.batching == "packed" and not packing_supported():
        import transformers

        raise InputError(f"packed batches need a transformers release that masks packed sequences (this one is "
                         f"{transformers.__version__}); set sft.batching=bucketed", field="batching")


def train_sft(cfg: SFTConfig, run_dir: RunDir, resume: bool = False) -> Path:
    """Fine-tune ``cfg.model`` on ``cfg.data``; return the final model directory ``RUN_DIR/model``."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from tailor_evo.commands.common import seed_everything

    _validate(cfg)
    torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    seed_everything(cfg.seed)
    model, tokenizer = load_trainable(cfg)
    model = apply_lora(model, cfg.lora)
    data = load_sft_data(cfg.data, tokenizer, cfg.max_length)
    log.info("SFT data: %s", data.summary())
    if accelerator.is_main_process:
        run_dir.save_config(cfg)
        run_dir.track(cfg.report_to, cfg, "sft")

    n = len(data.examples)
    per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    steps_per_epoch = math.ceil(n / per_step)
    total = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * steps_per_epoch
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    scheduler = cosine_schedule(optimizer, round(cfg.warmup_ratio * total), total, cfg.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)

    state = resume_state(run_dir, resume, model, optimizer, scheduler)

    evaluator = _make_evaluator(cfg, model, tokenizer) if cfg.eval.every > 0 else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = epoch_order(n, cfg.seed, state.epoch)
    rank, world = accelerator.process_index, accelerator.num_processes
    model.train()
    bar = tqdm(total=total, initial=state.step, desc="sft", disable=not accelerator.is_main_process)
    t0 = time.perf_counter()
    while state.step < total:
        if state.position >= n:
            state.epoch, state.position = state.epoch + 1, 0
            order = epoch_order(n, cfg.seed, state.epoch)
        idx = order[state.position: state.position + per_step]
        state.position += len(idx)
        mine = [data.examples[i] for i in idx[rank::world]]
        batches = step_batches(mine, cfg, pad_id) if mine else []
        supervised = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        loss_sum = 0.0
        for j, batch in enumerate(batches):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            sync = j == len(batches) - 1
            ctx = accelerator.no_sync(model) if not sync else nullcontext()
            with ctx:
                logits = forward_logits(model, batch)
                loss = sft_loss(logits, batch["labels"], normaliser=max(supervised, 1))
                accelerator.backward(loss)
            loss_sum += float(loss.detach())
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        record: dict[str, Any] = {}
        if state.step % cfg.log_every == 0 or state.step == total:
            record = {"step": state.step, "epoch": state.epoch, "loss": loss_sum,
                      "lr": scheduler.get_last_lr()[0], "tokens": supervised,
                      "grad_norm": float(grad_norm) if grad_norm is not None else None,
                      "seconds": time.perf_counter() - t0}
        if evaluator is not None and (state.step % cfg.eval.every == 0 or state.step == total):
            record = {"step": state.step, **record, **evaluator()}
        if record and accelerator.is_main_process:
            run_dir.log(record)
        if accelerator.is_main_process and (
                (cfg.save_every > 0 and state.step % cfg.save_every == 0) or state.step == total):
            save_checkpoint(run_dir.checkpoints, state, model, tokenizer, optimizer, scheduler,
                            keep=cfg.keep_checkpoints)
    bar.close()
    accelerator.wait_for_everyone()
    out = run_dir.path / "model"
    if accelerator.is_main_process:
        export_model(model, tokenizer, out, card=_card(cfg, data, run_dir))
        write_sft_report(run_dir, cfg, data.summary())
    run_dir.close_trackers()
    return out


def _card(cfg: SFTConfig, data: SFTData, run_dir: RunDir) -> "CardInfo":
    from tailor_evo.trainers.model_card import CardInfo, results_from_metrics, warmstart_facts

    facts = {"source": str(cfg.data), "records_used": len(data.examples), "records_total": data.total,
             "skipped": dict(data.skipped), **warmstart_facts(cfg.data)}
    return CardInfo(stage="sft", base_model=cfg.model, task=cfg.task, seed=cfg.seed, recipe=asdict(cfg),
                    data=facts, results=results_from_metrics(run_dir.read_metrics(), cfg.task, cfg.seed))


def forward_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a padded batch (attention mask), a packed one (position ids, no mask, no cache) or a
    bucketed one (right-padded, neither: plain causal attention)."""
    if "position_ids" in batch:
        return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    if "attention_mask" not in batch:
        return model(input_ids=batch["input_ids"], use_cache=False).logits
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def _make_evaluator(cfg: SFTConfig, model: torch.nn.Module, tokenizer: Any):
    """A closure measuring greedy held-out accuracy of the live model (eval mode, then back to train)."""
    from tailor_evo.tasks.registry import get_task
    from tailor_evo.trainers.data import greedy_accuracy, heldout_problems

    task = get_task(cfg.task)
    problems = heldout_problems(task, cfg.eval.n, cfg.seed, cfg.eval.levels or None)
    engine = live_engine(unwrap(model), tokenizer, batch_size=cfg.eval.batch_size, threads=cfg.threads)

    def evaluate() -> dict[str, float]:
        m = unwrap(model)
        m.eval()
        try:
            with torch.no_grad():
                return greedy_accuracy(engine, task, problems, cfg.eval.max_new_tokens, chat=cfg.chat)
        finally:
            m.train()

    return evaluate


def write_sft_report(run_dir: RunDir, cfg: SFTConfig, data_summary: str) -> None:
    """``report.md`` and ``plots/sft_loss.png`` from the metrics log."""
    from tailor_evo.io import write_text_atomic

    metrics = run_dir.read_metrics()
    rows = [r for r in metrics if "loss" in r]
    evals = [r for r in metrics if "eval_accuracy" in r]
    if rows:
        plot_lines(run_dir.plots / "sft_loss.png", [("loss", [r["step"] for r in rows], [r["loss"] for r in rows])],
              "SFT training loss", "step")
    lines = ["# SFT run", "", f"- model: `{cfg.model}`", f"- data: `{cfg.data}` ({data_summary})",
             f"- steps: {rows[-1]['step'] if rows else 0}"]
    if rows:
        lines.append(f"- final loss: {rows[-1]['loss']:.4f}")
    lines.append(f"- output: `{run_dir.path / 'model'}`")
    if evals:
        lines.append(f"- held-out greedy accuracy ({cfg.task}): {evals[-1]['eval_accuracy']:.3f}")
    if rows:
        lines += ["", "![loss](plots/sft_loss.png)"]
    write_text_atomic(run_dir.report_path, "\n".join(lines) + "\n")
