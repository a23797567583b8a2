"""The generational loop of the primitive search, with checkpoints and exact resume.

One generation: make children from the population (a variation family from
:mod:`~tailor_evo.search.operators`: ``gp`` tree operators, the ``llm`` operator), render
and verify them on this generation's problem batch plus the shared probe problems (a
process-pool ``map``, replaceable through the DEAP toolbox), score novelty of parents and
children against the archive, keep survivors (NSGA-II or MAP-Elites), offer the children
to the archive, log metrics, write a checkpoint.

Exact resume: all randomness flows from one ``random.Random`` whose state is saved
in the checkpoint together with the population, the archive (with its probe states,
so the FAISS indexes are rebuilt identically) and the counters. Evaluation uses
seeds derived from the run seed, the candidate id and the problem id, so it does not
depend on which worker ran it. A resumed run therefore ends with the same archive as
an uninterrupted one.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import faiss
from deap import base
from tqdm.auto import tqdm

from tailor_evo.errors import InputError
from tailor_evo.io import atomic_open, write_jsonl_atomic
from tailor_evo.rundir import RunDir
from tailor_evo.search.archive import Archive, ArchiveConfig
from tailor_evo.search.config import EvolutionConfig, LLMConfig, NoveltyConfig, ProblemsConfig
from tailor_evo.search.coverage import Coverage
from tailor_evo.search.embed import make_embedder
from tailor_evo.search.genome import Primitive, program_id
from tailor_evo.search.gp import TreeOperators
from tailor_evo.search.llm_operator import load_prompt
from tailor_evo.search.operators import get_operator, operator_names
from tailor_evo.search.quality import QualityConfig
from tailor_evo.search.render import EvalJob, EvalResult, ExecutorRenderer, LLMRenderer
from tailor_evo.search.seeds import load_seed_library
from tailor_evo.search.selection import SELECTION_METHODS, MapElitesGrid, nsga2
from tailor_evo.search.variation import VariationContext, VariationCounts, VariationOperator
from tailor_evo.tasks import streams
from tailor_evo.tasks.base import Problem, Task, split_seed
from tailor_evo.tasks.registry import get_task

log = logging.getLogger(__name__)

CHECKPOINT = "search.pkl"
LINEAGE = "lineage.jsonl"          # every evaluated primitive (archived or not), for ``archive lineage``
RENDERERS = ("executor", "llm")


# --- configuration -----------------------------------------------------------------------
BACKENDS = ("processes", "ray")


@dataclass
class SearchConfig:
    # keys that --resume may change: parallelism and more generations, not what ran so far
    RESUME_SAFE: ClassVar[tuple[str, ...]] = ("workers", "backend", "ray_address", "evolution.generations",
                                              "report_to")
    task: str = ""                  # a registered task name (required)
    seed: int = 0                   # seeds the problems, the evolution and the evaluations
    operator: str = "gp"            # variation family: gp | llm | another registered one (search.operators)
    renderer: str = "executor"      # executor | llm
    workers: int = 1                 # evaluation processes (or Ray CPUs); results do not depend on it
    backend: str = "processes"       # where candidates are evaluated: processes (a local pool) | ray
    ray_address: str = ""            # backend ray: "" starts a local Ray; "auto" or ray://HOST:PORT joins a cluster
    samples: int = 2                # sample trajectories stored per primitive
    selection: str = "nsga2"        # nsga2 | map-elites
    rendering: str | None = None    # the executor's trace rendering (KK: explicit | quoted | classic); None = task default
    report_to: list[str] = field(default_factory=list)    # trackers: tensorboard, wandb (tailor_evo.trackers)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    novelty: NoveltyConfig = field(default_factory=NoveltyConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)

    def check(self) -> None:
        if not self.task:
            from tailor_evo.tasks.registry import task_names

            raise InputError(f"choose a task (known: {', '.join(task_names())})", field="task")
        for name, value, allowed in (("operator", self.operator, operator_names()),
                                     ("renderer", self.renderer, RENDERERS),
                                     ("selection", self.selection, SELECTION_METHODS)):
            if value not in allowed:
                raise InputError(f"must be one of {', '.join(allowed)}, got {value!r}", field=name)
        if self.workers < 1:
            raise InputError("must be at least 1", field="workers")
        if self.backend not in BACKENDS:
            raise InputError(f"must be one of {', '.join(BACKENDS)}, got {self.backend!r}", field="backend")
        if self.ray_address and self.backend != "ray":
            raise InputError("a Ray address is used only with backend: ray", field="ray_address")
        get_task(self.task).use_rendering(self.rendering)
        from tailor_evo.trackers import check_report_to

        check_report_to(self.report_to)
        if self.evolution.population < 1 or self.evolution.generations < 0:
            raise InputError("population must be >= 1 and generations >= 0", field="evolution")
        if self.llm.constrained not in ("auto", "on", "off"):
            raise InputError(f"must be auto, on or off, got {self.llm.constrained!r}", field="llm.constrained")
        if (get_operator(self.operator).needs_llm or self.renderer == "llm") and not self.llm.spec:
            raise InputError("the llm operator/renderer needs a backend (--llm BACKEND:MODEL)", field="llm.spec")


# --- state --------------------------------------------------------------------------------
@dataclass
class SearchState:
    """Everything a checkpoint holds."""

    generation: int = -1                                   # last finished generation
    rng_state: Any = None
    population: list[Primitive] = field(default_factory=list)
    archive: list[Primitive] = field(default_factory=list)  # admission order
    states: dict[str, list[list[str]]] = field(default_factory=dict)  # probe states of population + archive
    seen: list[str] = field(default_factory=list)           # every evaluated program id (no re-evaluation)
    op_ok: Counter = field(default_factory=Counter)
    op_rejected: Counter = field(default_factory=Counter)
    llm_invalid: Counter = field(default_factory=Counter)
    seed_errors: list[str] = field(default_factory=list)
    lineage: dict[str, dict] = field(default_factory=dict)  # every evaluated primitive: parents, operator, scores
    metrics: list[dict] = field(default_factory=list)       # the metric rows so far: rebuild a lost metrics.jsonl

    def add_counts(self, counts: VariationCounts) -> None:
        """Add what the variation family did in a generation to the run's totals."""
        self.op_ok.update(counts.ok)
        self.op_rejected.update(counts.rejected)
        self.llm_invalid.update(counts.invalid)


