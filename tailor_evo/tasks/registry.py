"""The task registry: task names to task classes.

The built-in tasks are listed here rather than registering themselves on import, so
that no task module has to import the registry (and the registry, the package that
holds it): the import graph stays acyclic. Other tasks are added with :func:`register`.
"""

from __future__ import annotations

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Add a task class under its ``name`` (usable as a class decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def _builtins() -> None:
    from tailor_evo.tasks.igsm import IGSMTask
    from tailor_evo.tasks.kk import KnightsKnavesTask

    for cls in (KnightsKnavesTask, IGSMTask):
        _REGISTRY.setdefault(cls.name, cls)


def get_task(name: str) -> Task:
    _builtins()
    if name not in _REGISTRY:
        raise InputError(f"unknown task {name!r} (known: {', '.join(sorted(_REGISTRY))})", field="task")
    return _REGISTRY[name]()


def task_names() -> list[str]:
    _builtins()
    return sorted(_REGISTRY)


def unregister(name: str) -> None:
    """Remove a task added with :func:`register` (tests register toy tasks for one module)."""
    _REGISTRY.pop(name, None)
