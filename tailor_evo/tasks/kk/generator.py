"""Sampling puzzles with exactly one solution.

The default sampler matches the public data's distribution (depth 2, width 2):
a fair six-way choice between a leaf, a negated leaf, and/or over distinct
leaves, implication and biconditional; the leaf "the speaker is a knave" is
redrawn because it is a paradox on its own. ``depth``/``width`` allow deeper and
wider statements (an extension beyond the public grammar). Uniqueness is checked
by brute force over all ``2**n`` assignments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tailor_evo.tasks.kk.logic import Puzzle, Tree
from tailor_evo.tasks.kk.text import NAME_LISTS, SPEECH_TEMPLATES

MIN_PEOPLE, MAX_PEOPLE = 2, 8


class GenerationError(RuntimeError):
    """No unique puzzle found within the attempt budget (the message says for which settings)."""


@dataclass(frozen=True)
class GenOptions:
    depth: int = 2          # 1 = bare leaves, 2 = one operator over leaves (public data)
    width: int = 2          # max children of and/or
    max_tries: int = 1000   # attempts per puzzle before giving up
    names: str = "common"   # name list: "common", "pool", "heldout" or "rare"
    # share of puzzles whose people come from the pool (hundreds of names, most of them several
    # tokens) instead of ``names``: a model trained on the 55 common names alone writes a familiar
    # name in place of one it never saw (docs/results/main-job/README.md, "Names in the training mix")
    pool_share: float = 0.0
    # every role assignment equally likely as the solution (unbalanced, all-knight solutions are about
    # 1.5x as frequent as all-knave ones for 3 people): a target is drawn first, puzzles are drawn until
    # one has exactly that solution. The training streams use it; evaluation sets keep the plain draw
    balanced: bool = False

    def check(self) -> list[str]:
        errs = []
        for name in ("depth", "width", "max_tries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                errs.append(f"{name} must be an integer, got {value!r}")
        if not isinstance(self.balanced, bool):
            errs.append(f"balanced must be true or false, got {self.balanced!r}")
        if isinstance(self.pool_share, bool) or not isinstance(self.pool_share, (int, float)) \
                or not 0 <= self.pool_share <= 1:
            errs.append(f"pool_share must be a number in 0..1, got {self.pool_share!r}")
        if errs:
            return errs
        if not 1 <= self.depth <= 6:
            errs.append("depth must be in 1..6")
        if not 2 <= self.width <= 4:
            errs.append("width must be in 2..4")
        if self.max_tries < 1:
            errs.append("max_tries must be positive")
        if not isinstance(self.names, str) or self.names not in NAME_LISTS:
            errs.append(f"names must be one of {sorted(NAME_LISTS)}")
        return errs


def _leaf(rng: random.Random, n: int, speaker: int) -> Tree:
    while True:
        op = "knight" if rng.random() < 0.5 else "knave"
        who = rng.randrange(n)
        if not (op == "knave" and who == speaker):
            return (op, who)


def sample_statement(rng: random.Random, n: int, speaker: int, opts: GenOptions, level: int = 1) -> Tree:
    """One statement for ``speaker``; ``level`` counts from 1 at the root."""
    if level >= opts.depth:
        return _leaf(rng, n, speaker)
    kind = rng.randrange(6)
    if kind == 0:
        return _leaf(rng, n, speaker)
    if kind == 1:
        return ("not", sample_statement(rng, n, speaker, opts, level + 1))
    op = ("and", "or", "implies", "iff")[kind - 2]
    k = rng.randint(2, opts.width) if op in ("and", "or") else 2
    children: list[Tree] = []
    for _ in range(50 * k):
        c = sample_statement(rng, n, speaker, opts, level + 1)
        if c not in children:
            children.append(c)
            if len(children) == k:
                return (op,) + tuple(children)
    # Too few distinct children exist (tiny n with wide operators): fall back to a leaf.
    return _leaf(rng, n, speaker)


@dataclass
class Sampled:
    statements: tuple[Tree, ...]
    names: list[str]
    templates: list[int]
    solution: list[bool]
    attempts: int


def sample_puzzle(rng: random.Random, n: int, opts: GenOptions, seen: set | None = None) -> Sampled:
    """A puzzle with exactly one consistent assignment (and statements not in ``seen``)."""
    if not MIN_PEOPLE <= n <= MAX_PEOPLE:
        raise GenerationError(f"number of people must be in {MIN_PEOPLE}..{MAX_PEOPLE}, got {n}")
    target = [rng.random() < 0.5 for _ in range(n)] if opts.balanced else None
    tries = opts.max_tries * (2 ** n if opts.balanced else 1)
    for attempt in range(1, tries + 1):
        statements = tuple(sample_statement(rng, n, i, opts) for i in range(n))
        if seen is not None and statements in seen:
            continue
        solution = Puzzle(statements).solve()
        if solution is None or (target is not None and solution != target):
            continue
        if seen is not None:
            seen.add(statements)
        # drawn only when asked for, so that streams without a pool share stay as they were
        from_pool = opts.pool_share > 0 and rng.random() < opts.pool_share
        names = rng.sample(NAME_LISTS["pool" if from_pool else opts.names], n)
        templates = [rng.randrange(len(SPEECH_TEMPLATES)) for _ in range(n)]
        return Sampled(statements, names, templates, solution, attempt)
    raise GenerationError(f"no puzzle with a unique solution for {n} people in {tries} attempts "
                          f"(depth={opts.depth}, width={opts.width})")
