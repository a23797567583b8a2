"""Device memory of one process, estimated from the model's config and the run's settings.

The first run of a larger backbone happens on a GPU node, where running out of memory an
hour into a job is the expensive way to learn the settings were wrong. ``--dry-run`` of
``train sft``, ``train rl``, ``run`` and ``experiment`` prints this estimate instead, read
from config.json (registry.model_config: no weights are loaded, nothing is downloaded).

What is counted, per process, in GB (1e9 bytes):

- **weights**: every parameter in the training dtype (``auto`` counts as bfloat16, what it is
  on a GPU); LoRA adapters in float32 beside them (peft keeps adapters in float32).
- **gradients** and **optimiser**: of the trainable parameters only, in the same dtype as
  the weights they belong to; AdamW keeps two moments per parameter (the trainers' only
  optimiser; no float32 master copy).
- **reference** (RL with ``beta > 0``): a second copy of the weights, none with LoRA (the
  base with adapters off serves as the reference).
- **activations** of one micro-batch in the training pass, per decoder layer about
  ``rows x tokens x (12 x hidden + 4 x intermediate)`` values in the training dtype (the
  saved inputs of the norms, projections, attention and the gated MLP); with gradient
  checkpointing one layer's input per layer plus one layer's full set, recomputed in the
  backward pass. Eager attention adds the ``heads x tokens^2`` score and probability
  matrices per layer; sdpa and flash attention keep none.
- **logits**: rows x positions x vocabulary x (dtype + 8) bytes: the LM head's output,
  its float32 copy and one float32 temporary (log-softmax, its gradient). RL computes them
  for the completion positions only, or ``logprob_chunk`` positions at a time.
- **KV cache** of generation on the live model (``hf`` rollouts and evaluations), which
  never coincides with a training pass: the peak counts the larger of the two.
- **vLLM**: its ``gpu_memory_utilization`` share of the device, weights and KV cache inside.
- **runtime**: a fixed 2 GB for the CUDA context, kernels and the allocator's slack.

A stage's peak is what it holds throughout plus the larger of its training and its
generation transients. The stages of ``run`` and ``experiment`` run one after another,
each loading its model from disk, so each is its own row; the largest must fit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from tailor_evo.errors import InputError

GB = 1e9
DEVICE_GB = 80.0                  # one 80 GB GPU (A100/H100), the size the estimate is checked against
RUNTIME_BYTES = 2 * GB            # CUDA context, kernels, allocator slack
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
AUTO_DTYPE = "bfloat16"           # what dtype auto resolves to on a CUDA GPU with bfloat16
ADAPTER_BYTES = 4                 # peft keeps LoRA weights in float32 beside a half-precision base
ACT_PER_HIDDEN = 12               # saved values per token per layer, in units of hidden ...
ACT_PER_INTERMEDIATE = 4          # ... and of the MLP's intermediate size (gate, up, act, product)
LOGIT_EXTRA_BYTES = 8             # the float32 copy of the logits and one float32 temporary
PROMPT_TOKENS = 512               # assumed prompt length where a config has none (chat-templated puzzle)
VLLM_DEFAULT_SHARE = 0.85         # VLLMEngine's gpu_memory_utilization where a config sets none
HF_ENGINE_BATCH = 32              # HFEngine's default batch


def count(n: float) -> str:
    """A parameter count for people: 3.09 B, 2.0 M, 12 k."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "B" else f"{n / size:.1f} {unit}"
    return str(int(n))


