"""The task interface: what the search and the trainers may know about a domain.

A task makes problems from a seed and a difficulty, formats prompts, verifies
completions, and (for the offline engine) offers a typed grammar of reasoning
moves plus an executor that runs a program over those moves on a problem.

The response format shared by all tasks is::

    <think> ... reasoning ... </think> <answer> ... final answer ... </answer>
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
SPECIAL_MARKERS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


@dataclass
class Problem:
    """One problem instance. ``meta`` holds the task's structure (JSON-serialisable) so that
    solvers, verifiers and executors can work from the record alone."""

    id: str
    task: str
    difficulty: int          # KK: number of people; iGSM: operation count
    question: str            # the problem text shown to the model
    answer: Any              # gold answer (KK: list[bool]; iGSM: int)
    answer_text: str         # canonical text inside <answer> ... </answer>
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Problem":
        return cls(**{k: d[k] for k in ("id", "task", "difficulty", "question", "answer", "answer_text")},
                   meta=d.get("meta", {}))


@dataclass
class Verdict:
    """The verifier's judgement of one completion. Never raised, always returned."""

    reward: float            # binary by default: 1.0 correct, 0.0 otherwise
    correct: bool
    format_ok: bool
    reason: str              # short machine-friendly reason: "ok", "missing </answer>", ...
    parsed: Any = None       # what the parser extracted (for debugging / reports)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Step:
    """One reasoning step of a trajectory, with the reasoning state it visits.

    ``state`` is a text rendering of the state (what an embedder reads), ``key`` a
    canonical structured key (e.g. which people are assigned which role), and
    ``kind`` the move type (assume, check, conflict, backtrack, verify, compute, ...)
    that behaviour descriptors count.
    """

    text: str
    state: str
    key: str
    kind: str
    fact: dict | None = None  # machine-checkable claim the step makes, if any

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Trajectory:
    steps: list[Step]
    answer: Any | None
    finished: bool
    completion: str          # full response text "<think> ... </think> <answer> ... </answer>"
    reason: str = "ok"       # why unfinished, if so

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


@dataclass(frozen=True)
class GuessParts:
    """An answer's independent parts: how many, a blind guess's chance per part, and what the
    report calls them (plural)."""

    count: int
    chance: float
    noun: str = "parts"


@dataclass(frozen=True)
class MoveSpec:
    """A typed node of a program tree (DEAP strongly typed GP: ``name(args...) -> ret``).

    Terminals are moves with no arguments. ``doc`` is the phrase the description
    renderer uses; ``{0}``, ``{1}``... stand for the rendered arguments.
    """

    name: str
    ret: str
    args: tuple[str, ...] = ()
    doc: str = ""


@dataclass
class Grammar:
    """A task's move grammar. Programs are JSON trees ``{"op": name, "args": [...]}``."""

    task: str
    root: str
    moves: list[MoveSpec]

    def __post_init__(self) -> None:
        self.by_name = {m.name: m for m in self.moves}

    def validate(self, program: Any, max_depth: int = 12) -> list[str]:
        """Every reason the program is invalid (empty list = valid)."""
        errors: list[str] = []
        self._check(program, self.root, "program", 0, max_depth, errors)
        return errors

    def _check(self, node: Any, want: str, path: str, depth: int, max_depth: int, errors: list[str]) -> None:
        if depth > max_depth:
            errors.append(f"{path}: deeper than {max_depth}")
            return
        if not isinstance(node, dict) or "op" not in node:
            errors.append(f"{path}: expected an object with 'op'")
            return
        extra = set(node) - {"op", "args"}
        if extra:
            errors.append(f"{path}: unexpected keys {sorted(extra)}")
        spec = self.by_name.get(node["op"])
        if spec is None:
            errors.append(f"{path}: unknown move {node['op']!r}")
            return
        if spec.ret != want:
            errors.append(f"{path}: move {spec.name!r} returns {spec.ret}, expected {want}")
        args = node.get("args", [])
        if not isinstance(args, list) or len(args) != len(spec.args):
            errors.append(f"{path}: move {spec.name!r} takes {len(spec.args)} argument(s)")
            return
        for i, (arg, tp) in enumerate(zip(args, spec.args)):
            self._check(arg, tp, f"{path}.{spec.name}[{i}]", depth + 1, max_depth, errors)

    def random_program(self, rng: random.Random, max_depth: int = 6) -> dict:
        """Grow a random valid tree; near the depth limit prefer terminals of the needed type."""
        return self._grow(self.root, rng, 0, max_depth)

    def choices(self, tp: str, near_limit: bool) -> list[MoveSpec]:
        """The moves that may grow a node of type ``tp``. Near the depth limit: terminals, else
        moves that do not recurse into ``tp`` (a type without terminals, such as a plan that
        always wraps a strategy), so that random trees stay bounded."""
        candidates = [m for m in self.moves if m.ret == tp]
        if not candidates:
            raise ValueError(f"grammar has no move returning {tp}")
        if near_limit:
            closing = [m for m in candidates if not m.args] or [m for m in candidates if tp not in m.args]
            candidates = closing or candidates
        return candidates

    def _grow(self, tp: str, rng: random.Random, depth: int, max_depth: int) -> dict:
        spec = rng.choice(self.choices(tp, depth >= max_depth - 1))
        return {"op": spec.name, "args": [self._grow(a, rng, depth + 1, max_depth) for a in spec.args]}

    def describe(self, program: dict) -> str:
        """Render a program's natural-language description from the moves' ``doc`` phrases."""
        spec = self.by_name[program["op"]]
        parts = [self.describe(a) for a in program.get("args", [])]
        return spec.doc.format(*parts) if spec.doc else f"{spec.name}({', '.join(parts)})"


