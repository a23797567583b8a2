"""PNG figures of a search run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tailor_evo.io import save_figure  # noqa: E402
from tailor_evo.search.genome import Primitive  # noqa: E402


def plot_progress(metrics: list[dict], path: Path) -> Path:
    """Archive coverage and size, and best/mean child quality, per generation."""
    gens = [m["generation"] for m in metrics]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(gens, [m["coverage"] for m in metrics], marker="o", label="coverage (cells)")
    ax1.set_xlabel("generation")
    ax1.set_ylabel("archive step-state coverage")
    twin = ax1.twinx()
    twin.plot(gens, [m["archive_size"] for m in metrics], color="tab:gray", linestyle="--", label="archive size")
    twin.set_ylabel("archive size")
    ax1.set_title("coverage and archive size")
    ax2.plot(gens, [m["best_quality"] for m in metrics], marker="o", label="best")
    ax2.plot(gens, [m["mean_quality"] for m in metrics], marker=".", label="mean")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("generation")
    ax2.set_ylabel("quality of evaluated children")
    ax2.legend()
    ax2.set_title("quality")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def plot_scatter(archive: list[Primitive], path: Path) -> Path:
    """Quality against novelty of the archived primitives, coloured by generation."""
    fig, ax = plt.subplots(figsize=(5, 4))
    if archive:
        sc = ax.scatter([p.novelty for p in archive], [p.quality for p in archive],
                        c=[p.generation for p in archive], cmap="viridis")
        fig.colorbar(sc, ax=ax, label="generation")
        if min(p.novelty for p in archive) > 0:
            ax.set_xscale("log")   # the first entry meets an empty archive (novelty 2); the rest are small
    ax.set_xlabel("novelty at admission")
    ax.set_ylabel("quality")
    ax.set_title(f"archive ({len(archive)} primitives)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
