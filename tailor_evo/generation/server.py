"""A small OpenAI-compatible HTTP server over one local engine (``tailor-evo serve``).

Why: many search workers can share one loaded model. Requests that arrive close
together with the same sampling parameters are merged into one engine call (the
engine batches them), so a dozen workers asking for one completion each cost
about one batched generation, not a dozen sequential ones.

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``.
Each choice also carries ``token_ids`` (the sampled token ids, an extension that
vLLM offers too) so that a remote engine can hand exact tokens to the trainers.
Streaming is not supported. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tailor_evo.generation.base import Completion, Engine, PromptLike, SamplingParams

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024
# what a socket raises when the client closed its end (mid-request or before the reply)
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class RequestError(Exception):
    """A bad request: becomes an OpenAI-style error body with this status."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param = status, param


@dataclass
class _Job:
    prompts: list[PromptLike]
    params: SamplingParams
    future: Future


class Batcher:
    """Serialises engine calls and merges concurrent jobs that share sampling parameters.

    A worker thread takes the oldest job, waits up to ``wait_s`` for more jobs with
    equal parameters (up to ``max_prompts`` prompts), runs one ``generate`` call and
    splits the results back. Jobs with different parameters wait for the next round.
    Jobs with a seed are never merged: their samples stay reproducible.
    """

    def __init__(self, engine: Engine, *, wait_s: float = 0.01, max_prompts: int = 256) -> None:
        self.engine, self.wait_s, self.max_prompts = engine, wait_s, max_prompts
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._held: list[_Job] = []
        self._thread = threading.Thread(target=self._run, name="tailor-evo-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        job = _Job(prompts, params, Future())
        self._queue.put(job)
        return job.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            if self._held:
                first = self._held.pop(0)
            else:
                got = self._queue.get()
                if got is None:
                    return
                first = got
            # held-back jobs with the same parameters join this round; a seeded job runs alone,
            # because its samples must not depend on what else happened to be in the batch
            mergeable = first.params.seed is None
            group = [first] + [j for j in self._held if mergeable and j.params == first.params]
            self._held = [j for j in self._held if all(j is not g for g in group)]
            count = sum(len(j.prompts) for j in group)
            deadline = time.monotonic() + self.wait_s
            stop = False
            while mergeable and count < self.max_prompts:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                if job.params == first.params:
                    group.append(job)
                    count += len(job.prompts)
                else:
                    self._held.append(job)
            self._execute(group)
            if stop:
                for job in self._held:
                    job.future.set_exception(RuntimeError("server is shutting down"))
                return

    def _execute(self, group: list[_Job]) -> None:
        prompts = [p for job in group for p in job.prompts]
        try:
            results = self.engine.generate(prompts, group[0].params)
        except Exception as exc:  # every waiting request gets the error
            for job in group:
                job.future.set_exception(exc)
            return
        start = 0
        for job in group:
            job.future.set_result(results[start:start + len(job.prompts)])
            start += len(job.prompts)


# --- request parsing -------------------------------------------------------------------


def _number(body: dict, key: str, kind: type, default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(f"'{key}' must be a finite number", param=key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise RequestError(f"'{key}' must be a{'n integer' if kind is int else ' number'}", param=key)
    value = kind(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise RequestError(f"'{key}' is out of range", param=key)
    return value


def parse_params(body: dict, default_max_tokens: int) -> SamplingParams:
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("'stop' must be a string or a list of strings", param="stop")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    json_schema, grammar = parse_constraint(body)
    params = SamplingParams(
        json_schema=json_schema, grammar=grammar,
        n=_number(body, "n", int, 1, 1, 1024),
        temperature=_number(body, "temperature", float, 1.0, 0.0, 10.0),
        top_p=_number(body, "top_p", float, 1.0, 1e-9, 1.0),
        max_new_tokens=_number({"max_tokens": max_tokens}, "max_tokens", int, default_max_tokens, 1, 1 << 20),
        stop=stop,
        seed=_number(body, "seed", int, None),
    )
    if json_schema is not None or grammar is not None:
        from tailor_evo.generation.constraints import ConstraintError, compile_constraint

        try:
            compile_constraint(params)      # a bad schema or grammar is the client's error, said at once
        except ConstraintError as exc:
            raise RequestError(str(exc), param="response_format" if json_schema is not None else "grammar") from None
    return params


def parse_constraint(body: dict) -> tuple[dict | None, str | None]:
    """(JSON schema, Lark grammar) from the request, in the forms clients send them:
    OpenAI's ``response_format`` (``json_schema``), vLLM's ``structured_outputs``
    (``json`` / ``grammar``) and its older ``guided_json`` / ``guided_grammar``."""
    schema: Any = None
    grammar: Any = None
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema"):
            raise RequestError("'response_format' must be {'type': 'text'} or {'type': 'json_schema', "
                               "'json_schema': {'schema': ...}}", param="response_format")
        if fmt["type"] == "json_schema":
            inner = fmt.get("json_schema")
            schema = inner.get("schema") if isinstance(inner, dict) else None
            if not isinstance(schema, dict):
                raise RequestError("'response_format.json_schema.schema' must be an object", param="response_format")
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict):
            raise RequestError("'structured_outputs' must be an object", param="structured_outputs")
        schema = structured.get("json", schema)
        grammar = structured.get("grammar", grammar)
    schema = body.get("guided_json", schema)
    grammar = body.get("guided_grammar", grammar)
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise RequestError(f"the JSON schema is not JSON: {exc.msg}", param="response_format") from None
    if schema is not None and not isinstance(schema, dict):
        raise RequestError("a JSON schema must be an object", param="response_format")
    if grammar is not None and not isinstance(grammar, str):
        raise RequestError("a grammar must be a string (Lark syntax)", param="grammar")
    if schema is not None and grammar is not None:
        raise RequestError("give a JSON schema or a grammar, not both", param="grammar")
    return schema, grammar


def parse_completion_prompts(body: dict) -> list[PromptLike]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise RequestError("'prompt' must be a string or a non-empty list of strings", param="prompt")


def parse_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(f"messages[{i}] must be an object with a 'role'", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # the parts form: keep the text parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string", param="messages")
        out.append({"role": m["role"], "content": content})
    return out


# --- the HTTP layer --------------------------------------------------------------------


class OpenAIServer(ThreadingHTTPServer):
    """Holds the batcher and the served model name for the request handlers."""

    daemon_threads = True
    # pending connections the OS queues while every handler thread is busy (the default of 5
    # refuses a burst of 20 concurrent clients); beyond it a client gets "connection refused"
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, model_name: str, *,
                 default_max_tokens: int = 256, batch_wait_s: float = 0.01) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens
        self.batcher = Batcher(engine, wait_s=batch_wait_s)
        self.created = int(time.time())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is routine for a server: one log line, not a traceback on stderr."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            log.warning("client %s disconnected (%s)", client_address[0] if client_address else "?",
                     type(exc).__name__)
            return
        log.error("request from %s failed: %s: %s", client_address[0] if client_address else "?",
                  type(exc).__name__, exc)


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # route access logs to logging
        log.info("%s " + format, self.address_string(), *args)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": None}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": self.server.created,
                 "owned_by": "tailor-evo"}]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"unknown path {self.path}")

    def do_POST(self) -> None:
        route = {"/v1/completions": self._completions, "/v1/chat/completions": self._chat}.get(self.path.rstrip("/"))
        try:
            body = self._body()
            if route is None:
                raise RequestError(f"unknown path {self.path}", status=404)
            self._check_model(body)
            if body.get("stream"):
                raise RequestError("streaming is not supported", param="stream")
            self._send(200, route(body))
        except DISCONNECTS as exc:     # the client left: no one to answer
            self.close_connection = True
            log.warning("client %s disconnected before the reply (%s)", self.address_string(), type(exc).__name__)
        except RequestError as exc:
            self._error(exc.status, str(exc), exc.param)
        except ValueError as exc:  # the engine rejects a prompt or a parameter
            self._error(400, str(exc))
        except Exception as exc:  # keep serving; tell the client what went wrong
            log.exception("request failed")
            self._error(500, f"{type(exc).__name__}: {exc}")

    def _body(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise RequestError("bad Content-Length") from None
        if length <= 0 or length > MAX_BODY:
            raise RequestError("missing or oversized request body")
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object")
        return body

    def _check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.server.model_name:
            raise RequestError(f"model {model!r} is not served here; this server serves {self.server.model_name!r}",
                               status=404, param="model")

    def _completions(self, body: dict) -> dict:
        prompts = parse_completion_prompts(body)
        params = parse_params(body, self.server.default_max_tokens)
        want_logprobs = body.get("logprobs") is not None and body.get("logprobs") is not False
        results = self.server.batcher.submit(prompts, params)
        choices = []
        for i, comps in enumerate(results):
            for s, c in enumerate(comps):
                choice: dict[str, Any] = {"index": i * params.n + s, "text": c.text,
                                          "finish_reason": c.finish_reason, "token_ids": c.token_ids,
                                          "logprobs": None}
                if want_logprobs and c.logprobs is not None:
                    choice["logprobs"] = {"tokens": self._token_strings(c.token_ids),
                                          "token_logprobs": c.logprobs, "top_logprobs": None, "text_offset": None}
                choices.append(choice)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.server.model_name, "choices": choices, "usage": _usage(results)}

    def _chat(self, body: dict) -> dict:
        messages = parse_messages(body)
        params = parse_params(body, self.server.default_max_tokens)
        want_logprobs = bool(body.get("logprobs"))
        comps = self.server.batcher.submit([messages], params)[0]
        choices = []
        for s, c in enumerate(comps):
            choice: dict[str, Any] = {"index": s, "message": {"role": "assistant", "content": c.text},
                                      "finish_reason": c.finish_reason, "token_ids": c.token_ids, "logprobs": None}
            if want_logprobs and c.logprobs is not None:
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "top_logprobs": []}
                                                  for t, lp in zip(self._token_strings(c.token_ids), c.logprobs)]}
            choices.append(choice)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.server.model_name, "choices": choices, "usage": _usage([comps])}

    def _token_strings(self, ids: list[int]) -> list[str]:
        tokenizer = getattr(self.server.engine, "tokenizer", None)
        if tokenizer is None:
            return [str(i) for i in ids]
        return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def _usage(results: list[list[Completion]]) -> dict:
    prompt = sum(len(comps[0].prompt_token_ids or []) for comps in results if comps)
    completion = sum(len(c.token_ids) for comps in results for c in comps)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def make_server(engine: Engine, model_name: str, host: str = "127.0.0.1", port: int = 8000, **kw: Any) -> OpenAIServer:
    """Bind (port 0 picks a free one) without serving yet; call ``serve_forever`` or use :func:`serve_in_thread`."""
    return OpenAIServer((host, port), engine, model_name, **kw)


def serve_in_thread(server: OpenAIServer) -> threading.Thread:
    """Serve in a daemon thread (tests, notebooks); stop with ``server.shutdown(); server.server_close()``."""
    thread = threading.Thread(target=server.serve_forever, name="tailor-evo-serve", daemon=True)
    thread.start()
    return thread
