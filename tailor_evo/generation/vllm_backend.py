"""The ``vllm`` backend: an in-process vLLM engine (GPU), when the optional extra is installed.

vLLM is a large, GPU-only dependency, so it is imported lazily; without it the
constructor raises a one-line error that names the extra to install.
Log-probs are vLLM's ``processed_logprobs=False`` default, i.e. the model's raw
log-softmax of the sampled tokens, the same convention as the ``hf`` backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailor_evo.errors import TailorError
from tailor_evo.generation.base import Completion, PromptLike, SamplingParams


class MissingExtraError(TailorError):
    """An optional dependency is not installed."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise MissingExtraError("the vllm backend needs vLLM: pip install 'tailor-evo[vllm]'") from None
    return vllm


class VLLMEngine:
    """Generate with ``vllm.LLM``; ``model`` is a backbone name, a model directory or a hub id.

    Backbone names are resolved through the registry first, so ``vllm:smollm2-135m``
    works offline once the backbone is prepared.
    """

    def __init__(self, model: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 tensor_parallel_size: int = 1, use_chat_template: bool | str = "auto", **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        from tailor_evo.models.registry import BACKBONES, resolve

        path = str(resolve(model)) if model in BACKBONES else model
        self._vllm = vllm
        self.llm = vllm.LLM(model=path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                            tensor_parallel_size=tensor_parallel_size, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.use_chat_template = use_chat_template

    def _render(self, prompt: PromptLike) -> str:
        if isinstance(prompt, str) and self.use_chat_template is not True:
            return prompt
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if self.use_chat_template is False or not getattr(self.tokenizer, "chat_template", None):
            return "\n\n".join(m["content"] for m in messages)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    supports_constraints = True     # through vLLM's structured outputs

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        extra = structured_outputs(self._vllm, params)
        sp = self._vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                       max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                                       seed=params.seed, logprobs=0, **extra)
        outputs = self.llm.generate([self._render(p) for p in prompts], sp, use_tqdm=len(prompts) > 1)
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


# Where the in-process model lives inside ``vllm.LLM``; it moved between vLLM releases.
_MODEL_PATHS = (
    ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"),            # V0 engine
    ("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),  # V1, in-process
)


def vllm_model(llm: Any) -> Any:
    """The torch model inside a ``vllm.LLM`` that accepts ``load_weights``; a clear error if unreachable."""
    for path in _MODEL_PATHS:
        obj = llm
        for attr in path:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "load_weights"):
            return obj
    raise TailorError("cannot reach the model inside this vLLM engine to push policy weights (tried "
                      + ", ".join(".".join(p) for p in _MODEL_PATHS) + "); run vLLM in-process "
                      "(VLLM_ENABLE_V1_MULTIPROCESSING=0) or set rl.rollout_backend: hf")


class VLLMRolloutEngine:
    """RL rollouts on vLLM, kept in step with the policy being trained.

    vLLM holds its own copy of the weights, so before every generation call the live
    policy's parameters are pushed into it (``load_weights``) and the prefix cache is
    dropped: completions are always sampled from the current policy, which the clipped
    objective's ratio assumes. LoRA policies are refused (merge the adapter first):
    vLLM would need the merged weights every step.
    """

    def __init__(self, policy: Any, model: str, **engine_kwargs: Any) -> None:
        if hasattr(policy, "peft_config"):
            raise TailorError("vLLM rollouts do not support LoRA policies; set rl.lora.enabled: false "
                              "or rl.rollout_backend: hf")
        self.policy = policy
        self.engine = VLLMEngine(model, **engine_kwargs)
        self.tokenizer = self.engine.tokenizer
        self.syncs = 0

    def sync_weights(self) -> None:
        import torch

        target = vllm_model(self.engine.llm)
        with torch.no_grad():
            target.load_weights((name, p.detach()) for name, p in self.policy.state_dict().items())
        reset = getattr(self.engine.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()
        self.syncs += 1

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        self.sync_weights()
        return self.engine.generate(prompts, params)