def dtype_name(setting: str) -> str:
    """The dtype a ``dtype`` setting trains in on a GPU (``auto``: bfloat16)."""
    return AUTO_DTYPE if setting == "auto" else setting


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on (from its config.json)."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool                    # input embedding and LM head share one matrix
    qkv_bias: bool = False        # Qwen2 has biases on the q, k and v projections

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "config.json") -> "ModelShape":
        """The shape of a Hugging Face config dict; a missing size is an error naming its field."""
        def get(key: str) -> int:
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"expected a positive integer, got {value!r}", file=source, field=key)
            return value

        hidden, heads = get("hidden_size"), get("num_attention_heads")
        head_dim = config.get("head_dim") or hidden // heads
        return cls(hidden=hidden, layers=get("num_hidden_layers"), intermediate=get("intermediate_size"),
                   vocab=get("vocab_size"), heads=heads, kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=int(head_dim), tied=bool(config.get("tie_word_embeddings", False)),
                   qkv_bias=config.get("model_type") == "qwen2" or bool(config.get("attention_bias", False)))

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of a decoder layer, by its module name."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def layer_parameters(self) -> int:
        linear = sum(a * b for a, b in self.projections().values())
        bias = self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0
        return linear + bias + 2 * self.hidden          # + the two norms' weights

    def parameters(self) -> int:
        """All parameters: embeddings, LM head unless tied, the layers and the final norm (norms
        beyond two per layer, as in Gemma 3, are left out: well under 0.1%)."""
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * self.layer_parameters() + self.hidden

    def lora_parameters(self, r: int, targets: list[str]) -> int:
        """Parameters of rank-``r`` adapters (A: in x r, B: r x out) on ``targets`` in every layer."""
        dims = self.projections()
        unknown = [t for t in targets if t not in dims]
        if unknown:
            raise InputError(f"no linear layer {unknown[0]!r} to size (known: {', '.join(dims)})",
                             field="lora.target_modules")
        return self.layers * sum(r * (dims[t][0] + dims[t][1]) for t in targets)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return self.layers * 2 * self.kv_dim * dtype_bytes

    def layer_activations(self, rows: int, tokens: int, dtype_bytes: int, eager: bool) -> float:
        """Values one decoder layer saves for its backward pass, in bytes."""
        per_token = ACT_PER_HIDDEN * self.hidden + ACT_PER_INTERMEDIATE * self.intermediate
        scores = 2 * self.heads * tokens * tokens if eager else 0       # scores and probabilities
        return float(rows) * (tokens * per_token + scores) * dtype_bytes


@functools.lru_cache(maxsize=64)
def model_shape(model: str) -> ModelShape:
    """The shape of a backbone name, model directory or hub id (no weights loaded; read once per
    process: an experiment asks for the same backbones in every cell)."""
    from tailor_evo.models.registry import model_config

    return ModelShape.from_config(model_config(model), source=f"{model}/config.json")


@dataclass(frozen=True)
class MemoryLine:
    """One part of a process's memory. ``phase``: ``held`` for the whole stage, ``train`` during
    a training pass, ``generate`` during generation on the live model (never both at once)."""

    part: str
    bytes: float
    note: str = ""
    phase: str = "held"


@dataclass
class MemoryEstimate:
    """The memory of one process in one stage, part by part, against one device."""

    stage: str
    model: str
    dtype: str
    parameters: int
    trainable: int
    lines: list[MemoryLine] = field(default_factory=list)
    device_bytes: float = DEVICE_GB * GB
    warnings: list[str] = field(default_factory=list)

    def phase_bytes(self, phase: str) -> float:
        return sum(line.bytes for line in self.lines if line.phase == phase)

    @property
    def peak(self) -> float:
        return self.phase_bytes("held") + max(self.phase_bytes("train"), self.phase_bytes("generate"))

    @property
    def fits(self) -> bool:
        return self.peak <= self.device_bytes and not self.warnings


# --------------------------------------------------------------------------------------------------
# training stages


def _weights_lines(shape: ModelShape, dtype: str, lora: Any, with_reference: bool) -> tuple[list[MemoryLine], int]:
    """Weights, gradients, AdamW and reference of a trainer, and the trainable parameter count."""
    db = DTYPE_BYTES[dtype]
    params = shape.parameters()
    lines = []
    if lora is not None and lora.enabled:
        trainable = shape.lora_parameters(lora.r, list(lora.target_modules))
        tb = ADAPTER_BYTES
        lines.append(MemoryLine("weights", params * db + trainable * tb,
                                f"{count(params)} x {db} B + LoRA r={lora.r} {count(trainable)} x {tb} B"))
    else:
        trainable, tb = params, db
        lines.append(MemoryLine("weights", params * db, f"{count(params)} x {db} B ({dtype})"))
    lines.append(MemoryLine("gradients", trainable * tb, f"{count(trainable)} trainable x {tb} B"))
    lines.append(MemoryLine("optimiser", 2 * trainable * tb, f"AdamW, 2 moments x {tb} B"))
    if with_reference:
        if lora is not None and lora.enabled:
            lines.append(MemoryLine("reference", 0.0, "LoRA: the base with adapters off"))
        else:
            lines.append(MemoryLine("reference", params * db, f"a copy in {dtype}"))
    return lines, trainable