class Task(ABC):
    """Base class of a task. :mod:`tailor_evo.tasks.registry` knows the built-in ones; add yours with
    :func:`tailor_evo.tasks.registry.register`."""

    name: str = ""
    difficulty_name: str = "difficulty"     # e.g. "people" or "op"
    default_levels: tuple[int, ...] = ()
    # Folder of the task's seed libraries (``<library>.json``); None: ``populations/seeds/<name>``.
    # A plugin ships its libraries in its own package and names the folder here.
    seeds_dir: Path | None = None
    # How the executor writes traces, where a task offers a choice; the first is the default.
    # Every warm-start method of one run renders through the same one, so comparisons stay fair.
    renderings: tuple[str, ...] = ()
    rendering: str | None = None

    def use_rendering(self, name: str | None) -> "Task":
        """Select the executor's trace rendering (None keeps the default); returns the task."""
        if name is None:
            return self
        if name not in self.renderings:
            known = ", ".join(self.renderings) or f"none: task {self.name!r} has a single rendering"
            raise InputError(f"unknown rendering {name!r} for task {self.name!r} (known: {known})",
                             field="rendering")
        self.rendering = name
        return self

    @property
    def active_rendering(self) -> str | None:
        return self.rendering or (self.renderings[0] if self.renderings else None)

    # --- problems -----------------------------------------------------------------
    @abstractmethod
    def generate(self, n: int, seed: int, levels: list[int] | None = None, **options: Any) -> list[Problem]:
        """``n`` problems, deterministic in ``seed``, spread over difficulty ``levels``."""

    def training_options(self) -> dict[str, Any]:
        """Generator options for the problems models are trained on (warm start, RL), e.g. a balanced
        answer distribution; evaluation sets use the plain draw."""
        return {}

    @abstractmethod
    def solve(self, problem: Problem) -> Any:
        """The answer computed by the task's own solver from ``problem.meta``."""

    # --- prompts and answers ------------------------------------------------------
    @abstractmethod
    def instruction(self) -> str:
        """The system instruction: the response format and any task rules (e.g. modulo 23)."""

    def prompt(self, problem: Problem, chat: bool = False) -> str | list[dict]:
        """Plain prompt (ends with ``Assistant:``) or chat messages for a chat template."""
        if chat:
            return [{"role": "system", "content": self.instruction()},
                    {"role": "user", "content": problem.question}]
        return f"{self.instruction()}\n\nUser: {problem.question}\nAssistant:"

    @abstractmethod
    def verify(self, problem: Problem, completion: str, shaped: bool = False) -> Verdict:
        """Judge a completion. Must never raise on any string.

        ``shaped=True`` (the RL ``shaped`` reward) may give partial reward for the format or a
        well-formed answer; ``correct`` must not change with it.
        """

    def partial_credit(self, problem: Problem, verdict: Verdict, completion: str = "") -> float:
        """Share of the answer that is right, in [0, 1], for the RL ``partial`` reward.

        A task whose answer has parts (KK: one role per person) overrides this so that a
        mostly-right answer earns more than a wrong one; a task whose answer is one value
        (iGSM) may judge the parts of the solution in ``completion``, the text ``verdict``
        was given for. The default is all or nothing.
        """
        return 1.0 if verdict.correct else 0.0

    @abstractmethod
    def reference_solution(self, problem: Problem) -> str:
        """The canonical (rule-based) reasoning text, without the response tags."""

    def format_response(self, reasoning: str, answer_text: str) -> str:
        return f"{THINK_OPEN} {reasoning.strip()} {THINK_CLOSE} {ANSWER_OPEN} {answer_text.strip()} {ANSWER_CLOSE}"

    def reference_completion(self, problem: Problem) -> str:
        return self.format_response(self.reference_solution(problem), problem.answer_text)

    def reading_text(self, problem: Problem, rng: random.Random, varied: bool = False, transfer: bool = False) -> str:
        """The problem followed by reading exercises (never its solution), for pretraining.

        ``varied`` asks for more varied layouts (more exercises, other orders), used by
        the later phase of a pretraining recipe; without it the text is unchanged.

        A base model pretrained on these can read the task's text (copy names, look up
        definitions) without having been taught to solve it; ``models pretrain`` mixes
        them into its corpus. A task without reading exercises is left out of it.
        """
        raise NotImplementedError(f"task {self.name!r} has no reading exercises")

    # --- records ------------------------------------------------------------------
    def to_record(self, problem: Problem) -> dict:
        """A JSONL record for ``data generate``; tasks may add their public dataset's fields."""
        return problem.to_dict()

    def from_record(self, record: dict, *, source: str = "<record>", line: int | None = None) -> Problem:
        """Parse a record (ours or the task's public format); raise InputError naming the field."""
        from tailor_evo.errors import InputError

        for key in ("id", "task", "difficulty", "question", "answer", "answer_text"):
            if key not in record:
                raise InputError("missing field", file=source, line=line, field=key)
        for key, kinds, what in (("id", str, "a string"), ("task", str, "a string"), ("question", str, "a string"),
                                 ("answer_text", str, "a string"), ("meta", dict, "an object")):
            if key in record and not isinstance(record[key], kinds):
                raise InputError(f"must be {what}, got {type(record[key]).__name__}", file=source, line=line,
                                 field=key)
        if isinstance(record["difficulty"], bool) or not isinstance(record["difficulty"], int):
            raise InputError(f"must be an integer, got {record['difficulty']!r}", file=source, line=line,
                             field="difficulty")
        if record["task"] != self.name:
            raise InputError(f"record is for task {record['task']!r}, not {self.name!r}",
                             file=source, line=line, field="task")
        return Problem.from_dict(record)

    # --- offline engine (moves and executor) --------------------------------------
    def grammar(self) -> Grammar:
        raise NotImplementedError(f"task {self.name!r} has no move grammar")

    def execute(self, program: dict, problem: Problem, rng: random.Random, max_steps: int = 400) -> Trajectory:
        """Run a program on a problem. Must return an unfinished trajectory, never raise."""
        raise NotImplementedError(f"task {self.name!r} has no executor")

    def behaviour_kinds(self) -> tuple[str, ...]:
        """Step kinds that behaviour descriptors count (case splits, backtracks, verifications...)."""
        return ()

    def chance_accuracy(self, level: int) -> float | None:
        """The accuracy of a blind guess at a level, the floor a reported accuracy is read against
        (None when the task does not define one)."""
        return None

    def reason_kind(self, reason: str) -> str:
        """A verdict's ``reason`` without its problem-specific detail, so that counts of failures
        aggregate (warm-start drop counts, an evaluation's reason tally): "incomplete strategy:
        undecided Lily" -> "incomplete strategy". The default keeps what precedes a colon; a
        task whose reasons name things without a colon overrides it."""
        return (reason or "unknown").split(":", 1)[0].strip() or "unknown"

    def problem_kind(self, problem: Problem) -> str | None:
        """A label that splits a level's problems by what they ask, where that changes how hard
        they are in a way the level does not (iGSM: a question about a stated quantity or about
        a total the problem never states). Evaluation reports its accuracy per label, so a
        failure concentrated on one kind is seen. None, the default, reports no split."""
        return None

    def guess_parts(self, level: int) -> "GuessParts | None":
        """How an answer at this level splits into independent parts that a blind guess gets
        right each with the same chance (KK: one role per person, 1/2); None when the answer is
        one whole (a number). With :meth:`parts_wrong` it tells an answer that guesses from one
        that reasons, where accuracy alone sits at chance."""
        return None

    def parts_wrong(self, reason: str) -> int | None:
        """How many parts of a well-formed answer a verdict's ``reason`` says are wrong (0 for a
        right answer); None when the answer was not well formed or has no parts."""
        return None

    def abstract_step(self, question: str, step: str) -> str:
        """A step's text with the problem's own surface details replaced by their roles.

        Coverage of reasoning states should count distinct reasoning moves, not the
        distinct names a puzzle happens to use: two datasets that make the same moves
        about different people would otherwise look "diverse" in proportion to their
        name variety. ``question`` is any text that contains the problem statement (the
        question or the full prompt). The default only normalises case and spaces.
        """
        return " ".join(step.lower().split())


def split_seed(seed: int, split: str) -> int:
    """A seed for one data split, derived so that splits never share a problem stream.

    Train, eval, search and warm-start problems are generated from different derived
    seeds; callers still check disjointness (by question text) because two streams
    could in principle produce the same small puzzle.
    """
    import hashlib

    digest = hashlib.sha256(f"{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def question_key(problem: Problem) -> str:
    """Identity of a problem for disjointness checks: its normalised question text."""
    return " ".join(problem.question.split())
