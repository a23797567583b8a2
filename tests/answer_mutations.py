"""Adversarial answers made from correct ones, for the verifiers' property tests.

Each strategy draws a problem and its gold answer, rewrites the answer by one named
mutation, and labels the result by what it means, decided here from the mutation and
never by asking the verifier:

- ``same``: the gold answer in another allowed form (order, case, spacing, separators; for
  Countdown any expression that uses the numbers and makes the target): must score right;
- ``other``: an answer that says something else (a flipped role, a condition, a
  retraction, another number, a wrong stated value): must not score right;
- ``outside``: content the answer grammar does not have (a stray word, an extra person, a
  huge number): must not score right either.

``tests/test_answer_fuzz.py`` asserts those; ``benchmarks/answer_fuzz.py`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from hypothesis import strategies as st

from tailor_evo.tasks import get_task
from tailor_evo.tasks.base import Problem
from tailor_evo.tasks.kk.text import COMMON_NAMES
from tailor_evo_countdown.arith import Expr, parse

SAME, OTHER, OUTSIDE = "same", "other", "outside"


@dataclass(frozen=True)
class Case:
    """One adversarial completion: the task, the problem, which mutation made it and what it means."""

    task: str
    problem: Problem
    kind: str
    label: str
    completion: str


def wrap(answer: str) -> str:
    return f"<think> reasoning </think> <answer> {answer} </answer>"


# ---- Knights and Knaves ---------------------------------------------------------------------
KK_PROBLEMS = get_task("kk").generate(14, 7, levels=[2, 3, 4, 5, 6, 7, 8])

NEGATIONS = ("it is false that", "it is not true that", "it is not the case that", "not", "it's untrue that",
             "no,", "\u00ac", "~", "never mind that", "contrary to the claim that")
CONDITIONS = ("if {a} then {b}", "{b} if {a}", "{a} only if {b}", "{b} unless {a}", "assuming {a}, {b}",
              "when {a}, {b}", "{a} implies {b}", "suppose {a}; then {b}", "{a} iff {b}")
RETRACTIONS = ("-- just kidding, the reverse", "actually, the opposite", "wait, no", "scratch that",
               "swap every role", "ignore the above", "or rather the reverse", "but the reverse is true",
               "the reverse", "(flip all of these)")
HEDGES = ("or", "maybe", "perhaps", "probably", "?", "not sure", "either way", "possibly", "might be")
NEGATED_FORMS = ("{n} is not a {r}", "{n} isn't a {r}", "{n} is no {r}", "{n} is never a {r}",
                 "{n} is not an {r}")
SYMBOLS = "!?~\u00ac:/\\|&^%$#@+=<>\"'`{}[]"
LOOKALIKE = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "i": "\u0456"}

KK_KINDS = ("same", "flip", "negation phrase", "negated assertion", "condition", "retraction", "hedge",
            "extra person", "missing person", "repeated person", "stray word", "stray symbol", "look-alike name",
            "stray role word")


def _role(knight: bool) -> str:
    return "knight" if knight else "knave"


def _render(style: str, items: list[str]) -> str:
    """The public and prompt forms an answer is allowed to take."""
    if style == "lines":
        return "\n".join(f"({i + 1}) {a}" for i, a in enumerate(items))
    if style == "prose":
        return items[0] + "." if len(items) == 1 else ", ".join(items[:-1]) + ", and " + items[-1] + "."
    if style == "bullets":
        return "\n".join(f"- {a};" for a in items)
    return " and ".join(items)


@st.composite
def kk_cases(draw: st.DrawFn, kinds: tuple[str, ...] = KK_KINDS) -> Case:
    problem = draw(st.sampled_from(KK_PROBLEMS))
    names, roles = problem.meta["names"], problem.answer
    n = len(names)
    order = draw(st.permutations(range(n)))
    claims = [[names[i], bool(roles[i])] for i in order]
    kind = draw(st.sampled_from(kinds))
    label = OTHER
    items: list[str] = []
    say = lambda c: f"{c[0]} is a {_role(c[1])}"  # noqa: E731 - a one-line renderer
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(0, n - 1).filter(lambda k: k != i))
    if kind == "same":
        label = SAME
    elif kind == "flip":
        for k in draw(st.sets(st.integers(0, n - 1), min_size=1)):
            claims[k][1] = not claims[k][1]
    elif kind == "look-alike name":
        name = claims[i][0]
        spots = [k for k, ch in enumerate(name) if ch.lower() in LOOKALIKE]
        if spots:
            k = draw(st.sampled_from(spots))
            claims[i][0] = name[:k] + LOOKALIKE[name[k].lower()] + name[k + 1:]
        else:
            claims[i][0] = name + name[-1]
    items = [say(c) for c in claims]
    if kind == "negation phrase":
        items[i] = f"{draw(st.sampled_from(NEGATIONS))} {items[i]}"
    elif kind == "negated assertion":
        form = draw(st.sampled_from(NEGATED_FORMS))
        items[i] = form.format(n=claims[i][0], r=_role(draw(st.booleans())))
    elif kind == "condition":
        text = draw(st.sampled_from(CONDITIONS)).format(a=items[i], b=items[j])
        items = [text if k == i else a for k, a in enumerate(items) if k != j]
    elif kind == "retraction":
        phrase = draw(st.sampled_from(RETRACTIONS))
        items[i] = f"{items[i]} {phrase}" if draw(st.booleans()) else f"{phrase} {items[i]}"
    elif kind == "hedge":
        hedge = draw(st.sampled_from(HEDGES))
        items[i] = f"{items[i]} {hedge} a {_role(not claims[i][1])}" if hedge == "or" else f"{items[i]} {hedge}"
    elif kind == "extra person":
        label = OUTSIDE
        stranger = draw(st.sampled_from([x for x in COMMON_NAMES if x not in names]))
        items.insert(draw(st.integers(0, n)), f"{stranger} is a {_role(draw(st.booleans()))}")
    elif kind == "missing person":
        del items[i]
    elif kind == "repeated person":
        flip = draw(st.booleans())
        label = OTHER if flip else OUTSIDE
        items.insert(draw(st.integers(0, n)), say([claims[i][0], claims[i][1] != flip]))
    elif kind == "stray word":
        label = OUTSIDE
        word = draw(st.from_regex(r"[a-z]{1,10}", fullmatch=True).filter(lambda w: w != "and"))
        items[i] = f"{word} {items[i]}" if draw(st.booleans()) else f"{items[i]} {word}"
    elif kind == "stray symbol":
        label = OUTSIDE
        items[i] = f"{items[i]} {draw(st.sampled_from(SYMBOLS))}"
    elif kind == "stray role word":
        label = OUTSIDE
        items[i] = f"{items[i]} {draw(st.sampled_from(['knight', 'knave', 'knights', 'knaves']))}"
    text = _render(draw(st.sampled_from(["lines", "prose", "bullets", "and"])), items)
    text = draw(st.sampled_from([str, str.upper, str.lower, str.title]))(text)
    text = text.replace(" ", draw(st.sampled_from([" ", "  ", "\t", "\u00a0", "\u2003", " \n "])))
    return Case("kk", problem, kind, label, wrap(text))


# ---- iGSM ----------------------------------------------------------------------------------
IGSM_PROBLEMS = get_task("igsm").generate(6, 7, levels=[2, 3, 4])
MOD = 23
IGSM_KINDS = ("same", "other value", "unreduced", "negative", "huge", "two values", "equation", "retraction",
              "negation", "hedge", "fraction", "decimal", "stray word")


@st.composite
def igsm_cases(draw: st.DrawFn, kinds: tuple[str, ...] = IGSM_KINDS) -> Case:
    problem = draw(st.sampled_from(IGSM_PROBLEMS))
    gold = problem.answer
    other = draw(st.integers(0, MOD - 1).filter(lambda v: v != gold))
    kind = draw(st.sampled_from(kinds))
    label = OTHER
    if kind == "same":
        label = SAME
        text = draw(st.sampled_from(["{}", " {} ", "{}.", "+{}", "00{}", "\u00a0{}\u2003"])).format(gold)
        if draw(st.booleans()):
            text = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)   # full-width digits
    elif kind == "other value":
        text = str(other)
    elif kind == "unreduced":
        text = str(gold + MOD * draw(st.integers(1, 10**6)))
    elif kind == "negative":
        text = str(-draw(st.integers(1, 10**6)))
    elif kind == "huge":
        label = OUTSIDE
        text = draw(st.sampled_from(["", "-", "+"])) + "9" * draw(st.integers(3, 20_000)) + str(gold)
    elif kind == "two values":
        text = draw(st.sampled_from(["{g}, {o}", "{g} {o}", "{o} {g}", "{g}\n{o}", "{g} and {o}"])).format(g=gold,
                                                                                                         o=other)
    elif kind == "equation":
        text = draw(st.sampled_from(["x = {g}", "{o} = {g}", "{g} = {o}", "{g} + 0", "{g} mod 23"])).format(
            g=gold, o=other)
    elif kind == "retraction":
        text = f"{gold} -- just kidding, {other}"
    elif kind == "negation":
        text = draw(st.sampled_from(["not {g}", "-{g}" if gold else "-1", "\u00ac{g}", "!{g}"])).format(g=gold)
    elif kind == "hedge":
        text = draw(st.sampled_from(["{g} or {o}", "{g}?", "maybe {g}", "~{g}", "{g}ish"])).format(g=gold, o=other)
    elif kind == "fraction":
        text = f"{gold * 2}/2"
    elif kind == "decimal":
        text = draw(st.sampled_from(["{g}.0", "{g}.5", "{g},0", "{g}e0"])).format(g=gold)
    else:
        label = OUTSIDE
        word = draw(st.from_regex(r"[a-z]{1,10}", fullmatch=True))
        text = f"{gold} {word}" if draw(st.booleans()) else f"{word} {gold}"
    return Case("igsm", problem, kind, label, wrap(text))


# ---- Countdown -----------------------------------------------------------------------------
COUNTDOWN_PROBLEMS = get_task("countdown").generate(10, 7, levels=[2, 3, 4, 5, 6])
COUNTDOWN_KINDS = ("same", "commuted", "bracketed", "stated value", "other operator", "other literal",
                   "extra literal", "missing literal", "wrong stated value", "retraction", "hedge", "unary minus",
                   "huge literal", "stray word", "two answers")


def _nodes(expr) -> list:
    """Every inner node of an expression tree, root first."""
    if expr.op is None:
        return []
    return [expr] + _nodes(expr.left) + _nodes(expr.right)


def _rebuild(expr, target, make):
    """The tree with ``target`` (an inner node, by identity) replaced by ``make(target)``;
    raises ZeroDivisionError when the change divides by zero."""
    if expr is target:
        return make(expr)
    if expr.op is None:
        return expr
    return Expr.combine(_rebuild(expr.left, target, make), expr.op, _rebuild(expr.right, target, make))


def _show(expr, node, op: str, top: bool = True) -> str:
    """The tree's text (as ``Expr.text`` writes it) with ``node``'s operation replaced by ``op``,
    computing nothing, so that a change that divides by zero can still be written."""
    if expr.op is None:
        return str(int(expr.value))
    inner = f"{_show(expr.left, node, op, False)} {op if expr is node else expr.op} {_show(expr.right, node, op, False)}"
    return inner if top else f"({inner})"


def _leaves(expr) -> list:
    return [expr] if expr.op is None else _leaves(expr.left) + _leaves(expr.right)


@st.composite
def countdown_cases(draw: st.DrawFn, kinds: tuple[str, ...] = COUNTDOWN_KINDS) -> Case:
    problem = draw(st.sampled_from(COUNTDOWN_PROBLEMS))
    numbers, target = problem.meta["numbers"], problem.meta["target"]
    gold = parse(problem.answer_text)
    kind = draw(st.sampled_from(kinds))
    label = OTHER
    text = gold.text()
    node = draw(st.sampled_from(_nodes(gold)))
    if kind == "same":
        label = SAME
        text = text.replace(" ", draw(st.sampled_from(["", " ", "  ", "\t"])))
    elif kind == "commuted":
        label = SAME
        swapped = node if node.op in "-/" else Expr.combine(node.right, node.op, node.left)
        text = _rebuild(gold, node, lambda _: swapped).text()
    elif kind == "bracketed":
        label = SAME
        text = f"({text})"
    elif kind == "stated value":
        label = SAME
        text = f"{text} = {target}"
    elif kind == "other operator":
        op = draw(st.sampled_from([o for o in "+-*/" if o != node.op]))
        text = _show(gold, node, op)
        try:
            changed = _rebuild(gold, node, lambda e: Expr.combine(e.left, op, e.right))
            label = SAME if changed.value == target else OTHER
        except ZeroDivisionError:
            label = OTHER
    elif kind == "other literal":
        leaf = draw(st.sampled_from(_leaves(gold)))
        new = draw(st.integers(0, 1000).filter(lambda v: v != leaf.value))
        text = _rebuild(gold, leaf, lambda _: Expr(Fraction(new))).text()
    elif kind == "extra literal":
        text = f"{text} {draw(st.sampled_from(['+ 0', '- 0', '* 1', '/ 1']))}"
    elif kind == "missing literal":
        text = node.left.text() if node is gold else _rebuild(gold, node, lambda e: e.left).text()
    elif kind == "wrong stated value":
        text = f"{text} = {target + draw(st.integers(1, 10**6)) * draw(st.sampled_from([1, -1]))}"
    elif kind == "retraction":
        text = f"{text} -- just kidding, {draw(st.sampled_from(numbers))}"
    elif kind == "hedge":
        text = draw(st.sampled_from(["{e} or {n}", "{e}?", "maybe {e}", "~{e}"])).format(e=text, n=numbers[0])
    elif kind == "unary minus":
        text = f"-({text}) + {2 * target}" if draw(st.booleans()) else f"- {text}"
    elif kind == "huge literal":
        label = OUTSIDE
        leaf = draw(st.sampled_from(_leaves(gold)))
        digits = "9" * draw(st.integers(8, 60))
        text = _rebuild(gold, leaf, lambda _: Expr(Fraction(1))).text()
        text = f"{text} + {digits} - {digits}"
    elif kind == "stray word":
        label = OUTSIDE
        word = draw(st.from_regex(r"[a-z]{1,10}", fullmatch=True))
        text = f"{text} {word}" if draw(st.booleans()) else f"{word} {text}"
    else:
        text = f"{text}; {text}"
    return Case("countdown", problem, kind, label, wrap(text))


# task -> (the strategy, given the kinds to draw from; every kind it knows)
CASES = {"kk": (kk_cases, KK_KINDS), "igsm": (igsm_cases, IGSM_KINDS), "countdown": (countdown_cases, COUNTDOWN_KINDS)}
