from dataclasses import dataclass, field

import pytest

from tailor_evo.config import dump_yaml, load_config
from tailor_evo.errors import InputError


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Outer:
    seed: int = 0
    name: str = "x"
    flag: bool = False
    levels: list = field(default_factory=lambda: [3])
    inner: Inner = field(default_factory=Inner)


def test_defaults_file_then_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("seed: 5\ninner:\n  steps: 20\n")
    cfg = load_config(Outer, cfg_file, ["inner.lr=0.5", "levels=[3, 4]", "flag=true"])
    assert cfg.seed == 5 and cfg.inner.steps == 20 and cfg.inner.lr == 0.5
    assert cfg.levels == [3, 4] and cfg.flag is True and cfg.name == "x"


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(Outer, None, ["inner.steps=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(Outer, path) == cfg


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("inner:\n  stepz: 3\n")
    with pytest.raises(InputError) as err:
        load_config(Outer, cfg_file)
    assert "c.yaml" in str(err.value) and "inner.stepz" in str(err.value)


def test_bad_type_and_bad_override():
    with pytest.raises(InputError, match="expected an integer"):
        load_config(Outer, None, ["seed=abc"])
    with pytest.raises(InputError, match="key=value"):
        load_config(Outer, None, ["seed"])
    with pytest.raises(InputError, match="unknown key"):
        load_config(Outer, None, ["inner.nope=1"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_config(Outer, bad)
