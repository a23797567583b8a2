"""Drills of the component skills a KK explicit trace uses, for a base model's pretraining corpus.

The explicit rendering (:mod:`tailor_evo.tasks.kk.kleene`) makes every decision token one
look-up or one truth-table row away from what precedes it. Measured on SFT models
(``benchmarks/decision_tokens.py``), the value, claim and outcome tokens are learnt almost at
once, but the look-up of a person's role in the current case stays near 0.8 after 250 SFT
steps: it is an attention skill, and warm-start traces are too few to form it. Drilled in the
base, it is learnt on millions of tokens instead of thousands.

* **checks** (:func:`checks_text`): a case with random roles, some people possibly
  unassigned (``U``), then random claims of assigned speakers checked exactly as a trace
  checks them: each atom looked up in the case, the Kleene combination, the comparison with
  the speaker's role. Look-up, truth tables and "a knight's claim is true, a knave's false"
  in their trace form.
* **truth tables** (:func:`truth_text`): rows of not / and / or / if-then / iff over
  ``T``, ``F``, ``U``, written as a trace writes them (``"U or T, T"``).

Neither involves a puzzle: the claims are random and the case is random, never a puzzle's
solution, so a document never holds a problem with its solution.
"""

from __future__ import annotations

import random
from typing import Sequence

from tailor_evo.tasks.kk import kleene
from tailor_evo.tasks.kk.generator import GenOptions, sample_statement
from tailor_evo.tasks.kk.text import COMMON_NAMES

_VALUES = (True, False, None)


def random_case(rng: random.Random, n: int, unknown_share: float = 0.3) -> dict[int, bool]:
    """Roles for people 0..n-1, each left unassigned with probability ``unknown_share`` (at
    least one person is assigned, so that someone can speak)."""
    view = {i: rng.random() < 0.5 for i in range(n) if rng.random() >= unknown_share}
    if not view:
        view[rng.randrange(n)] = rng.random() < 0.5
    return view


def checks_text(rng: random.Random, names_pool: Sequence[str] = COMMON_NAMES, cases: int = 2) -> str:
    """``cases`` random cases, each followed by the checks of up to three random claims."""
    out = []
    for _ in range(cases):
        n = rng.randint(2, 5)
        names = rng.sample(list(names_pool), k=n)
        view = random_case(rng, n, unknown_share=rng.choice((0.0, 0.3)))
        speakers = rng.sample(sorted(view), k=min(len(view), rng.randint(1, 3)))
        opts = GenOptions(depth=rng.choice((1, 2, 2, 3)))
        checks = [kleene.check_claim(sample_statement(rng, n, s, opts), s, view, names).text for s in speakers]
        out.append(kleene.case_text(view, names) + " " + " ".join(checks))
    return "\n".join(out)


def truth_row(rng: random.Random) -> str:
    """One row of a Kleene truth table, in a trace's wording."""
    op = rng.choice(("not", "and", "or", "implies", "iff"))
    if op == "not":
        a = rng.choice(_VALUES)
        return f"not {kleene.word(a)}, {kleene.word(kleene.k_not(a))}"
    if op in ("and", "or"):
        parts = [rng.choice(_VALUES) for _ in range(rng.randint(2, 3))]
        v = kleene.k_and(parts) if op == "and" else kleene.k_or(parts)
        return f" {op} ".join(kleene.word(x) for x in parts) + f", {kleene.word(v)}"
    a, b = rng.choice(_VALUES), rng.choice(_VALUES)
    if op == "implies":
        return f"if {kleene.word(a)} then {kleene.word(b)}, {kleene.word(kleene.k_implies(a, b))}"
    return f"{kleene.word(a)} iff {kleene.word(b)}, {kleene.word(kleene.k_iff(a, b))}"


def truth_text(rng: random.Random, n: int = 12) -> str:
    """``n`` random truth-table rows."""
    return "Truth table: " + "; ".join(truth_row(rng) for _ in range(n)) + "."
