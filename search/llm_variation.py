"""The ``llm`` variation family: an LLM proposes mutated or recombined primitives.

The paper's operator. :class:`~tailor_evo.search.llm_operator.LLMOperator` writes the
prompts and parses and validates the replies; this family draws the parents (survivors
and archived elites alike, each shown with its description), refuses a valid reply whose
program was already evaluated, and decides whether decoding is constrained to the move
grammar's JSON schema (``llm.constrained``).
"""

from __future__ import annotations

import random

from tailor_evo.errors import InputError
from tailor_evo.generation.base import Engine
from tailor_evo.search.genome import Primitive, program_id
from tailor_evo.search.llm_operator import LLMOperator
from tailor_evo.search.variation import VariationContext, VariationCounts, VariationOperator


class LLMVariation(VariationOperator):
    name = "llm"
    needs_llm = True

    def __init__(self, ctx: VariationContext) -> None:
        super().__init__(ctx)
        engine = ctx.llm_engine()
        self.op = LLMOperator(engine, ctx.grammar, ctx.trees.check, ctx.llm.temperature, ctx.llm.max_new_tokens,
                              ctx.evolution.crossover_prob, chat=ctx.llm.chat, schema=self._reply_schema(engine))

    def _reply_schema(self, engine: Engine) -> dict | None:
        """The JSON schema of an operator reply when decoding is constrained (``llm.constrained``)."""
        from tailor_evo.search.reply_schema import reply_schema

        ctx = self.ctx
        mode, can = ctx.llm.constrained, bool(getattr(engine, "supports_constraints", False))
        if mode == "on" and not can:
            raise InputError(f"the engine {ctx.llm.spec!r} cannot constrain its decoding; "
                             "set llm.constrained to auto or off", field="llm.constrained")
        if mode == "on" or (mode == "auto" and can):
            return reply_schema(ctx.grammar, ctx.trees.max_depth, ctx.trees.max_nodes)
        return None

    def vary(self, population: list[Primitive], n: int, rng: random.Random, seen: set[str], generation: int,
             archive: list[Primitive] | None = None) -> list[Primitive]:
        members = {p.id: p for p in population + list(archive or [])}
        pool = [(p.id, p.description, p.program) for p in members.values()]
        children = []
        for prop in self.op.propose(pool, n, rng):
            pid = program_id(prop.program)
            if pid in seen:          # a valid reply, but not a new child: counted once, as refused
                self.op.refuse("already evaluated")
                continue
            seen.add(pid)
            children.append(self.ctx.child(prop.program, prop.description, prop.parents, f"llm:{prop.kind}",
                                           generation))
        return children

    def take_counts(self) -> VariationCounts:
        invalid, valid = self.op.take_counts()
        return VariationCounts(invalid=invalid, valid=valid)

    @property
    def mode(self) -> str | None:
        return self.op.mode
