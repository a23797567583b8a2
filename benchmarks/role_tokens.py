"""Has a model learnt the logic of its warm-start traces, or only their format?

Teacher-forced greedy accuracy on the role words (knight / knave) of held-out
warm-start records, split into the reasoning (inside ``<think>``) and the answer
after it. A model that has learnt the logic predicts the roles a correct trace
states; one that learnt only the format stays near the majority rate, which is
printed beside each figure. The answer's roles are stated by the trace just before
it, so even a model that only copies its own conclusions scores well there.

Held-out records come from a warm start on another seed than training's, e.g.:

    tailor-evo data warmstart --task kk --method tailor --archive RUN/search --size 64 --seed 7 \\
        --levels 3 -o /tmp/heldout.jsonl
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/role_tokens.py /tmp/heldout.jsonl tiny-base RUN/sft/model
"""

from __future__ import annotations

import argparse

import torch

from tailor_evo.io import read_records
from tailor_evo.models.registry import load


@torch.no_grad()
def role_accuracy(model, tokenizer, records: list[dict]) -> dict[str, tuple[float, int, float]]:
    """part -> (accuracy, role tokens, majority rate) for ``think`` and ``answer``."""
    model.eval()
    role_of = {tokenizer(" " + w, add_special_tokens=False).input_ids[0]: w for w in ("knight", "knave")}
    counts = {"think": [0, 0, 0], "answer": [0, 0, 0]}        # hits, tokens, knaves
    for rec in records:
        prompt_ids = tokenizer(rec["prompt"], add_special_tokens=False).input_ids
        ids = torch.tensor([prompt_ids + tokenizer(rec["completion"], add_special_tokens=False).input_ids])
        pred = model(ids).logits[0].argmax(-1)
        before_answer = rec["completion"].split("<answer>")[0]
        answer_start = len(prompt_ids) + len(tokenizer(before_answer, add_special_tokens=False).input_ids)
        for i in range(len(prompt_ids), ids.shape[1]):
            token = ids[0, i].item()
            if token in role_of:
                c = counts["answer" if i >= answer_start else "think"]
                c[0] += int(pred[i - 1].item() == token)
                c[1] += 1
                c[2] += int(role_of[token] == "knave")
    return {part: (hits / max(n, 1), n, max(knaves, n - knaves) / max(n, 1))
            for part, (hits, n, knaves) in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", help="held-out warm-start JSONL/Parquet (prompt, completion)")
    ap.add_argument("models", nargs="+", help="backbone names or model directories")
    ap.add_argument("--n", type=int, default=64, help="records to score")
    args = ap.parse_args()
    records = read_records(args.records, required=("prompt", "completion"))[: args.n]
    print(f"{len(records)} records; accuracy (role tokens, majority rate)")
    print(f"{'model':50s} {'think':>22s} {'answer':>22s}")
    for spec in args.models:
        model, tokenizer = load(spec)
        r = role_accuracy(model, tokenizer, records)
        cells = [f"{a:.3f} ({n}, {m:.3f})" for a, n, m in (r["think"], r["answer"])]
        print(f"{spec[-50:]:50s} {cells[0]:>22s} {cells[1]:>22s}")


if __name__ == "__main__":
    main()
