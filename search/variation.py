"""What a variation operator family is to the search: the base class, its inputs, its counts.

A family (``gp``, ``llm``, or one of yours) makes each generation's children from the
population and the archive. The engine gives it a :class:`VariationContext` once per run
and then only calls :meth:`VariationOperator.vary` and :meth:`VariationOperator.take_counts`;
it never reaches into the family's own objects. Families are found by name in
:mod:`tailor_evo.search.operators`.

What a family must keep, for exact resume and for the lineage:

- every random choice comes from the ``rng`` argument (the search saves its state in the
  checkpoint), never from an unseeded source;
- a child whose program id is in ``seen`` is not returned, and every returned child's id is
  added to ``seen`` (the search evaluates a program once);
- a child's ``operator`` is ``"<family>:<kind>"`` (``archive show`` groups by the family).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from tailor_evo.generation.base import Engine
from tailor_evo.search.config import EvolutionConfig, LLMConfig
from tailor_evo.search.genome import Primitive, program_id
from tailor_evo.search.gp import TreeOperators
from tailor_evo.tasks.base import Grammar, Task


@dataclass
class VariationCounts:
    """What a family did since it was last asked, by reason. The engine adds these to the
    checkpointed totals and logs each generation's share (``operator_ok``, ...)."""

    ok: Counter = field(default_factory=Counter)          # children made, by kind
    rejected: Counter = field(default_factory=Counter)    # attempts refused, by reason
    invalid: Counter = field(default_factory=Counter)     # unusable LLM replies, by reason (``llm_invalid``)
    valid: int = 0                                        # usable LLM replies (``llm_valid``)


@dataclass
class VariationContext:
    """What a family may use: the run's task and move grammar, its settings, and helpers."""

    task: Task
    grammar: Grammar
    trees: TreeOperators                # validation (``check``), random subtrees, DEAP's typed tree operators
    evolution: EvolutionConfig
    llm: LLMConfig
    llm_engine: Callable[[], Engine]    # the run's LLM engine, made on the first call (needs ``llm.spec``)

    def child(self, program: dict, description: str, parents: list[str], operator: str,
              generation: int) -> Primitive:
        """A new primitive; without a description, the grammar renders one from the program."""
        return Primitive.create(self.task.name, program, description or self.grammar.describe(program),
                                parents=parents, operator=operator, generation=generation)

    def random_program(self, rng: random.Random, seen: set[str]) -> dict | None:
        """A valid random program not evaluated before (``evolution.random_depth`` deep), or None."""
        for _ in range(50):
            program = self.trees.gps.grow(self.grammar.root, rng, self.evolution.random_depth)
            if not self.trees.check(program) and program_id(program) not in seen:
                return program
        return None


class VariationOperator:
    """A family of variation operators. Subclass it, set ``name``, implement :meth:`vary`, and
    register the class (:func:`tailor_evo.search.operators.register_operator`)."""

    name: ClassVar[str] = ""
    needs_llm: ClassVar[bool] = False    # needs an LLM backend: the config check asks for ``llm.spec``

    def __init__(self, ctx: VariationContext) -> None:
        self.ctx = ctx

    def vary(self, population: list[Primitive], n: int, rng: random.Random, seen: set[str], generation: int,
             archive: list[Primitive] | None = None) -> list[Primitive]:
        """Up to ``n`` new children of ``population`` (and, if the family likes, the ``archive``)."""
        raise NotImplementedError

    def take_counts(self) -> VariationCounts:
        """What the family did since the last call; it starts counting afresh."""
        return VariationCounts()

    @property
    def mode(self) -> str | None:
        """How the family works this run, logged with each generation (``llm``: constrained or free)."""
        return None
