"""Seed primitive libraries: loading and validation, for any task.

A library file is JSON, either a bare list of primitives or an object
``{"task": "kk", "library": "rule-based", "primitives": [...]}``. Each primitive
has a ``name`` (unique in the file), a ``description`` (what an LLM reads) and a
``program`` (a tree over the task's move grammar, what the executor runs);
``tags`` and ``notes`` are optional. A task's files live in its seed folder
(``Task.seeds_dir``; for the built-in tasks ``populations/seeds/<task>/``), so a
library can be named ``kk/rule-based`` (or ``rule-based`` with a task).

Validation reports every problem at once, each naming the file, the entry
index and the field, so a hand-edited file can be fixed in one pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.search.genome import Primitive

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
REQUIRED = ("name", "description", "program")
OPTIONAL = ("tags", "notes")


class Library(list):
    """The primitives of one library as plain dicts (a list), plus where they came from."""

    def __init__(self, items: list[dict], *, task: str, name: str, path: Path) -> None:
        super().__init__(items)
        self.task, self.name, self.path = task, name, path

    @property
    def primitives(self) -> list[Primitive]:
        """The library's primitives as search records (``operator`` is ``seed:<library>``)."""
        return [Primitive.create(self.task, p["program"], p["description"], name=p["name"],
                                 operator=f"seed:{self.name}") for p in self]


def resolve_path(path_or_name: str | Path, task: Any = None) -> Path:
    """A file path, ``<task>/<library>``, or a library name of ``task``."""
    path = Path(path_or_name)
    if path.exists() or path.suffix == ".json":
        return path
    text = str(path_or_name)
    if "/" in text:
        task_name, text = text.split("/", 1)
        return seeds_dir(task_name) / f"{text}.json"
    task_name = _task_name(task)
    if task_name is None:
        raise InputError(f"library {text!r} needs a task (or write it as <task>/{text})", field="library")
    return seeds_dir(task_name) / f"{text}.json"


def seeds_dir(task_name: str) -> Path:
    """Where a task's seed libraries live: the folder its class names (a plugin ships its
    own), else ``populations/seeds/<task>``."""
    from tailor_evo.tasks.registry import get_task, task_names

    if task_name in task_names():
        folder = getattr(get_task(task_name), "seeds_dir", None)
        if folder is not None:
            return Path(folder)
    return SEEDS_DIR / task_name


def _task_name(task: Any) -> str | None:
    if task is None:
        return None
    return task if isinstance(task, str) else getattr(task, "name", None)


def _read(path: Path) -> tuple[Any, list[str]]:
    if not path.exists():
        return None, [f"{path}: file not found"]
    if path.is_dir():
        return None, [f"{path}: is a directory, expected a JSON file"]
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except json.JSONDecodeError as exc:
        return None, [f"{path}:{exc.lineno}: invalid JSON: {exc.msg}"]
    except UnicodeDecodeError:
        return None, [f"{path}: not UTF-8 text"]


def _split(data: Any, path: Path, task: Any) -> tuple[str | None, str, Any, list[str]]:
    """(task name, library name, primitives, errors) from the file's top level."""
    errors: list[str] = []
    lib_name = path.stem
    file_task = None
    if isinstance(data, dict):
        extra = set(data) - {"task", "library", "primitives", "description"}
        if extra:
            errors.append(f"{path}: unexpected top-level key(s) {sorted(extra)}")
        file_task = data.get("task")
        if file_task is not None and not isinstance(file_task, str):
            errors.append(f"{path}: field 'task': must be a string")
            file_task = None
        if isinstance(data.get("library"), str):
            lib_name = data["library"]
        prims = data.get("primitives")
        if prims is None:
            errors.append(f"{path}: field 'primitives': missing")
    elif isinstance(data, list):
        prims = data
    else:
        return None, lib_name, None, [f"{path}: expected a list of primitives or an object with 'primitives'"]
    wanted = _task_name(task)
    if file_task and wanted and file_task != wanted:
        errors.append(f"{path}: field 'task': library is for task {file_task!r}, not {wanted!r}")
    task_name = file_task or wanted or _task_of_folder(path)
    if task_name is None:
        errors.append(f"{path}: cannot tell the task: add a 'task' field or pass --task")
    return task_name, lib_name, prims, errors


def _task_of_folder(path: Path) -> str | None:
    """The task whose seed folder holds ``path`` (a file without a ``task`` field)."""
    if path.resolve().parent.parent == SEEDS_DIR:
        return path.resolve().parent.name
    from tailor_evo.tasks.registry import get_task, task_names

    for name in task_names():
        folder = getattr(get_task(name), "seeds_dir", None)
        if folder is not None and Path(folder).resolve() == path.resolve().parent:
            return name
    return None


def validate_library(path: str | Path, task: Any = None) -> list[str]:
    """Every problem with a library file, as ``"<file>: entry <i> (<name>): field '<f>': ..."`` lines."""
    path = Path(path)
    data, errors = _read(path)
    if errors:
        return errors
    task_name, _, prims, errors = _split(data, path, task)
    if prims is None:
        return errors
    if not isinstance(prims, list):
        return errors + [f"{path}: field 'primitives': must be a list"]
    if not prims:
        errors.append(f"{path}: field 'primitives': the library is empty")
    grammar = None
    if task_name is not None:
        from tailor_evo.tasks.registry import get_task

        try:
            grammar = get_task(task_name).grammar()
        except InputError as exc:
            errors.append(f"{path}: field 'task': {exc.detail}")
        except NotImplementedError:
            errors.append(f"{path}: field 'task': task {task_name!r} has no move grammar")
    seen: dict[str, int] = {}
    for i, entry in enumerate(prims):
        label = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            errors.append(f"{label}: expected an object")
            continue
        if isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        for key in REQUIRED:
            if key not in entry:
                errors.append(f"{label}: field '{key}': missing")
        extra = set(entry) - set(REQUIRED) - set(OPTIONAL)
        if extra:
            errors.append(f"{label}: unexpected field(s) {sorted(extra)}")
        for key in ("name", "description"):
            if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
                errors.append(f"{label}: field '{key}': must be a non-empty string")
        name = entry.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append(f"{label}: field 'name': duplicate of entry {seen[name]}")
            seen.setdefault(name, i)
        if "program" in entry and grammar is not None:
            for err in grammar.validate(entry["program"]):
                errors.append(f"{label}: field 'program': {err}")
    return errors


def load_library(path_or_name: str | Path, task: Any = None) -> Library:
    """Load and validate a library; raise an :class:`InputError` naming the first problem.

    ``path_or_name``: a file path, ``"kk/rule-based"``, or ``"rule-based"`` with ``task``
    (a task name or object).
    """
    path = resolve_path(path_or_name, task)
    errors = validate_library(path, task)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(errors[0] + more)
    data, _ = _read(path)
    task_name, lib_name, prims, _ = _split(data, path, task)
    items = [{k: p[k] for k in REQUIRED + OPTIONAL if k in p} for p in prims]
    return Library(items, task=str(task_name), name=lib_name, path=path)


def list_libraries(task: str | None = None) -> list[Path]:
    """The seed library files of one task, or of every known task (plugins included)."""
    from tailor_evo.tasks.registry import task_names

    names = [task] if task else task_names()
    return sorted(p for name in names for p in seeds_dir(name).glob("*.json"))
