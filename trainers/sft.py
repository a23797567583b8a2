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
from tailor_evo.trackers import check_report_to
from tailor_evo.trainers.base import (
    TrainerConfig,
    apply_lora,
    check_trainer_settings,
    cosine_schedule,
    export_model,
    live_engine,
    load_trainable,
    make_optimizer,
    plot_lines,
)
from tailor_evo.trainers.checkpoint import TrainState, unwrap
from tailor_evo.trainers.data import (
    IGNORE_INDEX,
    SFTData,
    SFTExample,
    collate,
    collate_buckets,
    collate_packed,
    epoch_order,
    load_sft_data,
)
from tailor_evo.trainers.distributed import check_strategy, global_normaliser, global_sum
from tailor_evo.trainers.loop import (
    Trainable,
    finish_run,
    live_evaluator,
    open_accelerator,
    optimizer_step,
    record_start,
    save_if_due,
)
from tailor_evo.trainers.losses import sft_loss

if TYPE_CHECKING:
    from tailor_evo.trainers.model_card import CardInfo

log = logging.getLogger(__name__)


@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning; ``chat`` picks the prompt layout of the data and of the periodic evaluation
    alike, ``task`` serves that evaluation only."""

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


@dataclass
class _Plan:
    """How the examples become optimiser steps: ``per_step`` examples per step over all processes."""

    examples: int
    per_step: int
    total: int                       # optimiser steps of the run


def _plan(cfg: SFTConfig, examples: int, processes: int) -> _Plan:
    per_step = cfg.batch_size * cfg.grad_accum * processes
    total = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * math.ceil(examples / per_step)
    return _Plan(examples, per_step, total)


def _trainable(cfg: SFTConfig, model: torch.nn.Module, tokenizer: Any, accelerator: Any, total: int) -> Trainable:
    """AdamW with warm-up and cosine decay over ``total`` steps, both prepared by accelerate."""
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    scheduler = cosine_schedule(optimizer, round(cfg.warmup_ratio * total), total, cfg.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    return Trainable(model, tokenizer, optimizer, scheduler)


class _Order:
    """The data order of the current epoch, moving to the next epoch when one is used up; it depends
    only on (seed, epoch), so a resumed run takes the same examples at the same step."""

    def __init__(self, examples: int, seed: int, state: TrainState) -> None:
        self.examples, self.seed, self.state = examples, seed, state
        self.order = epoch_order(examples, seed, state.epoch)

    def take(self, count: int) -> list[int]:
        state = self.state
        if state.position >= self.examples:
            state.epoch, state.position = state.epoch + 1, 0
            self.order = epoch_order(self.examples, self.seed, state.epoch)
        idx = self.order[state.position: state.position + count]
        state.position += len(idx)
        return idx


def _share(examples: list[SFTExample], step: list[int], rank: int, world: int) -> list[SFTExample]:
    """This process's interleaved share of a step's examples. A process left without any (the short
    last step of an epoch) takes the step's first example with nothing supervised: it adds no loss
    and no gradient, but takes part in the gradient exchange, which waits for every process."""
    mine = [examples[i] for i in step[rank::world]]
    if mine or world == 1 or not step:
        return mine
    first = examples[step[0]]
    return [SFTExample(first.input_ids, [IGNORE_INDEX] * len(first.labels), first.record_id)]


def _accumulate(model: torch.nn.Module, accelerator: Any, batches: list[dict[str, torch.Tensor]]) -> tuple[float, int]:
    """Forward and backward passes over one process's batches of a step, gradients synchronised on the
    last one only; return (the step's loss, its supervised tokens), both over all processes. The loss
    is divided by the step's supervised tokens (of all processes: :func:`global_normaliser`), so the
    accumulated gradient is that of one batch holding them all."""
    supervised = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    normaliser = max(global_normaliser(accelerator, supervised), 1e-9)
    loss_sum = 0.0
    for j, batch in enumerate(batches):
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        sync = j == len(batches) - 1
        ctx = accelerator.no_sync(model) if not sync else nullcontext()
        with ctx:
            logits = forward_logits(model, batch)
            loss = sft_loss(logits, batch["labels"], normaliser=normaliser)
            accelerator.backward(loss)
        loss_sum += float(loss.detach())
    processes = accelerator.num_processes
    return global_sum(accelerator, loss_sum) / processes, int(global_sum(accelerator, supervised))


def _record(cfg: SFTConfig, state: TrainState, total: int, scheduler: Any, loss: float, supervised: int,
            grad_norm: float | None, seconds: float, evaluator: Any) -> dict[str, Any]:
    """The step's metrics row: the training figures every ``log_every`` steps, the evaluation every
    ``eval.every``, both at the last step; empty when neither is due."""
    record: dict[str, Any] = {}
    if state.step % cfg.log_every == 0 or state.step == total:
        record = {"step": state.step, "epoch": state.epoch, "loss": loss, "lr": scheduler.get_last_lr()[0],
                  "tokens": supervised, "grad_norm": grad_norm, "seconds": seconds}
    if evaluator is not None and (state.step % cfg.eval.every == 0 or state.step == total):
        record = {"step": state.step, **record, **evaluator()}
    return record


def train_sft(cfg: SFTConfig, run_dir: RunDir, resume: bool = False) -> Path:
    """Fine-tune ``cfg.model`` on ``cfg.data``; return the final model directory ``RUN_DIR/model``."""
    from tqdm.auto import tqdm

    _validate(cfg)
    accelerator = open_accelerator(cfg.threads, cfg.seed)
    check_strategy(accelerator, "sft", resume=resume, live_eval=cfg.eval.every > 0, lora=cfg.lora.enabled)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    model, tokenizer = load_trainable(cfg)
    model = apply_lora(model, cfg.lora)
    data = load_sft_data(cfg.data, tokenizer, cfg.max_length, chat=cfg.chat)
    log.info("SFT data: %s", data.summary())
    record_start(run_dir, cfg, "sft", main)
    plan = _plan(cfg, len(data.examples), world)
    t = _trainable(cfg, model, tokenizer, accelerator, plan.total)
    state = t.resume(run_dir, resume, accelerator)
    evaluator = _make_evaluator(cfg, t.model, tokenizer) if cfg.eval.every > 0 and main else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = _Order(plan.examples, cfg.seed, state)
    t.model.train()
    bar = tqdm(total=plan.total, initial=state.step, desc="sft", disable=not main)
    t0 = time.perf_counter()
    while state.step < plan.total:
        mine = _share(data.examples, order.take(plan.per_step), rank, world)
        loss, supervised = _accumulate(t.model, accelerator, step_batches(mine, cfg, pad_id) if mine else [])
        grad_norm = optimizer_step(t.model, t.optimizer, t.scheduler, cfg.grad_clip, accelerator)
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        record = _record(cfg, state, plan.total, t.scheduler, loss, supervised, grad_norm,
                         time.perf_counter() - t0, evaluator)
        if record and main:
            run_dir.log(record)
        save_if_due(run_dir, t, state, every=cfg.save_every, keep=cfg.keep_checkpoints, last=plan.total,
                    accelerator=accelerator)
    bar.close()

    def export(out: Path, weights: Any) -> None:
        export_model(t.model, tokenizer, out, card=_card(cfg, data, run_dir), state_dict=weights)
        write_sft_report(run_dir, cfg, data.summary())
    return finish_run(run_dir, accelerator, export, t.model)


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
    from tailor_evo.trainers.data import heldout_problems

    task = get_task(cfg.task)
    problems = heldout_problems(task, cfg.eval.n, cfg.seed, cfg.eval.levels or None)
    policy = unwrap(model)
    engine = live_engine(policy, tokenizer, batch_size=cfg.eval.batch_size, threads=cfg.threads)
    return live_evaluator(policy, engine, task, problems, cfg.eval.max_new_tokens, cfg.chat)


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
