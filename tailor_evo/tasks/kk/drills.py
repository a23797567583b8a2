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
* **successive cases** (:func:`cases_text`): the same people, each with one random claim, in
  one case after another, each case checking some of the claims. An enumeration trace writes
  up to eight cases over the same names, so a look-up must find the person in the *latest*
  case, not in any earlier one;
  ``checks_text`` gives each case new names and never drills that. Measured on SFT models, the
  look-up of a case's roles is right in a trace's first case and near 0.7 in its later ones
  when this skill does not form (``docs/backbones.md``).
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


def cases_text(rng: random.Random, names_pool: Sequence[str] = COMMON_NAMES, max_chars: int = 720) -> str:
    """Successive cases over the same 3 or 4 people, each followed by the checks of some of
    their claims, until the document would pass ``max_chars`` (at least two cases).

    Each person has one claim for the whole document, as in a trace, where a claim restated in
    one case is the same in the next. Each case differs from the one before it, so a role
    copied from an earlier case is wrong. At most all people but one are checked in a case, so
    no case checks a puzzle. ``max_chars`` keeps a document inside one pretraining row (at
    most about 370 tokens of the shipped tokenizer).
    """
    n = rng.randint(3, 4)
    names = rng.sample(list(names_pool), k=n)
    opts = GenOptions(depth=rng.choice((1, 2, 2)))
    claims = [sample_statement(rng, n, s, opts) for s in range(n)]
    parts: list[str] = []
    size, previous = 0, None
    while True:
        view = random_case(rng, n, unknown_share=rng.choice((0.0, 0.0, 0.3)))
        if view == previous:
            continue
        speakers = sorted(rng.sample(sorted(view), k=min(len(view), rng.randint(1, n - 1))))
        checks = [kleene.check_claim(claims[s], s, view, names).text for s in speakers]
        text = kleene.case_text(view, names) + " " + " ".join(checks)
        if len(text) > max_chars // 2:      # too long a case: draw another, so that two always fit
            continue
        if size + len(text) + 1 > max_chars:
            return " ".join(parts)
        parts.append(text)
        size += len(text) + 1
        previous = view


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
