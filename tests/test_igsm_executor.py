"""iGSM move grammar, executor and seed libraries.

Facts claimed by steps are checked against an evaluation written here (from the
record's structure and sentence forms), not against the package's solver.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor_evo.tasks.igsm import IGSMTask, graph_of
from tailor_evo.tasks.igsm.executor import check_fact
from tailor_evo.tasks.igsm.moves import STEP_KINDS
from tailor_evo.tasks.registry import get_task
from tests.test_igsm_task import independent_values

TASK = get_task("igsm")
COMPACT = IGSMTask(rendering="compact")     # the public detailed-solution format
QUOTED = IGSMTask(rendering="quoted")       # explicit, with the problem's sentences copied before use
GRAMMAR = TASK.grammar()
SEEDS = Path(__file__).resolve().parents[1] / "populations" / "seeds" / "igsm"
M = 23


def load_seeds(name: str) -> list[dict]:
    data = json.loads((SEEDS / f"{name}.json").read_text())
    assert data["task"] == "igsm" and data["library"] == name
    return data["primitives"]


def needed_of(meta: dict) -> set[int]:
    out, todo = set(), [meta["question"]]
    while todo:
        q = todo.pop()
        if q not in out:
            out.add(q)
            todo.extend(meta["params"][q]["preds"])
    return out


def assert_fact_true(meta: dict, vals: dict[int, int], fact: dict | None) -> None:
    """Independent check of a step's claim."""
    if fact is None:
        return
    assert set(fact) <= {"param", "value", "inputs", "calc", "raw_calc", "reduce", "uses", "unneeded", "answer",
                         "chosen", "ready", "known", "frontier", "quote"}
    if "value" in fact:
        assert vals[fact["param"]] == fact["value"]
    for q, v in fact.get("inputs", {}).items():
        assert vals[int(q)] == v
    if "calc" in fact:
        a, op, b, r = fact["calc"]
        assert {"+": a + b, "-": a - b, "*": a * b}[op] % M == r
    if "raw_calc" in fact:
        a, op, b, r = fact["raw_calc"]
        assert {"+": a + b, "-": a - b, "*": a * b}[op] == r
    if "reduce" in fact:
        r, v = fact["reduce"]
        assert r % M == v and 0 <= v < M
    if "uses" in fact:
        assert set(fact["uses"]) == set(meta["params"][fact["param"]]["preds"])
    if "unneeded" in fact:
        assert fact["unneeded"] not in needed_of(meta)
    if "quote" in fact:   # the sentences of the quantity itself, or of the items a total sums
        p = meta["params"][fact["param"]]
        own = [p] if p["kind"] == "instance" else [meta["params"][q] for q in p["preds"]
                                                   if meta["params"][q]["kind"] == "instance"]
        assert sorted(s.split(" equals ")[0] for s in fact["quote"]) == sorted(
            f"The number of each {q['name']}" for q in own)
    if "answer" in fact:
        assert fact["answer"] == vals[meta["question"]]
    if "ready" in fact:   # every listed parameter is unknown with all inputs known, and one is chosen
        assert fact["chosen"] in fact["ready"]
        for r in fact["ready"]:
            assert r not in fact["known"] and set(meta["params"][r]["preds"]) <= set(fact["known"])
    if "frontier" in fact:
        assert fact["chosen"] in fact["frontier"] and set(fact["frontier"]) <= needed_of(meta)


# ---- grammar -------------------------------------------------------------------------------
def test_grammar_is_deap_ready():
    names = [m.name for m in GRAMMAR.moves]
    assert len(names) == len(set(names))
    arg_types = {t for m in GRAMMAR.moves for t in m.args}
    for t in arg_types:
        assert any(m.ret == t and not m.args for m in GRAMMAR.moves), f"no terminal returns {t}"
    root = [m for m in GRAMMAR.moves if m.ret == GRAMMAR.root]
    assert root and all("Style" in m.args for m in root)
    assert sum(1 for m in GRAMMAR.moves if m.ret == "Style" and not m.args) >= 3


def test_grammar_converts_to_deap():
    from deap import gp

    types = {t: type(t, (), {}) for m in GRAMMAR.moves for t in (m.ret, *m.args)}
    pset = gp.PrimitiveSetTyped("igsm", [], types[GRAMMAR.root])
    for m in GRAMMAR.moves:
        if m.args:
            pset.addPrimitive(lambda *a: None, [types[t] for t in m.args], types[m.ret], name=m.name)
        else:
            pset.addTerminal(m.name, types[m.ret], name=m.name)
    def prefix(node):
        yield pset.mapping[node["op"]]
        for a in node.get("args", []):
            yield from prefix(a)

    for prim in load_seeds("four-behaviour"):
        tree = gp.PrimitiveTree(list(prefix(prim["program"])))
        assert tree.height >= 2 and str(tree).startswith("primitive(")
        random.seed(0)
        (mutant,) = gp.mutNodeReplacement(gp.PrimitiveTree(tree), pset)
        assert len(mutant) == len(tree)


