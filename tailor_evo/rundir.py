"""The run directory: one folder per command invocation holding config, metrics, checkpoints and report.

Layout (every command uses the parts it needs)::

    RUN_DIR/
      config.yaml        resolved configuration (what --resume reads back)
      metrics.jsonl      one JSON object per step / generation
      checkpoints/       resumable state, written atomically
      plots/             PNG figures
      report.md          short human-readable summary
      .lock              present while a process writes the directory (who, since when)

One process writes a run directory at a time: :meth:`RunDir.create` and :meth:`RunDir.locked`
take an exclusive lock on ``.lock`` and refuse a second process, naming the holder.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from tailor_evo.config import dump_yaml
from tailor_evo.errors import InputError
from tailor_evo.io import append_jsonl, fs_error, json_line, stat_or_absent, write_text_atomic

log = logging.getLogger(__name__)

LOCK = ".lock"
METRICS = "metrics.jsonl"


def empty_dir(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete everything inside ``path`` except the entries named in ``keep`` (and the lock)."""
    for child in path.iterdir():
        if child.name in keep or child.name == LOCK:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- one writer per run directory -----------------------------------------------------------------
# flock locks belong to an open file, so the kernel frees them when their process dies, however it
# dies; the record inside the file outlives a killed process, which is how a stale lock is recognised.

@dataclass
class _Held:
    fd: int
    path: Path
    pid: int
    count: int = 1


_HELD: dict[str, _Held] = {}


def _holder_record() -> str:
    command = shlex.join([Path(sys.argv[0]).name or "python", *sys.argv[1:]]) if sys.argv else "python"
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
                       "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n"


