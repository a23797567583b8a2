"""Partial credit for iGSM: the share of the solution's quantities a trace states right.

An iGSM answer is one number, so "the share of the answer that is right" (the RL
``partial`` reward) has to look at the trace: a wrong answer whose trace found most of
the quantities the question needs is nearer the solution than one that went wrong at the
first. Binary rewards give a group of eight wrong answers no signal at all; this ranks
them.

What counts as stating a value, in every wording the executor writes:

* ``<X> = <v>`` or ``<X> is <v>``, where ``X`` is a quantity's name or a symbol that a
  ``Define <name> as <symbol>`` bound to one, and the clause (up to ``,`` ``;`` ``and``
  ``too`` or the end of the sentence, less a closing remark in brackets) ends in the integer ``v``, after any chain: ``so
  A = 14 + m = 14 + 18 = 9`` states 9 for A; ``A = 14 + m`` states nothing. ``v`` is
  taken modulo 23 (the public format writes ``= 24`` and reduces it after).
* Only the *first* value stated for a quantity counts, and only the first symbol bound to
  it, so writing every residue in turn earns nothing.

The credit is not a second answer check: a right answer gets 1 whatever its trace says
(the verdict is the measure), a malformed one 0, and a wrong one the share of the
necessary quantities (the queried one counted, and never right) whose first stated value
is their true value, so it stays below 1.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tailor_evo.tasks.base import THINK_CLOSE, THINK_OPEN
from tailor_evo.tasks.igsm.graph import MOD, Graph

_DEFINE = re.compile(r"Define (?P<name>.+?) as (?P<sym>[A-Za-z][0-9]*)(?![\w'])")
_CLAUSE_END = re.compile(r"[,;]|\.(?:\s|$)| and | too\b|$")
_INT = re.compile(r"-?[0-9]+")
_REMARK = re.compile(r"\s*\([^()=]*\)$")   # "19 (given)", "0 (Elm Park has no Toy below it)"


@lru_cache(maxsize=256)
def _subject_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``names`` as a whole phrase that is not an operand ("x + B = 19" states x + B,
    not B), then `` = `` or `` is ``; longest names first so that "Elm Park's Sand Pit"
    wins over a shorter name it contains."""
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w'(])(?<![-+*] )(?P<subject>{alts}) (?:=|is) ")


def reasoning_of(completion: str) -> str:
    """The text inside ``<think> ... </think>`` (the whole text when the tags are missing)."""
    start = completion.find(THINK_OPEN)
    end = completion.find(THINK_CLOSE, start + 1 if start >= 0 else 0)
    if start < 0 or end < 0:
        return completion
    return completion[start + len(THINK_OPEN):end]


def _stated(clause: str) -> int | None:
    """The residue of the integer a clause ends its chain with ("14 + m = 14 + 18 = 9" -> 9;
    the public format's unreduced "= 24" -> 1, which it reduces next), else None."""
    last = _REMARK.sub("", clause.rsplit(" = ", 1)[-1].strip())
    return int(last) % MOD if _INT.fullmatch(last) else None


def stated_values(g: Graph, text: str) -> dict[int, int]:
    """The first value ``text`` states for each of the problem's quantities, by parameter id."""
    by_name = {p.name: p.id for p in g.params}
    symbols: dict[str, int] = {}
    bound: set[int] = set()
    for m in _DEFINE.finditer(text):
        pid = by_name.get(m.group("name").strip())
        if pid is not None and pid not in bound and m.group("sym") not in symbols:
            symbols[m.group("sym")] = pid
            bound.add(pid)
    subjects = {**by_name, **symbols}
    text = text.replace(", which is ", " = ")   # "X = 9 + Y, which is 9 + 4 = 13": one chain
    values: dict[int, int] = {}
    for m in _subject_pattern(tuple(subjects)).finditer(text):
        pid = subjects[m.group("subject")]
        if pid in values:
            continue
        rest = text[m.end():]
        clause = rest[:_CLAUSE_END.search(rest).start()]
        value = _stated(clause)
        if value is not None:
            values[pid] = value
    return values


def solution_share(g: Graph, completion: str) -> float:
    """Share of the question's necessary quantities whose first stated value is right, the
    queried quantity left uncounted above the line (its value is the answer's to give)."""
    needed = g.needed()
    truth = g.values()
    stated = stated_values(g, reasoning_of(completion))
    right = sum(1 for pid in needed if pid != g.question and stated.get(pid) == truth[pid])
    return right / len(needed)
