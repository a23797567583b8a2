"""Run an experiment grid and write its results table, figures and report.

Cells are independent directories under ``OUT/cells/``; a cell with a
``summary.json`` is complete and is skipped on the next invocation, an incomplete
one resumes from its stage markers and checkpoints. Results are re-aggregated
after every cell so a long grid can be inspected while it runs.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import binomtest, pearsonr, spearmanr

from tailor_evo.config import dump_yaml, load_config
from tailor_evo.errors import InputError
from tailor_evo.experiment import plots
from tailor_evo.experiment.grid import Cell, ExperimentConfig, cell_config, expand, teacher_budget, teacher_for
from tailor_evo.experiment.guessing import guessing_lines, miss_counts
from tailor_evo.experiment.summary import (
    CellSummary,
    MethodRow,
    accuracy_auc,
    aggregate,
    eval_steps_to_target,
    fmt,
    results_table,
    reward_auc,
    steps_to_target,
)
from tailor_evo.io import append_jsonl, read_json, read_records, write_json_atomic, write_text_atomic
from tailor_evo.pipeline import PipelineConfig, run_pipeline
from tailor_evo.rundir import RunDir
from tailor_evo.warmstart.methods import with_role

# Drawing the figures takes about 1.5 s. A real cell takes minutes, so every finished cell
# redraws them; cells that finish within seconds of each other (small grids, stand-in
# pipelines) share one drawing, and the grid's last write always draws.
REDRAW_EVERY_S = 30.0
FIGURE_KINDS = ("curves", "accuracy", "coverage-vs-gain")

log = logging.getLogger(__name__)


def summarise(cfg: ExperimentConfig, cell: Cell, cell_dir: Path) -> CellSummary | None:
    path = cell_dir / "summary.json"
    if not path.exists():
        return None
    data = read_json(path)
    st, secs = data["stages"], data.get("seconds", {})
    rewards = st["rl"]["reward_curve"]
    curve = eval_curve(st["rl"], cell_dir)
    return CellSummary(
        task=cell.task, backbone=cell.backbone, method=cell.method, seed=cell.seed, levels=cell.levels,
        acc_sft=st["eval_sft"]["accuracy"], acc_final=st["eval_rl"]["accuracy"],
        acc_sft_per_level=st["eval_sft"]["per_level"], acc_final_per_level=st["eval_rl"]["per_level"],
        steps_to_target=steps_to_target(rewards, cfg.target_reward), reward_auc=reward_auc(rewards),
        warmstart_coverage=warmstart_abstract_coverage(cell.task, st["warmstart"], cell_dir),
        warmstart_coverage_text=float(st["warmstart"].get("coverage") or 0.0), warmstart_size=st["warmstart"]["records"],
        rl_steps=len(rewards), reward_curve=rewards, accuracy_curve=st["rl"].get("accuracy_curve", []),
        seconds=float(sum(secs.values())), sft_skipped=bool(st.get("sft", {}).get("skipped")),
        format_err_sft=float(st["eval_sft"].get("format_error_rate", math.nan)),
        format_err_final=float(st["eval_rl"].get("format_error_rate", math.nan)),
        eval_curve=curve, steps_to_target_acc=eval_steps_to_target(curve, cfg.target_accuracy),
        accuracy_auc=accuracy_auc(curve),
        warmstart_budget=int(st["warmstart"].get("stats", {}).get("size", cfg.base.warmstart.size)),
        chance=chance_of(cell.task, st["eval_rl"]["per_level"]),
        eval_n=cell_config(cfg, cell).eval.n_per_level * len(st["eval_rl"]["per_level"]),
        answer_misses=miss_counts(cell.task, cell_dir / "eval_rl" / "results.json"),
    )


def chance_of(task: str, per_level: dict) -> float | None:
    """A blind guess's accuracy on the evaluated levels (equal problems per level), None if undefined."""
    from tailor_evo.tasks import get_task

    values = [get_task(task).chance_accuracy(int(lv)) for lv in per_level]
    return None if not values or None in values else sum(values) / len(values)


