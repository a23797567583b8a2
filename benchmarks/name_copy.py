"""Can a backbone copy the puzzle's names? Next-name accuracy on held-out KK questions.

A Knights-and-Knaves answer must name the puzzle's own people, so a model that
cannot copy names from its prompt scores zero however well it reasons. This probe
measures that one skill in isolation: for every name token in a question after the
introduction ("You meet 3 inhabitants: A, B, and C."), is the model's greedy next
token that name? Two chance levels frame the figure: 1/|name pool| (no use of the
context) and 1/people (knows the set, not which one). Models are compared side by
side on the same questions.

    nice .venv/bin/python benchmarks/name_copy.py tiny smollm2-135m /path/to/run/sft/model
"""

from __future__ import annotations

import argparse
import time

import torch

from tailor_evo.models.registry import load
from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import text as T


def name_copy_accuracy(model, tokenizer, questions: list[str]) -> tuple[float, int]:
    """Fraction of name tokens after the introduction that the model predicts exactly."""
    hits = total = 0
    model.eval()
    for q in questions:
        names = T.intro_names(q)
        intro = q.split("inhabitants:")[0] + "inhabitants: " + T.list_names(names) + "."
        ids = tokenizer(q, return_tensors="pt").input_ids
        start = len(tokenizer(intro).input_ids)
        name_ids = {tokenizer(" " + n, add_special_tokens=False).input_ids[0] for n in names}
        with torch.no_grad():
            pred = model(ids).logits[0].argmax(-1)
        for i in range(start - 1, ids.shape[1] - 1):
            target = ids[0, i + 1].item()
            if target in name_ids:
                total += 1
                hits += int(pred[i].item() == target)
    return hits / max(total, 1), total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="backbone names or model directories")
    ap.add_argument("--n", type=int, default=100, help="held-out 3-person questions")
    ap.add_argument("--seed", type=int, default=999)
    args = ap.parse_args()
    questions = [p.question for p in get_task("kk").generate(args.n, args.seed, levels=[3])]
    print(f"{args.n} questions; chance without context 1/{len(T.COMMON_NAMES)} = {1 / len(T.COMMON_NAMES):.3f}, "
          f"knowing only the set of people 1/3 = 0.333")
    print(f"{'model':60s} {'name tokens':>11s} {'accuracy':>9s} {'seconds':>8s}")
    for spec in args.models:
        start = time.time()
        model, tokenizer = load(spec)
        acc, total = name_copy_accuracy(model, tokenizer, questions)
        print(f"{spec[-60:]:60s} {total:11d} {acc:9.3f} {time.time() - start:8.1f}")


if __name__ == "__main__":
    main()
