"""Verifier robustness: every odd completion gets a deterministic verdict with a reason, never credit for
hedging or for text that changes what the answer says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk.text import COMMON_NAMES, RARE_NAMES
from tailor_evo.tasks.kk.verifier import name_problem

TASK = get_task("kk")
PROBLEM = TASK.generate(1, 2024, levels=[3])[0]
NAMES = PROBLEM.meta["names"]
ROLES = ["knight" if r else "knave" for r in PROBLEM.answer]
GOLD = PROBLEM.answer_text
A, B, C = NAMES


def other(role: str) -> str:
    return "knave" if role == "knight" else "knight"


def wrap(answer: str, think: str = "reasoning") -> str:
    return f"<think> {think} </think> <answer> {answer} </answer>"


def test_gold_answer_is_correct() -> None:
    v = TASK.verify(PROBLEM, wrap(GOLD))
    assert (v.correct, v.format_ok, v.reward, v.reason) == (True, True, 1.0, "ok")
    assert v.parsed == dict(zip(NAMES, PROBLEM.answer))


CASES = {
    "empty": ("", "expected exactly one <think>"),
    "only think": ("<think> hmm </think>", "expected exactly one <answer>"),
    "truncated": (wrap(GOLD)[:-5], "expected exactly one </answer>"),
    "duplicated answer tags": (wrap(GOLD) + " <answer> " + GOLD + " </answer>", "expected exactly one <answer>"),
    "duplicated think": ("<think> a </think> <think> b </think> <answer> " + GOLD + " </answer>",
                         "expected exactly one <think>"),
    "out of order": (f"<answer> {GOLD} </answer> <think> x </think>", "tags out of order"),
    "text before think": ("Sure! " + wrap(GOLD), "text before <think>"),
    "answer outside the tag": (f"<think> x </think> {GOLD} <answer> </answer>", "empty answer"),
    "empty answer": (wrap(""), "empty answer"),
    "missing person": (wrap(f"(1) {A} is a {ROLES[0]}\n(2) {B} is a {ROLES[1]}"), f"missing {C}"),
    "person twice, conflicting": (wrap(GOLD + f"\n(4) {A} is a {other(ROLES[0])}"), f"conflicting roles for {A}"),
    "person twice, same role": (wrap(GOLD + f"\n(4) {A} is a {ROLES[0]}"), f"{A} named more than once"),
    "both roles": (wrap(f"(1) {A} is a knight or a knave\n(2) {B} is a {ROLES[1]}\n(3) {C} is a {ROLES[2]}"),
                   "hedged answer"),
    "hedging word": (wrap(GOLD + "\nmaybe"), "hedged answer"),
    "question mark": (wrap(GOLD.replace(f"{C} is", f"{C} is?", 1) + f" {C} is a {ROLES[2]}?"), "hedged answer"),
    "negated": (wrap(GOLD.replace(f"{A} is a", f"{A} is not a", 1)), f"negated claim about {A}"),
    "unknown person": (wrap(GOLD + "\n(4) Zebedee is a knight"), "claim about unknown person 'zebedee'"),
    "extra role words": (wrap(GOLD + "\nall knights and knaves"), "role words for 3 people"),
    "over-long": (wrap(GOLD + " " + "so " * 400), "answer too long"),
    # added text that changes what the assertions say: never skipped over
    "negation the grammar does not know": (wrap(GOLD.replace(f"{C} is", f"it is false that {C} is", 1)),
                                           "negation outside the answer grammar ('false')"),
    "condition": (wrap(f"If {C} is a {ROLES[2]} then {A} is a {ROLES[0]}, and {B} is a {ROLES[1]}"),
                  "conditional answer ('if')"),
    "retraction": (wrap(GOLD + " -- just kidding, the reverse"), "retracted answer ('kidding')"),
    "contraction": (wrap(GOLD.replace(f"{B} is a", f"{B} isn't a", 1) + f" {B} is a {ROLES[1]}"),
                    "negation outside the answer grammar"),
    "other text": (wrap(GOLD + "\nthe end"), "unexpected text ('the')"),
    "not a string": (None, "completion is not a string"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_completions_get_a_reason_and_no_credit(name: str) -> None:
    completion, reason = CASES[name]
    v1 = TASK.verify(PROBLEM, completion)  # type: ignore[arg-type]
    v2 = TASK.verify(PROBLEM, completion)  # type: ignore[arg-type]
    assert v1 == v2, "verdicts must be deterministic"
    assert not v1.correct and v1.reward == 0.0
    assert v1.reason and v1.reason != "ok"
    assert reason in v1.reason


# what each bad completion counts as when failures are tallied: no person's name survives
KINDS = {
    "missing person": "missing 1 person", "person twice, conflicting": "conflicting roles",
    "person twice, same role": "person named more than once", "both roles": "hedged answer",
    "hedging word": "hedged answer", "negated": "negated claim", "unknown person": "claim about unknown person",
    "empty": "expected exactly one <think>, found 0", "extra role words": "5 role words for 3 people",
    "negation the grammar does not know": "negation outside the answer grammar", "condition": "conditional answer",
    "retraction": "retracted answer", "other text": "unexpected text",
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_reasons_are_tallied_without_the_names_they_mention(name: str) -> None:
    kind = TASK.reason_kind(TASK.verify(PROBLEM, CASES[name][0]).reason)
    assert kind == KINDS[name]
    assert not any(nm in kind for nm in NAMES)


def test_wrong_roles_are_tallied_by_how_many_people_are_wrong() -> None:
    flipped = GOLD.replace(f"{A} is a {ROLES[0]}", f"{A} is a {other(ROLES[0])}")
    assert TASK.reason_kind(TASK.verify(PROBLEM, wrap(flipped)).reason) == "wrong role for 1 person"
    assert TASK.reason_kind(f"wrong role for {A}, {B}") == "wrong role for 2 people"
    # the executor's reasons keep their kind, the text before the colon
    assert TASK.reason_kind(f"incomplete strategy: undecided {A}") == "incomplete strategy"


def test_unicode_and_whitespace_variants_are_accepted() -> None:
    wide = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in "<answer>")
    variants = [
        "\n\n  " + wrap(GOLD),
        wrap(GOLD.upper()),
        wrap(GOLD.replace("\n", "   \t ")),
        wrap(GOLD.replace(" is a ", "\u00a0is\u2003a ")),
        wrap("\n".join(reversed(GOLD.split("\n")))),
        wrap(GOLD) + " trailing words after the answer are ignored",
        f"<think> x </think> {wide} {GOLD} </answer>",
    ]
    for text in variants:
        v = TASK.verify(PROBLEM, text)
        assert v.correct, (text, v.reason)


def test_the_public_and_prompt_answer_forms_are_accepted() -> None:
    pairs = list(zip(NAMES, ROLES))
    forms = [
        ", ".join(f"{n} is a {r}" for n, r in pairs[:-1]) + f", and {pairs[-1][0]} is a {pairs[-1][1]}.",
        "\n".join(f"{i + 1}. {n} is a {r}" for i, (n, r) in enumerate(pairs)),
        "\n".join(f"- {n} is a {r};" for n, r in pairs),
        " and ".join(f"{n} is an {r}" for n, r in pairs),
    ]
    for text in forms:
        v = TASK.verify(PROBLEM, wrap(text))
        assert v.correct, (text, v.reason)


@pytest.mark.parametrize("names, why", [
    (["Or", "Bob"], "'Or' is a word of the answer grammar"),
    (["Knight", "Bob"], "'Knight' is a word of the answer grammar"),
    (["Ann", "IS"], "'IS' is a word of the answer grammar"),
    (["Ann", "Not"], "'Not' is a word of the answer grammar"),
    (["If", "Ann"], "'If' is a word of the answer grammar"),
    (["Ann", "ann"], "'ann' is named twice"),
    (["\ufb01ona", "Ann"], "changes under NFKC"),
    (["Ann Lee", "Bob"], "not a single word"),
])
def test_names_the_answer_grammar_cannot_express_are_named(names: list[str], why: str) -> None:
    assert why in (name_problem(names) or "")


def test_every_shipped_name_can_be_answered() -> None:
    assert name_problem(COMMON_NAMES + RARE_NAMES) is None


def test_shaped_reward_follows_the_logic_rl_scheme() -> None:
    flipped = GOLD.replace(f"{A} is a {ROLES[0]}", f"{A} is a {other(ROLES[0])}")
    assert TASK.verify(PROBLEM, wrap(GOLD), shaped=True).reward == 3.0
    assert TASK.verify(PROBLEM, wrap(flipped), shaped=True).reward == -0.5
    assert TASK.verify(PROBLEM, wrap("no idea"), shaped=True).reward == -1.0
    assert TASK.verify(PROBLEM, "no tags", shaped=True).reward == -3.0


def test_partial_credit_is_the_share_of_people_right() -> None:
    flipped = GOLD.replace(f"{A} is a {ROLES[0]}", f"{A} is a {other(ROLES[0])}")
    both = flipped.replace(f"{B} is a {ROLES[1]}", f"{B} is a {other(ROLES[1])}")
    credit = [TASK.partial_credit(PROBLEM, TASK.verify(PROBLEM, wrap(text))) for text in (GOLD, flipped, both)]
    assert credit == [1.0, 2 / 3, 1 / 3]
    assert TASK.partial_credit(PROBLEM, TASK.verify(PROBLEM, wrap("no idea"))) == 0.0
    assert TASK.partial_credit(PROBLEM, TASK.verify(PROBLEM, "no tags")) == 0.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("<>/thinkswera ()\n123") + NAMES + [" is a knight", " is a knave",
                                                                     "<think>", "</think>", "<answer>", "</answer>"]),
                max_size=40).map("".join))
def test_verifier_never_raises_and_never_credits_noise(text: str) -> None:
    v = TASK.verify(PROBLEM, text)
    assert isinstance(v.reason, str) and v.reason
    if v.correct:
        assert v.parsed == dict(zip(NAMES, PROBLEM.answer))