def eval_curve(stage: dict, cell_dir: Path) -> list[list[float]]:
    """[[step, held-out accuracy], ...] of the RL stage's periodic evaluations; read from the RL
    metrics when the cell was built before the stage recorded it (so old grids re-aggregate)."""
    if stage.get("eval_curve") is not None:
        return [[float(a), float(b)] for a, b in stage["eval_curve"]]
    rows = RunDir(cell_dir / "rl").read_metrics()
    return [[float(r["step"]), float(r["eval_accuracy"])] for r in rows if "eval_accuracy" in r]


def warmstart_abstract_coverage(task: str, stage: dict, cell_dir: Path) -> float:
    """The cell's warm-start coverage on name-abstracted steps; computed from its data file when
    the cell was built before the warm-start stage recorded it (so old grids re-aggregate)."""
    if stage.get("coverage_abstract") is not None:
        return float(stage["coverage_abstract"])
    from tailor_evo.search.coverage import abstract_coverage
    from tailor_evo.tasks import get_task

    path = cell_dir / "warmstart" / "data.jsonl"
    if not path.exists():
        return 0.0
    records = read_records(path, required=("question", "completion"), types={"question": str, "completion": str})
    return abstract_coverage(get_task(task), [(r["question"], r["completion"]) for r in records])


def cell_run_config(cfg: ExperimentConfig, cell: Cell, out: Path) -> PipelineConfig:
    """The config a cell runs with: :func:`cell_config`, and under the data budget a redistill
    teacher's new-token cap raised to the budget its teacher cell ran with (never lowered), as
    the pipeline raises RL's and the evaluations' caps to its own warm start's."""
    pc = cell_config(cfg, cell)
    budget = teacher_budget(cfg, cell, out) if pc.budget == "data" else 0
    if budget > pc.warmstart.teacher_max_new_tokens:
        log.info("cell %s: teacher budget %d -> %d new tokens (its teacher cell's data budget)",
                 cell.name, pc.warmstart.teacher_max_new_tokens, budget)
        pc.warmstart.teacher_max_new_tokens = budget
    return pc


@dataclass
class ExperimentOutcome:
    done: list[CellSummary]
    failed: list[str]
    pending: list[str]
    report: Path


def run_experiment(cfg: ExperimentConfig, out: str | Path, *, resume: bool = True,
                   progress_cb=None) -> ExperimentOutcome:
    cfg.check()
    out = Path(out)
    rd = RunDir.locked(out)        # one process per experiment directory
    if not rd.config_path.exists():
        rd.save_config(cfg)
    for change in config_changes(cfg, out):
        log.warning("configuration differs from the one %s was started with: %s", out, change)
    cells = expand(cfg)
    failed: list[str] = []
    last_drawn = time.monotonic()
    for i, cell in enumerate(cells, start=1):
        cell_dir = out / "cells" / cell.name
        if (cell_dir / "summary.json").exists():
            continue
        if progress_cb:
            progress_cb(i, len(cells), cell)
        start = time.time()
        try:
            teacher = teacher_for(cfg, cell, out)
            run_pipeline(cell_run_config(cfg, cell, out), cell_dir, resume=cell_dir.exists(),
                         search_dir=out / "search" / cell.search_name(), teacher_spec=teacher)
            rd.log({"cell": cell.name, "status": "done", "seconds": round(time.time() - start, 1)})
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken cell must not take the grid down; it is reported
            log.error("cell %s failed: %s", cell.name, exc)
            failed.append(cell.name)
            append_jsonl(out / "failures.jsonl", {"cell": cell.name, "error": repr(exc),
                                                  "traceback": traceback.format_exc()})
            rd.log({"cell": cell.name, "status": "failed", "error": repr(exc)})
        redraw = time.monotonic() - last_drawn >= REDRAW_EVERY_S
        write_outputs(cfg, out, cells, failed, draw=redraw)
        if redraw:
            last_drawn = time.monotonic()
    return write_outputs(cfg, out, cells, failed)


