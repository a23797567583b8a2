"""The end-of-run outputs: coverage comparison against the seed libraries, plots, report.md.

The comparison renders every archived primitive and every primitive of the
``rule-based`` and ``four-behaviour`` seed libraries with the task executor on the
same held-out report problems, pools the states of the *verified* trajectories per
method, and measures each pool with the same coverage function
(:mod:`search.coverage` semantics, the run's embedder and codebook).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tailor_evo.errors import InputError
from tailor_evo.io import write_json_atomic, write_text_atomic
from tailor_evo.search.genome import Primitive
from tailor_evo.search.plots import plot_progress, plot_scatter
from tailor_evo.search.render import EvalJob, ExecutorRenderer
from tailor_evo.search.seeds import load_seed_library
from tailor_evo.tasks import streams

BASELINES = ("rule-based", "four-behaviour")


@dataclass
class CoverageReport:
    problems: int
    coverage: dict[str, float] = field(default_factory=dict)       # method -> cells
    primitives: dict[str, int] = field(default_factory=dict)       # method -> number of primitives
    accuracy: dict[str, float] = field(default_factory=dict)       # method -> mean held-out success
    ratios: dict[str, float] = field(default_factory=dict)         # "archive/<baseline>" -> ratio
    heldout: dict[str, float] = field(default_factory=dict)        # archive primitive id -> held-out success


def compare_coverage(search, archive: list[Primitive]) -> CoverageReport:
    """Coverage of the archive vs the seed libraries on the same held-out problems."""
    cfg, task = search.cfg, search.task
    problems = streams.flat(task, cfg.seed, "search-report", cfg.problems.report, cfg.problems.levels)
    renderer = ExecutorRenderer(task, cfg.problems.max_steps, 0, cfg.quality)
    mask = [True] * len(problems)
    rep = CoverageReport(problems=len(problems))
    methods: dict[str, list[tuple[str, dict]]] = {"archive": [(p.id, p.program) for p in archive]}
    for lib in BASELINES:
        try:
            methods[lib] = [(s.name, s.program) for s in load_seed_library(lib, task.name)]
        except InputError:
            continue
    for method, programs in methods.items():
        states: list[str] = []
        accs = []
        for pid, program in programs:
            res = renderer(EvalJob(pid, program, "", problems, mask, cfg.seed))
            states.extend(s for traj in res.probe_states for s in traj)
            acc = res.n_correct / max(1, res.n_problems)
            accs.append(acc)
            if method == "archive":
                rep.heldout[pid] = acc
        rep.coverage[method] = search.cover(states)
        rep.primitives[method] = len(programs)
        rep.accuracy[method] = sum(accs) / len(accs) if accs else 0.0
    for lib in BASELINES:
        if lib in rep.coverage and rep.coverage[lib] > 0:
            rep.ratios[f"archive/{lib}"] = rep.coverage["archive"] / rep.coverage[lib]
    return rep


def render_report(search, result, rep: CoverageReport) -> str:
    cfg = search.cfg
    archive = result.archive
    metrics = result.metrics
    floor, need = cfg.archive.quality_floor, cfg.archive.min_problems
    qualified = [p for p in archive if p.quality >= floor and p.n_problems >= need]
    total_s = sum(m.get("seconds", 0.0) for m in metrics)
    lines = [
        f"# Primitive search: task `{cfg.task}`",
        "",
        f"- operator `{cfg.operator}`, renderer `{cfg.renderer}`, selection `{cfg.selection}`, "
        f"embedder `{cfg.novelty.embedder}`, seed {cfg.seed}, workers {cfg.workers}",
        f"- generations {result.generations}, population {cfg.evolution.population}, "
        f"offspring {cfg.evolution.offspring}, candidates evaluated {sum(m['evaluated'] for m in metrics)}, "
        f"search time {total_s:.1f} s",
        f"- archive: **{len(archive)}** primitives; {len(qualified)} with quality >= {floor} "
        f"verified on >= {need} problems",
        "",
        f"## Step-level coverage on {rep.problems} held-out problems (same function, same problems)",
        "",
        "| method | primitives | coverage (cells) | mean held-out success |",
        "|---|---:|---:|---:|",
    ]
    for method, cov in rep.coverage.items():
        lines.append(f"| {method} | {rep.primitives[method]} | {cov:.0f} | {rep.accuracy[method]:.3f} |")
    lines.append("")
    for name, ratio in rep.ratios.items():
        lines.append(f"- coverage ratio {name}: **{ratio:.2f}x**")
    lines += ["", "## Top primitives by quality, then novelty", "",
              "| id | quality | novelty | length | held-out | operator | gen | description |",
              "|---|---:|---:|---:|---:|---|---:|---|"]
    for p in sorted(archive, key=lambda p: (-p.quality, -p.novelty))[:10]:
        desc = p.description.replace("|", "/")[:90]
        lines.append(f"| {p.id[:10]} | {p.quality:.3f} | {p.novelty:.3f} | {p.length:.1f} | "
                     f"{rep.heldout.get(p.id, float('nan')):.3f} | {p.operator} | {p.generation} | {desc} |")
    if metrics:
        last = metrics[-1]
        lines += ["", "## Last generation", "", "```", json.dumps(last, indent=1, sort_keys=True), "```"]
    invalid = {}
    for m in metrics:
        for k, v in m.get("llm_invalid", {}).items():
            invalid[k] = invalid.get(k, 0) + v
    seed_errors = [e for m in metrics for e in m.get("seed_errors", [])]
    if seed_errors:
        lines += ["", "## Seed primitives not used", ""] + [f"- {e}" for e in seed_errors]
    if invalid:
        lines += ["", "## Invalid LLM replies (dropped)", ""] + [f"- {k}: {v}" for k, v in sorted(invalid.items())]
    lines += ["", "Plots: `plots/progress.png`, `plots/archive_scatter.png`.", ""]
    return "\n".join(lines)


def write_outputs(search, result) -> CoverageReport:
    """Plots, coverage comparison (also as ``coverage.json``) and ``report.md`` in the run directory."""
    rd = search.run_dir
    rep = compare_coverage(search, result.archive)
    write_json_atomic(Path(rd.path) / "coverage.json", rep.__dict__)
    if result.metrics:
        plot_progress(result.metrics, rd.plots / "progress.png")
    plot_scatter(result.archive, rd.plots / "archive_scatter.png")
    write_text_atomic(rd.report_path, render_report(search, result, rep))
    return rep
