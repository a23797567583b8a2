"""Countdown, a third task for tailor-evo, shipped as a plugin.

Combine the given numbers, each exactly once, with ``+ - * /`` to make the target (the
numbers game TinyZero trains on). Difficulty is the count of numbers. The package
registers itself through the ``tailor_evo.tasks`` entry-point group (see its
``pyproject.toml``), so every ``tailor-evo`` command finds ``--task countdown`` once it
is installed; nothing in tailor-evo names it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Grammar, Problem, Task, Trajectory, Verdict
from tailor_evo_countdown.arith import ParseError, parse, show
from tailor_evo_countdown.generator import GenerationError, GenOptions, generate_problem, solve

__all__ = ["CountdownTask"]

INSTRUCTION = (
    "Make the target number from the given numbers. Use every number exactly once, combine them "
    "with +, -, * and / and brackets; every step must give a whole number. Reason step by step "
    "inside <think> </think>, then give only the expression inside <answer> </answer>, for example: "
    "<think> ... </think> <answer> (25 * 4) - 3 </answer>"
)

_OPTIONS = {"max_number", "max_target", "max_tries"}
_INT = re.compile(r"\d+")
_QUESTION = re.compile(r"Using the numbers ([\d, and]+), each exactly once, with \+, -, \* and /, make (\d+)\.")


def question_text(numbers: list[int], target: int) -> str:
    listed = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
    return f"Using the numbers {listed}, each exactly once, with +, -, * and /, make {target}."


def _check_gold(text: Any, numbers: list[int], target: int, source: str, line: int | None, fld: str) -> None:
    """A record's gold expression must be one the verifier would score right and keep the
    game's rule that every step gives a whole number, or the record teaches a wrong answer."""
    try:
        expr = parse(str(text))
    except ParseError as exc:
        raise InputError(f"not an expression: {exc}", file=source, line=line, field=fld) from None
    if sorted(expr.literals()) != sorted(numbers) or expr.value != target:
        raise InputError("does not make the target from the numbers", file=source, line=line, field=fld)
    if any(c.denominator != 1 for _, _, _, c in expr.steps()):
        raise InputError("has a step that does not give a whole number", file=source, line=line, field=fld)


