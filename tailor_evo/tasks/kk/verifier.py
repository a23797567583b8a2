"""Judging a completion: response format, then the name -> role answer.

Decisions (deterministic, documented so that rewards are predictable):

- The text is NFKC-normalised first (full-width tags and letters, odd spaces).
- Format: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each exactly once, in
  that order; only whitespace may precede ``<think>``; text between ``</think>`` and
  ``<answer>`` and after ``</answer>`` is ignored (it earns nothing, only the tagged
  answer is read).
- The answer grammar, read case-insensitively: the answer is a list of assertions
  ``NAME is a knight`` / ``NAME is a knave`` (``an`` is read as ``a``), one per person,
  in any order, separated only by whitespace, ``,`` ``;`` ``.``, the word ``and``, list
  numbers (``(1)``, ``1.``, ``1)``) and bullets (``-`` ``*`` ``•``). Those are the forms of
  the prompt's example (``(1) Zoey is a knight``, one line each) and of the public data's
  ``solution_text`` and ``solution_text_format``.
- Everything else makes the answer unparseable, with a reason: a person named twice (even
  with the same role), a claim about someone not in the puzzle, a person left out, the
  negated form ``NAME is not a ...`` (an answer states each role, as the prompt and the
  public answers do), and any other text: hedges ("or", "maybe", "?"), retractions ("just
  kidding, the reverse"), conditions ("if ... then"), negations the grammar does not know
  ("it is false that ..."), stray role words, or anything unexpected. An answer can only be
  right by saying, in this grammar, exactly the gold assignment; nothing it adds is
  skipped over.
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
# What may stand between two assertions, and nothing else: spaces, punctuation that lists,
# "and", list numbers and bullets.
_SEPARATOR = r"\s+|[,;.]|\band\b|\(\d+\)|\b\d+[.)]|[-*\u2022]"
_SEPARATORS = re.compile(f"(?:{_SEPARATOR})*")

# Words the grammar gives a meaning to, and the words that name why other text is refused
# (checked in this order). A person called by one of them could not be named in an answer
# without reading as that word, so such names are refused where puzzles are loaded.
GRAMMAR_WORDS = ("is", "a", "an", "not", "and", "knight", "knave", "knights", "knaves")
_REFUSED_WORDS = (
    ("hedged answer", ("or", "maybe", "perhaps", "possibly", "probably", "might", "either", "unclear",
                       "unknown", "undetermined", "uncertain", "cannot be determined", "not sure", "?")),
    ("retracted answer", ("kidding", "joking", "joke", "reverse", "reversed", "opposite", "actually", "wait",
                          "scratch", "instead", "ignore", "retract", "retracted", "correction", "swap",
                          "swapped", "flip", "flipped", "rather", "otherwise", "except", "but", "no longer")),
    ("conditional answer", ("if", "then", "unless", "when", "whenever", "iff", "suppose", "supposing",
                            "assume", "assuming", "given", "provided", "only", "implies", "would", "whether")),
    ("negation outside the answer grammar", ("not", "no", "never", "false", "untrue", "neither", "nor",
                                             "none", "n't", "lie", "lies", "lying", "liar", "wrong",
                                             "incorrect", "\u00ac", "~", "!")),
)
UNEXPECTED = "unexpected text"


def _alternation(words: Sequence[str]) -> re.Pattern:
    """One pattern for a list: words and phrases as whole words; a contraction ("n't") or a
    symbol wherever it stands."""
    return re.compile("|".join(rf"\b{re.escape(w)}\b" if w.replace(" ", "").isalpha() else re.escape(w)
                               for w in words))


_REFUSALS = tuple((kind, _alternation(words)) for kind, words in _REFUSED_WORDS)
RESERVED_WORDS = frozenset(GRAMMAR_WORDS) | frozenset(
    w for _, words in _REFUSED_WORDS for phrase in words for w in phrase.split() if w.isalpha())


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
    """Map name -> knight? or (None, reason). ``names`` are the puzzle's names in order.

    Strict by design: the assertions are read, and every character between them must be a
    separator of the grammar, so that no added text (a retraction, a condition, a negation)
    can change what the answer says while the assertions alone still score."""
    n = len(names)
    text = " ".join(answer.casefold().split())
    if not text:
        return None, "empty answer"
    if len(text) > MAX_ANSWER_CHARS_BASE + MAX_ANSWER_CHARS_PER_PERSON * n:
        return None, "answer too long"
    lower = {nm.casefold(): nm for nm in names}
    found: dict[str, bool] = {}
    gaps, start = [], 0
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
        gaps.append(text[start:m.start()])
        start = m.end()
    gaps.append(text[start:])
    missing = [nm for nm in names if nm not in found]
    if missing:
        return None, MISSING + ", ".join(missing)
    extra = " ".join(g for g in gaps if not _SEPARATORS.fullmatch(g))
    if extra:
        return None, _refusal(extra, text, n)
    return found, "ok"


def _refusal(extra: str, text: str, n: int) -> str:
    """Why text outside the assertions is refused: the first kind of word it holds (a hedge, a
    retraction, a condition, a negation), else stray role words, else the text itself."""
    for kind, pattern in _REFUSALS:
        hit = pattern.search(extra)
        if hit:
            return f"{kind} ({hit.group(0)!r})"
    if _ROLE_WORD.search(extra):
        return f"{len(_ROLE_WORD.findall(text))} role words for {n} people"
    first = re.sub(_SEPARATOR, " ", extra).split()[0]
    return f"{UNEXPECTED} ({first[:24]!r})"


def name_problem(names: Sequence[str]) -> str | None:
    """Why an answer in this grammar could not name every person (None when it can): a name
    must be one word of letters as NFKC leaves it (completions are NFKC-normalised before
    reading), not a word of the grammar or one it refuses, and distinct from the others
    without regard to case (answers are read case-insensitively)."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.isalpha():
            return f"{name!r} is not a single word of letters"
        if unicodedata.normalize("NFKC", name) != name:
            return f"{name!r} changes under NFKC normalisation"
        key = name.casefold()
        if key in RESERVED_WORDS:
            return f"{name!r} is a word of the answer grammar"
        if key in seen:
            return f"{name!r} is named twice (names are read without regard to case)"
        seen.add(key)
    return None


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
                  (f"{UNEXPECTED} (", "", UNEXPECTED),
                  *((f"{kind} (", "", kind) for kind, _ in _REFUSED_WORDS))


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
