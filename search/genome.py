"""The primitive record: one reusable reasoning strategy with its history and scores.

A primitive has two faces, a natural-language ``description`` (what an LLM reads and
writes) and a ``program`` (a JSON tree over the task's moves, what the executor runs).
Its ``id`` is a content hash of the program so that the same strategy found twice, by
different operators or in different generations, is recognised as one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the form that is hashed and compared."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def program_id(program: dict) -> str:
    """A short content hash of a program (16 hex digits of SHA-256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(program).encode("utf-8")).hexdigest()[:16]


def program_size(program: dict) -> int:
    """Number of nodes of a program tree."""
    return 1 + sum(program_size(a) for a in program.get("args", []))


@dataclass
class Primitive:
    """One individual of the search and one row of the archive (JSON-serialisable).

    Scores are filled by evaluation: ``quality`` (penalised verifier success rate),
    ``novelty`` (distance of its reasoning states to the archive when it was scored),
    ``length`` (mean steps per verified trajectory), ``n_problems``/``n_correct`` (how
    many problems it was verified on), ``descriptors`` (behaviour counts per trajectory,
    used by MAP-Elites and reports) and ``samples`` (a few verified trajectories).
    """

    id: str
    task: str
    description: str
    program: dict
    name: str = ""
    parents: list[str] = field(default_factory=list)
    operator: str = "random"
    generation: int = 0
    quality: float = 0.0
    novelty: float = 0.0
    length: float = 0.0
    n_problems: int = 0
    n_correct: int = 0
    descriptors: dict[str, float] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, task: str, program: dict, description: str, *, name: str = "", parents: list[str] | None = None,
               operator: str = "random", generation: int = 0) -> "Primitive":
        pid = program_id(program)
        return cls(id=pid, task=task, description=description, program=program, name=name or f"p-{pid[:8]}",
                   parents=list(parents or []), operator=operator, generation=generation)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Primitive":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
