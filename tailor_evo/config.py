"""Configuration: dataclasses filled from built-in defaults, a YAML file, then ``key=value`` overrides.

Every command describes its settings as a (possibly nested) dataclass. The same
mechanism serves all commands, so a user learns it once:

    tailor-evo search --config my.yaml --set search.generations=20 --set seed=3

The resolved config is saved as ``config.yaml`` in the run directory, which is also
what ``--resume`` reads back.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tailor_evo.errors import InputError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict, *, source: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with their dotted path."""
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", file=source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise InputError(f"unknown key (valid: {', '.join(sorted(fields))})", file=source, field=key)
        kwargs[key] = _coerce(hints[key], value, source=source, field=key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, *, source: str, field: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        try:
            return from_dict(tp, value, source=source)
        except InputError as exc:
            raise InputError(exc.detail, file=source, field=f"{field}.{exc.field}") from None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, source=source, field=field) if len(args) == 1 else value
    if tp is bool and not isinstance(value, bool):
        raise InputError(f"expected true/false, got {value!r}", file=source, field=field)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"expected an integer, got {value!r}", file=source, field=field)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float:
        raise InputError(f"expected a number, got {value!r}", file=source, field=field)
    if tp is str and not isinstance(value, str):
        raise InputError(f"expected a string, got {value!r}", file=source, field=field)
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise InputError(f"expected a list, got {value!r}", file=source, field=field)
    return value


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise InputError("is not a section", field=".".join(keys[: keys.index(k) + 1]))
        node = node[k]
    if keys[-1] not in node:
        raise InputError(f"unknown key (valid: {', '.join(sorted(node))})", field=dotted)
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=3`` -> ("a.b", 3); the value is parsed as YAML so numbers, bools and lists work."""
    if "=" not in text:
        raise InputError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str):
        # YAML 1.1 reads "2e-3" (no dot) as a string; a user typing it means a number
        try:
            value = float(value) if _FLOAT.match(value.strip()) else value
        except ValueError:
            pass
    return key.strip(), value


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                base: T | None = None) -> T:
    """Defaults (or ``base``) <- YAML file <- overrides, validated against ``cls``."""
    data = to_dict(base if base is not None else cls())
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise InputError("config file not found", file=str(path))
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise InputError(f"invalid YAML: {exc}", file=str(path), line=None if line is None else line + 1) from None
        if not isinstance(loaded, dict):
            raise InputError("top level must be a mapping", file=str(path))
        _merge(data, loaded, str(path), "")
        source = str(path)
    for item in overrides:
        key, value = parse_override(item)
        try:
            _set_dotted(data, key, value)
        except InputError as exc:
            raise InputError(exc.detail, file="--set", field=exc.field or key) from None
        source = "--set"
    return from_dict(cls, data, source=source)


def _merge(into: dict, new: dict, source: str, prefix: str) -> None:
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if key not in into:
            raise InputError(f"unknown key (valid: {', '.join(sorted(into))})", file=source, field=dotted)
        if isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, source, dotted + ".")
        else:
            into[key] = value


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg, sort_keys=False)