def report_only(cfg: ExperimentConfig, out: str | Path) -> ExperimentOutcome:
    """Re-aggregate the finished cells of ``out`` without running anything (e.g. while the grid
    is still running elsewhere, or after an upgrade changed the table). Cells that failed and
    have not finished since are listed from ``failures.jsonl``."""
    cfg.check()
    out = Path(out)
    if not (out / "cells").is_dir():
        raise InputError(f"{out} holds no experiment cells", field="out")
    cells = expand(cfg)
    failed: list[str] = []
    failures = out / "failures.jsonl"
    if failures.exists():
        names = {json.loads(line)["cell"] for line in failures.read_text().splitlines() if line.strip()}
        failed = [c.name for c in cells if c.name in names and not (out / "cells" / c.name / "summary.json").exists()]
    return write_outputs(cfg, out, cells, failed)


def write_outputs(cfg: ExperimentConfig, out: Path, cells: list[Cell], failed: list[str], *,
                  draw: bool = True) -> ExperimentOutcome:
    """Tables, report and (with ``draw``) figures of the finished cells. Without ``draw`` the
    report links the figures already drawn, which the next drawing brings up to date."""
    done = [s for c in cells if (s := summarise(cfg, c, out / "cells" / c.name)) is not None]
    pending = [c.name for c in cells if not (out / "cells" / c.name / "summary.json").exists() and c.name not in failed]
    rows = aggregate(done)
    write_json_atomic(out / "results.json", {
        "cells": [c.to_dict() for c in done], "failed": failed, "pending": pending,
        "rows": [r.__dict__ for r in rows]})
    table = results_table(rows) if rows else "(no finished cells yet)"
    write_text_atomic(out / "results.md", table + "\n")
    figures = draw_figures(out / "plots", done, rows) if draw else drawn_figures(out / "plots", done)
    report = out / "report.md"
    write_text_atomic(report, render_report(cfg, out, rows, done, failed, pending, figures))
    return ExperimentOutcome(done=done, failed=failed, pending=pending, report=report)


def draw_figures(pdir: Path, done: list[CellSummary], rows: list) -> list[Path]:
    """The grid's three figures per task (curves, accuracy bars, coverage vs gain)."""
    figures = []
    for task in sorted({c.task for c in done}):
        tcells = [c for c in done if c.task == task]
        trows = [r for r in rows if r.task == task]
        curves, accuracy, coverage = (figure_path(pdir, task, kind) for kind in FIGURE_KINDS)
        figures += [
            plots.training_curves(tcells, curves, f"{task}: RL curves (mean, min-max band over seeds)"),
            plots.final_accuracy_bars(trows, accuracy, f"{task}: held-out accuracy per method"),
            plots.coverage_vs_gain(tcells, coverage, f"{task}: warm-start coverage vs RL gain")]
    return figures


def drawn_figures(pdir: Path, done: list[CellSummary]) -> list[Path]:
    """The figures :func:`draw_figures` has already drawn for the tasks of ``done``, without drawing."""
    paths = [figure_path(pdir, task, kind) for task in sorted({c.task for c in done}) for kind in FIGURE_KINDS]
    return [p for p in paths if p.exists()]


def figure_path(pdir: Path, task: str, kind: str) -> Path:
    """Where a task's figure of one of the :data:`FIGURE_KINDS` lives."""
    return pdir / f"{task}-{kind}.png"


def _judge(ours: tuple[float, float], theirs: tuple[float, float], seeds: int, higher: str = "higher",
           who: str | None = None) -> str:
    """"``who`` (default: the proposed method) is higher" judged against the seed spread: supported
    when the mean difference exceeds the summed seed standard deviations, refuted when it falls short
    by as much, undecided between. One seed has no spread, so it only gives the direction."""
    diff, spread = ours[0] - theirs[0], ours[1] + theirs[1]
    if math.isnan(diff):
        return "not judged (no figures)"
    if seeds < 2:
        who = who or " or ".join(with_role("proposed"))
        return f"not judged (one seed, no spread; {who} {'is ' + higher if diff > 0 else 'is not ' + higher})"
    if diff > spread:
        return f"supported ({higher} by {diff:.3f}, more than the summed seed std {spread:.3f})"
    if diff < -spread:
        return f"refuted (not {higher}: behind by {-diff:.3f}, more than the summed seed std {spread:.3f})"
    return f"undecided (difference {diff:+.3f} within the summed seed std {spread:.3f})"


