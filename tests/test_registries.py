"""The extension registries: a warm-start method and a search operator family, each added by a
definition and one registration (here, in the test itself), then run through the command line.

Every registration is undone by its fixture, so no other test sees the toys.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.errors import InputError
from tailor_evo.search.coverage import split_steps
from tailor_evo.search.genome import program_id
from tailor_evo.search.operators import get_operator, operator_names, register_operator, unregister_operator
from tailor_evo.search.variation import VariationCounts, VariationOperator
from tailor_evo.warmstart.methods import (
    WarmstartMethod,
    default_grid,
    get_method,
    method_names,
    register_method,
    run_order,
    unregister_method,
)
from tailor_evo.warmstart.records import Candidate, CandidateSet, MethodInputs
from tests.cli_helpers import run_cli

TOY_METHOD = "toy-reference"
TOY_OPERATOR = "toy-immigrants"


# --- a toy warm-start method: the task's reference solution, one 'primitive' ----------------------
def reference_answers(inputs: MethodInputs) -> CandidateSet:
    """Each training problem's reference solution, verified like any other candidate."""
    out = []
    for p in inputs.problems:
        text = inputs.task.reference_completion(p)
        verdict = inputs.task.verify(p, text)
        if not verdict.correct:
            inputs.dropped[f"verifier: {verdict.reason}"] += 1
            continue
        steps = split_steps(text)
        out.append(Candidate(p, "reference", text, steps, steps))
    return CandidateSet(out, 1, len(inputs.problems), names={"reference": "the task's reference solution"})


@pytest.fixture
def toy_method():
    spec = register_method(WarmstartMethod(TOY_METHOD, "the task's reference solution", reference_answers, order=15))
    yield spec
    unregister_method(TOY_METHOD)


# --- a toy search operator family: only fresh random programs -------------------------------------
class ToyImmigrants(VariationOperator):
    """Every child a random program (no parents): the simplest family that keeps the contract."""

    name = TOY_OPERATOR

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.made: Counter = Counter()

    def vary(self, population, n, rng, seen, generation, archive=None):
        children = []
        for _ in range(n):
            program = self.ctx.random_program(rng, seen)
            if program is None:
                break
            seen.add(program_id(program))
            children.append(self.ctx.child(program, "", [], f"{self.name}:random", generation))
            self.made["random"] += 1
        return children

    def take_counts(self) -> VariationCounts:
        made, self.made = self.made, Counter()
        return VariationCounts(ok=made)


@pytest.fixture
def toy_operator():
    register_operator(ToyImmigrants)
    yield ToyImmigrants
    unregister_operator(TOY_OPERATOR)


def _main(monkeypatch, capsys, argv: list[str]) -> tuple[int, str]:
    """Run the real entry point (one-line errors, exit code 2) and return (code, stderr)."""
    code, captured = run_cli(monkeypatch, capsys, argv)
    return code, captured.err


# --- warm-start methods ---------------------------------------------------------------------------
def test_a_registered_method_builds_data_through_the_cli(toy_method, tmp_path):
    r = CliRunner().invoke(cli, ["data", "warmstart", "--task", "kk", "--method", f"rule-based,{TOY_METHOD}",
                                 "--size", "4", "--problems", "6", "--set", "check_eval=false",
                                 "-o", str(tmp_path / "{method}.jsonl")])
    assert r.exit_code == 0, (r.output, r.exception)
    out = tmp_path / f"{TOY_METHOD}.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["method"] for r in rows} == {TOY_METHOD}
    assert {r["primitive_id"] for r in rows} == {"reference"} and all(r["correct"] for r in rows)
    rule = [json.loads(line) for line in (tmp_path / "rule-based.jsonl").read_text().splitlines()]
    assert len({r["problem_id"] for r in rows + rule}) <= 6       # both drew from the same 6 problems
    assert f"| {TOY_METHOD} |" in (tmp_path / "card.md").read_text()


def test_a_registered_method_takes_its_place_in_the_grid_and_the_pipeline(toy_method):
    from tailor_evo.experiment.grid import ExperimentConfig, expand
    from tailor_evo.pipeline import PipelineConfig

    assert run_order() == ["rule-based", TOY_METHOD, "four-behaviour", "tailor", "tailor-gp", "redistill"]
    assert TOY_METHOD not in default_grid()          # a new method joins the default grid only when it says so
    cfg = ExperimentConfig(methods=["redistill", TOY_METHOD, "rule-based"], seeds=[0])
    cfg.check()
    assert [c.method for c in expand(cfg)] == ["rule-based", TOY_METHOD, "redistill"]
    PipelineConfig(method=TOY_METHOD).check()
    assert method_names()[-1] == TOY_METHOD


