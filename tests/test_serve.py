"""The OpenAI-compatible server and the openai backend, on loopback: real server and fake handlers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tailor_evo.generation.base import Completion, SamplingParams
from tailor_evo.generation.hf import HFEngine
from tailor_evo.generation.openai_backend import BackendError, OpenAIEngine
from tailor_evo.generation.server import Batcher, make_server, serve_in_thread


@pytest.fixture(scope="module")
def tiny_dir(small_tiny_dir):
    return small_tiny_dir


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return HFEngine.from_pretrained(str(tiny_dir), show_progress=False)


@pytest.fixture(scope="module")
def server(engine):
    srv = make_server(engine, "tiny-test", "127.0.0.1", 0)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_server_binds_loopback_and_lists_the_model(server):
    assert server.server_address[0] == "127.0.0.1"
    reply = requests.get(server.url + "/models", timeout=10).json()
    assert [m["id"] for m in reply["data"]] == ["tiny-test"]
    assert OpenAIEngine(server.url, "tiny-test").models() == ["tiny-test"]


def test_openai_backend_matches_the_local_engine(server, engine):
    remote = OpenAIEngine(server.url, "tiny-test", concurrency=3)
    prompts = ["Rosa", "Tariq is a", "The number of each Lion"]
    params = SamplingParams(n=2, max_new_tokens=8, seed=5, temperature=0.8)
    got = remote.generate(prompts, params)
    for i, (prompt, comps) in enumerate(zip(prompts, got)):
        local = engine.generate([prompt], SamplingParams(n=2, max_new_tokens=8, seed=5 + i, temperature=0.8))[0]
        assert [c.token_ids for c in comps] == [c.token_ids for c in local]
        assert [c.text for c in comps] == [c.text for c in local]
        for a, b in zip(comps, local):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-6)


def test_chat_completions_through_the_backend(server, engine):
    msgs = [{"role": "user", "content": "Rosa"}]
    got = OpenAIEngine(server.url, "tiny-test").generate([msgs], SamplingParams(max_new_tokens=6, seed=1))
    local = engine.generate([msgs], SamplingParams(max_new_tokens=6, seed=1))
    assert got[0][0].token_ids == local[0][0].token_ids and got[0][0].text == local[0][0].text
    assert len(got[0][0].logprobs) == len(got[0][0].token_ids)


def test_stop_and_usage_in_raw_replies(server):
    body = {"model": "tiny-test", "prompt": ["Rosa", "Tariq"], "n": 2, "max_tokens": 4, "seed": 0}
    reply = requests.post(server.url + "/completions", json=body, timeout=30).json()
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2, 3]
    assert reply["usage"]["completion_tokens"] == sum(len(c["token_ids"]) for c in reply["choices"])
    assert all(c["logprobs"] is None for c in reply["choices"])


@pytest.mark.parametrize("body,fragment", [
    ({"model": "tiny-test"}, "prompt"),
    ({"model": "tiny-test", "prompt": "x", "n": 0}, "'n'"),
    ({"model": "tiny-test", "prompt": "x", "temperature": "hot"}, "temperature"),
    ({"model": "tiny-test", "prompt": "x", "stop": 3}, "stop"),
    ({"model": "tiny-test", "prompt": "x", "stream": True}, "stream"),
])
def test_bad_requests_get_a_400_with_a_reason(server, body, fragment):
    resp = requests.post(server.url + "/completions", json=body, timeout=10)
    assert resp.status_code == 400 and fragment in resp.json()["error"]["message"]


def test_wrong_model_and_unknown_path(server):
    with pytest.raises(BackendError, match="not served"):
        OpenAIEngine(server.url, "other", max_retries=0).generate(["x"], SamplingParams(max_new_tokens=2))
    assert requests.get(server.url + "/nothing", timeout=10).status_code == 404
    resp = requests.post(server.url + "/chat/completions", data=b"{not json", timeout=10)
    assert resp.status_code == 400 and "JSON" in resp.json()["error"]["message"]


# --- fake servers for failure modes ----------------------------------------------------


class _Fake:
    """A loopback server whose handler replies what the test says."""

    def __init__(self, reply) -> None:
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls += 1
                status, payload = reply(fake.calls)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


OK = {"choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}


def _run_fake(reply, **kw):
    fake = _Fake(reply)
    try:
        engine = OpenAIEngine(fake.url, "m", backoff_s=0.01, **kw)
        return fake, engine.generate(["x"], SamplingParams(max_new_tokens=2))
    finally:
        fake.close()


def test_timeout_is_retried_then_reported():
    def slow(_):
        time.sleep(1.0)
        return 200, OK

    start = time.perf_counter()
    with pytest.raises(BackendError, match=r"no reply within 0.2s \(after 2 attempts\)"):
        _run_fake(slow, timeout=0.2, max_retries=1)
    assert time.perf_counter() - start < 3


@pytest.mark.parametrize("payload,fragment", [
    (b"<html>oops</html>", "not JSON"),
    ({"result": "no choices"}, "missing 'choices'"),
    ({"choices": [{"index": 0}]}, "no text"),
    ({"choices": []}, "expected 1 choices"),
])
def test_malformed_replies_fail_at_once_with_a_clear_message(payload, fragment):
    fake = _Fake(lambda _: (200, payload))
    try:
        with pytest.raises(BackendError, match="malformed reply") as err:
            OpenAIEngine(fake.url, "m", max_retries=3).generate(["x"], SamplingParams(max_new_tokens=2))
        assert fragment in str(err.value)
        assert fake.calls == 1
    finally:
        fake.close()


def test_server_errors_are_retried_with_backoff():
    fake, out = _run_fake(lambda call: (503, {"error": {"message": "busy"}}) if call < 3 else (200, OK),
                          max_retries=3)
    assert fake.calls == 3 and out[0][0].text == "hi" and out[0][0].finish_reason == "stop"


def test_client_errors_are_not_retried():
    fake = _Fake(lambda _: (401, {"error": {"message": "bad key"}}))
    try:
        with pytest.raises(BackendError, match="HTTP 401: bad key"):
            OpenAIEngine(fake.url, "m", max_retries=3).generate(["x"], SamplingParams(max_new_tokens=2))
        assert fake.calls == 1
    finally:
        fake.close()


def test_unreachable_server():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="cannot connect"):
        OpenAIEngine(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01).generate(
            ["x"], SamplingParams(max_new_tokens=2))


def test_api_key_comes_from_the_environment(monkeypatch):
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            seen["auth"] = self.headers.get("Authorization")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(OK).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MY_KEY", "sekret")
        OpenAIEngine(f"http://127.0.0.1:{srv.server_address[1]}/v1", "m", api_key_env="MY_KEY").generate(
            ["x"], SamplingParams(max_new_tokens=1))
        assert seen["auth"] == "Bearer sekret"
    finally:
        srv.shutdown()
        srv.server_close()


# --- request batching ------------------------------------------------------------------


class _CountingEngine:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, prompts, params):
        self.calls.append(len(prompts))
        time.sleep(0.05)
        return [[Completion(text=f"{p}!", token_ids=[i]) for _ in range(params.n)] for i, p in enumerate(prompts)]


def _concurrently(batcher, params_list):
    out = [None] * len(params_list)

    def run(i):
        out[i] = batcher.submit([f"p{i}"], params_list[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(params_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_requests_are_merged_and_split_back():
    eng = _CountingEngine()
    batcher = Batcher(eng, wait_s=0.2)
    try:
        out = _concurrently(batcher, [SamplingParams(max_new_tokens=3)] * 6)
    finally:
        batcher.close()
    assert sum(eng.calls) == 6 and len(eng.calls) < 6
    assert [o[0][0].text for o in out] == [f"p{i}!" for i in range(6)]


def test_seeded_or_different_requests_are_not_merged():
    eng = _CountingEngine()
    batcher = Batcher(eng, wait_s=0.2)
    try:
        out = _concurrently(batcher, [SamplingParams(seed=i) for i in range(3)] +
                            [SamplingParams(n=2), SamplingParams(n=3)])
    finally:
        batcher.close()
    assert eng.calls == [1] * 5
    assert [len(o[0]) for o in out] == [1, 1, 1, 2, 3]


@pytest.mark.integration
def test_serve_command_in_a_subprocess(tiny_dir):
    proc = subprocess.Popen([sys.executable, "-m", "tailor_evo", "serve", "--model", str(tiny_dir), "--port", "0",
                             "--served-name", "t", "--threads", "1"], stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            if line.startswith("serving "):
                url = line.split(" at ")[1].strip()
        assert url is not None and url.startswith("http://127.0.0.1:")
        reply = OpenAIEngine(url, "t").generate(["Rosa"], SamplingParams(max_new_tokens=4, seed=0))
        assert 1 <= len(reply[0][0].token_ids) <= 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_decodes_under_a_json_schema_and_refuses_a_bad_one(server):
    schema = {"type": "object", "properties": {"verdict": {"enum": ["knight", "knave"]}},
              "required": ["verdict"], "additionalProperties": False}
    body = {"model": "tiny-test", "prompt": "Who?", "max_tokens": 40, "n": 3, "seed": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}}
    reply = requests.post(server.url + "/completions", json=body, timeout=120).json()
    assert [json.loads(c["text"])["verdict"] in ("knight", "knave") for c in reply["choices"]] == [True] * 3
    # the client sends the same fields
    [comps] = OpenAIEngine(server.url, "tiny-test").generate(
        ["Who?"], SamplingParams(n=2, max_new_tokens=40, seed=2, json_schema=schema))
    assert all(json.loads(c.text)["verdict"] in ("knight", "knave") for c in comps)
    for bad, param in ((dict(body, response_format={"type": "json_schema", "json_schema": {"schema": {"type": 7}}}),
                        "response_format"),
                       (dict(body, response_format=None, structured_outputs={"grammar": "start: ( \"a\""}), "grammar"),
                       (dict(body, response_format={"type": "xml"}), "response_format")):
        resp = requests.post(server.url + "/completions", json=bad, timeout=60)
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["param"] == param and error["message"]
