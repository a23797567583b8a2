"""Knights and Knaves: n islanders, each a truthful knight or a lying knave, each making one claim.

Difficulty is the number of people (2..8). Puzzles, question text, answer
formats and the rule-based chain of thought follow the public K&K data; records
in the public JSONL layout can be read and written.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Grammar, GuessParts, Problem, Task, Trajectory, Verdict
from tailor_evo.tasks.kk import text as T
from tailor_evo.tasks.kk.cot import rule_based_cot, rule_based_steps
from tailor_evo.tasks.kk.generator import MAX_PEOPLE, MIN_PEOPLE, GenerationError, GenOptions, sample_puzzle
from tailor_evo.tasks.kk.gold import check_gold, check_gold_text, check_names, unique_solution
from tailor_evo.tasks.kk.logic import (
    Puzzle,
    StatementError,
    check_tree,
    official_repr,
    parse_official_statements,
    puzzle_of,
    to_json,
)
from tailor_evo.tasks.kk.verifier import people_wrong, reason_kind, verify_completion

__all__ = ["KnightsKnavesTask", "puzzle_of", "INSTRUCTION"]

INSTRUCTION = (
    "Solve the Knights and Knaves puzzle. Knights always tell the truth and knaves always lie. "
    "Reason step by step inside <think> </think>, then give the answer inside <answer> </answer> "
    "with one line per person in the order they are introduced, stating the identity of each, "
    "for example: <think> ... </think> <answer> (1) Zoey is a knight\n(2) Oliver is a knave </answer>"
)

_GEN_OPTIONS = {"depth", "width", "max_tries", "names", "balanced", "pool_share"}
KNIGHT_KNAVE_WORDS = {"Knave": "Knave", "Knight": "Knight", "a_knave": "a knave", "a_knight": "a knight",
                      "knave": "knave", "knight": "knight"}


def problem_id(statements: Any, names: list[str]) -> str:
    blob = json.dumps([statements, names], separators=(",", ":"))
    return "kk-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def recover_templates(quiz: str, statements, names: list[str]) -> list[int] | None:
    """Which speech template each person's sentence uses in a public quiz (None if not recoverable)."""
    out = []
    for i, st in enumerate(statements):
        content = T.clause(st, names)
        hits = [k for k in range(len(T.SPEECH_TEMPLATES)) if T.speech(k, names[i], content) in quiz]
        if not hits:
            return None
        out.append(hits[0])
    # A sentence may embed a shorter template's text; settle ties by re-rendering the whole quiz.
    return out if T.quiz_text(statements, names, out) == quiz else _exhaustive_templates(quiz, statements, names)


def _exhaustive_templates(quiz: str, statements, names: list[str]) -> list[int] | None:
    prefix = T.INTRO + f" You meet {len(names)} inhabitants: {T.list_names(names)}."
    out: list[int] = []
    for i, st in enumerate(statements):
        content = T.clause(st, names)
        for k in range(len(T.SPEECH_TEMPLATES)):
            cand = prefix + " " + T.speech(k, names[i], content)
            if quiz.startswith(cand + " "):
                out.append(k)
                prefix = cand
                break
        else:
            return None
    return out if T.quiz_text(statements, names, out) == quiz else None


