"""The Countdown plugin (plugins/countdown): found through its entry point, and covered
like the built-in tasks: generator, verifier, solver, move grammar and executor, seed
libraries, records, coverage abstraction, search and the whole pipeline."""

from __future__ import annotations

import json
import random
import re
from importlib.metadata import entry_points

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_evo.cli import cli
from tailor_evo.errors import InputError
from tailor_evo.tasks import registry
from tailor_evo.tasks.registry import ENTRY_POINT_GROUP, get_task, task_names

pytest.importorskip("tailor_evo_countdown", reason="install the plugin: pip install -e plugins/countdown")

from tailor_evo_countdown import CountdownTask  # noqa: E402
from tailor_evo_countdown.arith import ParseError, parse  # noqa: E402
from tailor_evo_countdown.generator import solve  # noqa: E402


@pytest.fixture(scope="module")
def task() -> CountdownTask:
    return get_task("countdown")


def _completion(expr: str) -> str:
    return f"<think> some work </think> <answer> {expr} </answer>"


# ---- the plugin interface -------------------------------------------------------------

def test_found_through_its_entry_point_not_by_name():
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names.get("countdown") == "tailor_evo_countdown:CountdownTask"
    assert "countdown" in task_names()
    assert isinstance(get_task("countdown"), CountdownTask)


def test_a_broken_plugin_is_named_and_leaves_the_others_working(monkeypatch):
    from importlib.metadata import EntryPoint

    bad = [EntryPoint("missing-task", "no_such_module_xyz:Task", ENTRY_POINT_GROUP),
           EntryPoint("wrong-name", "tailor_evo_countdown:CountdownTask", ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: bad)
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "_BROKEN", {})
    monkeypatch.setattr(registry, "_REGISTRY", {})
    assert task_names() == ["igsm", "kk"]
    with pytest.raises(InputError, match="no_such_module_xyz.*failed to import"):
        get_task("missing-task")
    with pytest.raises(InputError, match="named 'countdown', not 'wrong-name'"):
        get_task("wrong-name")


def test_seed_libraries_come_from_the_plugin_folder(task):
    from tailor_evo.populations.library import list_libraries, load_library

    paths = list_libraries("countdown")
    assert {p.stem for p in paths} == {"rule-based", "four-behaviour"}
    assert all(p.parent == task.seeds_dir for p in paths)
    four = load_library("countdown/four-behaviour")
    assert [p["name"] for p in four] == ["verification", "backtracking", "subgoal-setting", "backward-chaining"]
    result = CliRunner().invoke(cli, ["populations", "validate", str(paths[0])])
    assert result.exit_code == 0, result.output


# ---- problems ---------------------------------------------------------------------------

def test_generator_is_deterministic_levelled_and_solvable(task):
    a = task.generate(12, 3, levels=[3, 4])
    assert [p.to_dict() for p in a] == [p.to_dict() for p in task.generate(12, 3, levels=[3, 4])]
    assert [p.difficulty for p in a] == [3, 4] * 6
    for p in a:
        numbers, target = p.meta["numbers"], p.meta["target"]
        assert len(numbers) == p.difficulty and all(1 <= x <= 25 for x in numbers)
        assert 1 < target <= 200 and target not in numbers
        assert task.verify(p, _completion(p.answer_text)).correct          # the generator's own solution
        assert task.verify(p, _completion(task.solve(p))).correct          # the solver's
        assert task.verify(p, task.reference_completion(p)).correct


def test_difficulty_knob_and_bad_options(task):
    wide = task.generate(20, 0, levels=[5], max_number=50, max_target=500)
    assert all(len(p.meta["numbers"]) == 5 and max(p.meta["numbers"]) <= 50 for p in wide)
    with pytest.raises(InputError, match="unknown countdown option"):
        task.generate(1, 0, colour=1)
    with pytest.raises(InputError, match="from 2 to 6"):
        task.generate(1, 0, levels=[9])
    with pytest.raises(InputError) as exc:
        task.generate(1, 0, max_number=1)
    assert exc.value.field == "max_number"


