"""PII masking by configuration: the body a remote provider receives, and the trace payloads of an agent run.
The local (here: scripted) model and the warehouse rows still see the raw text."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from factory_pipelines.lib.agents.models.providers import OpenAICompatibleProvider, ScriptedProvider
from factory_pipelines.lib.governance import pii
from tests.lib.agents.test_runtime import GOOD, con, experiment, make_runner, ticket, tracking_uri  # noqa: F401

RAW = "I am bob@example.com, call +1 415 555 0132; card 4111 1111 1111 1111; order O-1000001"
MASKED = "I am [email], call [phone]; card [card]; order O-1000001"


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real OpenAI-compatible endpoint on a free loopback port that records every request body."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            out = json.dumps({"choices": [{"message": {"content": "ok"}}],
                              "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", bodies
    server.shutdown()
    server.server_close()


def test_remote_provider_receives_masked_messages(endpoint: tuple[str, list[dict[str, Any]]]) -> None:
    url, bodies = endpoint
    messages = [{"role": "system", "content": "Triage."}, {"role": "user", "content": RAW}]
    with OpenAICompatibleProvider(url, "m", mask=pii.mask_messages) as masked, OpenAICompatibleProvider(url, "m") as raw:
        assert masked.chat(messages).content == "ok"
        raw.chat(messages)
    assert [b["messages"][1]["content"] for b in bodies] == [MASKED, RAW]
    assert messages[1]["content"] == RAW  # the caller's messages are not changed


def test_the_llm_resource_masks_remote_calls_by_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory_pipelines.lib.agents.manifests import ModelConfig
    from factory_pipelines.resources.llm import LLMResource
    from tests.conftest import use_home

    model = ModelConfig.model_validate({"provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
                                        "name": "m", "api_key_env": "NO_SUCH_KEY"})
    for flag, expected in (("true", True), ("false", False)):
        use_home(monkeypatch, tmp_path / flag, pii_mask_remote=flag)
        resource = LLMResource(model_dir=str(tmp_path / "models"))
        assert (resource.provider(model).mask is pii.mask_messages) is expected
        resource.close()


def _payloads(experiment_id: str) -> str:
    import mlflow

    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert traces
    previews = [[t.info.request_preview, t.info.response_preview] for t in traces]
    return json.dumps([previews, [[s.inputs, s.outputs] for t in traces for s in t.data.spans]], default=str)


@pytest.mark.parametrize("mask_traces", [True, False])
def test_trace_payloads_are_masked_when_configured(con: Any, experiment: str, mask_traces: bool) -> None:  # noqa: F811
    provider = ScriptedProvider([GOOD[2]] * 4)
    runner = make_runner(con, provider)
    with pii.mask_traces(mask_traces):  # as the agents' asset runs a day (settings pii_mask_traces)
        report, rows = runner.run([ticket(3, "Mail me at bob@example.com", RAW)])
    assert report.statuses == {"decided": 1} and rows[0]["category"] == "account"  # decisions unaffected
    assert "bob@example.com" in provider.calls[0][0]["content"]  # the local model sees the raw text
    payloads = _payloads(experiment)
    if mask_traces:
        assert "bob@example.com" not in payloads and "4111 1111" not in payloads and "415 555" not in payloads
        assert "[email]" in payloads and "O-1000001" in payloads
    else:
        assert "bob@example.com" in payloads
