"""Options and helpers shared by commands: config file, overrides, seed, run directory."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from tailor_evo.config import load_config
from tailor_evo.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def config_options(config: type | str) -> Callable[[F], F]:
    """Add ``--config FILE``, repeatable ``--set key=value`` and ``--help-config`` to a command
    whose settings are the dataclass ``config`` (or its ``"module:Class"`` path, imported only
    when ``--help-config`` is given, so that a command's ``--help`` stays instant)."""
    def show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        from tailor_evo.config_help import format_settings_help

        click.echo(format_settings_help(_config_class(config)))
        ctx.exit(0)

    def decorate(func: F) -> F:
        func = click.option("--help-config", is_flag=True, expose_value=False, is_eager=True, callback=show_help,
                            help="List every config key with its default and meaning, then exit.")(func)
        func = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                            help="Override a config value (dotted key), e.g. --set rl.steps=20.")(func)
        func = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                            help="YAML config file; values not given keep their defaults.")(func)
        return func

    return decorate


def _config_class(config: type | str) -> type:
    if isinstance(config, type):
        return config
    import importlib

    module, _, name = config.partition(":")
    return getattr(importlib.import_module(module), name)


def resolve_config(cls: type, config_path: str | None, overrides: tuple[str, ...], ctx: click.Context | None = None,
                   **direct: Any) -> Any:
    """Defaults <- file <- --set <- explicit command-line options (``direct``, None = not given) <- global --seed."""
    cfg = load_config(cls, config_path, direct_overrides(overrides, direct))
    seed = global_seed(ctx)
    if seed is not None and hasattr(cfg, "seed"):
        cfg.seed = seed
    return cfg


def direct_overrides(overrides: tuple[str, ...] | list[str], direct: dict[str, Any]) -> list[str]:
    """``--set`` items followed by the explicit options given (None = not given), as ``key=value``."""
    return list(overrides) + [f"{k}={_yaml_scalar(v)}" for k, v in direct.items() if v is not None]


def global_seed(ctx: click.Context | None) -> int | None:
    """The global ``tailor-evo --seed``, or None when it was not given."""
    return (ctx.find_root().obj or {}).get("seed") if ctx is not None else None


def _yaml_scalar(v: Any) -> str:
    import json

    return json.dumps(v) if not isinstance(v, str) else v


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch is imported only here: slow)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def parse_levels(text: str | None) -> list[int] | None:
    """'3,4,5' or '3-7' -> [3, 4, 5, ...]."""
    if not text:
        return None
    levels: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                levels.extend(range(int(lo), int(hi) + 1))
            elif part:
                levels.append(int(part))
    except ValueError:
        raise InputError(f"levels must look like '3,4,5' or '3-7', got {text!r}", field="--levels") from None
    return levels


# --- option types every command shares -----------------------------------------------------------
# A bad count or output path is refused by click before any work, and the CLI prints the refusal
# as one line with exit code 2 (tailor_evo.cli.main).

RECORD_FORMATS = (".jsonl", ".parquet")     # what tailor_evo.io.write_records writes, by extension


class Count(click.ParamType):
    """An integer option that counts something (problems, samples, rows to show, workers):
    a value below ``minimum`` would silently mean "none" or "all", so it is refused."""

    name = "integer"

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not an integer", param, ctx)
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if number < self.minimum:
            self.fail(f"must be {self.minimum} or more, got {number}", param, ctx)
        return number

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"INTEGER>={self.minimum}"


COUNT = Count(1)


def output_problem(path: str, extensions: tuple[str, ...], stdout: bool = True) -> str | None:
    """Why ``path`` cannot take an output written by extension (None when it can).

    Standard output (``-``, when ``stdout``), a device and a FIFO take whatever is written
    (JSONL); a file must end in an extension a writer produces, or it would hold one format
    under another's name.
    """
    from pathlib import Path

    from tailor_evo.io import STDOUT, is_special

    if path == STDOUT:
        return None if stdout else "standard output ('-') is not possible here"
    if is_special(path):
        return None
    if Path(path).is_dir():
        return "is a directory, expected a file"
    suffix = Path(path).suffix
    if suffix.lower() not in extensions:
        made = " or ".join(extensions) + (" (or '-' for standard output)" if stdout else "")
        what = f"no writer produces '{suffix}' files" if suffix else "the file name has no extension"
        return f"{what}; the output must end in {made}"
    return None


class OutputFile(click.ParamType):
    """An output file whose format follows its extension (see :func:`output_problem`)."""

    name = "file"

    def __init__(self, extensions: tuple[str, ...] = RECORD_FORMATS, stdout: bool = True) -> None:
        self.extensions, self.stdout = extensions, stdout

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = output_problem(str(value), self.extensions, self.stdout)
        if problem:
            self.fail(f"{value}: {problem}", param, ctx)
        return str(value)


def echo_summary(message: str, output: str) -> None:
    """A command's closing line: on stderr when the data itself goes to standard output."""
    from tailor_evo.io import STDOUT

    click.echo(message, err=output == STDOUT)


class RegistryChoice(click.Choice):
    """A choice among the names a registry holds when the command runs, not when it was defined:
    a name registered later (a plugin, a test, a notebook) is accepted and listed in ``--help``."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:    # type: ignore[override]
        return tuple(self._names())

    @choices.setter
    def choices(self, _value: Any) -> None:  # click's constructor stores its static list; the registry wins
        pass
