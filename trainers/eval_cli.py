"""Command line: ``tailor-evo eval`` (model evaluation).

It validates its input up front and raises :class:`InputError`, which the CLI turns
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import click

from tailor_evo.commands.common import COUNT, config_options, parse_levels, resolve_config, seed_everything
from tailor_evo.errors import InputError
from tailor_evo.generation import engine_spec, make_engine
from tailor_evo.trainers.evaluate import EvalOptions

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# eval


@dataclass
class EvalConfig(EvalOptions):
    """``tailor-evo eval``: the shared :class:`EvalOptions` plus what names the model, the task
    and the problems. ``n_per_level``: generated, default 50; with ``data``, at most this many."""

    model: str = ""                                     # model directory, registry name or BACKEND:MODEL (required)
    task: str = "kk"                                    # a registered task name
    data: str = ""                                      # problems from this JSONL/Parquet file (ours or public format)
    k: int = 4                                          # pass@1 and pass@k; 1 = greedy only
    chat: bool = False                                  # prompts through the model's chat template
    seed: int = 0                                       # seed of the evaluation problems and the samples
    report_to: list[str] = field(default_factory=list)  # trackers: tensorboard, wandb (tailor_evo.trackers)


def run_eval(cfg: EvalConfig, out: str | Path, *, engine=None, overwrite: bool = False,
             train_data: str | None = None, progress: bool = True) -> dict:
    """Evaluate per config into run directory ``out``; returns the results dict written to ``results.json``."""
    from tailor_evo.io import read_records, write_json_atomic, write_jsonl_atomic, write_text_atomic
    from tailor_evo.rundir import RunDir
    from tailor_evo.tasks import get_task
    from tailor_evo.tasks.streams import eval_problems
    from tailor_evo.trackers import check_report_to
    from tailor_evo.trainers.evaluate import assert_disjoint, evaluate, plot_results, render_report

    task = get_task(cfg.task)
    cfg.check([cfg.k])
    if not cfg.model and engine is None:
        raise InputError("no model given", field="--model")
    check_report_to(cfg.report_to)
    problems = data_problems(task, cfg) if cfg.data else eval_problems(task, cfg.seed, cfg.levels or None,
                                                                        cfg.n_per_level or 50)
    if train_data:
        rows = read_records(train_data, required=("question",), types={"question": str})
        assert_disjoint([r["question"] for r in rows], problems, train_name=f"training ({train_data})")
    run = RunDir.create(out, overwrite=overwrite)   # refuse a non-empty directory before loading a model
    seed_everything(cfg.seed)
    if engine is None:
        engine = make_engine(engine_spec(cfg.model, cfg.backend), batch_size=cfg.batch_size)
    run.save_config(cfg)
    result = evaluate(engine, task, problems, k=sorted({1, cfg.k}), n_samples=cfg.n_samples or None,
                      temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                      chat=cfg.chat, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
    results = result.to_dict()
    results["model"] = cfg.model
    results["data"] = cfg.data or None
    results["seed"] = cfg.seed
    results["model_card_updated"] = record_on_card(cfg.model, result, task.name, data=cfg.data, seed=cfg.seed)
    write_json_atomic(run.path / "results.json", results)
    write_jsonl_atomic(run.path / "samples.jsonl", [
        {**o.__dict__, "question": p.question} for o, p in zip(result.outcomes, problems)])
    run.track(cfg.report_to, cfg, "eval")
    for m in result.per_level:
        run.log({"level": m.level, **m.to_dict()})
    run.close_trackers()
    plots = plot_results(result, str(run.plots))
    write_text_atomic(run.report_path, render_report(result, model=cfg.model, seed=cfg.seed, plots=plots))
    return results


def record_on_card(model: str | None, result, task: str, *, data: str | None, seed: int) -> bool:
    """Add an evaluation to the model directory's card, when it has a tailor-evo one."""
    from tailor_evo.trainers.model_card import add_eval_results, card_results, model_dir_of

    model_dir = model_dir_of(model)
    if model_dir is None:
        return False
    split = Path(data).name if data else "held-out"
    updated = add_eval_results(model_dir, card_results(result.per_level, result.overall, task, split=split,
                                                       seed=None if data else seed))
    if updated:
        log.info("results added to the model card %s", model_dir / "README.md")
    return updated


