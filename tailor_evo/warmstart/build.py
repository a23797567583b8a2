"""The warm-start builder: problems -> candidates -> length budget -> selection -> records + stats."""

from __future__ import annotations

import copy
import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from tailor_evo.generation.base import Engine
from tailor_evo.search.coverage import abstract_states, state_cells
from tailor_evo.search.genome import Primitive
from tailor_evo.tasks.base import Task
from tailor_evo.tasks.streams import training_problems
from tailor_evo.warmstart.card import _fill_stats
from tailor_evo.warmstart.config import WarmstartConfig
from tailor_evo.warmstart.methods import get_method
from tailor_evo.warmstart.records import Candidate, MethodInputs, WarmstartResult, WarmstartStats
from tailor_evo.warmstart.selection import greedy_select
from tailor_evo.warmstart.sources import drop_eval_overlaps

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
    library or archive) when given; ``teacher`` is the engine of a method that needs one
    (redistill). The method's record (:mod:`tailor_evo.warmstart.methods`) builds the
    candidates; everything after that is the same for every method.

    ``max_completion_tokens`` (counted by ``count_tokens``, e.g. the backbone's tokenizer)
    drops verified trajectories longer than the model will be allowed to generate in RL
    and evaluation: imitating them would teach it to run out of tokens before the answer.
    The same filter applies to every method, and the drops are counted in the card.
    """
    cfg.check()
    task = copy.copy(task).use_rendering(cfg.rendering)
    size, n_problems, embedder = cfg.size, cfg.n_problems, cfg.embedder
    spec = get_method(method)
    spec.check_inputs(archive=archive_dir is not None or primitives is not None, teacher=teacher is not None)
    levels = list(levels) if levels else list(task.default_levels)
    problems = training_problems(task, seed, n_problems or size + size // 4, levels)
    overlaps = 0
    if cfg.check_eval:
        problems, overlaps = drop_eval_overlaps(task, problems, seed, levels)
        if overlaps:
            log.warning("%d training problem(s) also in the evaluation set were left out", overlaps)
    inputs = MethodInputs(task, method, problems, cfg, seed, chat=chat, archive_dir=archive_dir, teacher=teacher,
                          teacher_name=teacher_name, primitives=primitives, progress=progress)
    built = spec.build(inputs)
    candidates, dropped = built.candidates, inputs.dropped
    n_verified = len(candidates)
    if max_completion_tokens is not None:
        if count_tokens is None:
            raise ValueError("max_completion_tokens needs count_tokens")
        fits = [c for c in candidates if count_tokens(c.completion) <= max_completion_tokens]
        if len(fits) < len(candidates):
            dropped[f"longer than {max_completion_tokens} tokens"] += len(candidates) - len(fits)
        candidates = fits
    stats = WarmstartStats(task=task.name, method=method, seed=seed, size=size, levels=levels,
                           n_problems=len(problems), n_primitives=built.n_primitives, n_rendered=built.n_rendered,
                           n_verified=n_verified, dropped=dict(dropped), eval_overlaps=overlaps)
    stats.verified_per_primitive = dict(Counter(c.primitive_id for c in candidates))
    stats.primitive_names = built.names
    stats.skipped_primitives = built.skipped
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


def _selection_states(task: Task, candidates: list[Candidate], select_on: str) -> list[list[str]]:
    """What the coverage selection covers: each candidate's step states, or (``abstract``) the
    text steps of its completion with the problem's names replaced by roles, exactly the
    name-abstracted coverage the data card and the experiment report, so that two traces making
    the same move about different people count once."""
    if select_on == "abstract":
        return [abstract_states(task, c.problem.question, c.completion) for c in candidates]
    return [c.states for c in candidates]
