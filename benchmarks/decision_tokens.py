"""Teacher-forced accuracy on a trace's decision tokens, per kind of decision.

A small model copies the easy tokens of a trace and guesses the hard ones; its loss
hides which is which. This measures, under teacher forcing with greedy prediction,
the tokens that decide something, split by kind:

KK, explicit rendering (every decision after its written inputs):
- ``lookup``: the role an atom looks up in the current case ("Aubrey is a knave: Aubrey *knight*, F");
- ``value``: each atom's and each combination's value (T / F / U);
- ``claim``: the claim's value compared with its speaker ("Emma knight, claim *F*, so ...");
- ``outcome``: ok / contradiction / open;
KK, both renderings:
- ``think_role``: every knight / knave word inside ``<think>`` (in the classic rendering these are
  where the hidden decisions surface: "Emma cannot be a *knight*");
- ``answer``: the roles in the answer.

The majority rate of each kind is printed beside it: a model at that rate guesses.

Usage (records: JSONL/Parquet with ``prompt`` and ``completion``, e.g. ``data warmstart`` output
on another seed than training's)::

    .venv/bin/python benchmarks/decision_tokens.py held-out.jsonl tiny-base runs/main/sft/model
    .venv/bin/python benchmarks/decision_tokens.py --make kk:explicit:rule-based --n 64 tiny-base MODEL

``--make TASK:RENDERING:METHOD`` builds the held-out records itself (seed 7, 3 people).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from typing import Callable, Iterable

import torch

from tailor_evo.io import read_records
from tailor_evo.models.registry import load

Span = tuple[str, int, int]          # (kind, start, end) in characters of the completion
SpanFinder = Callable[[str], Iterable[Span]]

_KK_PATTERNS = {
    "lookup": re.compile(r": \w+ (knight|knave|U),"),
    "value": re.compile(r", ([TFU])[;.]"),
    "claim": re.compile(r"claim ([TFU]), so"),
    "outcome": re.compile(r"so (ok|contradiction|open)\."),
}
_ROLE = re.compile(r"\b(knight|knave)\b")


def kk_spans(completion: str) -> Iterable[Span]:
    """The decision tokens of a KK completion (see the module docstring)."""
    think_end = completion.find("</think>")
    think_end = len(completion) if think_end < 0 else think_end
    for kind, pattern in _KK_PATTERNS.items():
        for m in pattern.finditer(completion, 0, think_end):
            yield kind, m.start(1), m.end(1)
    for m in _ROLE.finditer(completion):
        yield ("think_role" if m.start() < think_end else "answer"), m.start(1), m.end(1)


FINDERS: dict[str, SpanFinder] = {"kk": kk_spans}


@torch.no_grad()
def decision_accuracy(model, tokenizer, records: list[dict], spans: SpanFinder) -> dict[str, dict]:
    """kind -> {accuracy, tokens, majority}: greedy next-token hits on the first token of each span."""
    model.eval()
    hits: Counter = Counter()
    seen: Counter = Counter()
    truth: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        prompt_ids = tokenizer(rec["prompt"], add_special_tokens=False).input_ids
        enc = tokenizer(rec["completion"], add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([prompt_ids + enc.input_ids])
        pred = model(ids).logits[0].argmax(-1)
        starts = {}
        for t, (a, b) in enumerate(enc.offset_mapping):
            for c in range(a, max(b, a + 1)):
                starts.setdefault(c, t)
        for kind, start, _ in spans(rec["completion"]):
            t = starts.get(start)
            if t is None:
                continue
            pos = len(prompt_ids) + t
            token = ids[0, pos].item()
            hits[kind] += int(pred[pos - 1].item() == token)
            seen[kind] += 1
            truth[kind][token] += 1
    return {k: {"accuracy": hits[k] / seen[k], "tokens": seen[k],
                "majority": max(truth[k].values()) / seen[k]} for k in sorted(seen)}


def make_records(spec: str, n: int) -> list[dict]:
    """Held-out warm-start records of TASK:RENDERING:METHOD (seed 7, 3 people)."""
    from tailor_evo.tasks import get_task
    from tailor_evo.warmstart.build import build_warmstart
    from tailor_evo.warmstart.config import WarmstartConfig

    task_name, rendering, method = spec.split(":")
    cfg = WarmstartConfig(size=n, rendering=rendering, check_eval=False)
    res = build_warmstart(get_task(task_name), method, cfg, 7, levels=[3], progress=False)
    return res.records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="?", help="held-out JSONL/Parquet (prompt, completion)")
    ap.add_argument("models", nargs="+", help="backbone names or model directories")
    ap.add_argument("--make", help="build the records: TASK:RENDERING:METHOD (rule-based or four-behaviour)")
    ap.add_argument("--task", default="kk", choices=sorted(FINDERS))
    ap.add_argument("--n", type=int, default=64, help="records to score")
    args = ap.parse_args()
    if args.make:
        models = [args.records] + args.models if args.records else args.models
        records, source = make_records(args.make, args.n), args.make
    else:
        models, source = args.models, args.records
        records = read_records(args.records, required=("prompt", "completion"))[: args.n]
    print(f"{len(records)} records from {source}; greedy teacher-forced accuracy (tokens, majority rate)")
    for spec in models:
        model, tokenizer = load(spec)
        res = decision_accuracy(model, tokenizer, records, FINDERS[args.task])
        cells = "  ".join(f"{k} {v['accuracy']:.3f} ({v['tokens']}, {v['majority']:.2f})" for k, v in res.items())
        print(f"{spec}: {cells}")


if __name__ == "__main__":
    main()
