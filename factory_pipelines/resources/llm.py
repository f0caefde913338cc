"""The model resource: builds the provider an agent's manifest names (see lib/agents/models/providers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from factory_pipelines.lib.agents.models.providers import (
    ChatProvider,
    LocalProvider,
    ModelError,
    OpenAICompatibleProvider,
    local_model_path,
)
from factory_pipelines.lib.governance.pii import mask_messages
from factory_pipelines.settings import get_settings


class LLMResource(dg.ConfigurableResource):
    """Builds the provider an agent's manifest names; the local model is loaded once per process.

    A remote provider's API key is read through the settings from the variable its manifest names
    (`api_key_env`) when the provider is built, inside a run: it is not part of this resource's config, so
    the Dagster UI never shows it. The HTTP clients opened in a run are closed when the run ends.
    """

    model_dir: str = Field(description="Where the local GGUF is assembled (once).")
    context_window: int = Field(2048, description="Tokens of context the local model gets.")
    threads: int = Field(2, description="CPU threads of the local model.")
    usd_per_cpu_second: float = Field(0.00001, description="What a CPU-second of the local model costs.")
    prices: dict[str, list[float]] = Field(
        default_factory=dict, description="Remote model name -> [USD per 1k prompt tokens, per 1k completion tokens].")
    timeout_s: float = Field(30.0, description="Timeout of one remote call.")
    attempts: int = Field(4, description="Attempts of a remote call (timeouts, refused connections, 429, 5xx).")

    _remote: dict[tuple[str, str, str], OpenAICompatibleProvider] = PrivateAttr(default_factory=dict)

    def provider(self, model: Any) -> ChatProvider:
        """The provider of a manifest's `model` section (a `ModelConfig`); one per remote endpoint, model and
        key until `close()`."""
        if model.provider == "local":
            return LocalProvider(local_model_path(Path(self.model_dir)), n_ctx=self.context_window,
                                 threads=self.threads, usd_per_cpu_second=self.usd_per_cpu_second)
        if model.provider == "openai_compatible":
            key = (model.base_url, model.name, model.api_key_env)
            if key not in self._remote or self._remote[key].client.is_closed:
                settings = get_settings()
                secret = settings.secret(model.api_key_env)
                prompt_price, completion_price = self.prices.get(model.name, [0.0, 0.0])
                self._remote[key] = OpenAICompatibleProvider(
                    model.base_url, model.name, api_key=secret.get_secret_value() if secret else None,
                    timeout_s=self.timeout_s, attempts=self.attempts, usd_per_1k_prompt=prompt_price,
                    usd_per_1k_completion=completion_price,
                    mask=mask_messages if settings.pii_mask_remote else None)
            return self._remote[key]
        raise ModelError(f"provider {model.provider!r} is not served by the LLM resource "
                         "(scripted providers are for tests; registered models are first passes)")

    def close(self) -> None:
        """Close the HTTP clients of the remote providers built so far."""
        while self._remote:
            self._remote.popitem()[1].close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
