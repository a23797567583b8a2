"""Telling guessed answers from reasoned ones by how they miss (experiment.guessing)."""

import json
import random

from tailor_evo.experiment import runner
from tailor_evo.experiment.grid import ExperimentConfig
from tailor_evo.experiment.guessing import level_line, miss_counts
from tailor_evo.tasks import get_task
from tailor_evo.tasks.base import GuessParts
from tailor_evo.tasks.kk.verifier import people_wrong
from tests.test_experiment_runner import fake_pipeline


def test_the_kk_verifier_reason_says_how_many_people_are_wrong():
    kk = get_task("kk")
    problem = kk.generate(1, seed=3, levels=[3])[0]
    names, solution = problem.meta["names"], problem.answer
    flipped = [not r if i in (0, 2) else r for i, r in enumerate(solution)]
    answer = ", ".join(f"{nm} is a {'knight' if r else 'knave'}" for nm, r in zip(names, flipped))
    verdict = kk.verify(problem, f"<think> guess </think> <answer> {answer} </answer>")
    assert kk.parts_wrong(verdict.reason) == 2 == people_wrong(verdict.reason)
    assert kk.parts_wrong(kk.verify(problem, kk.reference_completion(problem)).reason) == 0
    assert kk.parts_wrong(kk.verify(problem, "no tags at all").reason) is None
    assert kk.guess_parts(3) == GuessParts(count=3, chance=0.5, noun="roles")
    assert get_task("igsm").guess_parts(3) is None


def _results(path, reasons):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"outcomes": [{"difficulty": 3, "reason": r} for r in reasons]}))


def test_counts_skip_malformed_answers_and_a_missing_file_gives_none(tmp_path):
    path = tmp_path / "results.json"
    _results(path, ["ok", "wrong role for Ann", "wrong role for Ann, Bob, Cy", "expected exactly one <think>, found 0",
                    "wrong role for Bob"])
    assert miss_counts("kk", path) == {"3": [1, 2, 0, 1]}
    assert miss_counts("kk", tmp_path / "absent.json") == {}
    assert miss_counts("igsm", path) == {}


def test_coin_flips_read_as_guessing_and_a_reasoner_does_not():
    rng = random.Random(0)
    flips = [0] * 4
    for _ in range(1000):
        flips[sum(rng.random() < 0.5 for _ in range(3))] += 1
    roles = GuessParts(count=3, chance=0.5, noun="roles")
    assert level_line(flips, roles).endswith("-> consistent with guessing all roles")
    # mostly one person wrong: whole answers still miss, but most roles are right
    assert level_line([100, 700, 150, 50], roles).endswith("-> more roles right than guessing")
    # all or nothing, as often right as wrong overall: not coin flips, yet no better than them
    assert level_line([500, 0, 0, 500], roles).endswith("-> not independent guesses, but no more roles right "
                                                        "than guessing")


def test_the_report_counts_the_cells_whose_evaluation_was_kept(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_pipeline", fake_pipeline(calls))
    cfg = ExperimentConfig(seeds=[0])
    runner.run_experiment(cfg, tmp_path)
    assert "how the well-formed final answers miss" not in (tmp_path / "report.md").read_text()
    for method, reasons in (("rule-based", ["ok"] + ["wrong role for Ann"] * 3 + ["wrong role for Ann, Bob"] * 3
                             + ["wrong role for Ann, Bob, Cy"]),
                            ("tailor", ["ok", "wrong role for Ann", "tags out of order"])):
        _results(tmp_path / "cells" / f"kk-L3-tiny-{method}-s0" / "eval_rl" / "results.json", reasons)
    runner.report_only(cfg, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert ("how the well-formed final answers miss, level 3, 2 of 4 cells (the others' evaluation files were not "
            "kept): 10 answers with 0/1/2/3 roles wrong: 2/4/3/1 (20.0/40.0/30.0/10.0%) vs independent guesses "
            "12.5/37.5/37.5/12.5%") in report
    assert "roles right 17/30 = 0.567 vs 0.500" in report
    assert "roles right per method: rule-based 12/24 = 0.500 (p=0.58); tailor 5/6 = 0.833 (p=0.11)" in report
    results = json.loads((tmp_path / "results.json").read_text())
    assert {c["method"]: c["answer_misses"] for c in results["cells"]}["tailor"] == {"3": [1, 1, 0, 0]}
