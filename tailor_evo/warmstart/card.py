"""The data card of a warm start: counts, lengths and coverage per method, and the details."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Sequence

from tailor_evo.search.coverage import abstract_coverage, coverage_score
from tailor_evo.tasks.base import Task
from tailor_evo.warmstart.records import Candidate, WarmstartResult, WarmstartStats


def _fill_stats(task: Task, stats: WarmstartStats, candidates: list[Candidate], selected: list[Candidate], seed: int,
                embedder: str) -> None:
    stats.n_selected = len(selected)
    stats.shortfall = max(0, stats.size - len(selected))
    stats.per_primitive = dict(Counter(c.primitive_id for c in selected))
    stats.per_level = dict(sorted(Counter(c.problem.difficulty for c in selected).items()))
    if selected:
        chars = [len(c.completion) for c in selected]
        stats.mean_chars = statistics.fmean(chars)
        stats.median_chars = float(statistics.median(chars))
        stats.max_chars = max(chars)
        stats.mean_words = statistics.fmean(len(c.completion.split()) for c in selected)
        stats.mean_steps = statistics.fmean(len(c.states) for c in selected)
    stats.coverage_measure = f"distinct SimHash cells of step states (search.coverage, {embedder} embedder)"
    stats.coverage_selected = coverage_score([c.states for c in selected], embedder)
    random_subset = random.Random(seed).sample(candidates, len(selected)) if selected else []
    stats.coverage_random = coverage_score([c.states for c in random_subset], embedder)
    stats.coverage_all_verified = coverage_score([c.states for c in candidates], embedder)
    stats.coverage_abstract = abstract_coverage(task, [(c.problem.question, c.completion) for c in selected], embedder)
    stats.coverage_abstract_random = abstract_coverage(
        task, [(c.problem.question, c.completion) for c in random_subset], embedder)


def render_card(results: Sequence[WarmstartResult], *, title: str = "Warm-start data card") -> str:
    """Markdown data card: one row per method with counts, lengths and coverage, then the details."""
    lines = [f"# {title}", ""]
    if results:
        s0 = results[0].stats
        lines += [f"- task: `{s0.task}`, seed {s0.seed}, levels {s0.levels}, size budget {s0.size}",
                  f"- training problems: {s0.n_problems} from the warm-start stream, checked disjoint from the "
                  f"evaluation problems of the same seed",
                  f"- coverage: {s0.coverage_measure}; 'random' is a random subset of the verified "
                  "trajectories of the same size, 'all verified' the whole pool the selection chose from",
                  "- abstract coverage: the same cells counted on the completions' text steps with the puzzle's "
                  "own names replaced by their roles, so that it counts distinct reasoning moves, not distinct "
                  "people, and applies alike to rendered and teacher-written data", ""]
    head = ["method", "primitives", "rendered", "verified", "dropped", "selected", "mean chars", "median chars",
            "mean steps", "coverage", "coverage (random)", "coverage (all verified)", "abstract coverage",
            "abstract coverage (random)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s = r.stats
        lines.append("| " + " | ".join([
            s.method, str(s.n_primitives), str(s.n_rendered), str(s.n_verified), str(sum(s.dropped.values())),
            f"{s.n_selected}/{s.size}", f"{s.mean_chars:.0f}", f"{s.median_chars:.0f}", f"{s.mean_steps:.1f}",
            f"{s.coverage_selected:.0f}", f"{s.coverage_random:.0f}", f"{s.coverage_all_verified:.0f}",
            f"{s.coverage_abstract:.0f}", f"{s.coverage_abstract_random:.0f}",
        ]) + " |")
    for r in results:
        s = r.stats
        lines += ["", f"## {s.method}", ""]
        if s.shortfall:
            lines.append(f"**Short by {s.shortfall} records**: not enough verified trajectories.\n")
        if s.eval_overlaps:
            lines.append(f"Training problems left out because the evaluation set has them: {s.eval_overlaps}")
        if s.skipped_primitives:
            lines.append("Skipped primitives: " + ", ".join(f"{k}: {v}" for k, v in s.skipped_primitives.items()))
            lines.append("")
        lines.append("Dropped trajectories by reason: " + (", ".join(
            f"{k}: {v}" for k, v in sorted(s.dropped.items(), key=lambda kv: -kv[1])) or "none"))
        lines.append("")
        lines.append("Selected per level: " + ", ".join(f"{k}: {v}" for k, v in s.per_level.items()))
        lines += ["", "| primitive | name | verified | selected |", "|---|---|---|---|"]
        for pid in s.primitive_names or s.verified_per_primitive:
            lines.append(f"| `{pid}` | {s.primitive_names.get(pid, '')} | {s.verified_per_primitive.get(pid, 0)} | "
                         f"{s.per_primitive.get(pid, 0)} |")
    return "\n".join(lines) + "\n"
