"""iGSM partial credit: the share of the necessary quantities a trace states right."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_igsm_explicit import GRAMMAR, SEED_PROGRAMS
from test_rl_rewards import _C, _R

from tailor_evo.tasks.igsm import IGSMTask, graph_of
from tailor_evo.tasks.igsm.credit import reasoning_of, solution_share, stated_values
from tailor_evo.trainers.rewards import parse_reward, score_round

TASKS = {r: IGSMTask(rendering=r) for r in IGSMTask.renderings}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(IGSMTask.renderings), st.integers(0, 10**6), st.integers(2, 8), st.integers(0, 10**6))
def test_every_rendering_states_each_necessary_quantity_once_read_and_right(rendering, seed, level, prog_seed):
    """Over seed and random programs in every rendering and style, the credit reads every
    necessary quantity a finished trace computes, and reads none of them wrong: a correct
    trace with its answer changed earns (n - 1) / n, the asked quantity being the answer's."""
    task = TASKS[rendering]
    (p,) = task.generate(1, seed, levels=[level], max_edge=12)
    g = graph_of(p)
    truth, needed = g.values(), g.needed()
    rng = random.Random(prog_seed)
    programs = SEED_PROGRAMS + [GRAMMAR.random_program(rng, max_depth=rng.randint(3, 7)) for _ in range(3)]
    finished = 0
    for i, prog in enumerate(programs):
        tr = task.execute(prog, p, random.Random(i))
        if not tr.finished:
            continue
        finished += 1
        stated = stated_values(g, reasoning_of(tr.completion))
        assert all(truth[q] == v for q, v in stated.items()), (stated, truth)
        assert needed - {g.question} <= set(stated)
        assert solution_share(g, tr.completion) == pytest.approx((len(needed) - 1) / len(needed))
        assert task.partial_credit(p, task.verify(p, tr.completion), tr.completion) == 1.0
        wrong = tr.completion.replace(f"<answer> {p.answer} </answer>", f"<answer> {(p.answer + 1) % 23} </answer>")
        verdict = task.verify(p, wrong)
        assert not verdict.correct and task.partial_credit(p, verdict, wrong) == solution_share(g, tr.completion) < 1
    assert finished >= len(SEED_PROGRAMS)               # the seed programs always finish


def _problem_and_trace():
    task = TASKS["quoted"]
    for p in task.generate(50, 7, levels=[4]):
        g = graph_of(p)
        if len(g.needed()) >= 3:
            return task, p, g, task.execute(SEED_PROGRAMS[0], p, random.Random(0)).completion
    raise AssertionError("no problem with three necessary quantities")


def test_a_wrong_value_costs_its_share_and_later_guesses_do_not_buy_it_back():
    task, p, g, gold = _problem_and_trace()
    n = len(g.needed())
    first = next(q for q in g.topo_order() if q in g.needed() and q != g.question)
    name, value = g.params[first].name, g.values()[first]
    sym = next(m for m in re.finditer(rf"Define {name} as (\w+)", gold)).group(1)
    assert f"so {sym} = {value}." in gold
    off = (value + 1) % 23
    bad = gold.replace(f"so {sym} = {value}.", f"so {sym} = {off}.", 1)
    assert stated_values(g, reasoning_of(bad))[first] == off
    assert solution_share(g, bad) == pytest.approx((n - 2) / n)
    # every residue written after the wrong one, under the same symbol or a new one: the first counts
    guesses = " ".join(f"so {sym} = {v}. Define {name} as Z{v}; so Z{v} = {v}." for v in range(23))
    spam = bad.replace("</think>", guesses + " </think>")
    assert solution_share(g, spam) == pytest.approx((n - 2) / n)
    # a symbol's values count from its Define on: guesses written first and bound later earn nothing
    early = f"<think> h = {off}. h = {value}. Define {name} as h; </think> <answer> 0 </answer>"
    assert stated_values(g, reasoning_of(early)) == {}


def test_operands_chains_and_remarks_are_read_as_written():
    task, p, g, _ = _problem_and_trace()
    a, b = (g.params[q] for q in sorted(g.needed())[:2])
    va, vb = g.values()[a.id], g.values()[b.id]
    text = f"Let x = {a.name} + {b.name} = {va} + 5 = {(va + 5) % 23}."      # b is an operand: not stated
    assert stated_values(g, text) == {}
    text = f"Define {a.name} as k; so k = 3 + 4 = {va + 23}. {b.name} = {vb} (given), and that is all."
    assert stated_values(g, text) == {a.id: va, b.id: vb}      # the chain's last number, taken mod 23
    assert stated_values(g, f"So {b.name} is {vb} too.") == {b.id: vb}
    assert stated_values(g, f"{b.name} = {vb} * k") == {}      # an expression, no value
    assert stated_values(g, f"{a.name} = {va}\n{b.name} = {vb}") == {a.id: va, b.id: vb}   # one per line
    assert stated_values(g, f"{b.name} = 9 + 4, which is {vb}.") == {b.id: vb}
    assert stated_values(g, f"{b.name} = {'1' * 5000}") == {}                  # no residue, no crash


def test_partial_credit_scores_any_text_without_raising():
    task, p, g, _ = _problem_and_trace()
    wrong = (p.answer + 1) % 23
    for text in ("", "no tags at all", "<think>", f"<think> {'x = ' * 3000} </think> <answer> {wrong} </answer>",
                 f"<think> {g.params[0].name} = {'9' * 5000} </think> <answer> {wrong} </answer>",
                 "<think> </think> <answer> idk </answer>", "<think>\n\n</think>\n<answer>\n</answer>"):
        credit = task.partial_credit(p, task.verify(p, text), text)
        assert credit == 0.0 or (0.0 < credit < 1.0 and task.verify(p, text).parsed is not None), text


def test_cut_traces_unparsable_and_bare_wrong_answers_earn_nothing():
    task, p, g, gold = _problem_and_trace()
    cut = gold.split("<answer>")[0]
    assert task.partial_credit(p, task.verify(p, cut), cut) == 0.0
    hedged = gold.replace(f"<answer> {p.answer} </answer>", "<answer> maybe 3 </answer>")
    verdict = task.verify(p, hedged)
    assert verdict.format_ok and verdict.parsed is None and task.partial_credit(p, verdict, hedged) == 0.0
    bare = f"<think> </think> <answer> {(p.answer + 1) % 23} </answer>"
    assert task.partial_credit(p, task.verify(p, bare), bare) == 0.0


def test_the_partial_reward_reads_the_completion_it_is_given():
    """Through the RL reward: ``binary, 0.5*partial`` gives a right answer 1.5 and ranks two
    wrong answers by the quantities their traces got right."""
    task, p, g, gold = _problem_and_trace()
    wrong = gold.replace(f"<answer> {p.answer} </answer>", f"<answer> {(p.answer + 1) % 23} </answer>")
    first = next(q for q in g.topo_order() if q in g.needed() and q != g.question)
    sym = re.search(rf"Define {g.params[first].name} as (\w+)", gold).group(1)
    worse = wrong.replace(f"so {sym} = {g.values()[first]}.", f"so {sym} = {(g.values()[first] + 1) % 23}.", 1)
    flat = [_R(p, _C(t, [0]), task.verify(p, t)) for t in (gold, wrong, worse)]
    rewards = [v.reward for v in score_round(parse_reward("binary, 0.5*partial"), task, flat, lambda q: {}, chat=False)]
    n = len(g.needed())
    assert rewards == pytest.approx([1.5, 0.5 * (n - 1) / n, 0.5 * (n - 2) / n])
