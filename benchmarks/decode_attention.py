"""One decode step's attention on a CPU: which layout and mask the lean decoder should use, and why it is slow.

A decoding step of a batch attends one query per row to the whole KV cache, so it
reads every cached key and value once: the step is bound by memory bandwidth, not
by arithmetic. This script times that attention for the shapes of the ``tiny``
backbone (4 heads of 48) in the variants that were candidates for
:mod:`tailor_evo.generation.lean_decode`, and prints the bandwidth each achieves,
beside the layer's own matrix multiplications for scale.

    .venv/bin/python benchmarks/decode_attention.py [--batch 64 --context 250 --threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def timed(fn, repeats: int) -> float:
    """Mean milliseconds of ``fn()`` after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--context", type=int, default=250)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, h, d, t = args.batch, args.heads, args.head_dim, args.context
    keys, values = torch.randn(b, h, t + 64, d), torch.randn(b, h, t + 64, d)   # buffers with spare room
    k, v = keys[:, :, :t], values[:, :, :t]
    q = torch.randn(b, h, 1, d)
    valid = torch.ones(b, 1, 1, t, dtype=torch.bool)
    valid[: b // 2, ..., :20] = False                                          # some left padding
    bias = torch.zeros(b, 1, 1, t).masked_fill(~valid, float("-inf"))
    scale = d ** -0.5

    def manual():
        scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).add_(bias)
        return torch.matmul(torch.softmax(scores, -1), v)

    kb, vb, qb, bb = k.bfloat16(), v.bfloat16(), q.bfloat16(), bias.bfloat16()
    kh, vh, qh, bh = k.half(), v.half(), q.half(), bias.half()
    variants = {
        "sdpa, boolean mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=valid),
        "sdpa, additive float bias (used)": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
        "matmul-softmax-matmul": manual,
        "sdpa, bf16 keys/values": lambda: F.scaled_dot_product_attention(qb, kb, vb, attn_mask=bb),
        "sdpa, fp16 keys/values": lambda: F.scaled_dot_product_attention(qh, kh, vh, attn_mask=bh),
    }
    x, w_up = torch.randn(b, h * d), torch.randn(h * d * 8 // 3, h * d)
    fp32_bytes = 2 * k.numel() * 4
    print(f"batch {b}, context {t}, {h} heads x {d}, {args.threads} thread(s); "
          f"keys+values read per step and layer: {fp32_bytes / 1e6:.1f} MB (fp32)")
    print(f"{'variant':36s} {'ms':>7s} {'GB/s':>7s}")
    for name, fn in variants.items():
        ms = timed(fn, args.repeats)
        moved = fp32_bytes / (2 if "16" in name else 1)
        print(f"{name:36s} {ms:7.2f} {moved / ms / 1e6:7.1f}")
    ms = timed(lambda: F.linear(x, w_up), args.repeats)
    gflops = 2 * x.numel() * w_up.shape[0] / ms / 1e6
    print(f"{'for scale: the MLP up-projection':36s} {ms:7.2f}   ({gflops:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
