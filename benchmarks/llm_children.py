"""Valid-child rate of the llm operator, free and constrained, side by side on the same prompts.

For each model, the operator proposes ``--children`` children of the KK seed primitives
twice from the same seed (so the same parents and prompts): once free, once decoding
under the move grammar's JSON schema (``search.reply_schema``). A child is *valid* when
its reply parses into a program that the grammar and the search's size limits accept
and it is not a copy of a parent or sibling; *well-formed* also counts such copies.
Invalid replies are listed by reason, as the search's metrics count them.

    nice .venv/bin/python -m benchmarks.llm_children                           # smollm2-135m, gemma3-270m
    nice .venv/bin/python -m benchmarks.llm_children --models tiny --children 8
"""

from __future__ import annotations

import argparse
import json
import random
import time

from tailor_evo.generation.hf import HFEngine
from tailor_evo.populations.library import load_library
from tailor_evo.search.gp import TreeOperators
from tailor_evo.search.llm_operator import LLMOperator
from tailor_evo.search.reply_schema import reply_schema
from tailor_evo.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--children", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="free,constrained")
    args = ap.parse_args()
    grammar = get_task("kk").grammar()
    ops = TreeOperators(grammar)
    pool = [(p["name"], p["description"], p["program"])
            for lib in ("kk/rule-based", "kk/four-behaviour") for p in load_library(lib)]
    rows = []
    for name in args.models.split(","):
        engine = HFEngine.from_pretrained(name, batch_size=8, show_progress=False)
        chat = bool(getattr(engine.tokenizer, "chat_template", None))
        schemas = {"free": None, "constrained": reply_schema(grammar, ops.max_depth, ops.max_nodes)}
        for mode in args.modes.split(","):
            schema = schemas[mode]
            op = LLMOperator(engine, grammar, ops.check, temperature=0.9, max_new_tokens=args.max_new_tokens,
                             chat=chat, schema=schema)
            t0 = time.perf_counter()
            op.propose(pool, args.children, random.Random(args.seed))
            seconds = time.perf_counter() - t0
            copies = op.invalid.get("copy of a parent or sibling", 0)
            row = {"model": name, "mode": mode, "children": args.children, "valid": op.valid,
                   "valid_rate": round(op.valid / args.children, 3),
                   "well_formed_rate": round((op.valid + copies) / args.children, 3),
                   "invalid": dict(op.invalid), "seconds": round(seconds, 1)}
            rows.append(row)
            print(f"{name:<14} {mode:<12} valid {op.valid:>2}/{args.children}  rate {row['valid_rate']:.3f}  "
                  f"well-formed {row['well_formed_rate']:.3f}  {seconds:6.1f} s  invalid: {dict(op.invalid)}",
                  flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