def test_builtin_methods_keep_their_run_order_and_default_grid():
    assert run_order() == ["rule-based", "four-behaviour", "tailor", "tailor-gp", "redistill"]
    assert default_grid() == ["rule-based", "four-behaviour", "tailor", "redistill"]
    assert get_method("tailor-gp").own_search.settings == {"operator": "gp", "renderer": "executor"}


def test_a_method_that_needs_an_archive_or_teacher_is_refused_without_it(monkeypatch, capsys, tmp_path):
    register_method(WarmstartMethod("toy-needs", "nothing", reference_answers, needs_archive=True, needs_teacher=True))
    try:
        code, err = _main(monkeypatch, capsys, ["data", "warmstart", "--task", "kk", "--method", "toy-needs",
                                                "--size", "4", "-o", str(tmp_path / "o.jsonl")])
    finally:
        unregister_method("toy-needs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--archive" in err and "toy-needs" in err


def test_a_duplicate_method_name_is_refused(toy_method):
    with pytest.raises(InputError, match=f"'{TOY_METHOD}' is already registered"):
        register_method(WarmstartMethod(TOY_METHOD, "again", reference_answers))
    with pytest.raises(InputError, match="'rule-based' is already registered"):
        register_method(WarmstartMethod("rule-based", "again", reference_answers))
    assert get_method(TOY_METHOD) is toy_method


def test_a_bad_method_record_is_refused():
    with pytest.raises(InputError, match="role"):
        register_method(WarmstartMethod("toy-bad", "x", reference_answers, role="hero"))
    with pytest.raises(InputError, match="own_search"):
        from tailor_evo.warmstart.methods import OwnSearch

        register_method(WarmstartMethod("toy-bad", "x", reference_answers, own_search=OwnSearch("x")))
    with pytest.raises(InputError, match="comma"):
        register_method(WarmstartMethod("a,b", "x", reference_answers))
    assert "toy-bad" not in method_names()


def test_an_unknown_method_names_the_known_ones(monkeypatch, capsys, tmp_path):
    with pytest.raises(InputError, match="unknown method 'magic'") as exc:
        get_method("magic")
    assert all(m in str(exc.value) for m in method_names())
    code, err = _main(monkeypatch, capsys, ["data", "warmstart", "--task", "kk", "--method", "magic",
                                            "-o", str(tmp_path / "o.jsonl")])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--method" in err and all(m in err for m in method_names())


# --- search operators -----------------------------------------------------------------------------
SEARCH_SETTINGS = ["evolution.generations=2", "evolution.population=4", "evolution.offspring=4",
                   "evolution.init_random=2", "problems.pool=16", "problems.per_eval=4", "problems.probe=2",
                   "problems.report=4", "archive.min_problems=4"]


def test_a_registered_operator_runs_a_search_through_the_cli(toy_operator, tmp_path):
    r = CliRunner().invoke(cli, ["search", "--help"])
    assert TOY_OPERATOR in r.output                   # the choices are the registry's, read when asked
    out = tmp_path / "run"
    args = ["search", "--task", "kk", "--operator", TOY_OPERATOR, "--out", str(out), "--quiet"]
    for setting in SEARCH_SETTINGS:
        args += ["--set", setting]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, (r.output, r.exception)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["generation"] for m in rows] == [0, 1, 2]
    assert all(m["operator_ok"] == {"random": m["evaluated"]} and m["evaluated"] > 0 for m in rows[1:])
    lineage = [json.loads(line) for line in (out / "lineage.jsonl").read_text().splitlines()]
    later = [p for p in lineage if p["generation"] >= 1]
    assert later and all(p["operator"] == f"{TOY_OPERATOR}:random" for p in later)
    assert f"operator `{TOY_OPERATOR}`" in (out / "report.md").read_text()


def test_a_duplicate_operator_name_is_refused(toy_operator):
    class Again(ToyImmigrants):
        pass

    class NewGP(VariationOperator):
        name = "gp"

    with pytest.raises(InputError, match=f"'{TOY_OPERATOR}' is already registered"):
        register_operator(Again)
    with pytest.raises(InputError, match="'gp' is already registered"):
        register_operator(NewGP)
    assert get_operator("gp") is not NewGP and get_operator(TOY_OPERATOR) is ToyImmigrants


def test_an_unknown_operator_names_the_known_ones(monkeypatch, capsys, tmp_path):
    from tailor_evo.search.engine import SearchConfig

    with pytest.raises(InputError, match="unknown search operator 'magic'") as exc:
        get_operator("magic")
    assert all(name in str(exc.value) for name in operator_names())
    with pytest.raises(InputError, match="field 'operator': must be one of gp, llm"):
        SearchConfig(task="kk", operator="magic").check()
    code, err = _main(monkeypatch, capsys, ["search", "--task", "kk", "--operator", "magic",
                                            "--out", str(tmp_path / "run")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'gp', 'llm'" in err
