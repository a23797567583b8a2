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

from tailor_evo.domains import violations
from tailor_evo.errors import InputError
from tailor_evo.io import read_text

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
    cfg = cls(**kwargs)
    for name, message in violations(cfg):          # nested configs were checked when they were built
        raise InputError(message, file=source, field=name)
    return cfg


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
    if origin is list and typing.get_args(tp):
        item = typing.get_args(tp)[0]
        return [_coerce(item, v, source=source, field=f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def open_mappings(cls: type, prefix: str = "") -> set[str]:
    """Dotted paths of the fields typed ``dict[...]``: mappings whose keys are data (drill names,
    task shares), not settings, so a new key is added rather than refused as unknown. Their
    values are still checked (type coercion and the config's own ``check``)."""
    out = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) is dict:
            out.add(prefix + f.name)
        elif dataclasses.is_dataclass(tp):
            out |= open_mappings(tp, f"{prefix}{f.name}.")
    return out


def _set_dotted(data: dict, dotted: str, value: Any, open_paths: set[str] = frozenset()) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise InputError("is not a section", field=".".join(keys[: keys.index(k) + 1]))
        node = node[k]
    if keys[-1] not in node and ".".join(keys[:-1]) not in open_paths:
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
    open_paths = open_mappings(cls)
    data = to_dict(base if base is not None else cls())
    source = "defaults"
    if path is not None:
        path = Path(path)
        text = read_text(path, "config file")
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise InputError(f"invalid YAML: {exc}", file=str(path), line=None if line is None else line + 1) from None
        if not isinstance(loaded, dict):
            raise InputError("top level must be a mapping", file=str(path))
        _merge(data, loaded, str(path), "", open_paths)
        source = str(path)
        from_dict(cls, data, source=source)      # type errors of the file are named as the file's
    for item in overrides:
        key, value = parse_override(item)
        try:
            _set_dotted(data, key, value, open_paths)
        except InputError as exc:
            raise InputError(exc.detail, file="--set", field=exc.field or key) from None
        source = "--set"
    return from_dict(cls, data, source=source)


def resumed_config(cls: type[T], saved: str | Path, config_path: str | Path | None = None,
                   overrides: list[str] | tuple[str, ...] = (), seed: int | None = None,
                   safe: tuple[str, ...] = ()) -> T:
    """The config of a run being resumed: its saved ``config.yaml``, unchanged.

    Every command resumes by this one rule, so that a run directory's ``config.yaml``
    stays exactly what ran. Settings given with ``--resume`` (a file, ``--set``, options,
    the global ``--seed``) are applied on top of the saved config; any that differs from
    it is refused with the key and both values named, unless the key is in ``safe``
    (settings that do not change what the finished steps computed, such as the number of
    further steps). Settings equal to the saved ones are accepted, so repeating the
    original command with ``--resume`` works.
    """
    saved = Path(saved)
    if not saved.exists():
        raise InputError("nothing to resume: no config.yaml in the run directory", file=str(saved.parent))
    if not read_text(saved, "config file").strip():
        # an empty file would load as the defaults, and the run would continue as something it never was
        raise InputError("the saved config is empty, so what this run ran is unknown; it cannot be resumed "
                         "(start again with --overwrite)", file=str(saved))
    base = load_config(cls, saved)
    cfg = load_config(cls, config_path, overrides, base=base)
    if seed is not None and hasattr(cfg, "seed"):
        cfg.seed = seed
    saved_values, given_values = to_dict(base), to_dict(cfg)
    changed = [key for key in _diff(saved_values, given_values) if key not in safe]
    if changed:
        detail = "; ".join(f"{key}: saved {_get(saved_values, key)!r}, given {_get(given_values, key)!r}"
                           for key in changed)
        allowed = f" (safe to change on resume: {', '.join(safe)})" if safe else ""
        raise InputError(f"--resume continues the saved run and cannot change {detail}; start a new run "
                         f"directory (or --overwrite) to change them{allowed}", file=str(saved))
    return cfg


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in a:
        if isinstance(a[key], dict) and isinstance(b.get(key), dict):
            out += _diff(a[key], b[key], f"{prefix}{key}.")
        elif a[key] != b.get(key):
            out.append(f"{prefix}{key}")
    return out


def _get(data: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def _merge(into: dict, new: dict, source: str, prefix: str, open_paths: set[str] = frozenset()) -> None:
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if key not in into and prefix.rstrip(".") not in open_paths:
            raise InputError(f"unknown key (valid: {', '.join(sorted(into))})", file=source, field=dotted)
        if isinstance(into.get(key), dict) and isinstance(value, dict):
            _merge(into[key], value, source, dotted + ".", open_paths)
        else:
            into[key] = value


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg, sort_keys=False)