def _short(row: MethodRow) -> str | None:
    """Why a method's cells cannot judge a claim: they had less warm-start data than the others."""
    if not row.short_seeds:
        return None
    return (f"not judged: {row.method} had fewer verified warm-start records than the budget of {row.budget} in "
            f"{row.short_seeds}/{row.seeds} seed(s) ({fmt(row.records, 0)})")


def _versus(t: MethodRow, b: MethodRow) -> list[str]:
    """A proposed method's claims against one baseline, each judged against the seed spread."""
    short = _short(t) or _short(b)
    if short:
        return [f"- {t.method} vs {b.method}: {short}"]
    base, seeds = b.method, min(t.seeds, b.seeds)

    def judge(ours: tuple[float, float], theirs: tuple[float, float], higher: str = "higher") -> str:
        return _judge(ours, theirs, seeds, higher, who=t.method)

    lines = [f"- better final accuracy than {base}: {fmt(t.acc_final)} vs {fmt(b.acc_final)} -> "
             f"{judge(t.acc_final, b.acc_final)}"]
    if not math.isnan(t.accuracy_auc[0]) and not math.isnan(b.accuracy_auc[0]):
        lines.append(f"- faster convergence than {base} (area under the held-out accuracy curve "
                     f"{fmt(t.accuracy_auc)} vs {fmt(b.accuracy_auc)}; steps to the target accuracy "
                     f"{fmt(t.steps_to_target_acc, 1)} ({t.reached_target_acc}/{t.seeds} reached) vs "
                     f"{fmt(b.steps_to_target_acc, 1)} ({b.reached_target_acc}/{b.seeds})) -> "
                     f"{judge(t.accuracy_auc, b.accuracy_auc)}")
    lines.append(f"- higher training reward than {base} (area under the reward curve {fmt(t.reward_auc)} vs "
                 f"{fmt(b.reward_auc)}; steps to the target reward {fmt(t.steps_to_target, 1)} vs "
                 f"{fmt(b.steps_to_target, 1)}) -> {judge(t.reward_auc, b.reward_auc)}")
    lines.append(f"- more diverse warm-start data than {base} (coverage of reasoning steps, names "
                 f"abstracted: {fmt(t.coverage, 1)} vs {fmt(b.coverage, 1)}; on the raw state text "
                 f"{fmt(t.coverage_text, 1)} vs {fmt(b.coverage_text, 1)}) -> "
                 f"{judge(t.coverage, b.coverage, 'more diverse')}")
    return lines


def _claims(rows: list[MethodRow], done: list[CellSummary]) -> list[str]:
    """The claims of the proposed method(s) (the registry's role "proposed": tailor) judged against
    the seed spread, per task and backbone: better final accuracy and faster convergence than each
    baseline, and more diverse warm-start data."""
    lines = []
    for task, backbone in sorted({(r.task, r.backbone) for r in rows}):
        rs = {r.method: r for r in rows if r.task == task and r.backbone == backbone}
        proposed = [m for m in with_role("proposed") if m in rs]
        if not proposed:
            continue
        for name in proposed:
            t = rs[name]
            lines.append(f"**{task}, {backbone}** ({t.seeds} seed(s) for {name}):")
            for base in with_role("baseline"):
                if base in rs:
                    lines += _versus(t, rs[base])
        group = [c for c in done if c.task == task and c.backbone == backbone]
        full = [c for c in group if not c.short_of_budget]
        line = coverage_gain_relation(full)
        lines.append(line or f"- coverage vs RL gain: not computed ({len(full)} cell(s) with a full warm start; "
                             "it needs 4 with varying coverage and gain)")
        lines += _chance_lines(group)
        lines += guessing_lines(group)
        lines.append("")
    lines += _across_backbones(done)
    return lines or [f"No {' or '.join(with_role('proposed')) or 'proposed'} cells finished yet: no claim can be "
                     "judged."]


