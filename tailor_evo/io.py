"""Dataset I/O: JSONL and Parquet with located errors, and atomic writes.

Every writer goes through a temporary file in the same directory followed by a
rename, so that a crash never leaves a half-written file where a finished one is
expected (resume logic relies on that). Standard output (``-``), devices and FIFOs
are written in place instead, and a symbolic link is followed: the file it points to
is replaced and the link stays. File-system failures (read-only, full, a link loop)
become one-line errors naming the path the user gave.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.extras import require

STDOUT = "-"

# errno -> the words a one-line error uses for it
_FS_REASONS = {
    errno.EROFS: "read-only file system",
    errno.ELOOP: "a symbolic link loop (too many levels of symbolic links)",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
    errno.EEXIST: "already exists",
    errno.ENOENT: "no such file or directory",
}


def is_fs_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a file-system failure a user can act on (not a bug)."""
    return isinstance(exc, OSError) and exc.errno in _FS_REASONS or is_disk_full(exc)


def fs_error(exc: BaseException, path: str | os.PathLike | None, what: str) -> InputError:
    """A file-system failure as a one-line :class:`InputError` that names ``path`` (the file the
    user named, not a temporary sibling) and the reason in words."""
    if is_disk_full(exc):
        reason = "no space left on the device"
    elif isinstance(exc, OSError) and exc.errno in _FS_REASONS:
        reason = _FS_REASONS[exc.errno]
    else:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return InputError(f"{what}: {reason}", file=None if path is None else str(path))


def is_special(path: str | os.PathLike) -> bool:
    """Whether ``path`` is standard output (``-``) or an existing device, FIFO or socket: a target
    written in place, never replaced by a rename."""
    if str(path) == STDOUT:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def stat_or_absent(path: Path, what: str) -> os.stat_result | None:
    """``os.stat(path)`` following links; None where nothing is there yet; any other failure
    (a link loop, a denied directory) as one line saying what could not be done (``what``)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise fs_error(exc, path, what) from None


def output_target(path: str | os.PathLike) -> Path:
    """The file an output path names. A symbolic link is followed (the file it points to is
    written and the link kept, as ``open`` would); a loop is a one-line error."""
    path = Path(path)
    stat_or_absent(path, "cannot write")
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    Standard output (``-``), a device and a FIFO are written directly: a rename would
    replace the device node or the pipe with an ordinary file.
    """
    kwargs = {} if "b" in mode else {"encoding": encoding}
    if is_special(path):
        with _open_special(path, mode, kwargs) as fh:
            yield fh
        return
    shown, path = Path(path), output_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, file_mode())     # mkstemp makes 0600; a finished file honours the umask like open()
    except OSError as exc:
        raise fs_error(exc, shown, "cannot write") from None
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise InputError("no space left on the device while writing; the previous version (if any) "
                             "is intact", file=str(shown)) from None
        if is_fs_error(exc):
            raise fs_error(exc, shown, "cannot write") from None
        raise


@contextmanager
def _open_special(path: str | os.PathLike, mode: str, kwargs: dict):
    """Standard output, or a device / FIFO opened for writing in place (no temporary, no fsync)."""
    if str(path) == STDOUT:
        stream = sys.stdout.buffer if "b" in mode else sys.stdout
        yield stream
        stream.flush()
        return
    try:
        fh = open(path, mode, **kwargs)
    except OSError as exc:
        raise fs_error(exc, path, "cannot write") from None
    try:
        with fh:
            yield fh
    except OSError as exc:
        if is_fs_error(exc):
            raise fs_error(exc, path, "cannot write") from None
        raise


def file_mode() -> int:
    """The mode ``open`` gives a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def honour_umask(directory: str | os.PathLike) -> None:
    """Give the files below ``directory`` that a library wrote with a private mode (safetensors
    writes 0600) the mode ``open`` would have given them, so a shared results directory stays readable."""
    mode = file_mode()
    for f in Path(directory).rglob("*"):
        if f.is_file():
            os.chmod(f, mode)


def is_disk_full(exc: BaseException) -> bool:
    """A full disk, however the writer reports it: an ``OSError`` (ENOSPC, EDQUOT), or the words
    of the OS error inside another type (safetensors raises ``SafetensorError``, torch a
    ``RuntimeError`` when its zip writer hits ENOSPC: see :func:`disk_nearly_full`)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text


