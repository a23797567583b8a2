"""Reasoning-state coverage: the project's headline measure, defined once.

Search, warm start, RL logging and the experiment all import this module, so that
their coverage figures are measured alike:

* **steps** (:func:`split_steps`): the sentences of the reasoning part of a free-text
  completion (inside ``<think>``; split after ``.``, ``!``, ``?``, ``;`` and at line
  breaks). Executor trajectories carry their own step states instead.
* **name abstraction** (:func:`abstract_states`): a step with the problem's own
  surface details replaced by their roles (``Task.abstract_step``), so that coverage
  counts distinct reasoning moves rather than distinct people.
* **embedders** (:func:`get_embedder`): one shared instance per name, so that each
  embedder's text cache and each codebook are built once per process.
* **the measure** (:class:`Coverage`, :func:`coverage`): the number of distinct cells
  of a fixed codebook that the states occupy. The codebook is a random-hyperplane
  (SimHash) quantiser: ``bits`` hyperplanes drawn from a seeded Gaussian split the
  unit sphere into up to ``2**bits`` cells, and a state's cell is the sign pattern of
  its projections. It depends only on (embedding dimension, bits, seed), never on the
  data, so values are comparable across runs, methods and problem sets that share an
  embedder, and adding states never lowers the count. Two states share a cell only
  when their embeddings are very close, so the count approximates "distinct reasoning
  states up to near-synonyms".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tailor_evo.errors import InputError
from tailor_evo.search.embed import Embedder, make_embedder
from tailor_evo.tasks.base import THINK_CLOSE, THINK_OPEN

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def split_steps(completion: str) -> list[str]:
    """The steps of a free-text completion: the sentences of its ``<think>`` part (all of it without tags)."""
    body = completion
    if THINK_OPEN in body:
        body = body.split(THINK_OPEN, 1)[1]
    body = body.split(THINK_CLOSE, 1)[0]
    return [s.strip() for s in _SENTENCE.split(body) if s.strip()]


def abstract_states(task: Any, question: str, completion: str) -> list[str]:
    """The steps of a completion with the problem's surface names replaced by roles."""
    return [task.abstract_step(question, s) for s in split_steps(completion)]


_EMBEDDERS: dict[str, Embedder] = {}


def get_embedder(name: str = "hash") -> Embedder:
    """One shared instance per embedder name, so its per-text cache and the codebooks are reused."""
    if name not in _EMBEDDERS:
        _EMBEDDERS[name] = make_embedder(name)
    return _EMBEDDERS[name]


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


_CODEBOOKS: dict[tuple[int, int, int], Coverage] = {}


def codebook_for(embedder: Embedder, bits: int = 16, seed: int = 0) -> Coverage:
    """The (cached) coverage codebook of an embedder."""
    key = (id(embedder), bits, seed)
    cov = _CODEBOOKS.get(key)
    if cov is None or cov.embedder is not embedder:
        cov = _CODEBOOKS[key] = Coverage(embedder, bits=bits, seed=seed)
    return cov


def coverage(states: list[str], embedder: Embedder, *, bits: int = 16, seed: int = 0) -> float:
    """Reasoning-state coverage: number of distinct SimHash cells (``bits`` planes, ``seed``) occupied by ``states``.

    Compare values only when they were computed with the same embedder, ``bits`` and
    ``seed`` (and, for a fair comparison of methods, on the same problems).
    """
    return codebook_for(embedder, bits, seed)(states)


def coverage_score(state_lists: Sequence[Sequence[str]], embedder: str = "hash") -> float:
    """Step-level coverage of a set of trajectories (their step states), with a named embedder."""
    return coverage([s for states in state_lists for s in states], get_embedder(embedder))


def abstract_coverage(task: Any, pairs: Iterable[tuple[str, str]], embedder: str = "hash") -> float:
    """Coverage of (question-or-prompt, completion) pairs measured on name-abstracted steps.

    Every method's data is text in the end, so this one measure applies equally to
    rendered primitives and to teacher completions.
    """
    return coverage_score([abstract_states(task, q, c) for q, c in pairs], embedder)


def rollout_coverage(task: Any, problems: list, completions: list[str], *, embedder: Embedder | None = None,
                     bits: int = 16, seed: int = 0) -> float:
    """Coverage of free-text completions (e.g. RL rollouts), steps split by :func:`split_steps`.

    ``task`` and ``problems`` are accepted so the signature matches the trainers'
    coverage hook; free text carries its own states. Uses the ``hash`` embedder unless
    one is given.
    """
    states = [s for text in completions for s in split_steps(text)]
    return coverage(states, embedder or get_embedder("hash"), bits=bits, seed=seed)


def state_cells(state_lists: Sequence[Sequence[str]], *, codebook: str = "simhash", embedder: str = "hash",
                n_cells: int | None = None, seed: int = 0) -> list[frozenset[int]]:
    """Map every trajectory (its list of step states) to the set of codebook cells its states fall into.

    ``simhash`` is the coverage codebook above, so a greedy selection on these cells
    maximises exactly the coverage reported. ``kmeans`` fits a FAISS k-means codebook
    on the distinct states instead (``n_cells`` defaults to 4 * sqrt(#states), capped
    at 1024): coarser cells that merge near-synonymous states.
    """
    uniq: dict[str, int] = {}
    for states in state_lists:
        for st in states:
            uniq.setdefault(st, len(uniq))
    if not uniq:
        return [frozenset() for _ in state_lists]
    texts = list(uniq)
    x = np.ascontiguousarray(get_embedder(embedder).encode(texts), dtype=np.float32)
    if codebook == "simhash":
        cov = codebook_for(get_embedder(embedder))
        cell_of = [next(iter(cov.cells_of(x[i:i + 1]))) for i in range(len(texts))]
    elif codebook == "kmeans":
        import faiss

        k = min(len(texts), n_cells or min(1024, max(2, int(4 * math.sqrt(len(texts))))))
        if k < len(texts):
            km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, verbose=False, min_points_per_centroid=1)
            km.train(x)
            cell_of = km.index.search(x, 1)[1][:, 0].tolist()
        else:
            cell_of = list(range(len(texts)))
    else:
        raise InputError(f"unknown codebook {codebook!r} (known: simhash, kmeans)", field="codebook")
    return [frozenset(cell_of[uniq[st]] for st in states) for states in state_lists]
