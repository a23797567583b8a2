"""``tailor-evo train sft`` and ``tailor-evo train rl``.

Options given on the command line win over ``--set`` and ``--config``. With
``--resume`` the run directory's saved ``config.yaml`` is what runs: a differing option
or ``--set`` is refused, except the keys each config lists as safe on resume (for
example the number of steps); see :func:`tailor_evo.config.resumed_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from tailor_evo.commands.common import config_options, direct_overrides, global_seed, resolve_config
from tailor_evo.config import resumed_config
from tailor_evo.rundir import RunDir


def _rank() -> int:
    """This process's rank under ``accelerate launch`` (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


def _run_dir(out: str, resume: bool, overwrite: bool) -> RunDir:
    """The run directory. Under ``accelerate launch`` only rank 0 checks and empties it; the
    other ranks use it as rank 0 leaves it (they would otherwise see, or delete, rank 0's files)."""
    if _rank() > 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        return RunDir(out)
    return RunDir.create(out, resume=resume, overwrite=overwrite)


def _announce(model_dir: Path, run_dir: RunDir) -> None:
    """Where the model and the report are (said once, by the main process)."""
    if _rank() == 0:
        click.echo(f"model: {model_dir}\nreport: {run_dir.report_path}")


@click.group()
def train() -> None:
    """Train a model: supervised fine-tuning (sft) or reinforcement learning (rl)."""


def _config(cls: type, ctx: click.Context, out: str, resume: bool, config_path: str | None,
            overrides: tuple[str, ...], **direct):
    if resume:
        return resumed_config(cls, Path(out) / "config.yaml", config_path, direct_overrides(overrides, direct),
                              seed=global_seed(ctx), safe=cls.RESUME_SAFE)
    return resolve_config(cls, config_path, overrides, ctx, **direct)


def _out_or_dry_run(out: str | None, dry_run: bool) -> str:
    """``--out`` is needed unless the command only prints its estimate."""
    if out is None and not dry_run:
        raise click.UsageError("Missing option '--out'.")
    return out or ""


DRY_RUN_HELP = "Print the memory estimate per process (weights, optimiser, activations, ...); train nothing."


@train.command("sft")
@click.option("--model", default=None, help="Backbone name (tiny, smollm2-135m, ...) or model directory.")
@click.option("--data", "data_path", default=None,
              help="Warm-start data with prompt and completion: JSONL/Parquet, a datasets directory or a cached "
                   "dataset id (DIR_OR_ID[:SPLIT], default split train).")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run directory (required).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run directory.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@config_options("tailor_evo.trainers.sft:SFTConfig")
@click.pass_context
def sft(ctx: click.Context, model: str | None, data_path: str | None, out: str | None, resume: bool,
        overwrite: bool, dry_run: bool, config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Supervised fine-tuning on completions only; writes OUT/model."""
    from tailor_evo.trainers.sft import SFTConfig, train_sft

    out = _out_or_dry_run(out, dry_run)
    cfg = _config(SFTConfig, ctx, out, resume, config_path, overrides, model=model, data=data_path)
    if dry_run:
        from tailor_evo.trainers.memory import estimate_sft, memory_report

        click.echo(memory_report([estimate_sft(cfg)]))
        return
    run_dir = _run_dir(out, resume, overwrite)
    path = train_sft(cfg, run_dir, resume=resume)
    _announce(path, run_dir)


@train.command("rl")
@click.option("--model", default=None, help="Starting model directory (usually an SFT output) or backbone name.")
@click.option("--task", "task_name", default=None, help="Task: kk or igsm.")
@click.option("--data", "data_path", default=None,
              help="RL prompts from these records instead of the task's generator: JSONL/Parquet in the task's "
                   "format or its public one, a datasets directory or a cached dataset id (DIR_OR_ID[:SPLIT], "
                   "default split train); verified by the task, at the levels of rl.levels.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run directory (required).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run directory.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@config_options("tailor_evo.trainers.rl:RLConfig")
@click.pass_context
def rl(ctx: click.Context, model: str | None, task_name: str | None, data_path: str | None, out: str | None,
       resume: bool, overwrite: bool, dry_run: bool, config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Group-relative, clipped, KL-regularised RL against the task verifier; writes OUT/model."""
    from tailor_evo.trainers.rl import RLConfig, train_rl

    out = _out_or_dry_run(out, dry_run)
    cfg = _config(RLConfig, ctx, out, resume, config_path, overrides, model=model, task=task_name, data=data_path)
    if dry_run:
        from tailor_evo.trainers.memory import estimate_rl, memory_report

        click.echo(memory_report([estimate_rl(cfg)]))
        return
    run_dir = _run_dir(out, resume, overwrite)
    path = train_rl(cfg, run_dir, resume=resume)
    _announce(path, run_dir)
