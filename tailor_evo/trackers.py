"""Experiment trackers: the run's metric rows, also sent to TensorBoard or Weights & Biases.

``metrics.jsonl`` stays the source of truth: every row is written there first, and a
tracker only mirrors it, under the same names (nested values are flattened with
``/``, as in ``admission/not novel``). Non-numeric values are not sent. The x-axis is
the row's ``step`` (trainers), ``generation`` (search) or ``level`` (evaluation).

Set ``report_to`` in a command's config (``--set report_to=[tensorboard,wandb]``, as
in Hugging Face's ``TrainingArguments``). Each tracker is an optional extra:
``pip install 'tailor-evo[tensorboard]'`` or ``'tailor-evo[wandb]'``. W&B reads its
usual environment: ``WANDB_PROJECT`` (default ``tailor-evo``) and ``WANDB_MODE``
(``offline`` on a machine without internet; ``wandb sync`` uploads later).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError

log = logging.getLogger(__name__)

REPORTERS = ("tensorboard", "wandb")
STEP_KEYS = ("step", "generation", "level")


def check_report_to(report_to: Any) -> list[str]:
    """The tracker names, validated (``none`` or an empty list: no tracker)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n != "none"]
    for name in names:
        if name not in REPORTERS:
            raise InputError(f"unknown tracker {name!r} (known: {', '.join(REPORTERS)}, or none)", field="report_to")
    return names


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """The numeric values of a metrics row, nested keys joined with ``/``."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, f"{name}/"))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out


class TensorBoardTracker:
    """Event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``)."""

    def __init__(self, run_dir: Path, config: dict, job: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InputError("report_to=tensorboard needs the tensorboard package: "
                             "pip install 'tailor-evo[tensorboard]'", field="report_to") from None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + _yaml(config) + "\n```")

    def log(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run kept in ``RUN_DIR/wandb``; its id is stored beside it, so ``--resume``
    continues the same W&B run."""

    def __init__(self, run_dir: Path, config: dict, job: str) -> None:
        try:
            import wandb
        except ImportError:
            raise InputError("report_to=wandb needs the wandb package: pip install 'tailor-evo[wandb]'",
                             field="report_to") from None
        id_file = run_dir / "wandb-run-id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tailor-evo"), name=f"{run_dir.name}-{job}",
                              dir=str(run_dir), id=run_id, resume="allow", config=config, job_type=job,
                              reinit="create_new")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


_CLASSES = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker}


class Trackers:
    """The trackers of one run directory; ``log`` mirrors a metrics row to each of them."""

    def __init__(self, report_to: Any, run_dir: Path, config: dict, job: str) -> None:
        self.active = [_CLASSES[name](Path(run_dir), config, job) for name in check_report_to(report_to)]
        self._count = 0
        self._closed = False
        if self.active:
            atexit.register(self.close)       # a crashed run still flushes what it logged

    def log(self, record: dict) -> None:
        if not self.active:
            return
        step = next((int(record[k]) for k in STEP_KEYS if isinstance(record.get(k), (int, float))), self._count)
        self._count += 1
        values = {k: v for k, v in scalars(record).items() if k not in STEP_KEYS}
        for tracker in self.active:
            try:
                tracker.log(values, step)
            except Exception as exc:  # noqa: BLE001 - a tracker failing must not lose the run
                log.warning("%s: could not log step %s (%s); metrics.jsonl still has it",
                            type(tracker).__name__, step, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for tracker in self.active:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: close failed (%s)", type(tracker).__name__, exc)


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)
