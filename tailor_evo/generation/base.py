"""One protocol for every text-generation backend (hf, openai, vllm).

Everything downstream (the search's llm operator and renderer, RL rollouts,
evaluation) talks to an :class:`Engine`, so backends can be swapped from config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Union

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


def render_prompt(tokenizer: Any, prompt: PromptLike, use_chat_template: bool | str = "auto") -> tuple[str, bool]:
    """The prompt text, and whether it came from the chat template (then it carries its own bos).

    One rule for every in-process engine, so that ``hf`` and ``vllm`` feed a model the same
    tokens: a string goes in as it is unless ``use_chat_template`` is True; messages go
    through the tokenizer's chat template, or are joined by blank lines when there is none
    (or ``use_chat_template`` is False).
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if isinstance(prompt, str):
        if use_chat_template is True and has_template:
            prompt = [{"role": "user", "content": prompt}]
        else:
            return prompt, False
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m and "role" in m
                                                for m in prompt):
        raise ValueError("a prompt must be a string or a list of {'role', 'content'} messages")
    if use_chat_template is False or not has_template:
        return "\n\n".join(m["content"] for m in prompt), False
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True), True


def encode_prompt(tokenizer: Any, prompt: PromptLike, use_chat_template: bool | str = "auto") -> list[int]:
    """The prompt's token ids under :func:`render_prompt` (special tokens only when not templated)."""
    text, templated = render_prompt(tokenizer, prompt, use_chat_template)
    return list(tokenizer(text, add_special_tokens=not templated)["input_ids"])
