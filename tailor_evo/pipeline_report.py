"""The short report of one pipeline run: a summary table, curves and accuracy bars."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tailor_evo.experiment.summary import smooth  # noqa: E402
from tailor_evo.io import save_figure, write_text_atomic  # noqa: E402
from tailor_evo.machine import MachineSpeed  # noqa: E402
from tailor_evo.pipeline import PipelineConfig, PipelineResult  # noqa: E402


@dataclass
class RunReport:
    path: Path
    table: str


@dataclass
class PairedChange:
    """How RL changed the answers to the held-out problems that both evaluations scored."""

    problems: int        # scored both after SFT and after RL
    gained: int          # wrong after SFT, right after RL
    lost: int            # right after SFT, wrong after RL
    p_value: float       # two-sided exact sign test on the changed answers

    def summary(self) -> str:
        return (f"of {self.problems} problems, {self.gained} turned right and {self.lost} turned wrong "
                f"(exact sign test, two-sided p = {self.p_value:.2g})")


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact binomial test that a changed answer is as likely to turn right as wrong.

    The two evaluations score the same problems, so only the changed answers carry evidence
    (McNemar's exact test); an unpaired comparison of two accuracies would ignore that.
    """
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _outcomes(path: Path) -> list[tuple[str, bool]] | None:
    """An evaluation's greedy outcomes in its problem order; None where the file gives none.

    The report is written after hours of stages, so an unreadable file costs the test, not the run.
    """
    try:
        rows = json.loads(path.read_text()).get("outcomes") or []
        return [(str(r["problem_id"]), bool(r["correct"])) for r in rows] or None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def paired_change(before: Path, after: Path) -> PairedChange | None:
    """Pair two evaluations' greedy outcomes problem by problem; None where they cannot be paired.

    Both evaluations of a run draw the same problems in the same order, so outcomes pair by
    position (a problem drawn twice counts twice, as in the accuracy). Evaluations whose
    problem lists differ pair by id where every id is unique, and not at all otherwise.
    """
    first, second = _outcomes(before), _outcomes(after)
    if first is None or second is None:
        return None
    if [k for k, _ in first] == [k for k, _ in second]:
        pairs = [(a, b) for (_, a), (_, b) in zip(first, second)]
    else:
        ids = [dict(first), dict(second)]
        if len(ids[0]) != len(first) or len(ids[1]) != len(second):
            return None
        pairs = [(ids[0][k], ids[1][k]) for k in ids[0].keys() & ids[1].keys()]
    if not pairs:
        return None
    gained = sum(1 for a, b in pairs if b and not a)
    lost = sum(1 for a, b in pairs if a and not b)
    return PairedChange(len(pairs), gained, lost, sign_test(gained, lost))


def rl_verdict(delta: float, change: PairedChange | None, alpha: float = 0.05) -> str:
    """Whether RL changed held-out accuracy, and by more than chance on this many problems."""
    if change is None:
        return (f"RL changed held-out accuracy by {delta:+.3f}, not tested for chance (the evaluations give no "
                "outcomes to pair problem by problem)")
    if change.p_value < alpha:
        verdict = "RL improved" if change.gained > change.lost else "RL lowered"
        return f"{verdict} held-out accuracy over SFT alone: {change.summary()}"
    return f"RL did not change held-out accuracy beyond chance at this sample size: {change.summary()}"


