"""The iGSM parameter graph: instance and abstract parameters, their dependencies and values.

Everything the solver, the solution renderer, the executor and the verifier need is
derived from one :class:`Graph`, which round-trips through ``Problem.meta`` so that a
JSONL record alone is enough to solve, render or check a problem.

Arithmetic is in Z_23: every addition, subtraction and multiplication is reduced.

The *binary plan* of a parameter (:func:`plan`) is the sequence of binary computation
units ("x = a + b") a detailed solution writes for it; ``len(plan(p))`` is the
parameter's operation cost, and a problem's op is the summed cost of the queried
parameter's ancestors (itself included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MOD = 23

INSTANCE, ABSTRACT = "instance", "abstract"
INNER_FORMS = ("single", "sum", "diff")
CONST_OPS = ("+", "*")


@dataclass(frozen=True)
class Form:
    """How an instance parameter's sentence defines it.

    ``const`` alone: "equals 17". ``inner`` over ``args`` alone: "equals P", "the sum of
    P and Q", "the difference of P and Q". Both: "equals 5 more than X" (``cop`` "+") or
    "equals 7 times as much as X" (``cop`` "*"), X being the inner expression.
    """

    const: int | None
    cop: str | None
    inner: str | None
    args: tuple[int, ...]


@dataclass(frozen=True)
class Param:
    id: int
    kind: str                       # INSTANCE or ABSTRACT
    layer: int                      # layer of the upper item A
    upper: int                      # index of A in its layer
    lower: int                      # instance: index of B in layer+1; abstract: category layer index
    name: str                       # "Elm Park's Sand Pit" / "Elm Park's Toy"
    preds: tuple[int, ...]          # direct predecessors (RNG excluded), in the order they are used
    form: Form | None = None        # instance parameters only


@dataclass(frozen=True)
class Ref:
    """An operand of a binary unit: a parameter, an intermediate, or a literal constant."""

    kind: str                       # "param" | "tmp" | "const"
    value: int


@dataclass(frozen=True)
class Unit:
    """One "=" computation: ``result = left op right`` (or a constant, a copy, a zero)."""

    op: str                         # "+", "-", "*", "const", "copy", "zero"
    operands: tuple[Ref, ...]
    result: Ref


@dataclass
class Graph:
    hierarchy: str
    categories: list[str]           # one per layer, top first
    items: list[list[str]]          # item names per layer
    params: list[Param]
    question: int                   # id of the queried parameter
    order: list[int]                # instance parameter ids in problem-sentence order
    symbol_seed: int                # seeds the random single-letter symbols of the solution
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---- structure ---------------------------------------------------------------
    def is_deep(self, p: Param) -> bool:
        return p.kind == ABSTRACT and p.lower > p.layer + 1

    def topo_order(self) -> list[int]:
        """All parameter ids, predecessors first (stable: lower id first among ready ones)."""
        if "topo" not in self._cache:
            import heapq

            indeg = {p.id: len(set(p.preds)) for p in self.params}
            succ: dict[int, list[int]] = {p.id: [] for p in self.params}
            for p in self.params:
                for q in set(p.preds):
                    succ[q].append(p.id)
            ready = [pid for pid, d in indeg.items() if d == 0]
            heapq.heapify(ready)
            out: list[int] = []
            while ready:
                pid = heapq.heappop(ready)
                out.append(pid)
                for s in succ[pid]:
                    indeg[s] -= 1
                    if indeg[s] == 0:
                        heapq.heappush(ready, s)
            if len(out) != len(self.params):
                raise ValueError("the dependency graph has a cycle")
            self._cache["topo"] = out
        return self._cache["topo"]

    def successors(self) -> dict[int, list[int]]:
        if "succ" not in self._cache:
            succ: dict[int, list[int]] = {p.id: [] for p in self.params}
            for p in self.params:
                for q in dict.fromkeys(p.preds):
                    succ[q].append(p.id)
            self._cache["succ"] = succ
        return self._cache["succ"]

    def ancestors(self, pid: int) -> set[int]:
        """The parameters ``pid`` depends on, transitively, including ``pid`` itself."""
        masks = self._masks()
        m, out, i = masks[pid], set(), 0
        while m:
            if m & 1:
                out.add(i)
            m >>= 1
            i += 1
        return out

    def _masks(self) -> dict[int, int]:
        if "masks" not in self._cache:
            masks: dict[int, int] = {}
            for pid in self.topo_order():
                m = 1 << pid
                for q in self.params[pid].preds:
                    m |= masks[q]
                masks[pid] = m
            self._cache["masks"] = masks
        return self._cache["masks"]

    def needed(self) -> set[int]:
        """The necessary parameters: the ancestors of the queried one."""
        if "needed" not in self._cache:
            self._cache["needed"] = self.ancestors(self.question)
        return self._cache["needed"]

    def op_of(self, pid: int) -> int:
        return sum(cost(self, self.params[q]) for q in self.ancestors(pid))

    @property
    def op(self) -> int:
        return self.op_of(self.question)

    @property
    def ip(self) -> int:
        return sum(1 for p in self.params if p.kind == INSTANCE)

    # ---- values ------------------------------------------------------------------
    def values(self) -> dict[int, int]:
        """Every parameter's value mod 23, evaluated in topological order."""
        if "values" not in self._cache:
            vals: dict[int, int] = {}
            for pid in self.topo_order():
                vals[pid] = evaluate(self, self.params[pid], vals)
            self._cache["values"] = vals
        return self._cache["values"]

    def answer(self) -> int:
        return self.values()[self.question]

    # ---- JSON --------------------------------------------------------------------
    def to_meta(self) -> dict[str, Any]:
        params = []
        for p in self.params:
            d: dict[str, Any] = {"id": p.id, "kind": p.kind, "layer": p.layer, "upper": p.upper,
                                 "lower": p.lower, "name": p.name, "preds": list(p.preds)}
            if p.form is not None:
                d["form"] = {"const": p.form.const, "cop": p.form.cop, "inner": p.form.inner,
                             "args": list(p.form.args)}
            params.append(d)
        return {"hierarchy": self.hierarchy, "categories": list(self.categories),
                "items": [list(layer) for layer in self.items], "params": params,
                "question": self.question, "order": list(self.order), "symbol_seed": self.symbol_seed,
                "modulus": MOD, "op": self.op, "ip": self.ip}

    @classmethod
    def from_meta(cls, meta: Any, *, source: str = "<record>", line: int | None = None) -> "Graph":
        """Rebuild and validate a graph; raise InputError naming the offending ``meta`` field."""
        from tailor_evo.errors import InputError

        def fail(msg: str, fld: str) -> InputError:
            return InputError(msg, file=source, line=line, field=f"meta.{fld}" if fld else "meta")

        if not isinstance(meta, dict):
            raise fail("expected an object", "")
        for key in ("hierarchy", "categories", "items", "params", "question", "order", "symbol_seed"):
            if key not in meta:
                raise fail("missing field", key)
        cats, items = meta["categories"], meta["items"]
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats) or len(cats) < 2:
            raise fail("expected a list of at least two category names", "categories")
        if (not isinstance(items, list) or len(items) != len(cats)
                or not all(isinstance(layer, list) and layer and all(isinstance(n, str) for n in layer)
                           for layer in items)):
            raise fail("expected one non-empty list of item names per category", "items")
        raw = meta["params"]
        if not isinstance(raw, list) or not raw:
            raise fail("expected a non-empty list", "params")
        params: list[Param] = []
        for i, d in enumerate(raw):
            where = f"params[{i}]"
            if not isinstance(d, dict):
                raise fail("expected an object", where)
            for key in ("id", "kind", "layer", "upper", "lower", "name", "preds"):
                if key not in d:
                    raise fail("missing field", f"{where}.{key}")
            if d["id"] != i:
                raise fail(f"expected id {i}", f"{where}.id")
            if d["kind"] not in (INSTANCE, ABSTRACT):
                raise fail("must be 'instance' or 'abstract'", f"{where}.kind")
            for key in ("layer", "upper", "lower"):
                if not isinstance(d[key], int) or isinstance(d[key], bool):
                    raise fail("expected an integer", f"{where}.{key}")
            if not 0 <= d["layer"] < len(cats) - 1 or not 0 <= d["upper"] < len(items[d["layer"]]):
                raise fail("item out of range", f"{where}.upper")
            if d["kind"] == INSTANCE:
                ok = 0 <= d["lower"] < len(items[d["layer"] + 1])
            else:
                ok = d["layer"] < d["lower"] < len(cats)
            if not ok:
                raise fail("out of range", f"{where}.lower")
            preds = d["preds"]
            if not isinstance(preds, list) or not all(isinstance(q, int) and 0 <= q < len(raw) for q in preds):
                raise fail("expected a list of parameter ids", f"{where}.preds")
            form = None
            if d["kind"] == INSTANCE:
                form = _parse_form(d.get("form"), preds, fail, f"{where}.form")
            params.append(Param(d["id"], d["kind"], d["layer"], d["upper"], d["lower"], str(d["name"]),
                                tuple(preds), form))
        q = meta["question"]
        if not isinstance(q, int) or not 0 <= q < len(params):
            raise fail("expected a parameter id", "question")
        order = meta["order"]
        inst = sorted(p.id for p in params if p.kind == INSTANCE)
        if not isinstance(order, list) or sorted(order) != inst:
            raise fail("must list every instance parameter exactly once", "order")
        if not isinstance(meta["symbol_seed"], int):
            raise fail("expected an integer", "symbol_seed")
        g = cls(str(meta["hierarchy"]), list(cats), [list(layer) for layer in items], params, q, list(order),
                meta["symbol_seed"])
        for p in params:
            if p.kind == ABSTRACT and tuple(p.preds) != structural_preds(g, p.layer, p.upper, p.lower):
                raise fail("abstract parameter predecessors do not match the structure", f"params[{p.id}].preds")
        try:
            g.topo_order()
        except ValueError:
            raise fail("the dependency graph has a cycle", "params") from None
        return g


