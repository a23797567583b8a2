"""What every training loop does around its own step: starting the process, the optimiser step,
the checkpoint when one is due, the live evaluation and the end of the run.

SFT, RL and pretraining each keep their own step; the code here is what they would
otherwise repeat, and the place where a change to one of these rules (how a run is
seeded, when a checkpoint is written, how the model is exported) reaches all three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tailor_evo.rundir import RunDir
from tailor_evo.trainers.checkpoint import TrainState, resume_state, save_checkpoint


@dataclass
class Trainable:
    """The model a loop trains, with what a checkpoint of it holds besides the weights."""

    model: torch.nn.Module            # as the optimiser sees it (wrapped by accelerate where prepared)
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def resume(self, run_dir: RunDir, resume: bool) -> TrainState:
        """The state to start from (:func:`trainers.checkpoint.resume_state`)."""
        return resume_state(run_dir, resume, self.model, self.optimizer, self.scheduler)


def seed_process(threads: int, seed: int) -> None:
    """Torch's intra-op threads and every random generator of the process, before anything is built."""
    torch.set_num_threads(threads)
    _seed(seed)


def open_accelerator(threads: int, seed: int) -> Any:
    """The ``accelerate.Accelerator`` of a run (CPU unless a GPU is there); threads set before it, the
    random generators seeded after it."""
    from accelerate import Accelerator

    torch.set_num_threads(threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    _seed(seed)
    return accelerator


def _seed(seed: int) -> None:
    from tailor_evo.commands.common import seed_everything

    seed_everything(seed)


def record_start(run_dir: RunDir, cfg: Any, stage: str, main: bool = True) -> None:
    """The resolved config in the run directory and the trackers opened (main process only)."""
    if main:
        run_dir.save_config(cfg)
        run_dir.track(cfg.report_to, cfg, stage)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, grad_clip: float,
                   accelerator: Any = None) -> float | None:
    """Clip the gradients (when ``grad_clip > 0``), step the optimiser and the schedule, clear the
    gradients; return the gradient norm before clipping (None when nothing was clipped).

    All parameters are handed to the clip: frozen ones have no gradient and are skipped by it,
    and accelerate recognises a whole model's parameters (FSDP clips them across shards)."""
    grad_norm = None
    if grad_clip > 0:
        clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
        grad_norm = float(clip(model.parameters(), grad_clip))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def checkpoint_due(step: int, every: int, last: int) -> bool:
    """Every ``every`` steps (0: never) and always at the last one."""
    return (every > 0 and step % every == 0) or step == last


def save_if_due(run_dir: RunDir, trainable: Trainable, state: TrainState, *, every: int, keep: int, last: int,
                main: bool = True) -> None:
    """Write a checkpoint of ``trainable`` at ``state`` when :func:`checkpoint_due` (main process only)."""
    if main and checkpoint_due(state.step, every, last):
        save_checkpoint(run_dir.checkpoints, state, trainable.model, trainable.tokenizer, trainable.optimizer,
                        trainable.scheduler, keep=keep)


def live_evaluator(policy: torch.nn.Module, engine: Any, task: Any, problems: list, max_new_tokens: int,
                   chat: bool) -> Callable[[], dict[str, float]]:
    """Greedy held-out accuracy of the live policy through ``engine``: eval mode while it runs, then
    back to training mode, so the measurement never changes what the next step computes."""
    from tailor_evo.trainers.data import greedy_accuracy

    def evaluate() -> dict[str, float]:
        policy.eval()
        try:
            with torch.no_grad():
                return greedy_accuracy(engine, task, problems, max_new_tokens, chat=chat)
        finally:
            policy.train()
    return evaluate


def finish_run(run_dir: RunDir, accelerator: Any, export: Callable[[Path], Any]) -> Path:
    """Wait for every process, let the main one export ``RUN_DIR/model`` (and write what goes with it),
    close the trackers; return the model directory. ``accelerator`` None: a single-process run."""
    if accelerator is not None:
        accelerator.wait_for_everyone()
    out = run_dir.path / "model"
    if accelerator is None or accelerator.is_main_process:
        export(out)
    run_dir.close_trackers()
    return out