def test_describe_reads_well():
    for prim in load_seeds("rule-based") + load_seeds("four-behaviour"):
        text = GRAMMAR.describe(prim["program"])
        assert text.startswith("Strategy: ") and "{" not in text and len(text) > 60


@pytest.mark.parametrize("program, fragment", [
    ({"op": "nope", "args": []}, "unknown move"),
    ({"op": "primitive", "args": [{"op": "style_plain", "args": []}]}, "takes 2"),
    ({"op": "primitive", "args": [{"op": "binary", "args": []}, {"op": "trace_back", "args": []}]}, "expected Style"),
    ({"op": "compute", "args": []}, "expected Primitive"),
    ("primitive", "expected an object"),
    ({"op": "primitive", "args": [{"op": "style_plain"}, {"op": "then", "args": [
        {"op": "trace_back", "args": []}, {"op": "scope_all", "args": []}]}]}, "expected Phase"),
    ({"op": "primitive", "args": [{"op": "style_plain", "args": []}, {"op": "trace_back", "args": []}],
      "extra": 1}, "unexpected keys"),
])
def test_invalid_programs_rejected_with_reason(program, fragment):
    errors = GRAMMAR.validate(program)
    assert errors and any(fragment in e for e in errors)
    tr = TASK.execute(program, TASK.generate(1, 0)[0], random.Random(0))
    assert not tr.finished and tr.reason.startswith("invalid program") and tr.answer is None


def test_programs_round_trip_json():
    rng = random.Random(5)
    for _ in range(50):
        prog = GRAMMAR.random_program(rng, max_depth=6)
        again = json.loads(json.dumps(prog))
        assert again == prog and GRAMMAR.validate(again) == []


# ---- executor on random problems x random programs --------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(1, 8), st.integers(0, 10**6))
def test_random_programs_are_sound(seed, level, prog_seed):
    (p,) = TASK.generate(1, seed, levels=[level], max_edge=12)
    meta = json.loads(json.dumps(p.meta))
    vals = independent_values(meta)
    rng = random.Random(prog_seed)
    for k in range(6):
        prog = GRAMMAR.random_program(rng, max_depth=rng.randint(3, 7))
        tr = (TASK, COMPACT, QUOTED)[k % 3].execute(prog, p, random.Random(prog_seed))
        for step in tr.steps:
            assert_fact_true(meta, vals, step.fact)
            assert check_fact(graph_of(p), step.fact) == (True, "ok")
            assert step.kind in STEP_KINDS
            assert step.key and step.state.startswith("known: {")
        if tr.finished:
            assert tr.answer == p.answer
            assert TASK.verify(p, tr.completion).correct
        else:
            assert tr.reason in ("the program never computed the queried quantity",) or "budget" in tr.reason
            assert not TASK.verify(p, tr.completion).correct


def test_random_programs_often_finish():
    """The soundness test above is not vacuous: many random programs do finish."""
    rng = random.Random(0)
    problems = TASK.generate(20, 3)
    done = sum(TASK.execute(GRAMMAR.random_program(rng, max_depth=6), problems[i % 20], rng).finished
               for i in range(200))
    assert done >= 60


def test_step_budget_gives_unfinished_trajectory():
    p = TASK.generate(1, 3, levels=[6])[0]
    prog = load_seeds("four-behaviour")[0]["program"]
    tr = TASK.execute(prog, p, random.Random(0), max_steps=3)
    assert not tr.finished and "budget" in tr.reason and len(tr.steps) == 3


def test_check_fact_rejects_false_claims():
    p = TASK.generate(1, 4, levels=[5])[0]
    g = graph_of(p)
    q = g.question
    assert check_fact(g, {"param": q, "value": p.answer}) == (True, "ok")
    assert not check_fact(g, {"param": q, "value": (p.answer + 1) % M})[0]
    assert not check_fact(g, {"calc": [20, "+", 5, 25]})[0]
    assert not check_fact(g, {"reduce": [25, 3]})[0]
    assert not check_fact(g, {"unneeded": q})[0]
    assert not check_fact(g, {"chosen": q, "ready": [q], "known": []})[0] or not g.params[q].preds
    assert not check_fact(g, {"chosen": q, "ready": [q], "known": [q]})[0]


def test_every_move_is_exercised():
    """Each move of the grammar appears in some finished, correct trajectory."""
    rng = random.Random(0)
    problems = TASK.generate(20, 9)
    used: set[str] = set()

    def walk(node):
        used.add(node["op"])
        for a in node.get("args", []):
            walk(a)

    tries = 0
    while used != set(GRAMMAR.by_name) and tries < 3000:
        tries += 1
        prog = GRAMMAR.random_program(rng, max_depth=6)
        p = problems[tries % len(problems)]
        tr = TASK.execute(prog, p, rng)
        if tr.finished and TASK.verify(p, tr.completion).correct:
            walk(prog)
    assert used == set(GRAMMAR.by_name)


