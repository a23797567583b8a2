"""Quality: how reliably a primitive solves problems, as judged by the task verifier.

Quality is the verifier success rate over the problems a candidate was rendered on,
minus configurable penalties. A length penalty prefers the shorter of two equally
reliable strategies (shorter trajectories are cheaper warm-start data); an unfinished
penalty additionally punishes running out of the step budget, which is a worse failure
than a wrong answer because it yields no usable trajectory at all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QualityConfig:
    length_penalty: float = 0.0     # per unit of (mean steps / max_steps)
    unfinished_penalty: float = 0.0 # per unit of unfinished rate


def score_quality(n_problems: int, n_correct: int, n_unfinished: int, mean_steps: float, max_steps: int,
                  cfg: QualityConfig) -> float:
    """Penalised success rate, clipped to [0, 1]; 0 when nothing was rendered."""
    if n_problems <= 0:
        return 0.0
    q = n_correct / n_problems
    q -= cfg.length_penalty * (mean_steps / max(1, max_steps))
    q -= cfg.unfinished_penalty * (n_unfinished / n_problems)
    return float(min(1.0, max(0.0, q)))
