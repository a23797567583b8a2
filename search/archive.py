"""The elite archive: admitted primitives, their verified probe states, and the FAISS indexes.

A primitive enters the archive only if its quality reaches the floor, it was verified
on enough problems, and its novelty against the archive so far reaches a threshold.
Only states of *verified* trajectories are ever indexed, so failing reasoning never
shapes novelty or coverage. Admission order is kept: rebuilding the indexes in that
order after a resume reproduces every later novelty value exactly.

On disk (in the run directory): ``archive.jsonl`` (one primitive per line, the
canonical form), ``archive.parquet`` (the same rows with nested fields as JSON text,
for polars/pandas users) and ``archive_states.json`` (probe states per primitive, used
by ``archive diff`` and coverage reports).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tailor_evo.errors import InputError
from tailor_evo.io import check_types, iter_jsonl, read_json, write_json_atomic, write_jsonl_atomic, write_records
from tailor_evo.search.coverage import Coverage
from tailor_evo.search.embed import Embedder
from tailor_evo.search.genome import Primitive
from tailor_evo.search.novelty import StateIndex

ARCHIVE_JSONL = "archive.jsonl"
ARCHIVE_PARQUET = "archive.parquet"
ARCHIVE_STATES = "archive_states.json"


def trajectory_text(states: list[str]) -> str:
    """The whole-trajectory text that the trajectory-level index embeds."""
    return "\n".join(states)


@dataclass
class ArchiveConfig:
    quality_floor: float = 0.9      # least quality a primitive needs to enter the archive
    novelty_min: float = 0.04       # least novelty against the archived primitives it needs to enter
    min_problems: int = 32          # least number of problems it must have been evaluated on to enter


class NoveltyModel:
    """Step-level and trajectory-level kNN novelty against a set of indexed states."""

    def __init__(self, embedder: Embedder, k: int = 1, step_weight: float = 0.5) -> None:
        self.k, self.step_weight = k, step_weight
        self.steps = StateIndex(embedder)
        self.trajectories = StateIndex(embedder)

    def add(self, probe_states: list[list[str]]) -> None:
        self.steps.add(s for traj in probe_states for s in traj)
        self.trajectories.add(trajectory_text(t) for t in probe_states)

    def score(self, probe_states: list[list[str]]) -> float:
        """Weighted mean of step-level and trajectory-level novelty; 0 without verified probe trajectories."""
        if not probe_states:
            return 0.0
        step = self.steps.novelty((s for traj in probe_states for s in traj), self.k)
        traj = self.trajectories.novelty((trajectory_text(t) for t in probe_states), self.k)
        return self.step_weight * step + (1.0 - self.step_weight) * traj


class Archive:
    """Admitted primitives in admission order, with their probe states and novelty indexes."""

    def __init__(self, embedder: Embedder, cfg: ArchiveConfig | None = None, k: int = 1,
                 step_weight: float = 0.5) -> None:
        self.cfg = cfg or ArchiveConfig()
        self.embedder = embedder
        self.novelty = NoveltyModel(embedder, k=k, step_weight=step_weight)
        self.items: list[Primitive] = []
        self.states: dict[str, list[list[str]]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, pid: str) -> bool:
        return pid in self.states

    def score(self, probe_states: list[list[str]]) -> float:
        return self.novelty.score(probe_states)

    def consider(self, prim: Primitive, probe_states: list[list[str]]) -> str:
        """Admit ``prim`` if it qualifies; return "admitted" or the reason it was not.

        Sets ``prim.novelty`` to its novelty against the archive before admission.
        """
        if prim.id in self.states:
            return "already archived"
        if prim.n_problems < self.cfg.min_problems:
            return "too few problems"
        if prim.quality < self.cfg.quality_floor:
            return "below quality floor"
        prim.novelty = self.score(probe_states)
        if prim.novelty < self.cfg.novelty_min:
            return "not novel"
        self.add(prim, probe_states)
        return "admitted"

    def add(self, prim: Primitive, probe_states: list[list[str]]) -> None:
        """Insert without checks (used by ``consider`` and when rebuilding after a resume)."""
        self.items.append(prim)
        self.states[prim.id] = probe_states
        self.novelty.add(probe_states)

    def all_states(self) -> list[str]:
        return [s for p in self.items for traj in self.states[p.id] for s in traj]

    def coverage(self, cov: Coverage) -> float:
        return cov(self.all_states())

    def save(self, run_dir: str | Path) -> None:
        save_archive(run_dir, self.items, self.states)


def _flat_row(p: Primitive) -> dict:
    d = p.to_dict()
    for key in ("program", "descriptors", "samples"):
        d[key] = json.dumps(d[key], ensure_ascii=False, sort_keys=True)
    return d


def save_archive(run_dir: str | Path, items: list[Primitive], states: dict[str, list[list[str]]] | None = None) -> None:
    """Write archive.jsonl, archive.parquet and (if given) archive_states.json atomically."""
    run_dir = Path(run_dir)
    write_jsonl_atomic(run_dir / ARCHIVE_JSONL, [p.to_dict() for p in items])
    if items:
        write_records(run_dir / ARCHIVE_PARQUET, [_flat_row(p) for p in items])
    if states is not None:
        write_json_atomic(run_dir / ARCHIVE_STATES, {p.id: states.get(p.id, []) for p in items})


def _archive_file(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / ARCHIVE_JSONL if run_dir.is_dir() else run_dir
    if not path.exists():
        raise InputError("no archive here (expected archive.jsonl in a search run directory)", file=str(path))
    return path


def load_archive(run_dir: str | Path) -> list[Primitive]:
    """The archived primitives of a search run directory (or of an ``archive.jsonl`` path), in admission order."""
    path = _archive_file(run_dir)
    out = []
    for line, rec in iter_jsonl(path, required=("id", "task", "description", "program")):
        check_types(rec, Primitive, file=str(path), line=line)
        out.append(Primitive.from_dict(rec))
    return out


def load_states(run_dir: str | Path) -> dict[str, list[list[str]]]:
    """Probe states per archived primitive ({} when the run did not save them)."""
    path = Path(run_dir) / ARCHIVE_STATES
    if not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("expected an object mapping ids to state lists", file=str(path))
    return data
