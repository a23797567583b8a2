"""Drills of the component skills an iGSM trace uses, for a base model's pretraining corpus.

The explicit rendering (:mod:`tailor_evo.tasks.igsm.executor`) makes every value token
one look-up or one arithmetic fact away from what precedes it. Two of those skills
are nowhere in a reading corpus, so a base that never saw them would have to infer
them from a few hundred warm-start traces (modular tables are learnt from examples
only after very long training); drilled directly they are memorised:

* **modular facts**: every ``a op b`` with a, b in 0..22 and op in + - *, written
  exactly as a trace writes it ("7 + 19 = 26 mod 23 = 3", "4 * 5 = 20"), as random
  facts or as a table row;
* **reading a stated value**: a problem's text, then the quantities it states as a
  plain number, each beside its value, as a trace lists them ("X's Y = 7 (given).");
* **quoting a sentence**: a problem's text, then some of its sentences copied as the
  quoted rendering copies them ("Read: The number of each X's Y equals ..."), for
  quantities in random order, so that the words after "each X's Y equals" must be found
  by the name, not by the position of the sentence copied before.

None computes anything a problem asks: the facts involve no problem, and the
value reading and the quotes never name the queried quantity, so a document never
holds a problem with its solution.
"""

from __future__ import annotations

import random

from tailor_evo.tasks.base import Problem
from tailor_evo.tasks.igsm.graph import INSTANCE, MOD, graph_of
from tailor_evo.tasks.igsm.text import calc_text, sentence

OPS = ("+", "-", "*")


def mod_fact(rng: random.Random) -> str:
    """One fact, uniform over all 3 x 23 x 23 of them."""
    return calc_text(rng.choice(OPS), rng.randrange(MOD), rng.randrange(MOD))


def mod_facts_text(rng: random.Random, n: int = 8) -> str:
    """``n`` random facts, or a run of one row of a table (a fixed, op, b counting up)."""
    if rng.random() < 0.5:
        facts = [mod_fact(rng) for _ in range(n)]
    else:
        op, a, start = rng.choice(OPS), rng.randrange(MOD), rng.randrange(MOD)
        facts = [calc_text(op, a, (start + k) % MOD) for k in range(n)]
    return f"Modulo {MOD}: " + ". ".join(facts) + "."


def stated_values(problem: Problem) -> list[tuple[str, int]]:
    """(name, value) of every quantity the problem states as a plain number, in text order,
    except the queried one (its stated number would be the answer)."""
    g = graph_of(problem)
    out = []
    for pid in g.order:
        p = g.params[pid]
        if p.kind == INSTANCE and p.form is not None and p.form.inner is None and pid != g.question:
            out.append((p.name, int(p.form.const)))
    return out


def value_reading_text(problem: Problem, rng: random.Random, most: int = 4) -> str | None:
    """The problem, then up to ``most`` of its stated quantities (a random choice, in text
    order), each beside its value; None when it states none but the queried one."""
    values = stated_values(problem)
    if not values:
        return None
    keep = sorted(rng.sample(range(len(values)), k=min(most, len(values))))
    lines = [f"{values[i][0]} = {values[i][1]} (given)." for i in keep]
    return problem.question + "\nValues the problem states: " + " ".join(lines)


def quote_text(problem: Problem, rng: random.Random, most: int = 4) -> str | None:
    """The problem, then up to ``most`` of its sentences in random order, each copied as the
    quoted rendering copies it; never the queried quantity's sentence. None when the
    problem has no other sentence."""
    from tailor_evo.tasks.igsm.executor import QUOTE_LEAD

    g = graph_of(problem)
    sentences = [sentence(g, g.params[pid]) for pid in g.order if pid != g.question]
    if not sentences:
        return None
    picks = rng.sample(sentences, k=min(most, len(sentences)))
    return problem.question + "\n" + " ".join(f"{QUOTE_LEAD} {s}" for s in picks)
