"""Greedy selection of warm-start candidates for coverage of reasoning-state cells.

Coverage of a set is a set union, so the greedy gain is exact and submodular, which
makes lazy evaluation valid; a round-robin over (primitive, level) strata keeps any one
primitive or difficulty from dominating.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any


def greedy_select(cells: Sequence[frozenset[int]], strata: Sequence[Any], size: int, *, seed: int = 0,
                  keys: Sequence[frozenset[str]] | None = None) -> list[int]:
    """Pick ``size`` candidates maximising the union of covered cells, balanced over strata.

    Strata (e.g. (primitive, level)) take turns: the stratum with the fewest picks that
    still has candidates picks next (ties go to the stratum whose components, e.g. its
    primitive and its level, have the fewest picks so far, so both marginals stay
    balanced when the budget is not a multiple of the strata), choosing its candidate
    with the largest marginal
    gain (new cells, then new exact state keys, then a seeded random tie-break). Gains
    only shrink as the selection grows (set coverage is submodular), so a lazy
    priority queue per stratum gives the same result as recomputing every gain.
    """
    rng = random.Random(seed)
    keys = keys or [frozenset() for _ in cells]
    heaps: dict[Any, list] = defaultdict(list)
    for i, s in enumerate(strata):
        heaps[s].append((-len(cells[i]), -len(keys[i]), rng.random(), i))
    for h in heaps.values():
        heapq.heapify(h)
    count: Counter = Counter()
    parts: Counter = Counter()      # picks per stratum component (position, value)

    def components(s: Any) -> tuple:
        return tuple(enumerate(s)) if isinstance(s, tuple) else ((0, s),)

    covered: set[int] = set()
    covered_keys: set[str] = set()
    chosen: list[int] = []
    while len(chosen) < size:
        live = [s for s, h in heaps.items() if h]
        if not live:
            break
        stratum = min(live, key=lambda s: (count[s], sum(parts[c] for c in components(s)), heaps[s][0][:2],
                                           str(s)))
        h = heaps[stratum]
        while True:
            _, _, tie, i = heapq.heappop(h)
            gain = (-len(cells[i] - covered), -len(keys[i] - covered_keys), tie, i)
            if not h or gain[:2] <= h[0][:2]:
                break
            heapq.heappush(h, gain)
        chosen.append(i)
        count[stratum] += 1
        parts.update(components(stratum))
        covered |= cells[i]
        covered_keys |= keys[i]
    return chosen