def data_problems(task, cfg: EvalConfig) -> list:
    """The problems of ``cfg.data`` at ``cfg.levels`` (all levels when empty), at most ``n_per_level`` each.

    A level asked for that the file does not hold is an error, not an empty score.
    """
    from collections import Counter

    from tailor_evo.io import read_problems

    problems = [p for _, p in read_problems(task, cfg.data)]
    unanswered = [i for i, p in enumerate(problems, start=1) if p.answer is None]
    if unanswered:
        raise InputError(f"record {unanswered[0]} has no gold answer (and no unique solution) to score against; "
                         f"{len(unanswered)} such record(s)", file=cfg.data)
    held = Counter(p.difficulty for p in problems)
    missing = [lv for lv in cfg.levels if lv not in held]
    if missing:
        raise InputError(f"no problems at {task.difficulty_name}={missing} in the file (it holds "
                         + ", ".join(f"{k}: {v}" for k, v in sorted(held.items())) + ")", file=cfg.data,
                         field="levels")
    if cfg.levels:
        problems = [p for p in problems if p.difficulty in cfg.levels]
    if cfg.n_per_level:
        taken: Counter = Counter()
        kept = []
        for p in problems:
            if taken[p.difficulty] < cfg.n_per_level:
                taken[p.difficulty] += 1
                kept.append(p)
        problems = kept
    log.info("evaluating on %d problems of %s", len(problems), cfg.data)
    return problems


@click.command("eval")
@click.option("--model", default=None, help="Model directory, registry name (tiny, smollm2-135m) or BACKEND:MODEL.")
@click.option("--task", "task_name", default=None, help="Task: kk or igsm.")
@click.option("--data", "data_path", default=None,
              help="Score these problems (ours, or the public KK format) instead of generated ones: JSONL/Parquet, "
                   "a datasets directory or a cached dataset id (DIR_OR_ID[:SPLIT], default split test).")
@click.option("--levels", default=None, help="Difficulty levels, e.g. 3,4,5 or 2-8 (default: the task's; "
                                             "with --data: all in the file).")
@click.option("--n-per-level", type=COUNT, default=None,
              help="Problems per level (default 50; with --data: all, or at most this many).")
@click.option("--k", "k", type=COUNT, default=None, help="pass@k with k samples per problem (1 = greedy only).")
@click.option("--samples", "n_samples", type=COUNT, default=None, help="Samples per problem for pass@k (>= k).")
@click.option("--temperature", type=float, default=None)
@click.option("--max-new-tokens", type=COUNT, default=None)
@click.option("--chat/--no-chat", default=None, help="Use the model's chat template.")
@click.option("--batch-size", type=COUNT, default=None)
@click.option("--seed", type=int, default=None, help="Seed of the evaluation problem stream.")
@click.option("--train-data", default=None, type=click.Path(dir_okay=False),
              help="Warm-start/SFT data file to check the evaluation problems against (must be disjoint).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty run directory.")
@config_options(EvalConfig)
@click.pass_context
def evaluate(ctx: click.Context, model: str | None, task_name: str | None, data_path: str | None, levels: str | None,
             n_per_level: int | None, k: int | None, n_samples: int | None, temperature: float | None,
             max_new_tokens: int | None, chat: bool | None, batch_size: int | None, seed: int | None,
             train_data: str | None, out: str, overwrite: bool, config_path: str | None,
             overrides: tuple[str, ...]) -> None:
    """Evaluate a model: greedy accuracy per level, pass@k, partial credit, response length, format errors."""
    cfg = resolve_config(EvalConfig, config_path, overrides, ctx, model=model, task=task_name, data=data_path,
                         levels=parse_levels(levels), n_per_level=n_per_level, k=k, n_samples=n_samples,
                         temperature=temperature, max_new_tokens=max_new_tokens, chat=chat,
                         batch_size=batch_size, seed=seed)
    results = run_eval(cfg, out, overwrite=overwrite, train_data=train_data)
    o = results["overall"]
    click.echo(f"{results['task']}: accuracy {o['accuracy']:.3f}  "
               + "  ".join(f"pass@{kk}={v:.3f}" for kk, v in o["pass_at_k"].items())
               + f"  partial credit {o['partial_credit']:.3f}  format errors {o['format_error_rate']:.3f}")
    for m in results["per_level"]:
        click.echo(f"  {results['difficulty_name']}={m['level']}: {m['accuracy']:.3f} (n={m['n_problems']})")
    click.echo(f"report: {Path(out) / 'report.md'}")