@dataclass
class SearchResult:
    run_dir: Path
    archive: list[Primitive]
    generations: int                 # last finished generation
    metrics: list[dict]
    archive_size: int = 0
    coverage: float = 0.0            # archive step-state coverage on the probe problems (last generation)
    coverage_ratios: dict[str, float] = field(default_factory=dict)   # "archive/<seed library>" on held-out problems


def save_checkpoint(run_dir: RunDir, state: SearchState) -> None:
    """Pickle the whole state atomically (a crash mid-write leaves the previous checkpoint intact)."""
    with atomic_open(run_dir.checkpoints / CHECKPOINT, "wb") as fh:
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)


class _Unpickler(pickle.Unpickler):
    """Reads checkpoints written before the search, trainers and populations packages
    moved inside ``tailor_evo``: their classes were pickled as ``search.genome.Primitive``
    and so on, and are looked up at their new home."""

    OLD = ("search", "trainers", "populations")

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in self.OLD:
            module = f"tailor_evo.{module}"
        return super().find_class(module, name)


def load_checkpoint(run_dir: RunDir) -> SearchState | None:
    path = run_dir.checkpoints / CHECKPOINT
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            state = _Unpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InputError(f"unreadable checkpoint ({type(exc).__name__}); start again with --overwrite",
                         file=str(path)) from None
    if not isinstance(state, SearchState):
        raise InputError("not a search checkpoint", file=str(path))
    return state


# --- the search ---------------------------------------------------------------------------
MapFn = Callable[[Callable, Iterable], Iterable]


