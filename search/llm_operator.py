"""The ``llm`` variation operator: an LLM proposes mutated or recombined primitives.

The model sees the move grammar and one parent (mutation) or two (recombination) and
is asked for a JSON object ``{"description": ..., "program": ...}``. Replies are parsed,
never executed: the first JSON object in the text is decoded, its program validated
against the grammar, and anything unusable is dropped with a counted reason.

When the engine can constrain its decoding (``supports_constraints``), the operator
passes the grammar's JSON schema (:mod:`search.reply_schema`) so that every reply is a
well-typed program of bounded depth: small models write almost no usable reply free
(``docs/search.md`` has the measured rates), and all of them constrained. The node-count
bound is still checked after decoding.
Prompts live in ``search/prompts/*.txt``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from tailor_evo.generation.base import Engine, SamplingParams
from tailor_evo.search.genome import canonical_json
from tailor_evo.tasks.base import Grammar


def load_prompt(name: str) -> str:
    """Text of ``search/prompts/<name>.txt``."""
    return resources.files("tailor_evo.search.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def grammar_listing(grammar: Grammar) -> str:
    lines = []
    for m in grammar.moves:
        sig = f"{m.name}({', '.join(m.args)}) -> {m.ret}"
        lines.append(f"- {sig}: {m.doc}" if m.doc else f"- {sig}")
    return "\n".join(lines)


def show_parent(description: str, program: dict) -> str:
    return json.dumps({"description": description, "program": program}, ensure_ascii=False)


def extract_json_object(text: str) -> dict | None:
    """The first JSON object that decodes from ``text`` (code fences and chatter around it are ignored)."""
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            obj, _ = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            return obj
        pos = text.find("{", pos + 1)
    return None


def parse_reply(text: str, check) -> tuple[dict | None, str]:
    """``({"description", "program"}, "ok")`` or ``(None, reason)``; ``check(program)`` returns an error or None."""
    obj = extract_json_object(text)
    if obj is None:
        return None, "no JSON object"
    desc, program = obj.get("description"), obj.get("program")
    if program is None and "op" in obj:   # a bare program is acceptable; the description is rendered later
        program, desc = obj, None
    if not isinstance(program, dict):
        return None, "missing program"
    reason = check(program)
    if reason:
        return None, reason
    if desc is not None and not isinstance(desc, str):
        return None, "description not a string"
    return {"description": (desc or "").strip(), "program": program}, "ok"


@dataclass
class LLMProposal:
    program: dict
    description: str
    parents: list[str]
    kind: str                      # "mutate" or "crossover"


@dataclass
class LLMOperator:
    """Batch-proposes children with an :class:`Engine`; counts invalid replies by reason."""

    engine: Engine
    grammar: Grammar
    check: object                  # callable(program) -> reason | None
    temperature: float = 0.9
    max_new_tokens: int = 384
    crossover_prob: float = 0.3
    chat: bool = False             # send the prompt as one user message (for instruct models)
    schema: dict | None = None     # JSON schema of a reply: constrained decoding when set
    invalid: Counter = field(default_factory=Counter)
    valid: int = 0

    @property
    def mode(self) -> str:
        return "constrained" if self.schema is not None else "free"

    def __post_init__(self) -> None:
        self.templates = {"mutate": load_prompt("mutate"), "crossover": load_prompt("crossover")}
        self.listing = grammar_listing(self.grammar)

    def refuse(self, reason: str) -> None:
        """Count a reply that was valid here but that the caller refuses after all (e.g. its program
        was already evaluated): it moves from ``valid`` to ``invalid``."""
        self.valid -= 1
        self.invalid[reason] += 1

    def take_counts(self) -> tuple[Counter, int]:
        """(invalid replies by reason, valid replies) since the last call; counting starts afresh."""
        counts = (self.invalid, self.valid)
        self.invalid, self.valid = Counter(), 0
        return counts

    def prompt(self, parents: list[tuple[str, str, dict]]) -> tuple[str, str]:
        """(kind, prompt) for one or two parents given as (id, description, program)."""
        if len(parents) >= 2:
            return "crossover", self.templates["crossover"].format(
                grammar=self.listing, root=self.grammar.root,
                parent_a=show_parent(parents[0][1], parents[0][2]), parent_b=show_parent(parents[1][1], parents[1][2]))
        return "mutate", self.templates["mutate"].format(grammar=self.listing, root=self.grammar.root,
                                                         parent=show_parent(parents[0][1], parents[0][2]))

    def propose(self, pool: list[tuple[str, str, dict]], n: int, rng: random.Random) -> list[LLMProposal]:
        """Ask for ``n`` children of parents drawn from ``pool``; return the valid, distinct ones."""
        if not pool or n <= 0:
            return []
        picks = []
        for _ in range(n):
            if len(pool) >= 2 and rng.random() < self.crossover_prob:
                picks.append(rng.sample(pool, 2))
            else:
                picks.append([rng.choice(pool)])
        prompts = [self.prompt(p) for p in picks]
        params = SamplingParams(n=1, temperature=self.temperature, max_new_tokens=self.max_new_tokens,
                                seed=rng.getrandbits(31), json_schema=self.schema)
        texts = [p for _, p in prompts]
        groups = self.engine.generate([[{"role": "user", "content": t}] for t in texts] if self.chat else texts,
                                      params)
        out: list[LLMProposal] = []
        seen = {canonical_json(p[2]) for p in pool}
        for (kind, _), parents, group in zip(prompts, picks, groups):
            text = group[0].text if group else ""
            if self.schema is not None and group and group[0].finish_reason != "stop":
                # a constrained reply cut by the token budget is an unfinished object: parsing it
                # would pick up one of its inner nodes
                self.invalid["unfinished within max_new_tokens"] += 1
                continue
            parsed, reason = parse_reply(text, self.check)
            if parsed is not None and canonical_json(parsed["program"]) in seen:
                parsed, reason = None, "copy of a parent or sibling"
            if parsed is None:
                self.invalid[reason] += 1
                continue
            seen.add(canonical_json(parsed["program"]))
            self.valid += 1
            out.append(LLMProposal(parsed["program"], parsed["description"], [p[0] for p in parents], kind))
        return out
