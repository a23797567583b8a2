"""Run an iGSM strategy program on a problem and write its reasoning trajectory.

The executor keeps a reasoning state (known parameter values, parameters identified
as needed, open goals) and lets each phase of the program move through states; every
step records the state it leads to, a canonical key for coverage, its kind and a
machine-checkable fact (see :func:`check_fact`). Values come from the graph's own
evaluation, so a finished trajectory is correct by construction; the verifier still
checks it.

Two renderings write the same steps (:data:`RENDERINGS`). ``compact`` is the detailed
solution format of the public generator: a value is written without its inputs
("so f = 3 * h = 3 * 18 = 8"), so each result needs the definition, the operands'
values and a modular fact at once. ``explicit`` (the default) writes every input just
before the token that uses it: the quantity's definition with its inputs' values, each
binary result with its unreduced value ("3 * 18 = 54 mod 23 = 8"), and the quantity's
name next to its value ("so Elm Park's Rope Maze = 8"), so every value token is one
look-up or one arithmetic fact away from what precedes it. ``quoted`` is ``explicit``
with one step more: before a quantity's definition is first written, the trace copies the
problem's own sentence that states it (for a total over a category, the sentences of the
items it sums, in the order the problem gives them). Writing "Define X as s = A - B" from
the problem alone is a search for X's sentence and a paraphrase at once; after the quote
the sentence is a verbatim copy keyed by X's name and the definition a local rewrite of
the text just written.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from tailor_evo.tasks.base import Problem, Step, Task, Trajectory
from tailor_evo.tasks.igsm.graph import ABSTRACT, INSTANCE, MOD, Graph, Param, apply
from tailor_evo.tasks.igsm.moves import GRAMMAR
from tailor_evo.tasks.igsm.text import (
    RenderedUnit,
    Symbols,
    calc_text,
    item_name,
    join_and,
    raw_value,
    reference_fragments,
    reference_order,
    render_units,
    sentence,
    target_name,
    unit_body,
    unit_calcs,
)

EXPLICIT, QUOTED, COMPACT = "explicit", "quoted", "compact"
RENDERINGS = (EXPLICIT, QUOTED, COMPACT)
QUOTE_LEAD = "Read:"      # what opens a quoted rendering's copy of the problem's sentences

class _Budget(Exception):
    """The step budget ran out."""


@dataclass(frozen=True)
class Arith:
    base: str            # "binary" | "mod_steps" | "direct"
    checked: bool


@dataclass(frozen=True)
class Order:
    rule: str            # "by_text" | "by_fewest_inputs" | "by_most_used" | "by_nearest_question" | "by_random"
    announce: bool


_ORDER_REASON = {
    "by_text": "mentioned first", "by_fewest_inputs": "fewest inputs", "by_most_used": "used most",
    "by_nearest_question": "closest to the question", "by_random": "picked at random",
}


def _arith(node: dict) -> Arith:
    if node["op"] == "checked":
        inner = _arith(node["args"][0])
        return Arith(inner.base, True)
    return Arith(node["op"], False)


def _order(node: dict) -> Order:
    if node["op"] == "announce":
        inner = _order(node["args"][0])
        return Order(inner.rule, True)
    return Order(node["op"], False)


def _aux(g: Graph) -> dict[str, Any]:
    """Per-graph tables the heuristics and scopes use (cached on the graph)."""
    aux = g._cache.get("exec_aux")
    if aux is not None:
        return aux
    succ = g.successors()
    mention: dict[int, int] = {}
    for rank, pid in enumerate(g.order):
        mention.setdefault(pid, 2 * rank)
        for q in g.params[pid].preds:
            mention.setdefault(q, 2 * rank + 1)
    big = 2 * len(g.order) + 2
    dist: dict[int, int] = {g.question: 0}
    todo = deque([g.question])
    while todo:
        pid = todo.popleft()
        for q in g.params[pid].preds:
            if q not in dist:
                dist[q] = dist[pid] + 1
                todo.append(q)
    relevant: set[int] = set(g.needed())
    for p in g.params:
        if p.kind == INSTANCE:
            relevant |= g.ancestors(p.id)
    aux = {
        "mention": {p.id: mention.get(p.id, big) for p in g.params},
        "dist": {p.id: dist.get(p.id, big) for p in g.params},
        "succ": {p.id: len(succ[p.id]) for p in g.params},
        "relevant": relevant,
        "ref_order": reference_order(g),
        "uniq_preds": {p.id: tuple(dict.fromkeys(p.preds)) for p in g.params},
        "sentence": {pid: rank for rank, pid in enumerate(g.order)},
    }
    g._cache["exec_aux"] = aux
    return aux


@dataclass
class _Run:
    g: Graph
    style: str
    rng: random.Random
    max_steps: int
    values: dict[int, int] = field(default_factory=dict)
    known: dict[int, int] = field(default_factory=dict)
    need: set[int] = field(default_factory=set)
    goals: list[int] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    aux: dict[str, Any] = field(default_factory=dict)
    symbols: Symbols | None = None
    rendering: str = EXPLICIT
    _params: dict[int, Param] = field(default_factory=dict)
    opened: set[int] = field(default_factory=set)   # definitions already written by a depth-first descent
    quoted: set[int] = field(default_factory=set)   # quantities whose sentences the trace has copied

    @property
    def explicit(self) -> bool:
        """Whether values are written beside their inputs (the explicit and quoted renderings)."""
        return self.rendering in (EXPLICIT, QUOTED)

    def param(self, pid: int) -> Param:
        """The parameter as the trace computes it.

        Under the explicit rendering an abstract parameter's terms follow the order in
        which the problem states its items, so finding the next term is finding the next
        matching sentence; the graph's own order follows the world's item list, which
        the text never shows. The sum is the same either way.
        """
        if pid not in self._params:
            p = self.g.params[pid]
            if self.explicit and p.kind == ABSTRACT and len(p.preds) > 1:
                at = self.aux["sentence"]
                if self.g.is_deep(p):
                    pairs = sorted(((p.preds[i], p.preds[i + 1]) for i in range(0, len(p.preds), 2)),
                                   key=lambda ab: at[ab[0]])
                    p = replace(p, preds=tuple(q for ab in pairs for q in ab))
                else:
                    p = replace(p, preds=tuple(sorted(p.preds, key=lambda q: at[q])))
            self._params[pid] = p
        return self._params[pid]

    def preds(self, pid: int) -> tuple[int, ...]:
        """Distinct inputs of ``pid`` in the order the trace writes them."""
        return tuple(dict.fromkeys(self.param(pid).preds))

    # ---- state ---------------------------------------------------------------------
    def label(self, pid: int) -> str:
        return self.g.params[pid].name

    def state_text(self) -> str:
        known = ", ".join(f"{self.label(p)}={v}" for p, v in sorted(self.known.items()))
        need = ", ".join(self.label(p) for p in sorted(self.need))
        text = f"known: {{{known}}}; need: {{{need}}}"
        if self.goals:
            text += f"; goal: {self.label(self.goals[-1])}"
        return text

    def key(self, kind: str) -> str:
        k = ",".join(map(str, sorted(self.known)))
        n = ",".join(map(str, sorted(self.need)))
        return f"k:{k}|n:{n}|{kind}"

    def emit(self, text: str, kind: str, fact: dict | None) -> None:
        if len(self.steps) >= self.max_steps:
            raise _Budget
        self.steps.append(Step(text, self.state_text(), self.key(kind), kind, fact))

    def learn(self, pid: int, value: int) -> None:
        self.known[pid] = value
        self.need.discard(pid)

    def inputs(self, pid: int) -> dict[str, int]:
        return {str(q): self.known[q] for q in self.preds(pid)}

    def ready(self, pid: int) -> bool:
        return all(q in self.known for q in self.g.params[pid].preds)

    # ---- choosing --------------------------------------------------------------------
    def choose(self, cands: list[int], order: Order, frontier: bool = False) -> int:
        """Pick one candidate by the order's heuristic; announce the choice if asked.

        Candidates are ready parameters (all inputs known) in forward phases, or needed
        parameters still to expand (``frontier``) in backward chaining.
        """
        if order.rule == "by_random":
            pick = self.rng.choice(sorted(cands))
        else:
            m = self.aux["mention"]
            if order.rule == "by_text":
                rank: Callable[[int], tuple] = lambda p: (m[p], p)  # noqa: E731
            elif order.rule == "by_fewest_inputs":
                rank = lambda p: (len(self.aux["uniq_preds"][p]), m[p], p)  # noqa: E731
            elif order.rule == "by_most_used":
                rank = lambda p: (-self.aux["succ"][p], m[p], p)  # noqa: E731
            else:
                rank = lambda p: (self.aux["dist"][p], m[p], p)  # noqa: E731
            pick = min(cands, key=rank)
        if order.announce and len(cands) > 1:
            others = ", ".join(self.label(p) for p in sorted(cands, key=lambda p: self.aux["mention"][p]))
            fact: dict[str, Any] = {"chosen": pick}
            if frontier:
                fact["frontier"] = sorted(cands)
            else:
                fact.update(ready=sorted(cands), known=sorted(self.known))
            self.emit(self.words("choose", ready=others, name=self.label(pick), reason=_ORDER_REASON[order.rule]),
                      "choose", fact)
        return pick

    # ---- wording ---------------------------------------------------------------------
    def words(self, what: str, **kw: Any) -> str:
        return WORDING[self.style][what].format(**kw)

    def xwords(self, what: str, **kw: Any) -> str:
        """A wording of the explicit rendering."""
        return EXPLICIT_WORDING[self.style][what].format(**kw)

    def given(self, pid: int) -> str:
        """The known values of ``pid``'s inputs, each beside its name (and symbol)."""
        if self.style == "style_reference":
            parts = [f"{self.label(q)} is {self.names[q]} = {self.known[q]}" for q in self.preds(pid)]
            return ", ".join(parts)
        return join_and([f"{self.label(q)} = {self.known[q]}" for q in self.preds(pid)])

    def quote(self, pid: int) -> None:
        """The quoted rendering's copy of the sentences that define ``pid``, once per quantity
        and before anything uses its definition: an instance quantity's own sentence, or for
        a total over a category the sentences of the items it sums. A total over nothing
        has no sentence to copy and writes none."""
        if self.rendering != QUOTED or pid in self.quoted or pid in self.known:
            return
        self.quoted.add(pid)
        sentences = quoted_sentences(self.g, self.param(pid))
        if not sentences:
            return
        self.emit(f"{QUOTE_LEAD} " + " ".join(sentences), "quote", {"param": pid, "quote": sentences})

    def restate(self, pid: int) -> None:
        """The explicit rendering's first step for a computed quantity: its definition, then
        the value of each input beside the input's name, so that the computation after it
        reads every operand from just before."""
        p = self.param(pid)
        defn = _expr(self.g, p, self.label)
        what = "given" if pid in self.opened else "restate"   # the definition is already written
        text = self.xwords(what, name=self.label(pid), sym=self.names[pid], defn=defn, given=self.given(pid))
        self.emit(text, "restate", {"param": pid, "uses": list(p.preds), "inputs": self.inputs(pid)})

    def descend(self, pid: int, arith: Arith) -> None:
        """Depth-first from ``pid`` in the explicit rendering: a quantity whose inputs are not
        all known first has its definition written, so that the next quantity to define is
        the first unknown input of the definition just written; then its inputs, then itself.
        This is the compact rendering's depth-first order, over the inputs in the order the
        trace writes them."""
        if pid in self.known:
            return
        p = self.param(pid)
        if any(q not in self.known for q in p.preds):
            if pid not in self.names:
                self.names[pid] = self._symbols().fresh()
            self.opened.add(pid)
            self.quote(pid)
            self.emit(self.xwords("open", name=self.label(pid), sym=self.names[pid],
                                  defn=_expr(self.g, p, self.label)),
                      "restate", {"param": pid, "uses": list(p.preds)})
            for q in self.preds(pid):
                self.descend(q, arith)
        self.compute(pid, arith)

    # ---- computing one parameter -----------------------------------------------------
    def compute(self, pid: int, arith: Arith) -> None:
        if pid in self.known:
            return
        self.quote(pid)
        value = self.values[pid]
        if self.explicit and arith.base == "direct" and self.preds(pid):
            self._direct_explicit(pid)
        elif arith.base == "direct" and not self.explicit:   # (explicitly, a stated number is one unit)
            if pid not in self.names:
                self.names[pid] = self._symbols().fresh()
            fact = {"param": pid, "value": value, "inputs": self.inputs(pid)}
            self.learn(pid, value)
            syms, nums = self.expression(pid)
            lhs = self.names[pid] if self.style == "style_reference" else self.label(pid)
            text = self.words("direct", name=self.label(pid), lhs=lhs, expr=syms, nums=nums, value=value)
            self.emit(text, "compute", fact)
        else:
            for q in self.aux["uniq_preds"][pid]:   # inputs listed without a symbol get one now
                if q not in self.names:
                    self.names[q] = self._symbols().fresh()
            rendered = render_units(self.g, pid, self.values, self._symbols(), self.names, self.param(pid),
                                    reuse=pid in self.opened)
            ref_texts = (reference_fragments(self.g, pid, rendered, self.names)
                         if self.style == "style_reference" and not self.explicit else None)
            if self.explicit and self.preds(pid):
                self.restate(pid)
            for k, ru in enumerate(rendered):
                self._unit(pid, ru, arith.base == "mod_steps", ref_texts[k] if ref_texts else None)
        if arith.checked:
            self.check(pid)

    def _direct_explicit(self, pid: int) -> None:
        """One expression, written out: the definition with its inputs' values, then each of
        its binary operations in turn (every result beside its operands), then the value."""
        for q in self.preds(pid):
            if q not in self.names:
                self.names[q] = self._symbols().fresh()
        if pid not in self.names:
            self.names[pid] = self._symbols().fresh()
        self.restate(pid)
        value = self.values[pid]
        chain = ", ".join(unit_calcs(self.g, self.param(pid), self.known))
        fact = {"param": pid, "value": value, "inputs": self.inputs(pid)}
        self.learn(pid, value)
        what = "direct" if chain else "copy"      # a copy has no operation to write
        self.emit(self.xwords(what, name=self.label(pid), sym=self.names[pid], chain=chain, value=value),
                  "compute", fact)

    def _unit(self, pid: int, ru: RenderedUnit, explicit_mod: bool, ref_text: str | None) -> None:
        u = ru.unit
        binary = u.op in ("+", "-", "*")
        raw = None
        if explicit_mod and binary:
            a, b = ru.nums
            raw = raw_value(u.op, a, b)
            if raw == ru.value:
                raw = None
        fact: dict[str, Any] = {}
        if binary:
            a, b = ru.nums
            fact["raw_calc" if raw is not None else "calc"] = [a, u.op, b, raw if raw is not None else ru.value]
            if self.explicit and raw is None and raw_value(u.op, a, b) != ru.value:   # written beside it
                fact["raw_calc"] = [a, u.op, b, raw_value(u.op, a, b)]
        param_ops = {str(r.value): n for r, n in zip(u.operands, ru.nums) if r.kind == "param"}
        if param_ops:
            fact["inputs"] = param_ops
        kind = "compute" if ru.final else "define"
        if ru.final and raw is None:
            self.learn(pid, ru.value)
            fact.update({"param": pid, "value": ru.value})
        if self.explicit:
            text = self._explicit_unit(pid, ru, raw)
        elif self.style == "style_reference":
            text = _reference_raw(ref_text or "", ru, raw)
        else:
            lhs = self.label(pid) if ru.final else ru.lhs
            body = unit_body(ru, lhs, ru.operand_names, value=raw)
            if u.op == "zero":   # say why a never-stated count is 0
                p = self.g.params[pid]
                body += f" ({item_name(self.g, p)} has no {target_name(self.g, p)} below it)"
            text = self.words("final" if ru.final else "tmp", body=body, sym=ru.lhs)
        self.emit(text, kind, fact)
        if raw is not None:
            rfact: dict[str, Any] = {"reduce": [raw, ru.value]}
            if ru.final:
                self.learn(pid, ru.value)
                rfact.update({"param": pid, "value": ru.value})
            lhs = ru.lhs if (self.style == "style_reference" or not ru.final) else self.label(pid)
            what = "reduce"
            if self.explicit and not ru.final and self.style != "style_reference":
                what = "reduce_tmp"   # the explicit rendering names no intermediates outside the reference style
            wording = EXPLICIT_WORDING if what == "reduce_tmp" else WORDING
            self.emit(wording[self.style][what].format(raw=raw, value=ru.value, lhs=lhs, mod=MOD), "reduce", rfact)

    def _explicit_unit(self, pid: int, ru: RenderedUnit, raw: int | None) -> str:
        """One unit in the explicit rendering: the operation on the operands' values with its
        unreduced result, then the result beside the symbol or name it defines."""
        u = ru.unit
        ref = self.style == "style_reference"
        name = ru.lhs if (ref or not ru.final) else self.label(pid)
        if u.op in ("const", "zero"):     # a stated number or an empty count: already one look-up
            text = self.words("final", body=unit_body(ru, name, ru.operand_names), sym=ru.lhs)
            if u.op == "zero":
                p = self.g.params[pid]
                text = text[:-1] + f" ({item_name(self.g, p)} has no {target_name(self.g, p)} below it)."
            return (f"Define {self.label(pid)} as {ru.lhs}; " + text) if ref else text
        if u.op == "copy":
            return self.xwords("copy", name=name, sym=ru.lhs, value=ru.value)
        a, b = ru.nums
        if raw is not None:               # the reduction follows as a step of its own
            return f"{a} {u.op} {b} = {raw}" + (";" if ref else ".")
        calc = calc_text(u.op, a, b)
        return self.xwords("final" if ru.final else "tmp", calc=calc, name=name, sym=ru.lhs, value=ru.value)

    def expression(self, pid: int) -> tuple[str, str]:
        """The defining expression of ``pid`` over its inputs: (with names or symbols, with numbers)."""
        if self.style == "style_reference":
            leaf_s: Callable[[int], str] = lambda q: self.names[q]  # noqa: E731
        else:
            leaf_s = self.label
        p = self.param(pid)
        return _expr(self.g, p, leaf_s), _expr(self.g, p, lambda q: str(self.known[q]))

    def check(self, pid: int) -> None:
        value = self.known[pid]
        syms, nums = self.expression(pid)
        fact = {"param": pid, "value": value, "inputs": self.inputs(pid)}
        lhs = self.names.get(pid, self.label(pid)) if self.style == "style_reference" else self.label(pid)
        if not fact["inputs"]:   # a stated constant or an empty count: nothing to re-compute
            syms = nums = str(value)
        elif self.explicit:
            chain = ", ".join(unit_calcs(self.g, self.param(pid), self.known))
            if not chain:        # a copy: the input's value is the value
                chain = nums
            self.emit(self.xwords("verify", name=self.label(pid), sym=lhs, expr=syms, nums=nums, chain=chain,
                                  value=value), "verify", fact)
            return
        self.emit(self.words("verify", name=self.label(pid), lhs=lhs, expr=syms, nums=nums, value=value),
                  "verify", fact)

    def _symbols(self) -> Symbols:
        if self.symbols is None:
            self.symbols = Symbols(self.g.symbol_seed)
        return self.symbols

    # ---- phases ----------------------------------------------------------------------
    def phase(self, node: dict) -> None:
        op, args = node["op"], node.get("args", [])
        if op == "then":
            self.phase(args[0])
            self.phase(args[1])
        elif op == "list_givens":
            self.list_values(set(self.aux["relevant"]))
        elif op == "list_values":
            self.list_values(self.scope(args[0]["op"]))
        elif op == "trace_back":
            self.backward(Order("by_nearest_question", False))
        elif op == "backward":
            self.backward(_order(args[0]))
        elif op == "solve_forward":
            self.forward(self.scope("scope_needed"), Order("by_text", False), Arith("binary", False), None)
        elif op == "compute":
            self.forward(self.scope(args[0]["op"]), _order(args[1]), _arith(args[2]), None)
        elif op == "depth_first":
            arith = _arith(args[0])
            if self.explicit:
                self.descend(self.g.question, arith)
            else:
                for pid in self.aux["ref_order"]:
                    self.compute(pid, arith)
        elif op == "subgoals":
            self.subgoal(self.g.question, _arith(args[0]))
        elif op == "prune_forward":
            self.forward(set(self.aux["relevant"]), _order(args[0]), _arith(args[1]), "prune")
        elif op == "explore_backtrack":
            self.forward(set(self.aux["relevant"]), _order(args[0]), _arith(args[1]), "abandon")
        elif op == "check_answer":
            self.verify("target_answer")
        elif op == "verify":
            self.verify(args[0]["op"])
        else:  # validated programs never get here
            raise ValueError(f"unknown phase {op!r}")

    def scope(self, name: str) -> set[int]:
        return set(self.aux["relevant"]) if name == "scope_all" else set(self.g.needed())

    def list_values(self, scope: set[int]) -> None:
        for pid in self.g.order:
            p = self.g.params[pid]
            if pid in scope and pid not in self.known and p.form is not None and p.form.inner is None:
                value = self.values[pid]
                self.quote(pid)
                if self.style == "style_reference":
                    rendered = render_units(self.g, pid, self.values, self._symbols(), self.names)
                    text = " ".join(reference_fragments(self.g, pid, rendered, self.names))
                else:
                    text = self.words("list", name=self.label(pid), value=value)
                self.learn(pid, value)
                self.emit(text, "list", {"param": pid, "value": value})

    def backward(self, order: Order) -> None:
        q = self.g.question
        if q in self.known:
            return
        self.need.add(q)
        frontier, seen = [q], {q}
        while frontier:
            pick = self.choose(frontier, order, frontier=True)
            frontier.remove(pick)
            preds = self.preds(pick)
            if not preds:
                continue
            for r in preds:
                if r not in self.known and r not in seen:
                    seen.add(r)
                    self.need.add(r)
                    frontier.append(r)
            uses = ", ".join(self.label(r) for r in preds)
            self.quote(pick)
            self.emit(self.words("backward", name=self.label(pick), uses=uses), "backward",
                      {"param": pick, "uses": list(preds)})

    def subgoal(self, pid: int, arith: Arith) -> None:
        if pid in self.known:
            return
        preds = self.preds(pid)
        unknown = [r for r in preds if r not in self.known]
        if unknown:
            self.goals.append(pid)
            self.need.add(pid)
            self.need.update(unknown)
            uses = ", ".join(self.label(r) for r in unknown)
            self.quote(pid)
            self.emit(self.words("subgoal", name=self.label(pid), uses=uses, first=self.label(unknown[0])),
                      "subgoal", {"param": pid, "uses": list(preds)})
            for r in unknown:
                self.subgoal(r, arith)
            self.goals.pop()
        self.compute(pid, arith)

    def forward(self, scope: set[int], order: Order, arith: Arith, distractors: str | None) -> None:
        q, needed = self.g.question, self.g.needed()
        dropped: set[int] = set()
        todo = sorted(scope)
        while q not in self.known:
            ready = [p for p in todo if p not in self.known and p not in dropped and self.ready(p)]
            if not ready:
                return
            pick = self.choose(ready, order)
            if distractors == "prune" and pick not in needed:
                dropped.add(pick)
                self.emit(self.words("prune", name=self.label(pick)), "backtrack", {"unneeded": pick})
                continue
            self.compute(pick, arith)
            if distractors == "abandon" and pick not in needed:
                dropped.add(pick)
                del self.known[pick]
                self.emit(self.words("abandon", name=self.label(pick)), "backtrack", {"unneeded": pick})

    def verify(self, target: str) -> None:
        if target == "target_answer":
            if self.g.question in self.known:
                self.check(self.g.question)
        else:
            for pid in list(self.known):
                self.check(pid)


