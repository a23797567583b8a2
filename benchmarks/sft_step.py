"""SFT tokens/s: padded, packed and length-bucketed batches, side by side on the same warm-start-like data.

Both variants train the same tiny model (the shipped ``tiny`` shape, fp32) on the
same examples in the same order with the same loss; only the batch layout
differs. Padded rows compute attention and MLPs on padding up to the longest row
of each batch; packed rows lay whole examples end to end with a block-diagonal
mask. The figure that matters is supervised-and-prompt tokens (not padding)
processed per second. The achieved FLOP/s is set against a measured matmul peak
of the model's own shapes, so the distance to the machine's limit is visible.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/sft_step.py --steps 6 [--compile]

Bucketed batches sort the step's examples by length into right-padded micro-batches
with no attention mask (plain causal attention; see ``collate_buckets``). With
``--compile`` two more rows time packed and bucketed batches through ``torch.compile``
(dynamic shapes); the first step, which compiles, is reported apart, because in a
short run the compilation can cost more than it saves.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from tailor_evo.machine import matmul_gflops


def examples(tokenizer, n: int, seed: int):
    """Prompt + completion pairs with the length spread of the main job's warm start (KK, 3 people)."""
    from tailor_evo.tasks import get_task
    from tailor_evo.trainers.data import encode_example

    task = get_task("kk")
    rng = random.Random(seed)
    out = []
    for p in task.generate(n, seed, levels=[3]):
        completion = task.reference_completion(p)
        # repeat the reasoning a random number of times: 300-700 token examples, like tailor data
        think = completion.split("</think>")[0]
        completion = think + " " + " ".join([think.removeprefix("<think>")] * rng.randint(0, 2)) + \
            " </think>" + completion.split("</think>")[1]
        ex = encode_example(task.prompt(p), completion, tokenizer, prompt_has_specials=False)
        if len(ex.input_ids) <= 1024:   # what SFT's max_length keeps
            out.append(ex)
    return out


def run(model_dir: Path, data, batch_size: int, steps: int, batching: str, threads: int,
        compiled: bool = False) -> dict:
    from transformers import AutoModelForCausalLM

    from tailor_evo.trainers.losses import sft_loss
    from tailor_evo.trainers.sft import SFTConfig, forward_logits, step_batches

    cfg = SFTConfig(batching=batching, batch_size=batch_size)   # the trainer's own batching (max_length 1024)

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model, dynamic=True) if compiled else model
    real = computed = 0
    elapsed = warmup = 0.0
    for step in range(steps + 1):
        chunk = data[step * batch_size: (step + 1) * batch_size]
        batches = step_batches(chunk, cfg, 0)
        start = time.perf_counter()
        supervised = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        for batch in batches:
            loss = sft_loss(forward_logits(forward, batch), batch["labels"], normaliser=supervised)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step == 0:   # the first step is a warm-up (and, compiled, the compilation)
            warmup = time.perf_counter() - start
        else:
            elapsed += time.perf_counter() - start
            real += sum(len(e.input_ids) for e in chunk)
            computed += sum(b["input_ids"].numel() for b in batches)
    return {"tokens_per_s": real / elapsed, "computed_share": real / computed, "s_per_step": elapsed / steps,
            "gflops": 6 * n_params * computed / elapsed / 1e9, "first_step_s": warmup}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true",
                    help="also time packed and bucketed batches through torch.compile "
                         "(inductor; the first step compiles)")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from tailor_evo.models.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny(Path(tmp) / "m", seed=0)
        tok = AutoTokenizer.from_pretrained(model_dir)
        data = examples(tok, 2 * (args.steps + 1) * args.batch_size, seed=0)[: (args.steps + 1) * args.batch_size]
        mean_len = sum(len(e.input_ids) for e in data) / len(data)
        peak = matmul_gflops(192, 4096, args.threads)
        print(f"{len(data)} examples, mean {mean_len:.0f} tokens; batch {args.batch_size}; {args.threads} threads; "
              f"fp32 matmul peak of the MLP shape {peak:.0f} GFLOP/s")
        print(f"{'layout':16s} {'tokens/s':>9s} {'s/step':>7s} {'real/computed':>13s} {'GFLOP/s (6N)':>12s} "
              f"{'of peak':>8s} {'first step s':>12s}")
        res = {}
        variants = [("padded", "padded", False), ("packed", "packed", False), ("bucketed", "bucketed", False)] + \
            ([("packed+compiled", "packed", True), ("bucketed+compiled", "bucketed", True)] if args.compile else [])
        for name, batching, compiled in variants:
            r = res[name] = run(model_dir, data, args.batch_size, args.steps, batching, args.threads, compiled)
            print(f"{name:16s} {r['tokens_per_s']:9.0f} {r['s_per_step']:7.2f} {r['computed_share']:13.2f} "
                  f"{r['gflops']:12.1f} {r['gflops'] / peak:8.2f} {r['first_step_s']:12.1f}")
        base = res["padded"]["tokens_per_s"]
        print("tokens/s against padded: " + ", ".join(f"{k} {v['tokens_per_s'] / base:.2f}x" for k, v in res.items()))


if __name__ == "__main__":
    main()
