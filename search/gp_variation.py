"""The ``gp`` variation family: DEAP's typed tree mutation and crossover on programs.

The offline default. Each generation brings a few random immigrants (fresh programs, so
the search never loses the ability to jump), then children by one-point crossover of two
parents (``evolution.crossover_prob``) or by one of the tree mutations, every child valid
by construction (:class:`~tailor_evo.search.gp.TreeOperators` checks and counts). A parent
is sometimes an archived elite rather than a survivor (``evolution.archive_parents``): the
archive holds diverse stepping stones that the population may have dropped.
"""

from __future__ import annotations

import random

from tailor_evo.search.genome import Primitive, program_id
from tailor_evo.search.variation import VariationCounts, VariationOperator


class GPVariation(VariationOperator):
    name = "gp"

    def _parent(self, population: list[Primitive], archive: list[Primitive], rng: random.Random) -> Primitive:
        """A parent: usually from the population, sometimes an archived elite (a diverse stepping stone)."""
        if archive and rng.random() < self.ctx.evolution.archive_parents:
            return rng.choice(archive)
        return rng.choice(population)

    def vary(self, population: list[Primitive], n: int, rng: random.Random, seen: set[str], generation: int,
             archive: list[Primitive] | None = None) -> list[Primitive]:
        ctx, evo, trees = self.ctx, self.ctx.evolution, self.ctx.trees
        archive = archive or []
        children: list[Primitive] = []
        for _ in range(min(n, evo.immigrants)):
            program = ctx.random_program(rng, seen)
            if program is not None:
                seen.add(program_id(program))
                children.append(ctx.child(program, "", [], "random", generation))
        for _ in range(n * 4):
            if len(children) >= n:
                break
            if len(population) >= 2 and rng.random() < evo.crossover_prob:
                a, b = self._parent(population, archive, rng), self._parent(population, archive, rng)
                if a.id == b.id:
                    continue
                program, kind = trees.crossover(a.program, b.program, rng)
                parents = [a.id, b.id]
            else:
                a = self._parent(population, archive, rng)
                program, kind = trees.mutate(a.program, rng)
                parents = [a.id]
            if program is None:
                continue
            if program_id(program) in seen:
                trees.refuse(kind, "already evaluated")
                continue
            seen.add(program_id(program))
            children.append(ctx.child(program, "", parents, f"gp:{kind}", generation))
        return children

    def take_counts(self) -> VariationCounts:
        stats = self.ctx.trees.take_stats()
        return VariationCounts(ok=stats.ok, rejected=stats.rejected)
