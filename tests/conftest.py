"""Test-wide settings.

Tests never write into the user's model cache: unless ``TAILOR_EVO_CACHE`` is set
explicitly, the whole session shares one temporary cache (the tiny backbone is then
built once per session, in a few seconds). Torch runs on one thread: on a small,
shared machine two threads per process oversubscribe the cores and slow tests down.
"""

import os
import tempfile

import pytest


def pytest_configure(config):
    if not os.environ.get("TAILOR_EVO_CACHE"):
        os.environ["TAILOR_EVO_CACHE"] = tempfile.mkdtemp(prefix="tailor-evo-test-cache-")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def test_cache_dir():
    return os.environ["TAILOR_EVO_CACHE"]
