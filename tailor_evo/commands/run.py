"""``tailor-evo run``: the main job on built-in defaults (KK, tiny backbone, tailor warm start)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from tailor_evo.commands.common import config_options, direct_overrides, global_seed, resolve_config, seed_everything
from tailor_evo.io import write_text_atomic
from tailor_evo.rundir import RunDir


@click.command("run")
@config_options("tailor_evo.pipeline:PipelineConfig")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: runs/run-YYYYmmdd-HHMMSS).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--task", "task", default=None, help="Task (default kk).")
@click.option("--backbone", default=None, help="Backbone name or model directory (default tiny-base).")
@click.option("--method", default=None,
              help="Warm-start method (default tailor; `tailor-evo data warmstart --help` lists the registered ones).")
@click.option("--dry-run", is_flag=True,
              help="Print the memory estimate per process of every stage; run nothing.")
@click.pass_context
def run(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], out: str | None, resume: bool,
        task: str | None, backbone: str | None, method: str | None, dry_run: bool) -> None:
    """Search primitives, build warm-start data, SFT, RL and evaluate; write a report."""
    from tailor_evo.config import resumed_config
    from tailor_evo.pipeline import PipelineConfig, run_pipeline
    from tailor_evo.pipeline_report import write_run_report

    direct = dict(task=task, backbone=backbone, method=method)
    if resume:
        if out is None:
            raise click.UsageError("--resume needs --out RUN_DIR")
        cfg = resumed_config(PipelineConfig, Path(out) / "config.yaml", config_path,
                             direct_overrides(overrides, direct), seed=global_seed(ctx),
                             safe=PipelineConfig.RESUME_SAFE)
    else:
        cfg = resolve_config(PipelineConfig, config_path, overrides, ctx, **direct)
    cfg.check()      # refuse bad or pipeline-owned settings before anything is written or printed
    if dry_run:
        from tailor_evo.trainers.memory import estimate_pipeline, memory_report

        cfg.fill_owned()
        click.echo(memory_report(estimate_pipeline(cfg)))
        return
    root = Path(out) if out else Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    holder = RunDir.locked(root)   # held until the report and DONE are written
    seed_everything(cfg.seed)
    click.echo(f"tailor-evo run: task={cfg.task} backbone={cfg.backbone} method={cfg.method} seed={cfg.seed} -> {root}")
    result = run_pipeline(cfg, root, resume=resume)
    report = write_run_report(cfg, result)
    click.echo("")
    click.echo(report.table)
    click.echo(f"\nreport: {report.path}")
    write_text_atomic(root / "DONE", time.strftime("%Y-%m-%d %H:%M:%S\n"))
    holder.release()
