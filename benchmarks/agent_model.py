"""The model side of the agent benchmark: the providers that record the agent's requests (one calling the model,
one answering dry), the bare side's loop over the same request bodies, and the scripted stand-in for llama.cpp's
server that smoke runs use on both sides instead of the model.
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks import smoke


def first_values(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The first value each field of a flat JSON schema allows."""
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False}
    return {k: v["enum"][0] if "enum" in v else empty.get(v.get("type"), "")
            for k, v in (schema or {}).get("properties", {}).items()}


class ScriptedServer:
    """Smoke runs only: stands in for llama.cpp's server (`handle_chat_completions`), answering each request with
    `first_values` of the schema the smoke provider adds to the body."""

    def handle_chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps(first_values(body.get("smoke_schema")))
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        return {"choices": [{"message": {"content": content}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(content.split())}}


SCRIPTED = ScriptedServer()


def local_provider() -> type:
    """The provider class both sides' requests come from: `LocalProvider`, or in a smoke run one whose server is
    the scripted stand-in (same request bodies, plus the schema the stand-in answers from)."""
    from factory_pipelines.lib.agents.models.providers import LocalProvider

    if not smoke():
        return LocalProvider

    class SmokeProvider(LocalProvider):
        @property
        def server(self) -> Any:
            return SCRIPTED

        @staticmethod
        def request_body(messages: list[dict[str, str]], schema: dict[str, Any] | None, temperature: float, seed: int,
                         max_tokens: int) -> dict[str, Any]:
            return LocalProvider.request_body(messages, schema, temperature, seed, max_tokens) | {"smoke_schema": schema}

    return SmokeProvider


def providers(base: type) -> tuple[type, type]:
    """Two subclasses of `base`: one records each request and calls the model, one records and answers dry."""
    from factory_pipelines.lib.agents.models.providers import ChatResult

    class Recording(base):  # type: ignore[misc, valid-type]
        calls: list[dict[str, Any]]

        def chat(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 temperature: float = 0.0, seed: int = 7, max_tokens: int = 256) -> Any:
            call: dict[str, Any] = {"messages": messages, "schema": schema, "temperature": temperature, "seed": seed,
                                    "max_tokens": max_tokens, "content": None}
            self.calls.append(call)
            start = time.perf_counter()
            result = self.answer(messages, schema=schema, temperature=temperature, seed=seed, max_tokens=max_tokens)
            call |= {"content": result.content, "chat_s": time.perf_counter() - start, "binding_s": result.latency_s}
            return result

        def answer(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
            return super().chat(messages, **kwargs)

    class Dry(Recording):
        """The first value each field allows, without the model: a run that only collects the requests."""

        def answer(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
            data = first_values(kwargs["schema"])
            return ChatResult(content=json.dumps(data), data=data, provider=self.name, model=self.model,
                              prompt_tokens=0, completion_tokens=0, latency_s=0.0, cost_usd=0.0)

    return Recording, Dry


def bodies_of(base: type, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request bodies `LocalProvider.chat` sends to the binding for these calls."""
    return [base.request_body(c["messages"], c["schema"], c["temperature"], c["seed"], c["max_tokens"])
            for c in calls]


def bare_loop(server: Any, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bare side: the requests, one after the other, to the llama.cpp server."""
    return [server.handle_chat_completions(body) for body in bodies]


def answers_of(responses: list[dict[str, Any]]) -> list[str]:
    """The bare side's answers, to compare with the agent's; a failed call stops the benchmark."""
    errors = [r["error"] for r in responses if "error" in r]
    if errors:
        raise SystemExit(f"a bare call failed: {errors[0]}")
    return [r["choices"][0]["message"]["content"] or "" for r in responses]


def requests_of(calls: list[dict[str, Any]]) -> list[tuple]:
    """What the agent asked in these calls, without the answers: the dry and measured runs must ask alike."""
    return [(c["messages"], c["schema"], c["temperature"], c["seed"], c["max_tokens"]) for c in calls]
