"""What changes when a trainer runs in several processes under ``accelerate launch``.

The trainers are written against ``accelerate.Accelerator``; this module holds the few
places where several processes need more than that:

* **Supported strategies.** DDP (CPU with gloo, or GPUs) is what the tests launch. FSDP
  is accepted for SFT without the settings known not to work under it, and stays
  untested here; DeepSpeed is refused (see :func:`check_strategy`).
* **Loss normalisers.** Each process divides its share's loss by the token count of the
  whole step (all processes), times the number of processes, so DDP's gradient mean is
  the gradient of one process holding the whole batch (:func:`global_normaliser`).
* **Metrics.** Each process measures its own share; :func:`merge_rows` combines the
  rows of all processes into the one row the main process logs.
* **Weights.** Checkpoints and exports take the model's state dict through
  ``accelerator.get_state_dict`` on every process (a gathering step under FSDP), and the
  main process writes it (:func:`full_state_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tailor_evo.errors import InputError


def strategy(accelerator: Any) -> str:
    """The accelerate ``DistributedType`` name of the run (``NO``, ``MULTI_CPU``, ``MULTI_GPU``, ``FSDP``, ...);
    ``NO`` without an accelerator."""
    if accelerator is None:
        return "NO"
    kind = accelerator.distributed_type
    return str(getattr(kind, "value", kind)).upper()


def check_strategy(accelerator: Any, stage: str, *, resume: bool, live_eval: bool, lora: bool) -> None:
    """Refuse the combinations known not to work, each with the reason.

    * DeepSpeed: ``accelerator.backward`` steps DeepSpeed's engine inside every backward
      pass, while the trainers accumulate several micro-batches and step the optimiser
      and schedule themselves; the two would step at different times.
    * FSDP with RL or a live evaluation: both generate with the bare model, whose
      weights FSDP has split over the processes.
    * FSDP with LoRA: the export merges the adapters into whole weights on one process.
    * FSDP with ``--resume``: a checkpoint's weights are loaded into the bare (sharded)
      model, and its optimiser state is the main process's shard only.
    """
    kind = strategy(accelerator)
    if kind == "DEEPSPEED":
        raise InputError("DeepSpeed is not supported: it steps the optimiser inside each backward pass, while the "
                         "trainers accumulate micro-batches and step it themselves; launch with DDP (the default "
                         "of `accelerate launch --multi_gpu`) or FSDP (SFT only)", field="accelerate")
    if kind != "FSDP":
        return
    reasons = [(stage == "rl", "RL generates its rollouts with the bare model, whose weights FSDP splits over the "
                               "processes; use DDP (with LoRA for large backbones)"),
               (live_eval, "the live evaluation generates with the bare model; set eval.every: 0 and run "
                           "`tailor-evo eval` on the exported model"),
               (lora, "the export merges LoRA adapters into whole weights on one process; use DDP with LoRA"),
               (resume, "a checkpoint's weights load into the bare model and its optimiser state is one "
                        "process's shard; --resume is supported under DDP")]
    for refused, why in reasons:
        if refused:
            raise InputError(f"not supported under FSDP: {why}", field="accelerate")


def full_state_dict(accelerator: Any, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole model's state dict, gathered by accelerate; every process must call it (under FSDP it
    is a collective step). None without an accelerator (the caller then saves the model as it is)."""
    if accelerator is None:
        return None
    return accelerator.get_state_dict(model)


def global_sum(accelerator: Any, value: float) -> float:
    """``value`` summed over all processes (itself in a single process)."""
    if accelerator is None or accelerator.num_processes == 1:
        return value
    total = accelerator.reduce(torch.tensor([float(value)], dtype=torch.float64, device=accelerator.device), "sum")
    return float(total.item())


def global_normaliser(accelerator: Any, local: float) -> float:
    """The divisor of one process's loss sum that makes DDP's mean over processes equal the loss of
    the whole step divided by the whole step's ``local`` counts: their sum over processes divided
    by the number of processes. In one process it is ``local`` itself."""
    if accelerator is None or accelerator.num_processes == 1:
        return local
    return global_sum(accelerator, local) / accelerator.num_processes


def gather_rows(accelerator: Any, row: Any) -> list[Any]:
    """Every process's ``row`` (any picklable object), in process order; ``[row]`` in one process."""
    if accelerator is None or accelerator.num_processes == 1:
        return [row]
    from accelerate.utils import gather_object

    return list(gather_object([row]))


# How a metric of one process's share combines with the others': a "mean", a weighted mean ("mean:KEY",
# weighted by KEY of each row), a "sum", a "max" (wall-clock times: the slowest process sets the pace), or
# "first" (the same on every process, e.g. the learning rate or the synchronised gradient norm).
Rules = Mapping[str, str]


def merge_rows(rows: list[dict[str, Any]], rules: Rules) -> dict[str, Any]:
    """One metrics row from the rows of all processes, by ``rules`` (a key without a rule keeps the
    first process's value). Keys starting with ``_`` are weights only and are dropped."""
    if len(rows) == 1:
        return {k: v for k, v in rows[0].items() if not k.startswith("_")}
    merged: dict[str, Any] = {}
    for key, first in rows[0].items():
        if key.startswith("_"):
            continue
        rule = rules.get(key, "first")
        values = [r.get(key) for r in rows]
        if first is None or any(v is None for v in values) or rule == "first":
            merged[key] = first
        elif rule == "sum":
            merged[key] = sum(values)
        elif rule == "max":
            merged[key] = max(values)
        elif rule == "mean":
            merged[key] = sum(float(v) for v in values) / len(values)
        elif rule.startswith("mean:"):
            weights = [float(r.get(rule[5:], 0.0)) for r in rows]
            total = sum(weights)
            merged[key] = sum(w * float(v) for w, v in zip(weights, values)) / total if total else first
        else:
            raise ValueError(f"unknown merge rule {rule!r} for {key!r}")
    return merged
