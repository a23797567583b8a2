"""Text generation engines. See :mod:`tailor_evo.generation.base` for the protocol."""

from tailor_evo.generation.base import Completion, Engine, SamplingParams  # noqa: F401
