"""The task registry: task names to task classes.

Three ways in:

- the built-in tasks, listed here rather than registering themselves on import, so
  that no task module has to import the registry (the import graph stays acyclic);
- **plugins**: any installed distribution that declares a ``Task`` subclass in the
  ``tailor_evo.tasks`` entry-point group, for example in its ``pyproject.toml``::

      [project.entry-points."tailor_evo.tasks"]
      countdown = "tailor_evo_countdown:CountdownTask"

  Every command then finds ``--task countdown`` (see ``docs/tasks.md``);
- :func:`register`, for a task defined in the calling program (tests, notebooks).

A plugin that fails to load does not break the other tasks: it is logged once, and
asking for it gives an error that says why it failed.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from tailor_evo.errors import InputError
from tailor_evo.tasks.base import Task

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tailor_evo.tasks"

_REGISTRY: dict[str, type[Task]] = {}
_BROKEN: dict[str, str] = {}          # plugin name -> why it could not be loaded
_LOADED = False


def register(cls: type[Task]) -> type[Task]:
    """Add a task class under its ``name`` (usable as a class decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    """Built-ins, then the entry-point plugins (once per process)."""
    global _LOADED
    from tailor_evo.tasks.igsm import IGSMTask
    from tailor_evo.tasks.kk import KnightsKnavesTask

    for cls in (KnightsKnavesTask, IGSMTask):
        _REGISTRY.setdefault(cls.name, cls)
    if _LOADED:
        return
    _LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            if _REGISTRY[ep.name].__module__.split(".")[0] != ep.value.split(".")[0].split(":")[0]:
                log.warning("task plugin %r (%s) ignored: the name is already taken by %s",
                            ep.name, ep.value, _REGISTRY[ep.name].__module__)
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the other tasks
            _BROKEN[ep.name] = f"{ep.value} failed to import: {type(exc).__name__}: {exc}"
            log.warning("task plugin %r: %s", ep.name, _BROKEN[ep.name])
            continue
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            _BROKEN[ep.name] = f"{ep.value} is not a subclass of tailor_evo.tasks.base.Task"
        elif cls.name != ep.name:
            _BROKEN[ep.name] = f"{ep.value} is named {cls.name!r}, not {ep.name!r} as its entry point says"
        else:
            _REGISTRY[ep.name] = cls
            continue
        log.warning("task plugin %r: %s", ep.name, _BROKEN[ep.name])


# Families of tasks named "PREFIX:ARGUMENT", each a class built from the argument: "rg:NAME" is
# the reasoning-gym dataset NAME (tailor_evo/tasks/reasoning_gym.py, the reasoning-gym extra).
FAMILIES = {"rg": "tailor_evo.tasks.reasoning_gym:ReasoningGymTask"}


def _family_task(name: str) -> Task | None:
    prefix, sep, argument = name.partition(":")
    if not sep or prefix not in FAMILIES:
        return None
    import importlib

    module, _, attr = FAMILIES[prefix].partition(":")
    return getattr(importlib.import_module(module), attr)(argument)


def get_task(name: str) -> Task:
    _load()
    if name not in _REGISTRY:
        task = _family_task(name)
        if task is not None:
            return task
    if name in _BROKEN and name not in _REGISTRY:
        raise InputError(f"task plugin {name!r} could not be loaded: {_BROKEN[name]}", field="task")
    if name not in _REGISTRY:
        raise InputError(f"unknown task {name!r} (known: {', '.join(sorted(_REGISTRY))}); a task from "
                         f"another package is found once it is installed with an entry point in the "
                         f"{ENTRY_POINT_GROUP!r} group; rg:NAME is the reasoning-gym dataset NAME", field="task")
    return _REGISTRY[name]()


def task_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def unregister(name: str) -> None:
    """Remove a task added with :func:`register` (tests register toy tasks for one module)."""
    _REGISTRY.pop(name, None)