def _across_backbones(done: list[CellSummary]) -> list[str]:
    """The coverage-gain relation over every cell of a task that ran on several backbones: the
    mechanism should hold whatever model is warm-started. A seed's warm-start data is the same on
    every backbone, so its coverage appears once per backbone."""
    lines = []
    for task in sorted({c.task for c in done}):
        cells = [c for c in done if c.task == task and not c.short_of_budget]
        backbones = sorted({c.backbone for c in cells})
        if len(backbones) < 2:
            continue
        line = coverage_gain_relation(cells)
        if line:
            lines += [f"**{task}, all backbones** ({', '.join(backbones)}; a seed's warm-start data, and so its "
                      "coverage, is shared by the backbones):", line, ""]
    return lines


def _chance_lines(cells: list[CellSummary]) -> list[str]:
    """Whether every method and seed ends above a blind guess, which do not, and whether the pooled
    answers are distinguishable from guessing at all."""
    rated = [c for c in cells if c.chance is not None]
    if not rated:
        return []
    low = [c for c in rated if c.acc_final <= c.chance]
    if not low:
        lines = [f"- every cell ends above chance ({rated[0].chance:.3f}) after RL"]
    else:
        lines = [f"- **{len(low)}/{len(rated)} cell(s) end at or below chance ({rated[0].chance:.3f}) after RL**: "
                 + ", ".join(f"{c.method}/seed {c.seed} {c.acc_final:.3f}" for c in low)]
    pooled = pooled_chance_test(rated)
    if pooled:
        by_method = sorted({c.method for c in rated})
        parts = [f"{m} {pooled_chance_test([c for c in rated if c.method == m])}" for m in by_method]
        lines.append(f"- against a blind guess, all {len(rated)} cells pooled: {pooled}; per method: "
                     + "; ".join(parts))
    return lines


def pooled_chance_test(cells: list[CellSummary]) -> str | None:
    """One-sided binomial test of the cells' correct final answers, pooled, against the chance rate:
    one cell's 100 problems cannot tell 0.15 from 0.125, a grid's pooled answers can. None when the
    number of evaluated problems is not known."""
    cells = [c for c in cells if c.chance is not None and c.eval_n > 0]
    if not cells:
        return None
    n = sum(c.eval_n for c in cells)
    k = sum(round(c.acc_final * c.eval_n) for c in cells)
    chance = sum(c.chance * c.eval_n for c in cells) / n
    p = binomtest(k, n, chance, alternative="greater").pvalue
    verdict = "above chance" if p < 0.05 else "not distinguishable from chance"
    return f"{k}/{n} correct = {k / n:.3f} vs {chance:.3f}, p={p:.2g} -> {verdict}"


def coverage_gain_relation(cells: list[CellSummary]) -> str | None:
    """The paper's mechanism, more coverage gives more RL gain, as correlations over cells: Pearson r
    with its 95% confidence interval (Fisher z) and Spearman rho. None with fewer than 4 cells or no
    variation."""
    if len(cells) < 4 or len({c.warmstart_coverage for c in cells}) < 2 or len({c.rl_gain for c in cells}) < 2:
        return None
    x, y = [c.warmstart_coverage for c in cells], [c.rl_gain for c in cells]
    pearson = pearsonr(x, y)
    low, high = pearson.confidence_interval(0.95)
    rho, p = spearmanr(x, y)
    return (f"- coverage vs RL gain over {len(cells)} cells: Pearson r {pearson.statistic:.2f} "
            f"(95% CI {low:.2f} to {high:.2f}, p={pearson.pvalue:.2f}); Spearman rho {rho:.2f} (p={p:.2f})")


def _sft_length(cfg: ExperimentConfig) -> str:
    sft = cfg.base.sft
    return f"{sft.max_steps} steps" if sft.max_steps > 0 else f"{sft.epochs} epochs"


# the keys that pick which part of a grid runs (and its name): changing them between invocations is
# how a grid runs in parts, not a change of its settings
PART_KEYS = ("name", "tasks", "difficulties", "eval_levels", "backbones", "methods", "seeds")


def saved_config_differences(cfg: ExperimentConfig, out: Path) -> list[tuple[str, object, object]] | None:
    """``(dotted key, first value, current value)`` for every setting that differs from the
    configuration saved in ``out`` when the grid first ran; None when none is saved there.

    The saved file is read through the defaults, like any config file: a hand-kept one that
    names only what it changes (a results folder's copy of the shipped config) then differs
    only where a setting does, not wherever it is silent. One that no longer loads (a setting
    since removed) is compared as written."""
    saved = out / "config.yaml"
    if not saved.exists():
        return None
    import yaml

    try:
        first = yaml.safe_load(dump_yaml(load_config(ExperimentConfig, saved))) or {}
    except InputError:
        first = yaml.safe_load(saved.read_text()) or {}
    return _differences(first, yaml.safe_load(dump_yaml(cfg)) or {})


