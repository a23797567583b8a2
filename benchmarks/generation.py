"""New tokens per second: the hf engine vs a plain ``model.generate`` loop, side by side.

The engine runs twice: with its lean decode step (:mod:`tailor_evo.generation.lean_decode`,
the default for Llama-family models) and with the transformers forward for every step
(``lean_decode=False``), so the share of each part is visible.

Both sample (temperature 1, no top-k/top-p) from the same prompts of mixed length
with the same batch size and token budget; only tokens up to and including eos
count as new tokens. ``generate`` gets the batch left-padded in the given order,
which is what a caller without the engine would do. Rates are wall-clock; on a
shared machine use ``--reps`` (the best of the interleaved repetitions is kept).

    nice .venv/bin/python benchmarks/generation.py                # tiny and smollm2-135m
    nice .venv/bin/python benchmarks/generation.py --models tiny --batches 1,16

``--rollouts MODEL`` times the shape of an RL step instead: 8 KK prompts x 8 samples,
up to 320 tokens ending at eos, temperature 1, through the engine with and without the
lean step (MODEL should be an SFT model, so that samples end at different lengths).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from tailor_evo.generation.base import SamplingParams
from tailor_evo.generation.hf import HFEngine
from tailor_evo.models.registry import load

QUESTIONS = [
    "What is 17 plus 25?", "Name three colours.", "Write a short sentence about the sea.",
    "Is a knight always truthful on the island?", "List the first five prime numbers.",
    "What is the capital of Italy?", "Explain in two sentences why the sky is blue.", "Say hello.",
]
FILLER = ("Rosa said that Tariq is a knave. If Mei is a knight then Rosa is a knave. The number of each "
          "Riverview Zoo's Penguin equals 7 more than the number of each Maple Park's Lion. ").split()


def make_prompts(tokenizer, count: int, seed: int = 0) -> list[str]:
    """Prompts of mixed length: a random amount of filler before a question, chat-formatted if possible."""
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        words = [FILLER[j % len(FILLER)] for j in range(rng.choice([0, 5, 20, 40, 80, 120]))]
        text = (" ".join(words) + " " if words else "") + QUESTIONS[i % len(QUESTIONS)]
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        prompts.append(text)
    return prompts


def count_new(rows: torch.Tensor, eos_ids: set[int], pad_id: int) -> int:
    total = 0
    for row in rows.tolist():
        n = 0
        for tok in row:
            n += 1
            if tok in eos_ids:
                break
        total += n
    return total


def bench_generate(model, tokenizer, prompts: list[str], batch: int, max_new: int, eos_ids: set[int]) -> tuple[int, float]:
    new, start = 0, time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            enc = tokenizer(prompts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new, pad_token_id=tokenizer.pad_token_id)
            new += count_new(out[:, enc["input_ids"].shape[1]:], eos_ids, tokenizer.pad_token_id)
    return new, time.perf_counter() - start


def bench_engine(engine: HFEngine, prompts: list[str], max_new: int) -> tuple[int, float]:
    return bench_engine_params(engine, prompts, SamplingParams(n=1, temperature=1.0, max_new_tokens=max_new, seed=0))


def rollouts(model_dir: str, reps: int, threads: int) -> None:
    """The engine on RL-shaped work: shared prompts, samples of different lengths."""
    from tailor_evo.tasks import get_task

    torch.set_num_threads(threads)
    task = get_task("kk")
    problems = task.generate(8 * reps, 3, levels=[3])
    engine = HFEngine.from_pretrained(model_dir, batch_size=64, show_progress=False)
    bench_engine_params(engine, [task.prompt(problems[0])], SamplingParams(n=8, max_new_tokens=8, seed=0))  # warm-up
    print(f"{'rep':>4}{'lean tok/s':>12}{'transformers-step tok/s':>25}{'ratio':>8}{'tokens':>8}")
    for rep in range(reps):
        prompts = [task.prompt(p) for p in problems[8 * rep: 8 * rep + 8]]
        params = SamplingParams(n=8, temperature=1.0, max_new_tokens=320, seed=rep)
        rates = {}
        for lean in (True, False):
            engine.lean_decode = lean
            new, seconds = bench_engine_params(engine, prompts, params)
            rates[lean] = new / seconds
        print(f"{rep:>4}{rates[True]:>12.0f}{rates[False]:>25.0f}{rates[True] / rates[False]:>8.2f}{new:>8}",
              flush=True)


def bench_engine_params(engine: HFEngine, prompts: list[str], params: SamplingParams) -> tuple[int, float]:
    start = time.perf_counter()
    out = engine.generate(prompts, params)
    return sum(len(c.token_ids) for comps in out for c in comps), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2-135m")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0: 64 for tiny, 32 otherwise")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine two threads stall on each other)")
    ap.add_argument("--reps", type=int, default=1, help="repeat each pair (interleaved) and keep the best rate; "
                    "helps on a shared machine")
    ap.add_argument("--rollouts", metavar="MODEL", help="time RL-shaped rollouts from MODEL instead")
    args = ap.parse_args()
    if args.rollouts:
        return rollouts(args.rollouts, max(1, args.reps), args.threads or 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'model':<14}{'batch':>6}{'prompts':>8}{'generate tok/s':>16}{'engine-tf tok/s':>17}"
          f"{'engine tok/s':>14}{'tf ratio':>10}{'ratio':>8}")
    for name in args.models.split(","):
        model, tokenizer = load(name)
        max_new = args.max_new_tokens or (64 if name == "tiny" else 32)
        engine = HFEngine(model, tokenizer, show_progress=False)
        plain = HFEngine(model, tokenizer, show_progress=False, lean_decode=False)
        eos_ids = engine.eos_ids
        for eng in (engine, plain):
            bench_engine(eng, make_prompts(tokenizer, 2, seed=99), 4)  # warm-up
        for batch in (int(b) for b in args.batches.split(",")):
            prompts = make_prompts(tokenizer, batch if batch > 1 else 4, seed=batch)
            engine.batch_size = plain.batch_size = batch
            g_rate = t_rate = e_rate = 0.0
            for _ in range(args.reps):
                g_new, g_time = bench_generate(model, tokenizer, prompts, batch, max_new, eos_ids)
                t_new, t_time = bench_engine(plain, prompts, max_new)
                e_new, e_time = bench_engine(engine, prompts, max_new)
                g_rate, t_rate, e_rate = (max(g_rate, g_new / g_time), max(t_rate, t_new / t_time),
                                          max(e_rate, e_new / e_time))
            print(f"{name:<14}{batch:>6}{len(prompts):>8}{g_rate:>16.1f}{t_rate:>17.1f}{e_rate:>14.1f}"
                  f"{t_rate / g_rate:>10.2f}{e_rate / g_rate:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
