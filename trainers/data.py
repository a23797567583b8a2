"""What the trainers feed on: SFT examples (tokenised, completion-only labels), batches,
a deterministic data order, and held-out problems for the periodic evaluation.

Prompt and completion are tokenised *separately* and concatenated, because that is
what the model sees at generation time (prompt tokens, then sampled tokens); joint
tokenisation could merge tokens across the boundary and teach a split the model
never produces. The completion gets the end-of-sequence token appended so that the
model learns to stop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tailor_evo.errors import InputError
from tailor_evo.generation.base import render_prompt as render_for_engine
from tailor_evo.io import check_messages, read_records

IGNORE_INDEX = -100


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]           # IGNORE_INDEX on prompt positions
    record_id: str


@dataclass
class SFTData:
    examples: list[SFTExample]
    skipped: Counter = field(default_factory=Counter)   # reason -> count
    total: int = 0

    def summary(self) -> str:
        skipped = ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{len(self.examples)} of {self.total} records used (skipped: {skipped})"


def render_prompt(record: dict, tokenizer: Any, *, chat: bool, source: str, line: int) -> tuple[str, bool]:
    """The prompt text as evaluation and RL will show it, and whether it carries the template's special tokens.

    ``chat`` is the run's own setting. With it, the chat form (the record's ``messages``, or a
    prompt given as messages) is rendered by the generation engines' rule: through the
    tokenizer's chat template, or joined by blank lines where there is none. Without it, or
    for a record that has only a string prompt (as in Hugging Face's prompt-completion
    convention), the plain ``prompt`` string is used as written. Training on one layout and
    evaluating on the other would test the model on prompts it never saw.
    """
    messages, prompt = record.get("messages"), record["prompt"]
    # both fields are checked whichever one is used, so a wrongly typed record is named, not skipped over
    if messages is not None:
        check_messages(messages, file=source, line=line, field="messages")
    if isinstance(prompt, list):
        check_messages(prompt, file=source, line=line, field="prompt")
    elif not isinstance(prompt, str):
        raise InputError(f"expected a string or a list of chat messages, got {type(prompt).__name__}", file=source,
                         line=line, field="prompt")
    chat_form = messages if messages is not None else prompt if isinstance(prompt, list) else None
    if chat and chat_form is not None:
        return render_for_engine(tokenizer, chat_form, use_chat_template=True)
    if isinstance(prompt, list):
        raise InputError("is a list of chat messages, but chat is false; set chat=true to train on the chat "
                         "form, as evaluation and RL with chat=true will prompt", file=source, line=line,
                         field="prompt")
    if not prompt.strip():
        raise InputError("expected a non-empty string", file=source, line=line, field="prompt")
    return prompt, False


def encode_example(prompt: str, completion: str, tokenizer: Any, *, prompt_has_specials: bool,
                   record_id: str = "") -> SFTExample:
    """Token ids of prompt + completion + eos, with labels only on completion and eos."""
    prompt_ids = tokenizer(prompt, add_special_tokens=not prompt_has_specials)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    return SFTExample(input_ids=list(prompt_ids) + list(completion_ids),
                      labels=[IGNORE_INDEX] * len(prompt_ids) + list(completion_ids), record_id=record_id)


def load_sft_data(path: str | Path, tokenizer: Any, max_length: int, *, chat: bool = False) -> SFTData:
    """Read JSONL/Parquet records with ``prompt`` and ``completion`` and tokenise them.

    ``chat`` picks the prompt layout as :func:`render_prompt` says.

    Records that do not fit in ``max_length`` tokens, or that are marked ``correct: false``,
    are skipped and counted (never truncated: a cut-off completion would teach the model
    to stop mid-answer, or never to answer).
    """
    source = str(path)
    records = read_records(path, required=("prompt", "completion"))
    if not records:
        raise InputError("no records", file=source)
    data = SFTData(examples=[], total=len(records))
    for line, rec in enumerate(records, start=1):
        completion = rec["completion"]
        if not isinstance(completion, str) or not completion.strip():
            raise InputError("expected a non-empty string", file=source, line=line, field="completion")
        if rec.get("correct") is not None and not isinstance(rec["correct"], bool):
            raise InputError(f"expected true or false, got {type(rec['correct']).__name__}", file=source, line=line,
                             field="correct")
        if rec.get("correct") is False:
            data.skipped["marked incorrect"] += 1
            continue
        prompt, specials = render_prompt(rec, tokenizer, chat=chat, source=source, line=line)
        ex = encode_example(prompt, completion, tokenizer, prompt_has_specials=specials,
                            record_id=str(rec.get("id", line)))
        if len(ex.input_ids) > max_length:
            data.skipped[f"longer than max_length={max_length}"] += 1
            continue
        data.examples.append(ex)
    if not data.examples:
        raise InputError(f"no usable records: {data.summary()}", file=source)
    return data


def collate(examples: list[SFTExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked out of attention and labels."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        attn[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": attn}


def collate_packed(examples: list[SFTExample], pad_id: int, row_len: int) -> dict[str, torch.Tensor]:
    """Lay whole examples end to end into as few rows of at most ``row_len`` tokens as first-fit allows.

    ``position_ids`` restart at 0 for every example. With no attention mask,
    transformers reads those restarts as sequence boundaries and attends only
    within each example (a block-diagonal causal mask), so a packed batch gives
    the same logits, loss and gradients as the padded one, without computing the
    padding. Each example's first label is ignored (it is a prompt token anyway),
    so no position predicts across a boundary. The tail of a row is padding whose
    positions continue the last example's: it is attended by nothing before it.
    """
    rows: list[list[SFTExample]] = []
    fill: list[int] = []
    for e in sorted(examples, key=lambda e: -len(e.input_ids)):
        n = len(e.input_ids)
        if n > row_len:
            raise ValueError(f"example of {n} tokens does not fit a packed row of {row_len}")
        for i, used in enumerate(fill):
            if used + n <= row_len:
                rows[i].append(e)
                fill[i] += n
                break
        else:
            rows.append([e])
            fill.append(n)
    width = max(fill)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e.input_ids)
            ids[r, at: at + n] = torch.tensor(e.input_ids)
            labels[r, at: at + n] = torch.tensor(e.labels)
            labels[r, at] = IGNORE_INDEX
            pos[r, at: at + n] = torch.arange(n)
            at += n
        if at < width:
            start = pos[r, at - 1] + 1
            pos[r, at:] = torch.arange(start, start + width - at)
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


def collate_buckets(examples: list[SFTExample], pad_id: int, max_tokens: int) -> list[dict[str, torch.Tensor]]:
    """The examples sorted by length and cut into right-padded micro-batches of at most ``max_tokens``
    (rows x width), with no attention mask.

    Right padding under a causal mask needs no mask at all: every real token only attends
    to tokens before it, which are real, and padding labels are ignored. So attention
    takes the plain causal path, with no per-batch mask to build and no quadratic work
    across example boundaries (which packing's block-diagonal mask still pays on CPU),
    and sorting keeps the padding small. The caller sums the micro-batch losses with one
    normaliser, so the step's loss and gradients are those of the whole batch.
    """
    ordered = sorted(examples, key=lambda e: -len(e.input_ids))
    groups: list[list[SFTExample]] = []
    for e in ordered:
        if groups and (len(groups[-1]) + 1) * len(groups[-1][0].input_ids) <= max_tokens:
            groups[-1].append(e)
        else:
            groups.append([e])
    out = []
    for group in groups:
        batch = collate(group, pad_id)
        del batch["attention_mask"]
        out.append(batch)
    return out


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A permutation of ``range(n)`` that depends only on (seed, epoch): resumable without saving it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def heldout_problems(task: Any, n: int, seed: int, levels: list[int] | None,
                     exclude: list | None = None) -> list:
    """``n`` evaluation problems from the task's eval stream, minus any that appear in ``exclude``."""
    from tailor_evo.tasks import streams
    from tailor_evo.tasks.base import question_key

    problems = streams.flat(task, seed, "eval", n, levels)
    if exclude:
        seen = {question_key(p) for p in exclude}
        problems = [p for p in problems if question_key(p) not in seen]
    return problems


def greedy_accuracy(engine: Any, task: Any, problems: list, max_new_tokens: int,
                    chat: bool = False) -> dict[str, float]:
    """Greedy accuracy (overall and per difficulty level), format rate and the share truncated at
    ``max_new_tokens`` through the engine + verifier."""
    from tailor_evo.generation.base import SamplingParams
    from tailor_evo.trainers.rollout import is_truncated, rollout

    if not problems:
        return {}
    groups = rollout(engine, task, problems, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
                     chat=chat)
    per_level: dict[int, list[bool]] = {}
    correct = fmt = length = cut = 0
    for group in groups:
        r = group[0]
        cut += int(is_truncated(r.completion))
        correct += int(r.verdict.correct)
        fmt += int(r.verdict.format_ok)
        length += len(r.completion.token_ids)
        per_level.setdefault(r.problem.difficulty, []).append(r.verdict.correct)
    out = {"eval_accuracy": correct / len(groups), "eval_format_ok": fmt / len(groups),
           "eval_response_length": length / len(groups), "eval_truncated": cut / len(groups),
           "eval_n": float(len(groups))}
    for level, vals in sorted(per_level.items()):
        out[f"eval_accuracy_{level}"] = sum(vals) / len(vals)
    return out
