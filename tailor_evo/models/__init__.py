"""Backbones: resolve a name (tiny, smollm2-135m, gemma3-270m) or a path to a local model directory."""

from tailor_evo.models.registry import BACKBONES, list_backbones, load, prepare, resolve  # noqa: F401
