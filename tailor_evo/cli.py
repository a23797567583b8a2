"""The ``tailor-evo`` command line.

Sub-commands live in their own modules and are imported only when used, so that
``tailor-evo --help`` stays instant (torch and transformers are slow to import).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from tailor_evo import __version__
from tailor_evo.errors import TailorError

# name -> ("module:attribute", one-line help). Keep help here so --help needs no import.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("tailor_evo.commands.data:data", "Generate, solve and score task data; build warm-start data."),
    "models": ("tailor_evo.commands.models:models",
               "List, prepare and pretrain backbones (tiny, tiny-base, smollm2-135m, ...)."),
    "generate": ("tailor_evo.commands.generate:generate", "Generate completions from a model for prompts."),
    "serve": ("tailor_evo.commands.serve:serve", "Serve a model over an OpenAI-compatible HTTP API."),
    "populations": ("tailor_evo.commands.populations:populations", "Validate and list seed primitive libraries."),
    "search": ("tailor_evo.search.cli:search", "Evolve reasoning primitives (quality-diversity search)."),
    "archive": ("tailor_evo.search.cli:archive", "Inspect a search archive: show, top, lineage, export, diff."),
    "train": ("tailor_evo.trainers.cli:train", "Train a model: sft or rl."),
    "eval": ("tailor_evo.trainers.eval_cli:evaluate", "Evaluate a model on a task per difficulty level."),
    "run": ("tailor_evo.commands.run:run", "The main job: search -> warm start -> SFT -> RL -> eval."),
    "experiment": ("tailor_evo.commands.experiment:experiment", "Compare warm-start methods over a grid."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tailor-evo")
@click.option("--seed", type=int, default=None, help="Global seed (overrides the config's seed).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, seed: int | None, verbose: int) -> None:
    """tailor-evo: evolve reasoning primitives and use them to warm-start RL."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["seed"] = seed


def main() -> None:
    try:
        rc = cli(standalone_mode=False)
        # without standalone mode click returns ctx.exit(code)'s code instead of exiting
        if isinstance(rc, int) and not isinstance(rc, bool):
            sys.exit(rc)
    except TailorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.BadParameter as exc:
        # a refused option value is bad input like any other: one line, exit code 2
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        _file_system_failure(exc)
        raise


def _file_system_failure(exc: Exception) -> None:
    """Exit with one line for a file-system failure no command turned into an :class:`InputError`
    (read-only, full, a link loop, permissions): it is the user's to fix, not a bug to trace."""
    from tailor_evo.io import fs_error, is_fs_error

    if is_fs_error(exc):
        click.echo(f"error: {fs_error(exc, getattr(exc, 'filename', None), 'file-system error')}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