def test_solver_says_when_there_is_no_solution():
    assert solve([1, 1], 5) is None
    assert parse(solve([3, 7, 2], 20).text()).value == 20


# ---- verifier -------------------------------------------------------------------------

@pytest.fixture
def fixed(task):
    return task.make_problem("p", [25, 4, 3], 97, "(25 * 4) - 3")


@pytest.mark.parametrize("answer,correct,reason", [
    ("(25 * 4) - 3", True, "ok"),
    ("25*4-3", True, "ok"),                         # precedence, no spaces
    ("4 * 25 - 3 = 97", True, "ok"),                # any right expression, with its value stated
    ("4 * 25 - 3 = 98", False, "stated value"),
    ("25 * 4 - 3 - 0", False, "exactly once"),      # a number that was not given
    ("25 * 4 * 1 - 3", False, "exactly once"),
    ("25 * 4", False, "exactly once"),              # not every number
    ("25 + 4 + 3 + 3", False, "exactly once"),      # a number used twice
    ("25 + 4 + 3", False, "value is not the target"),
    ("__import__('os').system('true')", False, "unparsable"),
    ("(25 * 4 - 3", False, "missing ')'"),
    ("25 / (4 - 4) + 3", False, "division by zero"),
    ("97", False, "exactly once"),
    ("25 * 4 - 3 + 10000000 - 10000000", False, "number out of range"),   # beyond any game's number
    ("25 * 4 - 3 = 1" + "0" * 150, False, "number out of range"),
])
def test_verifier_rules(task, fixed, answer, correct, reason):
    verdict = task.verify(fixed, _completion(answer))
    assert verdict.correct is correct and reason in verdict.reason
    assert verdict.format_ok


def test_exact_fractions_and_division_by_zero(task):
    p = task.make_problem("q", [7, 2, 2], 7, "(7 / 2) * 2")
    assert task.verify(p, _completion("7 / 2 * 2")).correct         # exact, not rounded
    zero = task.make_problem("z", [5, 3, 3], 5, "5 + (3 - 3)")
    assert "division by zero" in task.verify(zero, _completion("5 / (3 - 3)")).reason


def test_format_and_shaped_reward(task, fixed):
    assert task.verify(fixed, "<answer> (25 * 4) - 3 </answer>").reason == "missing <think>"
    assert task.verify(fixed, _completion("25 + 4 + 3"), shaped=True).reward == 0.2
    assert task.verify(fixed, _completion("25 + 4"), shaped=True).reward == 0.1
    assert task.verify(fixed, _completion("(25 * 4) - 3"), shaped=True).reward == 1.0
    huge = task.verify(fixed, _completion("25 * 4 - 3 + 99999999 - 99999999"), shaped=True)
    assert (huge.format_ok, huge.reward, huge.reason) == (True, 0.1, "number out of range")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_verifier_never_raises(text):
    p = CountdownTask().make_problem("p", [25, 4, 3], 97, "(25 * 4) - 3")
    for completion in (text, _completion(text)):
        verdict = CountdownTask().verify(p, completion)
        assert isinstance(verdict.reward, float) and (not verdict.correct or verdict.reward == 1.0)


def test_parser_refuses_huge_or_deep_input():
    with pytest.raises(ParseError, match="too long"):
        parse("1+" * 200 + "1")
    with pytest.raises(ParseError, match="too deeply"):
        parse("(" * 30 + "1" + ")" * 30)
    with pytest.raises(ParseError, match="too large"):
        parse("10000000 + 1")


# ---- moves, executor, coverage ------------------------------------------------------------

