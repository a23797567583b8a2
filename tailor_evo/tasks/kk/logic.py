"""Statements, their evaluation, and the solver (over all assignments) for Knights and Knaves.

A statement is a tree of nested tuples (hashable, cheap to compare):
``("knight", j)``, ``("knave", j)``, ``("not", X)``, ``("and", X1, ..., Xw)``,
``("or", X1, ..., Xw)``, ``("implies", X, Y)``, ``("iff", X, Y)``.

Why bitmasks: with at most 8 people there are at most 256 role assignments, so
the set of assignments where a statement is true fits in one Python int. Every
question the generator, solver, verifier and executor ask ("is this claim still
satisfiable under this partial assignment?", "is the solution unique?") becomes a
couple of integer ``&``/``|`` operations, which keeps the executor fast enough
for the search to render thousands of trajectories.

Assignment ``m`` (an int in ``0..2**n-1``) makes person ``i`` a knight iff bit ``i`` is set.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

Tree = tuple

LEAF_OPS = ("knight", "knave")
NARY_OPS = ("and", "or")
BINARY_OPS = ("implies", "iff")
ALL_OPS = LEAF_OPS + ("not",) + NARY_OPS + BINARY_OPS

_OFFICIAL_TO_OURS = {"telling-truth": "knight", "lying": "knave", "not": "not", "and": "and", "or": "or",
                     "->": "implies", "<=>": "iff"}
_OURS_TO_OFFICIAL = {v: k for k, v in _OFFICIAL_TO_OURS.items()}


class StatementError(ValueError):
    """A statement tree that is not well formed (the message says where)."""


# --------------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------------
def check_tree(tree: Any, n: int, path: str = "statement") -> Tree:
    """Validate a tree (tuples or JSON lists) against ``n`` people; return it as tuples."""
    if not isinstance(tree, (list, tuple)) or not tree:
        raise StatementError(f"{path}: expected a non-empty list, got {tree!r}")
    op = tree[0]
    if op in LEAF_OPS:
        if len(tree) != 2 or isinstance(tree[1], bool) or not isinstance(tree[1], int) or not 0 <= tree[1] < n:
            raise StatementError(f"{path}: {op} needs one person index in 0..{n - 1}, got {list(tree[1:])!r}")
        return (op, tree[1])
    if op == "not":
        if len(tree) != 2:
            raise StatementError(f"{path}: not takes exactly one argument")
        return ("not", check_tree(tree[1], n, path + ".not"))
    if op in NARY_OPS:
        if len(tree) < 3:
            raise StatementError(f"{path}: {op} needs at least two arguments")
        return (op,) + tuple(check_tree(c, n, f"{path}.{op}[{k}]") for k, c in enumerate(tree[1:]))
    if op in BINARY_OPS:
        if len(tree) != 3:
            raise StatementError(f"{path}: {op} takes exactly two arguments")
        return (op, check_tree(tree[1], n, path + f".{op}[0]"), check_tree(tree[2], n, path + f".{op}[1]"))
    raise StatementError(f"{path}: unknown operator {op!r} (known: {', '.join(ALL_OPS)})")


def to_json(tree: Tree) -> list:
    """Tuples -> nested lists (the JSON form stored in ``Problem.meta``)."""
    if tree[0] in LEAF_OPS:
        return [tree[0], tree[1]]
    return [tree[0]] + [to_json(c) for c in tree[1:]]


def from_official(tree: Any) -> Tree:
    """The public dataset's tuple encoding ('telling-truth', '->', ...) -> ours."""
    if not isinstance(tree, tuple) or not tree or tree[0] not in _OFFICIAL_TO_OURS:
        raise StatementError(f"not an official statement node: {tree!r}")
    op = _OFFICIAL_TO_OURS[tree[0]]
    if op in LEAF_OPS:
        return (op, tree[1])
    return (op,) + tuple(from_official(c) for c in tree[1:])


def to_official(tree: Tree) -> tuple:
    op = _OURS_TO_OFFICIAL[tree[0]]
    if tree[0] in LEAF_OPS:
        return (op, tree[1])
    return (op,) + tuple(to_official(c) for c in tree[1:])


