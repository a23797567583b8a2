"""Seed libraries: the task's hand-written primitives that start the population.

Loading and validation belong to :mod:`populations.library` (the one place that
knows the library format); the search only asks it for a library by name, such as
``rule-based``, or by path.
"""

from __future__ import annotations

from tailor_evo.populations.library import load_library
from tailor_evo.search.genome import Primitive

__all__ = ["load_seed_library"]


def load_seed_library(name_or_path: str, task: str) -> list[Primitive]:
    """Primitives of one validated seed library; raises InputError naming the file and field on bad content."""
    return load_library(name_or_path, task).primitives
