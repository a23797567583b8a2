"""Per-cell summaries and their aggregation over seeds.

A *cell* is one (task, difficulty, backbone, method, seed) combination that ran
warm-start data -> SFT -> RL -> eval. The pipeline writes ``cell.json`` into the
cell directory; everything here reads only that file and the RL ``metrics.jsonl``,
so the aggregation does not depend on how the stages are implemented.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class CellSummary:
    task: str
    backbone: str
    method: str
    seed: int
    levels: list[int]
    acc_sft: float                      # greedy accuracy on the eval set after SFT
    acc_final: float                    # greedy accuracy on the eval set after RL
    acc_sft_per_level: dict[str, float]
    acc_final_per_level: dict[str, float]
    steps_to_target: int | None         # first RL step whose smoothed reward reaches the target; None = never
    reward_auc: float                   # mean RL training reward over all steps (normalised area under the curve)
    warmstart_coverage: float           # step-level coverage of the warm-start data (names abstracted)
    warmstart_size: int
    rl_steps: int
    reward_curve: list[float] = field(default_factory=list)
    accuracy_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0
    sft_skipped: bool = False           # no verified warm-start data: RL started from the plain backbone
    warmstart_coverage_text: float = 0.0  # the same on the raw state text (counts name variety too)
    format_err_sft: float = math.nan      # share of held-out answers that fail the response format
    format_err_final: float = math.nan
    # held-out greedy accuracy of the periodic RL evaluations: [[step, accuracy], ...] from step 0
    eval_curve: list[list[float]] = field(default_factory=list)
    steps_to_target_acc: int | None = None  # first evaluated RL step at the target accuracy; None = never
    accuracy_auc: float = math.nan          # area under the held-out accuracy curve over its step span
    warmstart_budget: int = 0               # records every method was asked for (warmstart.size)
    chance: float | None = None             # accuracy of a blind guess on the evaluation levels
    eval_n: int = 0                         # held-out problems in the final evaluation (0 = unknown)
    # per level, final well-formed answers by number of wrong parts (experiment.guessing); {} = not kept
    answer_misses: dict[str, list[int]] = field(default_factory=dict)

    @property
    def short_of_budget(self) -> bool:
        """Fewer verified warm-start records than the budget: such a cell does not judge a claim."""
        return self.warmstart_size < self.warmstart_budget

    @property
    def rl_gain(self) -> float:
        return self.acc_final - self.acc_sft

    def to_dict(self) -> dict:
        return asdict(self)


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average; the first points average what exists so far."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def steps_to_target(rewards: list[float], target: float, window: int = 5) -> int | None:
    """1-based step at which the smoothed reward first reaches ``target``."""
    for i, v in enumerate(smooth(rewards, window)):
        if v >= target:
            return i + 1
    return None


def eval_steps_to_target(curve: list[list[float]], target: float | None) -> int | None:
    """The first evaluated RL step whose held-out accuracy reaches ``target`` (step 0 is the SFT
    model; None when no evaluation reached it, or when no target is set)."""
    if target is None:
        return None
    for step, acc in curve:
        if acc >= target:
            return int(step)
    return None


def accuracy_auc(curve: list[list[float]]) -> float:
    """Trapezoid area under the held-out accuracy curve divided by its step span: the mean accuracy
    over the RL run, so runs of equal length compare directly (nan for fewer than two evaluations)."""
    if len(curve) < 2:
        return math.nan
    steps = np.array([c[0] for c in curve], dtype=float)
    accs = np.array([c[1] for c in curve], dtype=float)
    return float(np.trapezoid(accs, steps) / (steps[-1] - steps[0])) if steps[-1] > steps[0] else math.nan


def reward_auc(rewards: list[float]) -> float:
    """Area under the reward curve divided by its length (so runs of equal length compare directly)."""
    return float(np.mean(rewards)) if rewards else 0.0


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single seed)."""
    if not values:
        return math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


