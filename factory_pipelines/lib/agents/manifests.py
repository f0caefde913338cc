"""Agent manifests: an agent is declared in one YAML file, validated here with clear errors.

A manifest names the agent, its model (a provider configuration or a registered model alias), its
prompt in the MLflow Prompt Registry, the tools it may call (from the tool catalog), the Cedar policy
set that gates them, the Feast feature service it reads, its retrieval corpus, its evaluation suite and
thresholds, its budgets, its lifecycle stage and a kill switch. Adding a file adds an agent; errors
name the file, the field and the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_pipelines.lib.agents.rules import Condition, Rule, load_rules
from factory_pipelines.lib.agents.tools import CATALOG
from factory_pipelines.lib.config_files import (
    ConfigError,
    SnakeName,
    known_names,
    read_mapping,
    validate_named,
)

PROMPT_URI = re.compile(r"^prompts:/(?P<name>[A-Za-z0-9_.-]+)(@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))$")
MODEL_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9_.-]+)(@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))$")


class ManifestError(ConfigError):
    """A manifest is missing or invalid; the message names the file, the field and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """Which brain: the local model, an OpenAI-compatible endpoint, a registered model, or a script."""

    provider: Literal["local", "openai_compatible", "registered", "scripted"]
    name: str = Field(description="Model name at the provider, or models:/<name>@<alias> when registered.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (never logged).")
    context_window: int = Field(2048, ge=256, description="Tokens the model reads; longer tickets are cut to fit.")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int = 7
    max_tokens: int = Field(256, ge=1, le=32_768)
    writes_replies: bool | None = Field(
        None, description="Whether this model writes replies from the reply prompt (else the templates fill them); "
        "None: a remote model does, the local one does not (a 270M model's prose is poor).")

    @property
    def composes_replies(self) -> bool:
        return self.writes_replies if self.writes_replies is not None else self.provider != "local"

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.provider == "registered" and not MODEL_URI.match(self.name):
            raise ValueError(f"a registered model is named models:/<name>@<alias>, not {self.name!r}")
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("an openai_compatible model needs base_url")
        return self


class Evaluation(_Strict):
    suite: str = Field(description="The evaluation suite, evals/suites/<suite>.yaml (its thresholds, tolerances "
                       "and budgets judge a challenger).")


class Budgets(_Strict):
    """Per run (one agent x one day) unless said otherwise; exhausted budgets deny further calls."""

    max_tokens: int = Field(ge=1)
    max_tool_calls: int = Field(ge=1)
    max_cost_usd: float = Field(ge=0)
    max_refund_usd_per_run: float = Field(0, ge=0)
    max_refund_usd_per_day: float = Field(0, ge=0)