def test_random_programs_run_and_finished_ones_are_right(task):
    rng = random.Random(0)
    grammar = task.grammar()
    problems = task.generate(6, 11, levels=[3, 4])
    finished = 0
    kinds: set[str] = set()
    for _ in range(60):
        program = grammar.random_program(rng)
        assert grammar.validate(program) == []
        for p in problems:
            traj = task.execute(program, p, random.Random(0), max_steps=120)
            kinds |= {s.kind for s in traj.steps}
            assert all(s.kind in task.behaviour_kinds() for s in traj.steps)
            if traj.finished:
                finished += 1
                assert task.verify(p, traj.completion).correct, traj.completion
            else:
                assert traj.completion == "" and traj.reason
    assert finished > 50
    assert {"combine", "backtrack", "subgoal", "verify"} <= kinds


def test_seed_primitives_show_their_behaviours(task):
    from tailor_evo.populations.library import load_library

    p = task.generate(1, 0, levels=[3])[0]
    by_name = {e["name"]: task.execute(e["program"], p, random.Random(0))
               for e in load_library("countdown/four-behaviour")}
    assert all(t.finished for t in by_name.values())
    assert any(s.kind == "verify" for s in by_name["verification"].steps)
    assert any(s.kind == "subgoal" for s in by_name["backward-chaining"].steps)
    assert by_name["subgoal-setting"].steps[0].kind == "plan"


def test_an_invalid_program_gives_an_unfinished_trajectory(task):
    p = task.generate(1, 0, levels=[3])[0]
    traj = task.execute({"op": "attempt", "args": [{"op": "nonsense"}]}, p, random.Random(0))
    assert not traj.finished and traj.reason.startswith("bad program")


def test_abstract_step_counts_roles_not_digits(task, fixed):
    prompt = task.prompt(fixed)
    a = task.abstract_step(prompt, "25 * 4 = 100; left: 100, 3.")
    b = task.abstract_step(task.prompt(task.make_problem("r", [20, 5, 3], 97, "(20 * 5) - 3")),
                           "20 * 5 = 100; left: 100, 3.")
    assert a == b == "n * n = v; left: v, n."
    assert task.abstract_step(prompt, "(25 * 4) - 3 = 97, the target.").endswith("= t, the target.")


# ---- records --------------------------------------------------------------------------

def test_records_round_trip_and_bad_rows_are_located(task, tmp_path):
    p = task.generate(1, 2)[0]
    assert task.from_record(task.to_record(p)).to_dict() == p.to_dict()
    bad = dict(task.to_record(p), answer_text="1 + 1")
    with pytest.raises(InputError) as exc:
        task.from_record(bad, source="x.jsonl", line=4)
    assert (exc.value.file, exc.value.line, exc.value.field) == ("x.jsonl", 4, "answer_text")
    other = dict(task.to_record(p), answer="1 + 1")
    with pytest.raises(InputError) as exc:
        task.from_record(other, source="x.jsonl", line=5)
    assert (exc.value.field, str(exc.value).endswith("does not make the target from the numbers")) == ("answer", True)
    fraction = task.to_record(task.make_problem("q", [7, 2, 2], 7, "(7 / 2) * 2"))
    with pytest.raises(InputError, match="whole number") as exc:
        task.from_record(fraction, source="x.jsonl", line=6)
    assert exc.value.field == "answer"
    rec = dict(task.to_record(p), meta={"numbers": [1, "2"], "target": 3})
    with pytest.raises(InputError, match="positive integers"):
        task.from_record(rec)


# ---- search and the pipeline ---------------------------------------------------------------

