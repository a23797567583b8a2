"""The search's evaluation map on Ray: the DEAP toolbox's ``map`` as Ray tasks.

``search.backend: ray`` evaluates each generation's candidates as Ray tasks instead of in
a local process pool, on a Ray started here (``search.ray_address: ""``, with ``workers``
CPUs) or on a running cluster (``"auto"``, ``"ray://HOST:PORT"``, or Ray's own
``RAY_ADDRESS`` variable when the setting is empty). Each evaluation is
seeded by its job, not by where it runs, so the archive is the one the process pool (or
one process) gives for the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tailor_evo.extras import require


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayMap:
    """``map(fn, items)`` over Ray tasks, in the order of ``items``. The function is put in Ray's
    object store once per call, so a large evaluator is not sent with every item."""

    def __init__(self, workers: int, address: str = "") -> None:
        require("ray", what="the ray search backend", field="backend")
        import ray

        self._ray = ray
        self._started_here = not ray.is_initialized()
        address = address or os.environ.get("RAY_ADDRESS", "")     # Ray's own variable names a cluster too
        if self._started_here:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self._task = ray.remote(num_cpus=1)(_apply)

    def __call__(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        ray = self._ray
        fn_ref = ray.put(fn)
        futures = [self._task.remote(fn_ref, item) for item in items]
        for future in futures:          # results in order, each as soon as it and those before it are done
            yield ray.get(future)

    def close(self) -> None:
        """Shut down the Ray this map started (a cluster it joined keeps running)."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
