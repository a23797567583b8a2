"""Warm-start builder: verification filter, size budget, balance, coverage selection, redistill, CLI."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest

from tailor_evo.errors import InputError
from tailor_evo.generation.base import Completion
from tailor_evo.search.coverage import state_cells
from tailor_evo.search.genome import Primitive
from tailor_evo.tasks.base import question_key
from tailor_evo.tasks.streams import training_problems
from tailor_evo.warmstart import build_warmstart, greedy_select, render_card
from tailor_evo.warmstart.config import WarmstartConfig
from tests.cli_helpers import run_cli
from tests.toy_eval import ScriptedEngine, ToySumTask, correct_completion, wrong_completion

TOY_PRIMS = [Primitive(id=op, task="toysum", description=f"{op} strategy", program={"op": op, "args": []})
             for op in ("forward", "backward", "pairs", "sloppy", "stall")]


CONFIG_FIELDS = {f.name for f in dataclasses.fields(WarmstartConfig)} - {"teacher"}   # teacher: an engine here


def build(task, method, size, seed=0, **kw):
    """build_warmstart with the knobs given as keywords: config fields go into a WarmstartConfig
    (all archive elites, as the tests expect), the rest are the build's own inputs."""
    cfg = WarmstartConfig(**{"size": size, "max_primitives": None,
                             **{k: v for k, v in kw.items() if k in CONFIG_FIELDS}})
    return build_warmstart(task, method, cfg, seed, progress=False,
                           **{k: v for k, v in kw.items() if k not in CONFIG_FIELDS})


def _build(size=24, prims=TOY_PRIMS, **kw):
    return build(ToySumTask(), "four-behaviour", size, primitives=prims, **kw)


