"""The candidate builders of the built-in warm-start methods.

A builder turns a :class:`MethodInputs` into a :class:`CandidateSet`: verified
trajectories on the shared training problems, with the counts the data card reports.
Two kinds cover the built-in methods: primitives rendered by the task's executor (a seed
library, a search archive) and a teacher's own answers. A new method that renders
primitives needs only a function that returns them (:func:`render_source`).

This module does not import the registry (:mod:`tailor_evo.warmstart.methods` imports
it), so the import graph stays acyclic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from tailor_evo.search.genome import Primitive
from tailor_evo.warmstart.records import Candidate, CandidateSet, MethodInputs
from tailor_evo.warmstart.sources import (
    _dedupe,
    _seed_or_none,
    archive_primitives,
    reference_candidates,
    render_primitives,
    teacher_candidates,
)

log = logging.getLogger(__name__)

CandidateBuilder = Callable[[MethodInputs], CandidateSet]
# a method's primitives for a build; None: the task has no executor, so its reference solution is used
PrimitiveSource = Callable[[MethodInputs], "list[Primitive] | None"]


def render_source(source: PrimitiveSource) -> CandidateBuilder:
    """A builder that renders the primitives ``source`` gives (or the build's own ``primitives``
    when given) on the shared problems, each at most ``ceil(oversample * size / #primitives)``
    times so that a large archive costs no more than a small one."""

    def build(inputs: MethodInputs) -> CandidateSet:
        prims = list(inputs.primitives) if inputs.primitives is not None else source(inputs)
        return _rendered(inputs, prims)

    return build


def _rendered(inputs: MethodInputs, prims: list[Primitive] | None) -> CandidateSet:
    problems, cfg = inputs.problems, inputs.cfg
    if prims is None:       # no executor/seed library for this task: canonical solution text
        return CandidateSet(reference_candidates(inputs.task, problems, inputs.dropped), 1, len(problems))
    skipped: dict[str, int] = {}
    unique = _dedupe(prims)     # first occurrence (best quality) wins
    if len(unique) < len(prims):
        skipped["duplicate primitive id"] = len(prims) - len(unique)
        log.warning("%d primitive(s) with a duplicate id skipped", len(prims) - len(unique))
    per_prim = min(len(problems), math.ceil(cfg.oversample * cfg.size / max(1, len(unique))))
    candidates = render_primitives(inputs.task, unique, problems, seed=inputs.seed, per_primitive=per_prim,
                                   dropped=inputs.dropped, progress=inputs.progress)
    return CandidateSet(candidates, len(unique), per_prim * len(unique), names={p.id: p.name for p in unique},
                        skipped=skipped)


def seed_library(library: str) -> CandidateBuilder:
    """A seed library of the task (``populations/``) rendered by the executor."""
    return render_source(lambda inputs: _seed_or_none(inputs.task, library))


def _archive_elites(inputs: MethodInputs) -> list[Primitive]:
    """The best ``max_primitives`` primitives of the search archive in ``archive_dir``."""
    return archive_primitives(inputs.task, inputs.archive_dir, inputs.cfg.max_primitives)


# the elites of a search archive rendered by the executor (the registry says the method needs an archive)
archive_elites: CandidateBuilder = render_source(_archive_elites)


def teacher_answers(inputs: MethodInputs) -> CandidateSet:
    """Re-distillation: a teacher engine (the registry says the method needs one) answers the
    plain prompt, no primitive; only verified answers are kept."""
    candidates, rounds = teacher_rounds(inputs)
    return CandidateSet(candidates, 1, len(inputs.problems) * inputs.cfg.teacher_samples * rounds,
                        names={inputs.teacher_name: "teacher answers without primitives"})


def teacher_rounds(inputs: MethodInputs) -> tuple[list[Candidate], int]:
    """The teacher's verified answers, in rounds of ``cfg.teacher_samples`` per problem until
    ``cfg.size`` distinct answers verify or ``cfg.teacher_rounds`` are spent. Round 0 samples with
    ``seed`` itself, so one round is exactly the single pass; an answer already kept in an earlier
    round is counted as a duplicate. Returns the candidates and the rounds run."""
    cfg, seed = inputs.cfg, inputs.seed
    out: list[Candidate] = []
    kept: set[tuple[str, str]] = set()
    rounds = 0
    while rounds < cfg.teacher_rounds and len(out) < cfg.size:
        round_seed = seed if rounds == 0 else seed + 7919 * rounds
        out += teacher_candidates(inputs.task, inputs.teacher, inputs.problems, samples=cfg.teacher_samples,
                                  seed=round_seed, temperature=cfg.teacher_temperature,
                                  max_new_tokens=cfg.teacher_max_new_tokens, chat=inputs.chat, batch_size=16,
                                  dropped=inputs.dropped, teacher_name=inputs.teacher_name,
                                  progress=inputs.progress, kept=kept)
        rounds += 1
        log.info("teacher round %d: %d verified answers so far (budget %d)", rounds, len(out), cfg.size)
    return out, rounds
