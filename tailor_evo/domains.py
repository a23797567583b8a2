"""The domain of every numeric setting, checked wherever a config is read.

Why one table: a setting's meaning (a learning rate, a count of steps, a probability) is
the same in every config that has it, so its domain is written once, by name. A name whose
meaning depends on its config is written ``Class.name``. :func:`check_domains` runs in
``tailor_evo.config.from_dict``, so a YAML file, a ``--set`` and a saved run config are all
checked before anything runs, and the error names the field. A test walks every config
dataclass and fails on a numeric field this table does not know, so a new setting cannot
arrive without its domain.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Domain:
    """An interval; ``low_open``/``high_open`` exclude the bound. ``None`` is always allowed where
    the field's type allows it (it means "the default behaviour")."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def describe(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(x for x in (low, high) if x) or "a finite number"


ANY = Domain()
NONNEG = Domain(low=0)
POSITIVE = Domain(low=0, low_open=True)
AT_LEAST_1 = Domain(low=1)
PROBABILITY = Domain(low=0, high=1)
SHARE = Domain(low=0, high=1, high_open=True)          # a fraction that must leave something
OPEN_UNIT = Domain(low=0, high=1, low_open=True)      # a fraction that must take something

DOMAINS: dict[str, Domain] = {
    # seeds and counts
    "seed": NONNEG, "seeds": NONNEG, "coverage_seed": NONNEG,
    "workers": AT_LEAST_1, "threads": AT_LEAST_1, "samples": NONNEG,
    "generations": NONNEG, "population": AT_LEAST_1, "offspring": NONNEG, "init_random": NONNEG,
    "immigrants": NONNEG, "max_depth": AT_LEAST_1, "max_nodes": AT_LEAST_1, "subtree_depth": AT_LEAST_1,
    "random_depth": AT_LEAST_1, "per_eval": AT_LEAST_1, "probe": NONNEG, "pool": AT_LEAST_1, "report": NONNEG,
    "ProblemsConfig.max_steps": AT_LEAST_1, "SFTConfig.max_steps": NONNEG,
    "k": AT_LEAST_1, "coverage_bits": AT_LEAST_1, "min_problems": NONNEG, "levels": AT_LEAST_1,
    "size": AT_LEAST_1, "n_problems": AT_LEAST_1, "max_primitives": AT_LEAST_1,
    "teacher_samples": AT_LEAST_1, "teacher_rounds": AT_LEAST_1,
    "max_new_tokens": AT_LEAST_1, "render_max_new_tokens": AT_LEAST_1, "teacher_max_new_tokens": AT_LEAST_1,
    "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "grad_accum": AT_LEAST_1, "max_length": AT_LEAST_1,
    "bucket_tokens": AT_LEAST_1, "log_every": AT_LEAST_1, "save_every": NONNEG, "keep_checkpoints": AT_LEAST_1,
    "every": NONNEG, "n": NONNEG, "eval_every": NONNEG, "eval_n": NONNEG,
    "n_per_level": AT_LEAST_1, "n_samples": NONNEG,
    "RLConfig.steps": NONNEG, "PretrainConfig.steps": AT_LEAST_1, "prompts_per_step": AT_LEAST_1,
    "group_size": AT_LEAST_1, "mu": AT_LEAST_1, "micro_batch": AT_LEAST_1, "logprob_chunk": NONNEG,
    "pool_size": AT_LEAST_1, "gen_batch_size": AT_LEAST_1, "max_refill_rounds": NONNEG,
    "rollout_log_every": NONNEG, "warmup_steps": NONNEG, "seq_len": AT_LEAST_1, "overlong_buffer": NONNEG,
    "r": AT_LEAST_1, "alpha": AT_LEAST_1,
    "hidden_size": AT_LEAST_1, "layers": AT_LEAST_1, "heads": AT_LEAST_1, "vocab_size": AT_LEAST_1,
    "max_positions": AT_LEAST_1,
    # rates, weights and probabilities
    "lr": POSITIVE, "weight_decay": NONNEG, "grad_clip": NONNEG, "betas": SHARE,
    "warmup_ratio": SHARE, "min_lr_ratio": PROBABILITY, "dropout": SHARE,
    "temperature": NONNEG, "teacher_temperature": NONNEG, "top_p": OPEN_UNIT,
    "beta": NONNEG, "eps_low": SHARE, "eps_high": NONNEG, "vllm_gpu_memory": OPEN_UNIT,
    "crossover_prob": PROBABILITY, "archive_parents": PROBABILITY, "step_weight": PROBABILITY,
    "length_penalty": NONNEG, "unfinished_penalty": NONNEG, "overlong_penalty": NONNEG, "quality_floor": ANY,
    "novelty_min": NONNEG,
    "oversample": POSITIVE, "timeout": POSITIVE, "initializer_range": POSITIVE,
    "procedural": PROBABILITY, "prompt_form": PROBABILITY, "role_drills": PROBABILITY,
    "target_accuracy": PROBABILITY, "target_reward": ANY,
}


def domain_of(owner: type, name: str) -> Domain | None:
    """The domain of field ``name`` of dataclass ``owner`` (its class, then its bases, then the name)."""
    for cls in owner.__mro__:
        if f"{cls.__name__}.{name}" in DOMAINS:
            return DOMAINS[f"{cls.__name__}.{name}"]
    return DOMAINS.get(name)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def violations(cfg: Any) -> list[tuple[str, str]]:
    """(field, message) for every numeric field of ``cfg`` (not its nested configs) out of its domain."""
    out = []
    for f in dataclasses.fields(cfg):
        dom = domain_of(type(cfg), f.name)
        if dom is None:
            continue
        for value in _numbers(getattr(cfg, f.name)):
            if not dom.holds(value):
                out.append((f.name, f"must be {dom.describe()}, got {value!r}"))
                break
    return out
