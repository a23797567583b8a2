"""Where warm-start candidates come from: the training problems, then the primitives of a seed
library or a search archive rendered on them (or a teacher's own answers), each verified.

Every candidate that fails verification is dropped and counted by its reason, so the data
card can say what was lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from tailor_evo.errors import InputError
from tailor_evo.generation.base import Engine, SamplingParams
from tailor_evo.search.coverage import split_steps
from tailor_evo.search.genome import Primitive
from tailor_evo.tasks.base import Problem, Task, question_key
from tailor_evo.tasks.streams import eval_problems, flat
from tailor_evo.warmstart.records import Candidate

EVAL_RESERVE_PER_LEVEL = 100     # evaluation problems per level that training problems are checked against


def drop_eval_overlaps(task: Task, train: Sequence[Problem], seed: int,
                       levels: Sequence[int]) -> tuple[list[Problem], int]:
    """The training problems that are not among the evaluation problems of the same seed,
    and how many were removed (a task with a small problem space, such as 3-number
    Countdown, draws some of the same problems in both streams).

    Checked: the per-level set ``tailor-evo eval`` uses (requested levels plus the task's
    default levels, a generous count per level), and the flat ``eval`` stream
    (``streams.flat(task, seed, "eval", n, levels)``) that trainers draw
    held-out problems from, for the requested and for the default levels.
    """
    check_levels = sorted(set(levels) | set(task.default_levels))
    held_out = eval_problems(task, seed, check_levels, EVAL_RESERVE_PER_LEVEL)
    for lv in {tuple(levels), tuple(task.default_levels)}:
        if lv:
            held_out += flat(task, seed, "eval", EVAL_RESERVE_PER_LEVEL * len(lv), lv)
    seen = {question_key(p) for p in held_out}
    kept = [p for p in train if question_key(p) not in seen]
    return kept, len(train) - len(kept)


def seed_primitives(task: Task, library: str) -> list[Primitive]:
    """The primitives of a seed library (``rule-based`` or ``four-behaviour``) for ``task``.

    In warm-start data a seed primitive is identified by its library name (``case-split``)
    rather than by its program hash: records and their rendering seeds stay as they were.
    """
    from tailor_evo.populations.library import load_library

    return [dataclasses.replace(p, id=p.name) for p in load_library(library, task.name).primitives]


def archive_primitives(task: Task, archive_dir: str | Path, max_primitives: int | None = None) -> list[Primitive]:
    """The elite primitives of a search run directory (or its ``archive.jsonl``), best quality first.

    Among equal quality the primitive with fewer steps per verified trace comes first: a
    shorter trace of the same verified quality costs less to learn and to generate, and with a
    small ``max_primitives`` this decides which elites a small model is trained on (measured in
    docs/results/main-job, "A warm start a 2 M model can learn in the budget").
    """
    from tailor_evo.search.archive import load_archive

    archive_dir = Path(archive_dir)
    if not archive_dir.exists():
        raise InputError("search run directory not found", file=str(archive_dir), field="--archive")
    prims = load_archive(archive_dir)
    for p in prims:
        if p.task != task.name:
            raise InputError(f"archive is for task {p.task!r}, not {task.name!r}", file=str(archive_dir), field="task")
    if not prims:
        raise InputError("archive holds no primitives", file=str(archive_dir))
    prims = sorted(prims, key=lambda p: (-p.quality, p.length))   # stable: admission order among equals
    return prims[:max_primitives] if max_primitives else prims


def _rng_for(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _assign_problems(problems: list[Problem], n_prims: int, per_prim: int, seed: int) -> list[list[Problem]]:
    """Give each primitive ``per_prim`` problems, rotating through a level-interleaved order so every
    primitive sees every level and the problems are spread across primitives."""
    by_level: dict[int, list[Problem]] = defaultdict(list)
    for p in problems:
        by_level[p.difficulty].append(p)
    interleaved: list[Problem] = []
    queues = [list(v) for _, v in sorted(by_level.items())]
    while any(queues):
        for q in queues:
            if q:
                interleaved.append(q.pop(0))
    if per_prim >= len(interleaved):
        return [list(interleaved) for _ in range(n_prims)]
    out = []
    for j in range(n_prims):
        start = (j * len(interleaved)) // max(1, n_prims)
        out.append([interleaved[(start + t) % len(interleaved)] for t in range(per_prim)])
    return out


def render_primitives(task: Task, primitives: list[Primitive], problems: list[Problem], *, seed: int,
                      per_primitive: int, max_steps: int = 400,
                      dropped: Counter | None = None, progress: bool = True) -> list[Candidate]:
    """Run each primitive's program on its share of problems; verify; keep the correct trajectories.

    Programs without an executor (or without a program) fall back to the task's
    reference completion for the rule-based procedure only; anything else is an error.
    """
    dropped = dropped if dropped is not None else Counter()
    assignment = _assign_problems(problems, len(primitives), per_primitive, seed)
    total = sum(len(a) for a in assignment)
    out: list[Candidate] = []
    with tqdm(total=total, desc="render", unit="traj", disable=not progress, leave=False) as bar:
        for prim, share in zip(primitives, assignment):
            for problem in share:
                bar.update(1)
                traj = task.execute(prim.program, problem, _rng_for(seed, prim.id, problem.id), max_steps)
                if not traj.finished:
                    dropped[f"unfinished: {task.reason_kind(traj.reason)}"] += 1
                    continue
                verdict = task.verify(problem, traj.completion)
                if not verdict.correct:
                    dropped[f"verifier: {task.reason_kind(verdict.reason)}"] += 1
                    continue
                out.append(Candidate(problem, prim.id, traj.completion,
                                     [s.state for s in traj.steps], [s.key for s in traj.steps]))
    return out


def reference_candidates(task: Task, problems: list[Problem], dropped: Counter) -> list[Candidate]:
    """The task's canonical solution text, used as the rule-based method when the task has no executor."""
    out = []
    for p in problems:
        completion = task.reference_completion(p)
        verdict = task.verify(p, completion)
        if not verdict.correct:
            dropped[f"verifier: {task.reason_kind(verdict.reason)}"] += 1
            continue
        steps = split_steps(completion)
        out.append(Candidate(p, "rule-based", completion, steps, [" ".join(s.lower().split()) for s in steps]))
    return out


