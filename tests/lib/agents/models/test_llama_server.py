"""llama.cpp's HTTP server fixture answers the OpenAI-compatible provider, with the label's confidence."""

from __future__ import annotations

from factory_pipelines.lib.agents.models.providers import OpenAICompatibleProvider
from tests.lib.agents.models.test_providers import MESSAGES, TRIAGE


def test_the_server_fixture_answers_with_logprob_confidences(llama_server) -> None:
    with OpenAICompatibleProvider(llama_server.base_url, "gemma-3-270m") as provider:
        result = provider.chat(MESSAGES, schema=TRIAGE, max_tokens=64)
    assert set(result.data) == {"category", "priority"} and result.prompt_tokens > 10
    assert set(result.confidence) == {"category", "priority"}
    assert all(0 < p <= 1 for p in result.confidence.values())