def parse_official_statements(text: str, n: int) -> tuple[Tree, ...]:
    """Parse the public ``statements`` string (a Python tuple literal) safely.

    ``ast.literal_eval`` only builds literals, it never runs code.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise StatementError(f"not a tuple literal: {exc}") from None
    if not isinstance(value, tuple) or len(value) != n:
        raise StatementError(f"expected a tuple of {n} statements")
    return tuple(check_tree(from_official(s), n, f"statement[{i}]") for i, s in enumerate(value))


def official_repr(statements: Sequence[Tree]) -> str:
    return repr(tuple(to_official(s) for s in statements))


def mentions(tree: Tree) -> list[int]:
    """People mentioned, in order of first mention (left to right)."""
    out: list[int] = []

    def walk(t: Tree) -> None:
        if t[0] in LEAF_OPS:
            if t[1] not in out:
                out.append(t[1])
        else:
            for c in t[1:]:
                walk(c)

    walk(tree)
    return out


def size(tree: Tree) -> int:
    """Number of leaves (the "shortest statement" heuristic)."""
    if tree[0] in LEAF_OPS:
        return 1
    return sum(size(c) for c in tree[1:])


def depth(tree: Tree) -> int:
    if tree[0] in LEAF_OPS:
        return 1
    return 1 + max(depth(c) for c in tree[1:])


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------
def evaluate(tree: Tree, roles: Sequence[bool]) -> bool:
    """Truth of a statement under a full assignment (``roles[i]`` True = knight)."""
    op = tree[0]
    if op == "knight":
        return bool(roles[tree[1]])
    if op == "knave":
        return not roles[tree[1]]
    if op == "not":
        return not evaluate(tree[1], roles)
    if op == "and":
        return all(evaluate(c, roles) for c in tree[1:])
    if op == "or":
        return any(evaluate(c, roles) for c in tree[1:])
    if op == "implies":
        return (not evaluate(tree[1], roles)) or evaluate(tree[2], roles)
    if op == "iff":
        return evaluate(tree[1], roles) == evaluate(tree[2], roles)
    raise StatementError(f"unknown operator {op!r}")


def truth_mask(tree: Tree, n: int) -> int:
    """The set of assignments (as a bitmask over ``2**n`` assignments) where ``tree`` is true."""
    full = (1 << (1 << n)) - 1
    op = tree[0]
    if op in LEAF_OPS:
        k = knight_mask(tree[1], n)
        return k if op == "knight" else full ^ k
    if op == "not":
        return full ^ truth_mask(tree[1], n)
    masks = [truth_mask(c, n) for c in tree[1:]]
    if op == "and":
        out = full
        for m in masks:
            out &= m
        return out
    if op == "or":
        out = 0
        for m in masks:
            out |= m
        return out
    if op == "implies":
        return (full ^ masks[0]) | masks[1]
    if op == "iff":
        return full ^ (masks[0] ^ masks[1])
    raise StatementError(f"unknown operator {op!r}")


_KNIGHT_MASKS: dict[tuple[int, int], int] = {}


def knight_mask(i: int, n: int) -> int:
    """Assignments in which person ``i`` is a knight."""
    key = (i, n)
    m = _KNIGHT_MASKS.get(key)
    if m is None:
        m = 0
        for a in range(1 << n):
            if a >> i & 1:
                m |= 1 << a
        _KNIGHT_MASKS[key] = m
    return m


def roles_of(a: int, n: int) -> list[bool]:
    return [bool(a >> i & 1) for i in range(n)]


def index_of(roles: Sequence[bool]) -> int:
    return sum(1 << i for i, r in enumerate(roles) if r)


@dataclass
class Puzzle:
    """Statements with their precomputed masks: the object every KK component reasons over."""

    statements: tuple[Tree, ...]
    n: int = field(init=False)
    full: int = field(init=False)
    true: list[int] = field(init=False)        # assignments where statement i is true
    consistent: list[int] = field(init=False)  # assignments where person i's role matches statement i
    knights: list[int] = field(init=False)     # assignments where person i is a knight

    def __post_init__(self) -> None:
        self.n = len(self.statements)
        self.full = (1 << (1 << self.n)) - 1
        self.knights = [knight_mask(i, self.n) for i in range(self.n)]
        self.true = [truth_mask(s, self.n) for s in self.statements]
        self.consistent = [self.full ^ (self.knights[i] ^ self.true[i]) for i in range(self.n)]
        self._solutions: int | None = None

    # -- sets of assignments ----------------------------------------------------------------
    def partial_mask(self, partial: dict[int, bool] | Iterable[tuple[int, bool]]) -> int:
        """Assignments that extend a partial assignment."""
        m = self.full
        items = partial.items() if isinstance(partial, dict) else partial
        for i, r in items:
            m &= self.knights[i] if r else self.full ^ self.knights[i]
        return m

    def role_mask(self, i: int, knight: bool) -> int:
        return self.knights[i] if knight else self.full ^ self.knights[i]

    def claim_mask(self, i: int, knight: bool) -> int:
        """Assignments where person ``i``'s claim has the value their role demands."""
        return self.true[i] if knight else self.full ^ self.true[i]

    def solutions_mask(self) -> int:
        if self._solutions is None:
            m = self.full
            for c in self.consistent:
                m &= c
            self._solutions = m
        return self._solutions

    def solutions(self) -> list[list[bool]]:
        m = self.solutions_mask()
        return [roles_of(a, self.n) for a in range(1 << self.n) if m >> a & 1]

    def count_solutions(self) -> int:
        return bin(self.solutions_mask()).count("1")

    def solve(self) -> list[bool] | None:
        """The unique consistent assignment, or None when there are zero or several."""
        m = self.solutions_mask()
        if m == 0 or m & (m - 1):
            return None
        return roles_of(m.bit_length() - 1, self.n)


def puzzle_of(problem: Any) -> "Puzzle":
    """The problem's statements with precomputed masks (cached on the object; meta untouched)."""
    pz = getattr(problem, "_kk_puzzle", None)
    if pz is None:
        n = len(problem.meta["names"])
        pz = Puzzle(tuple(check_tree(s, n) for s in problem.meta["statements"]))
        object.__setattr__(problem, "_kk_puzzle", pz)
    return pz
