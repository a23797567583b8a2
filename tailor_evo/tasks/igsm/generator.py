"""Random iGSM graphs with an exact operation count.

One attempt draws a structure (hierarchy window, layer widths, containment edges),
gives every instance parameter a sentence form over parameters defined before it
(so the dependency graph is acyclic by construction), and then asks about a
parameter whose operation count equals the target. Attempts repeat, a bounded
number of times, until such a parameter exists.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tailor_evo.tasks.igsm.graph import ABSTRACT, INSTANCE, MOD, Form, Graph, Param, cost, structural_preds_from
from tailor_evo.tasks.igsm.text import TEST_BINS, TRAIN_BINS, template_bin
from tailor_evo.tasks.igsm.world import BANK, Category, Hierarchy

# Sentence-form mix (number of parameter arguments, whether a constant is involved),
# close to the proportions observed in the public generator's output.
FORM_MIX: tuple[tuple[int, bool, float], ...] = (
    (0, True, 0.32), (1, False, 0.25), (1, True, 0.18), (2, False, 0.10),
    (2, True, 0.08), (3, True, 0.05), (3, False, 0.03), (4, False, 0.03),
)


@dataclass(frozen=True)
class GenOptions:
    """Generator knobs. ``ip`` fixes the instance-parameter count; otherwise it is drawn up to ``max_edge``."""

    max_edge: int = 10
    ip: int | None = None
    max_tries: int = 3000
    abstract_share: float = 0.5     # chance of asking about an abstract parameter when both kinds fit
    split: str | None = None        # "train" / "test": keep only solution templates of that bin range


class GenerationError(ValueError):
    """No graph with the requested operation count was found within the try budget."""


def generate_graph(rng: random.Random, target_op: int, opts: GenOptions) -> Graph:
    """A graph whose queried parameter needs exactly ``target_op`` operations."""
    if target_op < 1:
        raise GenerationError(f"op must be at least 1, got {target_op}")
    if opts.split not in (None, "train", "test"):
        raise GenerationError(f"split must be 'train' or 'test', got {opts.split!r}")
    bins = None if opts.split is None else (TRAIN_BINS if opts.split == "train" else TEST_BINS)
    for _ in range(opts.max_tries):
        g = _attempt(rng, target_op, opts)
        if g is not None and (bins is None or template_bin(g) in bins):
            return g
    raise GenerationError(f"no problem with op={target_op} found in {opts.max_tries} tries "
                          f"(max_edge={opts.max_edge}, ip={opts.ip}); raise max_edge or lower op")


def _depth(rng: random.Random, target_op: int) -> int:
    centre = 2.0 + 2.0 * min(1.0, (target_op - 1) / 12.0)
    weights = [math.exp(-((d - centre) ** 2)) for d in (2, 3, 4)]
    return rng.choices((2, 3, 4), weights)[0]


@dataclass
class _Shape:
    """The drawn structure of one attempt: which categories of which hierarchy, how many items each."""

    hier: Hierarchy
    cats: tuple[Category, ...]        # d consecutive categories of it, top first
    widths: list[int]                 # items per category
    edges: int                        # containment edges to draw (instance parameters)

    @property
    def depth(self) -> int:
        return len(self.widths)


@dataclass
class _Keys:
    """Parameter ids: instance parameters by containment edge, then abstract ones by (layer, item, layer)."""

    inst_keys: list[tuple[int, int, int]]
    inst: dict[tuple[int, int, int], int]
    abs_keys: list[tuple[int, int, int]]
    absi: dict[tuple[int, int, int], int]

    @property
    def count(self) -> int:
        return len(self.inst_keys) + len(self.abs_keys)


def _attempt(rng: random.Random, target_op: int, opts: GenOptions) -> Graph | None:
    """One random graph, with a question of ``target_op`` operations; None when the draw admits none."""
    shape = _shape(rng, target_op, opts)
    if shape is None:
        return None
    edges = _edges(rng, shape, opts)
    if edges is None:
        return None
    return _ask(rng, _graph(rng, shape, edges), target_op, opts)


def _shape(rng: random.Random, target_op: int, opts: GenOptions) -> _Shape | None:
    """Hierarchy window, layer widths and the number of edges (``opts.ip``, else drawn up to ``max_edge``)."""
    hier = rng.choice(BANK)
    d = _depth(rng, target_op)
    start = rng.randint(0, len(hier.categories) - d)
    cats = hier.categories[start:start + d]
    w1 = rng.choice((2, 3, 4))
    widths = [rng.randint(2, w1) for _ in range(d)]
    n_lower = sum(widths[1:])
    n_max = sum(widths[k] * widths[k + 1] for k in range(d - 1))
    if opts.ip is not None:
        if not n_lower <= opts.ip <= n_max:
            return None
        return _Shape(hier, cats, widths, opts.ip)
    hi = min(opts.max_edge, n_max)
    if hi < n_lower:
        return None
    return _Shape(hier, cats, widths, min(rng.randint(n_lower, hi), rng.randint(n_lower, hi)))


def _edges(rng: random.Random, shape: _Shape, opts: GenOptions) -> set[tuple[int, int, int]] | None:
    """Containment edges (layer, parent, child): every lower item gets a parent, most containers a
    child, then random extra edges up to ``shape.edges``; None when the forced ones exceed the cap."""
    d, widths = shape.depth, shape.widths
    edges: set[tuple[int, int, int]] = set()
    for k in range(1, d):
        for j in range(widths[k]):
            edges.add((k - 1, rng.randrange(widths[k - 1]), j))
    # most containers get a child too: childless items make abstract counts 0, and too many
    # zeros would make "0" a good blind guess
    cap = opts.ip if opts.ip is not None else opts.max_edge
    for k in range(d - 1):
        for i in range(widths[k]):
            if not any((k, i, j) in edges for j in range(widths[k + 1])) and rng.random() < 0.8:
                edges.add((k, i, rng.randrange(widths[k + 1])))
    if len(edges) > cap:
        return None
    e = max(shape.edges, len(edges))
    spare = [(k, i, j) for k in range(d - 1) for i in range(widths[k]) for j in range(widths[k + 1])
             if (k, i, j) not in edges]
    edges.update(rng.sample(spare, e - len(edges)))
    return edges


def _keys(shape: _Shape, edges: set[tuple[int, int, int]]) -> _Keys:
    d, widths = shape.depth, shape.widths
    inst_keys = sorted(edges)
    abs_keys = [(k, i, m) for k in range(d - 1) for i in range(widths[k]) for m in range(k + 1, d)]
    return _Keys(inst_keys, {key: i for i, key in enumerate(inst_keys)}, abs_keys,
                 {key: len(inst_keys) + i for i, key in enumerate(abs_keys)})


def _instance_forms(rng: random.Random, keys: _Keys, abs_preds: dict) -> dict[int, Form]:
    """A sentence form for every instance parameter, defined in a random order over the parameters
    defined before it (abstract ones once every instance parameter they need is), so the graph is acyclic."""
    # instance parameters an abstract one needs, transitively through abstract children
    abs_need: dict[int, set[int]] = {}
    for key in sorted(keys.abs_keys, key=lambda t: (-t[0], t[2])):   # deeper items first
        need: set[int] = set()
        for q in abs_preds[key]:
            need |= abs_need[q] if q in abs_need else {q}
        abs_need[keys.absi[key]] = need
    # abstract parameters of childless items are always 0; used sparingly so answers are not mostly 0
    empty_abs = {keys.absi[key] for key in keys.abs_keys if not abs_preds[key]}
    forms: dict[int, Form] = {}
    defined: list[int] = []
    defined_set: set[int] = set()
    perm = list(range(len(keys.inst_keys)))
    rng.shuffle(perm)
    for pid in perm:
        ready_abs = [a for a, need in abs_need.items() if need <= defined_set]
        forms[pid] = _form(rng, defined, ready_abs, empty_abs)
        defined.append(pid)
        defined_set.add(pid)
    return forms


def _graph(rng: random.Random, shape: _Shape, edges: set[tuple[int, int, int]]) -> Graph:
    """Items drawn for every category, every parameter with its form, the sentence order; no question yet."""
    items = [rng.sample(rng.choice(c.pools), shape.widths[k]) for k, c in enumerate(shape.cats)]
    names = [c.name for c in shape.cats]
    keys = _keys(shape, edges)
    abs_preds = {key: structural_preds_from(keys.inst, keys.absi, shape.widths[key[0] + 1], *key)
                 for key in keys.abs_keys}
    forms = _instance_forms(rng, keys, abs_preds)
    params: list[Param] = []
    for key in keys.inst_keys:
        k, i, j = key
        pid = keys.inst[key]
        params.append(Param(pid, INSTANCE, k, i, j, f"{items[k][i]}'s {items[k + 1][j]}",
                            forms[pid].args, forms[pid]))
    for key in keys.abs_keys:
        k, i, m = key
        params.append(Param(keys.absi[key], ABSTRACT, k, i, m, f"{items[k][i]}'s {names[m]}", abs_preds[key]))
    assert len(params) == keys.count
    order = list(range(len(keys.inst_keys)))
    rng.shuffle(order)
    return Graph(shape.hier.name, names, items, params, 0, order, rng.randrange(2**31))


def _ask(rng: random.Random, g: Graph, target_op: int, opts: GenOptions) -> Graph | None:
    """Set the question to a parameter needing exactly ``target_op`` operations (abstract with chance
    ``abstract_share`` when both kinds fit); None when no parameter does."""
    params = g.params
    n_params = len(params)
    masks: dict[int, int] = {}
    fits: dict[str, list[int]] = {INSTANCE: [], ABSTRACT: []}
    costs = {p.id: cost(g, p) for p in params}
    for pid in g.topo_order():
        m = 1 << pid
        for q in params[pid].preds:
            m |= masks[q]
        masks[pid] = m
        if sum(costs[q] for q in range(n_params) if m >> q & 1) == target_op:
            fits[params[pid].kind].append(pid)
    if not fits[INSTANCE] and not fits[ABSTRACT]:
        return None
    kind = ABSTRACT if rng.random() < opts.abstract_share else INSTANCE
    if not fits[kind]:
        kind = INSTANCE if kind == ABSTRACT else ABSTRACT
    g.question = rng.choice(fits[kind])
    g._cache.clear()
    return g


def _form(rng: random.Random, defined: list[int], ready_abs: list[int], empty_abs: set[int]) -> Form:
    """A sentence form for the next instance parameter, over already available parameters."""
    n_args, with_const, _ = rng.choices(FORM_MIX, [w for *_, w in FORM_MIX])[0]
    pool = list(defined) + [a for a in ready_abs if a not in defined]
    n_args = min(n_args, len(pool))
    if n_args == 0:
        return Form(rng.randrange(MOD), None, None, ())
    if with_const:
        n_args = min(n_args, 3)
    # prefer recently defined parameters so that chains (and larger op) arise often
    weights = [1.0 + i for i in range(len(defined))]
    weights += [(0.05 if a in empty_abs else 0.6) * (1 + len(defined)) for a in pool[len(defined):]]
    args: list[int] = []
    while len(args) < n_args:
        pick = rng.choices(range(len(pool)), weights)[0]
        if pool[pick] not in args:
            args.append(pool[pick])
            weights[pick] = 0.0
    inner = "single" if n_args == 1 else ("diff" if n_args == 2 and rng.random() < 0.5 else "sum")
    if not with_const:
        return Form(None, None, inner, tuple(args))
    if rng.random() < 0.5:
        return Form(rng.randrange(MOD), "+", inner, tuple(args))
    return Form(rng.randrange(1, MOD), "*", inner, tuple(args))
