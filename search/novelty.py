"""Novelty (FAISS k-nearest-neighbour distance) and reasoning-state coverage.

Novelty of a candidate is measured against the *archive*: every reasoning state of a
verified trajectory of an archived primitive is embedded once into a FAISS index. A
candidate's novelty is the mean, over its own distinct states, of the mean Euclidean
distance to their ``k`` nearest archived states (unit vectors, so distances lie in
[0, 2]). With ``k = 1`` (the default) a state the archive already holds contributes
exactly 0, so a duplicate of an archived primitive has novelty 0, and the score reads
as "how far this strategy walks from ground already covered".

Coverage of a set of states is the number of distinct cells of a fixed codebook that
the states occupy. The codebook is a random-hyperplane (SimHash) quantiser: ``bits``
hyperplanes drawn from a seeded Gaussian split the unit sphere into up to ``2**bits``
cells, and a state's cell is the sign pattern of its projections. Because the codebook
depends only on (embedding dimension, bits, seed) and never on the data, coverage
values are comparable across runs, methods and problem sets that share an embedder,
and adding states can never lower the count (monotone). Two states share a cell only
when their embeddings are very close (angle small relative to 1/bits), so the count
approximates "number of distinct reasoning states up to near-synonyms".
"""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from search.embed import Embedder

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


class Coverage:
    """A fixed SimHash codebook over an embedder's space; see the module docstring."""

    def __init__(self, embedder: Embedder, bits: int = 16, seed: int = 0) -> None:
        if not 1 <= bits <= 62:
            raise ValueError("bits must be in 1..62")
        self.embedder = embedder
        self.bits = bits
        rng = np.random.default_rng(seed)
        self.planes = rng.standard_normal((embedder.dim, bits)).astype(np.float32)
        self._weights = (1 << np.arange(bits, dtype=np.int64))

    def cells_of(self, vectors: np.ndarray) -> set[int]:
        if len(vectors) == 0:
            return set()
        signs = (vectors @ self.planes) > 0
        return set((signs.astype(np.int64) @ self._weights).tolist())

    def cells(self, states: Iterable[str]) -> set[int]:
        """The codebook cells the (distinct) states occupy."""
        uniq = list(dict.fromkeys(states))
        return self.cells_of(self.embedder.encode(uniq)) if uniq else set()

    def __call__(self, states: Iterable[str]) -> float:
        return float(len(self.cells(states)))


_COVERAGE_CACHE: dict[tuple[int, int, int], Coverage] = {}


def coverage(states: list[str], embedder: Embedder, *, bits: int = 16, seed: int = 0) -> float:
    """Reasoning-state coverage: number of distinct SimHash cells (``bits`` planes, ``seed``) occupied by ``states``.

    Compare values only when they were computed with the same embedder, ``bits`` and
    ``seed`` (and, for a fair comparison of methods, on the same problems).
    """
    key = (id(embedder), bits, seed)
    cov = _COVERAGE_CACHE.get(key)
    if cov is None or cov.embedder is not embedder:
        cov = _COVERAGE_CACHE[key] = Coverage(embedder, bits=bits, seed=seed)
    return cov(states)


def rollout_coverage(task, problems: list, completions: list[str], *, embedder: Embedder | None = None,
                     bits: int = 16, seed: int = 0) -> float:
    """Coverage of free-text completions (e.g. RL rollouts): sentences of each ``<think>`` part are the states.

    ``task`` and ``problems`` are accepted so the signature matches the trainers'
    coverage hook; free text carries its own states, so they are not needed here.
    Uses the ``hash`` embedder unless one is given.
    """
    from search.embed import HashEmbedder
    from search.render import split_reasoning

    global _ROLLOUT_EMBEDDER
    if embedder is None:
        if _ROLLOUT_EMBEDDER is None:
            _ROLLOUT_EMBEDDER = HashEmbedder()
        embedder = _ROLLOUT_EMBEDDER
    states = [s.state for text in completions for s in split_reasoning(text)]
    return coverage(states, embedder, bits=bits, seed=seed)


_ROLLOUT_EMBEDDER: Embedder | None = None