def _reference_raw(ref_text: str, ru: RenderedUnit, raw: int | None) -> str:
    """A reference-style fragment that shows the unreduced result (the reduction follows)."""
    if raw is None:
        return ref_text
    head, sep, _ = ref_text.rpartition(f"= {ru.value}")
    return f"{head}= {raw}{ref_text[len(head) + len(sep):]}" if sep else ref_text


def _expr(g: Graph, p: Param, leaf: Callable[[int], str]) -> str:
    """The defining expression of ``p`` as text, leaves rendered by ``leaf``."""
    if p.kind == ABSTRACT:
        if not p.preds:
            return "0"
        if not g.is_deep(p):
            return " + ".join(leaf(q) for q in p.preds)
        pr = p.preds
        return " + ".join(f"{leaf(pr[i])} * {leaf(pr[i + 1])}" for i in range(0, len(pr), 2))
    f = p.form
    assert f is not None
    if f.inner is None:
        return str(f.const)
    parts = [leaf(q) for q in f.args]
    inner = " - ".join(parts) if f.inner == "diff" else " + ".join(parts)
    if f.cop is None:
        return inner
    if len(parts) > 1:
        inner = f"({inner})"
    return f"{f.const} {f.cop} {inner}"


WORDING: dict[str, dict[str, str]] = {
    "style_reference": {
        "list": "",  # reference style lists with the solution's own "Define ..." sentence
        "direct": "Define {name} as {lhs}; so {lhs} = {expr} = {nums} = {value}.",
        "reduce": "{raw} mod {mod} = {value}, so {lhs} = {value}.",
        "verify": "Check {lhs} = {nums} = {value}.",
        "backward": "To find {name}, we need {uses}.",
        "subgoal": "Goal: {name}; it needs {uses}; start with {first}.",
        "choose": "Ready: {ready}; take {name} ({reason}).",
        "prune": "{name} is not needed for the question, so skip it.",
        "abandon": "{name} is not used by the question, so drop this branch.",
        "conclude": "",
        "tmp": "{body};",
        "final": "so {body}.",
    },
    "style_plain": {
        "list": "{name} = {value} (given).",
        "direct": "{lhs} = {expr} = {nums} = {value}.",
        "reduce": "{raw} mod {mod} = {value}, so {lhs} = {value}.",
        "verify": "Check: {lhs} = {expr}, and {nums} = {value}. Correct.",
        "backward": "To find {name}, we need {uses}.",
        "subgoal": "Goal: {name}. It needs {uses}; start with {first}.",
        "choose": "Ready: {ready}; take {name} ({reason}).",
        "prune": "{name} is not needed for the question, so skip it.",
        "abandon": "{name} is not used by the question after all, so drop this branch.",
        "conclude": "So {name} = {value}. The answer is {value}.",
        "tmp": "Let {body}.",
        "final": "{body}.",
    },
    "style_explain": {
        "list": "The problem tells us directly that {name} is {value}.",
        "direct": "Now {name}: {lhs} = {expr}, which is {nums} = {value}.",
        "reduce": "Reducing {raw} modulo {mod} leaves {value}, so {lhs} is {value}.",
        "verify": "Let me double-check {name}: {expr} gives {nums} = {value}, which matches.",
        "backward": "To know {name}, I first need {uses}.",
        "subgoal": "My goal is {name}. Its unknown inputs are {uses}, so I set those as subgoals, "
                   "beginning with {first}.",
        "choose": "Several quantities are ready ({ready}); I take {name} because it is {reason}.",
        "prune": "Before computing {name}, I notice the question does not depend on it, so I skip it.",
        "abandon": "Wait, {name} is not needed for the question at all; I abandon this branch.",
        "conclude": "So {name} is {value}, which answers the question.",
        "tmp": "I write {sym} for an intermediate: {body}.",
        "final": "That gives {body}.",
    },
    "style_terse": {
        "list": "{name} = {value}.",
        "direct": "{lhs} = {nums} = {value}.",
        "reduce": "{raw} = {value} (mod {mod}).",
        "verify": "check {lhs}: {nums} = {value}.",
        "backward": "{name} <- {uses}.",
        "subgoal": "goal {name} <- {uses}.",
        "choose": "ready {ready}: {name}.",
        "prune": "skip {name}.",
        "abandon": "drop {name}.",
        "conclude": "answer {value}.",
        "tmp": "{body}.",
        "final": "{body}.",
    },
}


