"""The warm-start methods: one record per method, the one place that knows them.

Every stage that treats methods differently reads the record instead of a name: the
warm-start builder calls its ``build``, the pipeline runs a search first when it
``needs_archive`` (with the method's ``own_search`` settings when it has some) and makes
a teacher engine when it ``needs_teacher``, and the experiment grid takes its run order,
its default methods and the report's comparisons from ``order`` and ``role``.

Adding a method is a builder (a function from :class:`MethodInputs` to
:class:`CandidateSet`, in a module of its own) and one :func:`register_method` call:
here for a built-in method, in the calling program otherwise. The built-in methods are
listed here rather than registering themselves on import, so that no builder module has
to import the registry (the import graph stays acyclic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.warmstart.builders import archive_elites, seed_library, teacher_answers
from tailor_evo.warmstart.records import CandidateSet, MethodInputs

# how the experiment report compares a method: the proposed ones against each baseline;
# an ablation is reported but neither claims nor is claimed against
ROLES = ("proposed", "baseline", "ablation")


@dataclass(frozen=True)
class OwnSearch:
    """A search that a method runs for itself instead of the configured one (an ablation of it)."""

    tag: str                                   # added to the grid's search name, so its archive is kept apart
    settings: Mapping[str, Any] = field(default_factory=dict)   # search config fields set whatever the config says

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


@dataclass(frozen=True)
class WarmstartMethod:
    """One warm-start method: where its candidates come from and what it needs to build them."""

    name: str
    source: str                                 # where its candidates come from, in a few words
    build: Callable[[MethodInputs], CandidateSet]   # the verified candidates of one build
    order: int = 50                             # the grid runs lower first: put a method after those it reads
    needs_archive: bool = False                 # renders a search archive: the pipeline runs (or shares) a search
    needs_teacher: bool = False                 # a teacher engine writes its candidates
    own_search: OwnSearch | None = None         # its archive comes from a search of its own settings
    role: str = "baseline"                      # one of ROLES
    in_default_grid: bool = False               # in the experiment grid when the config names no methods

    def check_inputs(self, *, archive: bool, teacher: bool, archive_field: str = "--archive",
                     teacher_field: str = "--teacher") -> None:
        """Refuse a build that lacks what the method needs, naming the option or field that gives it."""
        if self.needs_archive and not archive:
            raise InputError(f"the {self.name} method needs a search run directory", field=archive_field)
        if self.needs_teacher and not teacher:
            raise InputError(f"the {self.name} method needs a teacher engine", field=teacher_field)


_REGISTRY: dict[str, WarmstartMethod] = {}     # registration order is the order reports list them


def register_method(method: WarmstartMethod) -> WarmstartMethod:
    """Add a method; a name that is taken is refused (unregister it first to replace it)."""
    if not method.name or "," in method.name or method.name != method.name.strip():
        raise InputError(f"invalid method name {method.name!r} (no commas or surrounding spaces)", field="name")
    if method.name in _REGISTRY:
        raise InputError(f"warm-start method {method.name!r} is already registered "
                         f"(by {_REGISTRY[method.name].build.__module__})", field="name")
    if method.role not in ROLES:
        raise InputError(f"unknown role {method.role!r} (known: {', '.join(ROLES)})", field="role")
    if method.own_search is not None and not method.needs_archive:
        raise InputError("a method with a search of its own renders its archive: set needs_archive",
                         field="own_search")
    if not callable(method.build):
        raise InputError(f"build must be a function of MethodInputs, got {type(method.build).__name__}",
                         field="build")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a registered method (tests register toy methods for one test)."""
    _REGISTRY.pop(name, None)


def get_method(name: str, field: str = "method") -> WarmstartMethod:
    """The record of ``name``; an unknown name is an :class:`InputError` listing the known ones."""
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r} (known: {', '.join(_REGISTRY)})", field=field)
    return _REGISTRY[name]


def method_names() -> tuple[str, ...]:
    """Every method, in the order reports list them (registration order)."""
    return tuple(_REGISTRY)


def run_order(names: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """``names`` (default: every method) in the grid's run order: by ``order``, then as reports list them."""
    index = {m: i for i, m in enumerate(_REGISTRY)}
    names = list(_REGISTRY) if names is None else list(names)
    return sorted(names, key=lambda m: (_REGISTRY[m].order, index[m]) if m in _REGISTRY else (10**9, 0))


def with_role(role: str) -> list[str]:
    """The methods of one role, in run order (the report compares in this order)."""
    return [m for m in run_order() if _REGISTRY[m].role == role]


def default_grid() -> list[str]:
    """The methods an experiment runs when its config names none, in run order."""
    return [m for m in run_order() if _REGISTRY[m].in_default_grid]


# --- the built-in methods ----------------------------------------------------------------
# Run order: the redistill teacher is by default another cell's model (the grid's
# ``redistill_teacher``, e.g. the rule-based cell after SFT), so redistill runs last.
for _method in (
    WarmstartMethod("tailor", "the elite primitives of a search archive", archive_elites, order=30,
                    needs_archive=True, role="proposed", in_default_grid=True),
    # the ablation of the LLM operator and renderer when the config uses them; on request
    WarmstartMethod("tailor-gp", "the elites of an archive searched with the offline operators (GP variation, "
                    "executor rendering) whatever the search config says", archive_elites, order=40,
                    needs_archive=True, own_search=OwnSearch("gp", {"operator": "gp", "renderer": "executor"}),
                    role="ablation"),
    WarmstartMethod("four-behaviour", "the seed library of verification, backtracking, subgoal setting and "
                    "backward chaining primitives", seed_library("four-behaviour"), order=20, in_default_grid=True),
    WarmstartMethod("rule-based", "the task's rule-based seed primitive (its canonical solution procedure)",
                    seed_library("rule-based"), order=10, in_default_grid=True),
    WarmstartMethod("redistill", "a teacher engine's verified answers to the plain prompt (no primitive)",
                    teacher_answers, order=90, needs_teacher=True, in_default_grid=True),
):
    register_method(_method)
