"""Stage 1: the curated descriptions table and the LLM source against a fake OpenAI-compatible chat server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from diffusets_core.apps import descriptions as D
from diffusets_core.eval.features import FEATURE_COLUMNS

SECRET = "sk-test-SECRET-do-not-store-123"


def test_table_loads_and_every_entry_is_complete():
    table = D.load_table()
    assert {"brugada", "hyperkalemia", "long_qt"} <= set(table)
    measurable = (
        set(FEATURE_COLUMNS)
        | {f"t_amp_{l}" for l in ("V3", "V4")}
        | {f"t_peak_{l}" for l in ("II", "V2", "V3", "V4", "V5")}
    )
    for key in table:
        desc = D.describe_condition(key)
        assert len(desc.statements) >= 2, key
        assert all(s == s.strip() and s for s in desc.statements)
        assert desc.signature and all(s["direction"] in ("increase", "decrease") for s in desc.signature)
        assert all(s["feature"] in measurable for s in desc.signature), key
        assert len(desc.citation) > 20 and any(ch.isdigit() for ch in desc.citation), key
        assert desc.source == "table"


def test_lookup_by_name_alias_and_unknown():
    assert D.describe_condition("Brugada syndrome").key == "brugada"
    assert D.describe_condition("LQTS").key == "long_qt"
    assert D.describe_condition("hyperkalaemia").key == "hyperkalemia"
    with pytest.raises(D.DescriptionError, match="not in the descriptions table"):
        D.describe_condition("Trisomy 21")
    with pytest.raises(ValueError):
        D.describe_condition("brugada", source="web")


def test_parse_statements():
    assert D.parse_statements("Sinus rhythm | Peaked T waves | Abnormal ECG") == [
        "Sinus rhythm",
        "Peaked T waves",
        "Abnormal ECG",
    ]
    assert D.parse_statements("1. Sinus rhythm\n- 'Long QT'\n\n* Abnormal ECG") == [
        "Sinus rhythm",
        "Long QT",
        "Abnormal ECG",
    ]


class FakeChat:
    """POST /v1/chat/completions -> a fixed answer; records requests and headers."""

    def __init__(self, answer: str):
        self.requests, self.bodies, self.auth = 0, [], []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                outer.requests += 1
                outer.bodies.append(json.loads(raw or b"{}"))
                outer.auth.append(self.headers.get("Authorization", ""))
                body = json.dumps(
                    {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "fake",
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat():
    srv = FakeChat("Sinus rhythm | Coved ST elevation in V1-V2 | Abnormal ECG")
    yield srv
    srv.close()


def test_llm_source_caches_and_never_stores_the_key(chat, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    d1 = D.describe_condition(
        "Brugada syndrome", source="llm", model="fake-model", cache_dir=tmp_path, base_url=chat.url
    )
    assert chat.requests == 1 and chat.auth[0] == f"Bearer {SECRET}"
    assert chat.bodies[0]["model"] == "fake-model" and chat.bodies[0]["messages"] == D.llm_prompt("Brugada syndrome")
    assert d1.description == "Sinus rhythm|Coved ST elevation in V1-V2|Abnormal ECG"
    assert d1.source == "llm" and not d1.cached
    # signature and citation still come from the table
    assert [s["feature"] for s in d1.signature] == ["st_V1", "st_V2"] and d1.citation
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["messages"] == D.llm_prompt("Brugada syndrome")
    assert stored["answer"] == "Sinus rhythm | Coved ST elevation in V1-V2 | Abnormal ECG"
    assert stored["description"] == d1.description
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text()
    # second call: from the cache, no request
    d2 = D.describe_condition(
        "Brugada syndrome", source="llm", model="fake-model", cache_dir=tmp_path, base_url=chat.url
    )
    assert chat.requests == 1 and d2.cached and d2.description == d1.description
    # another model is another cache entry
    D.describe_condition("Brugada syndrome", source="llm", model="other", cache_dir=tmp_path, base_url=chat.url)
    assert chat.requests == 2 and len(list(tmp_path.glob("*.json"))) == 2


def test_llm_needs_a_key_for_remote_endpoints(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(D.DescriptionError, match="OPENAI_API_KEY"):
        D.describe_condition(
            "Brugada syndrome", source="llm", cache_dir=tmp_path, base_url="https://example.invalid/v1"
        )


def test_llm_errors_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(D.DescriptionError) as ei:
        D.describe_condition(
            "Unknown condition", source="llm", cache_dir=tmp_path, base_url="http://127.0.0.1:9/v1", timeout=0.5
        )
    assert SECRET not in str(ei.value)
    assert not list(tmp_path.glob("*.json"))
