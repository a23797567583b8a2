"""iGSM: synthetic grade-school math over a hierarchy of categories, arithmetic mod 23.

Difficulty is the operation count (op) of the detailed solution; the number of
stated (instance) parameters, ip, is a second knob bounded by ``max_edge``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Grammar, Problem, Task, Trajectory, Verdict
from tailor_evo.tasks.igsm.credit import solution_share
from tailor_evo.tasks.igsm.generator import GenerationError, GenOptions, generate_graph
from tailor_evo.tasks.igsm.graph import MOD, Graph, graph_of
from tailor_evo.tasks.igsm.text import problem_text, reference_solution, template_bin
from tailor_evo.tasks.igsm.verifier import verify_answer

if TYPE_CHECKING:
    from tailor_evo.tasks.igsm.solution_check import SolutionCheck

__all__ = ["IGSMTask", "graph_of"]

INSTRUCTION = (
    "Solve the math problem. Every quantity is an integer modulo 23: reduce the result of every "
    "addition, subtraction and multiplication modulo 23 (for example 15 + 12 = 4 and 3 - 5 = 21), "
    "so the answer is an integer from 0 to 22. A quantity that is never stated and cannot be "
    "derived from the structure is 0. Reason step by step inside <think> </think>, then give only "
    "the final integer inside <answer> </answer>, for example: "
    "<think> ... </think> <answer> 19 </answer>"
)

_GEN_OPTIONS = {"max_op", "max_edge", "ip", "max_tries", "abstract_share", "split"}


class IGSMTask(Task):
    name = "igsm"
    difficulty_name = "op"
    default_levels = (2, 3, 4, 5, 6)

    renderings = ("explicit", "quoted", "compact")   # the executor's (see its RENDERINGS); the first is the default

    def __init__(self, rendering: str = "explicit") -> None:
        """``rendering``: what the executor's steps write, "explicit" (every value beside its
        inputs; what every warm-start method renders with), "quoted" (explicit, with each
        definition's problem sentence copied before it) or "compact" (the public detailed
        solution format); see :mod:`tailor_evo.tasks.igsm.executor`."""
        self.use_rendering(rendering)

    # ---- problems -----------------------------------------------------------------
    def generate(self, n: int, seed: int, levels: list[int] | None = None, **options: Any) -> list[Problem]:
        """``n`` problems cycling through ``levels`` (target op values).

        Options: ``max_op`` (levels default to 2..max_op; an explicit level above it is an
        error), ``max_edge`` (ip upper bound, default 10), ``ip`` (exact ip),
        ``max_tries`` (attempts per problem), ``abstract_share`` (share of questions about
        abstract parameters), ``split`` ("train" keeps solution-template bins 0..15, "test"
        bins 16..22, so test templates never occur in training).
        """
        unknown = set(options) - _GEN_OPTIONS
        if unknown:
            raise InputError(f"unknown iGSM option(s) {sorted(unknown)}; known: {sorted(_GEN_OPTIONS)}",
                             field="options")
        for key in ("max_op", "max_edge", "ip", "max_tries"):
            val = options.get(key)
            if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
                raise InputError(f"must be a positive integer, got {val!r}", field=key)
        share = options.get("abstract_share", 0.5)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise InputError(f"must be a number in [0, 1], got {share!r}", field="abstract_share")
        max_op = options.get("max_op")
        levels = list(levels) if levels else (list(range(2, int(max_op) + 1)) if max_op else
                                              list(self.default_levels))
        for lv in levels:
            if not isinstance(lv, int) or lv < 1:
                raise InputError(f"op levels must be positive integers, got {lv!r}", field="levels")
            if max_op is not None and lv > int(max_op):
                raise InputError(f"level {lv} exceeds max_op={max_op}", field="levels")
        opts = GenOptions(**{k: options[k] for k in ("max_edge", "ip", "max_tries", "abstract_share", "split")
                             if k in options})
        if opts.split not in (None, "train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {opts.split!r}", field="split")
        if opts.ip is not None and opts.ip > opts.max_edge:
            raise InputError(f"ip={opts.ip} exceeds max_edge={opts.max_edge}", field="ip")
        problems = []
        for i in range(n):
            level = levels[i % len(levels)]
            rng = random.Random(f"igsm:{seed}:{i}")
            try:
                g = generate_graph(rng, level, opts)
            except GenerationError as exc:
                raise InputError(str(exc), field="levels") from None
            problems.append(self.problem_from_graph(g, f"igsm-{seed}-{i}"))
        return problems

    def problem_from_graph(self, g: Graph, pid: str) -> Problem:
        answer = g.answer()
        meta = g.to_meta()
        meta["template_bin"] = template_bin(g)
        p = Problem(id=pid, task=self.name, difficulty=g.op, question=problem_text(g), answer=answer,
                    answer_text=str(answer), meta=meta)
        object.__setattr__(p, "_igsm_graph", g)
        return p

    def problem_kind(self, problem: Problem) -> str:
        """The question's kind: "abstract" when it asks for a total the problem never states (the
        sum of a category's items, as in "How many Playground does Sunrise Gardens have?"), else
        "instance". An abstract question needs the world's categories as well as the text."""
        g = graph_of(problem)
        return g.params[g.question].kind          # the graph's own INSTANCE / ABSTRACT

    def solve(self, problem: Problem) -> int:
        return graph_of(problem).answer()

    # ---- prompts and answers ------------------------------------------------------
    def instruction(self) -> str:
        return INSTRUCTION

    def reading_text(self, problem: Problem, rng: random.Random, varied: bool = False, transfer: bool = False) -> str:
        """(``transfer`` is a KK exercise; iGSM answers are single numbers.)"""
        from tailor_evo.tasks.igsm.reading import reading_text

        return reading_text(problem, rng, varied=varied)

    def partial_credit(self, problem: Problem, verdict: Verdict, completion: str = "") -> float:
        """1 for a right answer, 0 for one without a parsable answer; for a wrong one, the
        share of the question's necessary quantities whose first value the trace states right
        (the asked one counted as wrong), so near misses rank above guesses (:mod:`.credit`).
        Never raises: an unreadable trace earns 0."""
        if verdict.correct:
            return 1.0
        if not verdict.format_ok or verdict.parsed is None:
            return 0.0
        try:
            return solution_share(graph_of(problem), completion)
        except Exception:  # noqa: BLE001 - a reward must score any text, never stop the run
            return 0.0

    def verify(self, problem: Problem, completion: str, shaped: bool = False) -> Verdict:
        """Binary reward by default; ``shaped=True`` gives 0.1 for format, 0.2 for a parsable answer."""
        return verify_answer(problem.answer, completion, shaped=shaped)

    def reference_solution(self, problem: Problem) -> str:
        return reference_solution(graph_of(problem))

    def check_solution(self, problem: Problem, text: str) -> "SolutionCheck":
        """Full check of a detailed solution (or of the <think> part of a completion); never raises."""
        from tailor_evo.tasks.base import THINK_CLOSE, THINK_OPEN
        from tailor_evo.tasks.igsm.solution_check import SolutionCheck, check_solution

        if not isinstance(text, str):
            return SolutionCheck(False, "solution is not a string")
        if THINK_OPEN in text and THINK_CLOSE in text:
            text = text.split(THINK_OPEN, 1)[1].split(THINK_CLOSE, 1)[0]
        try:
            g = graph_of(problem)
        except InputError as exc:
            return SolutionCheck(False, f"unreadable problem: {exc}")
        return check_solution(g, text)

    # ---- records ------------------------------------------------------------------
    def from_record(self, record: dict, *, source: str = "<record>", line: int | None = None) -> Problem:
        """A record checked against its structure: the gold answer must be the value the graph
        gives the question parameter, or a wrong answer would score."""
        problem = super().from_record(record, source=source, line=line)
        g = Graph.from_meta(record.get("meta"), source=source, line=line)
        ans = record["answer"]
        if isinstance(ans, bool) or not isinstance(ans, int) or not 0 <= ans < MOD:
            raise InputError(f"expected an integer in 0..{MOD - 1}", file=source, line=line, field="answer")
        solved = g.answer()
        if ans != solved:
            raise InputError(f"is {ans} but the problem's structure gives {solved}", file=source, line=line,
                             field="answer")
        if str(ans) != str(record["answer_text"]).strip():
            raise InputError("does not match 'answer'", file=source, line=line, field="answer_text")
        if record["difficulty"] != g.op:
            raise InputError(f"is {record['difficulty']!r} but the graph's op is {g.op}", file=source, line=line,
                             field="difficulty")
        object.__setattr__(problem, "_igsm_graph", g)
        return problem

    # ---- offline engine -------------------------------------------------------------
    def grammar(self) -> Grammar:
        from tailor_evo.tasks.igsm.moves import GRAMMAR

        return GRAMMAR

    def execute(self, program: dict, problem: Problem, rng: random.Random, max_steps: int = 400) -> Trajectory:
        from tailor_evo.tasks.igsm.executor import execute

        return execute(self, program, problem, rng, max_steps=max_steps, rendering=self.active_rendering)

    def chance_accuracy(self, level: int) -> float:
        """One of the MOD possible answers, guessed uniformly."""
        return 1.0 / MOD

    def behaviour_kinds(self) -> tuple[str, ...]:
        from tailor_evo.tasks.igsm.moves import BEHAVIOUR_KINDS

        return BEHAVIOUR_KINDS