# The explicit rendering's wordings (the other steps keep the style's own WORDING). Fields:
# name (the quantity's name), sym (its symbol, or an intermediate's), defn (its definition
# over its inputs' names), given (its inputs' values), calc (one operation: calc_text),
# chain (every operation of a definition in turn), expr / nums (the definition over symbols
# or names / over values), value.
EXPLICIT_WORDING: dict[str, dict[str, str]] = {
    "style_reference": {
        "restate": "Define {name} as {sym} = {defn}; {given};",
        "open": "Define {name} as {sym} = {defn};",
        "given": "for {sym}, {given};",
        "tmp": "{calc}, so {sym} = {value};",
        "final": "{calc}, so {sym} = {value}.",
        "copy": "so {sym} = {value}.",
        "direct": "{chain}, so {sym} = {value}.",
        "verify": "Check {sym} = {expr} = {nums}: {chain}, so {sym} = {value}, as found.",
    },
    "style_plain": {
        "restate": "{name} = {defn}, with {given}.",
        "open": "{name} = {defn}.",
        "given": "{name}: {given}.",
        "tmp": "{calc}.",
        "final": "{calc}, so {name} = {value}.",
        "copy": "So {name} = {value}.",
        "direct": "{chain}, so {name} = {value}.",
        "verify": "Check: {name} = {expr} = {nums}: {chain}, so {name} = {value}. Correct.",
        "reduce_tmp": "{raw} mod {mod} = {value}.",
    },
    "style_explain": {
        "restate": "By the problem, {name} = {defn}, where {given}.",
        "open": "By the problem, {name} = {defn}.",
        "given": "Back to {name}, where {given}.",
        "tmp": "{calc}.",
        "final": "This gives {calc}, so {name} is {value}.",
        "copy": "So {name} is {value} too.",
        "direct": "Working it out: {chain}, so {name} is {value}.",
        "verify": "Let me double-check {name} = {expr} = {nums}: {chain}, so {name} is {value}, which matches.",
        "reduce_tmp": "Reducing {raw} modulo {mod} leaves {value}.",
    },
    "style_terse": {
        "restate": "{name} = {defn}; {given}.",
        "open": "{name} = {defn}.",
        "given": "{name}: {given}.",
        "tmp": "{calc}.",
        "final": "{calc}, {name} = {value}.",
        "copy": "{name} = {value}.",
        "direct": "{chain}, {name} = {value}.",
        "verify": "check {name} = {nums}: {chain}, {name} = {value}.",
        "reduce_tmp": "{raw} = {value} (mod {mod}).",
    },
}


