"""Seed libraries: the task's hand-written primitives that start the population.

Libraries live in ``populations/seeds/<task>/<name>.json`` with the format
``{"task": ..., "library": ..., "primitives": [{"name", "description", "program"}]}``.
A library can also be given as a path to such a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailor_evo.errors import InputError
from tailor_evo.io import read_json


@dataclass
class SeedPrimitive:
    name: str
    description: str
    program: dict
    library: str


def library_path(name_or_path: str, task: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    import populations

    return Path(populations.__file__).parent / "seeds" / task / f"{name_or_path}.json"


def load_seed_library(name_or_path: str, task: str) -> list[SeedPrimitive]:
    """Primitives of one seed library; raises InputError naming the file and field on bad content."""
    path = library_path(name_or_path, task)
    if not path.exists():
        raise InputError(f"seed library {name_or_path!r} not found for task {task!r}", file=str(path))
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("primitives"), list):
        raise InputError("expected an object with a 'primitives' list", file=str(path), field="primitives")
    if data.get("task", task) != task:
        raise InputError(f"library is for task {data.get('task')!r}, not {task!r}", file=str(path), field="task")
    out = []
    for i, rec in enumerate(data["primitives"]):
        for key in ("name", "program"):
            if key not in rec:
                raise InputError("missing field", file=str(path), field=f"primitives[{i}].{key}")
        if not isinstance(rec["program"], dict):
            raise InputError("program must be an object", file=str(path), field=f"primitives[{i}].program")
        out.append(SeedPrimitive(str(rec["name"]), str(rec.get("description", "")), rec["program"],
                                 str(data.get("library", Path(name_or_path).stem))))
    return out