def test_search_on_countdown_from_the_command_line(tmp_path):
    out = tmp_path / "search"
    result = CliRunner().invoke(cli, [
        "search", "--task", "countdown", "--out", str(out), "--set", "evolution.generations=2",
        "--set", "evolution.population=8", "--set", "evolution.offspring=8", "--set", "problems.levels=[3]",
        "--set", "problems.per_eval=8", "--set", "problems.report=8", "--set", "archive.min_problems=8"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    archive = [json.loads(line) for line in (out / "archive.jsonl").read_text().splitlines()]
    assert archive and all(r["task"] == "countdown" for r in archive)
    assert {r["operator"].split(":")[0] for r in archive} & {"gp", "random", "seed"}
    assert "coverage ratio archive/rule-based" in (out / "report.md").read_text()


def test_the_whole_pipeline_runs_on_countdown(tmp_path):
    from test_pipeline import SMALL

    out = tmp_path / "run"
    args = ["run", "--task", "countdown", "--out", str(out)] + [a for s in SMALL for a in ("--set", s)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for stage in ("search", "warmstart", "sft", "rl", "eval_rl"):
        assert (out / "stages" / f"{stage}.json").exists(), stage
    records = [json.loads(line) for line in (out / "warmstart" / "data.jsonl").read_text().splitlines()]
    assert records and all(r["task"] == "countdown" and r["correct"] for r in records)
    res = json.loads((out / "eval_rl" / "results.json").read_text())
    assert res["overall"]["n_problems"] == 3


# ---- the explicit rendering -------------------------------------------------------------------

_OP = re.compile(r"(?<![\d/])(\d+(?:/\d+)?) ([-+*/]) (\d+(?:/\d+)?) = (\d+(?:/\d+)?)(?![\d/])")


def _written_arithmetic_is_right(text: str) -> int:
    """Every "a op b = c" the text writes is exact (fractions included); how many there are."""
    from fractions import Fraction

    from tailor_evo_countdown.arith import apply

    n = 0
    for a, op, b, c in _OP.findall(text):
        assert apply(Fraction(a), op, Fraction(b)) == Fraction(c), (a, op, b, c)
        n += 1
    return n


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(3, 5))
def test_explicit_traces_write_the_numbers_each_decision_rests_on(seed, k):
    from tailor_evo.populations.library import load_library

    explicit, compact = CountdownTask(), CountdownTask(rendering="compact")
    p = explicit.generate(1, seed, levels=[k])[0]
    target, numbers = p.meta["target"], p.meta["numbers"]
    programs = [e["program"] for lib in ("rule-based", "four-behaviour") for e in load_library(f"countdown/{lib}")]
    programs.append({"op": "plan_first", "args": [{"op": "attempt", "args": [{"op": "backward", "args": [
        {"op": "pair_largest"}, {"op": "op_mul_first"}, {"op": "budget_pruned"}]}]}]})
    for program in programs:
        new = explicit.execute(program, p, random.Random(0), max_steps=300)
        old = compact.execute(program, p, random.Random(0), max_steps=300)
        assert new.finished == old.finished and new.answer == old.answer        # words change, not steps
        assert [s.key for s in new.steps] == [s.key for s in old.steps]
        assert _written_arithmetic_is_right(" ".join(s.text for s in new.steps)) >= \
            _written_arithmetic_is_right(" ".join(s.text for s in old.steps))
        for s in new.steps:
            if s.kind == "prune":        # the bound is written, made one operation at a time
                bound = 3 * target + max(numbers)
                assert f"3 * {target} = {3 * target}, {3 * target} + {max(numbers)} = {bound}" in s.text
            if s.kind == "plan":         # the sum the target is compared with
                assert f"= {sum(numbers)}; {target} " in s.text
            if s.kind == "verify":
                assert all(f"{n} used" in s.text for n in numbers)
        if new.finished:
            assert explicit.verify(p, new.completion).correct


def test_compact_rendering_keeps_the_old_words():
    p = CountdownTask().generate(1, 0, levels=[4])[0]
    program = {"op": "plan_first", "args": [{"op": "attempt", "args": [{"op": "forward", "args": [
        {"op": "pair_largest"}, {"op": "op_mul_first"}, {"op": "budget_large"}]}]}]}
    old = CountdownTask(rendering="compact").execute(program, p, random.Random(0))
    new = CountdownTask().execute(program, p, random.Random(0))
    assert "(largest 9) needs a product" in old.steps[0].text and "They sum to" not in old.steps[0].text
    assert "They sum to 2 + 1 = 3, 3 + 9 = 12, 12 + 9 = 21; 27 > 21, so it needs a product" in new.steps[0].text
    with pytest.raises(InputError, match="rendering"):
        CountdownTask(rendering="terse")
