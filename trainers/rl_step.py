"""One RL step: roll out, score, build the batch, take the baseline log-probs, optimise.

:func:`train_step` runs the numbered stages of :mod:`trainers.rl` on a
:class:`StepContext` built once per run, and returns the step's metrics row. The
objective is reached only through the selectors of :mod:`trainers.losses`
(``rl.advantage`` and ``rl.loss``), so a new loss or advantage estimator needs no edit here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from tailor_evo.trainers.distributed import global_normaliser, global_sum
from tailor_evo.trainers.loop import Trainable, optimizer_step
from tailor_evo.trainers.losses import ADVANTAGES, LOSSES
from tailor_evo.trainers.rewards import RewardSpec, penalise_overlong, score_round
from tailor_evo.trainers.rl_batch import RolloutBatch, baseline_logprobs, micro_batches, scored_batch, token_outputs
from tailor_evo.trainers.rl_config import RLConfig
from tailor_evo.trainers.rl_data import ProblemPool
from tailor_evo.trainers.rl_report import step_record
from tailor_evo.trainers.sampling import PromptStream, ScoredGroup, StepSample, Truncation, sample_step


@dataclass
class StepResult:
    """What the optimisation of one step measured (sums turned into per-token means)."""

    loss: float = 0.0
    kl: float = 0.0
    clip_fraction: float = 0.0
    entropy: float = 0.0
    grad_norm: float = 0.0
    tokens: float = 0.0                # completion tokens in the loss (the weight of the means above)


@dataclass
class StepContext:
    """What every step of one run uses, built once by :func:`trainers.rl.train_rl`."""

    cfg: RLConfig
    task: Any
    trainable: Trainable               # the model as prepared by accelerate (what the optimiser trains)
    policy: torch.nn.Module            # the bare model behind it (what the engine samples)
    ref_model: torch.nn.Module | None
    engine: Any
    accelerator: Any
    stream: PromptStream
    pad_id: int
    use_engine_lp: bool
    reward: RewardSpec
    pool: ProblemPool


@dataclass
class _Targets:
    """What a micro-batch's log-probs are compared with, for the whole batch (rows cut per micro-batch)."""

    advantages: torch.Tensor
    ref_logp: torch.Tensor | None
    old_logp: torch.Tensor | None
    normaliser: float


@dataclass
class _Sums:
    loss: float = 0.0
    kl: float = 0.0
    clipped: float = 0.0
    entropy: float = 0.0


def optimise(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, batch: RolloutBatch,
             advantages: torch.Tensor, ref_logp: torch.Tensor | None, old_logp: torch.Tensor | None,
             cfg: RLConfig, accelerator: Any = None) -> StepResult:
    """``cfg.mu`` AdamW steps on one rollout batch, each accumulating over micro-batches so that the
    summed micro-batch losses equal the loss of the whole batch."""
    total_tokens = float(batch.completion_mask.sum())
    trained_rows = float((batch.completion_mask.sum(dim=1) > 0).sum())
    if global_sum(accelerator, total_tokens) == 0:   # every row of every process left out of the loss: no update
        return StepResult()
    # over several processes, normalised by the whole step's tokens (rows), so DDP's gradient mean is exact
    targets = _Targets(advantages, ref_logp, old_logp,
                       global_normaliser(accelerator, total_tokens if cfg.normalisation == "token" else trained_rows))
    # DDP expects one forward per backward, so the two-part shared-prompt pass is single-process only;
    # gradient checkpointing drops the prompt's cache in training mode, so it needs the plain pass too
    distributed = accelerator is not None and accelerator.num_processes > 1
    share_over = cfg.group_size if cfg.share_prompts and not distributed and not cfg.gradient_checkpointing else 1
    rows, share = micro_batches(batch, cfg.micro_batch, share_over)
    sums, grad_norm = _Sums(), 0.0
    for pass_ in range(cfg.mu):
        for s in range(0, batch.size, rows):
            _backward_micro_batch(model, batch, s, rows, share, targets, cfg, accelerator, sums,
                                  first=pass_ == 0, last=pass_ == cfg.mu - 1)
        norm = optimizer_step(model, optimizer, scheduler, cfg.grad_clip, accelerator)
        grad_norm = norm if norm is not None else grad_norm
    tokens = max(total_tokens, 1.0)      # a process whose own rows were all left out measured nothing
    return StepResult(loss=sums.loss, kl=sums.kl / tokens, clip_fraction=sums.clipped / (tokens * cfg.mu),
                      entropy=sums.entropy / tokens, grad_norm=grad_norm, tokens=total_tokens)