def _activation_line(shape: ModelShape, rows: int, tokens: int, db: int, checkpointing: bool,
                     attn: str) -> MemoryLine:
    eager = attn == "eager"
    one_layer = shape.layer_activations(rows, tokens, db, eager)
    where = f"{rows} x {tokens} tokens"
    if checkpointing:
        total = shape.layers * rows * tokens * shape.hidden * db + one_layer
        note = f"{where}, checkpointed: {shape.layers} layer inputs + 1 layer"
    else:
        total = shape.layers * one_layer
        note = f"{where}, all {shape.layers} layers (gradient_checkpointing off)"
    return MemoryLine("activations", total, note + (", eager attention" if eager else ""), "train")


def _logit_line(shape: ModelShape, rows: int, positions: int, db: int, note: str) -> MemoryLine:
    return MemoryLine("logits", float(rows) * positions * shape.vocab * (db + LOGIT_EXTRA_BYTES),
                      f"{rows} x {positions} x {shape.vocab} vocab, {note}", "train")


def _kv_line(shape: ModelShape, rows: int, tokens: int, db: int, what: str) -> MemoryLine:
    return MemoryLine("KV cache", float(rows) * tokens * shape.kv_bytes_per_token(db),
                      f"{what}: {rows} x {tokens} tokens", "generate")


