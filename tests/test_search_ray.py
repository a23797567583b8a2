"""The search's evaluation map on a local Ray of 2 CPUs gives the archive of the process pool.

Marked ``multiprocess`` (Ray starts its own processes; ``make test-multiprocess``, run by CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tailor_evo.errors import InputError
from tailor_evo.search.engine import SearchConfig, run_search
from tests.test_search_tasks import small_cfg as small_search_cfg


def small_cfg(**kw) -> SearchConfig:
    return small_search_cfg("kk", generations=2, **kw)


def archive_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "archive.jsonl").read_text().splitlines()]


@pytest.mark.multiprocess
def test_ray_map_gives_the_archive_of_the_process_pool(tmp_path):
    import ray  # in the test extra: a missing Ray is a failed install, not a reason to skip

    from tailor_evo.search.ray_map import RayMap

    pool = run_search(small_cfg(workers=2), tmp_path / "pool", progress=False, report=False)
    on_ray = run_search(small_cfg(workers=2, backend="ray"), tmp_path / "ray", progress=False, report=False)
    assert not ray.is_initialized()                   # the Ray it started is shut down again
    assert pool.archive and archive_rows(tmp_path / "pool") == archive_rows(tmp_path / "ray")
    assert [m["evaluated"] for m in on_ray.metrics] == [m["evaluated"] for m in pool.metrics]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:                                              # the work really leaves this process, in order
        answers = list(RayMap(2)(lambda x: (x, os.getpid()), range(6)))
        assert [x for x, _ in answers] == list(range(6)) and os.getpid() not in {pid for _, pid in answers}
        run_search(small_cfg(workers=2, backend="ray"), tmp_path / "joined", progress=False, report=False)
        assert ray.is_initialized()                   # a Ray it joined keeps running
        assert archive_rows(tmp_path / "joined") == archive_rows(tmp_path / "pool")
    finally:
        ray.shutdown()


def test_unknown_backend_and_a_stray_address_are_refused(tmp_path):
    with pytest.raises(InputError, match="must be one of processes, ray"):
        run_search(small_cfg(backend="dask"), tmp_path / "a", progress=False, report=False)
    with pytest.raises(InputError, match="only with backend: ray"):
        run_search(small_cfg(ray_address="auto"), tmp_path / "b", progress=False, report=False)
