"""The run directory: one folder per command invocation holding config, metrics, checkpoints and report.

Layout (every command uses the parts it needs)::

    RUN_DIR/
      config.yaml        resolved configuration (what --resume reads back)
      metrics.jsonl      one JSON object per step / generation
      checkpoints/       resumable state, written atomically
      plots/             PNG figures
      report.md          short human-readable summary
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from tailor_evo.config import dump_yaml
from tailor_evo.errors import InputError
from tailor_evo.io import append_jsonl, write_text_atomic


def empty_dir(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete everything inside ``path`` except the entries named in ``keep``."""
    for child in path.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@dataclass
class RunDir:
    path: Path
    _trackers: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False,
               keep: tuple[str, ...] = ()) -> "RunDir":
        """Make the directory. Refuse to mix a fresh run into a non-empty directory unless asked.

        ``overwrite`` empties the directory first (except the entries named in ``keep``):
        old checkpoints or metric rows left beside a new run would be pruned, resumed from
        or plotted as if they were its own.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError("run directory path is a file", file=str(path))
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other", file=str(path))
        if path.exists() and any(p.name not in keep for p in path.iterdir()) and not (resume or overwrite):
            raise InputError("run directory exists and is not empty; pass --resume to continue it "
                             "or --overwrite to start again", file=str(path))
        if resume and not (path / "config.yaml").exists():
            raise InputError("nothing to resume: no config.yaml in the run directory", file=str(path))
        if overwrite and path.exists():
            empty_dir(path, keep)
        path.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        (path / "plots").mkdir(exist_ok=True)
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def report_path(self) -> Path:
        return self.path / "report.md"

    def save_config(self, cfg: Any) -> None:
        write_text_atomic(self.config_path, dump_yaml(cfg))

    def log(self, record: dict) -> None:
        """Append a metrics row (and mirror it to the trackers opened with :meth:`track`)."""
        append_jsonl(self.metrics_path, record)
        if self._trackers is not None:
            self._trackers.log(record)

    def track(self, report_to: Any, config: Any, job: str) -> None:
        """Mirror the rows logged from now on to the trackers named in ``report_to``
        (``tensorboard``, ``wandb``; see :mod:`tailor_evo.trackers`)."""
        from tailor_evo.trackers import Trackers

        self.close_trackers()
        self._trackers = Trackers(report_to, self.path, asdict(config) if is_dataclass(config) else dict(config), job)

    def close_trackers(self) -> None:
        if self._trackers is not None:
            self._trackers.close()
            self._trackers = None

    def read_metrics(self) -> list[dict]:
        """Metrics so far; a torn last line (crash mid-write) is dropped, not fatal."""
        if not self.metrics_path.exists():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_metrics(self, keep: "callable") -> None:
        """On resume, drop metric rows written after the last checkpoint so none is duplicated."""
        rows = [r for r in self.read_metrics() if keep(r)]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