class KnightsKnavesTask(Task):
    name = "kk"
    difficulty_name = "people"
    default_levels = (3, 4, 5, 6, 7)
    # explicit: every decision follows its written three-valued check; quoted: explicit, each check
    # copying the speaker's clause first; classic: decisions only (style_classic is then the public
    # trace word for word). See tasks/kk/styles.py.
    renderings = ("explicit", "quoted", "classic")

    # ---- problems -----------------------------------------------------------------
    def generate(self, n: int, seed: int, levels: list[int] | None = None, **options: Any) -> list[Problem]:
        """``n`` puzzles cycling through ``levels`` (numbers of people), deterministic in ``seed``.

        Options: ``depth`` (default 2), ``width`` (default 2), ``max_tries`` (default 1000),
        ``names`` ("common", the evaluation sets' 55; "pool", hundreds for training; "heldout", never
        trained on; or "rare"), ``pool_share`` (share of puzzles drawing their people from the pool
        instead; default 0), ``balanced`` (every role assignment equally likely as the solution;
        default False).
        """
        unknown = set(options) - _GEN_OPTIONS
        if unknown:
            raise InputError(f"unknown KK option(s) {sorted(unknown)}; known: {sorted(_GEN_OPTIONS)}",
                             field="options")
        try:
            opts = GenOptions(**options)
        except TypeError as exc:
            raise InputError(str(exc), field="options") from None
        for err in opts.check():
            raise InputError(err, field="options")
        levels = list(levels) if levels else list(self.default_levels)
        for lv in levels:
            if isinstance(lv, bool) or not isinstance(lv, int) or not MIN_PEOPLE <= lv <= MAX_PEOPLE:
                raise InputError(f"people levels must be integers in {MIN_PEOPLE}..{MAX_PEOPLE}, got {lv!r}",
                                 field="levels")
        seen: set = set()
        problems = []
        for i in range(n):
            level = levels[i % len(levels)]
            rng = random.Random(f"kk:{seed}:{i}")
            try:
                s = sample_puzzle(rng, level, opts, seen)
            except GenerationError as exc:
                raise InputError(str(exc), field="levels") from None
            problems.append(self.make_problem(s.statements, s.names, s.templates, index=i,
                                              extra={"depth": opts.depth, "width": opts.width}))
        return problems

    def make_problem(self, statements, names: list[str], templates: list[int] | None, *,
                     question: str | None = None, index: int | None = None, extra: dict | None = None) -> Problem:
        pz = Puzzle(tuple(statements))
        solution = pz.solve()
        if solution is None:
            raise ValueError(f"puzzle has {pz.count_solutions()} solutions, expected exactly one")
        trees = [to_json(s) for s in pz.statements]
        if question is None:
            question = T.quiz_text(pz.statements, names, templates)
        meta = {"names": list(names), "statements": trees, "templates": templates}
        if index is not None:
            meta["index"] = index
        meta.update(extra or {})
        p = Problem(id=problem_id(trees, list(names)), task=self.name, difficulty=len(names), question=question,
                    answer=solution, answer_text=T.solution_text_format(names, solution), meta=meta)
        object.__setattr__(p, "_kk_puzzle", pz)
        return p

    def solve(self, problem: Problem) -> list[bool] | None:
        return puzzle_of(problem).solve()

    def training_options(self) -> dict[str, Any]:
        """Training puzzles have balanced solutions, so no role assignment is the safe guess.

        Their people come from the evaluation sets' 55 names: with the 287-name pool the traces
        are a third longer (955 tokens at the median against 740, most pool names being several
        tokens), and the main job ended at 0.06 after SFT and 0.01 after RL, 83 % of its answers
        cut at the budget (docs/results/main-job/README.md). Names the base never saw are the
        base's work (``tiny-base`` copies them at 0.82); ``names="pool"`` draws from the pool.
        A quarter of the puzzles on pool names (``pool_share=0.25``) measured worse too: seed 0
        after SFT 0.52 against 0.75, and the public puzzles with unseen names still failed ("Names
        in the training mix" in the same file)."""
        return {"balanced": True}

    # ---- prompts and answers ------------------------------------------------------
    def instruction(self) -> str:
        return INSTRUCTION

    def reading_text(self, problem: Problem, rng: random.Random, varied: bool = False, transfer: bool = False) -> str:
        from tailor_evo.tasks.kk.reading import reading_text

        return reading_text(problem, rng, varied=varied, transfer=transfer)

    def verify(self, problem: Problem, completion: str, shaped: bool = False) -> Verdict:
        """Binary reward by default; ``shaped=True`` gives the Logic-RL format+answer reward."""
        return verify_completion(problem.meta.get("names", []), problem.answer, completion, shaped=shaped)

    def partial_credit(self, problem: Problem, verdict: Verdict, completion: str = "") -> float:
        """Share of people given the right role; 0 when the answer could not be parsed."""
        names, solution = problem.meta.get("names", []), problem.answer
        if not isinstance(verdict.parsed, dict) or not names:
            return 0.0
        right = sum(verdict.parsed.get(nm) == bool(r) for nm, r in zip(names, solution))
        return right / len(names)

    def reference_solution(self, problem: Problem) -> str:
        return rule_based_cot(puzzle_of(problem), problem.meta["names"])

    def reference_steps(self, problem: Problem) -> list[str]:
        """The rule-based CoT's repeated steps (the public ``cot_repeat_steps``)."""
        return rule_based_steps(puzzle_of(problem), problem.meta["names"])[0]

    # ---- records ------------------------------------------------------------------
    def to_record(self, problem: Problem) -> dict:
        rec = problem.to_dict()
        names, roles = problem.meta["names"], problem.answer
        steps, ok = rule_based_steps(puzzle_of(problem), names)
        rec.update(quiz=problem.question, names=list(names), knight_knave=dict(KNIGHT_KNAVE_WORDS),
                   solution=list(roles), solution_text=T.solution_text(names, roles),
                   solution_text_format=T.solution_text_format(names, roles), cot_head=T.COT_HEAD,
                   cot_repeat_steps=steps, cot_foot=T.COT_FOOT_OK if ok else T.COT_FOOT_FAIL,
                   statements=official_repr(puzzle_of(problem).statements),
                   index=problem.meta.get("index", -1))
        return rec

    def from_record(self, record: dict, *, source: str = "<record>", line: int | None = None) -> Problem:
        """Our records (with ``meta``) or public K&K records (``quiz``, ``names``, ``statements``...)."""
        if "meta" in record and "task" in record:
            problem = super().from_record(record, source=source, line=line)
            return self._check_ours(problem, source, line)
        return self._from_public(record, source, line)

    def _check_ours(self, problem: Problem, source: str, line: int | None) -> Problem:
        """Our record, checked against its own structure: the statements have exactly one
        solution, and ``answer``, ``answer_text`` and ``difficulty`` agree with it."""
        meta = problem.meta
        if not isinstance(meta, dict):
            raise InputError("must be an object", file=source, line=line, field="meta")
        names = meta.get("names")
        check_names(names, source, line, "meta.names")
        trees = meta.get("statements")
        if not isinstance(trees, list) or len(trees) != len(names):
            raise InputError(f"must be a list of {len(names)} statement trees", file=source, line=line,
                             field="meta.statements")
        try:
            pz = Puzzle(tuple(check_tree(t, len(names), f"statement[{i}]") for i, t in enumerate(trees)))
        except StatementError as exc:
            raise InputError(str(exc), file=source, line=line, field="meta.statements") from None
        solution = unique_solution(pz, source, line, "meta.statements")
        self._check_answer(problem.answer, len(names), source, line, "answer")
        check_gold(problem.answer, solution, source, line, "answer")
        check_gold_text(problem.answer_text, names, solution, source, line, "answer_text")
        if problem.difficulty != len(names):
            raise InputError(f"is {problem.difficulty!r} but the puzzle has {len(names)} people", file=source,
                             line=line, field="difficulty")
        object.__setattr__(problem, "_kk_puzzle", pz)
        return problem

    @staticmethod
    def _check_answer(ans: Any, n: int, source: str, line: int | None, fld: str) -> None:
        if ans is not None and (not isinstance(ans, list) or len(ans) != n or
                                not all(isinstance(x, bool) for x in ans)):
            raise InputError(f"expected a list of {n} booleans", file=source, line=line, field=fld)

    def _from_public(self, record: dict, source: str, line: int | None) -> Problem:
        """A public record, checked like ours: one solution, and the given ``solution`` and
        solution texts (when present) say it."""
        for key in ("quiz", "names", "statements"):
            if key not in record:
                raise InputError("missing field", file=source, line=line, field=key)
        names = record["names"]
        check_names(names, source, line, "names")
        if not isinstance(record["statements"], str):
            raise InputError("must be a string (a tuple literal)", file=source, line=line, field="statements")
        try:
            statements = parse_official_statements(record["statements"], len(names))
        except StatementError as exc:
            raise InputError(str(exc), file=source, line=line, field="statements") from None
        quiz = record["quiz"]
        if not isinstance(quiz, str):
            raise InputError("must be a string", file=source, line=line, field="quiz")
        self._check_answer(record.get("solution"), len(names), source, line, "solution")
        pz = Puzzle(statements)
        solution = unique_solution(pz, source, line, "statements")
        if record.get("solution") is not None:
            check_gold(record["solution"], solution, source, line, "solution")
        for key in ("solution_text", "solution_text_format"):
            if key in record:
                check_gold_text(record[key], names, solution, source, line, key)
        trees = [to_json(s) for s in statements]
        meta = {"names": list(names), "statements": trees,
                "templates": recover_templates(quiz, statements, names)}
        if isinstance(record.get("index"), int):
            meta["index"] = record["index"]
        p = Problem(id=problem_id(trees, list(names)), task=self.name, difficulty=len(names), question=quiz,
                    answer=solution, answer_text=T.solution_text_format(names, solution), meta=meta)
        object.__setattr__(p, "_kk_puzzle", pz)
        return p

    # ---- offline engine -------------------------------------------------------------
    def grammar(self) -> Grammar:
        from tailor_evo.tasks.kk.moves import GRAMMAR

        return GRAMMAR

    def execute(self, program: dict, problem: Problem, rng: random.Random, max_steps: int = 400) -> Trajectory:
        from tailor_evo.tasks.kk.executor import execute

        return execute(self, program, problem, rng, max_steps=max_steps, rendering=self.active_rendering)

    def behaviour_kinds(self) -> tuple[str, ...]:
        from tailor_evo.tasks.kk.moves import BEHAVIOUR_KINDS

        return BEHAVIOUR_KINDS

    def chance_accuracy(self, level: int) -> float:
        """One of the 2^people role assignments, guessed uniformly."""
        return 1.0 / 2 ** level

    def guess_parts(self, level: int) -> GuessParts:
        """Each of the ``level`` people's roles, guessed alone, is right half the time."""
        return GuessParts(count=level, chance=0.5, noun="roles")

    def parts_wrong(self, reason: str) -> int | None:
        return people_wrong(reason)

    def reason_kind(self, reason: str) -> str:
        """The verifier's reasons lose the people they name; any other (the executor's) its detail."""
        return reason_kind(reason) or super().reason_kind(reason)

    def abstract_step(self, question: str, step: str) -> str:
        """People become ``p1``, ``p2``... in the order the question introduces them; any
        other known name (e.g. one the model invented) becomes ``p?``."""
        text = step
        for i, name in enumerate(T.intro_names(question)):
            text = re.sub(rf"\b{re.escape(name)}\b", f"P{i + 1}", text)
        text = T.NAME_PATTERN.sub("P?", text)
        return " ".join(text.lower().split())
