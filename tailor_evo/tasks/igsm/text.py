"""Problem and solution text for iGSM graphs.

Problem: one sentence per instance parameter, in the graph's (shuffled) sentence
order, then the question. Solution: one "Define <name> as x; ...; so x = ... = v."
sentence per necessary parameter, in the backward-from-the-question order
(:func:`reference_order`), every computation binary, symbols random single letters.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

from tailor_evo.tasks.igsm.graph import ABSTRACT, MOD, Graph, Param, Ref, Unit, apply, plan


def item_name(g: Graph, p: Param) -> str:
    return g.items[p.layer][p.upper]


def target_name(g: Graph, p: Param) -> str:
    """What is counted: the lower item (instance) or the category (abstract)."""
    return g.categories[p.lower] if p.kind == ABSTRACT else g.items[p.layer + 1][p.lower]


def phrase(g: Graph, pid: int) -> str:
    return f"each {g.params[pid].name}"


def join_and(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c" (the problem text's list form, without an Oxford comma)."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]



def sentence(g: Graph, p: Param) -> str:
    """The problem sentence that states an instance parameter."""
    f = p.form
    assert f is not None
    if f.inner is None:
        rhs = str(f.const)
    else:
        ps = [phrase(g, q) for q in f.args]
        if f.inner == "single":
            rhs = ps[0]
        elif f.inner == "diff":
            rhs = f"the difference of {ps[0]} and {ps[1]}"
        else:
            rhs = f"the sum of {join_and(ps)}"
        if f.cop == "+":
            rhs = f"{f.const} more than {rhs}"
        elif f.cop == "*":
            rhs = f"{f.const} times as much as {rhs}"
    return f"The number of {phrase(g, p.id)} equals {rhs}."


def question_sentence(g: Graph) -> str:
    p = g.params[g.question]
    return f"How many {target_name(g, p)} does {item_name(g, p)} have?"


def problem_text(g: Graph) -> str:
    return " ".join([sentence(g, g.params[pid]) for pid in g.order] + [question_sentence(g)])


def reference_order(g: Graph) -> list[int]:
    """Necessary parameters, each computed right before the parameter that first uses it.

    Depth-first from the question, inputs in the order the definition uses them, each
    parameter emitted after its inputs: a topological order of exactly the ancestors.
    """
    out: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, int]] = [(g.question, 0)]
    seen.add(g.question)
    while stack:
        pid, k = stack.pop()
        preds = g.params[pid].preds
        while k < len(preds) and preds[k] in seen:
            k += 1
        if k < len(preds):
            stack.append((pid, k + 1))
            seen.add(preds[k])
            stack.append((preds[k], 0))
        else:
            out.append(pid)
    return out


class Symbols:
    """Single-letter symbols a-z, A-Z drawn without repetition (then letter+number if exhausted)."""

    def __init__(self, seed: int) -> None:
        self._letters = list(string.ascii_lowercase + string.ascii_uppercase)
        random.Random(seed).shuffle(self._letters)
        self._next = 0

    def fresh(self) -> str:
        i = self._next
        self._next += 1
        if i < len(self._letters):
            return self._letters[i]
        return f"{self._letters[i % len(self._letters)]}{i // len(self._letters)}"


def unit_value(u: Unit, val: dict[Ref, int]) -> int:
    """Value of one unit, given the values of its operand references."""
    if u.op == "zero":
        return 0
    if u.op in ("const", "copy"):
        return val[u.operands[0]]
    return apply(u.op, val[u.operands[0]], val[u.operands[1]])


@dataclass(frozen=True)
class RenderedUnit:
    """One computed unit with everything a wording needs: symbols, names and numbers."""

    unit: Unit
    value: int                      # result, reduced mod 23
    nums: tuple[int, ...]           # operand values
    lhs: str                        # symbol of the result
    operand_symbols: tuple[str, ...]
    operand_names: tuple[str, ...]  # parameter names for parameters, symbols for intermediates
    final: bool                     # the unit that defines the parameter itself


def render_units(g: Graph, pid: int, values: dict[int, int], symbols: Symbols, names: dict[int, str],
                 param: Param | None = None, reuse: bool = False) -> list[RenderedUnit]:
    """Evaluate the plan of ``pid`` unit by unit, allocating symbols for it and its intermediates.

    ``names`` maps already defined parameters to their symbols and receives ``pid``'s (with
    ``reuse``, a symbol ``pid`` already has is kept). ``param`` replaces the graph's own
    record of ``pid`` (the same inputs in another order).
    """
    units = plan(g, param or g.params[pid])
    if not (reuse and pid in names):
        names[pid] = symbols.fresh()
    tmp_names: dict[int, str] = {}
    val: dict[Ref, int] = {}

    def sym(r: Ref) -> str:
        if r.kind == "param":
            return names[r.value]
        if r.kind == "tmp":
            return tmp_names[r.value]
        return str(r.value)

    def label(r: Ref) -> str:
        return g.params[r.value].name if r.kind == "param" else sym(r)

    def num(r: Ref) -> int:
        if r.kind == "param":
            return values[r.value]
        if r.kind == "tmp":
            return val[r]
        return r.value

    out: list[RenderedUnit] = []
    for k, u in enumerate(units):
        if u.result.kind == "tmp":
            tmp_names[u.result.value] = symbols.fresh()
        nums = tuple(num(r) for r in u.operands)
        for r, n in zip(u.operands, nums):
            val[r] = n
        v = unit_value(u, val)
        val[u.result] = v
        out.append(RenderedUnit(u, v, nums, sym(u.result), tuple(sym(r) for r in u.operands),
                                tuple(label(r) for r in u.operands), k == len(units) - 1))
    return out


def raw_value(op: str, a: int, b: int) -> int:
    """The unreduced result of one binary operation (what a reader computes before reducing)."""
    return a + b if op == "+" else (a - b if op == "-" else a * b)


def calc_text(op: str, a: int, b: int) -> str:
    """"a op b = r mod 23 = v" (or "a op b = v" when nothing is reduced).

    Each number depends on the one or two just before it: the raw result on the
    operands (an integer fact), the reduced one on the raw result alone.
    """
    raw, v = raw_value(op, a, b), apply(op, a, b)
    return f"{a} {op} {b} = {v}" if raw == v else f"{a} {op} {b} = {raw} mod {MOD} = {v}"


def unit_calcs(g: Graph, p: Param, values: dict[int, int]) -> list[str]:
    """The binary computations of ``p``'s plan, in order, each as :func:`calc_text` (no symbols)."""
    val: dict[Ref, int] = {}
    out: list[str] = []
    for u in plan(g, p):
        nums = [values[r.value] if r.kind == "param" else (val[r] if r.kind == "tmp" else r.value)
                for r in u.operands]
        if u.op in ("+", "-", "*"):
            out.append(calc_text(u.op, nums[0], nums[1]))
        val[u.result] = unit_value(u, dict(zip(u.operands, nums)))
    return out