def teacher_candidates(task: Task, teacher: Engine, problems: list[Problem], *, samples: int, seed: int,
                       temperature: float, max_new_tokens: int, chat: bool, batch_size: int,
                       dropped: Counter, teacher_name: str = "teacher", progress: bool = True,
                       kept: set[tuple[str, str]] | None = None) -> list[Candidate]:
    """Re-distillation: the teacher answers the plain task prompt; only verified answers survive.
    An answer already in ``kept`` ((problem id, text) of earlier answers, e.g. of an earlier
    sampling round; updated here) is counted as a duplicate."""
    from tailor_evo.trainers.rollout import rollout

    kept = kept if kept is not None else set()
    out: list[Candidate] = []
    params = SamplingParams(n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    with tqdm(total=len(problems), desc="teacher", unit="problem", disable=not progress, leave=False) as bar:
        for start in range(0, len(problems), batch_size):
            chunk = problems[start:start + batch_size]
            for group in rollout(teacher, task, chunk, params, chat=chat):
                for r in group:
                    text = r.completion.text
                    if not r.verdict.correct:
                        dropped[f"verifier: {task.reason_kind(r.verdict.reason)}"] += 1
                        continue
                    if (r.problem.id, text.strip()) in kept:
                        dropped["duplicate teacher answer"] += 1
                        continue
                    kept.add((r.problem.id, text.strip()))
                    steps = split_steps(text)
                    out.append(Candidate(r.problem, teacher_name, text.strip(), steps,
                                         [" ".join(s.lower().split()) for s in steps]))
            bar.update(len(chunk))
    return out


def _dedupe(prims: list[Primitive]) -> list[Primitive]:
    seen: set[str] = set()
    out = []
    for p in prims:
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def _seed_or_none(task: Task, library: str) -> list[Primitive] | None:
    """Seed primitives, or None when the task has no executor (then the reference solution is used)."""
    try:
        task.grammar()
    except NotImplementedError:
        if library == "rule-based":
            return None
        raise InputError(f"task {task.name!r} has no move executor, so the {library} library cannot be rendered",
                         field="method") from None
    return seed_primitives(task, library)
