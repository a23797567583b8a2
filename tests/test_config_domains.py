"""Every numeric setting of every config has a domain, and a value outside it is refused where the
config is read, naming the field (tailor_evo.domains)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from tailor_evo.config import load_config
from tailor_evo.domains import domain_of
from tailor_evo.errors import InputError
from tailor_evo.experiment.grid import ExperimentConfig
from tailor_evo.pipeline import PipelineConfig
from tailor_evo.search.engine import SearchConfig
from tailor_evo.trainers.eval_cli import EvalConfig
from tailor_evo.trainers.pretrain import PretrainConfig
from tailor_evo.trainers.rl import RLConfig
from tailor_evo.trainers.sft import SFTConfig
from tailor_evo.warmstart.config import WarmstartConfig

TOP = (PipelineConfig, SearchConfig, SFTConfig, RLConfig, PretrainConfig, EvalConfig, WarmstartConfig,
       ExperimentConfig)


def numeric_fields(cls: type, prefix: str = ""):
    """(dotted key, owner class, name, type) of every int/float field, nested configs included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        tp = args[0]
        if typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else tp
        if dataclasses.is_dataclass(tp):
            yield from numeric_fields(tp, f"{prefix}{f.name}.")
        elif tp in (int, float):
            yield f"{prefix}{f.name}", cls, f.name, tp


def outside(domain, tp: type) -> list:
    """Values just outside the domain (and non-finite ones for floats)."""
    out = []
    if domain.low is not None:
        low = domain.low if domain.low_open else (domain.low - 1 if tp is int else domain.low - 0.5)
        out.append(tp(low))
    if domain.high is not None:
        high = domain.high if domain.high_open else (domain.high + 1 if tp is int else domain.high + 0.5)
        out.append(tp(high))
    if tp is float:
        out += [math.nan, math.inf]
    return out


def test_every_numeric_setting_has_a_domain_and_its_default_lies_in_it() -> None:
    missing = sorted({f"{owner.__name__}.{name}" for cls in TOP for _, owner, name, _ in numeric_fields(cls)
                      if domain_of(owner, name) is None})
    assert not missing, f"numeric settings without a domain in tailor_evo/domains.py: {missing}"
    for cls in TOP:
        load_config(cls)                        # the defaults pass their own domains


@pytest.mark.parametrize("cls", TOP, ids=lambda c: c.__name__)
def test_a_value_outside_its_domain_is_refused_naming_the_field(cls) -> None:
    checked = 0
    for key, owner, name, tp in numeric_fields(cls):
        default = load_config(cls)
        current = default
        for part in key.split("."):
            current = getattr(current, part)
        for value in outside(domain_of(owner, name), tp):
            text = {"nan": ".nan", "inf": ".inf"}.get(repr(value), repr(value))
            text = f"[{text}]" if isinstance(current, list) else text
            with pytest.raises(InputError) as err:
                load_config(cls, overrides=[f"{key}={text}"])
            assert err.value.field in (key, f"{key}[0]"), (key, value, err.value)
            checked += 1
    assert checked > 10