def unit_body(ru: RenderedUnit, lhs: str, operands: tuple[str, ...], value: int | None = None) -> str:
    """"lhs = hint = numbers = value" with the parts that apply to the unit's kind."""
    u, v = ru.unit, ru.value if value is None else value
    if u.op == "zero":
        return f"{lhs} = 0"
    if u.op == "const":
        return f"{lhs} = {v}"
    if u.op == "copy":
        return f"{lhs} = {operands[0]} = {v}"
    return f"{lhs} = {operands[0]} {u.op} {operands[1]} = {ru.nums[0]} {u.op} {ru.nums[1]} = {v}"


def reference_fragments(g: Graph, pid: int, rendered: list[RenderedUnit], names: dict[int, str]) -> list[str]:
    """Solution fragments; joined by spaces they read "Define N as x; y = ...; so x = ... = v."."""
    texts = []
    for k, ru in enumerate(rendered):
        body = unit_body(ru, ru.lhs, ru.operand_symbols)
        text = f"so {body}." if ru.final else f"{body};"
        if k == 0:
            text = f"Define {g.params[pid].name} as {names[pid]}; {text}"
        texts.append(text)
    return texts


def reference_solution(g: Graph) -> str:
    if "reference" in g._cache:
        return g._cache["reference"]
    values = g.values()
    symbols = Symbols(g.symbol_seed)
    names: dict[int, str] = {}
    parts: list[str] = []
    for pid in reference_order(g):
        rendered = render_units(g, pid, values, symbols, names)
        parts.append(" ".join(reference_fragments(g, pid, rendered, names)))
    g._cache["reference"] = " ".join(parts)
    return g._cache["reference"]


TRAIN_BINS = range(0, 16)   # template bins of training problems (the public generator's split)
TEST_BINS = range(16, 23)   # held-out solution templates


def template_sketch(g: Graph) -> str:
    """The reference solution with names, numbers and symbols abstracted away.

    Instance parameter names become "Inst", abstract ones "Inter", numbers 1..22 become
    "0", and symbols are renamed by first appearance, so two problems share a sketch
    exactly when their solutions have the same shape.
    """
    text = reference_solution(g)
    for p in sorted(g.params, key=lambda p: -len(p.name)):   # longest first: names may share prefixes
        text = text.replace(f"Define {p.name} as", f"Define {'Inter' if p.kind == ABSTRACT else 'Inst'} as")
    renamed: dict[str, str] = {}

    def sym(m: "re.Match[str]") -> str:
        if m.group(0) not in renamed:
            renamed[m.group(0)] = f"v{len(renamed)}"
        return renamed[m.group(0)]

    text = re.sub(r"(?<![A-Za-z0-9])[A-Za-z][0-9]*(?![A-Za-z0-9])", sym, text)
    return re.sub(r"(?<![A-Za-z0-9])(?:[1-9]|1[0-9]|2[0-2])(?![0-9])", "0", text)


def template_bin(g: Graph) -> int:
    """SHA-256 of the template sketch, mod 23: problems in different bins never share a template."""
    import hashlib

    return int(hashlib.sha256(template_sketch(g).encode()).hexdigest(), 16) % 23
