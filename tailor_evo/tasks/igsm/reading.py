"""Reading exercises on an iGSM problem, for pretraining a base model.

Solving an iGSM question means finding, for each quantity the question depends
on, the sentence that defines it, and computing. These exercises teach the
first half only: look up the sentence that defines a named quantity, restate
which quantity the question asks for, list the quantities in the order the text
defines them. No exercise computes a value or states the answer.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from tailor_evo.tasks.base import Problem

_DEFINITION = re.compile(r"The number of (each [^.]+?) equals ([^.]+)\.")
_QUESTION = re.compile(r"How many (.+?) does (.+?) have\?")


def definitions(question: str) -> list[tuple[str, str]]:
    """(quantity, right-hand side) for every defining sentence, in text order."""
    return _DEFINITION.findall(question)


def _lookup(rng: random.Random, defs: list[tuple[str, str]], asked: str) -> str:
    q, rhs = rng.choice(defs)
    return f"Which sentence defines {q}? The number of {q} equals {rhs}."


def _restate(rng: random.Random, defs: list[tuple[str, str]], asked: str) -> str:
    q, rhs = rng.choice(defs)
    return f"In other words, {q} is {rhs}."


def _asked(rng: random.Random, defs: list[tuple[str, str]], asked: str) -> str:
    return f"The question asks for {asked}."


def _listing(rng: random.Random, defs: list[tuple[str, str]], asked: str) -> str:
    # the first few only, so that long problems still fit a pretraining row
    return "The first quantities in order: " + "; ".join(q for q, _ in defs[:4]) + "."


EXERCISES: dict[str, Callable[..., str]] = {
    "lookup": _lookup, "restate": _restate, "asked": _asked, "listing": _listing,
}


def reading_text(problem: Problem, rng: random.Random, n_exercises: int = 3, varied: bool = False) -> str:
    """The problem followed by ``n_exercises`` distinct exercises, one per line (all four when ``varied``)."""
    if varied:
        n_exercises = 4
    m = _QUESTION.search(problem.question)
    asked = f"each {m.group(2)}'s {m.group(1)}" if m else "an unnamed quantity"
    # A question whose quantity is given as a plain number states its own answer in the
    # question; the exercises at least never single that sentence out.
    defs = [(q, rhs) for q, rhs in definitions(problem.question) if not (q == asked and rhs.strip().isdigit())]
    if not defs:
        return problem.question
    kinds = ["lookup"] + rng.sample([k for k in EXERCISES if k != "lookup"], k=min(max(n_exercises - 1, 0), 3))
    rng.shuffle(kinds)
    return "\n".join([problem.question] + [EXERCISES[k](rng, defs, asked) for k in kinds])