class Search:
    """One search run; :func:`run_search` is the usual entry point."""

    def __init__(self, cfg: SearchConfig, run_dir: RunDir, *, map_fn: MapFn | None = None, engine: Any = None,
                 teacher: Any = None, progress: bool = True) -> None:
        cfg.check()
        # kNN queries here are small and frequent: OpenMP threads only add contention on a shared CPU
        self._omp_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        self.cfg, self.run_dir, self.progress = cfg, run_dir, progress
        self.task: Task = get_task(cfg.task).use_rendering(cfg.rendering)
        self.grammar = self.task.grammar()
        levels = cfg.problems.levels or None
        self.pool = streams.flat(self.task, cfg.seed, "search", cfg.problems.pool, levels)
        self.probe = streams.flat(self.task, cfg.seed, "search-probe", cfg.problems.probe, levels)
        if len(self.pool) < cfg.problems.per_eval:
            raise InputError(f"problem pool ({len(self.pool)}) smaller than the batch", field="problems.pool")
        self.embedder = make_embedder(cfg.novelty.embedder)
        self.cover = Coverage(self.embedder, bits=cfg.novelty.coverage_bits, seed=cfg.novelty.coverage_seed)
        self.ops = TreeOperators(self.grammar, max_depth=cfg.evolution.max_depth, max_nodes=cfg.evolution.max_nodes,
                                 subtree_depth=cfg.evolution.subtree_depth)
        self.renderer = ExecutorRenderer(self.task, cfg.problems.max_steps, cfg.samples, cfg.quality)
        self.engine = engine
        self.teacher = teacher
        self.ctx = VariationContext(self.task, self.grammar, self.ops, cfg.evolution, cfg.llm, self._llm_engine)
        self.variation: VariationOperator | None = None
        self.llm_renderer: LLMRenderer | None = None
        self._pool = None
        self.toolbox = base.Toolbox()
        self.toolbox.register("map", map_fn or map)
        self._own_pool = map_fn is None and cfg.backend == "processes" and cfg.workers > 1
        self._use_ray = map_fn is None and cfg.backend == "ray"
        self._ray_map: Any = None
        self.grid = MapElitesGrid()
        self.kinds = tuple(self.task.behaviour_kinds())

    # --- set-up ---------------------------------------------------------------------------
    def _llm_engine(self) -> Any:
        """The run's LLM engine (the one given, else ``llm.spec``'s), made once on first use."""
        if self.engine is None:
            self.engine = make_llm_engine(self.cfg.llm.spec, timeout=self.cfg.llm.timeout)
        return self.engine

    def _start(self) -> None:
        cfg = self.cfg
        if self._own_pool:
            self._pool = multiprocessing.get_context("fork").Pool(cfg.workers)
            self.toolbox.register("map", self._pool.imap, chunksize=4)
        elif self._use_ray and self._ray_map is None:
            from tailor_evo.search.ray_map import RayMap

            self._ray_map = RayMap(cfg.workers, cfg.ray_address)
            self.toolbox.register("map", self._ray_map)
        self.variation = get_operator(cfg.operator)(self.ctx)
        if cfg.renderer == "llm":
            self.llm_renderer = LLMRenderer(self.teacher or self._llm_engine(), self.task, load_prompt("render"),
                                            max_new_tokens=cfg.llm.render_max_new_tokens,
                                            n_samples=cfg.samples, max_steps=cfg.problems.max_steps,
                                            quality=cfg.quality, chat=cfg.llm.chat,
                                            chat_template=load_prompt("render_chat"))
        self.toolbox.register("evaluate", self.evaluate)
        self.toolbox.register("vary", self.variation.vary)
        self.toolbox.register("select", self.select)

    def close(self) -> None:
        faiss.omp_set_num_threads(self._omp_threads)
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._ray_map is not None:
            self._ray_map.close()
            self._ray_map = None

    # --- problems ---------------------------------------------------------------------------
    def batch(self, generation: int) -> list[Problem]:
        """This generation's training problems: a seeded sample of the pool, shared by all its candidates."""
        return random.Random(f"{self.cfg.seed}:batch:{generation}").sample(self.pool, self.cfg.problems.per_eval)

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, prims: list[Primitive], generation: int) -> list[list[list[str]]]:
        """Render and verify; fill scores in place; return each primitive's verified probe states."""
        problems = self.batch(generation) + self.probe
        mask = [False] * self.cfg.problems.per_eval + [True] * len(self.probe)
        jobs = [EvalJob(p.id, p.program, p.description, problems, mask, self.cfg.seed) for p in prims]
        if self.llm_renderer is not None:
            results = self.llm_renderer.render_batch(jobs, seed=split_seed(self.cfg.seed, f"render:{generation}"))
        else:
            results = list(tqdm(self.toolbox.map(self.renderer, jobs), total=len(jobs), leave=False,
                                desc=f"gen {generation} evaluate", disable=not self.progress))
        out = []
        for prim, res in zip(prims, results):
            self._apply(prim, res)
            out.append(res.probe_states)
        return out

    def _apply(self, prim: Primitive, res: EvalResult) -> None:
        prim.quality, prim.length = res.quality, res.mean_steps
        prim.n_problems, prim.n_correct = res.n_problems, res.n_correct
        prim.descriptors = {"length": res.mean_steps, **{k: res.kind_counts.get(k, 0.0) for k in self.kinds}}
        prim.samples = res.samples

    # --- selection ------------------------------------------------------------------------------
    def select(self, candidates: list[Primitive], novelty: list[float], k: int) -> list[int]:
        objectives = [(p.quality, n) for p, n in zip(candidates, novelty)]
        if self.cfg.selection == "map-elites":
            names = ("length",) + self.kinds
            return self.grid.select([p.descriptors for p in candidates], objectives, names, k)
        return nsga2(objectives, k)

    # --- the loop ---------------------------------------------------------------------------------
    def initial_population(self, rng: random.Random, state: SearchState) -> list[Primitive]:
        prims: list[Primitive] = []
        seen: set[str] = set()
        for lib in self.cfg.evolution.seed_libraries:
            try:
                seeds = load_seed_library(lib, self.task.name)
            except InputError as exc:
                state.seed_errors.append(str(exc))
                log.warning("seed library skipped: %s", exc)
                continue
            for s in seeds:
                reason = self.ops.check(s.program)
                if reason:
                    state.seed_errors.append(f"{lib}/{s.name}: {reason}")
                    continue
                p = Primitive.create(self.task.name, s.program, s.description or self.grammar.describe(s.program),
                                     name=s.name, operator=s.operator, generation=0)
                if p.id not in seen:
                    seen.add(p.id)
                    prims.append(p)
        for _ in range(self.cfg.evolution.init_random):
            program = self.ctx.random_program(rng, seen)
            if program is None:
                break
            seen.add(program_id(program))
            prims.append(self.ctx.child(program, "", [], "random", 0))
        if not prims:
            raise InputError("no valid seed primitive and no random program could be made", field="evolution")
        return prims

    def _generation(self, g: int, rng: random.Random, state: SearchState, archive: Archive) -> dict:
        t0 = time.perf_counter()
        ok0, rej0, inv0 = Counter(state.op_ok), Counter(state.op_rejected), Counter(state.llm_invalid)
        seen = set(state.seen)
        if g == 0:
            children = self.initial_population(rng, state)
            seen.update(p.id for p in children)
        else:
            children = self.toolbox.vary(state.population, self.cfg.evolution.offspring, rng, seen, g, archive.items)
        counts = self.variation.take_counts()
        state.add_counts(counts)
        child_states = self.toolbox.evaluate(children, g) if children else []
        for c, s in zip(children, child_states):
            state.states[c.id] = s
            state.lineage[c.id] = {"id": c.id, "parents": c.parents, "operator": c.operator, "generation": g,
                                   "quality": c.quality, "name": c.name, "description": c.description}
        # novelty of parents and children against the archive as it stands, then survivors
        candidates = state.population + children
        novelty = [archive.score(state.states.get(p.id, [])) for p in candidates]
        for p, n in zip(candidates, novelty):
            if p.id not in archive:
                p.novelty = n
        keep = self.toolbox.select(candidates, novelty, self.cfg.evolution.population)
        # children compete for the archive best first; novelty is re-measured as the archive grows
        order = sorted(range(len(children)), key=lambda i: (-children[i].quality, -novelty[len(state.population) + i], i))
        reasons: Counter = Counter()
        for i in order:
            reasons[archive.consider(children[i], state.states[children[i].id])] += 1
        state.population = [candidates[i] for i in keep]
        state.archive = list(archive.items)
        live = {p.id for p in state.population} | {p.id for p in state.archive}
        state.states = {k: v for k, v in state.states.items() if k in live}
        state.seen = sorted(seen)
        state.generation = g
        qualities = [c.quality for c in children] or [0.0]
        child_nov = novelty[len(candidates) - len(children):] or [0.0]
        return {
            "generation": g,
            "evaluated": len(children),
            "best_quality": max(qualities),
            "mean_quality": sum(qualities) / len(qualities),
            "mean_novelty": sum(child_nov) / len(child_nov),
            "max_novelty": max(child_nov),
            "archive_size": len(archive),
            "admitted": reasons.get("admitted", 0),
            "admission": dict(reasons),
            "coverage": archive.coverage(self.cover),
            "population": len(state.population),
            "operator_ok": dict(state.op_ok - ok0) if g else {"seed/random": len(children)},
            "operator_rejected": dict(state.op_rejected - rej0),
            "llm_invalid": dict(state.llm_invalid - inv0),
            "llm_valid": counts.valid,                                  # this generation's
            "llm_mode": self.variation.mode,
            "renderer_wrong": self.llm_renderer.wrong if self.llm_renderer else 0,
            "seed_errors": list(state.seed_errors) if g == 0 else [],   # seeds that could not be used, and why
            "seconds": round(time.perf_counter() - t0, 3),
        }

    def run(self, resume: bool = False) -> SearchResult:
        cfg, rd = self.cfg, self.run_dir
        state = load_checkpoint(rd) if resume else None
        if resume and state is None:
            raise InputError("nothing to resume from: no search checkpoint (none was written yet, or it was "
                             "deleted); start again with --overwrite", file=str(rd.checkpoints / CHECKPOINT))
        if state is None:
            state = SearchState()
            rng = random.Random(cfg.seed)
            if rd.metrics_path.exists():
                rd.metrics_path.unlink()
        else:
            rng = random.Random()
            rng.setstate(state.rng_state)
            done = state.generation
            # a checkpoint from before the rows were kept in it has no copy: what the log holds is kept
            state.metrics = rd.resume_metrics(lambda r: r.get("generation", -1) <= done,
                                              getattr(state, "metrics", None), rd.checkpoints / CHECKPOINT)
        archive = Archive(self.embedder, cfg.archive, k=cfg.novelty.k, step_weight=cfg.novelty.step_weight)
        for p in state.archive:
            archive.add(p, state.states[p.id])
        self._start()
        try:
            gens = range(state.generation + 1, cfg.evolution.generations + 1)
            bar = tqdm(gens, desc="search", disable=not self.progress)
            for g in bar:
                row = self._generation(g, rng, state, archive)
                state.rng_state = rng.getstate()
                archive.save(rd.path)
                write_jsonl_atomic(rd.path / LINEAGE, state.lineage.values())
                # the metrics row goes first: a crash before the checkpoint only repeats this generation,
                # and resume drops rows newer than the checkpoint, so no row is ever lost or duplicated
                rd.log(row)
                state.metrics.append(row)
                save_checkpoint(rd, state)
                bar.set_postfix(archive=row["archive_size"], q=f"{row['best_quality']:.2f}", cov=int(row["coverage"]))
        finally:
            self.close()
        archive.save(rd.path)
        return SearchResult(rd.path, list(archive.items), state.generation, rd.read_metrics(),
                            archive_size=len(archive), coverage=archive.coverage(self.cover))


