"""Judging a completion: response format, then the name -> role answer.

Decisions (deterministic, documented so that rewards are predictable):

- The text is NFKC-normalised first (full-width tags and letters, odd spaces).
- Format: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each exactly once, in
  that order; only whitespace may precede ``<think>``; text between ``</think>`` and
  ``<answer>`` and after ``</answer>`` is ignored (it earns nothing, only the tagged
  answer is read).
- Answer: claims are ``<Name> is a knight|knave`` with word boundaries, case-insensitive.
  Every person must be named exactly once with exactly one role. A person named twice
  (even with the same role), a negated claim, a claim about someone not in the puzzle,
  hedging words ("or", "maybe", ...) or extra role words all make the answer
  unparseable: hedging never earns credit.
- Reward: binary 1.0/0.0; ``shaped=True`` gives the Logic-RL scheme: format +1/-1,
  answer +2 correct, -1.5 parsed but wrong, -2 unparseable or bad format.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, Verdict

MAX_ANSWER_CHARS_BASE, MAX_ANSWER_CHARS_PER_PERSON = 200, 120
# reasons followed by a list of the people they concern: a well-formed answer that gives some
# people the wrong role, and an answer that leaves some out
WRONG_ROLE, MISSING = "wrong role for ", "missing "

_CLAIM = re.compile(r"\b([^\W\d_]+)\s+is\s+(not\s+)?an?\s+(knight|knave)\b")
_ROLE_WORD = re.compile(r"knight|knave")
_HEDGE = re.compile(r"\b(or|maybe|perhaps|possibly|probably|might|either|unclear|unknown|undetermined|"
                    r"uncertain|cannot be determined|not sure)\b|\?")


def split_response(text: str) -> tuple[str | None, str | None, str]:
    """(reasoning, answer, reason): reasoning/answer are None when the format is bad."""
    counts = {tag: text.count(tag) for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)}
    for tag, c in counts.items():
        if c != 1:
            return None, None, f"expected exactly one {tag}, found {c}"
    i0, i1 = text.index(THINK_OPEN), text.index(THINK_CLOSE)
    i2, i3 = text.index(ANSWER_OPEN), text.index(ANSWER_CLOSE)
    if not i0 < i1 < i2 < i3:
        return None, None, "tags out of order"
    if text[:i0].strip():
        return None, None, "text before <think>"
    return text[i0 + len(THINK_OPEN):i1], text[i2 + len(ANSWER_OPEN):i3], "ok"


def parse_answer(answer: str, names: Sequence[str]) -> tuple[dict[str, bool] | None, str]:
    """Map name -> knight? or (None, reason). ``names`` are the puzzle's names in order."""
    n = len(names)
    text = " ".join(answer.casefold().split())
    if not text:
        return None, "empty answer"
    if len(text) > MAX_ANSWER_CHARS_BASE + MAX_ANSWER_CHARS_PER_PERSON * n:
        return None, "answer too long"
    lower = {nm.casefold(): nm for nm in names}
    found: dict[str, bool] = {}
    for m in _CLAIM.finditer(text):
        word, negated, role = m.group(1), m.group(2), m.group(3)
        if word not in lower:
            return None, f"claim about unknown person {word!r}"
        name = lower[word]
        if negated:
            return None, f"negated claim about {name}"
        if name in found:
            if found[name] != (role == "knight"):
                return None, f"conflicting roles for {name}"
            return None, f"{name} named more than once"
        found[name] = role == "knight"
    missing = [nm for nm in names if nm not in found]
    if missing:
        return None, MISSING + ", ".join(missing)
    hedge = _HEDGE.search(text)
    if hedge:
        return None, f"hedged answer ({hedge.group(0)!r})"
    roles = len(_ROLE_WORD.findall(text))
    if roles != n:
        return None, f"{roles} role words for {n} people"
    return found, "ok"


def verify_completion(names: Sequence[str], solution: Sequence[bool], completion: Any,
                      shaped: bool = False) -> Verdict:
    """Never raises; see the module docstring for the rules."""
    try:
        return _verify(names, solution, completion, shaped)
    except Exception as exc:  # noqa: BLE001 - a verifier must return a verdict for any input
        return _verdict(False, False, f"verifier error: {type(exc).__name__}", None, shaped, parsed_ok=False)


def _verify(names: Sequence[str], solution: Sequence[bool], completion: Any, shaped: bool) -> Verdict:
    if not isinstance(completion, str):
        return _verdict(False, False, "completion is not a string", None, shaped, parsed_ok=False)
    text = unicodedata.normalize("NFKC", completion)
    _, answer, reason = split_response(text)
    if answer is None:
        return _verdict(False, False, reason, None, shaped, parsed_ok=False)
    parsed, reason = parse_answer(answer, names)
    if parsed is None:
        return _verdict(True, False, reason, None, shaped, parsed_ok=False)
    wrong = [nm for nm, r in zip(names, solution) if parsed[nm] != bool(r)]
    if wrong:
        return _verdict(True, False, WRONG_ROLE + ", ".join(wrong), parsed, shaped, parsed_ok=True)
    return _verdict(True, True, "ok", parsed, shaped, parsed_ok=True)


def people_wrong(reason: str) -> int | None:
    """How many people a verdict's ``reason`` gives the wrong role: 0 for a right answer, None
    for an answer that is not a complete, well-formed assignment (it has no roles to count)."""
    if reason == "ok":
        return 0
    return _listed(reason, WRONG_ROLE)


# reasons that name people, by their fixed prefix or suffix, and the kind they are counted as
_NAMED_REASONS = (("negated claim about ", "", "negated claim"),
                  ("conflicting roles for ", "", "conflicting roles"),
                  ("claim about unknown person ", "", "claim about unknown person"),
                  ("", " named more than once", "person named more than once"),
                  ("hedged answer (", "", "hedged answer"))


def reason_kind(reason: str) -> str | None:
    """A reason without the people it names, so that counts aggregate over puzzles: "wrong role
    for Ann, Bob" -> "wrong role for 2 people", "missing Cy" -> "missing 1 person"; None for a
    reason that names nobody."""
    wrong = people_wrong(reason)
    if wrong:
        return f"wrong role for {_people(wrong)}"
    missing = _listed(reason, MISSING)
    if missing:
        return f"missing {_people(missing)}"
    for prefix, suffix, kind in _NAMED_REASONS:
        if reason.startswith(prefix) and reason.endswith(suffix):
            return kind
    return None


def _listed(reason: str, prefix: str) -> int | None:
    """How many people a reason lists after ``prefix`` (names are single words); None without it."""
    return len(reason[len(prefix):].split(", ")) if reason.startswith(prefix) else None


def _people(n: int) -> str:
    return "1 person" if n == 1 else f"{n} people"


def _verdict(format_ok: bool, correct: bool, reason: str, parsed: Any, shaped: bool, parsed_ok: bool) -> Verdict:
    if shaped:
        fmt = 1.0 if format_ok else -1.0
        ans = 2.0 if correct else (-1.5 if (format_ok and parsed_ok) else -2.0)
        reward = fmt + ans
    else:
        reward = 1.0 if correct else 0.0
    return Verdict(reward=reward, correct=correct, format_ok=format_ok, reason=reason, parsed=parsed)
