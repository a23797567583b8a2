"""Small matplotlib helpers shared by evaluation, training and experiment reports.

Every figure is written as a PNG through an atomic rename, so a report never links
to a half-written image. The Agg backend is forced because these run headless on
servers and inside tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tailor_evo.io import save_figure  # noqa: E402


def _save(fig: "plt.Figure", path: str | os.PathLike) -> Path:
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_bars(values: Mapping[str, float], path: str | os.PathLike, *, title: str, ylabel: str,
              errors: Mapping[str, float] | None = None, ylim: tuple[float, float] | None = None,
              annotate: bool = True) -> Path:
    """One bar per label (with optional error bars), values written above the bars."""
    return plot_grouped_bars({"": dict(values)}, path, title=title, ylabel=ylabel,
                             errors=None if errors is None else {"": dict(errors)}, ylim=ylim,
                             annotate=annotate, xlabel="")


def plot_grouped_bars(groups: Mapping[str, Mapping[str, float]], path: str | os.PathLike, *, title: str,
                      ylabel: str, xlabel: str = "", errors: Mapping[str, Mapping[str, float]] | None = None,
                      ylim: tuple[float, float] | None = None, annotate: bool = True) -> Path:
    """Bars grouped along x (``groups``: x label -> {series label -> value}).

    Used for accuracy per difficulty level with one bar per method or per metric.
    A series missing from a group is simply not drawn there (no fake zero bar).
    """
    xs = list(groups)
    labels: list[str] = []
    for g in groups.values():
        labels.extend(k for k in g if k not in labels)
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.9 * len(xs) * max(1, len(labels)) * 0.6), 4.0))
    for j, label in enumerate(labels):
        pos, vals, errs = [], [], []
        for i, x in enumerate(xs):
            if label in groups[x]:
                pos.append(i + (j - (len(labels) - 1) / 2) * width)
                vals.append(groups[x][label])
                errs.append((errors or {}).get(x, {}).get(label, 0.0))
        bars = ax.bar(pos, vals, width=width, label=label or None,
                      yerr=errs if errors is not None else None, capsize=3)
        if annotate:
            for b, v in zip(bars, vals):
                if v is not None and not math.isnan(v):
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                                ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    if any(labels):
        ax.legend(fontsize="small")
    return _save(fig, path)
