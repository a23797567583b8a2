"""The warm-start builder: problems -> candidates -> length budget -> selection -> records + stats."""

from __future__ import annotations

import copy

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tailor_evo.errors import InputError
from tailor_evo.generation.base import Engine
from tailor_evo.search.coverage import abstract_states, state_cells
from tailor_evo.search.genome import Primitive
from tailor_evo.tasks.base import Task
from tailor_evo.warmstart.card import _fill_stats
from tailor_evo.warmstart.config import WarmstartConfig
from tailor_evo.warmstart.methods import ARCHIVE_METHODS, METHODS, SEED_LIBRARIES
from tailor_evo.warmstart.records import Candidate, WarmstartResult, WarmstartStats
from tailor_evo.warmstart.selection import greedy_select
from tailor_evo.tasks.streams import training_problems
from tailor_evo.warmstart.sources import (_dedupe, _seed_or_none, archive_primitives, drop_eval_overlaps,
                                          reference_candidates, render_primitives, teacher_candidates)

log = logging.getLogger(__name__)


def _record(task: Task, method: str, c: Candidate) -> dict:
    p = c.problem
    rid = hashlib.sha256(f"{task.name}:{method}:{p.id}:{c.primitive_id}:{c.completion}".encode()).hexdigest()[:16]
    return {
        "id": rid, "task": task.name, "method": method, "primitive_id": c.primitive_id,
        "difficulty": p.difficulty, "prompt": task.prompt(p), "messages": task.prompt(p, chat=True),
        "completion": c.completion, "answer": p.answer_text, "correct": True,
        "problem_id": p.id, "question": p.question, "n_steps": len(c.states),
    }


