"""Options and helpers shared by commands: config file, overrides, seed, run directory."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tailor_evo.config import load_config
from tailor_evo.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """Add ``--config FILE`` and repeatable ``--set key=value`` to a command."""
    func = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Override a config value (dotted key), e.g. --set rl.steps=20.")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help="YAML config file; values not given keep their defaults.")(func)
    return func


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
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


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
