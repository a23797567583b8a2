"""Novelty: FAISS k-nearest-neighbour distance of a candidate's states to the archive's.

Novelty of a candidate is measured against the *archive*: every reasoning state of a
verified trajectory of an archived primitive is embedded once into a FAISS index. A
candidate's novelty is the mean, over its own distinct states, of the mean Euclidean
distance to their ``k`` nearest archived states (unit vectors, so distances lie in
[0, 2]). With ``k = 1`` (the default) a state the archive already holds contributes
exactly 0, so a duplicate of an archived primitive has novelty 0, and the score reads
as "how far this strategy walks from ground already covered".

Coverage (the distinct-cells measure) lives in :mod:`search.coverage`.
"""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from tailor_evo.search.embed import Embedder

EMPTY_ARCHIVE_NOVELTY = 2.0  # the largest distance between unit vectors


class StateIndex:
    """A growing FAISS index of distinct state texts (exact L2 by default).

    ``approximate=True`` switches to an HNSW graph, which answers kNN queries in
    roughly logarithmic time and is what very large archives (1e6 states) need; the
    benchmark compares both.
    """

    def __init__(self, embedder: Embedder, approximate: bool = False, hnsw_m: int = 32) -> None:
        self.embedder = embedder
        self.index = faiss.IndexHNSWFlat(embedder.dim, hnsw_m) if approximate else faiss.IndexFlatL2(embedder.dim)
        self.texts: list[str] = []
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, texts: Iterable[str]) -> int:
        """Add the texts not yet indexed (in first-seen order); return how many were new."""
        new = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if new:
            self.index.add(self.embedder.encode(new))
            self.texts.extend(new)
            self._seen.update(new)
        return len(new)

    def knn_distance(self, vectors: np.ndarray, k: int = 1) -> np.ndarray:
        """Mean distance of each query vector to its ``k`` nearest indexed vectors."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        if len(self) == 0:
            return np.full(len(vectors), EMPTY_ARCHIVE_NOVELTY, dtype=np.float32)
        k = max(1, min(k, len(self)))
        dist2, _ = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return np.sqrt(np.clip(dist2, 0.0, None)).mean(axis=1)

    def novelty(self, texts: Iterable[str], k: int = 1) -> float:
        """Novelty of a set of state texts (their distinct members) against the index; 0 for no states."""
        uniq = list(dict.fromkeys(texts))
        if not uniq:
            return 0.0
        return float(self.knn_distance(self.embedder.encode(uniq), k).mean())
