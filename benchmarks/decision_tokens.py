"""How well does a model predict the tokens a trace *decides*, given the trace so far?

Teacher-forced greedy accuracy on the decision tokens of gold records (prompt +
completion, tokenised as SFT tokenises them), grouped by a category a predicate
assigns. Most tokens of a trace are copies; the decision tokens are where a small
model learns or guesses, and a rendering that writes each decision's inputs just
before it should make them easier to predict. Measuring the same model on the same
problems under two renderings shows what the rendering changes before any training.

The core, :func:`decision_accuracy`, takes records and a predicate that marks decision
tokens (a character span of the completion -> a category or None), so any task can
add its own predicate:

- :func:`igsm_value_tokens`, iGSM's: every number of the reasoning (operands, results,
  unreduced results, reduced results, values of named quantities) and the answer; with
  ``--detail`` (:func:`igsm_detailed`) also the tokens that read the problem: the quantity each
  "Define" step names, the definition it writes (apart for the totals the problem never
  states, ``define_expr_abstract``), and the quoted rendering's copied sentences (the quantity
  each is copied for, and the words after "equals");
- :func:`kk_decision_tokens`, KK's: in the explicit rendering the role an atom looks up in
  the current case (``lookup``), each atom's and combination's value T / F / U (``value``),
  the claim's value beside its speaker (``claim``), ok / contradiction / open (``outcome``);
  in both renderings every role word inside ``<think>`` (``think_role``; in the classic
  rendering this is where the hidden decisions surface: "Emma cannot be a *knight*") and
  the roles of the answer (``answer``).

Each category's majority rate (the share of its most frequent gold token) is printed
beside it: a model at that rate guesses. Length statistics of the same records
(characters and tokens) come with it.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decision_tokens.py tiny-base --n 48
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decision_tokens.py RUN/sft/model --records heldout.jsonl
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decision_tokens.py --task kk --renderings classic,explicit \
        --n 64 tiny-base RUN/sft/model
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

# (record, completion, start, end) -> category or None: is completion[start:end] a decision token?
DecisionPredicate = Callable[[dict, str, int, int], "str | None"]


@dataclass
class Tally:
    """Hits and counts of one category of decision tokens."""

    hits: int = 0
    tokens: int = 0
    gold: Counter = field(default_factory=Counter)    # gold token id -> count

    @property
    def accuracy(self) -> float:
        return self.hits / self.tokens if self.tokens else float("nan")

    @property
    def majority(self) -> float:
        """The accuracy of always predicting the category's most frequent gold token."""
        return max(self.gold.values()) / self.tokens if self.tokens else float("nan")


@dataclass
class DecisionAccuracy:
    """Accuracy per category, and over all decision tokens."""

    by_category: dict[str, Tally] = field(default_factory=dict)

    @property
    def total(self) -> Tally:
        return Tally(sum(t.hits for t in self.by_category.values()), sum(t.tokens for t in self.by_category.values()))