def execute(task: Task, program: dict, problem: Problem, rng: random.Random,
            max_steps: int = 400, rendering: str = EXPLICIT) -> Trajectory:
    """Run ``program`` on ``problem``; an unfinished trajectory (never an exception) when it cannot finish.

    ``rendering`` is one of :data:`RENDERINGS`: what the steps write, never which steps run.
    """
    if rendering not in RENDERINGS:
        raise ValueError(f"unknown rendering {rendering!r} (known: {', '.join(RENDERINGS)})")
    errors = GRAMMAR.validate(program)
    if errors:
        return Trajectory([], None, False, "", reason="invalid program: " + "; ".join(errors[:3]))
    try:
        from tailor_evo.tasks.igsm.graph import graph_of

        g = graph_of(problem)
    except Exception as exc:  # noqa: BLE001 - bad records become unfinished trajectories
        return Trajectory([], None, False, "", reason=f"unreadable problem: {exc}")
    style = program["args"][0]["op"]
    run = _Run(g, style, rng, max_steps, values=g.values(), aux=_aux(g), rendering=rendering)
    reason = "ok"
    try:
        run.phase(program["args"][1])
        q = g.question
        if q in run.known:
            text = run.words("conclude", name=run.label(q), value=run.known[q])
            if text:
                run.emit(text, "conclude", {"param": q, "value": run.known[q], "answer": run.known[q]})
        else:
            reason = "the program never computed the queried quantity"
    except _Budget:
        reason = f"step budget of {max_steps} steps exhausted"
    except RecursionError:
        reason = "program too deep"
    except Exception as exc:  # noqa: BLE001 - the search must never crash on one program
        reason = f"executor error: {type(exc).__name__}: {exc}"
    reasoning = " ".join(s.text for s in run.steps if s.text)
    if reason != "ok":
        return Trajectory(run.steps, None, False, f"<think> {reasoning} </think>", reason=reason)
    answer = run.known[g.question]
    return Trajectory(run.steps, answer, True, task.format_response(reasoning, str(answer)))


