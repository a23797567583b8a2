"""Warm-start (SFT) data: verified reasoning trajectories chosen for coverage of reasoning states.

All methods are built on the *same* training problems with the *same* size
budget, so that a downstream difference is due to the method and nothing else:

* ``rule-based``     the task's rule-based seed primitive (its canonical solution procedure);
* ``four-behaviour`` the seed library of verification, backtracking, subgoal setting and
                     backward chaining primitives;
* ``redistill``      a teacher engine answers the plain prompt (no primitive) and only
                     verified answers are kept;
* ``tailor``         the elite primitives of a search archive;
* ``tailor-gp``      the same from an archive searched with the offline operators (GP
                     variation, executor rendering) whatever the search config says: the
                     ablation of the LLM operator and renderer when the config uses them.

Pipeline: training problems (``warmstart`` stream, checked disjoint from the
evaluation problems of the same seed) -> render candidates -> verify (every drop is
counted with its reason) -> greedy selection of ``size`` candidates that maximises
the number of reasoning-state cells covered, round-robin over (primitive, level)
strata so that no primitive or difficulty dominates -> records + data card.

Reasoning-state cells: every distinct step state is embedded (the search's embedders)
and assigned to a cell of a codebook. By default the codebook is the search's own
fixed SimHash coverage codebook, so the selection maximises exactly the coverage the
data card, the search report and the experiment report; ``codebook="kmeans"`` uses a
FAISS k-means codebook fitted on the states instead (coarser cells). Coverage of a
set is a set union, so the greedy gain is exact and submodular, which makes lazy
evaluation valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import logging
import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from tailor_evo.search.genome import Primitive
from tailor_evo.errors import InputError
from tailor_evo.generation.base import Engine, SamplingParams
from tailor_evo.tasks.base import Problem, Task, question_key, split_seed
from tailor_evo.search.coverage import abstract_coverage, coverage_score, split_steps, state_cells
from tailor_evo.trainers.evaluate import eval_problems

log = logging.getLogger(__name__)

# the warm-start methods, in the order reports list them (the one home of this list)
METHODS = ("tailor", "tailor-gp", "four-behaviour", "rule-based", "redistill")
BASELINES = ("rule-based", "four-behaviour", "redistill")   # what the tailor method is compared against
ARCHIVE_METHODS = ("tailor", "tailor-gp")                   # methods whose primitives come from a search
OFFLINE_SEARCH = {"operator": "gp", "renderer": "executor"}  # what tailor-gp's search runs
SEED_LIBRARIES = {"rule-based": "rule-based", "four-behaviour": "four-behaviour"}
EVAL_RESERVE_PER_LEVEL = 100     # evaluation problems per level that training problems are checked against


@dataclass
class Candidate:
    """One rendered trajectory of one primitive on one problem."""

    problem: Problem
    primitive_id: str
    completion: str
    states: list[str]
    keys: list[str]


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


# --------------------------------------------------------------------------------------------------
# problems


def training_problems(task: Task, seed: int, n: int, levels: Sequence[int] | None = None) -> list[Problem]:
    """``n`` problems from the ``warmstart`` stream of ``seed``, spread evenly over ``levels``."""
    levels = list(levels) if levels else list(task.default_levels)
    if not levels:
        raise InputError(f"task {task.name!r} has no default levels; pass --levels", field="levels")
    base = split_seed(seed, "warmstart")
    out: list[Problem] = []
    for i, level in enumerate(levels):
        count = n // len(levels) + (1 if i < n % len(levels) else 0)
        if count:
            out.extend(task.generate(count, split_seed(base, f"level-{level}"), [level]))
    return out


def drop_eval_overlaps(task: Task, train: Sequence[Problem], seed: int,
                       levels: Sequence[int]) -> tuple[list[Problem], int]:
    """The training problems that are not among the evaluation problems of the same seed,
    and how many were removed (a task with a small problem space, such as 3-number
    Countdown, draws some of the same problems in both streams).

    Checked: the per-level set ``tailor-evo eval`` uses (requested levels plus the task's
    default levels, a generous count per level), and the flat ``eval`` stream
    (``task.generate(n, split_seed(seed, "eval"), levels)``) that trainers draw
    held-out problems from, for the requested and for the default levels.
    """
    check_levels = sorted(set(levels) | set(task.default_levels))
    held_out = eval_problems(task, seed, check_levels, EVAL_RESERVE_PER_LEVEL)
    for lv in {tuple(levels), tuple(task.default_levels)}:
        if lv:
            held_out += task.generate(EVAL_RESERVE_PER_LEVEL * len(lv), split_seed(seed, "eval"), list(lv))
    seen = {question_key(p) for p in held_out}
    kept = [p for p in train if question_key(p) not in seen]
    return kept, len(train) - len(kept)


# --------------------------------------------------------------------------------------------------
# primitives


def seed_primitives(task: Task, library: str) -> list[Primitive]:
    """The primitives of a seed library (``rule-based`` or ``four-behaviour``) for ``task``.

    In warm-start data a seed primitive is identified by its library name (``case-split``)
    rather than by its program hash: records and their rendering seeds stay as they were.
    """
    from tailor_evo.populations.library import load_library

    return [dataclasses.replace(p, id=p.name) for p in load_library(library, task.name).primitives]


def archive_primitives(task: Task, archive_dir: str | Path, max_primitives: int | None = None) -> list[Primitive]:
    """The elite primitives of a search run directory (or its ``archive.jsonl``), best quality first."""
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
    prims = sorted(prims, key=lambda p: -p.quality)      # stable: admission order among equals
    return prims[:max_primitives] if max_primitives else prims


# --------------------------------------------------------------------------------------------------
# rendering


def _reason_kind(reason: str) -> str:
    """The kind of a failure reason without its problem-specific detail, so that counts aggregate
    ("incomplete strategy: undecided Lily" -> "incomplete strategy")."""
    return (reason or "unknown").split(":", 1)[0].strip() or "unknown"


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
                    dropped[f"unfinished: {_reason_kind(traj.reason)}"] += 1
                    continue
                verdict = task.verify(problem, traj.completion)
                if not verdict.correct:
                    dropped[f"verifier: {_reason_kind(verdict.reason)}"] += 1
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
            dropped[f"verifier: {_reason_kind(verdict.reason)}"] += 1
            continue
        steps = split_steps(completion)
        out.append(Candidate(p, "rule-based", completion, steps, [" ".join(s.lower().split()) for s in steps]))
    return out


def teacher_candidates(task: Task, teacher: Engine, problems: list[Problem], *, samples: int, seed: int,
                       temperature: float, max_new_tokens: int, chat: bool, batch_size: int,
                       dropped: Counter, teacher_name: str = "teacher", progress: bool = True) -> list[Candidate]:
    """Re-distillation: the teacher answers the plain task prompt; only verified answers survive."""
    from tailor_evo.trainers.rollout import rollout

    out: list[Candidate] = []
    params = SamplingParams(n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    with tqdm(total=len(problems), desc="teacher", unit="problem", disable=not progress, leave=False) as bar:
        for start in range(0, len(problems), batch_size):
            chunk = problems[start:start + batch_size]
            for group in rollout(teacher, task, chunk, params, chat=chat):
                seen: set[str] = set()
                for r in group:
                    text = r.completion.text
                    if not r.verdict.correct:
                        dropped[f"verifier: {_reason_kind(r.verdict.reason)}"] += 1
                        continue
                    if text in seen:
                        dropped["duplicate teacher answer"] += 1
                        continue
                    seen.add(text)
                    steps = split_steps(text)
                    out.append(Candidate(r.problem, teacher_name, text.strip(), steps,
                                         [" ".join(s.lower().split()) for s in steps]))
            bar.update(len(chunk))
    return out


# --------------------------------------------------------------------------------------------------
# coverage and selection


def greedy_select(cells: Sequence[frozenset[int]], strata: Sequence[Any], size: int, *, seed: int = 0,
                  keys: Sequence[frozenset[str]] | None = None) -> list[int]:
    """Pick ``size`` candidates maximising the union of covered cells, balanced over strata.

    Strata (e.g. (primitive, level)) take turns: the stratum with the fewest picks that
    still has candidates picks next (ties go to the stratum whose components, e.g. its
    primitive and its level, have the fewest picks so far, so both marginals stay
    balanced when the budget is not a multiple of the strata), choosing its candidate
    with the largest marginal
    gain (new cells, then new exact state keys, then a seeded random tie-break). Gains
    only shrink as the selection grows (set coverage is submodular), so a lazy
    priority queue per stratum gives the same result as recomputing every gain.
    """
    rng = random.Random(seed)
    keys = keys or [frozenset() for _ in cells]
    heaps: dict[Any, list] = defaultdict(list)
    for i, s in enumerate(strata):
        heaps[s].append((-len(cells[i]), -len(keys[i]), rng.random(), i))
    for h in heaps.values():
        heapq.heapify(h)
    count: Counter = Counter()
    parts: Counter = Counter()      # picks per stratum component (position, value)

    def components(s: Any) -> tuple:
        return tuple(enumerate(s)) if isinstance(s, tuple) else ((0, s),)

    covered: set[int] = set()
    covered_keys: set[str] = set()
    chosen: list[int] = []
    while len(chosen) < size:
        live = [s for s, h in heaps.items() if h]
        if not live:
            break
        stratum = min(live, key=lambda s: (count[s], sum(parts[c] for c in components(s)), heaps[s][0][:2],
                                           str(s)))
        h = heaps[stratum]
        while True:
            _, _, tie, i = heapq.heappop(h)
            gain = (-len(cells[i] - covered), -len(keys[i] - covered_keys), tie, i)
            if not h or gain[:2] <= h[0][:2]:
                break
            heapq.heappush(h, gain)
        chosen.append(i)
        count[stratum] += 1
        parts.update(components(stratum))
        covered |= cells[i]
        covered_keys |= keys[i]
    return chosen


# --------------------------------------------------------------------------------------------------
# records and the whole builder


def _record(task: Task, method: str, c: Candidate) -> dict:
    p = c.problem
    rid = hashlib.sha256(f"{task.name}:{method}:{p.id}:{c.primitive_id}:{c.completion}".encode()).hexdigest()[:16]
    return {
        "id": rid, "task": task.name, "method": method, "primitive_id": c.primitive_id,
        "difficulty": p.difficulty, "prompt": task.prompt(p), "messages": task.prompt(p, chat=True),
        "completion": c.completion, "answer": p.answer_text, "correct": True,
        "problem_id": p.id, "question": p.question, "n_steps": len(c.states),
    }


def build_warmstart(task: Task, method: str, size: int, seed: int, *, archive_dir: str | Path | None = None,
                    teacher: Engine | None = None, levels: Sequence[int] | None = None,
                    n_problems: int | None = None, oversample: float = 4.0, max_primitives: int | None = None,
                    teacher_samples: int = 2, teacher_temperature: float = 0.7, max_new_tokens: int = 512,
                    chat: bool = False, embedder: str = "hash", codebook: str = "simhash",
                    teacher_name: str = "teacher",
                    primitives: Sequence[Primitive] | None = None, check_eval: bool = True,
                    progress: bool = True, max_completion_tokens: int | None = None,
                    count_tokens: Callable[[str], int] | None = None) -> WarmstartResult:
    """Build ``size`` warm-start records for ``method`` on the training problems of ``seed``.

    ``n_problems`` defaults to ``size + size // 4`` so that even a one-primitive method
    can fill the budget with room to choose. Each primitive is rendered on at most
    ``ceil(oversample * size / #primitives)`` problems to bound the cost for large archives.
    ``primitives`` replaces the method's own source (seed library or archive) when given.

    ``max_completion_tokens`` (counted by ``count_tokens``, e.g. the backbone's tokenizer)
    drops verified trajectories longer than the model will be allowed to generate in RL
    and evaluation: imitating them would teach it to run out of tokens before the answer.
    The same filter applies to every method, and the drops are counted in the card.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r} (known: {', '.join(METHODS)})", field="method")
    if size <= 0:
        raise InputError("must be positive", field="size")
    levels = list(levels) if levels else list(task.default_levels)
    problems = training_problems(task, seed, n_problems or size + size // 4, levels)
    overlaps = 0
    if check_eval:
        problems, overlaps = drop_eval_overlaps(task, problems, seed, levels)
        if overlaps:
            log.warning("%d training problem(s) also in the evaluation set were left out", overlaps)
    dropped: Counter = Counter()

    names: dict[str, str] = {}
    skipped: dict[str, int] = {}
    if method == "redistill":
        if teacher is None:
            raise InputError("the redistill method needs a teacher engine", field="--teacher")
        n_prims = 1
        names = {teacher_name: "teacher answers without primitives"}
        candidates = teacher_candidates(task, teacher, problems, samples=teacher_samples, seed=seed,
                                        temperature=teacher_temperature, max_new_tokens=max_new_tokens, chat=chat,
                                        batch_size=16, dropped=dropped, teacher_name=teacher_name, progress=progress)
        n_rendered = len(problems) * teacher_samples
    else:
        if primitives is not None:
            prims = list(primitives)
        elif method in ARCHIVE_METHODS:
            if archive_dir is None:
                raise InputError("the tailor method needs a search run directory", field="--archive")
            prims = archive_primitives(task, archive_dir, max_primitives)
        else:
            prims = _seed_or_none(task, SEED_LIBRARIES[method])
        if prims is None:   # no executor/seed library for this task: canonical solution text
            n_prims = 1
            candidates = reference_candidates(task, problems, dropped)
            n_rendered = len(problems)
        else:
            unique = _dedupe(prims)     # first occurrence (best quality) wins
            if len(unique) < len(prims):
                skipped["duplicate primitive id"] = len(prims) - len(unique)
                log.warning("%d primitive(s) with a duplicate id skipped", len(prims) - len(unique))
            prims = unique
            n_prims = len(prims)
            names = {p.id: p.name for p in prims}
            per_prim = min(len(problems), math.ceil(oversample * size / max(1, n_prims)))
            candidates = render_primitives(task, prims, problems, seed=seed, per_primitive=per_prim,
                                           dropped=dropped, progress=progress)
            n_rendered = per_prim * n_prims

    n_verified = len(candidates)
    if max_completion_tokens is not None:
        if count_tokens is None:
            raise ValueError("max_completion_tokens needs count_tokens")
        fits = [c for c in candidates if count_tokens(c.completion) <= max_completion_tokens]
        if len(fits) < len(candidates):
            dropped[f"longer than {max_completion_tokens} tokens"] += len(candidates) - len(fits)
        candidates = fits
    stats = WarmstartStats(task=task.name, method=method, seed=seed, size=size, levels=levels,
                           n_problems=len(problems), n_primitives=n_prims, n_rendered=n_rendered,
                           n_verified=n_verified, dropped=dict(dropped), eval_overlaps=overlaps)
    stats.verified_per_primitive = dict(Counter(c.primitive_id for c in candidates))
    stats.primitive_names = names
    stats.skipped_primitives = skipped
    cells = state_cells([c.states for c in candidates], codebook=codebook, embedder=embedder, seed=seed)
    chosen = greedy_select(cells, [(c.primitive_id, c.problem.difficulty) for c in candidates], size, seed=seed,
                           keys=[frozenset(c.keys) for c in candidates])
    selected = [candidates[i] for i in chosen]
    _fill_stats(task, stats, candidates, selected, seed, embedder)
    if stats.shortfall:
        log.warning("%s: only %d of %d requested records (not enough verified trajectories)",
                    method, stats.n_selected, size)
    records = [_record(task, method, c) for c in selected]
    return WarmstartResult(records=records, stats=stats, candidates=candidates, selected=chosen)


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


def _fill_stats(task: Task, stats: WarmstartStats, candidates: list[Candidate], selected: list[Candidate], seed: int,
                embedder: str) -> None:
    stats.n_selected = len(selected)
    stats.shortfall = max(0, stats.size - len(selected))
    stats.per_primitive = dict(Counter(c.primitive_id for c in selected))
    stats.per_level = dict(sorted(Counter(c.problem.difficulty for c in selected).items()))
    if selected:
        chars = [len(c.completion) for c in selected]
        stats.mean_chars = statistics.fmean(chars)
        stats.median_chars = float(statistics.median(chars))
        stats.max_chars = max(chars)
        stats.mean_words = statistics.fmean(len(c.completion.split()) for c in selected)
        stats.mean_steps = statistics.fmean(len(c.states) for c in selected)
    stats.coverage_measure = f"distinct SimHash cells of step states (search.coverage, {embedder} embedder)"
    stats.coverage_selected = coverage_score([c.states for c in selected], embedder)
    random_subset = random.Random(seed).sample(candidates, len(selected)) if selected else []
    stats.coverage_random = coverage_score([c.states for c in random_subset], embedder)
    stats.coverage_all_verified = coverage_score([c.states for c in candidates], embedder)
    stats.coverage_abstract = abstract_coverage(task, [(c.problem.question, c.completion) for c in selected], embedder)
    stats.coverage_abstract_random = abstract_coverage(
        task, [(c.problem.question, c.completion) for c in random_subset], embedder)


# --------------------------------------------------------------------------------------------------
# data card


def render_card(results: Sequence[WarmstartResult], *, title: str = "Warm-start data card") -> str:
    """Markdown data card: one row per method with counts, lengths and coverage, then the details."""
    lines = [f"# {title}", ""]
    if results:
        s0 = results[0].stats
        lines += [f"- task: `{s0.task}`, seed {s0.seed}, levels {s0.levels}, size budget {s0.size}",
                  f"- training problems: {s0.n_problems} from the warm-start stream, checked disjoint from the "
                  f"evaluation problems of the same seed",
                  f"- coverage: {s0.coverage_measure}; 'random' is a random subset of the verified "
                  "trajectories of the same size, 'all verified' the whole pool the selection chose from",
                  "- abstract coverage: the same cells counted on the completions' text steps with the puzzle's "
                  "own names replaced by their roles, so that it counts distinct reasoning moves, not distinct "
                  "people, and applies alike to rendered and teacher-written data", ""]
    head = ["method", "primitives", "rendered", "verified", "dropped", "selected", "mean chars", "median chars",
            "mean steps", "coverage", "coverage (random)", "coverage (all verified)", "abstract coverage",
            "abstract coverage (random)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s = r.stats
        lines.append("| " + " | ".join([
            s.method, str(s.n_primitives), str(s.n_rendered), str(s.n_verified), str(sum(s.dropped.values())),
            f"{s.n_selected}/{s.size}", f"{s.mean_chars:.0f}", f"{s.median_chars:.0f}", f"{s.mean_steps:.1f}",
            f"{s.coverage_selected:.0f}", f"{s.coverage_random:.0f}", f"{s.coverage_all_verified:.0f}",
            f"{s.coverage_abstract:.0f}", f"{s.coverage_abstract_random:.0f}",
        ]) + " |")
    for r in results:
        s = r.stats
        lines += ["", f"## {s.method}", ""]
        if s.shortfall:
            lines.append(f"**Short by {s.shortfall} records**: not enough verified trajectories.\n")
        if s.eval_overlaps:
            lines.append(f"Training problems left out because the evaluation set has them: {s.eval_overlaps}")
        if s.skipped_primitives:
            lines.append("Skipped primitives: " + ", ".join(f"{k}: {v}" for k, v in s.skipped_primitives.items()))
            lines.append("")
        lines.append("Dropped trajectories by reason: " + (", ".join(
            f"{k}: {v}" for k, v in sorted(s.dropped.items(), key=lambda kv: -kv[1])) or "none"))
        lines.append("")
        lines.append("Selected per level: " + ", ".join(f"{k}: {v}" for k, v in s.per_level.items()))
        lines += ["", "| primitive | name | verified | selected |", "|---|---|---|---|"]
        for pid in s.primitive_names or s.verified_per_primitive:
            lines.append(f"| `{pid}` | {s.primitive_names.get(pid, '')} | {s.verified_per_primitive.get(pid, 0)} | "
                         f"{s.per_primitive.get(pid, 0)} |")
    return "\n".join(lines) + "\n"