def _rl_curves(result: PipelineResult, path: Path) -> Path:
    rl = result.stages["rl"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = range(1, len(rl["reward_curve"]) + 1)
    ax.plot(steps, rl["reward_curve"], alpha=0.3, color="C0")
    ax.plot(steps, smooth(rl["reward_curve"], 5), color="C0", label="reward (moving avg 5)")
    ax.plot(steps, smooth(rl["accuracy_curve"], 5), color="C1", label="accuracy (moving avg 5)")
    ax.set(title="RL rollouts", xlabel="RL step", ylabel="mean reward / accuracy of the rollouts")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def _acc_bars(result: PipelineResult, path: Path, difficulty_name: str) -> Path:
    stages = [("eval_base", "base"), ("eval_sft", "after SFT"), ("eval_rl", "after RL")]
    stages = [(result.stages[k]["per_level"], label) for k, label in stages if k in result.stages]
    levels = sorted(stages[0][0], key=int)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = range(len(levels))
    width = 0.8 / len(stages)
    for i, (per_level, label) in enumerate(stages):
        offset = (i - (len(stages) - 1) / 2) * width
        ax.bar([x + offset for x in xs], [per_level[lv] for lv in levels], width, label=label)
    ax.set_xticks(list(xs), [f"{difficulty_name}={lv}" for lv in levels])
    ax.set(title="Greedy accuracy on held-out problems", ylabel="accuracy", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def summary_table(cfg: PipelineConfig, result: PipelineResult) -> str:
    s = result.stages
    ws = s["warmstart"]
    rows = [("stage", "result", "seconds")]
    if "search" in s:
        ratios = s["search"].get("coverage_ratios") or {}
        ratio_txt = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) if isinstance(ratios, dict) else str(ratios)
        rows.append(("search", f"archive {s['search'].get('archive_size', '?')} primitives; coverage vs seeds: {ratio_txt}",
                     result.seconds.get("search", 0)))
    cov, abstract = ws.get("coverage"), ws.get("coverage_abstract")
    cov_txt = f"coverage {cov if cov is None else round(cov, 1)}"
    if abstract is not None:
        cov_txt += f" ({round(abstract, 1)} with names abstracted)"
    lengths = ws.get("completion_tokens") or {}
    length_txt = (f"; completions {lengths['median']} tokens median, {lengths['max']} longest; "
                  f"generation budget {ws.get('max_new_tokens')} new tokens ({cfg.budget})" if lengths else "")
    rows.append(("warm start", f"{ws['records']} records ({cfg.method}); {cov_txt}{length_txt}",
                 result.seconds.get("warmstart", 0)))
    if "eval_base" in s:
        rows.append(("eval of the base", s["eval_base"]["summary"], result.seconds.get("eval_base", 0)))
    rows.append(("SFT", s["sft"].get("skipped") or f"model {s['sft']['model']}", result.seconds.get("sft", 0)))
    rows.append(("eval after SFT", s["eval_sft"]["summary"], result.seconds.get("eval_sft", 0)))
    curve = s["rl"]["reward_curve"]
    buffer = s["rl"].get("overlong_buffer")
    overlong = (f"; overlong penalty over the last {buffer} of {s['rl']['max_new_tokens']} new tokens"
                if buffer else "")
    rows.append(("RL", f"{len(curve)} steps; {cfg.rl.reward} reward, {_reward_trend(curve)}{overlong}",
                 result.seconds.get("rl", 0)))
    rows.append(("eval after RL", s["eval_rl"]["summary"], result.seconds.get("eval_rl", 0)))
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c:.0f} |" for a, b, c in rows[1:]]
    return "\n".join(lines)


def write_run_report(cfg: PipelineConfig, result: PipelineResult) -> RunReport:
    from tailor_evo.tasks import get_task

    root = result.root
    plots = root / "plots"
    curves = _rl_curves(result, plots / "rl_reward.png")
    bars = _acc_bars(result, plots / "accuracy.png", get_task(cfg.task).difficulty_name)
    table = summary_table(cfg, result)
    delta = result.acc_rl - result.acc_sft
    verdict = rl_verdict(delta, paired_change(root / "eval_sft" / "results.json", root / "eval_rl" / "results.json"))
    base_txt = (f"Accuracy of the base backbone {result.acc_base:.3f} (what it knew before any warm start). "
                if result.acc_base is not None else "")
    evals = ", ".join(f"`{name}/`" for name in ("eval_base", "eval_sft", "eval_rl") if name in result.stages)
    text = f"""# tailor-evo run

Task `{cfg.task}`, backbone `{cfg.backbone}`, warm-start method `{cfg.method}`, seed {cfg.seed},
training levels {cfg.levels}, evaluation levels {cfg.eval.levels} ({cfg.eval.n_per_level} held-out problems each).

{table}

{base_txt}Accuracy after SFT {result.acc_sft:.3f}, after RL {result.acc_rl:.3f} ({delta:+.3f}): {verdict}.

![RL reward]({curves.relative_to(root)})

![accuracy]({bars.relative_to(root)})

Stage outputs: `search/` (archive, report), `warmstart/` (data.jsonl, card.md), `sft/`, `rl/` (metrics.jsonl,
checkpoints), {evals} (results.json, report.md).
Total time {sum(result.seconds.values()) / 60:.1f} min.{_machine_line(result.stages.get("machine"))}
"""
    path = root / "report.md"
    write_text_atomic(path, text)
    return RunReport(path=path, table=table)


def _machine_line(machine: dict | None) -> str:
    """The machine's speed at the start of the run (absent from runs made before it was probed)."""
    if not machine:
        return ""
    return (f" Machine at the start of the run: {MachineSpeed.from_dict(machine).summary()}"
            " (`tailor_evo/machine.py`; compare times across runs next to this figure).")


def _reward_trend(curve: list[float]) -> str:
    """The rollout reward over RL: every step's when there are at most ten (first and last
    five would overlap and repeat one mean), else the mean of the first and of the last five."""
    if len(curve) <= 10:
        return "rollout reward by step " + ", ".join(f"{r:.3f}" for r in curve)
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    return f"first 5 steps {first:.3f} -> last 5 steps {last:.3f}"
