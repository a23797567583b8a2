"""Installs that fit a GPU stack: a torch floor, optional packages in extras, one error naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tailor_evo import extras
from tailor_evo.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_torch_is_a_floor_not_a_pin():
    torch = [d for d in PYPROJECT["project"]["dependencies"] if d.replace(" ", "").startswith("torch")]
    assert torch == ["torch>=2.13"]


def test_make_install_puts_the_cpu_torch_first():
    """The package's floor is satisfied by the CPU build installed before it, so pip keeps that one."""
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    body = recipe.split("$(VENV)/.installed: ", 1)[1].split("\n\n", 1)[0]
    assert "TORCH_CPU ?= 2.13.0" in recipe
    assert body.index("pip install -q torch==$(TORCH_CPU)") < body.index("pip install -q -e '.[test]'")


def test_every_extra_is_declared_and_the_test_extra_brings_them_all():
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(declared)
    test = " ".join(declared["test"])
    for name in extras.EXTRAS:
        assert name in test, f"[test] does not install the {name!r} extra"
    for name, modules in extras.EXTRAS.items():
        for dist in modules.values():
            assert any(req.startswith(dist) for req in declared[name]), (name, dist)


@pytest.mark.integration
def test_the_default_job_imports_no_extra():
    """`tailor-evo run` (search, warm start, SFT, RL, evaluation, report) needs the core only."""
    modules = sorted({m for mods in extras.EXTRAS.values() for m in mods})
    code = ("import sys\n"
            "import tailor_evo.commands.run, tailor_evo.pipeline, tailor_evo.pipeline_report\n"
            "import tailor_evo.search.engine, tailor_evo.warmstart.build, tailor_evo.trainers.sft\n"
            "import tailor_evo.trainers.rl, tailor_evo.trainers.evaluate\n"
            f"print(','.join(m for m in {modules!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == ""


def test_require_names_the_extra_and_the_field(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "demo", {"tailor_evo_no_such_module": "no-such-dist"})
    with pytest.raises(InputError) as err:
        extras.require("demo", what="the demo feature", field="demo.enabled")
    message = str(err.value)
    assert "pip install 'tailor-evo[demo]'" in message
    assert "no-such-dist" in message and "the demo feature needs" in message
    assert err.value.field == "demo.enabled"


def test_require_passes_when_installed_and_refuses_an_unknown_extra():
    extras.require("openai")          # requests is installed with [test]
    with pytest.raises(KeyError):
        extras.require("no-such-extra")
