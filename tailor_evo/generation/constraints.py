"""Constrained decoding for the ``hf`` engine: only tokens that keep the text inside a grammar.

``SamplingParams.json_schema`` (a JSON schema) or ``SamplingParams.grammar`` (a Lark
grammar, the format llguidance and vLLM's ``guidance`` backend read) restricts every
sampled token to those that can still complete a text the grammar admits; once the
text is complete, only the end of sequence is allowed. So even an untrained model
writes only well-formed replies.

The library is llguidance (the structured-output engine behind vLLM's ``guidance``
backend): a 3 MB wheel with no dependencies, where xgrammar pulls in triton beside our
CPU torch build; its mask is computed in Rust per token (``benchmarks/constrained.py``
measures the overhead). It is an optional extra: ``pip install 'tailor-evo[constrained]'``.

Log-probs stay those of the model's raw distribution (see :mod:`.hf`); sampling uses
the masked one.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from tailor_evo.generation.base import SamplingParams


class ConstraintError(ValueError):
    """The grammar or schema cannot be compiled; the message says why."""


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf  # noqa: F401 - the tokenizer bridge (llguidance.torch is not needed: 4 s to import)
    except ImportError:
        raise ConstraintError("constrained decoding needs the llguidance package: "
                              "pip install 'tailor-evo[constrained]'") from None
    return llguidance


def has_constraint(params: SamplingParams) -> bool:
    return params.json_schema is not None or params.grammar is not None


def compile_constraint(params: SamplingParams) -> str:
    """The llguidance grammar of ``params``' schema or Lark grammar; ConstraintError when invalid."""
    if params.json_schema is not None and params.grammar is not None:
        raise ConstraintError("give json_schema or grammar, not both")
    ll = _llguidance()
    try:
        if params.json_schema is not None:
            schema = params.json_schema if isinstance(params.json_schema, dict) else json.loads(params.json_schema)
            grammar = ll.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        else:
            grammar = ll.LLMatcher.grammar_from_lark(params.grammar)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ConstraintError(f"invalid {'json_schema' if params.json_schema is not None else 'grammar'}: "
                              f"{str(exc).splitlines()[0][:300]}") from None
    ok, message = _validate(ll, grammar)
    if not ok:
        raise ConstraintError(f"invalid {'json_schema' if params.json_schema is not None else 'grammar'}: "
                              f"{message[:300]}")
    return grammar


def _validate(ll: Any, grammar: str) -> tuple[bool, str]:
    try:
        result = ll.LLMatcher.validate_grammar(grammar)
    except Exception as exc:  # noqa: BLE001 - the library reports errors as exceptions or as text
        return False, str(exc).splitlines()[0]
    return (not result, str(result)) if isinstance(result, str) else (True, "")


class TokenMasker:
    """Per-row matchers of one generate call and the logits mask they allow."""

    def __init__(self, tokenizer: Any, eos_ids: set[int], vocab_size: int, grammar: str, rows: int) -> None:
        ll = _llguidance()
        # the bridge costs ~1 s for a large vocabulary: made once, kept on the tokenizer itself
        bridges = tokenizer.__dict__.setdefault("_llguidance_bridges", {})
        key = (vocab_size, tuple(sorted(eos_ids)))
        if key not in bridges:
            bridges[key] = ll.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos_ids) or None)
        self.lltok = bridges[key]
        first = ll.LLMatcher(self.lltok, grammar, log_level=1)
        if first.is_error():
            raise ConstraintError(f"grammar does not start: {first.get_error()[:300]}")
        self.matchers = [first] + [first.deep_copy() for _ in range(rows - 1)]
        self.vocab_size = vocab_size
        self._shifts = torch.arange(32, dtype=torch.int32)
        # one bit per token of the tokenizer, 32 to an int32 word, one row per sequence
        self._bitmask = torch.zeros((rows, (self.lltok.vocab_size + 31) // 32), dtype=torch.int32)

    def mask(self, logits: torch.Tensor, active: list[int]) -> torch.Tensor:
        """A copy of ``logits`` (one row per active sequence) with forbidden tokens at -inf."""
        bitmask = self._bitmask[: len(active)]
        width = bitmask.shape[1] * bitmask.element_size()
        for j, row in enumerate(active):
            self.matchers[row].unsafe_compute_mask_ptr(bitmask[j].data_ptr(), width)
        # unpack the 32-bit words (bit i of word w allows token 32 w + i); plain tensor ops, so
        # nothing is compiled at the first call
        allowed = ((bitmask.unsqueeze(-1) >> self._shifts) & 1).bool().flatten(1)
        width = min(logits.shape[1], allowed.shape[1])
        keep = torch.zeros(logits.shape, dtype=torch.bool)
        keep[:, :width] = allowed[:, :width]   # embedding rows beyond the tokenizer: never sampled
        return logits.masked_fill(~keep, float("-inf"))

    def advance(self, row: int, token: int) -> bool:
        """Consume ``token`` for ``row``; True when the row's text is complete (or broken)."""
        matcher = self.matchers[row]
        if not matcher.consume_token(token):
            return True
        return matcher.is_stopped()
