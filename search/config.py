"""The sections of the search config: evolution, problems, novelty and the LLM settings.

They live apart from :class:`~tailor_evo.search.engine.SearchConfig` (which checks
names against the operator and selection registries) so that a variation operator can
read its settings without importing the engine, and the import graph stays acyclic.
The engine re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvolutionConfig:
    generations: int = 16           # generations of variation after generation 0 (seed libraries + random programs)
    population: int = 24            # survivors per generation (mu)
    offspring: int = 24             # children per generation (lambda)
    init_random: int = 16           # random programs added to the seed libraries at generation 0
    # seed primitive libraries of the task that make up generation 0 (tailor-evo populations list)
    seed_libraries: list[str] = field(default_factory=lambda: ["rule-based", "four-behaviour"])
    crossover_prob: float = 0.3     # chance that a child recombines two parents instead of mutating one
    max_depth: int = 10             # program tree depth limit
    max_nodes: int = 40             # program size limit (bloat control)
    subtree_depth: int = 3          # depth of subtrees grown by mutation
    random_depth: int = 5           # depth of random initial programs
    archive_parents: float = 0.3    # chance that a parent is drawn from the archive instead of the population
    immigrants: int = 2             # fresh random programs among each generation's children


@dataclass
class ProblemsConfig:
    per_eval: int = 24              # fresh training problems per generation (shared by that generation)
    probe: int = 8                  # fixed probe problems every candidate also runs (novelty, coverage)
    pool: int = 1024                # training pool the per-generation batches are drawn from
    report: int = 32                # held-out problems for the final coverage comparison
    levels: list[int] | None = None # difficulty levels (None = the task's defaults)
    max_steps: int = 400            # step limit of an executed trajectory (longer: unfinished); scales length_penalty


@dataclass
class NoveltyConfig:
    embedder: str = "hash"          # hash | minilm
    k: int = 1                      # novelty = mean distance to the k nearest archived states
    step_weight: float = 0.5        # novelty = w * step-level + (1 - w) * trajectory-level
    coverage_bits: int = 16         # SimHash bits of the coverage codebook (up to 2^bits cells of states)
    coverage_seed: int = 0          # seed of the codebook's random hyperplanes (fixed: runs stay comparable)


@dataclass
class LLMConfig:
    spec: str | None = None         # BACKEND:MODEL, e.g. openai:http://127.0.0.1:8000/v1 or hf:tiny
    temperature: float = 0.9        # sampling temperature of the llm operator's replies
    max_new_tokens: int = 384       # length limit of an llm operator reply
    render_max_new_tokens: int = 512    # length limit of a solution written by the llm renderer
    chat: bool = False              # chat messages instead of plain prompts (instruct models)
    timeout: float = 600.0          # seconds per request for HTTP backends (CPU servers are slow)
    # decode the operator's replies under the move grammar's JSON schema: auto (when the engine
    # can), on (an error when it cannot) or off
    constrained: str = "auto"