@dataclass
class MethodRow:
    task: str
    backbone: str
    method: str
    seeds: int
    acc_final: tuple[float, float]
    acc_sft: tuple[float, float]
    rl_gain: tuple[float, float]
    reward_auc: tuple[float, float]
    steps_to_target: tuple[float, float]
    reached_target: int                 # seeds that reached the target reward at all
    accuracy_auc: tuple[float, float]   # area under the held-out accuracy curve (mean accuracy over RL)
    steps_to_target_acc: tuple[float, float]
    reached_target_acc: int             # seeds whose held-out accuracy reached the target at all
    coverage: tuple[float, float]
    coverage_text: tuple[float, float]
    format_err_sft: tuple[float, float]
    format_err_final: tuple[float, float]
    per_level: dict[str, tuple[float, float]]
    records: tuple[float, float] = (math.nan, math.nan)   # verified warm-start records per seed
    budget: int = 0
    short_seeds: int = 0                # seeds whose warm start fell short of the budget


def aggregate(cells: list[CellSummary], rl_steps_cap: int | None = None) -> list[MethodRow]:
    """Group cells by (task, backbone, method) and take mean +- std over seeds.

    Seeds that never reached the target count as ``rl_steps`` (the most they could
    have taken) in the steps-to-target mean, and ``reached_target`` says how many did.
    """
    groups: dict[tuple[str, str, str], list[CellSummary]] = {}
    for c in cells:
        groups.setdefault((c.task, c.backbone, c.method), []).append(c)
    rows = []
    for (task, backbone, method), cs in sorted(groups.items()):
        levels = sorted({lv for c in cs for lv in c.acc_final_per_level}, key=lambda s: int(s))
        stt = [c.steps_to_target if c.steps_to_target is not None else (rl_steps_cap or c.rl_steps) for c in cs]
        stt_acc = [c.steps_to_target_acc if c.steps_to_target_acc is not None else (rl_steps_cap or c.rl_steps)
                   for c in cs if c.eval_curve]
        rows.append(MethodRow(
            task=task, backbone=backbone, method=method, seeds=len(cs),
            acc_final=mean_std([c.acc_final for c in cs]),
            acc_sft=mean_std([c.acc_sft for c in cs]),
            rl_gain=mean_std([c.rl_gain for c in cs]),
            reward_auc=mean_std([c.reward_auc for c in cs]),
            steps_to_target=mean_std([float(s) for s in stt]),
            reached_target=sum(c.steps_to_target is not None for c in cs),
            accuracy_auc=mean_std([c.accuracy_auc for c in cs if not math.isnan(c.accuracy_auc)]),
            steps_to_target_acc=mean_std([float(s) for s in stt_acc]),
            reached_target_acc=sum(c.steps_to_target_acc is not None for c in cs),
            coverage=mean_std([c.warmstart_coverage for c in cs]),
            coverage_text=mean_std([c.warmstart_coverage_text for c in cs]),
            format_err_sft=mean_std([c.format_err_sft for c in cs]),
            format_err_final=mean_std([c.format_err_final for c in cs]),
            per_level={lv: mean_std([c.acc_final_per_level.get(lv, math.nan) for c in cs]) for lv in levels},
            records=mean_std([float(c.warmstart_size) for c in cs]), budget=max(c.warmstart_budget for c in cs),
            short_seeds=sum(c.short_of_budget for c in cs),
        ))
    return rows


def fmt(ms: tuple[float, float], digits: int = 3) -> str:
    m, s = ms
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def results_table(rows: list[MethodRow]) -> str:
    """A Markdown table: one row per (task, backbone, method)."""
    levels = sorted({lv for r in rows for lv in r.per_level}, key=int)
    head = ["task", "backbone", "method", "seeds", "acc after SFT", "final acc", "RL gain",
            "held-out acc AUC", "steps to target acc (reached)", "warm-start records (short seeds)",
            "reward AUC", "steps to target reward (reached)", "warm-start coverage", "coverage (raw text)",
            "format errors after SFT", "final format errors"] + [f"final acc @{lv}" for lv in levels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.task, r.backbone, r.method, str(r.seeds), fmt(r.acc_sft), fmt(r.acc_final), fmt(r.rl_gain),
                 fmt(r.accuracy_auc), f"{fmt(r.steps_to_target_acc, 1)} ({r.reached_target_acc}/{r.seeds})",
                 f"{fmt(r.records, 0)} of {r.budget} ({r.short_seeds}/{r.seeds})",
                 fmt(r.reward_auc), f"{fmt(r.steps_to_target, 1)} ({r.reached_target}/{r.seeds})",
                 fmt(r.coverage, 1), fmt(r.coverage_text, 1), fmt(r.format_err_sft, 2),
                 fmt(r.format_err_final, 2)] + [fmt(r.per_level.get(lv, (math.nan, math.nan))) for lv in levels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
