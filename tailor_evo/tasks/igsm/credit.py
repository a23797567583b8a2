"""Partial credit for iGSM: the share of the solution's quantities a trace states right.

An iGSM answer is one number, so "the share of the answer that is right" (the RL
``partial`` reward) has to look at the trace: a wrong answer whose trace found most of
the quantities the question needs is nearer the solution than one that went wrong at the
first. Binary rewards give a group of eight wrong answers no signal at all; this ranks
them.

What counts as stating a value, in every wording the executor writes:

* A statement is ``<X> = <v>`` or ``<X> is <v>``, where ``X`` is a quantity's name, or a
  symbol that an earlier ``Define <name> as <symbol>`` bound to one.
* Its clause runs to the next ``,`` ``;`` ``:`` `` and ``, ``too``, line break or sentence end
  (``, which is`` continues it: ``X = 9 + Y, which is 9 + 4 = 13``).
* ``v`` is the clause's last ``=``-separated part that is an integer, less a closing
  remark in brackets (``19 (given)``), taken modulo 23 (the public format writes ``= 24``
  and reduces it after): ``so A = 14 + m = 14 + 18 = 9`` states 9 for A, and
  ``A = 14 + m`` states nothing. An operand is not a subject: ``x + B = 19`` says
  nothing of B.
* Only the *first* value stated for a quantity counts, and a quantity binds one symbol,
  once, from its ``Define`` on: writing every residue in turn, or binding a symbol late
  to a value written before, earns nothing.

Quantities the problem states (``X = 5``, copied) count like computed ones: reading the
right sentence is part of the solution, and one this model family gets wrong.

The credit is not a second answer check: a right answer gets 1 whatever its trace says
(the verdict is the measure), one without a parsable answer 0, and a wrong one the share
of the necessary quantities stated right. The asked quantity is in the denominator but
never in the numerator (its value is the answer's to give), so the share stays below 1.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tailor_evo.tasks.base import THINK_CLOSE, THINK_OPEN
from tailor_evo.tasks.igsm.graph import MOD, Graph

_DEFINE = re.compile(r"Define (?P<name>[^;.\n]+?) as (?P<sym>[A-Za-z][0-9]*)(?![\w'])")
_CLAUSE_END = re.compile(r",(?! which is )|[;:]|\.(?:\s|$)|\n| and | too\b|$")
_PARTS = re.compile(r" = |, which is ")
_INT = re.compile(r"-?[0-9]{1,12}")                  # longer runs are no residue anyone computed
_REMARK = re.compile(r"\s*\([^()=]*\)$")            # "19 (given)", "0 (Elm Park has no Toy below it)"


@lru_cache(maxsize=64)
def _statement_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """A ``Define``, or a subject (one of ``names``, longest first so that "Elm Park's Sand Pit"
    wins over a shorter name inside it, else a symbol-shaped word) that is not an operand,
    followed by `` = `` or `` is ``."""
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"{_DEFINE.pattern}|(?<![\w'(])(?<![-+*] )(?P<subject>{alts}|[A-Za-z][0-9]*) (?:=|is) ")


def reasoning_of(completion: str) -> str:
    """The text inside ``<think> ... </think>`` (the whole text when the tags are missing)."""
    start = completion.find(THINK_OPEN)
    end = completion.find(THINK_CLOSE, start + 1 if start >= 0 else 0)
    if start < 0 or end < 0:
        return completion
    return completion[start + len(THINK_OPEN):end]


def _stated(clause: str) -> int | None:
    """The residue of the last integer part of a clause's chain ("14 + m = 14 + 18 = 9" -> 9;
    the public format's unreduced "= 24" -> 1, which it reduces next), else None."""
    for part in reversed(_PARTS.split(clause)):
        part = _REMARK.sub("", part.strip())
        if _INT.fullmatch(part):
            return int(part) % MOD
    return None


def stated_values(g: Graph, text: str) -> dict[int, int]:
    """The first value ``text`` states for each of the problem's quantities, by parameter id,
    reading bindings and statements in the order they are written."""
    by_name = {p.name: p.id for p in g.params}
    symbols: dict[str, int] = {}
    bound: set[int] = set()
    values: dict[int, int] = {}
    for m in _statement_pattern(tuple(by_name)).finditer(text):
        if m.group("name") is not None:                      # Define <name> as <symbol>
            pid = by_name.get(m.group("name").strip())
            if pid is not None and pid not in bound and m.group("sym") not in symbols:
                symbols[m.group("sym")] = pid
                bound.add(pid)
            continue
        subject = m.group("subject")
        pid = by_name.get(subject, symbols.get(subject))
        if pid is None or pid in values:
            continue
        end = _CLAUSE_END.search(text, m.end()).start()
        value = _stated(text[m.end():end])
        if value is not None:
            values[pid] = value
    return values


def solution_share(g: Graph, completion: str) -> float:
    """Share of the question's necessary quantities whose first stated value is right: the
    numerator leaves the asked quantity out, the denominator counts it."""
    needed = g.needed()
    truth = g.values()
    stated = stated_values(g, reasoning_of(completion))
    right = sum(1 for pid in needed if pid != g.question and stated.get(pid) == truth[pid])
    return right / len(needed)
