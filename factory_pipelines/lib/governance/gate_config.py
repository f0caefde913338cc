"""`policies/gate.yaml`: how the facts of a call become Cedar context (risk signals, secrets, currencies)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.agents.rules import Condition
from factory_pipelines.lib.config_files import validate_file

GATE_CONFIG = "gate.yaml"


class Signal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    when: Condition
    points: int = Field(ge=0, le=100)


class GateConfig(BaseModel):
    """`policies/gate.yaml`: how facts become Cedar context (risk signals, secrets, currencies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signals: list[Signal] = Field(default_factory=list, description="Risk signals; points add up to at most 100.")
    secret_patterns: dict[str, str] = Field(default_factory=dict, description="name -> regex of a credential.")
    allowed_email_domains: list[str] = Field(default_factory=list, description="Our own addresses, fine in replies.")
    usd_per_unit: dict[str, float] = Field(default_factory=lambda: {"USD": 1.0})

    def compiled_secrets(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(name, re.compile(rx)) for name, rx in self.secret_patterns.items()]


def load_gate_config(root: Path) -> GateConfig:
    return validate_file(Path(root) / GATE_CONFIG, GateConfig, "gate config", ValueError)
