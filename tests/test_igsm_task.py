"""iGSM generator, solver, solution text, verifier and records.

The checks here evaluate problems independently of the package: values straight from
the containment structure and the sentence forms in ``meta``, op from the cost rules.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor_evo.errors import InputError
from tailor_evo.tasks.igsm import graph_of
from tailor_evo.tasks.igsm.world import BANK, check_bank
from tailor_evo.tasks.registry import get_task

TASK = get_task("igsm")
M = 23


# ---- an independent evaluation of a problem record ------------------------------------
def independent_values(meta: dict) -> dict[int, int]:
    params = meta["params"]
    inst = {(p["layer"], p["upper"], p["lower"]): p["id"] for p in params if p["kind"] == "instance"}
    absi = {(p["layer"], p["upper"], p["lower"]): p["id"] for p in params if p["kind"] == "abstract"}
    memo: dict[int, int] = {}

    def value(pid: int, depth: int = 0) -> int:
        assert depth < 500, "cycle"
        if pid in memo:
            return memo[pid]
        p = params[pid]
        if p["kind"] == "abstract":
            # how many items of category p.lower one item contains, from the edges alone
            total = 0
            for (layer, upper, lower), eid in inst.items():
                if layer == p["layer"] and upper == p["upper"]:
                    per = 1 if p["lower"] == layer + 1 else value(absi[(layer + 1, lower, p["lower"])], depth + 1)
                    total += value(eid, depth + 1) * per
            v = total % M
        else:
            f = p["form"]
            xs = [value(q, depth + 1) for q in f["args"]]
            if f["inner"] is None:
                v = f["const"]
            else:
                x = xs[0] - xs[1] if f["inner"] == "diff" else sum(xs)
                if f["cop"] == "+":
                    x += f["const"]
                elif f["cop"] == "*":
                    x *= f["const"]
                v = x % M
        memo[pid] = v
        return v

    return {p["id"]: value(p["id"]) for p in params}


def independent_op(meta: dict) -> int:
    params = meta["params"]
    seen, todo = set(), [meta["question"]]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(params[pid]["preds"])
    op = 0
    for pid in seen:
        p = params[pid]
        if p["kind"] == "abstract" and p["lower"] > p["layer"] + 1:
            op += max(1, 2 * (len(p["preds"]) // 2) - 1)
        else:
            k = len(p["preds"]) + (1 if p.get("form", {}).get("const") is not None else 0)
            op += 1 if k <= 2 else k - 1
    return op


def solution_units(text: str) -> list[str]:
    segments = re.split(r"; |\. ", text.rstrip("."))
    return [s for s in segments if not s.startswith("Define ")]


problems_strategy = st.tuples(st.integers(0, 10**6), st.integers(1, 9))


# ---- world -------------------------------------------------------------------------------
def test_bank_rules():
    assert check_bank() == []
    assert len(BANK) == 4 and all(len(h.categories) == 4 for h in BANK)
    assert all(len(c.pools) >= 4 for h in BANK for c in h.categories)


def test_check_bank_reports_bad_names():
    from tailor_evo.tasks.igsm.world import Category, Hierarchy

    bad = (Hierarchy("x", (Category("Box", (("A.b", "C", "D", "E"),)), Category("Ball", (("C", "F", "G"),)))),)
    found = check_bank(bad)
    assert any("bad name" in f for f in found) and any("duplicate" in f for f in found)
    assert any("fewer than 4" in f for f in found)


# ---- generator and solver ------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems_strategy)
def test_solver_matches_independent_evaluation(args):
    seed, level = args
    (p,) = TASK.generate(1, seed, levels=[level], max_edge=12)
    meta = json.loads(json.dumps(p.meta))
    vals = independent_values(meta)
    assert TASK.solve(p) == vals[meta["question"]] == p.answer
    assert 0 <= p.answer < M and p.answer_text == str(p.answer)
    # op of the problem equals the target level, by the cost rules and by counting solution units
    assert p.difficulty == level == independent_op(meta)
    assert len(solution_units(TASK.reference_solution(p))) == level
    assert meta["ip"] == sum(1 for q in meta["params"] if q["kind"] == "instance") <= 12


@settings(max_examples=40, deadline=None)
@given(problems_strategy)
def test_reference_completion_correct_and_off_by_one_not(args):
    seed, level = args
    (p,) = TASK.generate(1, seed, levels=[level])
    assert TASK.verify(p, TASK.reference_completion(p)).correct
    wrong = TASK.format_response(TASK.reference_solution(p), str((p.answer + 1) % M))
    v = TASK.verify(p, wrong)
    assert not v.correct and v.reward == 0.0 and v.reason == "wrong answer"


@settings(max_examples=30, deadline=None)
@given(problems_strategy)
def test_reference_solution_is_a_valid_detailed_solution(args):
    """Every parameter defined once, only necessary ones, each after its inputs, last one asked."""
    seed, level = args
    (p,) = TASK.generate(1, seed, levels=[level])
    meta, text = p.meta, TASK.reference_solution(p)
    names = {q["name"]: q["id"] for q in meta["params"]}
    defined = [names[n] for n in re.findall(r"Define (.+?) as \w+;", text)]
    assert len(defined) == len(set(defined))
    needed, todo = set(), [meta["question"]]
    while todo:
        q = todo.pop()
        if q not in needed:
            needed.add(q)
            todo.extend(meta["params"][q]["preds"])
    assert set(defined) == needed
    pos = {q: i for i, q in enumerate(defined)}
    for q in defined:
        assert all(pos[r] < pos[q] for r in meta["params"][q]["preds"])
    assert defined[-1] == meta["question"]
    # every binary calculation in the text is right mod 23
    for a, op, b, r in re.findall(r"= (\d+) ([-+*]) (\d+) = (\d+)", text):
        a, b, r = int(a), int(b), int(r)
        assert {"+": a + b, "-": a - b, "*": a * b}[op] % M == r


def test_problem_text_shape():
    ps = TASK.generate(30, 7)
    for p in ps:
        sentences = p.question.split(". ")
        assert p.question.endswith("?")
        assert p.question.count("The number of each ") == p.meta["ip"]
        assert sentences[-1].split("?")[0].startswith("How many ") or "How many " in sentences[-1]
    # both kinds of questions and both constant operators occur
    kinds = {p.meta["params"][p.meta["question"]]["kind"] for p in ps}
    assert kinds == {"instance", "abstract"}


def test_generation_deterministic_and_levels_cycle():
    a = TASK.generate(10, 3)
    b = TASK.generate(10, 3)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.difficulty for p in a] == [2, 3, 4, 5, 6, 2, 3, 4, 5, 6]
    assert [p.question for p in TASK.generate(5, 4)] != [p.question for p in a[:5]]


def test_generation_options():
    ps = TASK.generate(6, 1, levels=[4], ip=7)
    assert all(p.meta["ip"] == 7 and p.difficulty == 4 for p in ps)
    assert [p.difficulty for p in TASK.generate(3, 1, max_op=3)] == [2, 3, 2]
    with pytest.raises(InputError):
        TASK.generate(1, 0, levels=[9], max_op=5)
    with pytest.raises(InputError):
        TASK.generate(1, 0, bogus=1)
    with pytest.raises(InputError):
        TASK.generate(1, 0, levels=[0])
    for bad in ({"max_edge": "many"}, {"ip": 0}, {"max_tries": 2.5}, {"abstract_share": 2}):
        with pytest.raises(InputError):
            TASK.generate(1, 0, **bad)
    with pytest.raises(InputError, match="op=40"):
        TASK.generate(1, 0, levels=[40], max_edge=3, max_tries=50)


def test_instruction_mentions_modulus_and_format():
    text = TASK.instruction()
    assert "modulo 23" in text and "<think>" in text and "<answer>" in text
    assert "modulo 23" in TASK.prompt(TASK.generate(1, 0)[0])


# ---- verifier ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prob():
    p = TASK.generate(1, 11, levels=[3])[0]
    return p


def _wrap(ans: str) -> str:
    return f"<think> some work </think> <answer>{ans}</answer>"


@pytest.mark.parametrize("make, correct, reason", [
    (lambda a: _wrap(str(a)), True, "ok"),
    (lambda a: _wrap(f"  {a}\n"), True, "ok"),
    (lambda a: _wrap(f"{a}."), True, "ok"),
    (lambda a: _wrap("".join(chr(0xFF10 + int(c)) for c in str(a))), True, "ok"),   # full-width digits
    (lambda a: _wrap(f"\u00a0{a}\u2003"), True, "ok"),                               # unicode spaces
    (lambda a: _wrap(f"{a} or {(a + 1) % 23}"), False, "not a single integer"),
    (lambda a: _wrap(f"x = {a}"), False, "not a single integer"),
    (lambda a: _wrap(f"{a}, {a}"), False, "not a single integer"),
    (lambda a: _wrap(str(a + 23)), False, "out of range"),
    (lambda a: _wrap("-4"), False, "out of range"),
    (lambda a: _wrap(""), False, "empty answer"),
    (lambda a: _wrap(" " * 5), False, "empty answer"),
    (lambda a: "", False, "missing <think>"),
    (lambda a: f"<think> work </think> <answer> {a}", False, "missing </answer>"),
    (lambda a: f"<think> work </think> {a}", False, "missing <answer>"),
    (lambda a: f"<think> work <answer> {a} </answer>", False, "missing </think>"),
    (lambda a: f"<think> a </think> <answer> {a} </answer> <answer> {a} </answer>", False, "duplicated"),
    (lambda a: f"<think> <think> a </think> <answer> {a} </answer>", False, "duplicated <think>"),
    (lambda a: f"<answer> {a} </answer> <think> a </think>", False, "out of order"),
    (lambda a: f"The answer is {a}.", False, "missing"),
    (lambda a: _wrap(str(a) * 200), False, "out of range"),
    (lambda a: _wrap("9" * 10_001), False, "out of range"),       # never converted to an int
    (lambda a: _wrap("+" + "0" * 5000 + str(a)), True, "ok"),      # leading zeros are not digits of the value
])
def test_verifier_robustness(prob, make, correct, reason):
    completion = make(prob.answer)
    v1, v2 = TASK.verify(prob, completion), TASK.verify(prob, completion)
    assert v1 == v2                                   # deterministic
    assert v1.correct is correct and v1.reason
    assert v1.reward == (1.0 if correct else 0.0)
    if reason is not None:
        assert reason in v1.reason


def test_verifier_never_raises_on_odd_inputs(prob):
    for odd in [None, 17, b"<think>", "\x00" * 10, "<think></think><answer></answer>", "💥" * 1000]:
        v = TASK.verify(prob, odd)  # type: ignore[arg-type]
        assert not v.correct and isinstance(v.reason, str)


def test_shaped_reward_orders_outcomes(prob):
    a = prob.answer
    good = TASK.verify(prob, _wrap(str(a)), shaped=True).reward
    wrong = TASK.verify(prob, _wrap(str((a + 1) % 23)), shaped=True).reward
    unparsable = TASK.verify(prob, _wrap("many"), shaped=True).reward
    assert TASK.verify(prob, _wrap("9" * 10_001), shaped=True).reward == wrong     # out of range, well formed
    bad_format = TASK.verify(prob, f"{a}", shaped=True).reward
    assert good == 1.0 > wrong > unparsable > bad_format == 0.0


# ---- records ---------------------------------------------------------------------------------
def test_record_round_trip():
    for p in TASK.generate(10, 5):
        rec = json.loads(json.dumps(TASK.to_record(p)))
        q = TASK.from_record(rec, source="x.jsonl", line=3)
        assert q.to_dict() == p.to_dict()
        assert TASK.solve(q) == p.answer and TASK.reference_solution(q) == TASK.reference_solution(p)


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("meta"), "meta"),
    (lambda r: r["meta"].pop("params"), "meta.params"),
    (lambda r: r["meta"]["params"][0].pop("kind"), "meta.params[0].kind"),
    (lambda r: r["meta"]["params"][0].update(kind="weird"), "meta.params[0].kind"),
    (lambda r: r["meta"].update(question=10**6), "meta.question"),
    (lambda r: r["meta"].update(order=[]), "meta.order"),
    (lambda r: r.update(answer=99), "answer"),
    (lambda r: r.update(answer=(r["answer"] + 1) % M, answer_text=str((r["answer"] + 1) % M)), "answer"),
    (lambda r: r.update(answer_text="nope"), "answer_text"),
    (lambda r: r.update(task="kk"), "task"),
    (lambda r: r.pop("question"), "question"),
    (lambda r: r.update(difficulty=r["difficulty"] + 1), "difficulty"),
])
def test_bad_records_name_the_field(mutate, field):
    rec = json.loads(json.dumps(TASK.to_record(TASK.generate(1, 2, levels=[4])[0])))
    mutate(rec)
    with pytest.raises(InputError) as err:
        TASK.from_record(rec, source="data.jsonl", line=7)
    assert err.value.field == field and err.value.line == 7 and err.value.file == "data.jsonl"


def test_bad_forms_and_cycles_rejected():
    rec = json.loads(json.dumps(TASK.to_record(TASK.generate(1, 2, levels=[5])[0])))
    inst = [q for q in rec["meta"]["params"] if q["kind"] == "instance"]
    form = inst[0]["form"]
    form.update(const=None, cop="+")
    with pytest.raises(InputError, match="inconsistent"):
        TASK.from_record(rec)
    # a parameter that depends on itself
    rec = json.loads(json.dumps(TASK.to_record(TASK.generate(1, 2, levels=[5])[0])))
    q = [q for q in rec["meta"]["params"] if q["kind"] == "instance"][0]
    q["preds"] = [q["id"]]
    q["form"] = {"const": None, "cop": None, "inner": "single", "args": [q["id"]]}
    with pytest.raises(InputError, match="cycle"):
        TASK.from_record(rec)


# ---- full-solution checker -------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(problems_strategy)
def test_full_checker_accepts_reference_and_rejects_corruptions(args):
    seed, level = args
    (p,) = TASK.generate(1, seed, levels=[level])
    ref = TASK.reference_solution(p)
    assert TASK.check_solution(p, ref).ok
    assert TASK.check_solution(p, TASK.reference_completion(p)).ok
    sentences = ref.rstrip(".").split(". ")
    # the final value changed
    head, _, last = ref.rpartition("= ")
    bad = f"{head}= {(int(last.rstrip('.')) + 1) % M}."
    assert not TASK.check_solution(p, bad).ok
    # a sentence dropped (the question's inputs become undefined or the last is not the question)
    if len(sentences) > 1:
        assert not TASK.check_solution(p, ". ".join(sentences[1:]) + ".").ok
        assert not TASK.check_solution(p, ". ".join(sentences[:-1]) + ".").ok
        # order reversed: something is used before it is defined
        assert not TASK.check_solution(p, ". ".join(reversed(sentences)) + ".").ok


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("so x = 3.", "expected 'Define"),
    ("Define Nobody's Thing as x; so x = 3.", "not a parameter"),
    ("Define {name} as x; so x = 3 + 4 = 3 + 4 = 9.", ""),
    ("Define {name} as x; so x = 23.", "not reduced"),
    ("Define {name} as x; y = 3 + 4 = 3 + 4 = 7; so x = y * 2 = 7 * 2 = 14.", "inputs"),
    ("Define {name} as x; so x = q = 4.", "before it is defined"),
])
def test_full_checker_reasons(text, reason):
    p = TASK.generate(1, 31, levels=[3])[0]
    name = p.meta["params"][p.meta["question"]]["name"]
    res = TASK.check_solution(p, text.replace("{name}", name))
    assert not res.ok and reason in res.reason


def test_template_split_separates_solution_shapes():
    from tailor_evo.tasks.igsm.text import template_sketch

    train = TASK.generate(40, 1, levels=[3, 4, 5], split="train")
    test = TASK.generate(40, 1, levels=[3, 4, 5], split="test")
    assert all(p.meta["template_bin"] < 16 for p in train)
    assert all(p.meta["template_bin"] >= 16 for p in test)
    sk_train = {template_sketch(graph_of(p)) for p in train}
    sk_test = {template_sketch(graph_of(p)) for p in test}
    assert not sk_train & sk_test
    with pytest.raises(InputError):
        TASK.generate(1, 0, split="dev")


def test_template_sketch_ignores_names_numbers_and_symbols():
    from tailor_evo.tasks.igsm.text import template_sketch

    p = TASK.generate(1, 12, levels=[5])[0]
    g = graph_of(p)
    sketch = template_sketch(g)
    assert "Define Inst as v0" in sketch or "Define Inter as v0" in sketch
    assert not any(q.name in sketch for q in g.params)
    g.symbol_seed += 1   # other letters, same template
    g._cache.clear()
    assert template_sketch(g) == sketch


json_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.text(max_size=5),
                        st.lists(st.integers(-1, 30), max_size=4), st.dictionaries(st.text(max_size=3),
                                                                                    st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupted_records_raise_input_error_or_load(data):
    """Any single corruption of a record gives a located InputError, never another exception."""
    rec = json.loads(json.dumps(TASK.to_record(TASK.generate(1, 6, levels=[5])[0])))
    paths = [("meta", k) for k in rec["meta"]] + [("meta", "params", i, k) for i in range(len(rec["meta"]["params"]))
                                                  for k in rec["meta"]["params"][i]]
    path = data.draw(st.sampled_from(paths))
    node = rec
    for k in path[:-1]:
        node = node[k]
    if data.draw(st.booleans()):
        node.pop(path[-1])
    else:
        node[path[-1]] = data.draw(json_values)
    try:
        p = TASK.from_record(rec, source="f.jsonl", line=2)
    except InputError as err:
        assert err.file == "f.jsonl" and err.line == 2 and err.field
        return
    # a corruption that still loads must still give a consistent problem
    assert 0 <= TASK.solve(p) < M
