"""The explicit KK rendering: three-valued evaluation is sound, and every written check in every
move's trace agrees with the evaluation of the case the trace itself wrote just before it."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import puzzle_of
from tailor_evo.tasks.kk.generator import GenOptions, sample_statement
from tailor_evo.tasks.kk.kleene import (
    CONTRADICTION,
    OK,
    OPEN,
    VALUE_WORDS,
    check_claim,
    k_and,
    k_iff,
    k_implies,
    k_not,
    k_or,
    shape,
    value3,
)
from tailor_evo.tasks.kk.logic import evaluate

TASK = get_task("kk")
GRAMMAR = TASK.grammar()
VALUES = (True, False, None)


def completions(view: dict[int, bool], n: int):
    free = [i for i in range(n) if i not in view]
    for bits in itertools.product((True, False), repeat=len(free)):
        yield [{**view, **dict(zip(free, bits))}[i] for i in range(n)]


def test_connectives_follow_kleene_truth_tables() -> None:
    """Unknown stays unknown unless the known operands decide the result on their own."""
    for a, b in itertools.product(VALUES, repeat=2):
        for fn, classic in ((lambda x, y: k_and([x, y]), lambda x, y: x and y),
                            (lambda x, y: k_or([x, y]), lambda x, y: x or y),
                            (k_implies, lambda x, y: (not x) or y), (k_iff, lambda x, y: x == y)):
            outcomes = {classic(x, y) for x in ([a] if a is not None else [True, False])
                        for y in ([b] if b is not None else [True, False])}
            expected = outcomes.pop() if len(outcomes) == 1 else None
            assert fn(a, b) == expected, (a, b)
        assert k_not(a) == (None if a is None else not a)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 5), width=st.integers(2, 3), depth=st.integers(1, 3),
       mask=st.integers(0, 2**5 - 1), roles=st.integers(0, 2**5 - 1))
def test_a_definite_value_holds_in_every_completion(seed, n, width, depth, mask, roles) -> None:
    """Soundness: what the trace writes as T or F under a partial case is true of every full case
    extending it, and with everyone assigned the value is the ordinary one."""
    tree = sample_statement(random.Random(seed), n, 0, GenOptions(depth=depth, width=width))
    view = {i: bool(roles >> i & 1) for i in range(n) if mask >> i & 1}
    v = value3(tree, view)
    full = {evaluate(tree, c) for c in completions(view, n)}
    if v is not None:
        assert full == {v}
    if len(view) == n:
        assert v is not None


# ---- reading a trace back -------------------------------------------------------------------
CASE = re.compile(r"Case: ([^.]*)\.")
CHECK = re.compile(r"(\w+) said(?: \(([a-z ]+)\))?: (.*?)\. (\w+) (knight|knave), claim ([TFU]), so "
                   r"(ok|contradiction|open)\.")
WORD_VALUE = {w: v for v, w in VALUE_WORDS.items()}


def read_case(text: str, names: list[str]) -> dict[int, bool]:
    view = {}
    for part in text.split(", "):
        name, role = part.rsplit(" ", 1)
        if role != VALUE_WORDS[None]:
            view[names.index(name)] = role == "knight"
    return view


def written_checks(text: str, names: list[str], last_case: dict[int, bool] | None):
    """Each written check of a step with the case it was made in (the step's own ``Case:`` or,
    for the verification steps that follow the first one, the last case written)."""
    cases = list(CASE.finditer(text))
    for m in CHECK.finditer(text):
        before = [c for c in cases if c.start() < m.start()]
        view = read_case(before[-1].group(1), names) if before else last_case
        assert view is not None, f"a check without a written case: {text}"
        yield m, view


def assert_trace_agrees(problem, traj) -> int:
    names = list(problem.meta["names"])
    statements = puzzle_of(problem).statements
    seen, last_case, pending = 0, None, None
    for step in traj.steps:
        if pending is not None:   # a check that ended in a contradiction: the next step names it
            assert step.kind in ("conflict", "eliminate", "propagate", "enumerate", "backtrack") \
                or pending == "enumerate", (step.kind, step.text)
            pending = None
        last_outcome = None
        for m, view in written_checks(step.text, names, last_case):
            speaker = names.index(m.group(1))
            assert m.group(4) == m.group(1) and speaker in view
            assert m.group(2) == shape(statements[speaker]), "the connective named first is the claim's own"
            again = check_claim(statements[speaker], speaker, view, names, shaped=True)
            assert again.text == m.group(0), (again.text, m.group(0))
            value = WORD_VALUE[m.group(6)]
            outcome = OPEN if value is None else (OK if value == (m.group(5) == "knight") else CONTRADICTION)
            assert outcome == m.group(7)
            last_outcome = outcome
            seen += 1
        cases = CASE.findall(step.text)
        if cases:
            last_case = read_case(cases[-1], names)
        if last_outcome == CONTRADICTION and step.kind in ("assume", "check"):
            pending = step.kind
        if step.kind == "conflict":
            assert last_outcome in (None, CONTRADICTION)
    return seen


def test_every_move_writes_checks_that_agree_with_their_evaluation() -> None:
    rng = random.Random(3)
    problems = TASK.generate(30, 41, levels=[2, 3, 4, 5])
    checked, kinds = 0, set()
    for _ in range(150):
        program = GRAMMAR.random_program(rng, max_depth=rng.randint(3, 8))
        for problem in rng.sample(problems, 2):
            traj = TASK.execute(program, problem, random.Random(0), max_steps=300)
            checked += assert_trace_agrees(problem, traj)
            kinds |= {s.kind for s in traj.steps if CHECK.search(s.text)}
    assert checked > 500
    assert {"assume", "propagate", "check", "enumerate", "verify"} <= kinds


def test_a_contradicted_assumption_is_abandoned() -> None:
    """In a case split, every assumption whose written check ends in a contradiction is followed by
    a conflict step, and the final assignment passes every written check."""
    program = {"op": "primitive", "args": [{"op": "style_classic"}, {"op": "then", "args": [
        {"op": "split", "args": [{"op": "order_given"}, {"op": "knight_first"}, {"op": "check_claims"}]},
        {"op": "verify_conclude"}]}]}
    for problem in TASK.generate(20, 5, levels=[3, 4]):
        traj = TASK.execute(program, problem, random.Random(0))
        assert traj.finished
        for a, b in zip(traj.steps, traj.steps[1:]):
            if a.kind == "assume" and a.text.endswith("so contradiction."):
                assert b.kind == "conflict"
        verify = [s for s in traj.steps if s.kind == "verify"]
        assert len(verify) == problem.difficulty and all(s.text.endswith("so ok.") for s in verify)



@pytest.mark.parametrize("order", ["order_given", "order_self_first", "order_mentioned", "order_most_referenced",
                                   "order_shortest"])
def test_enumeration_headers_count_in_binary_as_written(order: str) -> None:
    """Each next case header is the previous one plus one, read as a binary number over the header as
    written (knight = 0, knave = 1), whatever the order move: the successor never needs a carry over
    positions the header does not show. The classic rendering still counts in the move's ranking."""
    def program(rank: str) -> dict:
        return {"op": "primitive", "args": [{"op": "style_classic"}, {"op": "then", "args": [
            {"op": "enumerate", "args": [{"op": rank}]}, {"op": "conclude"}]}]}
    classic = get_task("kk").use_rendering("classic")
    ranked = 0
    for problem in TASK.generate(40, 9, levels=[3, 4]):
        names = problem.meta["names"]
        traj = TASK.execute(program(order), problem, random.Random(0))
        assert traj.finished
        headers = [[part.rsplit(" ", 1) for part in m.group(1).split(", ")] for m in CASE.finditer(traj.completion)]
        assert headers and all([n for n, _ in h] == list(names) for h in headers)
        counts = [int("".join("1" if r == "knave" else "0" for _, r in h), 2) for h in headers]
        assert counts == list(range(len(counts))), (order, counts)
        assert traj.completion == TASK.execute(program("order_given"), problem, random.Random(0)).completion
        ranked += (classic.execute(program(order), problem, random.Random(0)).completion
                   != classic.execute(program("order_given"), problem, random.Random(0)).completion)
    if order != "order_given":
        assert ranked, "the classic rendering should still count in the order move's ranking"


def test_a_check_names_the_claims_connective_before_its_atoms_as_its_combination_line_writes_it() -> None:
    names = ["Ann", "Bo"]
    view = {0: True, 1: False}
    cases = {("knight", 1): "atom", ("not", ("knave", 1)): "not", ("or", ("knight", 1), ("knave", 0)): "or",
             ("and", ("knight", 1), ("knave", 0)): "and", ("iff", ("knight", 1), ("knave", 0)): "iff",
             ("implies", ("knight", 1), ("knave", 0)): "if then"}
    for tree, word in cases.items():
        assert shape(tree) == word
        text = check_claim(tree, 0, view, names, shaped=True).text
        assert text.startswith(f"Ann said ({word}): ")
        combination = re.search(r"; (if [TFU] then [TFU]|[TFU] (?:and|or|iff) [TFU]), [TFU]\.", text)
        if word in ("atom", "not"):
            assert combination is None
        else:
            assert combination and word.split()[0] in combination.group(1)
        # without the connective the check is the drills' form, word for word
        assert check_claim(tree, 0, view, names).text == text.replace(f" ({word})", "", 1)
