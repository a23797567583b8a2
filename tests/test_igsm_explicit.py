"""The explicit iGSM rendering: every value the text writes is read back and checked.

The checks parse the trace's *text* (not the steps' facts) and compare it with an
evaluation written here from the record's structure (``independent_values``), so a
wording that wrote a wrong number, or a number beside the wrong name, fails.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor_evo.tasks.igsm import IGSMTask
from tests.test_igsm_task import independent_values

EXPLICIT, COMPACT = IGSMTask(), IGSMTask(rendering="compact")
GRAMMAR = EXPLICIT.grammar()
SEEDS = Path(__file__).resolve().parents[1] / "populations" / "seeds" / "igsm"
SEED_PROGRAMS = [p["program"] for name in ("rule-based", "four-behaviour")
                 for p in json.loads((SEEDS / f"{name}.json").read_text())["primitives"]]
M = 23
CALC = re.compile(r"(?<![\d-])(\d+) ([-+*]) (\d+) = (-?\d+)(?: mod 23 = (\d+))?(?![\d ]*[-+*(])")
SYM_VALUE = re.compile(r"\bso ([A-Za-z][0-9]*) = (\d+)(?=[.,;]| \()")


def think(completion: str) -> str:
    return completion.split("<think>", 1)[1].split("</think>", 1)[0]


def check_calculations(text: str) -> int:
    """Every "a op b = r [mod 23 = v]" is right; the count of them."""
    n = 0
    for m in CALC.finditer(text):
        a, op, b, r, v = m.groups()
        raw = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        if v:
            assert int(r) == raw and int(v) == raw % M and raw != raw % M, m.group(0)
        elif int(r) != raw % M:    # the raw result, reduced by the step right after it
            assert int(r) == raw, m.group(0)
            after = re.match(rf"[.;] (?:Reducing )?{r} (?:mod 23 = |modulo 23 leaves |= )(\d+)", text[m.end():])
            assert after and int(after.group(1)) == raw % M, text[m.start(): m.end() + 40]
        else:
            assert raw == raw % M, f"{m.group(0)} hides its reduction"
        n += 1
    return n


def check_named_values(text: str, meta: dict, vals: dict[int, int]) -> int:
    """Every "<quantity> = v", "<quantity> is v" and "<quantity> is s = v" states the quantity's value,
    and each symbol stands for one quantity; the count of them."""
    by_name = {p["name"]: p["id"] for p in meta["params"]}
    names = "|".join(re.escape(n) for n in sorted(by_name, key=len, reverse=True))
    pattern = re.compile(rf"({names})(?: as| is) ([A-Za-z][0-9]*)\b(?! [a-z])|({names}) (?:is )?(?:[A-Za-z][0-9]* )?"
                         rf"(?:=|is) (\d+)(?=[.,;:)]| and | \(|$)")
    symbol: dict[str, int] = {}
    n = 0
    for m in pattern.finditer(text):
        if m.group(1):                       # "Define X as s" / "X is s": s names X from now on
            pid = by_name[m.group(1)]
            assert symbol.setdefault(m.group(2), pid) == pid, m.group(0)
            continue
        assert int(m.group(4)) == vals[by_name[m.group(3)]], m.group(0)
        n += 1
    for sym, value in SYM_VALUE.findall(text):   # "so s = v" for a quantity's symbol
        if sym in symbol:
            assert int(value) == vals[symbol[sym]], (sym, value)
            n += 1
    return n


def written_values_agree(problem, completion: str) -> tuple[int, int]:
    meta = json.loads(json.dumps(problem.meta))
    vals = independent_values(meta)
    text = think(completion)
    return check_calculations(text), check_named_values(text, meta, vals)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(1, 9))
def test_seed_traces_write_only_true_values(seed, level):
    (p,) = EXPLICIT.generate(1, seed, levels=[level], max_edge=12)
    for i, prog in enumerate(SEED_PROGRAMS):
        tr = EXPLICIT.execute(prog, p, random.Random(i))
        assert tr.finished and tr.answer == p.answer and EXPLICIT.verify(p, tr.completion).correct
        calcs, named = written_values_agree(p, tr.completion)
        assert named >= 1                    # at least the queried quantity's value, beside its name
        again = EXPLICIT.execute(prog, p, random.Random(i))
        assert again.completion == tr.completion          # deterministic


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(2, 8), st.integers(0, 10**6))
def test_random_program_traces_write_only_true_values(seed, level, prog_seed):
    (p,) = EXPLICIT.generate(1, seed, levels=[level], max_edge=12)
    rng = random.Random(prog_seed)
    for _ in range(4):
        prog = GRAMMAR.random_program(rng, max_depth=rng.randint(3, 7))
        tr = EXPLICIT.execute(prog, p, random.Random(prog_seed))
        old = COMPACT.execute(prog, p, random.Random(prog_seed))
        assert tr.finished == old.finished and tr.answer == old.answer    # the rendering changes words only
        if tr.finished:
            assert EXPLICIT.verify(p, tr.completion).correct
            written_values_agree(p, tr.completion)


def test_checks_are_not_vacuous_and_catch_a_wrong_number():
    problems = EXPLICIT.generate(40, 3, levels=[4, 6, 8])
    calcs = named = 0
    for p in problems:
        c, n = written_values_agree(p, EXPLICIT.execute(SEED_PROGRAMS[0], p, random.Random(0)).completion)
        calcs, named = calcs + c, named + n
    assert calcs >= 40 and named >= 80
    texts = [(p, EXPLICIT.execute(SEED_PROGRAMS[1], p, random.Random(0)).completion) for p in problems]
    p, text = next((p, t) for p, t in texts if re.search(r"\d+ \+ \d+ = \d+\.", t) and "(given)" in t)
    m = re.search(r"(\d+) \+ (\d+) = (\d+)\.", text)
    wrong_sum = text.replace(m.group(0), f"{m.group(1)} + {m.group(2)} = {(int(m.group(3)) + 1) % M}.", 1)
    m = re.search(r" = (\d+) \(given\)", text)
    wrong_value = text.replace(m.group(0), f" = {(int(m.group(1)) + 1) % M} (given)", 1)
    for bad in (wrong_sum, wrong_value):
        try:
            written_values_agree(p, bad)
        except AssertionError:
            continue
        raise AssertionError(f"a wrong number went unnoticed in {bad}")


def test_every_result_is_written_beside_its_unreduced_value():
    """Binary results that wrap around 23 show the raw result first, and each computed quantity's
    value is written right after its name (or symbol), never only at the end of an expression."""
    wrapped = 0
    for p in EXPLICIT.generate(30, 8, levels=[5, 7]):
        for prog in SEED_PROGRAMS:
            text = think(EXPLICIT.execute(prog, p, random.Random(0)).completion)
            wrapped += len(re.findall(r"= -?\d+ mod 23 = \d+", text))
        compact = think(COMPACT.execute(SEED_PROGRAMS[0], p, random.Random(0)).completion)
        assert " mod 23" not in compact          # the public format writes reduced results only
    assert wrapped >= 30


def test_rule_based_explicit_trace_writes_each_definition_before_its_inputs():
    """Depth-first from the question: the question's definition comes first, and every quantity
    defined is computed, the last one being the answer."""
    prog = SEED_PROGRAMS[0]
    for p in EXPLICIT.generate(30, 21, levels=[3, 5, 8]):
        text = think(EXPLICIT.execute(prog, p, random.Random(0)).completion)
        defined = re.findall(r"Define (.+?) as ([A-Za-z][0-9]*)", text)
        names = [n for n, _ in defined]
        assert len(names) == len(set(names))
        assert names[0] == p.meta["params"][p.meta["question"]]["name"] or len(names) == 1
        computed = [n for n, s in defined if re.search(rf"\bso {s} = \d+[.; ]", text)]
        assert set(computed) == set(names) and text.rstrip().endswith(f"= {p.answer}.")


def test_compact_rendering_is_unchanged_and_explicit_is_longer():
    for p in EXPLICIT.generate(10, 4, levels=[4, 6]):
        old = COMPACT.execute(SEED_PROGRAMS[0], p, random.Random(0)).completion
        assert old == COMPACT.reference_completion(p)
        assert len(EXPLICIT.execute(SEED_PROGRAMS[0], p, random.Random(0)).completion) > len(old)


QUOTED = IGSMTask(rendering="quoted")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(1, 8), st.integers(0, 10**6))
def test_quoted_rendering_is_explicit_plus_verbatim_sentences(seed, level, prog_seed):
    """The quoted rendering adds steps that copy the problem's sentences and changes nothing
    else: without its quote steps it is the explicit trace word for word; every quote is a
    sentence of the problem, and its facts check."""
    from tailor_evo.tasks.igsm import graph_of
    from tailor_evo.tasks.igsm.executor import check_fact

    (p,) = QUOTED.generate(1, seed, levels=[level], max_edge=12)
    g = graph_of(p)
    said = set(re.findall(r"The number of each .+?\.", p.question))
    rng = random.Random(prog_seed)
    programs = SEED_PROGRAMS + [GRAMMAR.random_program(rng, max_depth=rng.randint(3, 7)) for _ in range(3)]
    for i, prog in enumerate(programs):
        tr = QUOTED.execute(prog, p, random.Random(i))
        plain = EXPLICIT.execute(prog, p, random.Random(i))
        assert tr.finished == plain.finished and tr.answer == plain.answer
        assert " ".join(s.text for s in tr.steps if s.kind != "quote") == " ".join(s.text for s in plain.steps)
        quotes = [s for s in tr.steps if s.kind == "quote"]
        for step in quotes:
            assert step.text.startswith("Read: The number of each ")
            assert set(step.fact["quote"]) <= said and check_fact(g, step.fact) == (True, "ok")
        if tr.finished:
            assert QUOTED.verify(p, tr.completion).correct
            written_values_agree(p, tr.completion)


def test_quoted_rendering_copies_each_definition_just_before_writing_it():
    """Depth-first from the question, every instance quantity the trace defines has its own
    sentence quoted in the step right before its "Define"; a total over a category quotes the
    sentences of the items it sums, in the problem's order."""
    from tailor_evo.tasks.igsm import graph_of

    prog = SEED_PROGRAMS[0]
    totals = 0
    for p in QUOTED.generate(40, 22, levels=[3, 5]):
        g = graph_of(p)
        by_name = {q.name: q for q in g.params}
        steps = QUOTED.execute(prog, p, random.Random(0)).steps
        for before, step in zip(steps, steps[1:]):
            m = re.match(r"Define (.+?) as ", step.text)
            if not m or before.kind != "quote":
                continue
            q = by_name[m.group(1)]
            sentences = re.findall(r"The number of each .+?\.(?= The number|$)", before.text)
            if q.kind == "instance":
                assert sentences == [f"The number of each {q.name} equals" + s.split(" equals", 1)[1]
                                     for s in sentences] and len(sentences) == 1
                assert sentences[0] in p.question
            else:
                totals += 1
                positions = [p.question.index(s) for s in sentences]
                items = {r for r in q.preds if g.params[r].kind == "instance"}   # (a deeper total: its items')
                assert positions == sorted(positions) and len(sentences) == len(items)
        for before, step in zip(steps, steps[1:]):     # no instance quantity is defined unquoted
            m = re.match(r"Define (.+?) as ", step.text)
            if m and by_name[m.group(1)].kind == "instance":
                assert before.kind == "quote" and f"each {m.group(1)} equals" in before.text
    assert totals >= 5