def config_changes(cfg: ExperimentConfig, out: Path) -> list[str]:
    """Settings changed since the grid first ran, as ``"key: old -> new"``, other than the keys that
    pick a part of the grid. Cells that finished before such a change ran with the old values (each
    cell's own ``config.yaml`` has them), so the report must say so rather than let the saved
    configuration speak for every cell."""
    return [f"{key}: {old!r} -> {new!r}" for key, old, new in saved_config_differences(cfg, out) or []
            if key.split(".")[0] not in PART_KEYS]


def _differences(a: object, b: object, prefix: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))]
    return [] if a == b else [(prefix, a, b)]


def _targets(cfg: ExperimentConfig, out: Path) -> str:
    """The convergence targets, and whether they are the ones the grid was started with (the
    configuration saved in ``out`` when the first cell ran)."""
    acc = ("not set (`target_accuracy`), so no steps-to-target on held-out accuracy" if cfg.target_accuracy is None
           else f"{cfg.target_accuracy}")
    text = (f"Target held-out accuracy for \"steps to target\": {acc}, on the periodic RL evaluations "
            f"(every {cfg.base.rl.eval.every} steps on {cfg.base.rl.eval.n} problems). "
            f"Target training reward: {cfg.target_reward}.")
    diffs = saved_config_differences(cfg, out)
    if diffs is not None:
        first = {key: old for key, old, _ in diffs}
        if not {"target_accuracy", "target_reward"} & first.keys():
            text += " Both were fixed in the configuration before the grid ran."
        else:
            text += (f" **These differ from the configuration the grid was started with** (target_accuracy "
                     f"{first.get('target_accuracy', cfg.target_accuracy)}, target_reward "
                     f"{first.get('target_reward', cfg.target_reward)}).")
    return text


def _changes_text(cfg: ExperimentConfig, out: Path) -> str:
    changes = config_changes(cfg, out)
    if not changes:
        return ""
    return ("\n\n**The configuration changed after the grid started** (`config.yaml` holds the first one): "
            + "; ".join(changes) + ". Cells that finished before the change ran with the old values; each "
            "cell's own `config.yaml` says which it had.")


def render_report(cfg: ExperimentConfig, out: Path, rows: list[MethodRow], done: list[CellSummary],
                  failed: list[str], pending: list[str], figures: list[Path]) -> str:
    figs = "\n\n".join(f"![{p.stem}]({p.relative_to(out)})" for p in figures)
    status = f"{len(done)} cell(s) finished, {len(failed)} failed, {len(pending)} pending."
    failed_txt = ("\nFailed cells (see failures.jsonl): " + ", ".join(failed) + "\n") if failed else ""
    skipped = [f"{c.task}/{c.backbone}/{c.method}/seed {c.seed}" for c in done if c.sft_skipped]
    if skipped:
        failed_txt += ("\nCells whose warm-start source produced no verified data (SFT skipped, RL from the "
                       "plain backbone): " + ", ".join(skipped) + "\n")
    return f"""# Experiment `{cfg.name}`

Tasks {cfg.tasks}, backbones {cfg.backbones}, methods {cfg.methods}, seeds {cfg.seeds}.
Every method gets the same training problems, warm-start budget ({cfg.base.warmstart.size} records),
SFT length ({_sft_length(cfg)}), RL steps ({cfg.base.rl.steps}, reward `{cfg.base.rl.reward}`) and
evaluation problems.
Redistill teacher: `{cfg.redistill_teacher}`. {_targets(cfg, out)}{_changes_text(cfg, out)}

{status}{failed_txt}

## Results (mean ± std over seeds)

{results_table(rows) if rows else '(no finished cells yet)'}

## What this run says about the paper's claims

{chr(10).join(_claims(rows, done))}

## Figures

{figs}
"""