def _read_holder(fd: int) -> str:
    """The lock file's record as words, or "" when it holds none."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    if not text:
        return ""
    try:
        rec = json.loads(text)
        return (f"pid {rec['pid']} on {rec['host']}, running `{rec['command']}` since {rec['started']}")
    except (ValueError, KeyError, TypeError):
        return f"an unreadable record {text[:80]!r}"


def _open_locked(path: Path, directory: Path) -> int:
    """An fd holding the exclusive lock on ``path``; a held lock is refused, naming its holder."""
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise fs_error(exc, directory, "cannot create the run directory's lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd) or "a process that has not yet written its record"
            os.close(fd)
            raise InputError(f"run directory is in use by another process ({holder}); wait for it to "
                             f"finish, or stop it, before writing here", file=str(directory)) from None
        try:                 # the holder may have released and removed the file between open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def acquire_lock(directory: Path) -> None:
    """Take the run directory's lock for this process (again, if it holds it already).

    A lock whose process has died (killed, power lost) is free to the kernel but its record
    is still in the file: it is taken over, with a warning that names the process it was.
    """
    key = os.path.realpath(directory)
    held = _HELD.get(key)
    if held is not None and held.pid == os.getpid():
        held.count += 1
        return
    path = Path(key) / LOCK
    fd = _open_locked(path, directory)
    stale = _read_holder(fd)
    if stale:
        log.warning("%s: taking over the lock left by a process that is no longer running (%s)", directory, stale)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_record().encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise fs_error(exc, path, "cannot write the lock record") from None
    _HELD[key] = _Held(fd, path, os.getpid())


def release_lock(directory: Path) -> None:
    """Give up one hold of the lock; the last one removes the file (while still holding it)."""
    key = os.path.realpath(directory)
    held = _HELD.get(key)
    if held is None or held.pid != os.getpid():      # a forked child never releases its parent's lock
        return
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[key]
    try:
        held.path.unlink(missing_ok=True)
    except OSError:
        pass
    os.close(held.fd)


@atexit.register
def _release_all() -> None:
    for key, held in list(_HELD.items()):
        held.count = 1
        release_lock(Path(key))


def check_target(path: Path) -> None:
    """Refuse a run directory path that cannot be one (a file, a symlink loop), in one line."""
    if stat_or_absent(path, "cannot use as a run directory") is None:
        return
    if not path.is_dir():
        raise InputError("run directory path is a file", file=str(path))


def holds_nothing(path: Path, keep: tuple[str, ...] = ()) -> bool:
    """Whether a run directory holds no record: only its lock, the entries in ``keep``, and the
    empty ``checkpoints/`` and ``plots/`` a start that failed on its input left behind."""
    for child in path.iterdir():
        if child.name in keep or child.name == LOCK:
            continue
        if child.name in ("checkpoints", "plots") and child.is_dir() and not any(child.iterdir()):
            continue
        return False
    return True


def has_checkpoint(path: Path) -> bool:
    """Whether ``path/checkpoints`` holds anything to resume from (temporary entries are hidden)."""
    ckpt = Path(path) / "checkpoints"
    return ckpt.is_dir() and any(not p.name.startswith(".") for p in ckpt.iterdir())


@dataclass
class RunDir:
    path: Path
    _trackers: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @classmethod
    def locked(cls, path: str | Path) -> "RunDir":
        """The directory (made if missing) with this process holding its lock, until :meth:`release`
        or until the object is garbage-collected or the process ends."""
        path = Path(path)
        check_target(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fs_error(exc, path, "cannot create the run directory") from None
        acquire_lock(path)
        rd = cls(path)
        rd._lock = weakref.finalize(rd, release_lock, path)
        return rd

    def release(self) -> None:
        """Give up this object's hold of the lock (idempotent)."""
        if self._lock is not None:
            self._lock()

    def __getstate__(self) -> dict:
        """A copy sent to another process names the directory but holds neither lock nor trackers."""
        return {"path": self.path, "_trackers": None, "_lock": None}

    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False,
               keep: tuple[str, ...] = ()) -> "RunDir":
        """Make the directory and take its lock. Refuse to mix a fresh run into a non-empty
        directory unless asked.

        The lock comes before the emptiness check, so of two processes started on one
        directory the second is refused by name, resume or not. ``overwrite`` empties the
        directory first (except the entries named in ``keep``): old checkpoints or metric rows
        left beside a new run would be pruned, resumed from or plotted as if they were its own.
        """
        path = Path(path)
        check_target(path)
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other", file=str(path))
        if resume and not path.is_dir():
            raise InputError("nothing to resume: the run directory does not exist", file=str(path))
        rd = cls.locked(path)
        try:
            rd._check_start(resume, overwrite, keep)
            if overwrite:
                empty_dir(path, keep)
            (path / "checkpoints").mkdir(exist_ok=True)
            (path / "plots").mkdir(exist_ok=True)
        except OSError as exc:
            rd.release()
            raise fs_error(exc, path, "cannot prepare the run directory") from None
        except BaseException:
            rd.release()
            raise
        return rd

    def _check_start(self, resume: bool, overwrite: bool, keep: tuple[str, ...]) -> None:
        path = self.path
        if not holds_nothing(path, keep) and not (resume or overwrite):
            raise InputError("run directory exists and is not empty; pass --resume to continue it "
                             "or --overwrite to start again", file=str(path))
        if resume and not (path / "config.yaml").exists():
            raise InputError("nothing to resume: no config.yaml in the run directory", file=str(path))
        if resume and not has_checkpoint(path):
            raise InputError("nothing to resume from: no checkpoint in checkpoints/ (none was written yet, or it "
                             "was deleted); start again with --overwrite", file=str(path))

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

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
        return read_metrics_file(self.metrics_path)[0]

    def truncate_metrics(self, keep: "callable") -> None:
        """On resume, drop metric rows written after the last checkpoint so none is duplicated."""
        rows = [r for r in self.read_metrics() if keep(r)]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def resume_metrics(self, keep: Callable[[dict], bool], saved: list[dict] | None, checkpoint: Path) -> list[dict]:
        """On resume, the metric rows the checkpoint covers, written back as ``metrics.jsonl``.

        Rows after the checkpoint are dropped (they are computed again), so none is
        duplicated. A missing log, or one with damaged lines, is reported; the rows it lost
        are rebuilt from ``saved``, the copy of the log the checkpoint keeps (None for a
        checkpoint written without one, whose lost rows stay lost and are counted).
        """
        rows, damaged = read_metrics_file(self.metrics_path)
        kept = [r for r in rows if keep(r)]
        missing = not self.metrics_path.exists()
        if missing or damaged:
            what = "is missing" if missing else f"has damaged line(s) {', '.join(map(str, damaged[:5]))}"
            if saved is not None:
                kept = [r for r in saved if keep(r)]
                log.warning("%s %s; rebuilt its %d row(s) up to the checkpoint from %s", self.metrics_path, what,
                            len(kept), checkpoint)
            else:
                log.warning("%s %s and %s holds no copy of it: %d row(s) kept, the damaged ones are lost",
                            self.metrics_path, what, checkpoint, len(kept))
        write_text_atomic(self.metrics_path, "".join(json_line(r) for r in kept))
        return kept


def read_metrics_file(path: Path) -> tuple[list[dict], list[int]]:
    """(rows, numbers of the lines that are not JSON objects) of a metrics log; a missing one is empty."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise fs_error(exc, path, "cannot read the metrics log") from None
    rows, damaged = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            damaged.append(lineno)
    return rows, damaged
