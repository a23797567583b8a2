"""A lean decode step for Llama-family models: the same arithmetic as transformers, less machinery.

Why: for the small models this project trains on a CPU, one decoding step of a
batch of 64 is a few hundred MFLOP, well under a millisecond of matrix work per
layer, while a call of the transformers model spends several milliseconds on
things a decode step does not need (mask construction, cache bookkeeping, output
records, hooks). So the engine runs the prompt through the transformers model
(prefill is compute-bound and gains nothing), copies its KV cache once into
preallocated buffers, and then decodes with :class:`LeanDecoder`, which calls the
model's own modules (embedding, norms, projections, rotary embedding, MLP, head)
in the Llama order with one static-shape write into the cache per layer and one
scaled-dot-product attention call.

The numbers are the model's: same weights, same modules, same attention kernel;
a test checks tokens and log-probs against the transformers path. Supported:
``model_type == "llama"`` without sliding windows or tensor-parallel splits (the
``tiny`` family and SmolLM2). Everything else decodes through transformers
(:func:`supports`), as does a peft-wrapped model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

LEAN_MODEL_TYPES = ("llama",)


def supports(model: Any) -> bool:
    """True when ``model`` is a plain transformers Llama causal LM that :class:`LeanDecoder` runs exactly."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in LEAN_MODEL_TYPES:
        return False
    if getattr(config, "pretraining_tp", 1) not in (None, 1) or getattr(config, "sliding_window", None):
        return False
    return type(model).__name__ == "LlamaForCausalLM"   # not a subclass or wrapper with its own forward


