"""KK moves and executor: random valid programs give correct, checkable trajectories; seeds behave as documented."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import puzzle_of
from tailor_evo.tasks.kk import text as T
from tailor_evo.tasks.kk.facts import check_fact
from tailor_evo.tasks.kk.kleene import shape
from tailor_evo.tasks.kk.moves import STEP_KINDS

TASK = get_task("kk")
CLASSIC = get_task("kk").use_rendering("classic")
RENDERED = {"explicit": TASK, "quoted": get_task("kk").use_rendering("quoted"), "classic": CLASSIC}
GRAMMAR = TASK.grammar()
SEEDS = Path(__file__).resolve().parents[1] / "populations" / "seeds" / "kk"
# Kinds whose steps claim something and so must carry a fact (assumptions and plans claim nothing).
CLAIMING = {"restate", "propagate", "check", "conflict", "backtrack", "eliminate", "enumerate", "verify",
            "conclude", "backward", "choose"}


def seed_programs(name: str) -> dict[str, dict]:
    data = json.loads((SEEDS / f"{name}.json").read_text(encoding="utf-8"))
    return {p["name"]: p["program"] for p in data["primitives"]}


def assert_sound(problem, traj) -> None:
    pz = puzzle_of(problem)
    for step in traj.steps:
        assert step.kind in STEP_KINDS
        assert step.text and step.state and step.key.startswith("A:")
        if step.kind in CLAIMING and not (step.kind == "check" and step.fact is None):
            assert step.fact is not None, step
        if step.fact is not None:
            assert check_fact(pz, problem.answer, step.fact), (step.text, step.fact)
    if traj.finished:
        assert traj.answer == problem.answer
        verdict = TASK.verify(problem, traj.completion)
        assert verdict.correct, verdict.reason
    else:
        assert traj.answer is None and traj.reason != "ok"
        assert not TASK.verify(problem, traj.completion).correct


def test_grammar_is_completable_and_names_are_unique() -> None:
    names = [m.name for m in GRAMMAR.moves]
    assert len(names) == len(set(names))
    used = {a for m in GRAMMAR.moves for a in m.args} | {GRAMMAR.root}
    for tp in used:
        assert any(m.ret == tp and not m.args for m in GRAMMAR.moves) or tp == GRAMMAR.root, tp
    root_moves = [m for m in GRAMMAR.moves if m.ret == GRAMMAR.root]
    assert root_moves and all("Style" in m.args for m in root_moves)


@pytest.mark.parametrize("rendering", sorted(RENDERED))
def test_random_programs_on_random_problems_are_sound(rendering: str) -> None:
    task = RENDERED[rendering]
    rng = random.Random(1)
    problems = TASK.generate(42, 17, levels=[2, 3, 4, 5, 6, 7, 8])
    finished = 0
    for _ in range(250):
        program = GRAMMAR.random_program(rng, max_depth=rng.randint(3, 8))
        assert GRAMMAR.validate(program) == []
        for problem in rng.sample(problems, 3):
            traj = task.execute(program, problem, random.Random(0), max_steps=300)
            assert_sound(problem, traj)
            finished += traj.finished
    assert finished > 50, "too few random programs finish to make this test meaningful"


@pytest.mark.parametrize("rendering", sorted(RENDERED))
def test_every_phase_is_sound_when_followed_by_a_complete_search(rendering: str) -> None:
    task = RENDERED[rendering]
    phases = [{"op": "propagate", "args": []}] + [
        {"op": op, "args": [{"op": order}]}
        for op in ("restate_claims", "eliminate", "refute", "backward", "plan", "enumerate")
        for order in ("order_given", "order_mentioned", "order_most_referenced", "order_self_first",
                      "order_shortest")]
    problems = TASK.generate(14, 23, levels=[3, 5, 7])
    for style in ("style_classic", "style_terse", "style_formal", "style_chatty"):
        for phase in phases:
            for check in ("check_claims", "check_forward"):
                program = {"op": "primitive", "args": [{"op": style}, {"op": "then", "args": [phase, {
                    "op": "then", "args": [{"op": "split", "args": [{"op": "order_shortest"}, {"op": "knave_first"},
                                                                    {"op": check}]},
                                           {"op": "verify_conclude"}]}]}]}
                for problem in problems[:4] if style != "style_classic" else problems:
                    traj = task.execute(program, problem, random.Random(0))
                    assert traj.finished, (phase, traj.reason)
                    assert_sound(problem, traj)


def test_invalid_programs_are_rejected_with_a_reason() -> None:
    problem = TASK.generate(1, 0, levels=[3])[0]
    bad = [
        ({"op": "conclude"}, "returns Strategy, expected Primitive"),
        ({"op": "primitive", "args": [{"op": "style_terse"}]}, "takes 2 argument(s)"),
        ({"op": "primitive", "args": [{"op": "style_terse"}, {"op": "fly"}]}, "unknown move 'fly'"),
        ({"op": "primitive", "args": [{"op": "knight_first"}, {"op": "conclude"}]}, "expected Style"),
        ({"op": "primitive", "args": [{"op": "style_terse"}, {"op": "conclude"}], "x": 1}, "unexpected keys"),
        ("split", "expected an object"),
    ]
    for program, reason in bad:
        errors = GRAMMAR.validate(program)
        assert errors and any(reason in e for e in errors), (program, errors)
        traj = TASK.execute(program, problem, random.Random(0))  # type: ignore[arg-type]
        assert not traj.finished and traj.reason.startswith("invalid program") and reason in traj.reason


def test_programs_round_trip_through_json() -> None:
    rng = random.Random(5)
    problem = TASK.generate(1, 1, levels=[4])[0]
    for _ in range(50):
        program = GRAMMAR.random_program(rng)
        again = json.loads(json.dumps(program))
        assert again == program and GRAMMAR.validate(again) == []
        a = TASK.execute(program, problem, random.Random(0))
        b = TASK.execute(again, problem, random.Random(0))
        assert a.to_dict() == b.to_dict()
        assert GRAMMAR.describe(again) == GRAMMAR.describe(program)


def test_step_budget_gives_an_unfinished_trajectory() -> None:
    program = seed_programs("four-behaviour")["verification"]
    problem = TASK.generate(1, 3, levels=[8])[0]
    traj = TASK.execute(program, problem, random.Random(0), max_steps=5)
    assert not traj.finished and "budget" in traj.reason and len(traj.steps) == 5
    full = TASK.execute(program, problem, random.Random(0))
    assert full.finished and [s.key for s in full.steps[:5]] == [s.key for s in traj.steps]


def test_incomplete_strategy_is_unfinished() -> None:
    program = {"op": "primitive", "args": [{"op": "style_terse"}, {"op": "conclude"}]}
    traj = TASK.execute(program, TASK.generate(1, 0, levels=[3])[0], random.Random(0))
    assert not traj.finished and "undecided" in traj.reason


def test_rule_based_seed_reproduces_the_reference_cot() -> None:
    (program,) = seed_programs("rule-based").values()
    for problem in TASK.generate(56, 31, levels=[2, 3, 4, 5, 6, 7, 8]):
        traj = CLASSIC.execute(program, problem, random.Random(0))
        assert traj.finished and traj.answer == problem.answer
        assert [s.text for s in traj.steps[:-1]] == TASK.reference_steps(problem)
        assert traj.completion == TASK.reference_completion(problem)


def test_rule_based_seed_reproduces_public_cot() -> None:
    path = Path("/work/shared/data/kk-official/test-sample.jsonl")
    if not path.exists():
        pytest.skip(f"public KK sample not available at {path}")
    (program,) = seed_programs("rule-based").values()
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        problem = TASK.from_record(rec)
        traj = CLASSIC.execute(program, problem, random.Random(0))
        assert [s.text for s in traj.steps[:-1]] == rec["cot_repeat_steps"]


def test_four_behaviour_seeds_show_their_behaviour() -> None:
    seeds = seed_programs("four-behaviour")
    assert set(seeds) == {"verification", "backtracking", "subgoal-setting", "backward-chaining"}
    expected = {"verification": "verify", "backtracking": "backtrack", "subgoal-setting": "subgoal",
                "backward-chaining": "backward"}
    problems = TASK.generate(30, 8, levels=[4, 5, 6])
    for name, program in seeds.items():
        kinds = set()
        for problem in problems:
            traj = TASK.execute(program, problem, random.Random(0))
            assert traj.finished, (name, traj.reason)
            assert_sound(problem, traj)
            kinds |= {s.kind for s in traj.steps}
        assert expected[name] in kinds, name


def test_styles_change_words_not_states() -> None:
    problem = TASK.generate(1, 12, levels=[5])[0]
    base = seed_programs("four-behaviour")["backward-chaining"]
    runs = []
    for style in ("style_classic", "style_terse", "style_formal", "style_chatty"):
        program = {"op": "primitive", "args": [{"op": style}, base["args"][1]]}
        runs.append(TASK.execute(program, problem, random.Random(0)))
    assert len({tuple(s.key for s in r.steps) for r in runs}) == 1
    assert len({r.completion for r in runs}) == 4


def test_seeds_visit_different_states() -> None:
    """Jaccard overlap of (problem, state key) sets on 64 problems: rule-based vs four-behaviour."""
    problems = TASK.generate(64, 99)

    def keys(program: dict) -> set:
        out = set()
        for i, p in enumerate(problems):
            out |= {(i, s.key) for s in TASK.execute(program, p, random.Random(0)).steps}
        return out

    (rule,) = seed_programs("rule-based").values()
    rule_keys = keys(rule)
    four = set().union(*(keys(p) for p in seed_programs("four-behaviour").values()))
    jaccard = len(rule_keys & four) / len(rule_keys | four)
    assert jaccard < 0.3, jaccard


def test_behaviour_kinds_are_emitted_kinds() -> None:
    kinds = TASK.behaviour_kinds()
    assert kinds and set(kinds) <= set(STEP_KINDS) and len(kinds) == len(set(kinds))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=120, deadline=None)
@given(program_seed=st.integers(0, 10**9), problem_seed=st.integers(0, 10**6), people=st.integers(2, 8),
       depth=st.sampled_from([2, 2, 3]), max_depth=st.integers(3, 9))
def test_any_program_on_any_puzzle_is_sound(program_seed: int, problem_seed: int, people: int, depth: int,
                                            max_depth: int) -> None:
    program = GRAMMAR.random_program(random.Random(program_seed), max_depth=max_depth)
    (problem,) = TASK.generate(1, problem_seed, levels=[people], depth=depth, width=depth)
    assert_sound(problem, TASK.execute(program, problem, random.Random(0), max_steps=400))


def test_the_quoted_rendering_is_explicit_plus_each_claim_as_the_question_words_it() -> None:
    """Every written check of ``quoted`` copies its speaker's clause, verbatim from the question,
    right after "X said (connective):"; with those quotes removed the trace is the explicit one word for
    word."""
    quoted = RENDERED["quoted"]
    rng = random.Random(5)
    problems = TASK.generate(30, 23, levels=[2, 3, 4, 5])
    quotes = 0
    for _ in range(120):
        program = GRAMMAR.random_program(rng, max_depth=rng.randint(3, 8))
        for problem in rng.sample(problems, 2):
            names = problem.meta["names"]
            clauses = {n: T.clause(tree, names) for n, tree in zip(names, problem.meta["statements"])}
            plain = TASK.execute(program, problem, random.Random(0)).completion
            text = quoted.execute(program, problem, random.Random(0)).completion
            for (name, clause), tree in zip(clauses.items(), problem.meta["statements"]):
                said = f"{name} said ({shape(tree)}): "
                quotes += text.count(f"{said}{clause}. ")
                assert clause in problem.question
                text = text.replace(f"{said}{clause}. ", said)
            assert text == plain
    assert quotes > 200
