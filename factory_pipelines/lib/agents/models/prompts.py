"""Prompts as files, synced to the MLflow Prompt Registry.

A prompt file holds the template (`{{variable}}` syntax), its input variables, the JSON schema the
answer must match, and a description. The file is validated at load: a variable used but not declared,
or declared but not used, is an error naming the file. `sync_prompts` registers a new version only when
the content changed (MLflow would otherwise add a version for identical content): the content hash is a
version tag. The first version gets the `champion` alias; later ones become `challenger` until an
evaluation promotes them. Consumers resolve `prompts:/<name>@<alias>` at run time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_pipelines.lib.config_files import ConfigError, SnakeName, read_mapping, validate_named

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
HASH_TAG = "content_sha256"


class PromptError(ConfigError):
    """A prompt file is invalid, or a render lacks a variable; the message names the file or prompt."""


class PromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SnakeName
    description: str = Field(min_length=10)
    input_variables: list[str] = Field(min_length=1)
    template: str = Field(min_length=10)
    response_schema: dict[str, Any]

    @model_validator(mode="after")
    def _variables_match(self) -> PromptSpec:
        used = set(VARIABLE.findall(self.template))
        declared = set(self.input_variables)
        if used - declared:
            raise ValueError(f"template uses undeclared variable(s) {sorted(used - declared)}")
        if declared - used:
            raise ValueError(f"declared variable(s) {sorted(declared - used)} never used in the template")
        return self

    @property
    def content_hash(self) -> str:
        payload = json.dumps(self.model_dump(exclude={"description"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def render(self, **values: Any) -> str:
        """The template with every variable filled; a missing one is an error, never an empty string."""
        return render(self.template, values, f"prompt {self.name}")


def render(template: str, values: dict[str, Any], what: str) -> str:
    """`template` with every `{{variable}}` filled from `values`; a missing one is an error naming `what`,
    never an empty string. The one renderer of prompt files and of prompts served by the registry."""
    missing = sorted(set(VARIABLE.findall(template)) - set(values))
    if missing:
        raise PromptError(f"{what}: missing input variable(s) {missing}; given {sorted(values)}")
    return VARIABLE.sub(lambda m: str(values[m.group(1)]), template)


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt as the registry served it (`prompts:/<name>@<alias>`): the version every decision records."""

    name: str
    version: int
    template: str
    response_schema: dict[str, Any]

    @property
    def variables(self) -> list[str]:
        return sorted(set(VARIABLE.findall(self.template)))

    def render(self, values: dict[str, Any]) -> str:
        return render(self.template, values, f"prompt {self.name} v{self.version}")


def load_registered_prompt(uri: str) -> ResolvedPrompt:
    """A prompt from the MLflow Prompt Registry (`prompts:/<name>@<alias>` or `prompts:/<name>/<version>`); an
    unknown name, alias or version is a PromptError saying where prompts come from."""
    import mlflow.genai

    try:
        prompt = mlflow.genai.load_prompt(uri)
    except Exception as exc:  # MLflow raises MlflowException, RESOURCE_DOES_NOT_EXIST, for an unknown prompt
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(exc).lower():
            raise  # a store that cannot be read is not a missing prompt
        raise PromptError(f"prompt {uri} is not in the MLflow Prompt Registry: materialize registry/prompt_versions "
                          f"first, or name a version that exists ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    schema = prompt.response_format if isinstance(prompt.response_format, dict) else {}
    return ResolvedPrompt(prompt.name, int(prompt.version), prompt.template, schema)


def load_prompt_file(path: Path) -> PromptSpec:
    """Read and validate one prompt file; errors name the file and the field."""
    return validate_named(path, read_mapping(path, "prompt", PromptError), PromptSpec, "prompt", PromptError)


def load_prompts(directory: Path) -> dict[str, PromptSpec]:
    return {p.stem: load_prompt_file(p) for p in sorted(Path(directory).glob("*.yaml"))}


def sync_prompts(client: Any, specs: dict[str, PromptSpec], commit: str = "") -> dict[str, dict[str, Any]]:
    """Register changed prompts with an MLflow client; returns per prompt its version and whether it is new."""
    synced = {}
    for name, spec in specs.items():
        versions = _versions(client, name)
        same = next((v for v in versions if v.tags.get(HASH_TAG) == spec.content_hash), None)
        if same is not None:
            synced[name] = {"version": int(same.version), "created": False}
            continue
        version = client.register_prompt(
            name=name, template=spec.template.replace("{{ ", "{{").replace(" }}", "}}"),
            commit_message=commit or f"sync of {name}.yaml", response_format=spec.response_schema,
            tags={HASH_TAG: spec.content_hash, "description": spec.description[:250]},
        )
        alias = "champion" if not versions else "challenger"
        client.set_prompt_alias(name, alias, int(version.version))
        synced[name] = {"version": int(version.version), "created": True, "alias": alias}
    return synced


def _versions(client: Any, name: str) -> list[Any]:
    try:
        return list(client.search_prompt_versions(name))
    except Exception as exc:  # MLflow raises RESOURCE_DOES_NOT_EXIST for an unknown prompt
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            return []
        raise
