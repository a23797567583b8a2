"""``tailor-evo experiment``: the warm-start method comparison over a grid of cells."""

from __future__ import annotations

import click

from tailor_evo.commands.common import config_options, resolve_config
from tailor_evo.extras import require


@click.command("experiment")
@config_options("tailor_evo.experiment.grid:ExperimentConfig")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Experiment directory.")
@click.option("--dry-run", is_flag=True,
              help="Print the grid, a rough cost estimate and the memory per process of each stage; run nothing.")
@click.option("--report-only", is_flag=True,
              help="Rewrite the table, figures and report from the finished cells; run nothing.")
@click.pass_context
def experiment(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], out: str, dry_run: bool,
               report_only: bool) -> None:
    """Run every (task, difficulty, backbone, method, seed) cell; finished cells are skipped."""
    require("experiment", what="tailor-evo experiment (its statistics)")
    from tailor_evo.experiment.grid import ExperimentConfig, estimate, expand
    from tailor_evo.experiment.runner import report_only as reaggregate
    from tailor_evo.experiment.runner import run_experiment

    cfg = resolve_config(ExperimentConfig, config_path, overrides, ctx)
    cfg.check()
    if report_only:
        outcome = reaggregate(cfg, out)
        click.echo(f"{len(outcome.done)} cells done, {len(outcome.failed)} failed, {len(outcome.pending)} pending")
        click.echo(f"report: {outcome.report}")
        return
    cells = expand(cfg)
    costs = estimate(cfg, cells)
    if dry_run:
        click.echo(f"{len(cells)} cells:")
        for cell in cells:
            click.echo(f"  {cell.name:48s} ~{costs[cell.name] / 60:6.1f} min")
        total = sum(costs.values())
        when = f"{total / 3600:.2f} h" if total >= 3600 else f"{total / 60:.1f} min"
        click.echo(f"rough total: {when} on an idle 2-core CPU (tiny-backbone unit costs, "
                   "other backbones scaled by size)")
        click.echo("")
        click.echo(grid_memory(cfg, cells))
        return

    def announce(i: int, n: int, cell) -> None:
        click.echo(f"[{i}/{n}] {cell.name} (~{costs[cell.name] / 60:.1f} min)")

    outcome = run_experiment(cfg, out, progress_cb=announce)
    click.echo(f"{len(outcome.done)} cells done, {len(outcome.failed)} failed, {len(outcome.pending)} pending")
    click.echo(f"report: {outcome.report}")
    if outcome.failed:
        raise SystemExit(1)


def grid_memory(cfg, cells) -> str:
    """The memory estimate of every distinct stage of the grid (per backbone, per method that
    adds an engine: the search LLM, the redistill teacher). A teacher that is another cell's
    model counts as that backbone on the hf engine."""
    from tailor_evo.experiment.grid import cell_config, teacher_source
    from tailor_evo.trainers.memory import estimate_grid, memory_report

    runs = []
    for cell in cells:
        pc = cell_config(cfg, cell)
        pc.fill_owned()
        teacher = None
        if cell.method == "redistill":
            teacher = f"hf:{cell.backbone}" if teacher_source(cfg.redistill_teacher) else cfg.redistill_teacher
        runs.append((pc, teacher))
    return memory_report(estimate_grid(runs))
