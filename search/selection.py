"""Survivor selection: NSGA-II on (quality, novelty) by default, MAP-Elites as an option.

Why NSGA-II is the default: the search must trade two objectives whose exchange rate
is unknown in advance (a little less reliability for a lot of new ground?). NSGA-II
keeps the whole Pareto front of that trade-off without a weight to tune, and its
crowding distance spreads survivors along the front. MAP-Elites instead needs a grid
over behaviour descriptors whose useful ranges differ per task and per executor; with
the few hundred evaluations a laptop run affords, a grid over three or four
descriptors leaves most cells empty or filled by one lucky individual. Diversity
bookkeeping is already done by the novelty archive, so the population only needs to
keep good stepping stones, which NSGA-II does well. MAP-Elites stays available
(``selection: map-elites`` in the search config) for larger budgets or when a behaviour grid is
wanted explicitly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from deap import base, tools

METHODS = ("nsga2", "map-elites")


class _Fitness(base.Fitness):
    weights = (1.0, 1.0)


class _Ind:
    __slots__ = ("idx", "fitness")

    def __init__(self, idx: int, values: tuple[float, float]) -> None:
        self.idx = idx
        self.fitness = _Fitness(values)


def nsga2(objectives: Sequence[tuple[float, float]], k: int) -> list[int]:
    """Indices of the ``k`` survivors under NSGA-II (both objectives maximised)."""
    if k >= len(objectives):
        return list(range(len(objectives)))
    inds = [_Ind(i, (float(q), float(n))) for i, (q, n) in enumerate(objectives)]
    return [ind.idx for ind in tools.selNSGA2(inds, k)]


def pareto_front(objectives: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (for reports and tests)."""
    inds = [_Ind(i, (float(q), float(n))) for i, (q, n) in enumerate(objectives)]
    return sorted(ind.idx for ind in tools.sortNondominated(inds, len(inds), first_front_only=True)[0])


@dataclass
class MapElitesGrid:
    """Fixed bins per behaviour descriptor; one elite (best quality, then novelty) per cell."""

    length_edges: list[float] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128])
    count_edges: list[float] = field(default_factory=lambda: [0.5, 1, 2, 4, 8])

    def cell(self, descriptors: dict[str, float], names: Sequence[str]) -> tuple[int, ...]:
        out = []
        for name in names:
            edges = self.length_edges if name == "length" else self.count_edges
            out.append(bisect.bisect_right(edges, descriptors.get(name, 0.0)))
        return tuple(out)

    def select(self, descriptors: Sequence[dict[str, float]], objectives: Sequence[tuple[float, float]],
               names: Sequence[str], k: int | None = None) -> list[int]:
        """Indices of the cell elites (at most ``k``, best first); the first seen wins ties."""
        best: dict[tuple[int, ...], int] = {}
        for i, (desc, obj) in enumerate(zip(descriptors, objectives)):
            c = self.cell(desc, names)
            if c not in best or obj > objectives[best[c]]:
                best[c] = i
        chosen = sorted(best.values(), key=lambda i: (-objectives[i][0], -objectives[i][1], i))
        return chosen if k is None or math.isinf(k) else chosen[:k]
