"""Resumable training state: model directory + optimizer, scheduler, RNG and loop counters.

A checkpoint is a directory ``checkpoints/step-000120/`` holding

* ``model/``      the model written by ``save_pretrained`` (a LoRA adapter for peft models),
* ``state.pt``    optimizer and scheduler state, the Python/NumPy/torch RNG states and the
                  loop counters (step, epoch, position in the data order, ...),
* ``metrics.jsonl`` a copy of the run's metrics log as it stood, from which a resume rebuilds
                  the rows of a log that was deleted or damaged since.

It is written into a hidden temporary directory and renamed into place, so a crash
never leaves a half-written checkpoint where :func:`latest_checkpoint` would find it.
Restoring all of the above makes a resumed run follow the same trajectory as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailor_evo.errors import InputError
from tailor_evo.io import honour_umask, raise_save_failure
from tailor_evo.rundir import METRICS, read_metrics_file

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainState:
    """Loop counters that must survive a restart (``extra`` is for trainer-specific fields)."""

    step: int = 0
    epoch: int = 0
    position: int = 0           # index into the current epoch's data order
    extra: dict[str, Any] = field(default_factory=dict)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model behind DDP/accelerate wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model


def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_model(model: torch.nn.Module, tokenizer: Any, out: Path,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """``save_pretrained`` of model and tokenizer into ``out`` (safetensors); ``state_dict``, when given,
    holds the weights (gathered from every process by :func:`trainers.distributed.full_state_dict`)."""
    model = unwrap(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    honour_umask(out)


def load_model_weights(model: torch.nn.Module, model_dir: Path) -> None:
    """Load the weights written by :func:`save_model` into an existing model, in place.

    Loading into the live model (rather than building a new one) keeps the optimizer's
    references to the parameters valid. Tied weights (e.g. ``lm_head`` tied to the
    embeddings) are not stored twice, so they are the only keys allowed to be missing.
    """
    from safetensors.torch import load_file

    model = unwrap(model)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise InputError("no *.safetensors weights in checkpoint", file=str(model_dir))
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    if _is_peft(model):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise InputError(f"adapter weights do not match the model: {unexpected[:3]}", file=str(model_dir))
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_keys(model)
    really_missing = [k for k in missing if k not in tied]
    if really_missing or unexpected:
        raise InputError(f"checkpoint weights do not match the model (missing {really_missing[:3]}, "
                         f"unexpected {list(unexpected)[:3]})", file=str(model_dir))


def _tied_keys(model: torch.nn.Module) -> set[str]:
    """Parameter names that share storage with another parameter (kept once in safetensors)."""
    seen: dict[int, str] = {}
    tied: set[str] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen:
            tied.add(name)
            tied.add(seen[ptr])
        else:
            seen[ptr] = name
    return tied


def save_checkpoint(root: Path, state: TrainState, model: torch.nn.Module, tokenizer: Any,
                    optimizer: torch.optim.Optimizer, scheduler: Any | None, keep: int = 2,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``root/step-NNNNNN`` atomically and delete all but the newest ``keep`` checkpoints
    (``state_dict``: the gathered weights, as for :func:`save_model`).

    A failed write (disk full, ...) removes its temporary directory and leaves the earlier
    checkpoints as they were; disk-full becomes an :class:`InputError` naming the path.
    """
    final = root / f"step-{state.step:06d}"
    tmp = root / f".step-{state.step:06d}.tmp-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        save_model(model, tokenizer, tmp / "model", state_dict=state_dict)
        torch.save({
            "train_state": {"step": state.step, "epoch": state.epoch, "position": state.position,
                            "extra": state.extra},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
        }, tmp / "state.pt")
        if (root.parent / METRICS).is_file():
            shutil.copyfile(root.parent / METRICS, tmp / METRICS)
        _replace_dir(tmp, final)
    except BaseException as exc:
        raise_save_failure(exc, tmp, final, "writing a checkpoint", "write a checkpoint",
                           "the previous checkpoint is intact")
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` to ``dst``; an existing ``dst`` is moved aside first and removed
    only after the new one is in place, so a crash never leaves neither."""
    aside = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists():
        os.replace(dst, aside)
    os.replace(src, dst)
    shutil.rmtree(aside, ignore_errors=True)


def list_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary directories are ignored)."""
    if not root.exists():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))
             and (p / "state.pt").exists()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any | None) -> TrainState:
    """Restore model weights, optimizer, scheduler and RNG states; return the loop counters."""
    load_model_weights(model, path / "model")
    blob = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob.get("scheduler") is not None:
        scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    ts = blob["train_state"]
    return TrainState(step=ts["step"], epoch=ts["epoch"], position=ts["position"], extra=ts.get("extra", {}))


def _load_newest_good(found: list[Path], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scheduler: Any | None) -> tuple[TrainState, Path]:
    """Load the newest checkpoint that reads back; a damaged newer one (a truncated file after a
    crash or a full disk) is skipped with a warning that names it."""
    bad: list[str] = []
    for ckpt in reversed(found):
        try:
            state = load_checkpoint(ckpt, model, optimizer, scheduler)
        except Exception as exc:  # noqa: BLE001 - any read error means this checkpoint is unusable
            log.warning("checkpoint %s is damaged (%s: %s); trying the previous one", ckpt, type(exc).__name__,
                        str(exc)[:120])
            bad.append(ckpt.name)
            continue
        if bad:
            log.warning("resumed from %s, the newest good checkpoint (skipped damaged: %s)", ckpt, ", ".join(bad))
        else:
            log.info("resumed from %s (step %d)", ckpt, state.step)
        return state, ckpt
    raise InputError(f"every checkpoint is damaged ({', '.join(bad)}); start again with --overwrite",
                     file=str(found[0].parent))


def resume_state(run_dir: Any, resume: bool, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any | None, main: bool = True, processes: int = 1) -> TrainState:
    """The state to start from: the latest checkpoint when resuming (else a fresh one).

    Resuming with no checkpoint is an error: starting again from step 1 would silently
    throw away the rows already logged. Metric rows written after the checkpoint are
    dropped, so a resumed run logs every step exactly once; rows a damaged or deleted
    ``metrics.jsonl`` lost are rebuilt from the checkpoint's copy of it. Under several processes
    every one loads the checkpoint and only the ``main`` one rewrites the log. A checkpoint written
    by another number of ``processes`` is refused before anything is rewritten: the data shares
    and the global batch depend on that number.
    """
    if not resume:
        return TrainState()
    found = list_checkpoints(run_dir.checkpoints)
    if not found:
        raise InputError("nothing to resume from: no checkpoint in it (none was written yet, or it was "
                         "deleted); start again with --overwrite", file=str(run_dir.checkpoints))
    state, ckpt = _load_newest_good(found, model, optimizer, scheduler)
    written_by = state.extra.get("processes", 1)
    if written_by != processes:
        raise InputError(f"the checkpoint was written by {written_by} process(es) and this run has {processes}: "
                         f"resume with the same number (`accelerate launch --num_processes {written_by}`)",
                         file=str(ckpt))
    if not main:
        return state
    saved = read_metrics_file(ckpt / METRICS)[0] if (ckpt / METRICS).is_file() else None
    run_dir.resume_metrics(lambda r: r.get("step", 0) <= state.step, saved, ckpt)
    return state


def load_backbone(name_or_path: str, dtype: torch.dtype | None = None,
                  attn_implementation: str | None = None) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) for a registry name (``tiny``, ``smollm2-135m``, ...) or a model directory,
    in ``dtype`` (default float32) with transformers' ``attn_implementation`` (default its own choice).

    The registry resolves both (a directory written by ``save_pretrained`` is taken as it is),
    so trainer outputs work as ``--model``; its tokenizer always has a pad token.
    """
    from tailor_evo.models.registry import load

    return load(name_or_path, dtype=dtype, attn_implementation=attn_implementation)
