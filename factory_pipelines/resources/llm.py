"""The model resource: builds the provider an agent's manifest names (see lib/agents/providers.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from factory_pipelines.lib.agents.providers import (
    ChatProvider,
    LocalProvider,
    ModelError,
    OpenAICompatibleProvider,
    local_model_path,
)


class LLMResource(dg.ConfigurableResource):
    """Builds the provider an agent's manifest names; the local model is loaded once per process."""

    model_dir: str = Field(description="Where the local GGUF is assembled (once).")
    context_window: int = Field(2048, description="Tokens of context the local model gets.")
    threads: int = Field(2, description="CPU threads of the local model.")
    usd_per_cpu_second: float = Field(0.00001, description="What a CPU-second of the local model costs.")
    prices: dict[str, list[float]] = Field(
        default_factory=dict, description="Remote model name -> [USD per 1k prompt tokens, per 1k completion tokens].")
    timeout_s: float = Field(30.0, description="Timeout of one remote call.")
    attempts: int = Field(4, description="Attempts of a remote call (timeouts, refused connections, 429, 5xx).")

    def provider(self, model: Any) -> ChatProvider:
        """The provider of a manifest's `model` section (a `ModelConfig`)."""
        if model.provider == "local":
            return LocalProvider(local_model_path(Path(self.model_dir)), n_ctx=self.context_window,
                                 threads=self.threads, usd_per_cpu_second=self.usd_per_cpu_second)
        if model.provider == "openai_compatible":
            prompt_price, completion_price = self.prices.get(model.name, [0.0, 0.0])
            return OpenAICompatibleProvider(
                model.base_url, model.name, api_key=os.environ.get(model.api_key_env) or None,
                timeout_s=self.timeout_s, attempts=self.attempts, usd_per_1k_prompt=prompt_price,
                usd_per_1k_completion=completion_price)
        raise ModelError(f"provider {model.provider!r} is not served by the LLM resource "
                         "(scripted providers are for tests; registered models are first passes)")