def make_llm_engine(spec: str | None, timeout: float = 600.0):
    """An Engine for ``BACKEND:MODEL`` through ``tailor_evo.generation.make_engine``."""
    from tailor_evo.generation import make_engine
    if not spec:
        raise InputError("no LLM backend given (--llm BACKEND:MODEL)", field="llm.spec")
    return make_engine(spec, timeout=timeout) if spec.startswith("openai:") else make_engine(spec)


def run_search(cfg: SearchConfig, run_dir: str | Path | RunDir, *, resume: bool = False, map_fn: MapFn | None = None,
               engine: Any = None, teacher: Any = None, progress: bool = True, report: bool = True) -> SearchResult:
    """Run (or resume) a search into ``run_dir``; write archive, metrics, checkpoint, plots and report.

    ``map_fn`` replaces the evaluation map (default: a process pool of ``cfg.workers``,
    or the builtin ``map`` for one worker; Ray tasks with ``backend: ray``); ``engine``/``teacher`` replace the LLMs that
    ``cfg.llm.spec`` would build.
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir.create(run_dir, resume=resume, overwrite=not resume)
    if not resume:
        rd.save_config(cfg)
    search = Search(cfg, rd, map_fn=map_fn, engine=engine, teacher=teacher, progress=progress)
    rd.track(cfg.report_to, cfg, "search")
    try:
        result = search.run(resume=resume)
    finally:
        rd.close_trackers()
    if report:
        from tailor_evo.search.report import write_outputs

        result.coverage_ratios = dict(write_outputs(search, result).ratios)
    return result