def quoted_sentences(g: Graph, p: Param) -> list[str]:
    """The problem's sentences that state ``p``: its own for an instance quantity, those of
    the items it sums (in ``p.preds`` order) for a total over a category."""
    stated = [p.id] if p.kind == INSTANCE else [q for q in p.preds if g.params[q].kind == INSTANCE]
    return [sentence(g, g.params[q]) for q in stated]


def check_fact(g: Graph, fact: dict | None) -> tuple[bool, str]:
    """Whether a step's fact holds for the problem; (True, "ok") for steps without a fact."""
    if fact is None:
        return True, "ok"
    values = g.values()
    if "param" in fact and "value" in fact and values.get(fact["param"]) != fact["value"]:
        return False, f"value of parameter {fact['param']}"
    for q, v in fact.get("inputs", {}).items():
        if values.get(int(q)) != v:
            return False, f"input {q}"
    if "calc" in fact:
        a, op, b, r = fact["calc"]
        if apply(op, a, b) != r:
            return False, "calculation"
    if "raw_calc" in fact:
        a, op, b, r = fact["raw_calc"]
        if {"+": a + b, "-": a - b, "*": a * b}[op] != r:
            return False, "raw calculation"
    if "reduce" in fact:
        r, v = fact["reduce"]
        if r % MOD != v:
            return False, "reduction"
    if "uses" in fact and set(fact["uses"]) != set(g.params[fact["param"]].preds):
        return False, "inputs of a parameter"
    if "quote" in fact and sorted(fact["quote"]) != sorted(quoted_sentences(g, g.params[fact["param"]])):
        return False, "quoted sentences"
    if "unneeded" in fact and fact["unneeded"] in g.needed():
        return False, "a needed parameter called unnecessary"
    if "answer" in fact and fact["answer"] != g.answer():
        return False, "answer"
    if "ready" in fact:
        known = set(fact["known"])
        if fact["chosen"] not in fact["ready"] or any(
                r in known or not set(g.params[r].preds) <= known for r in fact["ready"]):
            return False, "ready set"
    if "frontier" in fact and (fact["chosen"] not in fact["frontier"]
                               or not set(fact["frontier"]) <= g.needed()):
        return False, "backward frontier"
    return True, "ok"
