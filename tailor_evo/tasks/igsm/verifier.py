"""Scoring iGSM completions.

Format (shared by all tasks): exactly one each of <think>, </think>, <answer>,
</answer>, in that order; text outside them is ignored.

Answer rules (decided here, documented for users):
- The answer tag must hold a single integer, optionally signed and optionally
  followed by one period, surrounded by any whitespace: "19", " 19 ", "19." pass.
  Unicode digits and spaces are normalised first (NFKC), so full-width "１９" passes.
- Anything else is not an answer: "19 or 20", "x = 19", "19/20", "" (hedging never earns credit).
- An integer outside 0..22 is *rejected* with its own reason rather than reduced mod 23:
  the prompt asks for the value modulo 23, and accepting 42 for 19 would reward a
  model that skipped the reduction. An integer of any length is "out of range" by its
  digits alone, without converting it, so a 10,000-digit answer is judged like 42: the
  format is right, the answer is not.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, Verdict
from tailor_evo.tasks.igsm.graph import MOD

_INT = re.compile(r"([+-]?)([0-9]+)\.?")
OUT_OF_RANGE = f"answer out of range 0..{MOD - 1}"

# Shaped reward levels: format only, then a parsable answer, then the right one.
SHAPED_FORMAT, SHAPED_PARSED, SHAPED_CORRECT = 0.1, 0.2, 1.0


def check_format(completion: str) -> tuple[bool, str, str | None]:
    """(format_ok, reason, answer text inside the tags)."""
    if not isinstance(completion, str):
        return False, "completion is not a string", None
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    for tag in tags:
        n = completion.count(tag)
        if n == 0:
            return False, f"missing {tag}", None
        if n > 1:
            return False, f"duplicated {tag}", None
    pos = [completion.index(t) for t in tags]
    if pos != sorted(pos):
        return False, "tags out of order", None
    return True, "ok", completion[pos[2] + len(ANSWER_OPEN):pos[3]]


def parse_answer(text: str) -> tuple[int | None, str]:
    """(integer, "ok") or (None, reason) for the content of the answer tag."""
    norm = unicodedata.normalize("NFKC", text).strip()
    if not norm:
        return None, "empty answer"
    m = _INT.fullmatch(norm)
    if not m:
        return None, "answer is not a single integer"
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > len(str(MOD - 1)):
        return None, OUT_OF_RANGE           # too long for any answer: never converted
    value = int(m.group(1) + digits)
    if not 0 <= value < MOD:
        return value, OUT_OF_RANGE
    return value, "ok"


def verify_answer(gold: Any, completion: str, shaped: bool = False) -> Verdict:
    """Judge ``completion`` against the integer ``gold``; never raises."""
    try:
        ok, reason, inner = check_format(completion)
        if not ok or inner is None:
            return Verdict(0.0, False, False, reason)
        value, why = parse_answer(inner)
        if why != "ok":
            integer = value is not None or why == OUT_OF_RANGE
            reward = SHAPED_PARSED if (shaped and integer) else (SHAPED_FORMAT if shaped else 0.0)
            return Verdict(reward, False, True, why, value)
        if isinstance(gold, bool) or not isinstance(gold, int):
            return Verdict(0.0, False, True, "problem has no integer gold answer", value)
        if value == gold:
            return Verdict(SHAPED_CORRECT if shaped else 1.0, True, True, "ok", value)
        return Verdict(SHAPED_PARSED if shaped else 0.0, False, True, "wrong answer", value)
    except Exception as exc:  # noqa: BLE001 - a verifier must return a verdict for any input
        return Verdict(0.0, False, False, f"verifier error: {type(exc).__name__}")
