"""Property and fuzz tests of the three verifiers: adversarial answers made from correct ones.

An answer that means something else, or says more than the task's answer grammar allows,
must never score right; the gold answer in any allowed form must. The mutations and what
each means are in ``tests/answer_mutations.py``; ``benchmarks/answer_fuzz.py`` prints how
many of each were drawn and how they were judged.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings

from tailor_evo.tasks import get_task
from tests.answer_mutations import CASES, SAME, Case

EXAMPLES = 150            # drawn per task, over all its mutations
PER_KIND = 5              # drawn per task and mutation, so that none is left out


def judge(case: Case) -> str:
    """Score one case and assert what its meaning requires; returns the outcome for the tally."""
    task = get_task(case.task)
    verdict = task.verify(case.problem, case.completion)
    assert not verdict.reason.startswith("verifier error"), (case, verdict)
    assert verdict.format_ok, (case.kind, case.completion, verdict.reason)     # every mutation keeps the tags
    if case.label == SAME:
        assert verdict.correct, (case.kind, case.completion, verdict.reason)
        if case.task == "kk":
            assert verdict.parsed == dict(zip(case.problem.meta["names"], case.problem.answer))
    else:
        assert not verdict.correct, (case.kind, case.label, case.completion)
        assert verdict.reward == 0.0
    return "scored right" if verdict.correct else task.reason_kind(verdict.reason)


@pytest.mark.parametrize("task_name", sorted(CASES))
def test_adversarial_answers_never_score_and_allowed_forms_do(task_name: str) -> None:
    strategy, _ = CASES[task_name]

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(strategy())
    def check(case: Case) -> None:
        event(f"{case.kind} ({case.label}): {judge(case)}")

    check()


@pytest.mark.parametrize("task_name, kind", [(t, k) for t, (_, kinds) in sorted(CASES.items()) for k in kinds])
def test_each_mutation_is_judged_as_its_meaning_requires(task_name: str, kind: str) -> None:
    strategy, _ = CASES[task_name]

    @settings(max_examples=PER_KIND, deadline=None)
    @given(strategy(kinds=(kind,)))
    def check(case: Case) -> None:
        judge(case)

    check()


def test_out_of_range_numbers_keep_the_format_and_say_so() -> None:
    """A number beyond any answer is judged as a well-formed wrong answer, never as an error."""
    igsm, countdown = get_task("igsm"), get_task("countdown")
    p = igsm.generate(1, 0)[0]
    v = igsm.verify(p, f"<think> x </think> <answer> {'9' * 10_001} </answer>")
    assert (v.correct, v.format_ok, v.reason) == (False, True, "answer out of range 0..22")
    q = countdown.generate(1, 0)[0]
    v = countdown.verify(q, f"<think> x </think> <answer> {q.answer_text} + 99999999 - 99999999 </answer>")
    assert (v.correct, v.format_ok, v.reason) == (False, True, "number out of range")
