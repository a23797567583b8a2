"""Full-solution checking for detailed iGSM solutions ("Define X as x; ...; so x = ... = v.").

The answer-only verifier is what rewards need; this checker is for analysing
reasoning: it accepts any correct detailed solution, in any valid order, and
names the first thing that is wrong. Rules:

1. Sentences are split on ". ", units on "; ". A sentence starts with
   "Define <parameter name> as <symbol>" and its last unit, "so <symbol> = ...",
   computes that symbol; units before it define intermediates.
2. A unit is "s = v" (a constant or an empty count), "s = t = v" (a copy) or
   "s = a op b = m op n = v" with op one of + - *. Symbols are never defined twice
   and never used before they are defined; every number written for a symbol equals
   its value; every calculation is right modulo 23.
3. Every defined name is a real parameter, and the parameters a definition uses
   (traced through its intermediates) are exactly that parameter's inputs.
   Stated constants are not compared with the text; a wrong one shows in the answer.
4. The last sentence defines the queried parameter and its value is the answer.

Correct but unnecessary definitions are allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailor_evo.tasks.igsm.graph import MOD, Graph, apply

_SYM = re.compile(r"[A-Za-z][0-9]*")
_NUM = re.compile(r"-?[0-9]+")
_DEFINE = re.compile(r"Define (.+) as ([A-Za-z][0-9]*)")


@dataclass(frozen=True)
class SolutionCheck:
    ok: bool
    reason: str                     # "ok" or the first problem found, with the sentence number
    defined: tuple[int, ...] = ()   # parameter ids in the order the solution defines them
    value: int | None = None        # value of the last definition


def check_solution(g: Graph, text: str) -> SolutionCheck:
    """Check a detailed solution against the problem's graph; never raises."""
    try:
        return _check(g, text)
    except Exception as exc:  # noqa: BLE001 - malformed text must give a verdict, not a crash
        return SolutionCheck(False, f"unreadable solution ({type(exc).__name__})")


def _check(g: Graph, text: str) -> SolutionCheck:
    if not isinstance(text, str) or not text.strip():
        return SolutionCheck(False, "empty solution")
    by_name = {p.name: p.id for p in g.params}
    values: dict[str, int] = {}          # symbol -> value
    uses: dict[str, frozenset[int]] = {}  # symbol -> parameters it is computed from (a parameter: itself)
    defined: list[int] = []
    last_value: int | None = None
    body = text.strip()
    if body.endswith("."):
        body = body[:-1]
    for k, sentence in enumerate(body.split(". "), start=1):
        where = f"sentence {k}"
        units = sentence.split("; ")
        m = _DEFINE.fullmatch(units[0].strip())
        if not m:
            return SolutionCheck(False, f"{where}: expected 'Define <name> as <symbol>'")
        name, sym = m.group(1), m.group(2)
        if name not in by_name:
            return SolutionCheck(False, f"{where}: {name!r} is not a parameter of the problem")
        pid = by_name[name]
        if pid in defined:
            return SolutionCheck(False, f"{where}: {name!r} defined twice")
        if sym in values:
            return SolutionCheck(False, f"{where}: symbol {sym} defined twice")
        if len(units) < 2:
            return SolutionCheck(False, f"{where}: no computation")
        used: set[int] = set()
        for j, unit in enumerate(units[1:], start=1):
            final = j == len(units) - 1
            unit = unit.strip()
            if final:
                if not unit.startswith("so "):
                    return SolutionCheck(False, f"{where}: the last step must start with 'so'")
                unit = unit[3:]
            parts = [s.strip() for s in unit.split(" = ")]
            lhs = parts[0]
            if final and lhs != sym:
                return SolutionCheck(False, f"{where}: 'so' computes {lhs}, not {sym}")
            if not final and (not _SYM.fullmatch(lhs) or lhs == sym):
                return SolutionCheck(False, f"{where}: bad intermediate symbol {lhs!r}")
            if lhs in values:
                return SolutionCheck(False, f"{where}: symbol {lhs} defined twice")
            result = _unit(parts, values, uses)
            if isinstance(result, str):
                return SolutionCheck(False, f"{where}: {result}")
            value, unit_uses = result
            values[lhs] = value
            uses[lhs] = unit_uses
            used |= unit_uses
            if final:
                last_value = value
        if used != set(g.params[pid].preds):
            return SolutionCheck(False, f"{where}: {name!r} is not computed from exactly its inputs")
        uses[sym] = frozenset({pid})
        if g.values()[pid] != values[sym]:
            # only reachable through a wrong stated constant somewhere upstream
            return SolutionCheck(False, f"{where}: value of {name!r} is wrong", tuple(defined + [pid]), values[sym])
        defined.append(pid)
    if defined[-1] != g.question:
        return SolutionCheck(False, "the last definition is not the queried parameter", tuple(defined), last_value)
    return SolutionCheck(True, "ok", tuple(defined), last_value)


def _unit(parts: list[str], values: dict[str, int], uses: dict[str, frozenset[int]],
          ) -> tuple[int, frozenset[int]] | str:
    """(value, parameters used) of one unit's right-hand side, or the reason it is wrong."""
    if not _NUM.fullmatch(parts[-1]):
        return f"{parts[-1]!r} is not a number"
    value = int(parts[-1])
    if not 0 <= value < MOD:
        return f"{value} is not reduced modulo {MOD}"
    if len(parts) == 2:
        return value, frozenset()
    if len(parts) == 3:
        src = parts[1]
        if src not in values:
            return f"{src!r} is used before it is defined"
        if values[src] != value:
            return f"{src} is {values[src]}, not {value}"
        return value, uses[src]
    if len(parts) != 4:
        return "expected 'x = a op b = m op n = v'"
    hint, calc = parts[1].split(" "), parts[2].split(" ")
    if len(hint) != 3 or len(calc) != 3 or hint[1] != calc[1] or hint[1] not in ("+", "-", "*"):
        return "expected a binary operation written twice with the same operator"
    op = hint[1]
    nums: list[int] = []
    used: set[int] = set()
    for h, c in ((hint[0], calc[0]), (hint[2], calc[2])):
        if not _NUM.fullmatch(c):
            return f"{c!r} is not a number"
        n = int(c)
        if _NUM.fullmatch(h):
            if int(h) != n:
                return f"constant {h} written as {n}"
        elif h in values:
            if values[h] != n:
                return f"{h} is {values[h]}, not {n}"
            used |= uses[h]
        else:
            return f"{h!r} is used before it is defined"
        nums.append(n)
    if apply(op, nums[0], nums[1]) != value:
        return f"{nums[0]} {op} {nums[1]} is not {value} modulo {MOD}"
    return value, frozenset(used)
