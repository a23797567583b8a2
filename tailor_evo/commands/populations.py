"""``tailor-evo populations``: validate, list and show seed primitive libraries."""

from __future__ import annotations

import click

from tailor_evo.errors import InputError


@click.group()
def populations() -> None:
    """Seed primitive libraries (populations/seeds/<task>/*.json)."""


@populations.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--task", "task_name", default=None, help="Task the file is for (when the file does not say).")
def validate(files: tuple[str, ...], task_name: str | None) -> None:
    """Check library FILES (paths or names like kk/rule-based); print OK or every error (exit 2)."""
    from tailor_evo.populations.library import resolve_path, validate_library

    failed = 0
    for item in files:
        path = resolve_path(item, task_name)
        errors = validate_library(path, task_name)
        if errors:
            failed += len(errors)
            for err in errors:
                click.echo(err, err=True)
        else:
            click.echo(f"OK {path}")
    if failed:
        # Raised rather than ctx.exit(2) so that the exit code survives the CLI's non-standalone mode.
        raise InputError(f"{failed} problem(s) found", field="FILES")


@populations.command("list")
@click.option("--task", "task_name", default=None, help="Only this task's libraries.")
def list_(task_name: str | None) -> None:
    """List the shipped seed libraries with their primitives."""
    from tailor_evo.populations.library import list_libraries, load_library

    paths = list_libraries(task_name)
    if not paths:
        raise InputError("no seed libraries found", field="--task" if task_name else None)
    for path in paths:
        lib = load_library(path)
        click.echo(f"{lib.task}/{lib.name}  ({len(lib)} primitives)  {path}")
        for p in lib:
            click.echo(f"    {p['name']}")


@populations.command("show")
@click.argument("library")
@click.option("--task", "task_name", default=None)
def show(library: str, task_name: str | None) -> None:
    """Print each primitive's description and the description rendered from its program."""
    from tailor_evo.populations.library import load_library
    from tailor_evo.tasks.registry import get_task

    lib = load_library(library, task_name)
    grammar = get_task(lib.task).grammar()
    for p in lib:
        click.echo(f"## {p['name']}\n{p['description']}\nprogram: {grammar.describe(p['program'])}\n")
