"""Figures of the method comparison: curves with seed bands, final-accuracy bars, coverage vs gain."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tailor_evo.experiment.summary import CellSummary, MethodRow, smooth  # noqa: E402
from tailor_evo.io import save_figure  # noqa: E402
from tailor_evo.warmstart.methods import method_names  # noqa: E402


def _methods(cells: list[CellSummary]) -> list[str]:
    """The methods of ``cells`` in the order reports list them; unregistered ones (an old grid) last."""
    present = {c.method for c in cells}
    known = method_names()
    return [m for m in known if m in present] + sorted(present - set(known))


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def training_curves(cells: list[CellSummary], path: Path, title: str, window: int = 5) -> Path:
    """RL reward and rollout accuracy per step, and held-out accuracy at the periodic evaluations:
    mean over seeds with a min-max band, one colour per method."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for method in _methods(cells):
        cs = [c for c in cells if c.method == method]
        evals = [c.eval_curve for c in cs if c.eval_curve]
        if evals:
            n = min(len(e) for e in evals)
            arr = np.array([[a for _, a in e[:n]] for e in evals])
            steps = [s for s, _ in evals[0][:n]]
            axes[2].plot(steps, arr.mean(0), marker="o", label=f"{method} (n={len(evals)})")
            axes[2].fill_between(steps, arr.min(0), arr.max(0), alpha=0.2)
        for ax, attr in zip(axes, ("reward_curve", "accuracy_curve")):
            curves = [smooth(getattr(c, attr), window) for c in cs if getattr(c, attr)]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            steps = np.arange(1, n + 1)
            ax.plot(steps, arr.mean(0), label=f"{method} (n={len(curves)})")
            ax.fill_between(steps, arr.min(0), arr.max(0), alpha=0.2)
    axes[0].set(title="RL training reward", xlabel="RL step", ylabel=f"reward (moving avg, {window} steps)")
    axes[1].set(title="RL rollout accuracy", xlabel="RL step", ylabel=f"accuracy (moving avg, {window} steps)")
    axes[2].set(title="held-out accuracy (periodic RL evaluations)", xlabel="RL step", ylabel="greedy accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def final_accuracy_bars(rows: list[MethodRow], path: Path, title: str) -> Path:
    """Accuracy after SFT and after RL per method, mean with std error bars over seeds."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    width = 0.38
    ax.bar(x - width / 2, [r.acc_sft[0] for r in rows], width, yerr=[r.acc_sft[1] for r in rows],
           capsize=3, label="after SFT")
    ax.bar(x + width / 2, [r.acc_final[0] for r in rows], width, yerr=[r.acc_final[1] for r in rows],
           capsize=3, label="after RL")
    ax.set_xticks(x, [f"{r.method}\n{r.backbone}" for r in rows], fontsize=8)
    ax.set(title=title, ylabel="greedy accuracy on held-out problems", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def coverage_vs_gain(cells: list[CellSummary], path: Path, title: str) -> Path:
    """One point per cell: warm-start coverage (x) against the accuracy RL added (y)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in _methods(cells):
        cs = [c for c in cells if c.method == method]
        ax.scatter([c.warmstart_coverage for c in cs], [c.rl_gain for c in cs], label=method, alpha=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title=title, xlabel="step-level coverage of the warm-start data (names abstracted)",
           ylabel="RL gain (final - after SFT)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
