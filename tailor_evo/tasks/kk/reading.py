"""Reading exercises on a Knights-and-Knaves puzzle, for pretraining a base model.

A base model must be able to *read* a puzzle (copy its people's names into the
answer format, look up what a person said, list the inhabitants in order) before
a warm start can teach it to *reason*. These exercises teach exactly that and
nothing more: no exercise states the puzzle's solution or any reasoning step.
Role lists that appear (a guessed answer, a supposition to recall) are drawn
uniformly at random, independently of the puzzle. That is what makes them carry
no information about the solution: a guess matches the gold assignment exactly as
often as chance (1 in 2^people), and predicting the roles better than chance is
impossible, so the language-modelling loss never rewards solving. (Excluding the
gold assignment would do the opposite: a model that solves could then rule it out
and lower its loss.)
"""

from __future__ import annotations

import random
from typing import Callable

import tailor_evo.tasks.kk.text as T
from tailor_evo.tasks.base import Problem


def _random_roles(rng: random.Random, n: int) -> list[bool]:
    """A uniformly random role list, drawn without looking at the puzzle."""
    return [rng.random() < 0.5 for _ in range(n)]


def _answer_format(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    roles = _random_roles(rng, len(names))
    return f"A guessed answer: <answer> {T.solution_text_format(names, roles)} </answer>"


def _listing(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    return "The inhabitants in order: " + " ".join(f"({i + 1}) {n}" for i, n in enumerate(names)) + "."


def _by_index(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    i = rng.randrange(len(names))
    return f"Inhabitant {i + 1} is {names[i]}."


def _what_said(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    i = rng.randrange(len(names))
    return f"What did {names[i]} say? {names[i]} said that {clauses[i]}."


def _who_said(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    i = rng.randrange(len(names))
    return f"Who said that {clauses[i]}? {names[i]}."


def _recall(rng: random.Random, names: list[str], clauses: list[str]) -> str:
    roles = _random_roles(rng, len(names))
    i = rng.randrange(len(names))
    supposed = T.join_and([f"{n} is a {T.role_word(r)}" for n, r in zip(names, roles)])
    return f"Suppose {supposed}. Then {names[i]} is a {T.role_word(roles[i])}."


# the ways a text (a supposition, a reasoning trace) may state a person's role
_STATED: tuple[Callable[[str, str], str], ...] = (
    lambda n, r: f"{n} is a {r}.", lambda n, r: f"So {n} = {r}.", lambda n, r: f"{n} must be a {r}.",
    lambda n, r: f"{n}: {r}.")


def role_statements(rng: random.Random, names: list[str], roles: list[bool]) -> str:
    """``roles`` stated person by person, in a random order and one of a few wordings."""
    order = list(range(len(names)))
    rng.shuffle(order)
    form = rng.choice(_STATED)
    return " ".join(form(names[i], T.role_word(roles[i])) for i in order)


def transfer_text(rng: random.Random, names: list[str]) -> str:
    """Roles stated in any order and wording, then the answer block that copies them in
    introduction order: binding each person to the role the text gave them. The roles are
    random, like every role list here, so the answer carries no solution."""
    roles = _random_roles(rng, len(names))
    return f"{role_statements(rng, names, roles)}\n<answer> {T.solution_text_format(names, roles)} </answer>"



EXERCISES: dict[str, Callable[..., str]] = {
    "answer_format": _answer_format, "listing": _listing, "by_index": _by_index,
    "what_said": _what_said, "who_said": _who_said, "recall": _recall,
}


def reading_text(problem: Problem, rng: random.Random, n_exercises: int = 3, varied: bool = False,
                 transfer: bool = False) -> str:
    """The puzzle followed by ``n_exercises`` distinct exercises, each on its own line.

    The answer-format exercise is always one of them: it is the copying skill a KK
    answer needs most (names in introduction order, in the answer's exact layout).
    ``varied`` widens the contexts it is practised in, because a real answer comes
    after a long reasoning text that names the people in any order: half the time
    it comes last, after four other exercises, and half the time it is a bare
    ``<answer>`` block without its lead-in sentence. ``transfer`` (with ``varied``) makes
    half the answers copy roles that the line before stated (in any order and wording)
    instead of guessing, as a real answer copies the conclusions of its reasoning (:func:`transfer_text`).
    """
    from tailor_evo.tasks.kk.logic import puzzle_of

    names = list(problem.meta["names"])
    clauses = [T.clause(st, names) for st in puzzle_of(problem).statements]
    others = [k for k in EXERCISES if k != "answer_format"]
    last = varied and rng.random() < 0.5
    if last:
        n_exercises = 5
    kinds = ["answer_format"] + rng.sample(others, k=min(max(n_exercises - 1, 0), len(others)))
    rng.shuffle(kinds)
    if last:
        kinds.remove("answer_format")
        kinds.append("answer_format")
    lines = [EXERCISES[k](rng, names, clauses) for k in kinds]
    if varied and rng.random() < 0.5:
        lines = [ln.removeprefix("A guessed answer: ") for ln in lines]
    if varied and transfer and rng.random() < 0.5:
        at = kinds.index("answer_format")
        lines[at] = transfer_text(rng, names)
    return "\n".join([problem.question] + lines)
