"""Built-in tasks. Importing this package registers them."""

from tailor_evo.tasks.base import Problem, Task, Verdict, get_task, register, task_names  # noqa: F401
from tailor_evo.tasks import kk, igsm  # noqa: F401,E402
