"""What every training loop does around its own step: starting the process, the optimiser step,
the checkpoint when one is due, the live evaluation and the end of the run.

SFT, RL and pretraining each keep their own step; the code here is what they would
otherwise repeat, and the place where a change to one of these rules (how a run is
seeded, when a checkpoint is written, how the model is exported) reaches all three.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.checkpoint import TrainState, resume_state, save_checkpoint
from tailor_evo.trainers.distributed import full_state_dict


@dataclass
class Trainable:
    """The model a loop trains, with what a checkpoint of it holds besides the weights."""

    model: torch.nn.Module            # as the optimiser sees it (wrapped by accelerate where prepared)
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def resume(self, run_dir: RunDir, resume: bool, accelerator: Any = None) -> TrainState:
        """The state to start from (:func:`trainers.checkpoint.resume_state`); under several processes
        the checkpoint must come from as many (its data shares and batches depend on their number)."""
        processes = accelerator.num_processes if accelerator is not None else 1
        main = accelerator is None or accelerator.is_main_process
        state = resume_state(run_dir, resume, self.model, self.optimizer, self.scheduler, main=main,
                             processes=processes)
        if processes > 1:
            state.extra["processes"] = processes
        return state


# Under several processes the main one alone runs the live evaluation and writes the model, while the
# others wait in the next collective step; NCCL's default of 10 minutes would end a run whose
# evaluation takes longer than that.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


def seed_process(threads: int, seed: int) -> None:
    """Torch's intra-op threads and every random generator of the process, before anything is built."""
    torch.set_num_threads(threads)
    _seed(seed)


def open_accelerator(threads: int, seed: int) -> Any:
    """The ``accelerate.Accelerator`` of a run (CPU unless a GPU is there); threads set before it, the
    random generators seeded after it."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    torch.set_num_threads(threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=PROCESS_GROUP_TIMEOUT)])
    check_launch(accelerator, os.environ)
    _seed(seed)
    return accelerator


def check_launch(accelerator: Any, env: Mapping[str, str]) -> None:
    """Refuse a launch that asked for several processes and got one.

    ``accelerate launch --cpu --num_processes N`` starts a single process (accelerate's CPU
    launcher spreads processes only through ``mpirun``); it sets the rendezvous address but no
    rank, so the run would quietly train with 1/N of the global batch the user planned."""
    asked_cpu = env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    local_rendezvous = env.get("MASTER_ADDR") == "127.0.0.1"          # what that launcher sets by default
    if asked_cpu and local_rendezvous and "WORLD_SIZE" not in env and accelerator.num_processes == 1:
        raise InputError("`accelerate launch --cpu --num_processes N` started a single process (accelerate "
                         "launches several CPU processes only through mpirun); for N processes with gloo on "
                         "CPUs use `accelerate launch --multi_gpu --num_processes N` on a machine without GPUs, "
                         "or `torchrun --nproc_per_node N -m tailor_evo.cli ...` (for one process, launch "
                         "without --num_processes)", field="accelerate")


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
                accelerator: Any = None) -> None:
    """Write a checkpoint of ``trainable`` at ``state`` when :func:`checkpoint_due`. Every process takes
    part in gathering the weights; the main process writes them, and the others wait until it has."""
    if not checkpoint_due(state.step, every, last):
        return
    weights = full_state_dict(accelerator, trainable.model)
    if accelerator is None or accelerator.is_main_process:
        save_checkpoint(run_dir.checkpoints, state, trainable.model, trainable.tokenizer, trainable.optimizer,
                        trainable.scheduler, keep=keep, state_dict=weights)
    if accelerator is not None:
        accelerator.wait_for_everyone()


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


def finish_run(run_dir: RunDir, accelerator: Any, export: Callable[[Path, Any], Any],
               model: torch.nn.Module | None = None) -> Path:
    """Wait for every process, gather ``model``'s weights (every process takes part), let the main one
    export ``RUN_DIR/model`` with them (``export(out, state_dict)``, and write what goes with it),
    close the trackers; return the model directory. ``accelerator`` None: a single-process run,
    whose ``export`` gets None and saves its model as it is."""
    if accelerator is not None:
        accelerator.wait_for_everyone()
    out = run_dir.path / "model"
    weights = full_state_dict(accelerator, model) if model is not None else None
    if accelerator is None or accelerator.is_main_process:
        export(out, weights)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    run_dir.close_trackers()
    return out
