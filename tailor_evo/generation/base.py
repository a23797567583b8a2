"""One protocol for every text-generation backend (hf, openai, vllm).

Everything downstream (the search's llm operator and renderer, RL rollouts,
evaluation) talks to an :class:`Engine`, so backends can be swapped from config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union

Messages = list[dict]            # chat messages [{"role": ..., "content": ...}]
PromptLike = Union[str, Messages]


@dataclass
class SamplingParams:
    n: int = 1                   # completions per prompt
    temperature: float = 1.0     # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # constrained decoding (at most one): a JSON schema, or a Lark grammar (llguidance / vLLM
    # "guidance" syntax); every completion is then text the schema or grammar admits
    json_schema: dict | None = None
    grammar: str | None = None


@dataclass
class Completion:
    text: str
    token_ids: list[int]                     # sampled tokens (after any stop-string truncation)
    logprobs: list[float] | None = None      # log-prob of each sampled token under the model's raw distribution
                                             # (temperature 1, no top-p), as a teacher-forced pass gives it
    finish_reason: str = "length"            # "stop" (eos or stop string) or "length"
    prompt_token_ids: list[int] | None = None


class Engine(Protocol):
    """Generate ``params.n`` completions for each prompt; result[i] belongs to prompts[i]."""

    def generate(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]: ...
