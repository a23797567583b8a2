"""``tailor-evo models``: list the backbones and prepare them (build or convert once, then cached)."""

from __future__ import annotations

import click

from tailor_evo.commands.common import config_options
from tailor_evo.errors import InputError


@click.group()
def models() -> None:
    """Backbones: list, prepare, pretrain."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Show each backbone: name, parameters, prepared?, path, what it is and how it was made."""
    import json
    from dataclasses import asdict

    from tailor_evo.models.registry import list_backbones

    rows = list_backbones()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    header = ("name", "parameters", "prepared", "installable", "path")
    table = [header] + [(r.name, r.parameters, "yes" if r.prepared else "no", "yes" if r.available else "no", r.path)
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    click.echo("")
    for r in rows:
        click.echo(f"{r.name}: {r.description} [{r.source}]")


@models.command("prepare")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even if it is already prepared.")
def prepare_cmd(name: str, force: bool) -> None:
    """Prepare backbone NAME (tiny, smollm2-135m, gemma3-270m) in the cache and print its path."""
    import time

    from tqdm.auto import tqdm

    from tailor_evo.models.registry import BACKBONES, is_prepared, prepare

    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}", field="NAME")
    if is_prepared(name) and not force:
        click.echo(f"{name}: already prepared")
        path = prepare(name)
    else:
        start = time.perf_counter()
        with tqdm(total=1, desc=f"prepare {name}", unit="model") as bar:
            path = prepare(name, progress=True, force=force)
            bar.update(1)
        click.echo(f"{name}: prepared in {time.perf_counter() - start:.1f}s")
    click.echo(str(path))


@models.command("pretrain")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--preset", default="tiny-base", show_default=True,
              help="Recipe to build: tiny-base, tiny-base-m, tiny-base-roles, tiny-base-m-drills (each runs its "
                   "earlier phases first, unless --set init_from=MODEL gives the start of its last phase), or an "
                   "earlier phase alone: tiny-base-reading, tiny-base-varied, tiny-base-m-reading.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run directory.")
@config_options("tailor_evo.trainers.pretrain:PretrainConfig")
@click.pass_context
def pretrain_cmd(ctx: click.Context, out: str, preset: str, resume: bool, overwrite: bool, config_path: str | None,
                 overrides: tuple[str, ...]) -> None:
    """Pretrain a tiny base backbone on the tasks' reading corpus (no solutions); writes OUT/model.

    The result reads (copies names, looks up statements) but has never seen a
    solution, so every warm-start method can start from it on equal terms. A
    recipe's earlier phases run first, into OUT/phases/NAME, and each later
    phase starts from the model of the one before. Progress goes to the terminal
    and, one line per probe, to the log (-v).
    """
    from pathlib import Path

    from tailor_evo.config import parse_override
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.pretrain import preset_chain

    chain = preset_chain(preset)
    if any(parse_override(o)[0] == "init_from" for o in overrides):
        chain = chain[-1:]          # a given start replaces the recipe's earlier phases
    holder = RunDir.locked(Path(out))     # the whole recipe, its earlier phases included, is one writer's
    start = ""
    for i, name in enumerate(chain):
        last = i == len(chain) - 1
        phase_out = Path(out) if last else Path(out) / "phases" / name
        if not last and (phase_out / "model" / "tailor_evo.json").exists() and (resume or not overwrite):
            click.echo(f"phase {name}: already finished ({phase_out / 'model'})")
        else:
            click.echo(f"phase {i + 1}/{len(chain)}: {name} -> {phase_out}")
            extra = [f"init_from={start}"] if start else []
            # the last phase shares OUT with the earlier phases' folder, which it keeps
            _pretrain_phase(ctx, phase_out, name, resume and (phase_out / "config.yaml").exists(),
                            (overwrite or not last) and not (resume and (phase_out / "config.yaml").exists()),
                            config_path, extra + list(overrides), keep=() if not last else ("phases",))
        start = str(phase_out / "model")
    holder.release()
    click.echo(f"model: {Path(out) / 'model'}\nreport: {Path(out) / 'report.md'}")


def _pretrain_phase(ctx: click.Context, out, preset: str, resume: bool, overwrite: bool, config_path: str | None,
                    overrides: list[str], keep: tuple[str, ...] = ()) -> None:
    from tailor_evo.commands.common import global_seed
    from tailor_evo.config import load_config, resumed_config
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.pretrain import PretrainConfig, preset_config, train_pretrain

    if resume:
        cfg = resumed_config(PretrainConfig, out / "config.yaml", config_path, overrides, seed=global_seed(ctx),
                             safe=PretrainConfig.RESUME_SAFE)
    else:
        cfg = load_config(PretrainConfig, config_path, overrides, base=preset_config(preset))
        seed = global_seed(ctx)
        if seed is not None:
            cfg.seed = seed
    run_dir = RunDir.create(out, resume=resume, overwrite=overwrite, keep=keep)
    train_pretrain(cfg, run_dir, resume=resume)
