"""The typed records the warm-start modules hand each other (and the pipeline and grid)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tailor_evo.generation.base import Engine
from tailor_evo.search.genome import Primitive
from tailor_evo.tasks.base import Problem, Task
from tailor_evo.warmstart.config import WarmstartConfig


@dataclass
class Candidate:
    """One rendered trajectory of one primitive on one problem."""

    problem: Problem
    primitive_id: str
    completion: str
    states: list[str]
    keys: list[str]


@dataclass
class MethodInputs:
    """What a method's candidate builder may draw on.

    Every method gets the same ``problems`` and knobs, so that a downstream difference is
    the method's; the optional inputs are there for the methods that need them (the
    registry record says which), and the builder counts every drop in ``dropped``.
    """

    task: Task
    method: str
    problems: list[Problem]
    cfg: WarmstartConfig
    seed: int
    dropped: Counter = field(default_factory=Counter)
    chat: bool = False
    archive_dir: str | Path | None = None
    teacher: Engine | None = None
    teacher_name: str = "teacher"
    primitives: Sequence[Primitive] | None = None    # replaces the method's own primitives when given
    progress: bool = True


@dataclass
class CandidateSet:
    """A method's verified candidates, and what the data card says about where they came from."""

    candidates: list[Candidate]
    n_primitives: int                   # primitives rendered (1 for a teacher or the reference solution)
    n_rendered: int                     # trajectories made before verification
    names: dict[str, str] = field(default_factory=dict)     # primitive id -> readable name
    skipped: dict[str, int] = field(default_factory=dict)   # primitives left out, by reason


@dataclass
class WarmstartStats:
    """Everything the data card reports; also returned to callers (pipeline, experiment grid)."""

    task: str
    method: str
    seed: int
    size: int
    levels: list[int]
    n_problems: int
    n_primitives: int
    eval_overlaps: int = 0           # training problems left out because the evaluation set has them
    n_rendered: int = 0
    n_verified: int = 0
    n_selected: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    per_primitive: dict[str, int] = field(default_factory=dict)
    per_level: dict[int, int] = field(default_factory=dict)
    verified_per_primitive: dict[str, int] = field(default_factory=dict)
    primitive_names: dict[str, str] = field(default_factory=dict)
    skipped_primitives: dict[str, int] = field(default_factory=dict)
    mean_chars: float = 0.0
    median_chars: float = 0.0
    max_chars: int = 0
    mean_words: float = 0.0
    mean_steps: float = 0.0
    coverage_selected: float = 0.0
    coverage_random: float = 0.0
    coverage_all_verified: float = 0.0
    coverage_measure: str = ""
    # the same measure on the completions' text steps with the problem's names abstracted
    # (Task.abstract_step): comparable across every method, teacher text included
    coverage_abstract: float = 0.0
    coverage_abstract_random: float = 0.0
    shortfall: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WarmstartResult:
    records: list[dict]
    stats: WarmstartStats
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    selected: list[int] = field(default_factory=list, repr=False)