class CountdownTask(Task):
    name = "countdown"
    difficulty_name = "numbers"
    default_levels = (3, 4, 5)
    seeds_dir = Path(__file__).resolve().parent / "seeds"

    renderings = ("explicit", "compact")   # the executor's (see its RENDERINGS); the first is the default

    def __init__(self, rendering: str = "explicit") -> None:
        """``rendering``: what the executor's steps write, "explicit" (each decision's numbers
        first; the default every warm-start method renders with) or "compact" (the decisions
        alone); see :mod:`tailor_evo_countdown.executor`."""
        self.use_rendering(rendering)

    # ---- problems -----------------------------------------------------------------
    def generate(self, n: int, seed: int, levels: list[int] | None = None, **options: Any) -> list[Problem]:
        """``n`` problems cycling through ``levels`` (how many numbers, 2..6).

        Options: ``max_number`` (numbers are drawn from 1..max_number, default 25),
        ``max_target`` (default 200), ``max_tries`` (draws per problem, default 200).
        """
        unknown = set(options) - _OPTIONS
        if unknown:
            raise InputError(f"unknown countdown option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}",
                             field="options")
        for key, val in options.items():
            if isinstance(val, bool) or not isinstance(val, int) or val < 2:
                raise InputError(f"must be an integer of at least 2, got {val!r}", field=key)
        opts = GenOptions(**options)
        levels = list(levels) if levels else list(self.default_levels)
        for lv in levels:
            if isinstance(lv, bool) or not isinstance(lv, int) or not 2 <= lv <= 6:
                raise InputError(f"levels are counts of numbers from 2 to 6, got {lv!r}", field="levels")
        problems = []
        for i in range(n):
            k = levels[i % len(levels)]
            rng = random.Random(f"countdown:{seed}:{i}")
            try:
                numbers, target, solution = generate_problem(rng, k, opts)
            except GenerationError as exc:
                raise InputError(str(exc), field="levels") from None
            problems.append(self.make_problem(f"countdown-{seed}-{i}", numbers, target, solution.text()))
        return problems

    def make_problem(self, pid: str, numbers: list[int], target: int, solution: str) -> Problem:
        return Problem(id=pid, task=self.name, difficulty=len(numbers), question=question_text(numbers, target),
                       answer=solution, answer_text=solution,
                       meta={"numbers": list(numbers), "target": int(target)})

    def solve(self, problem: Problem) -> str | None:
        """An expression found by exhaustive search, or None when the problem has none."""
        found = solve(problem.meta["numbers"], problem.meta["target"])
        return None if found is None else found.text()

    # ---- prompts and answers ------------------------------------------------------
    def instruction(self) -> str:
        return INSTRUCTION

    def verify(self, problem: Problem, completion: str, shaped: bool = False) -> Verdict:
        from tailor_evo_countdown.verifier import verify

        return verify(problem.meta.get("numbers", []), problem.meta.get("target"), completion, shaped=shaped)

    def reference_solution(self, problem: Problem) -> str:
        """The known solution, one operation per step, as a forward search writes it."""
        expr = parse(problem.answer_text)
        left = [v for v in map(int, problem.meta["numbers"])]
        lines = []
        for a, op, b, c in expr.steps():
            left.remove(a) if a in left else None
            left.remove(b) if b in left else None
            left.append(c)
            lines.append(f"{show(a)} {op} {show(b)} = {show(c)}; left: {', '.join(show(v) for v in left)}.")
        lines.append(f"{expr.text()} = {problem.meta['target']}, the target.")
        return " ".join(lines)

    # ---- records ------------------------------------------------------------------
    def from_record(self, record: dict, *, source: str = "<record>", line: int | None = None) -> Problem:
        problem = super().from_record(record, source=source, line=line)
        meta = record.get("meta") or {}
        numbers, target = meta.get("numbers"), meta.get("target")
        if not isinstance(numbers, list) or not numbers or not all(
                isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in numbers):
            raise InputError("expected a list of positive integers", file=source, line=line, field="meta.numbers")
        if isinstance(target, bool) or not isinstance(target, int):
            raise InputError("expected an integer", file=source, line=line, field="meta.target")
        if record["difficulty"] != len(numbers):
            raise InputError(f"is {record['difficulty']!r} but there are {len(numbers)} numbers",
                             file=source, line=line, field="difficulty")
        for key in ("answer", "answer_text"):
            _check_gold(record[key], numbers, target, source, line, key)
        return problem

    # ---- offline engine -------------------------------------------------------------
    def grammar(self) -> Grammar:
        from tailor_evo_countdown.moves import GRAMMAR

        return GRAMMAR

    def execute(self, program: dict, problem: Problem, rng: random.Random, max_steps: int = 400) -> Trajectory:
        from tailor_evo_countdown.executor import execute

        return execute(program, problem, rng, max_steps=max_steps, rendering=self.active_rendering)

    def behaviour_kinds(self) -> tuple[str, ...]:
        from tailor_evo_countdown.moves import BEHAVIOUR_KINDS

        return BEHAVIOUR_KINDS

    def abstract_step(self, question: str, step: str) -> str:
        """Numbers by role: the target becomes ``T``, a given number ``n``, any other value ``v``,
        so that coverage counts moves (combine two givens, reach the target), not the digits."""
        m = _QUESTION.search(question)
        given = {int(x) for x in _INT.findall(m.group(1))} if m else set()
        target = int(m.group(2)) if m else None

        def role(m: re.Match) -> str:
            x = int(m.group(0))
            return "T" if x == target else ("n" if x in given else "v")

        return " ".join(_INT.sub(role, step).lower().split())