def build_warmstart(task: Task, method: str, cfg: WarmstartConfig, seed: int, *,
                    levels: Sequence[int] | None = None, chat: bool = False,
                    archive_dir: str | Path | None = None, teacher: Engine | None = None,
                    teacher_name: str = "teacher", primitives: Sequence[Primitive] | None = None,
                    max_completion_tokens: int | None = None, count_tokens: Callable[[str], int] | None = None,
                    progress: bool = True) -> WarmstartResult:
    """Build ``cfg.size`` warm-start records for ``method`` on the training problems of ``seed``.

    The knobs are ``cfg``'s (see :class:`WarmstartConfig`); the keywords are the inputs
    of this one build. ``cfg.n_problems`` defaults to ``size + size // 4`` so that even a
    one-primitive method can fill the budget with room to choose. Each primitive is
    rendered on at most ``ceil(oversample * size / #primitives)`` problems to bound the
    cost for large archives. ``primitives`` replaces the method's own source (seed
    library or archive) when given; ``teacher`` is the redistill method's engine.

    ``max_completion_tokens`` (counted by ``count_tokens``, e.g. the backbone's tokenizer)
    drops verified trajectories longer than the model will be allowed to generate in RL
    and evaluation: imitating them would teach it to run out of tokens before the answer.
    The same filter applies to every method, and the drops are counted in the card.
    """
    cfg.check()
    task = copy.copy(task).use_rendering(cfg.rendering)
    size, n_problems, embedder = cfg.size, cfg.n_problems, cfg.embedder
    if method not in METHODS:
        raise InputError(f"unknown method {method!r} (known: {', '.join(METHODS)})", field="method")
    levels = list(levels) if levels else list(task.default_levels)
    problems = training_problems(task, seed, n_problems or size + size // 4, levels)
    overlaps = 0
    if cfg.check_eval:
        problems, overlaps = drop_eval_overlaps(task, problems, seed, levels)
        if overlaps:
            log.warning("%d training problem(s) also in the evaluation set were left out", overlaps)
    dropped: Counter = Counter()
    pool = _candidates(task, method, problems, cfg, seed, chat=chat, archive_dir=archive_dir, teacher=teacher,
                       teacher_name=teacher_name, primitives=primitives, dropped=dropped, progress=progress)
    candidates = pool.candidates
    n_verified = len(candidates)
    if max_completion_tokens is not None:
        candidates = _within_length(candidates, max_completion_tokens, count_tokens, dropped)
    stats = WarmstartStats(task=task.name, method=method, seed=seed, size=size, levels=levels,
                           n_problems=len(problems), n_primitives=pool.n_primitives, n_rendered=pool.n_rendered,
                           n_verified=n_verified, dropped=dict(dropped), eval_overlaps=overlaps)
    stats.verified_per_primitive = dict(Counter(c.primitive_id for c in candidates))
    stats.primitive_names = pool.names
    stats.skipped_primitives = pool.skipped
    cells = state_cells(_selection_states(task, candidates, cfg.select_on), codebook=cfg.codebook,
                        embedder=embedder, seed=seed)
    chosen = greedy_select(cells, [(c.primitive_id, c.problem.difficulty) for c in candidates], size, seed=seed,
                           keys=[frozenset(c.keys) for c in candidates])
    selected = [candidates[i] for i in chosen]
    _fill_stats(task, stats, candidates, selected, seed, embedder)
    if stats.shortfall:
        log.warning("%s: only %d of %d requested records (not enough verified trajectories)",
                    method, stats.n_selected, size)
    records = [_record(task, method, c) for c in selected]
    return WarmstartResult(records=records, stats=stats, candidates=candidates, selected=chosen)


@dataclass
class _Pool:
    """A method's verified candidates and what it took to make them (for the card)."""

    candidates: list[Candidate]
    n_primitives: int
    n_rendered: int                  # trajectories rendered (or answers sampled) to get them
    names: dict[str, str] = field(default_factory=dict)      # primitive id -> name
    skipped: dict[str, int] = field(default_factory=dict)    # primitives left out, by reason


def _candidates(task: Task, method: str, problems: list, cfg: WarmstartConfig, seed: int, *, chat: bool,
                archive_dir: str | Path | None, teacher: Engine | None, teacher_name: str,
                primitives: Sequence[Primitive] | None, dropped: Counter, progress: bool) -> _Pool:
    """The verified trajectories of ``method`` on ``problems``: the teacher's answers (redistill), or
    the renderings of its primitives (given, from the archive, or its seed library)."""
    if method == "redistill":
        if teacher is None:
            raise InputError("the redistill method needs a teacher engine", field="--teacher")
        candidates, rounds = _teacher_rounds(task, teacher, problems, cfg, seed, chat=chat, dropped=dropped,
                                             teacher_name=teacher_name, progress=progress)
        return _Pool(candidates, 1, len(problems) * cfg.teacher_samples * rounds,
                     names={teacher_name: "teacher answers without primitives"})
    if primitives is not None:
        prims = list(primitives)
    elif method in ARCHIVE_METHODS:
        if archive_dir is None:
            raise InputError("the tailor method needs a search run directory", field="--archive")
        prims = archive_primitives(task, archive_dir, cfg.max_primitives)
    else:
        prims = _seed_or_none(task, SEED_LIBRARIES[method])
    if prims is None:   # no executor/seed library for this task: canonical solution text
        return _Pool(reference_candidates(task, problems, dropped), 1, len(problems))
    return _rendered(task, prims, problems, cfg, seed, dropped, progress)


def _rendered(task: Task, prims: list[Primitive], problems: list, cfg: WarmstartConfig, seed: int,
              dropped: Counter, progress: bool) -> _Pool:
    """Each distinct primitive rendered on at most ``ceil(oversample * size / #primitives)`` problems."""
    skipped: dict[str, int] = {}
    unique = _dedupe(prims)     # first occurrence (best quality) wins
    if len(unique) < len(prims):
        skipped["duplicate primitive id"] = len(prims) - len(unique)
        log.warning("%d primitive(s) with a duplicate id skipped", len(prims) - len(unique))
    n_prims = len(unique)
    per_prim = min(len(problems), math.ceil(cfg.oversample * cfg.size / max(1, n_prims)))
    candidates = render_primitives(task, unique, problems, seed=seed, per_primitive=per_prim,
                                   dropped=dropped, progress=progress)
    return _Pool(candidates, n_prims, per_prim * n_prims, names={p.id: p.name for p in unique}, skipped=skipped)


def _within_length(candidates: list[Candidate], max_tokens: int, count_tokens: Callable[[str], int] | None,
                   dropped: Counter) -> list[Candidate]:
    """The candidates whose completion fits ``max_tokens`` tokens; the others are counted in ``dropped``."""
    if count_tokens is None:
        raise ValueError("max_completion_tokens needs count_tokens")
    fits = [c for c in candidates if count_tokens(c.completion) <= max_tokens]
    if len(fits) < len(candidates):
        dropped[f"longer than {max_tokens} tokens"] += len(candidates) - len(fits)
    return fits


def _selection_states(task: Task, candidates: list[Candidate], select_on: str) -> list[list[str]]:
    """What the coverage selection covers: each candidate's step states, or (``abstract``) the
    text steps of its completion with the problem's names replaced by roles, exactly the
    name-abstracted coverage the data card and the experiment report, so that two traces making
    the same move about different people count once."""
    if select_on == "abstract":
        return [abstract_states(task, c.problem.question, c.completion) for c in candidates]
    return [c.states for c in candidates]


def _teacher_rounds(task: Task, teacher: Engine, problems: list, cfg: WarmstartConfig, seed: int, *, chat: bool,
                    dropped: Counter, teacher_name: str, progress: bool) -> tuple[list[Candidate], int]:
    """The teacher's verified answers, in rounds of ``cfg.teacher_samples`` per problem until
    ``cfg.size`` distinct answers verify or ``cfg.teacher_rounds`` are spent. Round 0 samples with
    ``seed`` itself, so one round is exactly the single pass; an answer already kept in an earlier
    round is counted as a duplicate. Returns the candidates and the rounds run."""
    out: list[Candidate] = []
    kept: set[tuple[str, str]] = set()
    rounds = 0
    while rounds < cfg.teacher_rounds and len(out) < cfg.size:
        round_seed = seed if rounds == 0 else seed + 7919 * rounds
        out += teacher_candidates(task, teacher, problems, samples=cfg.teacher_samples, seed=round_seed,
                                  temperature=cfg.teacher_temperature, max_new_tokens=cfg.teacher_max_new_tokens,
                                  chat=chat, batch_size=16, dropped=dropped, teacher_name=teacher_name,
                                  progress=progress, kept=kept)
        rounds += 1
        log.info("teacher round %d: %d verified answers so far (budget %d)", rounds, len(out), cfg.size)
    return out, rounds
