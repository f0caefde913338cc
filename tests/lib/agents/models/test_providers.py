"""Model providers: the real local model, a real OpenAI-compatible server on localhost, and faults."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from factory_pipelines.lib.agents.manifests import ModelConfig
from factory_pipelines.lib.agents.models.providers import (
    ChatProvider,
    LocalProvider,
    ModelError,
    OpenAICompatibleProvider,
    SchemaViolation,
    ScriptedProvider,
    local_model_path,
)
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.settings import Settings

TRIAGE = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "refund", "shipping", "technical", "account", "product"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
    },
    "required": ["category", "priority"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "Classify the support ticket. Answer in JSON."},
    {"role": "user", "content": "My parcel for order O-1234567 has not arrived after two weeks."},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def model_path(model_dir: Path) -> Path:
    return local_model_path(model_dir)


def test_scripted_answers_and_schema_violations() -> None:
    provider = ScriptedProvider(['{"category": "shipping", "priority": "high"}', '{"category": "weather", "priority": "low"}',
                                 "not json", TimeoutError("model timed out")])
    first = provider.chat(MESSAGES, schema=TRIAGE)
    assert first.data == {"category": "shipping", "priority": "high"} and first.completion_tokens > 0
    with pytest.raises(SchemaViolation, match="'weather' is not one of"):
        provider.chat(MESSAGES, schema=TRIAGE)
    with pytest.raises(SchemaViolation, match="breaks the schema"):
        provider.chat(MESSAGES, schema=TRIAGE)
    with pytest.raises(TimeoutError):
        provider.chat(MESSAGES)
    assert len(provider.calls) == 4


@pytest.mark.slow
def test_local_model_answers_in_the_schema_and_loads_once(model_path: Path) -> None:
    provider = LocalProvider(model_path)
    first = provider.chat(MESSAGES, schema=TRIAGE, max_tokens=64)
    assert set(first.data) == {"category", "priority"}
    assert first.provider == "local" and first.prompt_tokens > 10 and first.completion_tokens > 0
    assert first.latency_s > 0 and first.cost_usd > 0
    again = LocalProvider(model_path).chat(MESSAGES, schema=TRIAGE, max_tokens=64)
    assert again.data == first.data, "temperature 0 and a fixed seed give the same answer"
    assert LocalProvider(model_path).server is provider.server, "the model is loaded once per process"


@pytest.mark.slow
def test_openai_compatible_provider_against_a_real_local_server(model_path: Path) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_ctx = 2048
    params.cpuparams.n_threads = 2
    params.port = free_port()
    server = xllamacpp.Server(params)  # llama.cpp's own OpenAI-compatible HTTP server, on localhost
    provider = OpenAICompatibleProvider(f"http://127.0.0.1:{params.port}/v1", "gemma-3-270m", api_key="test-key",
                                        usd_per_1k_prompt=0.1, usd_per_1k_completion=0.2)
    result = provider.chat(MESSAGES, schema=TRIAGE, max_tokens=64)
    assert set(result.data) == {"category", "priority"}
    assert result.provider == "openai_compatible" and result.cost_usd > 0
    del server


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503, then 429, then a valid completion: the provider must retry through both."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).calls <= 2:
            self.send_response(503 if type(self).calls == 1 else 429)
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"content": '{"category": "refund", "priority": "low"}'}}],
                           "usage": {"prompt_tokens": 12, "completion_tokens": 9}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_retries_on_5xx_and_429_then_succeeds() -> None:
    httpd = HTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        provider = OpenAICompatibleProvider(f"http://127.0.0.1:{httpd.server_port}/v1", "m", backoff_s=0.01)
        result = provider.chat(MESSAGES, schema=TRIAGE)
        assert result.data == {"category": "refund", "priority": "low"} and _Flaky.calls == 3
    finally:
        httpd.shutdown()


def test_connection_refused_fails_clearly_after_retries() -> None:
    provider = OpenAICompatibleProvider(f"http://127.0.0.1:{free_port()}/v1", "m", attempts=3, backoff_s=0.01)
    with pytest.raises(ModelError, match=r"failed after 3 attempt\(s\): ConnectError"):
        provider.chat(MESSAGES)


def test_timeout_fails_clearly_after_retries() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        provider = OpenAICompatibleProvider(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "m", timeout_s=0.2,
                                            attempts=2, backoff_s=0.01)
        with pytest.raises(ModelError, match="ReadTimeout"):
            provider.chat(MESSAGES)


def _recording_server() -> tuple[ThreadingHTTPServer, type[BaseHTTPRequestHandler]]:
    """A real HTTP/1.1 server on a free loopback port, in a thread: it answers every POST with a completion and
    records the Authorization header of each request and the connections opened and closed."""

    class Recording(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection may carry many requests
        authorization: list[str | None] = []
        opened = 0
        closed = 0

        def setup(self) -> None:
            super().setup()
            type(self).opened += 1

        def finish(self) -> None:
            super().finish()
            type(self).closed += 1

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            type(self).authorization.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"choices": [{"message": {"content": '{"category": "refund", "priority": "low"}'}}],
                               "usage": {"prompt_tokens": 12, "completion_tokens": 9}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, Recording


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_one_connection_for_many_calls_closed_with_the_provider() -> None:
    httpd, seen = _recording_server()
    try:
        with OpenAICompatibleProvider(f"http://127.0.0.1:{httpd.server_port}/v1", "m", api_key="sk-test") as provider:
            for _ in range(4):
                assert provider.chat(MESSAGES, schema=TRIAGE).data == {"category": "refund", "priority": "low"}
            assert seen.authorization == ["Bearer sk-test"] * 4
            assert seen.opened == 1, "the calls share one keep-alive connection"
            assert "sk-test" not in repr(provider)
        assert _wait_for(lambda: seen.closed == 1), "closing the provider closes its connection"
        with pytest.raises(ModelError, match="closed"):
            provider.chat(MESSAGES)
    finally:
        httpd.shutdown()


def test_resource_reads_the_named_key_through_settings_and_closes_its_clients_after_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is read when the run builds the provider (not at import, not in the resource's config), from the
    variable the manifest names; the run's calls share one connection, closed by the resource's teardown."""
    httpd, seen = _recording_server()
    model = ModelConfig(provider="openai_compatible", name="m", base_url=f"http://127.0.0.1:{httpd.server_port}/v1",
                        api_key_env="SUPPORT_LLM_KEY")
    resource = LLMResource(model_dir=str(settings.model_dir))
    monkeypatch.setenv("SUPPORT_LLM_KEY", "sk-from-the-environment")  # after the resource is built
    providers: list[ChatProvider] = []

    @dg.asset
    def asks(llm: LLMResource) -> None:
        for _ in range(3):
            provider = llm.provider(model)
            provider.chat(MESSAGES, schema=TRIAGE)
            providers.append(provider)

    try:
        result = dg.materialize([asks], resources={"llm": resource})
        assert result.success
        assert seen.authorization == ["Bearer sk-from-the-environment"] * 3
        assert seen.opened == 1 and len({id(p) for p in providers}) == 1, "one provider and connection per run"
        assert providers[0].client.is_closed, "the resource closes its clients when the run ends"
        assert _wait_for(lambda: seen.closed == 1)
        shown = json.dumps(resource.model_dump()) + "".join(str(e) for e in result.all_events)
        assert "sk-from-the-environment" not in shown
    finally:
        httpd.shutdown()
