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
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def test_cache_dir():
    return os.environ["TAILOR_EVO_CACHE"]


SMALL_CORPUS = ["Rosa is a knight. Tariq is a knave. <think> assume </think> <answer> (1) Rosa is a knight </answer>",
                "The number of each Lion equals 3 plus 4. <answer> 7 </answer>"] * 5


@pytest.fixture(scope="session")
def small_tiny_dir(tmp_path_factory):
    """A very small tiny backbone (32 hidden units, 320-token vocabulary) for engine and server tests."""
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("small-tiny") / "m", seed=1, hidden_size=32, layers=2, heads=2,
                      vocab_size=320, corpus=SMALL_CORPUS)
