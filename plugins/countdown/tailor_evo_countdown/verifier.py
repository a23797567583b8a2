"""Judging a Countdown completion.

Rules (documented so that rewards are predictable):

- Format: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each exactly once, in that
  order (text outside them is ignored).
- The answer is an arithmetic expression over integers with ``+ - * /`` and brackets,
  optionally followed by ``= N``; ``N`` must then equal the expression's value. It is
  parsed, never evaluated as code (:mod:`tailor_evo_countdown.arith`).
- It must use every given number exactly once (as a multiset) and equal the target
  exactly (exact fractions: no rounding). Any such expression is right, not only the
  generator's.
- A literal above ``MAX_LITERAL`` is beyond any answer: the reason is ``number out of
  range``, and the format still counts as right (shaped: 0.1).
- Reasons are categories (``value is not the target``, ...), so that an evaluation's
  reason counts add up; ``parsed`` holds the expression that was read.
- Reward: binary; ``shaped=True`` gives 0.1 for the format, 0.2 for an expression that
  uses exactly the given numbers, 1.0 for a right one.
"""

from __future__ import annotations

import unicodedata

from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, Verdict
from tailor_evo_countdown.arith import OutOfRange, ParseError, parse

SHAPED_FORMAT, SHAPED_NUMBERS, SHAPED_CORRECT = 0.1, 0.2, 1.0
OUT_OF_RANGE = "number out of range"


def answer_text(completion: str) -> tuple[str | None, str]:
    """(text inside the answer tag, reason); None when the format is bad."""
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    for tag in tags:
        n = completion.count(tag)
        if n != 1:
            return None, f"{'missing' if n == 0 else 'duplicated'} {tag}"
    pos = [completion.index(t) for t in tags]
    if pos != sorted(pos):
        return None, "tags out of order"
    return completion[pos[2] + len(ANSWER_OPEN):pos[3]], "ok"


def verify(numbers: list[int], target: int, completion: str, shaped: bool = False) -> Verdict:
    """Judge ``completion``; never raises."""
    try:
        if not isinstance(completion, str):
            return Verdict(0.0, False, False, "completion is not a string")
        inner, reason = answer_text(unicodedata.normalize("NFKC", completion))
        if inner is None:
            return Verdict(0.0, False, False, reason)
        fmt = SHAPED_FORMAT if shaped else 0.0
        text, _, stated = inner.partition("=")
        try:
            expr = parse(text.strip())
        except OutOfRange:
            return Verdict(fmt, False, True, OUT_OF_RANGE)
        except ParseError as exc:
            return Verdict(fmt, False, True, f"unparsable expression: {exc}")
        if stated.strip():
            try:
                claimed = parse(stated.strip())
            except OutOfRange:
                return Verdict(fmt, False, True, OUT_OF_RANGE, expr.text())
            except ParseError:
                return Verdict(fmt, False, True, "unparsable value after '='", expr.text())
            if claimed.op is not None or claimed.value != expr.value:
                return Verdict(fmt, False, True, "stated value is not the expression's value", expr.text())
        used = sorted(expr.literals())
        if used != sorted(numbers):
            return Verdict(fmt, False, True, "does not use each given number exactly once", expr.text())
        if expr.value != target:
            return Verdict(SHAPED_NUMBERS if shaped else 0.0, False, True, "value is not the target", expr.text())
        return Verdict(SHAPED_CORRECT if shaped else 1.0, True, True, "ok", expr.text())
    except Exception as exc:  # noqa: BLE001 - a verifier returns a verdict for any input
        return Verdict(0.0, False, False, f"verifier error: {type(exc).__name__}")
