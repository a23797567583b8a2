"""The ``openai`` backend: any OpenAI-compatible HTTP server.

That covers ``tailor-evo serve``, vLLM's and SGLang's servers, llama.cpp's server
and hosted APIs. String prompts go to ``/completions``, chat message lists to
``/chat/completions``; one request per prompt asks for all ``n`` samples, and up
to ``concurrency`` requests are in flight at once.

Failures are explicit: an unreachable server, a timeout, a 429 or a 5xx reply are
retried ``max_retries`` times with exponential back-off and then raise a one-line
:class:`BackendError`; a malformed reply (not JSON, no ``choices``, wrong count)
raises at once, because asking again would not fix it.

Token ids and log-probs are filled in when the server returns them (log-probs are
requested by default). ``tailor-evo serve`` always returns ``token_ids``; vLLM's server
does when asked (``return_token_ids=True``, a vLLM field that other APIs may refuse).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tailor_evo.errors import TailorError
from tailor_evo.extras import require
from tailor_evo.generation.base import Completion, PromptLike, SamplingParams

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class BackendError(TailorError):
    """The remote server could not be reached or answered something unusable."""


class OpenAIEngine:
    """An :class:`~tailor_evo.generation.base.Engine` over an OpenAI-compatible HTTP API.

    Constrained decoding: a JSON schema goes as ``response_format`` ``json_schema``, which
    the OpenAI API, vLLM, SGLang and ``tailor-evo serve`` all accept; a Lark grammar goes as
    vLLM's ``structured_outputs`` (and ``guided_grammar`` for older vLLM servers).
    """

    supports_constraints = True

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60,
                 max_retries: int = 3, concurrency: int = 4, logprobs: bool = True,
                 backoff_s: float = 0.5, return_token_ids: bool = False) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        require("openai", what="the openai engine", field="engine")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.concurrency = concurrency
        self.logprobs = logprobs
        self.backoff_s = backoff_s
        self.return_token_ids = return_token_ids
        self._local = threading.local()

    # --- protocol ----------------------------------------------------------------------

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        """One request per prompt (``n`` samples each); prompt ``i`` uses seed ``params.seed + i``.

        Offsetting the seed keeps repeated prompts in one call from getting identical
        samples while the whole call stays reproducible.
        """
        if not prompts:
            return []
        jobs = list(enumerate(prompts))
        if self.concurrency == 1 or len(jobs) == 1:
            return [self._one(p, params, i) for i, p in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._one(job[1], params, job[0]), jobs))

    def models(self) -> list[str]:
        """The model ids the server offers (``GET /models``)."""
        reply = self._request("GET", "/models", None)
        data = reply.get("data")
        if not isinstance(data, list):
            raise self._malformed("/models", "missing 'data' list")
        return [m.get("id") for m in data if isinstance(m, dict)]

    # --- one prompt --------------------------------------------------------------------

    def _one(self, prompt: PromptLike, params: SamplingParams, index: int) -> list[Completion]:
        body: dict[str, Any] = {"model": self.model, "n": params.n, "temperature": params.temperature,
                                "top_p": params.top_p, "max_tokens": params.max_new_tokens}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed + index
        body.update(constraint_fields(params))
        if self.return_token_ids:
            body["return_token_ids"] = True
        if isinstance(prompt, str):
            path = "/completions"
            body["prompt"] = prompt
            if self.logprobs:
                body["logprobs"] = 1
        else:
            path = "/chat/completions"
            body["messages"] = prompt
            if self.logprobs:
                body["logprobs"] = True
        reply = self._request("POST", path, body)
        return self._parse(reply, path, params.n, chat=path == "/chat/completions")

    def _parse(self, reply: dict, path: str, n: int, *, chat: bool) -> list[Completion]:
        choices = reply.get("choices")
        if not isinstance(choices, list):
            raise self._malformed(path, "missing 'choices' list")
        if len(choices) != n:
            raise self._malformed(path, f"expected {n} choices, got {len(choices)}")
        out: list[Completion | None] = [None] * n
        for pos, choice in enumerate(choices):
            if not isinstance(choice, dict):
                raise self._malformed(path, f"choice {pos} is not an object")
            index = choice.get("index", pos)
            if not isinstance(index, int) or not 0 <= index < n or out[index] is not None:
                index = pos
            if chat:
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else None
            else:
                text = choice.get("text")
            if not isinstance(text, str):
                raise self._malformed(path, f"choice {pos} has no text")
            token_ids = choice.get("token_ids")
            if not (isinstance(token_ids, list) and all(isinstance(t, int) for t in token_ids)):
                token_ids = []
            out[index] = Completion(text=text, token_ids=token_ids, logprobs=_logprobs(choice.get("logprobs"), chat),
                                    finish_reason="stop" if choice.get("finish_reason") == "stop" else
                                    str(choice.get("finish_reason") or "length"))
        return out  # type: ignore[return-value]

    # --- HTTP --------------------------------------------------------------------------

    def _session(self) -> Any:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            if self.api_key:
                session.headers["Authorization"] = f"Bearer {self.api_key}"
            self._local.session = session
        return session

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        import requests

        url = self.base_url + path
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (1 + random.random() * 0.25))
            try:
                resp = self._session().request(method, url, json=body, timeout=self.timeout)
            except requests.Timeout:
                last = f"no reply within {self.timeout:g}s"
                continue
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}: {_error_message(resp)}"
                continue
            if resp.status_code >= 400:
                raise BackendError(f"{url}: HTTP {resp.status_code}: {_error_message(resp)}")
            try:
                reply = resp.json()
            except ValueError:
                raise self._malformed(path, f"reply is not JSON: {resp.text[:80]!r}") from None
            if not isinstance(reply, dict):
                raise self._malformed(path, "reply is not a JSON object")
            return reply
        tries = self.max_retries + 1
        raise BackendError(f"{url}: {last} (after {tries} attempt{'s' if tries > 1 else ''})")

    def _malformed(self, path: str, why: str) -> BackendError:
        return BackendError(f"{self.base_url + path}: malformed reply: {why}")


def _error_message(resp: Any) -> str:
    try:
        err = resp.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except Exception:
        pass
    return (resp.text or resp.reason or "").strip()[:200]


def _logprobs(block: Any, chat: bool) -> list[float] | None:
    """Sampled-token log-probs from either reply shape (completions or chat), if present."""
    if not isinstance(block, dict):
        return None
    if chat:
        content = block.get("content")
        if isinstance(content, list):
            values = [c.get("logprob") for c in content if isinstance(c, dict)]
            return [float(v) for v in values] if all(isinstance(v, (int, float)) for v in values) else None
        return None
    values = block.get("token_logprobs")
    if isinstance(values, list) and all(isinstance(v, (int, float)) for v in values):
        return [float(v) for v in values]
    return None


def constraint_fields(params: SamplingParams) -> dict[str, Any]:
    """Request fields that carry ``params``' JSON schema or Lark grammar (empty when unconstrained)."""
    if params.json_schema is not None:
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "reply", "schema": params.json_schema, "strict": True}}}
    if params.grammar is not None:
        return {"structured_outputs": {"grammar": params.grammar}, "guided_grammar": params.grammar}
    return {}
