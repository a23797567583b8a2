"""A KV-cache layer that grows in place instead of re-concatenating at every step.

transformers' ``DynamicLayer`` appends each new key/value with ``torch.cat``, which
copies the whole cache at every decoding step: for a batch of 64 on a CPU that copy
costs more than the model's matrix multiplications. This layer keeps a buffer with
spare room along the sequence axis, writes new entries into it and hands attention
a view of the filled part; the buffer doubles when full, so copying is amortised
O(1) per token. Used only for plain (non-sliding) cache layers.

It also holds the one answer to "under which keyword does this model's forward take a
cache", which the generation engine and the RL trainer's shared-prompt pass both ask.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


def forward_parameters(model: Any) -> Mapping[str, inspect.Parameter]:
    """The parameters of the transformers model's ``forward``; a peft wrapper only forwards
    ``**kwargs``, so the model behind it is read."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def cache_keyword(model: Any) -> str:
    """``cache`` in newer transformers, ``past_key_values`` before."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"


class GrowingLayer(DynamicLayer):
    """Drop-in ``DynamicLayer`` with a pre-allocated, doubling buffer."""

    def __init__(self, reserve: int = 64) -> None:
        super().__init__()
        self.reserve = max(1, reserve)
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    @classmethod
    def from_tensors(cls, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> "GrowingLayer":
        layer = cls(reserve)
        layer.update(keys, values)
        return layer

    def _views(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[:, :, :self._len, :]
        self.values = self._v[:, :, :self._len, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self._k is None or self._len + n > self._k.shape[-2]:
            capacity = max(self._len + n + self.reserve, 2 * (self._k.shape[-2] if self._k is not None else 0))
            shape_k = (*key_states.shape[:2], capacity, key_states.shape[-1])
            shape_v = (*value_states.shape[:2], capacity, value_states.shape[-1])
            new_k, new_v = key_states.new_empty(shape_k), value_states.new_empty(shape_v)
            if self._k is not None and self._len:
                new_k[:, :, :self._len] = self._k[:, :, :self._len]
                new_v[:, :, :self._len] = self._v[:, :, :self._len]  # type: ignore[index]
            self._k, self._v = new_k, new_v
        self._k[:, :, self._len:self._len + n] = key_states
        self._v[:, :, self._len:self._len + n] = value_states  # type: ignore[index]
        self._len += n
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._len

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None:
            self._k, self._v = self._k[indices], self._v[indices]  # type: ignore[index]
            self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._k is not None:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)  # type: ignore[union-attr]
            self._views()

    def trim_left(self, count: int) -> None:
        """Forget the first ``count`` positions (padding no remaining row attends to)."""
        if self._k is not None and 0 < count <= self._len:
            self._k, self._v = self._k[:, :, count:], self._v[:, :, count:]  # type: ignore[index]
            self._len -= count
            self._views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def crop(self, max_length: int) -> None:
        if max_length < 0:
            max_length = self._len + max_length
        self._len = max(0, min(self._len, max_length))
        if self._k is not None:
            self._views()

    def reset(self) -> None:
        self._k = self._v = None
        self._len = 0
        super().reset()