def _parse_form(d: Any, preds: list[int], fail, where: str) -> Form:
    if not isinstance(d, dict):
        raise fail("instance parameters need a form object", where)
    for key in ("const", "cop", "inner", "args"):
        if key not in d:
            raise fail("missing field", f"{where}.{key}")
    const, cop, inner, args = d["const"], d["cop"], d["inner"], d["args"]
    if const is not None and (not isinstance(const, int) or isinstance(const, bool) or not 0 <= const < MOD):
        raise fail("expected null or an integer in 0..22", f"{where}.const")
    if inner is not None and inner not in INNER_FORMS:
        raise fail(f"expected null or one of {INNER_FORMS}", f"{where}.inner")
    if cop is not None and cop not in CONST_OPS:
        raise fail("expected null, '+' or '*'", f"{where}.cop")
    if not isinstance(args, list) or list(args) != list(preds):
        raise fail("must equal the parameter's preds", f"{where}.args")
    n = len(args)
    valid = ((const is not None and cop is None and inner is None and n == 0)
             or (const is None and cop is None and _inner_ok(inner, n, 4))
             or (const is not None and cop is not None and _inner_ok(inner, n, 3)))
    if valid and cop == "*" and const == 0:
        valid = False
    if not valid:
        raise fail("inconsistent combination of const, cop, inner and args", where)
    return Form(const, cop, inner, tuple(args))


