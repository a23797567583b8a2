"""Constrained decoding overhead: hf engine tokens/s with and without the reply schema, side by side.

Both runs sample (temperature 0.9) from the same llm-operator prompts (a KK seed primitive
to mutate) with the same batch size and token budget; the constrained run passes the
move grammar's JSON schema (``search.reply_schema``), as the llm operator does. Tokens/s
counts every sampled token, so a run whose replies end sooner is not favoured. The runs
are interleaved ``--reps`` times and the best of each kept (a shared machine is noisy).
Also printed: the share of replies that are valid programs in each mode.

    nice .venv/bin/python -m benchmarks.constrained                      # tiny and smollm2-135m
    nice .venv/bin/python -m benchmarks.constrained --models smollm2-135m --batch 8 --tokens 160
"""

from __future__ import annotations

import argparse
import json
import time

from tailor_evo.generation.base import SamplingParams
from tailor_evo.generation.hf import HFEngine
from tailor_evo.populations.library import load_library
from tailor_evo.search.gp import TreeOperators
from tailor_evo.search.llm_operator import LLMOperator, parse_reply
from tailor_evo.search.reply_schema import reply_schema
from tailor_evo.tasks import get_task


def prompts(engine: HFEngine, count: int, chat: bool) -> tuple[list, LLMOperator]:
    grammar = get_task("kk").grammar()
    ops = TreeOperators(grammar)
    op = LLMOperator(engine, grammar, ops.check, chat=chat)
    seeds = list(load_library("kk/four-behaviour")) + list(load_library("kk/rule-based"))
    texts = [op.prompt([(s["name"], s["description"], s["program"])])[1] for s in seeds]
    texts = [texts[i % len(texts)] for i in range(count)]
    return ([[{"role": "user", "content": t}] for t in texts] if chat else texts), op


def run(engine: HFEngine, batch: list, params: SamplingParams, check) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    groups = engine.generate(batch, params)
    seconds = time.perf_counter() - t0
    comps = [c for g in groups for c in g]
    valid = sum(parse_reply(c.text, check)[0] is not None for c in comps)
    return sum(len(c.token_ids) for c in comps) / seconds, valid, len(comps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    print(f"{'model':<14} {'mode':<12} {'tokens/s':>9} {'valid':>7}")
    for name in args.models.split(","):
        engine = HFEngine.from_pretrained(name, batch_size=args.batch, show_progress=False)
        chat = bool(getattr(engine.tokenizer, "chat_template", None))
        batch, op = prompts(engine, args.batch, chat)
        schema = reply_schema(op.grammar, 10, 40)   # the search defaults: evolution.max_depth, max_nodes
        modes = {"free": SamplingParams(temperature=0.9, max_new_tokens=args.tokens, seed=0),
                 "constrained": SamplingParams(temperature=0.9, max_new_tokens=args.tokens, seed=0,
                                               json_schema=schema)}
        engine.generate(batch[:1], modes["constrained"])      # grammar compile and tokenizer bridge: once
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(args.reps):
            for mode, params in modes.items():
                rate, valid, total = run(engine, batch, params, op.check)
                if mode not in best or rate > best[mode][0]:
                    best[mode] = (rate, valid, total)
        for mode, (rate, valid, total) in best.items():
            print(f"{name:<14} {mode:<12} {rate:9.1f} {valid:>3}/{total:<3}")
        print(f"{name:<14} constrained/free tokens/s ratio {best['constrained'][0] / best['free'][0]:.2f}")
        print(json.dumps({"model": name, "batch": args.batch, "tokens": args.tokens,
                          **{f"{m}_tokens_per_s": round(r[0], 1) for m, r in best.items()}}))


if __name__ == "__main__":
    main()
