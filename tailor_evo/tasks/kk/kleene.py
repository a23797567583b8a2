"""Three-valued (Kleene) evaluation of claims under a partial assignment, written out step by step.

Why: a small model learns a decision only when the trace writes the decision's inputs just
before it. A claim's value under the roles assigned so far is such a decision; here it is
computed bottom-up, and every intermediate value is written as a short clause that needs one
look-up:

- the check names the claim's connective first, as its combination line will write it
  (``"Lucas said (or): ..."``; ``not`` for a negated atom, ``atom`` for a single atom): copied at
  the start of the check, where it is the only word taken from the question's sentence, instead
  of being recalled after the atoms, where the model wrote "F and T" for the question's
  "if ... then" and dropped or added an atom's "not";
- an atom restates itself and looks its person up in the current case:
  ``"Lucas is a knight: Lucas knave, F"`` (``"Lucas U, U"`` when Lucas has no role yet);
- a connective combines the values just written: ``"F or U, U"``;
- the speaker's role is compared with the claim's value: ``"Lucas knave, claim F, so ok"``.

Values are written ``T``, ``F`` and ``U`` (unknown, also for a person without a role yet),
the usual names of Kleene's three values: one token each in the shipped bases' tokenizer,
where ``true`` takes three and ``unknown`` six, and a trace checks dozens of atoms.

Values combine in Kleene's strong logic, so a definite value (true or false) is sound: it
holds for every completion of the partial assignment. That is what lets the executor decide
exactly what the trace writes: a claim whose written value disagrees with its speaker's role
is a contradiction, one that agrees is consistent, and an unknown one stays open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from tailor_evo.tasks.kk.logic import LEAF_OPS, Tree

Value = bool | None          # True, False, or None for "unknown"
OK, CONTRADICTION, OPEN = "ok", "contradiction", "open"


VALUE_WORDS = {True: "T", False: "F", None: "U"}


def word(value: Value) -> str:
    return VALUE_WORDS[value]


def role_or_unknown(view: Mapping[int, bool], person: int) -> str:
    if person not in view:
        return VALUE_WORDS[None]
    return "knight" if view[person] else "knave"


def k_not(a: Value) -> Value:
    return None if a is None else not a


def k_and(values: Sequence[Value]) -> Value:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def k_or(values: Sequence[Value]) -> Value:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def k_implies(a: Value, b: Value) -> Value:
    return k_or([k_not(a), b])


def k_iff(a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    return a == b


def value3(tree: Tree, view: Mapping[int, bool]) -> Value:
    """The claim's Kleene value under ``view`` (person index -> knight?)."""
    return _walk(tree, view, None, None)


def written(tree: Tree, view: Mapping[int, bool], names: Sequence[str]) -> tuple[Value, list[str]]:
    """The claim's value and the clauses that compute it, in the order they are written."""
    lines: list[str] = []
    return _walk(tree, view, names, lines), lines


def _walk(tree: Tree, view: Mapping[int, bool], names: Sequence[str] | None, out: list[str] | None) -> Value:
    op = tree[0]
    if op in LEAF_OPS or (op == "not" and tree[1][0] in LEAF_OPS):
        leaf = tree if op in LEAF_OPS else tree[1]
        p = leaf[1]
        is_knight = view.get(p)
        v = None if is_knight is None else (is_knight == (leaf[0] == "knight"))
        if op == "not":
            v = k_not(v)
        if out is not None:
            neg = " not" if op == "not" else ""
            out.append(f"{names[p]} is{neg} a {leaf[0]}: {names[p]} {role_or_unknown(view, p)}, {word(v)}")
        return v
    if op == "not":
        a = _walk(tree[1], view, names, out)
        v = k_not(a)
        if out is not None:
            out.append(f"not {word(a)}, {word(v)}")
        return v
    parts = [_walk(c, view, names, out) for c in tree[1:]]
    if op in ("and", "or"):
        v = k_and(parts) if op == "and" else k_or(parts)
        text = f" {op} ".join(word(x) for x in parts)
    elif op == "implies":
        v, text = k_implies(parts[0], parts[1]), f"if {word(parts[0])} then {word(parts[1])}"
    elif op == "iff":
        v, text = k_iff(parts[0], parts[1]), f"{word(parts[0])} iff {word(parts[1])}"
    else:
        raise ValueError(f"unknown operator {op!r}")
    if out is not None:
        out.append(f"{text}, {word(v)}")
    return v


def verdict(speaker_knight: bool, value: Value) -> str:
    """A knight's claim must be true and a knave's false; an unknown claim stays open."""
    if value is None:
        return OPEN
    return OK if value == speaker_knight else CONTRADICTION


@dataclass(frozen=True)
class ClaimCheck:
    """One written check of a speaker's claim under a (partial) assignment."""

    speaker: int
    value: Value
    outcome: str      # ok | contradiction | open
    text: str


def shape(tree: Tree) -> str:
    """The claim's outermost connective in the words its combination line uses ("or", "if then",
    "iff"), "not" for a negation (of an atom too, whose "not" is otherwise only in the atom's own
    words), or "atom" for a single atom."""
    op = tree[0]
    if op in LEAF_OPS:
        return "atom"
    return {"implies": "if then"}.get(op, op)


def check_claim(statement: Tree, speaker: int, view: Mapping[int, bool], names: Sequence[str],
                quote: str | None = None, shaped: bool = False) -> ClaimCheck:
    """Write the evaluation of ``speaker``'s claim under ``view`` and compare it with their role.

    By default the claim is not restated as a clause: its atoms, written in order, already spell
    it out. ``shaped`` writes the claim's connective (:func:`shape`) after the speaker's name, as
    the executor's traces do; the corpus drills keep the form the shipped base was pretrained on.
    ``quote`` (the claim as the question words it) is written first when given, so that the atoms
    are copied from a clause just written (the ``quoted`` rendering).
    The speaker must be assigned in ``view``: only an assigned speaker's claim has a required value.
    """
    if speaker not in view:
        raise ValueError(f"{names[speaker]} has no role in this case")
    value, lines = written(statement, view, names)
    outcome = verdict(view[speaker], value)
    role = "knight" if view[speaker] else "knave"
    said = (f"{names[speaker]} said" + (f" ({shape(statement)})" if shaped else "") + ": "
            + (f"{quote}. " if quote is not None else ""))
    text = (said + "; ".join(lines)
            + f". {names[speaker]} {role}, claim {word(value)}, so {outcome}.")
    return ClaimCheck(speaker=speaker, value=value, outcome=outcome, text=text)


def case_text(view: Mapping[int, bool], names: Sequence[str]) -> str:
    """The current case in introduction order, unassigned people as ``unknown``: the one place a
    check looks roles up, restated so that the look-up is always close by."""
    return "Case: " + ", ".join(f"{names[i]} {role_or_unknown(view, i)}" for i in range(len(names))) + "."