def _inner_ok(inner: str | None, n: int, most: int) -> bool:
    return ((inner == "single" and n == 1) or (inner == "diff" and n == 2)
            or (inner == "sum" and 2 <= n <= most))


def structural_preds(g: Graph, layer: int, upper: int, cat_layer: int) -> tuple[int, ...]:
    """The inputs of the abstract parameter (item ``upper`` of ``layer``, category ``cat_layer``)."""
    if "inst_index" not in g._cache:
        g._cache["inst_index"] = {(p.layer, p.upper, p.lower): p.id for p in g.params if p.kind == INSTANCE}
        g._cache["abs_index"] = {(p.layer, p.upper, p.lower): p.id for p in g.params if p.kind == ABSTRACT}
    return structural_preds_from(g._cache["inst_index"], g._cache["abs_index"], len(g.items[layer + 1]),
                                 layer, upper, cat_layer)


def structural_preds_from(inst: dict[tuple[int, int, int], int], absi: dict[tuple[int, int, int], int],
                          width_next: int, layer: int, upper: int, cat_layer: int) -> tuple[int, ...]:
    """Structural inputs from edge and abstract indexes keyed by (layer, upper, lower).

    Next-layer category: the instance parameters of the item's children. Deeper category:
    for each child B, the pair (inst(A, B), abs(B, C)), whose products are summed.
    """
    children = [j for j in range(width_next) if (layer, upper, j) in inst]
    if cat_layer == layer + 1:
        return tuple(inst[(layer, upper, j)] for j in children)
    out: list[int] = []
    for j in children:
        out.append(inst[(layer, upper, j)])
        out.append(absi[(layer + 1, j, cat_layer)])
    return tuple(out)


