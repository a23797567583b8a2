"""The search on the real tasks: a quick smoke run each, and the default-config targets (slow)."""

from __future__ import annotations

import json

import pytest

from tailor_evo.search.engine import SearchConfig, run_search
from tailor_evo.tasks import get_task


def small_cfg(task: str, generations: int = 1, **kw) -> SearchConfig:
    """A search on a real task small enough for the fast suite."""
    cfg = SearchConfig(task=task, **kw)
    cfg.evolution.generations = generations
    cfg.evolution.population = 8
    cfg.evolution.offspring = 6
    cfg.evolution.init_random = 2
    cfg.problems.pool = 32
    cfg.problems.per_eval = 6
    cfg.problems.probe = 2
    cfg.problems.report = 4
    cfg.archive.min_problems = 8
    return cfg


@pytest.mark.parametrize("task", ["kk", "igsm"])
def test_small_search_on_real_task(task, tmp_path):
    res = run_search(small_cfg(task, workers=1), tmp_path / "run", progress=False)
    grammar = get_task(task).grammar()
    assert res.archive, "the seed libraries alone should fill the archive"
    for p in res.archive:
        assert grammar.validate(p.program) == [] and p.quality >= 0.9 and p.n_problems == 8
    assert any(p.operator.startswith("seed:rule-based") for p in res.archive)
    cov = json.loads((tmp_path / "run" / "coverage.json").read_text())
    assert set(cov["coverage"]) == {"archive", "rule-based", "four-behaviour"}
    assert cov["coverage"]["archive"] >= cov["coverage"]["rule-based"]     # the seed is in the archive


@pytest.mark.slow
@pytest.mark.parametrize("task", ["kk", "igsm"])
def test_default_search_meets_targets(task, tmp_path):
    res = run_search(SearchConfig(task=task), tmp_path / "run", progress=False)
    good = [p for p in res.archive if p.quality >= 0.9 and p.n_problems >= 32]
    assert len(good) >= 24
    assert res.coverage_ratios["archive/rule-based"] >= 2.0
    assert res.coverage_ratios["archive/four-behaviour"] >= 1.3
    assert sum(m["seconds"] for m in res.metrics) < 600
