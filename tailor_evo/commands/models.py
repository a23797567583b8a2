"""``tailor-evo models``: list the backbones and prepare them (build or convert once, then cached)."""

from __future__ import annotations

import click

from tailor_evo.errors import InputError


@click.group()
def models() -> None:
    """Backbones: list, prepare."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Show each backbone: name, parameters, prepared?, path."""
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