@torch.no_grad()
def decision_accuracy(model, tokenizer, records: list[dict], is_decision: DecisionPredicate, *,
                      chat: bool = False) -> DecisionAccuracy:
    """Teacher-forced greedy accuracy on the completion tokens ``is_decision`` marks.

    Prompt and completion are tokenised separately and concatenated, as SFT does, so
    the model sees exactly the token sequence it would be trained on. ``chat`` is the
    training run's setting: with it, the record's ``messages`` go through the tokenizer's
    chat template (SFT's own ``render_prompt``); without it, the plain ``prompt``.
    """
    from tailor_evo.trainers.data import render_prompt

    model.eval()
    out = DecisionAccuracy()
    for line, rec in enumerate(records, start=1):
        prompt, templated = render_prompt(rec, tokenizer, chat=chat, source="records", line=line)
        prompt_ids = tokenizer(prompt, add_special_tokens=not templated).input_ids
        enc = tokenizer(rec["completion"], add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([prompt_ids + enc.input_ids])
        pred = model(ids).logits[0].argmax(-1)
        for k, (start, end) in enumerate(enc.offset_mapping):
            category = is_decision(rec, rec["completion"], start, end)
            if category is None:
                continue
            i = len(prompt_ids) + k
            tally = out.by_category.setdefault(category, Tally())
            tally.hits += int(pred[i - 1].item() == ids[0, i].item())
            tally.tokens += 1
            tally.gold[ids[0, i].item()] += 1
    return out


# ---- iGSM -------------------------------------------------------------------------------------

_CALC = re.compile(r"(?<![\d-])(\d+) ([-+*]) (\d+) = (-?\d+)(?: mod 23 = (\d+))?")
_NUMBER = re.compile(r"-?\d+")


@functools.lru_cache(maxsize=512)
def igsm_number_spans(completion: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, category) of every number of an iGSM completion's reasoning and answer.

    In a binary computation "a op b = r [mod 23 = v]": a and b are ``operand``; the
    operation's reduced result (r, or v after a reduction) is ``result``, and an
    unreduced r before "mod 23" is ``raw``. Any other number of
    the reasoning is ``value`` (a stated number, an input's value, a quantity's value
    beside its name); the number in the answer tag is ``answer``. The modulus is not a
    decision.
    """
    think_end = completion.find("</think>")
    spans: dict[int, tuple[int, int, str]] = {}
    for m in _CALC.finditer(completion):
        if think_end >= 0 and m.start() > think_end:
            break
        spans[m.start(1)] = (m.start(1), m.end(1), "operand")
        spans[m.start(3)] = (m.start(3), m.end(3), "operand")
        spans[m.start(4)] = (m.start(4), m.end(4), "raw" if m.group(5) else "result")
        if m.group(5):
            spans[m.start(5)] = (m.start(5), m.end(5), "result")
    for m in _NUMBER.finditer(completion):
        if m.start() in spans:
            continue
        if completion[max(0, m.start() - 4): m.start()] == "mod " and m.group(0) == "23":
            continue
        spans[m.start()] = (m.start(), m.end(), "answer" if think_end >= 0 and m.start() > think_end else "value")
    return tuple(sorted(spans.values()))


def igsm_value_tokens(record: dict, completion: str, start: int, end: int) -> str | None:
    """iGSM's decision predicate: the category of the number the token belongs to, if any."""
    for s, e, category in igsm_number_spans(completion):
        if s < end and start < e and completion[start:end].strip(" -"):   # the token overlaps a number's digits
            return category
        if s >= end:
            break
    return None


_READ = re.compile(r"Read: ((?:The number of each [^.]+\.(?: |$))+)")
_QUOTED = re.compile(r"The number of each ([^.]+?) equals ([^.]+)\.")
_IGSM_DETAIL = (
    ("define_name", re.compile(r"Define (.+?) as [A-Za-z][0-9]*[ ;]")),
    ("define_expr", re.compile(r"Define .+? as [A-Za-z][0-9]* = (.+?);")),
)


@functools.lru_cache(maxsize=512)
def igsm_detail_spans(completion: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, category) of the words an iGSM trace decides when it reads the problem:
    the quantity a "Define" step names next (``define_name``), the definition it writes for
    it (``define_expr``), and in a copied problem sentence (the quoted rendering) the
    quantity it is copied for (``quote_subject``) and the words after "equals", the copy
    proper (``quote_rhs``)."""
    think_end = completion.find("</think>")
    think_end = len(completion) if think_end < 0 else think_end    # (a drill's text has no </think>)
    spans = []
    for category, pattern in _IGSM_DETAIL:
        spans += [(m.start(1), m.end(1), category) for m in pattern.finditer(completion, 0, think_end)]
    for block in _READ.finditer(completion, 0, think_end):
        for m in _QUOTED.finditer(completion, block.start(1), block.end(1)):
            # from the space before each part: a word's token carries its leading space
            spans += [(m.start(1) - 1, m.end(1), "quote_subject"), (m.start(2) - 1, m.end(2) + 1, "quote_rhs")]
    return tuple(sorted(spans))


def igsm_detailed(record: dict, completion: str, start: int, end: int) -> str | None:
    """iGSM's predicate with ``--detail``: every token that starts inside a quote or a
    definition takes that category; other tokens as :func:`igsm_value_tokens`. Where the
    record lists the problem's abstract quantities (``abstract``, as generated records do),
    the definition of one of them is ``define_expr_abstract``: the sum of a category's items,
    which the problem never states and a model must gather from several sentences."""
    for s, e, category in igsm_detail_spans(completion):
        if s <= start < e and completion[start:end].strip():
            if category == "define_expr" and _defined_name(completion, s) in record.get("abstract", ()):
                return "define_expr_abstract"
            return category
        if s >= end:
            break
    return igsm_value_tokens(record, completion, start, end)


def _defined_name(completion: str, expr_start: int) -> str:
    """The quantity named by the "Define NAME as" whose definition starts at ``expr_start``."""
    at = completion.rfind("Define ", 0, expr_start) + len("Define ")
    return completion[at:completion.find(" as ", at)]


def igsm_records(n: int, seed: int, levels: list[int], rendering: str) -> list[dict]:
    """Gold records of the warm-start seed programs (rule-based and four-behaviour) on ``n``
    problems, rendered in ``rendering``; prompts as the warm start writes them."""
    from tailor_evo.tasks.igsm import IGSMTask, graph_of
    from tailor_evo.tasks.igsm.graph import ABSTRACT

    task = IGSMTask(rendering=rendering)
    seeds = Path(__file__).resolve().parents[1] / "populations" / "seeds" / "igsm"
    programs = [(f"{lib}:{p['name']}", p["program"]) for lib in ("rule-based", "four-behaviour")
                for p in json.loads((seeds / f"{lib}.json").read_text())["primitives"]]
    problems = task.generate(n, seed, levels=levels)
    records = []
    for i, p in enumerate(problems):
        name, program = programs[i % len(programs)]
        tr = task.execute(program, p, random.Random(i))
        assert tr.finished and task.verify(p, tr.completion).correct
        g = graph_of(p)
        records.append({"prompt": task.prompt(p), "messages": task.prompt(p, chat=True), "completion": tr.completion,
                        "primitive": name, "abstract": sorted(q.name for q in g.params if q.kind == ABSTRACT)})
    return records


# ---- KK ----------------------------------------------------------------------------------------

_KK_PATTERNS = {
    "lookup": re.compile(r"(?:knight|knave): \w+ (knight|knave|U),"),   # an atom's, not a case line's
    "value": re.compile(r", ([TFU])[;.]"),
    "claim": re.compile(r"claim ([TFU]), so"),
    "outcome": re.compile(r"so (ok|contradiction|open)\."),
}
_ROLE = re.compile(r"\b(knight|knave)\b")


@functools.lru_cache(maxsize=512)
def kk_spans(completion: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, category) of the decision words of a KK completion (see the module docstring)."""
    think_end = completion.find("</think>")
    think_end = len(completion) if think_end < 0 else think_end
    spans = {}
    for m in _ROLE.finditer(completion):
        spans[m.start(1)] = (m.start(1), m.end(1), "think_role" if m.start() < think_end else "answer")
    for category, pattern in _KK_PATTERNS.items():
        for m in pattern.finditer(completion, 0, think_end):
            spans.setdefault(m.start(1), (m.start(1), m.end(1), category))
            if category == "lookup":
                spans[m.start(1)] = (m.start(1), m.end(1), category)
    return tuple(sorted(spans.values()))


def _word_begun(spans: tuple[tuple[int, int, str], ...], completion: str, start: int, end: int) -> str | None:
    """The category of the sorted span whose word the token ``completion[start:end]`` begins
    (a token may carry the space before the word), if any."""
    for s, e, category in spans:
        if s <= start < e or (start < s < end and completion[start:s].strip() == ""):
            return category
        if s >= end:
            break
    return None


def kk_decision_tokens(record: dict, completion: str, start: int, end: int) -> str | None:
    """KK's decision predicate: the category of the decision word the token begins, if any."""
    return _word_begun(kk_spans(completion), completion, start, end)


_SAID = r"said(?: \([a-z ]+\))?: "        # "X said: " or, with the claim's connective first, "X said (or): "
_RESTATED_ATOM = re.compile(r"(?:" + _SAID + r"|; |\. )(\w+) is( not)? a (knight|knave):")
_SHAPE = re.compile(r"said \(([a-z ]+)\): ")
# the quoted rendering's copy of the speaker's clause, between "said:" and its first atom
_QUOTED_CLAUSE = re.compile(_SAID + r"([^.:]+)\. (?=\w+ is(?: not)? a (?:knight|knave):)")
_RESTATED_CONNECTIVE = re.compile(r"(?:[;:] |^)(?:if [TFU] (then)|[TFU] (and|or|iff) [TFU])", re.M)


@functools.lru_cache(maxsize=512)
def kk_restated_spans(completion: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end) of the words that restate a claim inside a check: each atom's person, its
    "not" and its role, and each combination's connective (``restate``), the claim's connective
    named before its atoms (``shape``), and in the quoted rendering every token of the clause
    copied before them (``quote``). They are copies of the question's claim (or of its
    restatement in an earlier case), not decisions; a model that copies a claim wrongly checks
    another claim than the one spoken."""
    spans = []
    for m in _RESTATED_ATOM.finditer(completion):
        spans += [(m.start(g), m.end(g), "restate") for g in (1, 2, 3) if m.group(g)]
    for m in _RESTATED_CONNECTIVE.finditer(completion):
        spans += [(m.start(g), m.end(g), "restate") for g in (1, 2) if m.group(g)]
    spans += [(m.start(1), m.end(1), "quote") for m in _QUOTED_CLAUSE.finditer(completion)]
    spans += [(m.start(1), m.end(1), "shape") for m in _SHAPE.finditer(completion)]
    return tuple(sorted(spans))


def kk_detailed(record: dict, completion: str, start: int, end: int) -> str | None:
    """KK's predicate in detail: the look-up split by where it reads (``lookup_first`` in a
    trace's first case, one case line to read; ``lookup_later`` in a later one, where the same
    people stand in several case lines and the latest must be read), and the restated claim's
    words (``restate``: its people, "not", roles and connectives)."""
    category = (_word_begun(kk_restated_spans(completion), completion, start, end)
                or kk_decision_tokens(record, completion, start, end))
    if category != "lookup":
        return category
    return "lookup_first" if completion.count("Case: ", 0, start) <= 1 else "lookup_later"


def kk_records(n: int, seed: int, levels: list[int], rendering: str) -> list[dict]:
    """Gold records of KK's rule-based warm start on ``n`` problems, rendered in ``rendering``."""
    from tailor_evo.tasks import get_task
    from tailor_evo.warmstart.build import build_warmstart
    from tailor_evo.warmstart.config import WarmstartConfig

    cfg = WarmstartConfig(size=n, rendering=rendering, check_eval=False)
    return build_warmstart(get_task("kk"), "rule-based", cfg, seed, levels=levels, progress=False).records


