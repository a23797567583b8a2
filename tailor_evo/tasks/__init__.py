"""Tasks: the :class:`Task` interface (``base``), the registry, and the built-in KK and iGSM."""

from tailor_evo.tasks.base import Problem, Task, Verdict  # noqa: F401
from tailor_evo.tasks.registry import get_task, register, task_names  # noqa: F401