def _backward_micro_batch(model: torch.nn.Module, batch: RolloutBatch, s: int, rows: int, share: int,
                          targets: _Targets, cfg: RLConfig, accelerator: Any, sums: _Sums, *, first: bool,
                          last: bool) -> None:
    """The selected loss of rows ``s .. s + rows`` and its backward pass; the diagnostics go into
    ``sums`` (entropies on the first pass, loss and KL on the last, clipping on every one)."""
    mb = batch.rows(s, s + rows).trimmed()
    c = mb.width
    logp, ent = token_outputs(model, mb, share, cfg.logprob_chunk, with_entropy=first)
    if ent is not None:
        sums.entropy += float((ent * mb.completion_mask).sum())
    old = targets.old_logp[s: s + rows, :c] if targets.old_logp is not None else logp.detach()
    ref = targets.ref_logp[s: s + rows, :c] if targets.ref_logp is not None else None
    loss, stats = LOSSES[cfg.loss](logp, old, targets.advantages[s: s + rows], mb.completion_mask,
                                   ref_logp=ref, beta=cfg.beta, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                   normalisation=cfg.normalisation, normaliser=targets.normaliser)
    if accelerator is not None:
        accelerator.backward(loss)
    else:
        loss.backward()
    if last:
        sums.loss += float(loss.detach())
        sums.kl += stats.kl_sum
    sums.clipped += stats.clipped


def sampling_seed(cfg: RLConfig, step: int, process_index: int, round_: int) -> int:
    """Rollout seed of (seed, step, process, round): round 0 keeps the seed runs always had,
    refill rounds are moved far past every step's seed so that no two draws share one."""
    return (cfg.seed * 1_000_003 + step) * 64 + process_index + (round_ << 40)


def generate_groups(ctx: StepContext, problems: list, step: int, round_: int,
                    timer: dict[str, float]) -> list[ScoredGroup]:
    """``group_size`` completions per prompt from the current policy, scored under ``cfg.reward``;
    the time of generation and of scoring is added to ``timer``."""
    from tailor_evo.generation.base import SamplingParams
    from tailor_evo.trainers.rollout import rollout

    cfg = ctx.cfg
    params = SamplingParams(n=cfg.group_size, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens,
                            seed=sampling_seed(cfg, step, ctx.accelerator.process_index, round_))
    t0 = time.perf_counter()
    ctx.policy.eval()
    with torch.no_grad():
        groups = rollout(ctx.engine, ctx.task, problems, params, chat=cfg.chat)
    ctx.policy.train()
    t1 = time.perf_counter()
    flat = [r for g in groups for r in g]
    verdicts, penalties = map(iter, penalise_overlong(
        score_round(ctx.reward, ctx.task, flat, lambda p: ctx.pool.columns_of(p, ctx.task), cfg.chat),
        [r.completion for r in flat], cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_penalty))
    scored = [ScoredGroup(p, g, [next(verdicts) for _ in g], round=round_, penalties=[next(penalties) for _ in g])
              for p, g in zip(problems, groups)]
    timer["generate"] += t1 - t0
    timer["score"] += time.perf_counter() - t1
    return scored


def step_sample(ctx: StepContext, step: int, timer: dict[str, float]) -> StepSample:
    """The step's groups: its own prompts (under ``accelerate launch`` each process takes its
    share of them), plus refills from the stream under dynamic sampling."""
    cfg, acc = ctx.cfg, ctx.accelerator
    problems = ctx.stream.take(cfg.prompts_per_step)
    problems = problems[acc.process_index::acc.num_processes] or problems[:1]
    return sample_step(problems, lambda ps, r: generate_groups(ctx, ps, step, r, timer), ctx.stream.take,
                       wanted=len(problems), dynamic=cfg.dynamic_sampling, max_refill_rounds=cfg.max_refill_rounds,
                       truncation=Truncation.of_config(cfg))


def advantages_of(batch: RolloutBatch, valid: torch.Tensor | None, cfg: RLConfig) -> torch.Tensor:
    """The selected estimator's advantages of the batch's rewards (``rl.advantage``)."""
    return ADVANTAGES[cfg.advantage](batch.rewards, cfg.group_size, scale=cfg.scale_advantages, valid=valid)


def train_step(ctx: StepContext, step: int) -> tuple[dict[str, Any], StepSample]:
    """Roll out (refilling under dynamic sampling), score, compute log-probs and optimise; return
    the metrics row of step ``step`` (1-based) and the groups it generated."""
    cfg, t = ctx.cfg, ctx.trainable
    times = {"generate": 0.0, "score": 0.0, "logprobs": 0.0, "train": 0.0}
    t0 = time.perf_counter()
    sample = step_sample(ctx, step - 1, times)                                                # 1-2. roll out, score
    res = StepResult()
    if sample.kept:              # dynamic sampling may find no group with signal: then no update
        batch, valid = scored_batch(sample.kept, Truncation.of_config(cfg), ctx.pad_id, ctx.accelerator.device)
        advantages = advantages_of(batch, valid, cfg)                                         # 3. advantages
        t1 = time.perf_counter()
        ref_logp, old_logp = baseline_logprobs(ctx.policy, ctx.ref_model, batch, cfg, ctx.use_engine_lp)  # 4.
        t2 = time.perf_counter()
        res = optimise(t.model, t.optimizer, t.scheduler, batch, advantages, ref_logp, old_logp, cfg,
                       ctx.accelerator)                                                       # 5. optimise
        times["logprobs"], times["train"] = t2 - t1, time.perf_counter() - t2
    record = step_record(step, sample, res, t.scheduler.get_last_lr()[0], seconds=time.perf_counter() - t0,
                         times=times)
    return record, sample
