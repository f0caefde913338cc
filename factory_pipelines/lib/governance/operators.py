"""Operator rights: may this person evaluate, promote or roll back this agent? A Cedar decision of the
policy set `operations/` over the principal `Operator` (its role from `policies/operators.yaml`) and the
resource `Agent`, so who may change a champion is reviewed policy, like every agent tool call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.config_files import ConfigError, validate_file
from factory_pipelines.lib.governance.gate import agent_entity
from factory_pipelines.lib.governance.policy import PolicyDecision, PolicyEngine

OPERATORS_FILE = "operators.yaml"
OPERATIONS_SET = "operations"
OperatorAction = Literal["evaluate", "promote", "rollback"]


class OperatorsError(ConfigError):
    """`policies/operators.yaml` is missing or invalid."""


class Operators(BaseModel):
    """Who operates the factory, with which role (the policies decide what a role may do)."""

    model_config = ConfigDict(extra="forbid")

    default_role: str = Field(min_length=1, description="The role of anyone not listed.")
    operators: dict[str, str] = Field(default_factory=dict, description="Operator name -> role.")

    def role_of(self, name: str) -> str:
        return self.operators.get(name, self.default_role)


def load_operators(policies_dir: Path) -> Operators:
    return validate_file(Path(policies_dir) / OPERATORS_FILE, Operators, "the operators file", OperatorsError)


def authorize(policies_dir: Path, operator: str, action: OperatorAction, manifest: Any,
              context: dict[str, Any] | None = None) -> tuple[PolicyDecision, str]:
    """The Cedar decision on `operator` doing `action` to the agent of `manifest`, and the operator's role."""
    role = load_operators(policies_dir).role_of(operator)
    engine = PolicyEngine.load(policies_dir, OPERATIONS_SET)
    entities = engine.entities([
        {"uid": {"type": "Operator", "id": operator}, "parents": [], "attrs": {"role": role}},
        agent_entity(manifest.name, manifest.stage, manifest.version, list(manifest.tools))])
    request = {"principal": {"type": "Operator", "id": operator}, "action": {"type": "Action", "id": action},
               "resource": {"type": "Agent", "id": manifest.name}, "context": dict(context or {})}
    return engine.decide(request, entities), role