def _vllm_line(shape: ModelShape, fraction: float, device: float, est: MemoryEstimate, what: str,
               tokens: int) -> MemoryLine:
    """vLLM's share of the device; it must hold the weights (bfloat16) and a KV cache of at least
    one sequence of ``tokens``, else the estimate warns (vLLM would refuse to start)."""
    share = fraction * device
    weights = shape.parameters() * DTYPE_BYTES[AUTO_DTYPE]
    room = int(max(0.0, share - weights) // shape.kv_bytes_per_token(DTYPE_BYTES[AUTO_DTYPE]))
    if room < tokens:
        est.warnings.append(f"vLLM's share ({share / GB:.1f} GB) holds the {est.model} weights ({weights / GB:.1f} GB) "
                            f"and a KV cache of {room} tokens, fewer than one sequence of {tokens}")
    return MemoryLine("vLLM", share, f"{what}: gpu_memory_utilization {fraction:g} of {device / GB:.0f} GB; "
                                     f"weights {weights / GB:.1f} GB, KV room ~{room / 1000:.0f} k tokens")


def estimate_sft(cfg: Any, shape: ModelShape | None = None, device_gb: float = DEVICE_GB,
                 prompt_tokens: int = PROMPT_TOKENS) -> MemoryEstimate:
    """One ``train sft`` process of ``cfg`` (an SFTConfig): its largest micro-batch is
    ``batch_size`` rows of ``max_length`` (padded, packed), or for bucketed batches
    ``bucket_tokens`` tokens in rows of up to ``max_length``."""
    shape = shape or model_shape(cfg.model)
    dtype = dtype_name(cfg.dtype)
    db = DTYPE_BYTES[dtype]
    lines, trainable = _weights_lines(shape, dtype, cfg.lora, with_reference=False)
    est = MemoryEstimate("train sft", cfg.model, dtype, shape.parameters(), trainable,
                         device_bytes=device_gb * GB)
    if cfg.batching == "bucketed":
        rows = max(1, cfg.bucket_tokens // cfg.max_length)
    else:
        rows = cfg.batch_size
    lines.append(_activation_line(shape, rows, cfg.max_length, db, cfg.gradient_checkpointing,
                                  cfg.attn_implementation))
    lines.append(_logit_line(shape, rows, cfg.max_length, db, "every position"))
    if cfg.eval.every > 0 and cfg.eval.n > 0:
        lines.append(_kv_line(shape, cfg.eval.batch_size, prompt_tokens + cfg.eval.max_new_tokens, db,
                              "evaluation on the live model"))
    lines.append(MemoryLine("runtime", RUNTIME_BYTES, "CUDA context, kernels, allocator"))
    est.lines = lines
    return est


def estimate_rl(cfg: Any, shape: ModelShape | None = None, device_gb: float = DEVICE_GB,
                prompt_tokens: int = PROMPT_TOKENS) -> MemoryEstimate:
    """One ``train rl`` process of ``cfg`` (an RLConfig): a training micro-batch is ``micro_batch``
    sequences of ``prompt_tokens + max_new_tokens``; rollouts and evaluations go through the
    live model (``hf``: its KV cache) or vLLM (its share)."""
    shape = shape or model_shape(cfg.model)
    dtype = dtype_name(cfg.dtype)
    db = DTYPE_BYTES[dtype]
    lines, trainable = _weights_lines(shape, dtype, cfg.lora, with_reference=cfg.beta > 0)
    est = MemoryEstimate("train rl", cfg.model, dtype, shape.parameters(), trainable, device_bytes=device_gb * GB)
    tokens = prompt_tokens + cfg.max_new_tokens
    lines.append(_activation_line(shape, cfg.micro_batch, tokens, db, cfg.gradient_checkpointing,
                                  cfg.attn_implementation))
    if cfg.logprob_chunk > 0:
        lines.append(_logit_line(shape, cfg.micro_batch, min(cfg.logprob_chunk, cfg.max_new_tokens), db,
                                 f"logprob_chunk {cfg.logprob_chunk}"))
    else:
        lines.append(_logit_line(shape, cfg.micro_batch, cfg.max_new_tokens, db, "every completion position"))
    evaluating = cfg.eval.every > 0 and cfg.eval.n > 0
    if cfg.rollout_backend == "vllm":
        lines.append(_vllm_line(shape, cfg.vllm_gpu_memory, device_gb * GB, est, "rollouts", tokens))
    else:
        longest = max(cfg.max_new_tokens, cfg.eval.max_new_tokens if evaluating else 0)
        lines.append(_kv_line(shape, cfg.gen_batch_size, prompt_tokens + longest, db, "hf rollouts"))
    lines.append(MemoryLine("runtime", RUNTIME_BYTES, "CUDA context, kernels, allocator"))
    est.lines = lines
    return est


# --------------------------------------------------------------------------------------------------
# generation stages (search, warm-start teacher, evaluation)


def estimate_engine(stage: str, spec: str, *, batch_size: int, tokens: int, device_gb: float = DEVICE_GB,
                    vllm_share: float = VLLM_DEFAULT_SHARE) -> MemoryEstimate:
    """One generation engine of a stage, by its spec: ``vllm:`` takes its share of the device,
    ``hf:`` (or a bare name) holds float32 weights and a KV cache for ``batch_size`` sequences of
    ``tokens``, ``openai:`` runs elsewhere and takes nothing here."""
    kind, sep, model = spec.partition(":")
    if not sep or kind not in ("hf", "vllm", "openai"):
        kind, model = "hf", spec
    if kind == "openai":
        est = MemoryEstimate(stage, model.rpartition("#")[2] or model, "-", 0, 0, device_bytes=device_gb * GB)
        est.lines = [MemoryLine("endpoint", 0.0, "a separate server (openai:), nothing on this device")]
        return est
    shape = model_shape(model)
    est = MemoryEstimate(stage, model, "bfloat16" if kind == "vllm" else "float32", shape.parameters(), 0,
                         device_bytes=device_gb * GB)
    if kind == "vllm":
        est.lines = [_vllm_line(shape, vllm_share, device_gb * GB, est, "engine", tokens)]
    else:
        est.lines = [MemoryLine("weights", shape.parameters() * 4.0, f"{count(shape.parameters())} x 4 B"),
                     _kv_line(shape, batch_size, tokens, 4, "hf engine")]
    est.lines.append(MemoryLine("runtime", RUNTIME_BYTES, "CUDA context, kernels, allocator"))
    return est


def estimate_pipeline(pc: Any, teacher: str | None = None, device_gb: float = DEVICE_GB) -> list[MemoryEstimate]:
    """Every stage of one pipeline run (a PipelineConfig) that puts a model on the device, in order.

    ``teacher`` is the redistill teacher's engine spec where it is known (an experiment's
    ``redistill_teacher`` that names an engine rather than another cell)."""
    import copy

    from tailor_evo.warmstart.methods import get_method

    out = []
    search = pc.search
    method = get_method(pc.method)
    # a method with a search of its own (tailor-gp) runs its settings whatever the config says
    own = dict(method.own_search.settings) if method.own_search is not None else {}
    kinds = {own.get("operator", search.operator), own.get("renderer", search.renderer)}
    if method.needs_archive and "llm" in kinds and search.llm.spec:
        tokens = PROMPT_TOKENS + max(search.llm.max_new_tokens, search.llm.render_max_new_tokens)
        out.append(estimate_engine("search LLM", search.llm.spec, batch_size=HF_ENGINE_BATCH, tokens=tokens,
                                   device_gb=device_gb))
    teacher = teacher or pc.warmstart.teacher
    if method.needs_teacher and teacher:
        out.append(estimate_engine("warm-start teacher", teacher, batch_size=HF_ENGINE_BATCH,
                                   tokens=PROMPT_TOKENS + pc.warmstart.teacher_max_new_tokens, device_gb=device_gb))
    sft = copy.copy(pc.sft)
    sft.model = pc.backbone
    out.append(estimate_sft(sft, device_gb=device_gb))
    rl = copy.copy(pc.rl)
    rl.model = pc.backbone
    out.append(estimate_rl(rl, device_gb=device_gb))
    ev = pc.eval
    out.append(estimate_engine("evaluation", f"{ev.backend}:{pc.backbone}", batch_size=ev.batch_size,
                               tokens=PROMPT_TOKENS + ev.max_new_tokens, device_gb=device_gb))
    return out


# --------------------------------------------------------------------------------------------------
# the table


def _gb(value: float) -> str:
    return f"{value / GB:7.2f}"


def format_estimates(estimates: list[MemoryEstimate]) -> str:
    """The estimates as a text table: one block per stage, its parts, its peak and whether it fits."""
    out = []
    for est in estimates:
        head = f"{est.stage}: {est.model}"
        if est.trainable:
            head += f" ({count(est.parameters)} parameters, {count(est.trainable)} trainable, {est.dtype})"
        elif est.parameters:
            head += f" ({count(est.parameters)} parameters, {est.dtype})"
        out.append(head)
        for line in est.lines:
            when = {"train": " [training pass]", "generate": " [generation, not during training]"}.get(line.phase, "")
            out.append(f"  {line.part:12s} {_gb(line.bytes)} GB  {line.note}{when}")
        verdict = "fits" if est.fits else "DOES NOT FIT"
        out.append(f"  {'peak':12s} {_gb(est.peak)} GB  of {est.device_bytes / GB:.0f} GB: {verdict}")
        out.extend(f"  ! {w}" for w in est.warnings)
    return "\n".join(out)


def memory_report(estimates: list[MemoryEstimate]) -> str:
    """The table with its heading and the assumptions a reader needs to weigh it."""
    peak = max((e.peak for e in estimates), default=0.0)
    worst = max(estimates, key=lambda e: e.peak) if estimates else None
    lines = [f"memory per process (estimate, GB = 1e9 bytes; dtype auto counted as {AUTO_DTYPE}, "
             f"prompts as {PROMPT_TOKENS} tokens; trainers/memory.py says how):",
             format_estimates(estimates)]
    if worst is not None:
        fits = all(e.fits for e in estimates)
        lines.append(f"largest stage: {worst.stage} of {worst.model}, {peak / GB:.1f} GB: "
                     + ("fits one" if fits else "does NOT fit one") + f" {worst.device_bytes / GB:.0f} GB device")
    return "\n".join(lines)


def estimate_grid(runs: list[tuple[Any, str | None]], device_gb: float = DEVICE_GB) -> list[MemoryEstimate]:
    """The stages of several pipeline runs ((PipelineConfig, teacher spec) pairs, e.g. an
    experiment's cells), each distinct (stage, model) once: cells that differ only in their
    seed or method train the same backbone the same way."""
    seen: dict[tuple[str, str], MemoryEstimate] = {}
    for pc, teacher in runs:
        for est in estimate_pipeline(pc, teacher=teacher, device_gb=device_gb):
            seen.setdefault((est.stage, est.model), est)
    return list(seen.values())