def evaluate(g: Graph, p: Param, vals: dict[int, int]) -> int:
    """A parameter's value from its predecessors' values (all mod 23)."""
    if p.kind == ABSTRACT:
        if not g.is_deep(p):
            return sum(vals[q] for q in p.preds) % MOD
        pr = p.preds
        return sum(vals[pr[i]] * vals[pr[i + 1]] for i in range(0, len(pr), 2)) % MOD
    f = p.form
    assert f is not None
    if f.inner is None:
        return f.const % MOD  # type: ignore[operator]
    xs = [vals[q] for q in f.args]
    inner = xs[0] - xs[1] if f.inner == "diff" else sum(xs)
    if f.cop == "+":
        inner = f.const + inner  # type: ignore[operator]
    elif f.cop == "*":
        inner = f.const * inner  # type: ignore[operator]
    return inner % MOD


def plan(g: Graph, p: Param) -> list[Unit]:
    """The binary computation units that define ``p`` (last unit's result is ``p``).

    Multi-operand sums fold left with one intermediate per partial sum; an inner
    expression under a constant is an intermediate; a deep abstract parameter is a sum
    of products, one product intermediate per child.
    """
    me = Ref("param", p.id)
    units: list[Unit] = []
    tmp = 0

    def fresh() -> Ref:
        nonlocal tmp
        tmp += 1
        return Ref("tmp", tmp - 1)

    def fold(refs: list[Ref], final: Ref | None) -> Ref:
        """Sum refs left to right; the last partial sum gets ``final`` if given."""
        acc = refs[0]
        for k, r in enumerate(refs[1:], start=1):
            out = final if (final is not None and k == len(refs) - 1) else fresh()
            units.append(Unit("+", (acc, r), out))
            acc = out
        return acc

    if p.kind == ABSTRACT:
        if not p.preds:
            return [Unit("zero", (), me)]
        if not g.is_deep(p):
            refs = [Ref("param", q) for q in p.preds]
            if len(refs) == 1:
                return [Unit("copy", (refs[0],), me)]
            fold(refs, me)
            return units
        pairs = [(p.preds[i], p.preds[i + 1]) for i in range(0, len(p.preds), 2)]
        if len(pairs) == 1:
            return [Unit("*", (Ref("param", pairs[0][0]), Ref("param", pairs[0][1])), me)]
        prods = []
        for a, b in pairs:
            t = fresh()
            units.append(Unit("*", (Ref("param", a), Ref("param", b)), t))
            prods.append(t)
        fold(prods, me)
        return units
    f = p.form
    assert f is not None
    if f.inner is None:
        return [Unit("const", (Ref("const", f.const),), me)]  # type: ignore[arg-type]
    refs = [Ref("param", q) for q in f.args]
    target = None if f.cop else me
    if f.inner == "single":
        inner = refs[0]
        if f.cop is None:
            return [Unit("copy", (inner,), me)]
    elif f.inner == "diff":
        inner = target or fresh()
        units.append(Unit("-", (refs[0], refs[1]), inner))
    else:
        inner = fold(refs, target)
    if f.cop is not None:
        units.append(Unit(f.cop, (Ref("const", f.const), inner), me))  # type: ignore[arg-type]
    return units


def cost(g: Graph, p: Param) -> int:
    """Operation count of one parameter: the number of units in its binary plan."""
    if p.kind == ABSTRACT:
        c = len(p.preds) // 2 if g.is_deep(p) else len(p.preds)
        if g.is_deep(p):
            return max(1, 2 * c - 1)
        return 1 if c <= 2 else c - 1
    f = p.form
    assert f is not None
    k = len(f.args) + (1 if f.const is not None else 0)
    return 1 if k <= 2 else k - 1


def apply(op: str, a: int, b: int) -> int:
    """One binary operation, reduced mod 23."""
    if op == "+":
        return (a + b) % MOD
    if op == "-":
        return (a - b) % MOD
    if op == "*":
        return (a * b) % MOD
    raise ValueError(f"unknown operator {op!r}")


def graph_of(problem: Any) -> "Graph":
    """The problem's graph (cached on the problem object; ``meta`` is not modified)."""
    g = getattr(problem, "_igsm_graph", None)
    if g is None:
        g = Graph.from_meta(problem.meta, source=problem.id)
        object.__setattr__(problem, "_igsm_graph", g)
    return g