def test_only_verified_trajectories_are_kept_and_drops_are_counted():
    task = ToySumTask()
    res = _build(size=24, n_problems=30)
    problems = {p.id: p for p in training_problems(task, 0, 30)}
    assert len(res.records) == 24
    for rec in res.records:
        assert rec["correct"] is True
        assert task.verify(problems[rec["problem_id"]], rec["completion"]).correct
        assert rec["primitive_id"] in {"forward", "backward", "pairs"}
    s = res.stats
    # every render of 'sloppy' is wrong and every render of 'stall' unfinished: all counted, none kept
    per_prim = min(30, -(-4 * 24 // 5))
    assert s.n_rendered == 5 * per_prim
    assert s.dropped == {"verifier: wrong answer": per_prim, "unfinished: step budget": per_prim}
    assert s.n_verified == s.n_rendered - 2 * per_prim


def test_a_completion_budget_drops_long_trajectories_and_counts_them():
    full = _build(size=24, n_problems=30)
    lengths = sorted(len(c.completion.split()) for c in full.candidates)
    budget = lengths[len(lengths) // 2]
    res = _build(size=24, n_problems=30, max_completion_tokens=budget, count_tokens=lambda t: len(t.split()))
    assert res.records and all(len(r["completion"].split()) <= budget for r in res.records)
    too_long = sum(1 for c in full.candidates if len(c.completion.split()) > budget)
    assert too_long > 0 and res.stats.dropped[f"longer than {budget} tokens"] == too_long
    assert res.stats.n_verified == full.stats.n_verified       # verified before the budget was applied


def test_duplicate_primitives_are_skipped_and_reported():
    res = _build(size=6, prims=TOY_PRIMS[:2] + TOY_PRIMS[:1], n_problems=9)
    assert res.stats.n_primitives == 2
    assert res.stats.skipped_primitives == {"duplicate primitive id": 1}
    assert "duplicate primitive id: 1" in render_card([res])


def test_records_have_the_documented_fields():
    task = ToySumTask()
    res = _build(size=6, n_problems=9)
    problems = {p.id: p for p in training_problems(task, 0, 9)}
    for rec in res.records:
        for key in ("id", "task", "method", "primitive_id", "difficulty", "prompt", "messages", "completion",
                    "answer", "correct"):
            assert key in rec
        p = problems[rec["problem_id"]]
        assert rec["prompt"] == task.prompt(p) and rec["messages"] == task.prompt(p, chat=True)
        assert rec["answer"] == p.answer_text and rec["difficulty"] == p.difficulty
    assert len({r["id"] for r in res.records}) == len(res.records)


def test_size_is_respected_and_a_shortfall_is_reported():
    res = _build(size=10, n_problems=30)
    assert len(res.records) == 10 and res.stats.shortfall == 0
    small = _build(size=50, prims=TOY_PRIMS[:1], n_problems=12)   # one primitive, 12 problems
    assert len(small.records) == 12 and small.stats.shortfall == 38
    assert "Short by 38" in render_card([small])


def test_marginals_stay_balanced_when_budget_is_not_a_multiple_of_the_strata():
    res = _build(size=12, n_problems=60)     # 9 strata, 12 picks
    assert sorted(Counter(r["primitive_id"] for r in res.records).values()) == [4, 4, 4]
    assert sorted(Counter(r["difficulty"] for r in res.records).values()) == [4, 4, 4]


def test_selection_balances_primitives_and_levels():
    res = _build(size=27, n_problems=60)
    per_prim = Counter(r["primitive_id"] for r in res.records)
    per_level = Counter(r["difficulty"] for r in res.records)
    assert set(per_prim) == {"forward", "backward", "pairs"} and max(per_prim.values()) - min(per_prim.values()) <= 1
    assert set(per_level) == {2, 3, 4} and max(per_level.values()) - min(per_level.values()) <= 1
    strata = Counter((r["primitive_id"], r["difficulty"]) for r in res.records)
    assert len(strata) == 9 and set(strata.values()) == {3}


@pytest.mark.parametrize("codebook", ["simhash", "kmeans"])
def test_greedy_coverage_beats_random_subsets(codebook):
    task = ToySumTask()
    res = _build(size=18, n_problems=90, codebook=codebook)
    states = [c.states for c in res.candidates]
    cells = state_cells(states, codebook=codebook, seed=0)
    strata = [(c.primitive_id, c.problem.difficulty) for c in res.candidates]
    chosen = greedy_select(cells, strata, 18, seed=0)

    def covered(idx):
        return len(set().union(*(cells[i] for i in idx)))

    rng = random.Random(1)
    random_cov = [covered(rng.sample(range(len(cells)), 18)) for _ in range(20)]
    assert covered(chosen) > max(random_cov)
    if codebook == "simhash":   # the selection objective is the reported measure
        assert res.stats.coverage_selected > res.stats.coverage_random
    assert 0 < res.stats.coverage_selected <= res.stats.coverage_all_verified
    assert task.name == res.stats.task


def test_greedy_select_is_exact_on_a_small_set_cover():
    cells = [frozenset({1, 2, 3}), frozenset({1, 2}), frozenset({4, 5}), frozenset({3, 4}), frozenset({6})]
    chosen = greedy_select(cells, ["a"] * 5, 3)
    assert chosen[:2] == [0, 2] and chosen[2] == 4
    # balance: one stratum per candidate pair, each stratum gets a turn before any gets a second
    chosen = greedy_select(cells, ["a", "a", "b", "b", "b"], 2)
    assert {0, 2} == set(chosen)


def test_redistill_keeps_verified_teacher_answers_and_counts_the_rest():
    task = ToySumTask()
    problems = training_problems(task, 0, 10)
    samples = {}
    wrong = set()
    for i, p in enumerate(problems):
        first = wrong_completion(p) if i % 3 == 0 else correct_completion(p).replace("sum", f"add them up {i}.")
        if i % 3 == 0:
            wrong.add(p.id)
        samples[task.prompt(p)] = [first, "no tags at all"]
    teacher = ScriptedEngine({}, samples)
    res = build(task, "redistill", 8, teacher=teacher, n_problems=10, teacher_samples=2)
    s = res.stats
    assert s.dropped == {"verifier: wrong answer": len(wrong), "verifier: format": 10}
    assert s.n_verified == 10 - len(wrong) and len(res.records) == min(8, s.n_verified)
    assert all(r["problem_id"] not in wrong for r in res.records)
    assert all(r["method"] == "redistill" and r["primitive_id"] == "teacher" for r in res.records)
    with pytest.raises(InputError, match="teacher"):
        build(task, "redistill", 8)


class RoundsEngine(ScriptedEngine):
    """A weak teacher: round r (its sampling seed) answers every problem with text r, correct only
    for some problems, and repeats round 0's answer in round 2."""

    def __init__(self, task, problems) -> None:
        super().__init__({})
        self.task, self.by_prompt = task, {task.prompt(p): (i, p) for i, p in enumerate(problems)}

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params))
        r = {0: 0, 7919: 1, 2 * 7919: 0}[params.seed]
        out = []
        for prompt in prompts:
            i, p = self.by_prompt[prompt]
            ok = (i + r) % 3 == 0
            text = correct_completion(p).replace("sum", f"take {r}.") if ok else wrong_completion(p)
            out.append([Completion(text, token_ids=[1], finish_reason="stop")])
        return out


def test_redistill_rounds_fill_the_budget_and_stop_when_it_is_met():
    task = ToySumTask()
    problems = training_problems(task, 0, 12)
    one = build(task, "redistill", 12, teacher=RoundsEngine(task, problems), n_problems=12, teacher_samples=1,
                check_eval=False)
    assert one.stats.n_verified == 4 and one.stats.n_rendered == 12 and one.stats.shortfall == 8
    teacher = RoundsEngine(task, problems)
    three = build(task, "redistill", 12, teacher=teacher, n_problems=12, teacher_samples=1, teacher_rounds=3,
                  check_eval=False)
    # round 1 adds 4 new correct answers; round 2 repeats round 0's, counted as duplicates
    assert three.stats.n_verified == 8 and three.stats.n_rendered == 36
    assert three.stats.dropped["duplicate teacher answer"] == 4
    assert [c[1].seed for c in teacher.calls] == [0, 7919, 2 * 7919]
    assert {r["completion"] for r in one.records} < {r["completion"] for r in three.records}
    enough = RoundsEngine(task, problems)
    build(task, "redistill", 4, teacher=enough, n_problems=12, teacher_samples=1, teacher_rounds=3, check_eval=False)
    assert len(enough.calls) == 1          # the first round already verified the budget
    with pytest.raises(InputError, match="teacher_rounds"):
        build(task, "redistill", 4, teacher=enough, teacher_rounds=0)


def test_selection_on_abstracted_states_merges_moves_about_different_people():
    from tailor_evo.tasks import get_task
    from tailor_evo.warmstart.build import _selection_states
    from tailor_evo.warmstart.records import Candidate

    kk = get_task("kk")
    a, b = training_problems(kk, 0, 2, [3])
    names_a, names_b = (kk_intro(kk, p) for p in (a, b))
    cands = [Candidate(p, "x", f"<think>Suppose {n[0]} is a knight. Then {n[1]} lies.</think> ...",
                       [f"state of {n[0]}"], []) for p, n in ((a, names_a), (b, names_b))]
    plain, abstract = _selection_states(kk, cands, "states"), _selection_states(kk, cands, "abstract")
    assert plain[0] != plain[1]
    # the completion's text steps, abstracted: what the data card's abstract coverage counts
    assert abstract[0] == abstract[1] == ["suppose p1 is a knight.", "then p2 lies."]
    with pytest.raises(InputError, match="select_on"):
        WarmstartConfig(select_on="people").check()


def test_selecting_on_abstract_states_raises_the_abstract_coverage_it_reports():
    """The toy task names nothing, so abstraction is lower-casing: the selection then maximises the
    card's abstract coverage, which must be at least the state-selected set's."""
    by_states = _build(size=12, n_problems=60, select_on="states")
    by_abstract = _build(size=12, n_problems=60, select_on="abstract")
    assert by_abstract.stats.coverage_abstract >= by_states.stats.coverage_abstract
    assert by_abstract.stats.coverage_abstract >= by_abstract.stats.coverage_abstract_random


def kk_intro(kk, problem):
    from tailor_evo.tasks.kk import text as T

    return T.intro_names(problem.question)


def test_training_problems_in_the_eval_set_are_left_out_and_counted(monkeypatch):
    import tailor_evo.warmstart.sources as ws

    task = ToySumTask()
    leaked = training_problems(task, 0, 15)
    monkeypatch.setattr(ws, "eval_problems", lambda *a, **k: leaked[:2])
    result = _build(size=6, n_problems=15)
    leaked_keys = {question_key(p) for p in leaked[:2]}
    assert result.stats.eval_overlaps == len(leaked_keys) >= 1
    assert result.stats.n_problems == 15 - result.stats.eval_overlaps
    assert not leaked_keys & {question_key(c.problem) for c in result.candidates}
    assert "left out because the evaluation set has them" in render_card([result])


def test_methods_share_the_same_problems():
    a = _build(size=12, n_problems=15)
    b = build(ToySumTask(), "rule-based", 12, primitives=TOY_PRIMS[:1], n_problems=15)
    problems_a = {c.problem.id for c in a.candidates}
    problems_b = {c.problem.id for c in b.candidates}
    assert problems_b <= {p.id for p in training_problems(ToySumTask(), 0, 15)}
    assert problems_a == problems_b


def test_tailor_reads_archive_and_orders_by_quality(tmp_path):
    run = tmp_path / "search"
    run.mkdir()
    rows = [{"id": "p-low", "task": "toysum", "description": "d", "program": {"op": "backward", "args": []},
             "quality": 0.5},
            {"id": "p-high", "task": "toysum", "description": "d", "program": {"op": "pairs", "args": []},
             "quality": 0.99}]
    (run / "archive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = build(ToySumTask(), "tailor", 6, archive_dir=run, n_problems=9,
                          max_primitives=1)
    assert {r["primitive_id"] for r in res.records} == {"p-high"}
    (run / "archive.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(InputError) as exc:
        build(ToySumTask(), "tailor", 6, archive_dir=run)
    assert exc.value.line == 2


def test_archive_order_prefers_fewer_steps_among_equal_quality(tmp_path):
    from tailor_evo.warmstart.sources import archive_primitives

    run = tmp_path / "search"
    run.mkdir()
    rows = [{"id": "p-long", "task": "toysum", "description": "d", "program": {"op": "backward", "args": []},
             "quality": 1.0, "length": 12.0},
            {"id": "p-worse", "task": "toysum", "description": "d", "program": {"op": "pairs", "args": []},
             "quality": 0.9, "length": 2.0},
            {"id": "p-short", "task": "toysum", "description": "d", "program": {"op": "pairs", "args": []},
             "quality": 1.0, "length": 5.0}]
    (run / "archive.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [p.id for p in archive_primitives(ToySumTask(), run)] == ["p-short", "p-long", "p-worse"]
    assert [p.id for p in archive_primitives(ToySumTask(), run, max_primitives=1)] == ["p-short"]


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_warmstart_writes_data_and_card(tmp_path, monkeypatch, capsys):
    import tailor_evo.warmstart.builders as ws

    monkeypatch.setattr(ws, "_seed_or_none", lambda task, lib: TOY_PRIMS[:1] if lib == "rule-based" else TOY_PRIMS)
    out = tmp_path / "ws-{method}.jsonl"
    code, cap = run_cli(monkeypatch, capsys, ["data", "warmstart", "--task", "toysum",
                                            "--method", "rule-based,four-behaviour", "--size", "9",
                                            "--problems", "12", "-o", str(out)])
    assert code == 0, cap.err
    for method in ("rule-based", "four-behaviour"):
        rows = [json.loads(line) for line in (tmp_path / f"ws-{method}.jsonl").read_text().splitlines()]
        assert len(rows) == 9 and {r["method"] for r in rows} == {method}
    card = (tmp_path / "card.md").read_text()
    assert "| rule-based |" in card and "| four-behaviour |" in card and "coverage" in card


@pytest.mark.parametrize("argv,needle", [
    (["--method", "magic", "--size", "4"], "magic"),
    (["--method", "rule-based", "--size", "0"], "size"),
    (["--method", "rule-based", "--set", "codebook=bogus"], "codebook"),
    (["--method", "rule-based", "--set", "fit_rl_budget=false"], "fit_rl_budget"),   # the pipeline's own key
    (["--method", "tailor", "--size", "4"], "--archive"),
    (["--method", "redistill", "--size", "4"], "--teacher"),
    (["--method", "rule-based,tailor", "--size", "4", "--archive", "x"], "{method}"),
])
def test_cli_warmstart_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    code, cap = run_cli(monkeypatch, capsys, ["data", "warmstart", "--task", "toysum", *argv,
                                            "-o", str(tmp_path / "o.jsonl")])
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], cap.err


def test_cli_warmstart_missing_archive_dir_exits_2(tmp_path, monkeypatch, capsys):
    code, cap = run_cli(monkeypatch, capsys, ["data", "warmstart", "--task", "toysum", "--method", "tailor",
                                            "--archive", str(tmp_path / "nope"), "--size", "4",
                                            "-o", str(tmp_path / "o.jsonl")])
    assert code == 2 and "nope" in cap.err and len(cap.err.strip().splitlines()) == 1


@pytest.mark.parametrize("task_name", ["kk", "igsm"])
@pytest.mark.parametrize("method", ["rule-based", "four-behaviour"])
def test_real_task_seed_libraries_give_verified_balanced_data(task_name, method):
    from tailor_evo.tasks import get_task

    try:
        task = get_task(task_name)
        task.grammar()
    except (InputError, NotImplementedError):
        pytest.skip(f"task {task_name} has no executor yet")
    res = build(task, method, 20, n_problems=25)
    problems = {p.id: p for p in training_problems(task, 0, 25)}
    assert len(res.records) == 20
    for rec in res.records:
        assert task.verify(problems[rec["problem_id"]], rec["completion"]).correct
    per_level = Counter(r["difficulty"] for r in res.records)
    assert set(per_level) == set(task.default_levels) and max(per_level.values()) - min(per_level.values()) <= 1
    # the selection raises the measure it selects on: the name-abstracted coverage by default,
    # the coverage of the executor's states with select_on=states
    assert res.stats.coverage_abstract >= res.stats.coverage_abstract_random
    by_states = build(task, method, 20, n_problems=25, select_on="states")
    assert by_states.stats.coverage_selected >= by_states.stats.coverage_random


def test_abstract_coverage_counts_moves_not_names():
    from tailor_evo.search.coverage import abstract_coverage
    from tailor_evo.tasks import get_task

    task = get_task("kk")
    problems = task.generate(40, 3, levels=[3])
    pairs = [(p.question, task.reference_completion(p)) for p in problems]
    one = pairs[:1]
    # the same reasoning on many puzzles adds far fewer abstract cells than raw-text cells
    from tailor_evo.search.coverage import coverage_score, split_steps

    raw = coverage_score([split_steps(c) for _, c in pairs])
    assert abstract_coverage(task, pairs) < raw
    assert 0 < abstract_coverage(task, one) <= abstract_coverage(task, pairs)
