"""Genetic programming over a task's move grammar: JSON programs <-> DEAP typed trees.

The search stores programs as JSON trees (``{"op": name, "args": [...]}``) because that
is what tasks execute and what an LLM can read and write. Variation uses DEAP's
strongly typed GP operators, so programs are converted to ``gp.PrimitiveTree`` and back.
Every child is validated against the grammar (types, arity, depth) and a size limit
before it is accepted; a failed attempt is counted by reason and retried.

DEAP's operators draw from the global ``random`` module. To keep runs reproducible
(and resumable to the identical result) the caller seeds ``random`` from the search's
own generator before each operator call, and DEAP's type objects get a name-based hash
so that DEAP's internal sets of types iterate in the same order in every process.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from dataclasses import dataclass, field

from deap import gp

from tailor_evo.search.genome import program_size
from tailor_evo.tasks.base import Grammar, MoveSpec


class _TypeMeta(type):
    """Metaclass of DEAP type tags: hashed by name, so set order is stable across processes."""

    def __hash__(cls) -> int:
        return zlib.crc32(cls.__name__.encode("utf-8"))

    def __eq__(cls, other: object) -> bool:
        return cls is other


class GrammarPset:
    """A DEAP ``PrimitiveSetTyped`` mirroring a :class:`Grammar`, with conversions."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        type_names = sorted({grammar.root} | {m.ret for m in grammar.moves} | {a for m in grammar.moves for a in m.args})
        self.types = {name: _TypeMeta(f"T_{name}", (), {}) for name in type_names}
        self.pset = gp.PrimitiveSetTyped(f"grammar_{grammar.task}", [], self.types[grammar.root])
        for move in grammar.moves:
            if move.args:
                self.pset.addPrimitive(_noop, [self.types[a] for a in move.args], self.types[move.ret], name=move.name)
            else:
                self.pset.addTerminal(move.name, self.types[move.ret], name=move.name)
        self._by_type: dict[str, list[MoveSpec]] = {}
        for move in grammar.moves:
            self._by_type.setdefault(move.ret, []).append(move)
        self._type_name = {cls: name for name, cls in self.types.items()}

    # --- conversions -----------------------------------------------------------------
    def to_tree(self, program: dict) -> gp.PrimitiveTree:
        nodes: list = []

        def walk(node: dict) -> None:
            nodes.append(self.pset.mapping[node["op"]])
            for arg in node.get("args", []):
                walk(arg)

        walk(program)
        return gp.PrimitiveTree(nodes)

    def to_program(self, tree: gp.PrimitiveTree) -> dict:
        pos = 0

        def build() -> dict:
            nonlocal pos
            node = tree[pos]
            pos += 1
            return {"op": node.name, "args": [build() for _ in range(node.arity)]}

        program = build()
        if pos != len(tree):
            raise ValueError("tree has trailing nodes")
        return program

    # --- random subtrees ---------------------------------------------------------------
    def grow(self, type_name: str, rng: random.Random, max_depth: int) -> dict:
        """A random well-typed subtree, closing off near the depth limit (``Grammar.choices``)."""
        move = rng.choice(self.grammar.choices(type_name, max_depth <= 1))
        return {"op": move.name, "args": [self.grow(a, rng, max_depth - 1) for a in move.args]}

    def expr(self, pset: gp.PrimitiveSetTyped, type_: type, max_depth: int = 3) -> list:
        """DEAP ``expr`` callback for ``mutUniform``: a subtree of ``type_`` as a node list."""
        program = self.grow(self._type_name[type_], random, max_depth)
        return list(self.to_tree(program))


def _noop(*_args):  # primitives are never compiled; programs run in the task's executor
    return None


MUTATIONS = ("subtree", "point", "insert", "shrink")


@dataclass
class VariationStats:
    """How many children each operator produced, and why attempts were rejected."""

    ok: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"ok": dict(self.ok), "rejected": dict(self.rejected)}


class TreeOperators:
    """Typed mutation and crossover on JSON programs, each child validated.

    ``mutate(program, rng, kind)`` and ``crossover(a, b, rng)`` return a valid program
    or ``None`` (after ``attempts`` rejected tries, reasons counted in ``stats``).
    """

    def __init__(self, grammar: Grammar, *, max_depth: int = 10, max_nodes: int = 40, subtree_depth: int = 3,
                 attempts: int = 8) -> None:
        self.grammar = grammar
        self.gps = GrammarPset(grammar)
        self.max_depth, self.max_nodes, self.subtree_depth, self.attempts = max_depth, max_nodes, subtree_depth, attempts
        self.stats = VariationStats()

    def refuse(self, kind: str, reason: str) -> None:
        """Count a child this object made that the caller refuses after all (e.g. already evaluated)."""
        self.stats.rejected[f"{kind}: {reason}"] += 1

    def take_stats(self) -> VariationStats:
        """The counts since the last call; counting starts afresh."""
        stats, self.stats = self.stats, VariationStats()
        return stats

    def check(self, program: dict) -> str | None:
        """Reason the program is unacceptable, or None."""
        errors = self.grammar.validate(program, max_depth=self.max_depth)
        if errors:
            return "invalid: " + errors[0].split(": ", 1)[-1].split(" ")[0]
        if program_size(program) > self.max_nodes:
            return "too large"
        return None

    def _apply(self, kind: str, tree: gp.PrimitiveTree) -> gp.PrimitiveTree:
        pset = self.gps.pset
        if kind == "subtree":
            return gp.mutUniform(tree, lambda pset, type_: self.gps.expr(pset, type_, self.subtree_depth), pset)[0]
        if kind == "point":
            return gp.mutNodeReplacement(tree, pset)[0]
        if kind == "insert":
            return gp.mutInsert(tree, pset)[0]
        if kind == "shrink":
            return gp.mutShrink(tree)[0]
        raise ValueError(f"unknown mutation {kind!r}")

    def mutate(self, program: dict, rng: random.Random, kind: str | None = None) -> tuple[dict | None, str]:
        """One mutated child of ``program`` (``kind`` random among MUTATIONS when None)."""
        for _ in range(self.attempts):
            k = kind or rng.choice(MUTATIONS)
            random.seed(rng.getrandbits(64))
            try:
                child = self.gps.to_program(self._apply(k, self.gps.to_tree(program)))
            except (IndexError, ValueError, KeyError) as exc:  # e.g. no terminal of a needed type
                self.stats.rejected[f"{k}: {type(exc).__name__}"] += 1
                continue
            reason = self.check(child) or ("unchanged" if child == program else None)
            if reason:
                self.stats.rejected[f"{k}: {reason}"] += 1
                continue
            self.stats.ok[k] += 1
            return child, k
        return None, kind or "mutation"

    def crossover(self, a: dict, b: dict, rng: random.Random) -> tuple[dict | None, str]:
        """One child of typed one-point crossover (the first of DEAP's two offspring, else the second)."""
        for _ in range(self.attempts):
            random.seed(rng.getrandbits(64))
            t1, t2 = gp.cxOnePoint(self.gps.to_tree(a), self.gps.to_tree(b))
            for tree in (t1, t2):
                child = self.gps.to_program(tree)
                reason = self.check(child) or ("unchanged" if child in (a, b) else None)
                if reason is None:
                    self.stats.ok["crossover"] += 1
                    return child, "crossover"
                self.stats.rejected[f"crossover: {reason}"] += 1
        return None, "crossover"
