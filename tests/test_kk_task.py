"""Knights and Knaves: generator, solver, text, records, against an independent brute force and public data."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor_evo.errors import InputError
from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import text as T

OFFICIAL = Path("/work/shared/data/kk-official/test-sample.jsonl")
TASK = get_task("kk")


def holds(tree: list, roles: tuple[bool, ...]) -> bool:
    """Independent evaluator of the JSON statement trees stored in Problem.meta."""
    op, args = tree[0], tree[1:]
    if op == "knight":
        return roles[args[0]]
    if op == "knave":
        return not roles[args[0]]
    if op == "not":
        return not holds(args[0], roles)
    if op == "and":
        return all(holds(a, roles) for a in args)
    if op == "or":
        return any(holds(a, roles) for a in args)
    if op == "implies":
        return (not holds(args[0], roles)) or holds(args[1], roles)
    if op == "iff":
        return holds(args[0], roles) == holds(args[1], roles)
    raise AssertionError(f"unknown operator {op}")


def consistent_assignments(trees: list) -> list[tuple[bool, ...]]:
    n = len(trees)
    return [roles for roles in itertools.product((True, False), repeat=n)
            if all(holds(trees[i], roles) == roles[i] for i in range(n))]


def official_records() -> list[dict]:
    if not OFFICIAL.exists():
        pytest.skip(f"public KK sample not available at {OFFICIAL}")
    return [json.loads(line) for line in OFFICIAL.read_text(encoding="utf-8").splitlines() if line.strip()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), people=st.integers(2, 8))
def test_generated_puzzle_has_exactly_one_solution(seed: int, people: int) -> None:
    (p,) = TASK.generate(1, seed, levels=[people])
    sols = consistent_assignments(p.meta["statements"])
    assert len(sols) == 1
    assert list(sols[0]) == p.answer == TASK.solve(p)
    assert p.difficulty == people == len(p.meta["names"])
    for i, tree in enumerate(p.meta["statements"]):
        assert holds(tree, tuple(p.answer)) == p.answer[i]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), people=st.integers(2, 6), depth=st.integers(3, 4), width=st.integers(2, 3))
def test_deeper_statements_stay_unique(seed: int, people: int, depth: int, width: int) -> None:
    (p,) = TASK.generate(1, seed, levels=[people], depth=depth, width=width)
    assert len(consistent_assignments(p.meta["statements"])) == 1
    assert TASK.verify(p, TASK.reference_completion(p)).correct


def _max_depth(tree: list) -> int:
    return 1 if tree[0] in ("knight", "knave") else 1 + max(_max_depth(c) for c in tree[1:])


def test_default_grammar_matches_public_sampling() -> None:
    problems = TASK.generate(70, 5, levels=[2, 3, 4, 5, 6, 7, 8])
    for p in problems:
        for i, tree in enumerate(p.meta["statements"]):
            assert _max_depth(tree) <= 2
            assert tree != ["knave", i], "the speaker-is-a-knave leaf must be redrawn"
            if tree[0] in ("and", "or", "implies", "iff"):
                assert len(tree) == 3 and tree[1] != tree[2]


def test_generation_is_deterministic_and_spread_over_levels() -> None:
    a = TASK.generate(12, 7, levels=[3, 5, 7])
    b = TASK.generate(12, 7, levels=[3, 5, 7])
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.difficulty for p in a] == [3, 5, 7] * 4
    assert a[0].question != TASK.generate(1, 8, levels=[3])[0].question
    assert len({p.id for p in a}) == 12


def test_names_are_distinct_words_not_substrings() -> None:
    for p in TASK.generate(40, 11, levels=[8]):
        names = [x.lower() for x in p.meta["names"]]
        assert len(set(names)) == len(names)
        assert all(x.isalpha() for x in names)
        assert not any(a != b and a in b for a in names for b in names)


def test_bad_generation_options_are_input_errors() -> None:
    with pytest.raises(InputError, match="levels"):
        TASK.generate(1, 0, levels=[9])
    with pytest.raises(InputError, match="unknown KK option"):
        TASK.generate(1, 0, colour="red")
    with pytest.raises(InputError, match="depth"):
        TASK.generate(1, 0, depth=0)
    with pytest.raises(InputError, match="width must be an integer"):
        TASK.generate(1, 0, width="x")
    with pytest.raises(InputError, match="names"):
        TASK.generate(1, 0, names=["x"])


def test_reference_completion_scores_and_any_flip_fails() -> None:
    for p in TASK.generate(21, 3, levels=[2, 3, 4, 5, 6, 7, 8]):
        assert TASK.verify(p, TASK.reference_completion(p)).correct
        for i in range(p.difficulty):
            flipped = list(p.answer)
            flipped[i] = not flipped[i]
            text = TASK.format_response("x", T.solution_text_format(p.meta["names"], flipped))
            v = TASK.verify(p, text)
            assert not v.correct and v.reward == 0.0 and "wrong role" in v.reason


def test_question_text_matches_public_quizzes() -> None:
    for rec in official_records():
        p = TASK.from_record(rec)
        templates = p.meta["templates"]
        assert templates is not None, rec["index"]
        statements = [tuple(_as_tuple(s)) for s in p.meta["statements"]]
        assert T.quiz_text(statements, rec["names"], templates) == rec["quiz"]


def _as_tuple(tree: list):
    if tree[0] in ("knight", "knave"):
        return (tree[0], tree[1])
    return (tree[0],) + tuple(_as_tuple(c) for c in tree[1:])


def test_solver_cot_and_answer_formats_match_public_records() -> None:
    for rec in official_records():
        p = TASK.from_record(rec)
        assert TASK.solve(p) == rec["solution"]
        assert TASK.reference_steps(p) == rec["cot_repeat_steps"]
        assert TASK.reference_solution(p) == " ".join([rec["cot_head"], *rec["cot_repeat_steps"], rec["cot_foot"]])
        assert p.answer_text == rec["solution_text_format"]
        assert T.solution_text(rec["names"], rec["solution"]) == rec["solution_text"]
        assert TASK.verify(p, TASK.format_response("...", rec["solution_text_format"])).correct
        out = TASK.to_record(p)
        for key in ("quiz", "names", "solution", "solution_text", "solution_text_format", "cot_head",
                    "cot_repeat_steps", "cot_foot", "statements", "index", "knight_knave"):
            assert out[key] == rec[key], key


def test_record_round_trip_through_json() -> None:
    for p in TASK.generate(10, 4, levels=[3, 8]):
        rec = json.loads(json.dumps(TASK.to_record(p)))
        q = TASK.from_record(rec)
        assert q.to_dict() == p.to_dict()
        r = TASK.from_record({k: rec[k] for k in ("quiz", "names", "solution", "statements", "index")})
        assert (r.question, r.answer, r.answer_text, r.meta["statements"]) == \
               (p.question, p.answer, p.answer_text, p.meta["statements"])


@pytest.mark.parametrize("record, field", [
    ({"quiz": "q", "names": ["Ann", "Bob"]}, "statements"),
    ({"quiz": "q", "names": ["Ann", "Bob"], "statements": "(('lying', 5), ('telling-truth', 0))"}, "statements"),
    ({"quiz": "q", "names": ["Ann", "Bob"], "statements": "__import__('os')"}, "statements"),
    ({"quiz": "q", "names": ["Ann Lee", "Bob"], "statements": "()"}, "names"),
    ({"quiz": "q", "names": ["Ann", "Bob"], "statements": "(('telling-truth', 1), ('telling-truth', 0))",
      "solution": [True]}, "solution"),
])
def test_bad_public_records_name_the_field(record: dict, field: str) -> None:
    with pytest.raises(InputError) as exc:
        TASK.from_record(record, source="f.jsonl", line=3)
    assert exc.value.field == field and exc.value.line == 3 and exc.value.file == "f.jsonl"


def test_bad_own_record_names_the_field() -> None:
    rec = TASK.to_record(TASK.generate(1, 0, levels=[3])[0])
    del rec["quiz"]
    rec["meta"]["statements"][1] = ["xor", ["knight", 0]]
    with pytest.raises(InputError) as exc:
        TASK.from_record(rec, source="g.jsonl", line=2)
    assert exc.value.field == "meta.statements" and "xor" in str(exc.value)


# ---- gold answers checked where records are read ------------------------------------------
# Three people whose statements (about themselves) hold under every assignment: 8 solutions.
EIGHT = "(('telling-truth', 0), ('telling-truth', 1), ('telling-truth', 2))"
NONE = "(('lying', 0), ('telling-truth', 0), ('telling-truth', 0))"


def _own_record() -> dict:
    return json.loads(json.dumps(TASK.to_record(TASK.generate(1, 5, levels=[3])[0])))


def _flipped(roles: list[bool]) -> list[bool]:
    return [not roles[0]] + roles[1:]


@pytest.mark.parametrize("change, field, message", [
    (lambda r: r.update(answer=_flipped(r["answer"])), "answer", "is not the statements' unique solution"),
    (lambda r: r.update(answer=None), "answer", "None is not the statements' unique solution"),
    (lambda r: r.update(answer_text=T.solution_text_format(r["meta"]["names"], _flipped(r["answer"]))),
     "answer_text", "does not state the statements' unique solution (wrong role for"),
    (lambda r: r.update(answer_text=r["answer_text"] + " -- just kidding, the reverse"), "answer_text",
     "retracted answer"),
    (lambda r: r.update(difficulty=4), "difficulty", "the puzzle has 3 people"),
    (lambda r: r["meta"].update(statements=[["knight", 0], ["knight", 1], ["knight", 2]]), "meta.statements",
     "8 solutions"),
    (lambda r: r["meta"].update(statements=[["knave", 0], ["knight", 0], ["knight", 0]]), "meta.statements",
     "0 solutions"),
    (lambda r: r["meta"].update(names=["Or", "Bob", "Cy"]), "meta.names", "'Or' is a word of the answer grammar"),
])
def test_own_records_whose_gold_answer_is_not_forced_are_refused(change, field: str, message: str) -> None:
    rec = _own_record()
    TASK.from_record(rec)                                   # the record as written loads
    change(rec)
    with pytest.raises(InputError) as exc:
        TASK.from_record(rec, source="own.jsonl", line=4)
    assert (exc.value.file, exc.value.line, exc.value.field) == ("own.jsonl", 4, field)
    assert message in str(exc.value)


@pytest.mark.parametrize("change, field, message", [
    ({"statements": NONE}, "statements", "the statements have 0 solutions; a puzzle needs exactly one"),
    ({"statements": EIGHT}, "statements", "the statements have 8 solutions; a puzzle needs exactly one"),
    ({"statements": EIGHT, "solution": [True, True, True]}, "statements", "8 solutions"),
    ({"solution": "flip"}, "solution", "is not the statements' unique solution"),
    ({"solution_text": "flip"}, "solution_text", "wrong role for"),
    ({"solution_text_format": "flip"}, "solution_text_format", "wrong role for"),
    ({"names": ["Knight", "Bob", "Cy"]}, "names", "'Knight' is a word of the answer grammar"),
    ({"names": ["Ann", "Bob", "ann"]}, "names", "'ann' is named twice"),
])
def test_public_records_whose_gold_answer_is_not_forced_are_refused(change: dict, field: str, message: str) -> None:
    rec = official_records()[0]
    TASK.from_record(rec)
    roles = _flipped(rec["solution"])
    flips = {"solution": roles, "solution_text": T.solution_text(rec["names"], roles),
             "solution_text_format": T.solution_text_format(rec["names"], roles)}
    rec.update({k: flips[k] if v == "flip" else v for k, v in change.items()})
    with pytest.raises(InputError) as exc:
        TASK.from_record(rec, source="public.jsonl", line=9)
    assert (exc.value.file, exc.value.line, exc.value.field) == ("public.jsonl", 9, field)
    assert message in str(exc.value)


def test_public_records_without_a_solution_field_take_the_unique_one() -> None:
    for rec in official_records()[:20]:
        bare = {k: rec[k] for k in ("quiz", "names", "statements")}
        assert TASK.from_record(bare).answer == rec["solution"]


def test_instruction_names_the_response_format() -> None:
    text = TASK.instruction()
    for tag in ("<think>", "</think>", "<answer>", "</answer>", "(1)"):
        assert tag in text


def test_abstract_step_names_people_by_their_introduction_order():
    task = get_task("kk")
    question = ("A very special island is inhabited only by knights and knaves. Knights always tell the truth, "
                "and knaves always lie. You meet 3 inhabitants: Emma, Jacob, and Aubrey. Emma said ...")
    step = "Assume Aubrey is a knight; then  Emma lies about Jacob, and Rosa is invented."
    assert task.abstract_step(question, step) == "assume p3 is a knight; then p1 lies about p2, and p? is invented."
    # two puzzles that make the same move about different people abstract to the same step
    other = question.replace("Emma, Jacob, and Aubrey", "Mei, Owen, and Lily")
    assert task.abstract_step(other, "Assume Lily is a knight") == task.abstract_step(question, "Assume Aubrey is a knight")


def test_intro_names_reads_the_public_two_person_form():
    from tailor_evo.tasks.kk.text import intro_names

    assert intro_names("You meet 2 inhabitants: Zed, and Quinn. Zed says") == ["Zed", "Quinn"]
    assert intro_names("no introduction here") == []


@pytest.mark.parametrize("task_name", ["kk", "igsm"])
@pytest.mark.parametrize("key,value", [("id", 7), ("question", 5), ("answer_text", 3), ("difficulty", "3"),
                                        ("difficulty", True), ("meta", [1]), ("task", 1)])
def test_a_wrongly_typed_field_of_our_records_is_named(task_name, key, value) -> None:
    from tailor_evo.errors import InputError
    from tailor_evo.tasks import get_task

    task = get_task(task_name)
    record = task.to_record(task.generate(1, 0, levels=[3])[0])
    record[key] = value
    with pytest.raises(InputError) as err:
        task.from_record(record, source="r.jsonl", line=1)
    assert err.value.field == key