def disk_nearly_full(directory: str | os.PathLike, margin: int = 1 << 20) -> bool:
    """Whether the file system of ``directory`` has less than ``margin`` bytes free: how a writer
    whose error does not say why (torch's zip writer) is recognised as having hit a full disk."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def raise_save_failure(exc: BaseException, tmp: Path, target: Path, doing: str, action: str, intact: str) -> None:
    """After a directory save (the model, a checkpoint) failed: remove its half-written temporary
    directory, then raise a full disk or another file-system failure as one line naming ``target``
    (``doing``/``action``: "saving the model"/"save the model"; ``intact``: what --resume can still
    rely on); anything else (a bug, Ctrl-C) is raised as it was."""
    import shutil

    full = is_disk_full(exc) or (isinstance(exc, Exception) and disk_nearly_full(target.parent))
    shutil.rmtree(tmp, ignore_errors=True)
    if full:
        raise InputError(f"no space left on the device while {doing}; free space and --resume ({intact})",
                         file=str(target)) from None
    if is_fs_error(exc):
        raise fs_error(exc, target, f"cannot {action} ({intact})") from None
    raise exc


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120, **kwargs: Any) -> Path:
    """Write a matplotlib figure as PNG atomically (a crash never leaves a torn plot) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, **kwargs)
    plt.close(fig)
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=_json_default)
        fh.write("\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record and flush: used for logs (metrics) where a torn last line is tolerable
    (resume reports it and rebuilds it from the checkpoint's copy)."""
    path = Path(path)
    line = json_line(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
    except OSError as exc:
        if is_fs_error(exc):
            raise fs_error(exc, path, "cannot append a row; the rows before it are intact") from None
        raise


def json_line(record: dict) -> str:
    """One JSONL line of ``record`` (NumPy values, sets and paths made plain), as every log writes it."""
    return json.dumps(record, ensure_ascii=False, default=_json_default) + "\n"


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    text = read_text(path, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None


def iter_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)``; blank lines are skipped, anything else malformed raises.

    ``required`` names fields that every record must have; a missing one raises an
    :class:`InputError` naming the file, the line and the field.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    if path.is_dir():
        raise InputError("is a directory, expected a JSONL file", file=str(path))
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise fs_error(exc, path, "cannot read") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text (byte {exc.start}); JSONL files must be UTF-8",
                                 file=str(path), line=lineno) from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", file=str(path), line=lineno) from None
            if not isinstance(rec, dict):
                raise InputError("expected a JSON object", file=str(path), line=lineno)
            for field in required:
                if field not in rec:
                    raise InputError("missing field", file=str(path), line=lineno, field=field)
            yield lineno, rec


def read_records(path: str | os.PathLike, required: Sequence[str] = (), default_split: str = "train",
                 types: dict[str, type] | None = None) -> list[dict]:
    """Read JSONL or Parquet (by extension), or a Hugging Face dataset (a ``save_to_disk``
    directory or a cached id, :mod:`tailor_evo.hf_datasets`), into a list of dicts,
    checking required fields and the ``types`` of the fields named there (str, int, float,
    bool, list, dict); an error names the row as its line."""
    from tailor_evo.hf_datasets import is_dataset_source, load_rows

    if is_dataset_source(path):
        rows = load_rows(path, default_split)
    elif Path(path).suffix == ".parquet":
        if not Path(path).exists():
            raise InputError("file not found", file=str(path))
        rows = _read_parquet_rows(Path(path))
    else:
        rows = [rec for _, rec in iter_jsonl(path, required)]
    for i, rec in enumerate(rows, start=1):
        for field in required:
            if field not in rec:
                raise InputError("missing field", file=str(path), line=i, field=field)
        for field, tp in (types or {}).items():
            if field in rec and not _TYPE_CHECKS[tp](rec[field]):
                raise InputError(f"expected {tp.__name__}, got {type(rec[field]).__name__}", file=str(path),
                                 line=i, field=field)
    return rows


def _read_parquet_rows(path: Path) -> list[dict]:
    require("parquet", what="reading Parquet files")
    import polars as pl

    try:
        return pl.read_parquet(path).to_dicts()
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"not a readable Parquet file ({first[:160]})", file=str(path)) from None


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file, or an :class:`InputError` that names it (missing, a directory, binary)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", file=str(path))
    if path.is_dir():
        raise InputError(f"is a directory, expected a {what}", file=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fs_error(exc, path, f"cannot read the {what}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (a binary file?); a {what} must be UTF-8", file=str(path),
                         line=line) from None


def check_messages(value: Any, *, file: str, line: int, field: str) -> list[dict]:
    """Chat messages as records hold them: a non-empty list of ``{role, content}`` objects whose
    role and content are strings. Anything else is named (file, line, field) instead of failing
    later inside a chat template."""
    if not (isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value)):
        got = type(value).__name__ if not isinstance(value, list) else "a list of something else"
        raise InputError(f"expected a string or a non-empty list of {{role, content}} string objects, got {got}",
                         file=file, line=line, field=field)
    return value


_TYPE_CHECKS: dict[type, Any] = {
    str: lambda v: isinstance(v, str),
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    list: lambda v: isinstance(v, list),
    dict: lambda v: isinstance(v, dict),
}


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> tuple[tuple[str, type], ...]:
    """(field, plain type) of a dataclass, resolved once per class."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    return tuple((f.name, typing.get_origin(hints[f.name]) or hints[f.name]) for f in dataclasses.fields(cls))


def check_types(rec: dict, cls: type, *, file: str, line: int) -> None:
    """Check the fields of ``rec`` that dataclass ``cls`` declares against their declared types
    (str, int, float, bool, list, dict), so a wrongly typed field is named with its line."""
    for name, tp in _field_types(cls):
        check = _TYPE_CHECKS.get(tp)
        if name in rec and check is not None and not check(rec[name]):
            raise InputError(f"expected {tp.__name__}, got {type(rec[name]).__name__}",
                             file=file, line=line, field=name)


def read_problems(task: Any, path: str | os.PathLike, default_split: str = "test") -> list[tuple[dict, Any]]:
    """(record, problem) pairs of a JSONL/Parquet file or a Hugging Face dataset, each record
    parsed by ``task.from_record`` (our format or the task's public one); an error names the
    file, the line (row) and the field."""
    from tailor_evo.hf_datasets import is_dataset_source

    if is_dataset_source(path):
        # Arrow cannot hold every task's nested ``meta``; a dataset keeps it as a JSON string
        rows = ((i, _json_field(rec, "meta", path, i))
                for i, rec in enumerate(read_records(path, default_split=default_split), start=1))
    elif Path(path).suffix == ".parquet":
        rows = enumerate(read_records(path), start=1)
    else:
        rows = iter_jsonl(path)
    out = [(rec, task.from_record(rec, source=str(path), line=line)) for line, rec in rows]
    if not out:
        raise InputError("no records", file=str(path))
    return out


def _json_field(rec: dict, key: str, path: Any, line: int) -> dict:
    """``rec`` with ``rec[key]`` decoded when it is a JSON string."""
    if not isinstance(rec.get(key), str):
        return rec
    try:
        return {**rec, key: json.loads(rec[key])}
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", file=str(path), line=line, field=key) from None


def write_records(path: str | os.PathLike, records: list[dict]) -> int:
    """Write JSONL or Parquet by extension, atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        require("parquet", what="writing Parquet files")
        import polars as pl

        with atomic_open(path, "wb") as fh:
            pl.DataFrame(records).write_parquet(fh)
        return len(records)
    return write_jsonl_atomic(path, records)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
