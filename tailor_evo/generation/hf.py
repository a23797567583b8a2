"""The ``hf`` backend: our own batched sampling loop over a transformers causal LM.

Why not ``model.generate``: RL needs the log-prob of every sampled token, the search
needs stop strings and many samples per prompt, and on a CPU the padding and the
finished-but-still-computed rows of a plain ``generate`` call dominate the cost.
This loop

- tokenises every prompt once, sorts prompts by length and batches neighbours, so
  left padding stays small;
- runs the prompt (prefill) once per prompt and repeats its KV cache for the ``n``
  samples, instead of recomputing it ``n`` times;
- runs the prefill in groups of similar length and joins their caches, so no
  compute goes to padding;
- keeps the KV cache in buffers that grow in place (:mod:`.kv_cache`) instead of
  re-concatenating the whole cache at every step;
- drops finished sequences from the batch and the cache at once, and forgets
  cache columns that only they needed;
- computes logits only for the last position during prefill;
- decodes Llama-family models with a lean step over preallocated buffers
  (:mod:`.lean_decode`; ``lean_decode``), which skips the per-call machinery of
  the transformers forward and reads a prompt's cache once for all its samples;
- runs under ``torch.inference_mode`` with a ``torch.Generator`` seeded per call.

Log-probs: ``Completion.logprobs[i]`` is the model's raw ``log_softmax`` of the
logits at step ``i`` (temperature 1, no top-p) evaluated at the sampled token,
whatever temperature and top-p were used for sampling. That is exactly what a
teacher-forced forward pass of the same model over prompt + completion gives
(see :func:`teacher_forced_logprobs`), which is what the RL objective's ratios
and KL terms need.

Token ids exclude the prompt and padding and include the eos token when one was
generated. A stop string ends generation at the token that completes it: the text
is cut just before the stop string, the token ids (and log-probs) keep every token
up to and including that one, so they stay the exact sampled sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from tailor_evo.generation.base import Completion, PromptLike, SamplingParams, encode_prompt, render_prompt
from tailor_evo.generation.constraints import TokenMasker, compile_constraint, has_constraint

ChatMode = Literal["auto"] | bool


@dataclass
class _Row:
    """One sequence being sampled: which prompt and sample it belongs to, and what it has so far."""

    prompt_index: int
    sample_index: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    complete: bool = False          # a constrained text reached the end of its grammar


class HFEngine:
    """Batched, KV-cached sampling from a transformers causal LM (see the module docstring).

    ``batch_size`` counts sequences (prompts x samples); the ``n`` samples of one
    prompt share its prefill and are never split, so a batch holds at least one
    prompt's samples even when ``n`` exceeds ``batch_size``. ``num_threads`` sets
    torch's (process-wide) thread count.
    """

    supports_constraints = True     # SamplingParams.json_schema / grammar (tailor_evo.generation.constraints)

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32, num_threads: int | None = None,
                 use_chat_template: ChatMode = "auto", show_progress: bool = True,
                 lean_decode: bool | Literal["auto"] = "auto") -> None:
        from tailor_evo.models.registry import prepare_tokenizer

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model  # switched to eval mode only while generating (trainers share it)
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.batch_size = batch_size
        self.use_chat_template = use_chat_template
        self.show_progress = show_progress
        if lean_decode not in (True, False, "auto"):
            raise ValueError(f"lean_decode must be True, False or 'auto', got {lean_decode!r}")
        self.lean_decode = lean_decode
        if num_threads:
            torch.set_num_threads(num_threads)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        from tailor_evo.generation.kv_cache import cache_keyword, forward_parameters

        self._cache_kw = cache_keyword(model)
        self._has_logits_to_keep = "logits_to_keep" in forward_parameters(model)
        self._joinable = True  # may per-group prefill caches be joined? (no for sliding-window caches)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, dtype: torch.dtype | None = None, **kw: Any) -> "HFEngine":
        """Load a backbone name or model directory (see :func:`tailor_evo.models.registry.load`)."""
        from tailor_evo.models.registry import load

        model, tokenizer = load(name_or_path, dtype=dtype)
        return cls(model, tokenizer, **kw)

    # --- prompts ---------------------------------------------------------------------

    def render(self, prompt: PromptLike) -> tuple[str, bool]:
        """The prompt text and whether it came from the chat template (see :func:`render_prompt`)."""
        return render_prompt(self.tokenizer, prompt, self.use_chat_template)

    def encode(self, prompt: PromptLike) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.use_chat_template)

    # --- generation ------------------------------------------------------------------

    def _check_context(self, encoded: list[list[int]], max_new_tokens: int) -> None:
        """Refuse work that would run past the model's positions: beyond them a model silently
        produces garbage (or fails deep inside attention), which is worse than a clear error."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if not isinstance(limit, int):
            return
        longest = max(range(len(encoded)), key=lambda i: len(encoded[i]))
        need = len(encoded[longest]) + max_new_tokens
        if need > limit:
            raise ValueError(f"prompt {longest} has {len(encoded[longest])} tokens; with max_new_tokens "
                             f"{max_new_tokens} that is {need}, beyond the model's {limit} positions "
                             "(shorten the prompt or lower max_new_tokens)")

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions for each prompt; ``result[i]`` belongs to ``prompts[i]``."""
        _check_params(params)
        results: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        if not prompts:
            return []
        grammar = None
        if has_constraint(params):
            grammar = compile_constraint(params)
        encoded = [self.encode(p) for p in prompts]
        for i, ids in enumerate(encoded):
            if not ids:  # an empty prompt: start from bos when the model has one
                if self.tokenizer.bos_token_id is None:
                    raise ValueError(f"prompt {i} is empty and the tokenizer has no bos token to start from")
                ids.append(self.tokenizer.bos_token_id)
        self._check_context(encoded, params.max_new_tokens)
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        gen = torch.Generator().manual_seed(seed)
        # Longest first: neighbours have similar lengths (little padding), and a batch that
        # does not fit in memory shows up at once rather than at the end.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        per_batch = max(1, self.batch_size // params.n)
        batches = [order[i:i + per_batch] for i in range(0, len(order), per_batch)]
        progress = _progress(len(batches), self.show_progress)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for batch in batches:
                    for row in self._sample_batch([encoded[i] for i in batch], batch, params, gen, grammar):
                        results[row.prompt_index][row.sample_index] = self._finish(
                            row, encoded[row.prompt_index], params)
                    progress.update(1)
        finally:
            self.model.train(was_training)
            progress.close()
        return results  # type: ignore[return-value]

    def _use_lean(self) -> bool:
        """Decode with :class:`~tailor_evo.generation.lean_decode.LeanDecoder`? (``lean_decode``: "auto"
        where the model is supported, True to require it, False for the transformers path.)"""
        from tailor_evo.generation.lean_decode import supports

        if self.lean_decode is False:
            return False
        ok = self._joinable and supports(self.model)
        if self.lean_decode is True and not ok:
            raise ValueError(f"lean_decode=True, but {type(self.model).__name__} "
                             f"({getattr(self.model.config, 'model_type', '?')}) is not a plain Llama model; "
                             "use lean_decode='auto' or False")
        return ok

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 cache: Any, last_only: bool) -> torch.Tensor:
        kw: dict[str, Any] = {self._cache_kw: cache}
        if last_only and self._has_logits_to_keep:
            kw["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, **kw)
        return out.logits[:, -1, :].float()

    def _prefill_padded(self, prompt_ids: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One left-padded forward pass over the prompts; returns (cache, last logits, attention mask)."""
        from transformers import DynamicCache

        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for r, ids in enumerate(prompt_ids):
            input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            mask[r, width - len(ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(input_ids, mask, positions, cache, last_only=True)
        return cache, logits, mask

    def _prefill(self, prompt_ids: list[list[int]], reserve_tokens: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Prefill in groups of similar length, then join the groups' KV caches for decoding.

        Prompts arrive sorted longest first. Padding a batch of mixed lengths to the
        longest one can waste most of the prefill compute (the dominant cost on a CPU),
        so each group of similar lengths gets its own forward pass; the per-group
        caches are then left-padded to a common width and concatenated, which is the
        same cache a single padded pass would have produced for the real tokens.
        The joined cache uses :class:`GrowingLayer` (no full copy per decoding step).
        Models whose cache is not a plain per-layer key/value store (sliding-window
        layers) take the single padded pass with transformers' own cache.
        """
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        from tailor_evo.generation.kv_cache import GrowingLayer

        groups = _length_groups([len(p) for p in prompt_ids]) if self._joinable else [(0, len(prompt_ids))]
        parts = []
        for start, end in groups:
            cache, logits, mask = self._prefill_padded(prompt_ids[start:end])
            if not all(type(layer) is DynamicLayer for layer in cache.layers):
                self._joinable = False  # e.g. sliding-window layers: keep transformers' own cache
                return self._prefill_padded(prompt_ids) if len(groups) > 1 else (cache, logits, mask)
            parts.append((cache, logits, mask))
        width = parts[0][2].shape[1]

        def left_pad(t: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - t.shape[dim]
            if missing == 0:
                return t
            shape = list(t.shape)
            shape[dim] = missing
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        cache = DynamicCache(config=self.model.config)
        reserve = min(reserve_tokens, 256)
        cache.layers = [
            GrowingLayer.from_tensors(torch.cat([left_pad(c.layers[i].keys, 2) for c, _, _ in parts], dim=0),
                                      torch.cat([left_pad(c.layers[i].values, 2) for c, _, _ in parts], dim=0),
                                      reserve)
            for i in range(len(parts[0][0].layers))
        ]
        logits = torch.cat([lg for _, lg, _ in parts], dim=0)
        mask = torch.cat([left_pad(m, 1) for _, _, m in parts], dim=0)
        return cache, logits, mask

    def _sample_batch(self, prompt_ids: list[list[int]], prompt_indices: list[int], params: SamplingParams,
                      gen: torch.Generator, grammar: str | None = None) -> list[_Row]:
        n = params.n
        cache, logits, mask = self._prefill(prompt_ids, params.max_new_tokens)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        lean = None
        if self._use_lean():   # keeps one copy of each prompt's cache for its n samples
            from tailor_evo.generation.lean_decode import LeanDecoder

            lean = LeanDecoder(self.model, [layer.keys for layer in cache.layers],
                               [layer.values for layer in cache.layers], mask, params.max_new_tokens, group=n)
            cache = None
        # One prefill per prompt, then n copies of its cache for the n samples.
        if n > 1:
            if cache is not None:
                cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
            positions = positions.repeat_interleave(n, dim=0)
        rows = [_Row(pi, s) for pi in prompt_indices for s in range(n)]
        active = list(range(len(rows)))
        next_pos = positions[:, -1] + 1
        stop_check = _StopChecker(self.tokenizer, params.stop) if params.stop else None
        masker = (TokenMasker(self.tokenizer, self.eos_ids, logits.shape[-1], grammar, len(rows))
                  if grammar is not None else None)
        done: list[_Row] = []
        for step in range(params.max_new_tokens):
            logp = torch.log_softmax(logits, dim=-1)
            if masker is None:
                tokens = _sample(logits, logp, params, gen)
            else:       # sample from the allowed tokens; the reported log-probs stay the raw model's
                masked = masker.mask(logits, active)
                tokens = _sample(masked, torch.log_softmax(masked, dim=-1), params, gen)
            chosen = logp.gather(1, tokens[:, None])[:, 0]
            keep: list[int] = []
            for j, (tok, lp) in enumerate(zip(tokens.tolist(), chosen.tolist())):
                row = rows[active[j]]
                row.token_ids.append(tok)
                row.logprobs.append(lp)
                ended = tok in self.eos_ids or (stop_check is not None and stop_check.hit(row.token_ids))
                if not ended and masker is not None and masker.advance(active[j], tok):
                    ended = row.complete = True
                if ended:
                    done.append(row)
                else:
                    keep.append(j)
            if not keep or step == params.max_new_tokens - 1:
                done.extend(rows[active[j]] for j in keep)
                break
            if len(keep) < len(active):
                idx = torch.tensor(keep, dtype=torch.long)
                next_pos, tokens = next_pos[idx], tokens[idx]
                active = [active[j] for j in keep]
                if lean is not None:
                    lean.select(idx)
                else:
                    cache.batch_select_indices(idx)
                    mask = _trim_padding(cache, mask[idx])
            if lean is not None:
                logits = lean.step(tokens, next_pos)
            else:
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                logits = self._forward(tokens[:, None], mask, next_pos[:, None], cache, last_only=False)
            next_pos = next_pos + 1
        return done

    def _finish(self, row: _Row, prompt_ids: list[int], params: SamplingParams) -> Completion:
        ids = row.token_ids
        reason = "length"
        body = ids
        if ids and ids[-1] in self.eos_ids:
            reason, body = "stop", ids[:-1]
        elif row.complete:
            reason = "stop"
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        if params.stop:
            cut = min((k for k in (text.find(s) for s in params.stop) if k >= 0), default=-1)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        return Completion(text=text, token_ids=list(ids), logprobs=list(row.logprobs), finish_reason=reason,
                          prompt_token_ids=list(prompt_ids))


def _trim_padding(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Drop leading cache columns that are padding for every remaining row (after long rows finish)."""
    from tailor_evo.generation.kv_cache import GrowingLayer

    lead = int(mask.argmax(dim=1).min())  # left padding: the first 1 of each row
    if lead == 0 or not all(isinstance(layer, GrowingLayer) for layer in cache.layers):
        return mask
    for layer in cache.layers:
        layer.trim_left(lead)
    return mask[:, lead:]


def _length_groups(lengths: list[int], slack: float = 0.8, max_tokens: int = 16384) -> list[tuple[int, int]]:
    """Split lengths sorted longest first into runs whose shortest is >= ``slack`` x the longest.

    ``max_tokens`` bounds one group's padded size (memory of the prefill pass).
    """
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths) or lengths[i] < slack * lengths[start] or (i - start + 1) * lengths[start] > max_tokens:
            groups.append((start, i))
            start = i
    return groups


class _StopChecker:
    """Detects a stop string at the end of a growing token sequence by decoding only its tail.

    The tail is long enough for the longest stop string even if every character took
    four byte-level tokens, so checking each step costs a short decode, not a full one.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.tail = 4 * max((len(s) for s in self.stop), default=1) + 4

    def hit(self, token_ids: list[int]) -> bool:
        text = self.tokenizer.decode(token_ids[-self.tail:], skip_special_tokens=False)
        return any(s in text for s in self.stop)


def _sample(logits: torch.Tensor, logp: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    probs = logp.exp() if params.temperature == 1.0 else torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        # drop a token when the mass before it already reaches top_p (the first token always stays)
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) >= params.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(1, sorted_idx, sorted_p)
    # Inverse-CDF sampling: one uniform number per row instead of one per vocabulary entry
    # (torch.multinomial and the exponential race both cost a random draw per entry).
    cdf = probs.cumsum(dim=-1)
    u = torch.rand((probs.shape[0], 1), generator=gen, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _check_params(params: SamplingParams) -> None:
    if params.n < 1:
        raise ValueError("n must be >= 1")
    if params.temperature < 0:
        raise ValueError("temperature must be >= 0")
    if not 0 < params.top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if params.max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", unit="batch", leave=False, disable=not enabled or total < 2)


def teacher_forced_logprobs(model: Any, prompt_ids: Sequence[int], token_ids: Sequence[int]) -> list[float]:
    """Log-prob of each of ``token_ids`` given the prompt and the tokens before it, in one forward pass.

    The reference the sampler's log-probs must match (no padding, no cache).
    """
    ids = torch.tensor([list(prompt_ids) + list(token_ids)], dtype=torch.long)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
    return logp.gather(1, torch.tensor(list(token_ids))[:, None])[:, 0].tolist()
