"""``tailor-evo generate``: completions for a prompt or a JSONL file of prompts, written as JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tailor_evo.commands.common import COUNT, OutputFile
from tailor_evo.errors import InputError


def read_prompts(path: str) -> tuple[list[dict], list[Any]]:
    """Records and their prompts: each record needs ``prompt`` (a string) or ``messages`` (chat messages)."""
    from tailor_evo.io import check_messages, iter_jsonl

    records, prompts = [], []
    for line, rec in iter_jsonl(path):
        if "messages" in rec:
            prompts.append(check_messages(rec["messages"], file=path, line=line, field="messages"))
        elif "prompt" in rec:
            if not isinstance(rec["prompt"], str) or not rec["prompt"]:
                raise InputError("must be a non-empty string", file=path, line=line, field="prompt")
            prompts.append(rec["prompt"])
        else:
            raise InputError("missing field (need 'prompt' or 'messages')", file=path, line=line, field="prompt")
        records.append(rec)
    if not records:
        raise InputError("no prompts in file", file=path)
    return records, prompts


@click.command()
@click.option("--model", "model", required=True,
              help="Backbone name or model directory (hf), or an engine spec: hf:NAME, openai:URL#MODEL, vllm:NAME.")
@click.option("--prompt", "prompt", default=None, help="One prompt (text).")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help="JSONL with a 'prompt' or 'messages' field per line.")
@click.option("-o", "--output", type=OutputFile((".jsonl",)), default=None,
              help="Output .jsonl file or - for standard output (required with --input; without it --prompt "
                   "prints the text).")
@click.option("--chat", is_flag=True, help="Send a --prompt as a user chat message (chat template).")
@click.option("--n", "n", type=COUNT, default=1, show_default=True, help="Samples per prompt.")
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True, help="0 = greedy.")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--max-new-tokens", type=COUNT, default=256, show_default=True)
@click.option("--stop", multiple=True, help="Stop string (repeatable).")
@click.option("--seed", type=int, default=None, help="Sampling seed (default: the global --seed, else 0).")
@click.option("--batch-size", type=COUNT, default=32, show_default=True, help="hf backend batch size.")
@click.option("--threads", type=COUNT, default=None, help="CPU threads for the hf backend.")
@click.option("--json-schema", "schema_path", type=click.Path(dir_okay=False), default=None,
              help="Constrain every completion to this JSON schema (a JSON file).")
@click.option("--grammar", "grammar_path", type=click.Path(dir_okay=False), default=None,
              help="Constrain every completion to this Lark grammar (a text file).")
@click.pass_context
def generate(ctx: click.Context, model: str, prompt: str | None, input_path: str | None, output: str | None,
             chat: bool, n: int, temperature: float, top_p: float, max_new_tokens: int, stop: tuple[str, ...],
             seed: int | None, batch_size: int, threads: int | None, schema_path: str | None,
             grammar_path: str | None) -> None:
    """Generate completions from MODEL for --prompt or every line of --input."""
    from tailor_evo.generation import make_engine
    from tailor_evo.generation.base import SamplingParams
    from tailor_evo.io import write_jsonl_atomic

    if (prompt is None) == (input_path is None):
        raise InputError("give exactly one of --prompt and --input", field="--prompt")
    if input_path is not None and output is None:
        raise InputError("--input needs -o/--output", field="--output")
    if input_path is not None:
        records, prompts = read_prompts(input_path)
    else:
        assert prompt is not None
        p: Any = [{"role": "user", "content": prompt}] if chat else prompt
        records, prompts = [{"messages": p} if chat else {"prompt": prompt}], [p]
    if seed is None:
        seed = (ctx.find_root().obj or {}).get("seed") or 0
    kind = model.partition(":")[0]
    kw: dict[str, Any] = {"batch_size": batch_size, "num_threads": threads} if kind not in ("openai", "vllm") else {}
    engine = make_engine(model, **kw)
    from tailor_evo.io import read_json, read_text

    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop=list(stop), seed=seed,
                            json_schema=read_json(schema_path) if schema_path else None,
                            grammar=read_text(grammar_path, "grammar file") if grammar_path else None)
    if params.json_schema is not None or params.grammar is not None:
        from tailor_evo.generation.constraints import ConstraintError, compile_constraint

        if not getattr(engine, "supports_constraints", False):
            raise InputError(f"the engine {model!r} cannot constrain its decoding", field="--json-schema")
        try:
            compile_constraint(params)
        except ConstraintError as exc:
            raise InputError(str(exc), file=schema_path or grammar_path) from None
    results = engine.generate(prompts, params)
    out_records = []
    for rec, comps in zip(records, results):
        out_records.append({**rec, "completions": [
            {"text": c.text, "finish_reason": c.finish_reason, "token_ids": c.token_ids, "logprobs": c.logprobs}
            for c in comps]})
    if output is None:
        for c in results[0]:
            click.echo(c.text)
        return
    count = write_jsonl_atomic(Path(output), out_records)
    click.echo(f"wrote {count} records ({count * n} completions) to {output}", err=True)
