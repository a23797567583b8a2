"""Text generation engines. See :mod:`tailor_evo.generation.base` for the protocol."""

from __future__ import annotations

from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.generation.base import Completion, Engine, SamplingParams  # noqa: F401

ENGINE_KINDS = ("hf", "openai", "vllm")


def engine_spec(model: str, backend: str) -> str:
    """``model`` as an engine spec: a spec with its own kind (``vllm:``, ``openai:``) is kept;
    a bare backbone name or model directory runs on ``backend``."""
    kind, sep, _ = model.partition(":")
    return model if sep and kind in ENGINE_KINDS else f"{backend}:{model}"


def make_engine(spec: str, *, batch_size: int | None = None, **kw: Any) -> Engine:
    """Build an engine from a one-string spec, as used in configs and on the command line.

    - ``hf:NAME_OR_PATH`` (``hf:tiny``, ``hf:/path/to/model``); a bare name means ``hf``.
    - ``openai:BASE_URL#MODEL`` (``openai:http://127.0.0.1:8000/v1#tiny``).
    - ``vllm:NAME_OR_PATH``.

    Keyword arguments go to the engine's constructor. ``batch_size`` sets the in-process
    ``hf`` engine's fixed batch (and turns its progress bar off); servers (``openai``,
    ``vllm``) batch by themselves, so it does not apply to them.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ENGINE_KINDS:
        kind, rest = "hf", spec
    if not rest:
        raise InputError(f"engine spec {spec!r} names no model", field="engine")
    if kind == "hf":
        from tailor_evo.generation.hf import HFEngine

        if batch_size is not None:
            kw = {"batch_size": batch_size, "show_progress": False, **kw}
        return HFEngine.from_pretrained(rest, **kw)
    if kind == "openai":
        url, hash_, model = rest.rpartition("#")
        if not hash_ or not url or not model:
            raise InputError(f"openai engine spec must look like openai:URL#MODEL, got {spec!r}", field="engine")
        from tailor_evo.generation.openai_backend import OpenAIEngine

        return OpenAIEngine(url, model, **kw)
    from tailor_evo.generation.vllm_backend import VLLMEngine

    return VLLMEngine(rest, **kw)