class Decision(_Strict):
    """How the answer's fields are decided: a first pass, rules, then the model for what is left."""

    first_pass: str | None = Field(None, description="models:/<name>@<alias>: a registered classifier's labels.")
    rules: str | None = Field(None, description="Rule file under defs/agents/rules/ (without .yaml).")
    model_below_confidence: float = Field(
        0.5, ge=0, le=1.01, description="First-pass fields less sure than this are asked of the model; 0 never, "
        "above 1 always.")
    escalate_model: ModelConfig | None = Field(
        None, description="The cascade's last tier: a bigger model (an OpenAI-compatible endpoint) asked for the "
        "fields the agent's model is still unsure of. None: the agent's model has the last word.")
    escalate_below_confidence: float = Field(
        0.5, ge=0, le=1.01, description="Fields the agent's model wrote with a probability below this (its "
        "logprob of the label's first token) go to escalate_model; 0 never, above 1 always.")

    @field_validator("first_pass")
    @classmethod
    def _model_uri(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_URI.match(value):
            raise ValueError(f"first_pass must be models:/<name>@<alias> or models:/<name>/<version>, not {value!r}")
        return value


class Action(_Strict):
    """A tool call after deciding, when its condition holds; args are filled from {paths} of the facts."""

    tool: str
    when: Condition = Field(default_factory=Condition)
    args: dict[str, object] = Field(default_factory=dict)


class Reply(_Strict):
    """The reply: from templates (keyed by a decision field), or composed by a prompt when a capable model is set."""

    templates: str = Field(description="Reply template file under defs/agents/replies/ (without .yaml).")
    prompt: str | None = Field(None, description="prompts:/<name>@<alias> composing replies with a remote model.")


class AgentManifest(_Strict):
    """One agent. Its assets: agents/<name> (runs), evals/<name>, monitoring/<name>_drift."""

    name: SnakeName
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    description: str = Field(min_length=10)
    owner: str = Field(min_length=1)
    stage: Literal["draft", "staging", "production", "retired"]
    kill_switch: bool = Field(False, description="true: every tool call of this agent is denied.")
    model: ModelConfig
    prompt: str = Field(description="prompts:/<name>@<alias> or prompts:/<name>/<version>.")
    tools: list[str] = Field(min_length=1)
    policy_set: str = Field(min_length=1, description="Cedar policy set (folder under policies/).")
    feature_service: str = Field(min_length=1)
    retrieval_corpus: str = Field(min_length=1, description="Table the agent retrieves passages from.")
    evaluation: Evaluation
    budgets: Budgets
    context: list[str] = Field(default_factory=list, description="Read-only tools called before deciding, in order.")
    decision: Decision = Field(default_factory=Decision)
    actions: list[Action] = Field(default_factory=list, description="Tool calls after deciding, in order.")
    reply: Reply | None = None
    model_alternatives: dict[SnakeName, ModelConfig] = Field(
        default_factory=dict, description="Other providers the agent can be evaluated on (`factory eval AGENT "
        "--provider NAME`, provider parity); the agent runs `model`, switching is an edit of this file.")

    @field_validator("prompt")
    @classmethod
    def _prompt_uri(cls, value: str) -> str:
        if not PROMPT_URI.match(value):
            raise ValueError(f"prompt must be prompts:/<name>@<alias> or prompts:/<name>/<version>, not {value!r}")
        return value

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        return known_names(value, CATALOG, "tool")

    @model_validator(mode="after")
    def _tools_declared(self) -> AgentManifest:
        for where, tool in [("context", t) for t in self.context] + [("actions", a.tool) for a in self.actions]:
            if tool not in self.tools:
                raise ValueError(f"{where} uses {tool!r}, which is not in the agent's tools {self.tools}")
        side = [t for t in self.context if CATALOG[t].side_effect]
        if side:
            raise ValueError(f"context tools must be read-only; {side} change the world (use actions)")
        return self

    @property
    def prompt_name(self) -> str:
        return PROMPT_URI.match(self.prompt)["name"]  # type: ignore[index]

    @property
    def runs_on_schedule(self) -> bool:
        return self.stage in ("staging", "production")

    def config_files(self, agents_dir: Path) -> dict[str, Path]:
        """The rule and reply files the manifest names, under the agents folder (`rules/`, `replies/`)."""
        files = {}
        if self.decision.rules:
            files["rules"] = agent_file(agents_dir, "rules", self.decision.rules)
        if self.reply:
            files["replies"] = agent_file(agents_dir, "replies", self.reply.templates)
        return files

    def load_config(self, agents_dir: Path) -> tuple[list[Rule], dict[str, Any] | None]:
        """The manifest's decision rules and reply templates."""
        files = self.config_files(agents_dir)
        rules = load_rules(files["rules"]) if "rules" in files else []
        replies = read_mapping(files["replies"], "reply templates", ManifestError) if "replies" in files else None
        return rules, replies


def agent_file(agents_dir: Path, kind: Literal["rules", "replies"], name: str) -> Path:
    """Where a rule or reply file a manifest or the classifier names lives: `<agents dir>/<kind>/<name>.yaml`,
    the agents dir being the parent of the manifests folder."""
    return Path(agents_dir) / kind / f"{name}.yaml"


def load_manifest(path: Path) -> AgentManifest:
    """Read and validate one manifest; errors name the file and the field."""
    return validate_named(path, read_mapping(path, "manifest", ManifestError), AgentManifest, "agent", ManifestError)


def load_manifests(directory: Path) -> dict[str, AgentManifest]:
    """Every manifest of a folder, by agent name (retired ones included: callers decide)."""
    files = sorted(Path(directory).glob("*.yaml"))
    return {path.stem: load_manifest(path) for path in files}