class LeanDecoder:
    """Decodes one token per row per :meth:`step` from a prefilled cache.

    ``keys[i]``/``values[i]`` are layer ``i``'s prefill cache, ``(prompts,
    kv_heads, length, head_dim)``, left-padded; ``mask`` ``(prompts, length)``
    marks real tokens. Each prompt has ``group`` rows (samples), in prompt order.
    ``capacity`` is the most tokens that will be appended: the buffers are
    allocated once, so a step writes in place.

    With ``group == 1`` a row's prompt and its own tokens sit in one buffer and
    attention is one ``scaled_dot_product_attention`` call. With ``group > 1`` the
    prompt's keys and values are kept once per prompt, not once per row: the
    step's attention reads them once for the whole group (a batched matrix
    product of the group's queries), then joins them with each row's own tokens
    in one softmax. A decode step is bound by reading the cache, and in RL the
    shared prompt is most of it.

    Rows that finish leave lazily: they stay in the buffers (their outputs are
    discarded) until at most ``compact_at`` of the rows alive at the last
    compaction are still alive; then the live rows are copied into smaller
    buffers. Copying the cache at every finished row would cost more than the
    steps it saves. When few samples of each prompt are left, the shared layout
    would waste most of its slots, so the rows then get their own copies.
    """

    def __init__(self, model: Any, keys: list[torch.Tensor], values: list[torch.Tensor], mask: torch.Tensor,
                 capacity: int, group: int = 1, compact_at: float = 0.75) -> None:
        self.model = model
        self.layers = list(model.model.layers)
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.rep = self.heads // self.kv_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scaling = self.head_dim ** -0.5
        self.compact_at = compact_at
        self.remaining = capacity
        self.shared = group > 1
        prompts, length = mask.shape
        dtype = keys[0].dtype
        if self.shared:
            self.slots = group                                   # rows per prompt in the buffers
            # [prompts, kv, length, d], once per prompt (contiguous: the prefill cache hands views)
            self.kp, self.vp = [k.contiguous() for k in keys], [v.contiguous() for v in values]
            self.bias_p = self._bias(mask.bool(), length, dtype)
            own = (prompts * group, self.kv_heads, capacity, self.head_dim)   # each row's own tokens
            self.k = [k.new_empty(own) for k in keys]
            self.v = [v.new_empty(own) for v in values]
            self.bias = self._bias(torch.zeros((prompts * group, 0), dtype=torch.bool), capacity, dtype)
            self.length = 0                                      # own tokens written so far
        else:
            self.slots = 1
            self.k = [self._buffer(k, length + capacity) for k in keys]
            self.v = [self._buffer(v, length + capacity) for v in values]
            self.bias = self._bias(mask.bool(), length + capacity, dtype)
            self.length = length
        self.alive = torch.arange(self.bias.shape[0])    # buffer slot of each live row, in the caller's order
        self._compact_below = compact_at * len(self.alive)

    @staticmethod
    def _bias(valid: torch.Tensor, total: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive attention bias, 0 where ``valid`` and -inf elsewhere (also on the columns not yet
        written). An additive float mask measured about 25% faster than a boolean one in CPU attention."""
        bias = torch.full((valid.shape[0], total), float("-inf"), dtype=dtype)
        bias[:, :valid.shape[1]].masked_fill_(valid, 0.0)
        return bias

    def _buffer(self, filled: torch.Tensor, total: int) -> torch.Tensor:
        buf = filled.new_empty((filled.shape[0], self.kv_heads, total, self.head_dim))
        buf[:, :, :filled.shape[2]] = filled
        return buf

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits ``(live rows, vocab)`` (float32) after appending ``tokens`` at ``positions``
        (both ``(live rows,)``, in the order of the last :meth:`select`)."""
        if self.remaining <= 0:
            raise RuntimeError("LeanDecoder: more steps than the capacity it was built with")
        inner = self.model.model
        rows = self.bias.shape[0]
        if len(self.alive) < rows:      # finished rows still in the buffers decode a dummy token
            tokens = tokens.new_zeros(rows).index_copy_(0, self.alive, tokens)
            positions = positions.new_zeros(rows).index_copy_(0, self.alive, positions)
        at = self.length
        self.bias[:, at] = 0.0
        h = inner.embed_tokens(tokens[:, None])
        cos, sin = inner.rotary_emb(h, positions[:, None])
        cos, sin = cos[:, None], sin[:, None]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(rows, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            self.k[i][:, :, at] = k[:, :, 0]
            self.v[i][:, :, at] = v[:, :, 0]
            out = self._attend_shared(i, q, at + 1) if self.shared else F.scaled_dot_product_attention(
                q, self.k[i][:, :, :at + 1], self.v[i][:, :, :at + 1], attn_mask=self.bias[:, None, None, :at + 1],
                scale=self.scaling, enable_gqa=self.rep > 1)
            h = h + attn.o_proj(out.transpose(1, 2).reshape(rows, 1, self.heads * self.head_dim))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        self.length = at + 1
        self.remaining -= 1
        logits = self.model.lm_head(inner.norm(h))[:, 0, :].float()
        return logits if len(self.alive) == rows else logits[self.alive]

    def _attend_shared(self, i: int, q: torch.Tensor, own: int) -> torch.Tensor:
        """Attention of ``q`` ``(rows, heads, 1, d)`` over its prompt (shared by the group) and its own
        ``own`` tokens, with one softmax over both; returns ``(rows, heads, 1, d)``."""
        g, s, kv, rep, d = self.kp[i].shape[0], self.slots, self.kv_heads, self.rep, self.head_dim
        lp = self.kp[i].shape[2]
        # the group's queries side by side: (prompts, kv heads, rep x slots, d)
        qg = q.view(g, s, kv, rep, d).permute(0, 2, 3, 1, 4).reshape(g, kv, rep * s, d)
        scores_p = torch.matmul(qg, self.kp[i].transpose(-1, -2)).mul_(self.scaling)
        scores_p = scores_p.add_(self.bias_p[:, None, None, :])
        scores_p = scores_p.view(g, kv, rep, s, lp).permute(0, 3, 1, 2, 4).reshape(g * s, kv, rep, lp)
        qr = q.view(g * s, kv, rep, d)
        scores_o = torch.matmul(qr, self.k[i][:, :, :own].transpose(-1, -2)).mul_(self.scaling)
        scores_o = scores_o.add_(self.bias[:, None, None, :own])
        probs = torch.softmax(torch.cat([scores_p, scores_o], dim=-1), dim=-1)
        probs_p = probs[..., :lp].reshape(g, s, kv, rep, lp).permute(0, 2, 3, 1, 4).reshape(g, kv, rep * s, lp)
        out_p = torch.matmul(probs_p, self.vp[i]).view(g, kv, rep, s, d).permute(0, 3, 1, 2, 4)
        out_o = torch.matmul(probs[..., lp:], self.v[i][:, :, :own])
        return (out_p.reshape(g * s, kv, rep, d) + out_o).view(g * s, self.heads, 1, d)

    def select(self, index: torch.Tensor) -> None:
        """Keep only the live rows at ``index`` (positions in the current live order)."""
        self.alive = self.alive[index]
        if len(self.alive) <= self._compact_below:
            self._compact()
            # the next compaction waits until another share of the rows has finished, whatever the
            # layout, so the cache is copied O(log rows) times per batch
            self._compact_below = self.compact_at * len(self.alive)

    def _compact(self) -> None:
        """Copy the live rows into buffers without dead rows (dead prompts), leading all-padding
        columns or spare room."""
        total = self.length + self.remaining
        if not self.shared:
            valid = self.bias[self.alive, :self.length] == 0
            lead = _leading_padding(valid)
            self.k = [self._buffer(k[self.alive, :, lead:self.length], total - lead) for k in self.k]
            self.v = [self._buffer(v[self.alive, :, lead:self.length], total - lead) for v in self.v]
            self.bias = self._bias(valid[:, lead:], total - lead, self.bias.dtype)
            self.length -= lead
            self.alive = torch.arange(len(self.alive))
            return
        groups = self.alive // self.slots
        kept, new_group = torch.unique(groups, return_inverse=True)
        counts = torch.bincount(new_group, minlength=len(kept))
        slots = int(counts.max()) if len(kept) else 1
        # each live row's rank among the live rows of its prompt, in the caller's order
        rank = torch.zeros_like(self.alive)
        seen = torch.zeros(len(kept), dtype=torch.long)
        for j, grp in enumerate(new_group.tolist()):
            rank[j] = seen[grp]
            seen[grp] += 1
        new_alive = new_group * slots + rank
        if len(kept) * slots > 1.5 * len(self.alive):
            # prompts with few live samples would waste most slots: give each row its own copy instead
            self._to_rows()
            return
        source = (kept * self.slots).repeat_interleave(slots)   # empty slots copy their prompt's first slot
        source[new_alive] = self.alive
        lead = _leading_padding(self.bias_p[kept] == 0)
        self.kp = [k[kept, :, lead:] for k in self.kp]
        self.vp = [v[kept, :, lead:] for v in self.vp]
        self.bias_p = self.bias_p[kept, lead:]
        self.k = [self._buffer(k[source, :, :self.length], total) for k in self.k]
        self.v = [self._buffer(v[source, :, :self.length], total) for v in self.v]
        self.bias = self.bias[source]
        self.slots = slots
        self.alive = new_alive


    def _to_rows(self) -> None:
        """Leave the shared layout: each live row gets its prompt's keys and values in front of its
        own in one buffer (the ``group == 1`` layout), so the remaining steps pay no empty slots."""
        group = self.alive // self.slots
        valid = torch.cat([self.bias_p[group] == 0, self.bias[self.alive, :self.length] == 0], dim=1)
        lead = _leading_padding(valid)
        total = valid.shape[1] - lead + self.remaining
        self.k = [self._buffer(torch.cat([kp[group], k[self.alive, :, :self.length]], dim=2)[:, :, lead:], total)
                  for kp, k in zip(self.kp, self.k)]
        self.v = [self._buffer(torch.cat([vp[group], v[self.alive, :, :self.length]], dim=2)[:, :, lead:], total)
                  for vp, v in zip(self.vp, self.v)]
        self.bias = self._bias(valid[:, lead:], total, self.bias.dtype)
        self.length = valid.shape[1] - lead
        self.kp = self.vp = []
        self.shared, self.slots = False, 1
        self.alive = torch.arange(len(self.alive))


def _leading_padding(valid: torch.Tensor) -> int:
    """How many leading columns of ``valid`` ``(rows, columns)`` are padding in every row."""
    return int(valid.to(torch.int8).argmax(dim=1).min()) if valid.shape[0] else 0


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
