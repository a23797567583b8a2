"""``tailor-evo train sft`` and ``tailor-evo train rl``.

Options given on the command line win over ``--set`` and ``--config``; with
``--resume`` the run directory's saved ``config.yaml`` is the base, so a resumed run
continues with the settings it started with (``--set`` may still change e.g. steps).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from tailor_evo.commands.common import config_options, resolve_config
from tailor_evo.config import load_config
from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir


def _run_dir(out: str, resume: bool, overwrite: bool) -> RunDir:
    """The run directory; under ``accelerate launch`` only rank 0 checks that a fresh run starts empty
    (the other ranks would otherwise see the directories rank 0 has just made)."""
    worker = int(os.environ.get("RANK", "0")) > 0
    return RunDir.create(out, resume=resume, overwrite=overwrite or (worker and not resume))


@click.group()
def train() -> None:
    """Train a model: supervised fine-tuning (sft) or reinforcement learning (rl)."""


def _config(cls: type, ctx: click.Context, out: str, resume: bool, config_path: str | None,
            overrides: tuple[str, ...], **direct):
    if resume:
        saved = Path(out) / "config.yaml"
        if not saved.exists():
            raise InputError("nothing to resume: no config.yaml in the run directory", file=str(out))
        base = load_config(cls, saved)
        cfg = load_config(cls, config_path, list(overrides) + [f"{k}={v}" for k, v in direct.items() if v is not None],
                          base=base)
        seed = (ctx.find_root().obj or {}).get("seed")
        if seed is not None:
            cfg.seed = seed
        return cfg
    return resolve_config(cls, config_path, overrides, ctx, **direct)


@train.command("sft")
@click.option("--model", default=None, help="Backbone name (tiny, smollm2-135m, ...) or model directory.")
@click.option("--data", "data_path", default=None, type=click.Path(dir_okay=False),
              help="Warm-start data (JSONL/Parquet with prompt and completion).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run directory.")
@config_options
@click.pass_context
def sft(ctx: click.Context, model: str | None, data_path: str | None, out: str, resume: bool, overwrite: bool,
        config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Supervised fine-tuning on completions only; writes OUT/model."""
    from trainers.sft import SFTConfig, train_sft

    cfg = _config(SFTConfig, ctx, out, resume, config_path, overrides, model=model, data=data_path)
    run_dir = _run_dir(out, resume, overwrite)
    path = train_sft(cfg, run_dir, resume=resume)
    click.echo(f"model: {path}\nreport: {run_dir.report_path}")


@train.command("rl")
@click.option("--model", default=None, help="Starting model directory (usually an SFT output) or backbone name.")
@click.option("--task", "task_name", default=None, help="Task: kk or igsm.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run directory.")
@config_options
@click.pass_context
def rl(ctx: click.Context, model: str | None, task_name: str | None, out: str, resume: bool, overwrite: bool,
       config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Group-relative, clipped, KL-regularised RL against the task verifier; writes OUT/model."""
    from trainers.rl import RLConfig, train_rl

    cfg = _config(RLConfig, ctx, out, resume, config_path, overrides, model=model, task=task_name)
    run_dir = _run_dir(out, resume, overwrite)
    path = train_rl(cfg, run_dir, resume=resume)
    click.echo(f"model: {path}\nreport: {run_dir.report_path}")
