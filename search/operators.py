"""The variation operator families by name: ``search --operator NAME`` and ``operator:`` in the config.

Adding a family is a :class:`~tailor_evo.search.variation.VariationOperator` subclass in a
module of its own and one :func:`register_operator` call: here for a built-in family, in
the calling program otherwise. The command line's choices and the config check read this
registry, and the engine builds the family it names; nothing else knows the names. The
built-in families are listed here rather than registering themselves on import, so that no
family module has to import the registry (the import graph stays acyclic).
"""

from __future__ import annotations

from tailor_evo.errors import InputError
from tailor_evo.search.gp_variation import GPVariation
from tailor_evo.search.llm_variation import LLMVariation
from tailor_evo.search.variation import VariationOperator

_REGISTRY: dict[str, type[VariationOperator]] = {}


def register_operator(cls: type[VariationOperator]) -> type[VariationOperator]:
    """Add a family under its ``name`` (usable as a class decorator); a name that is taken is refused."""
    if not (isinstance(cls, type) and issubclass(cls, VariationOperator)):
        raise InputError(f"{cls!r} is not a subclass of VariationOperator", field="operator")
    if not cls.name:
        raise InputError(f"{cls.__name__} has no name", field="operator")
    if cls.name in _REGISTRY:
        raise InputError(f"search operator {cls.name!r} is already registered (by "
                         f"{_REGISTRY[cls.name].__module__}.{_REGISTRY[cls.name].__name__})", field="operator")
    _REGISTRY[cls.name] = cls
    return cls


def unregister_operator(name: str) -> None:
    """Remove a registered family (tests register toy families for one test)."""
    _REGISTRY.pop(name, None)


def get_operator(name: str, field: str = "operator") -> type[VariationOperator]:
    """The family class of ``name``; an unknown name is an :class:`InputError` listing the known ones."""
    if name not in _REGISTRY:
        raise InputError(f"unknown search operator {name!r} (known: {', '.join(_REGISTRY)})", field=field)
    return _REGISTRY[name]


def operator_names() -> list[str]:
    """The registered families, built-in first."""
    return list(_REGISTRY)


for _cls in (GPVariation, LLMVariation):
    register_operator(_cls)