TASKS = {"igsm": (igsm_records, igsm_value_tokens, "2,3,4,5,6"), "kk": (kk_records, kk_decision_tokens, "3")}


def length_stats(records: list[dict], tokenizer) -> dict[str, float]:
    """Median and 90th percentile of the completions' length in characters and in tokens."""
    chars = [len(r["completion"]) for r in records]
    toks = [len(tokenizer(r["completion"], add_special_tokens=False).input_ids) for r in records]

    def p90(xs: list[int]) -> float:
        return statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else float(xs[0])

    return {"chars_median": statistics.median(chars), "chars_p90": p90(chars),
            "tokens_median": statistics.median(toks), "tokens_p90": p90(toks)}


def main() -> None:
    from tailor_evo.io import read_records
    from tailor_evo.models.registry import load

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="backbone names or model directories")
    ap.add_argument("--task", default="igsm", choices=sorted(TASKS))
    ap.add_argument("--records", help="gold records (prompt, completion) instead of generated ones")
    ap.add_argument("--renderings", help="renderings of the generated records (default: iGSM compact,explicit; "
                                         "KK classic,explicit)")
    ap.add_argument("--n", type=int, default=48, help="problems (one record each)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--levels", help="difficulty levels (default: iGSM 2-6, KK 3)")
    ap.add_argument("--chat", action=argparse.BooleanOptionalAction, default=False,
                    help="prompt layout of the training run, as its `chat` setting: --chat for a model trained "
                         "with chat: true (the messages through its template, e.g. configs/igsm-smollm2.yaml); "
                         "the default is the plain prompt, as SFT's default (tiny-base's template gives the "
                         "same text)")
    ap.add_argument("--detail", action="store_true",
                    help="KK: the look-up in a trace's first case and in its later cases apart, and the "
                         "restated claims' words (restate). iGSM: the quantity each 'Define' names and the "
                         "definition it writes, and the quoted sentences of the quoted rendering")
    args = ap.parse_args()
    make, predicate, default_levels = TASKS[args.task]
    if args.detail:
        predicate = kk_detailed if args.task == "kk" else igsm_detailed
    levels = [int(x) for x in (args.levels or default_levels).split(",")]
    renderings = args.renderings or ("compact,explicit" if args.task == "igsm" else "classic,explicit")
    sets = ({"records": read_records(args.records, required=("prompt", "completion"))[: args.n]} if args.records
            else {r: make(args.n, args.seed, levels, r) for r in renderings.split(",")})
    for spec in args.models:
        model, tokenizer = load(spec)
        print(f"== {spec}")
        for name, records in sets.items():
            stats = length_stats(records, tokenizer)
            res = decision_accuracy(model, tokenizer, records, predicate, chat=args.chat)
            cells = ", ".join(f"{c} {t.accuracy:.3f} ({t.tokens}, majority {t.majority:.2f})"
                              for c, t in sorted(res.by_category.items()))
            print(f"{name:10s} all {res.total.accuracy:.3f} ({res.total.tokens}); {cells}")
            print(f"{'':10s} completion length: median {stats['chars_median']:.0f} chars / "
                  f"{stats['tokens_median']:.0f} tokens, p90 {stats['chars_p90']:.0f} chars / "
                  f"{stats['tokens_p90']:.0f} tokens")


if __name__ == "__main__":
    main()
