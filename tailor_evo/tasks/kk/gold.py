"""A KK record's gold answer, checked against its puzzle where the record is read.

A record is scored against its ``answer``; if that answer is not the one its statements
force, every evaluation and reward computed from it is wrong without anyone noticing. So
a record is refused, naming its file, line and field, unless its statements have exactly
one solution, every given form of the answer (the roles, the answer texts) states it, and
the verifier's answer grammar can name each of its people.
"""

from __future__ import annotations

from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from tailor_evo.tasks.kk.generator import MAX_PEOPLE, MIN_PEOPLE
from tailor_evo.tasks.kk.logic import Puzzle
from tailor_evo.tasks.kk.verifier import name_problem, verify_completion


def check_names(names: Any, source: str, line: int | None, fld: str) -> None:
    """The people of a record: a list of MIN..MAX names that an answer can state (the
    verifier's ``name_problem``), else the correct answer could never score."""
    if not isinstance(names, list) or not MIN_PEOPLE <= len(names) <= MAX_PEOPLE:
        raise InputError(f"must be a list of {MIN_PEOPLE}..{MAX_PEOPLE} single-word names",
                         file=source, line=line, field=fld)
    why = name_problem(names)
    if why is not None:
        raise InputError(f"{why}: an answer could not name this person", file=source, line=line, field=fld)


def unique_solution(pz: Puzzle, source: str, line: int | None, fld: str) -> list[bool]:
    """The puzzle's one solution; a puzzle with none or several has no gold answer to score
    against, so it is refused where it is read."""
    solution = pz.solve()
    if solution is None:
        raise InputError(f"the statements have {pz.count_solutions()} solutions; a puzzle needs exactly one",
                         file=source, line=line, field=fld)
    return solution


def check_gold(given: Any, solution: list[bool], source: str, line: int | None, fld: str) -> None:
    """A record's gold roles must be the statements' solution, or a wrong answer would score."""
    if given != solution:
        raise InputError(f"{given} is not the statements' unique solution {solution}", file=source, line=line,
                         field=fld)


def check_gold_text(text: Any, names: list[str], solution: list[bool], source: str, line: int | None,
                    fld: str) -> None:
    """A record's answer text must read, by the verifier, as exactly the solution: it is what
    reference completions and warm-start data put inside the answer tag."""
    if not isinstance(text, str):
        raise InputError("must be a string", file=source, line=line, field=fld)
    verdict = verify_completion(names, solution, f"{THINK_OPEN} {THINK_CLOSE} {ANSWER_OPEN} {text} {ANSWER_CLOSE}")
    if not verdict.correct:
        raise InputError(f"does not state the statements' unique solution ({verdict.reason})", file=source,
                         line=line, field=fld)