# ---- seeds ------------------------------------------------------------------------------------
def test_seed_files_valid_and_distinct():
    rb, fb = load_seeds("rule-based"), load_seeds("four-behaviour")
    assert len(rb) == 1 and len(fb) == 4
    for prim in rb + fb:
        assert GRAMMAR.validate(prim["program"]) == [] and prim["name"] and prim["description"]
    assert len({json.dumps(p["program"], sort_keys=True) for p in rb + fb}) == 5
    from tailor_evo.populations.library import validate_library

    for path in SEEDS.glob("*.json"):
        assert validate_library(path, "igsm") == []


def test_rule_based_seed_reproduces_reference_solution():
    """In the compact rendering the rule-based seed writes the public detailed solution word for word."""
    prog = load_seeds("rule-based")[0]["program"]
    for p in TASK.generate(40, 21, levels=[1, 2, 3, 4, 5, 6, 8, 10], max_edge=14):
        tr = COMPACT.execute(prog, p, random.Random(0))
        assert tr.finished and tr.answer == p.answer
        ref = TASK.reference_solution(p)
        order = lambda text: re.findall(r"Define (.+?) as ", text)  # noqa: E731
        assert order(tr.completion) == order(ref)                    # same reasoning order
        assert tr.completion == TASK.reference_completion(p)         # and the same text


def test_four_behaviour_seeds_show_their_behaviour():
    problems = TASK.generate(30, 13, levels=[4, 5, 6])
    kinds: dict[str, set[str]] = {}
    for prim in load_seeds("four-behaviour"):
        ks: set[str] = set()
        for p in problems:
            tr = TASK.execute(prim["program"], p, random.Random(1))
            assert tr.finished and TASK.verify(p, tr.completion).correct
            ks |= {s.kind for s in tr.steps}
        kinds[prim["name"]] = ks
    assert "verify" in kinds["igsm-verification"]
    assert "backtrack" in kinds["igsm-backtracking"]
    assert "subgoal" in kinds["igsm-subgoal-setting"]
    assert "backward" in kinds["igsm-backward-chaining"]


def state_keys(program: dict, problems) -> set[str]:
    out: set[str] = set()
    for i, p in enumerate(problems):
        tr = TASK.execute(program, p, random.Random(i))
        out |= {f"{i}:{s.key}" for s in tr.steps}
    return out


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_seeds_visit_different_states():
    problems = TASK.generate(64, 17)
    seeds = load_seeds("rule-based") + load_seeds("four-behaviour")
    keys = {s["name"]: state_keys(s["program"], problems) for s in seeds}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            j = jaccard(keys[a], keys[b])
            print(f"jaccard {a} ~ {b}: {j:.3f}")
            assert j < 0.6, (a, b, j)


def test_style_changes_words_not_states():
    p = TASK.generate(1, 8, levels=[6])[0]
    base = load_seeds("four-behaviour")[3]["program"]
    texts, keys = set(), set()
    for style in ("style_reference", "style_plain", "style_explain", "style_terse"):
        prog = copy.deepcopy(base)
        prog["args"][0] = {"op": style, "args": []}
        tr = TASK.execute(prog, p, random.Random(0))
        assert tr.finished and TASK.verify(p, tr.completion).correct
        texts.add(tr.completion)
        keys.add(tuple(s.key for s in tr.steps if s.kind != "conclude"))
    assert len(texts) == 4 and len(keys) == 1


def test_reference_style_forward_orders_pass_the_full_checker():
    """Other valid orders, and extra correct definitions, are accepted by the full-solution checker."""
    ref = {"op": "style_reference", "args": []}
    programs = [
        {"op": "primitive", "args": [ref, {"op": "compute", "args": [
            {"op": "scope_needed", "args": []}, {"op": "by_random", "args": []}, {"op": "binary", "args": []}]}]},
        {"op": "primitive", "args": [ref, {"op": "compute", "args": [
            {"op": "scope_all", "args": []}, {"op": "by_most_used", "args": []}, {"op": "binary", "args": []}]}]},
        {"op": "primitive", "args": [ref, {"op": "then", "args": [
            {"op": "list_givens", "args": []}, {"op": "depth_first", "args": [{"op": "direct", "args": []}]}]}]},
    ]
    for p in TASK.generate(30, 41, levels=[2, 4, 6, 8], max_edge=12):
        for i, prog in enumerate(programs):
            tr = COMPACT.execute(prog, p, random.Random(i))
            assert tr.finished
            res = TASK.check_solution(p, tr.completion)
            if i < 2:
                assert res.ok, (res.reason, tr.completion)
            else:   # one-expression steps are not binary: the checker must say so
                assert res.ok or "binary operation" in res.reason or "expected" in res.reason
