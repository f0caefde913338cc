"""The policy engine behind one resource: Cedar policy sets, kill switches, gate settings, review deadline.

Policy sets are loaded and validated once per process and set; a changed file on disk (a new hash) is
picked up by the next run. The Cedar binding is imported by `lib.policy` only when a set is loaded.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field


@cache
def _engine(policies_dir: str, name: str, stamp: tuple[tuple[str, int], ...]) -> Any:
    from factory_pipelines.lib.governance.policy import PolicyEngine

    return PolicyEngine.load(Path(policies_dir), name)


def _stamp(policies_dir: Path, name: str) -> tuple[tuple[str, int], ...]:
    files = [policies_dir / "factory.cedarschema", *policies_dir.glob("common/*.cedar"), *policies_dir.glob(f"{name}/*.cedar")]
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in files if p.exists()))


class PolicyEngineResource(dg.ConfigurableResource):
    """Authorizes every tool call of every agent (see lib/governance/gate.py and docs/governance.md)."""

    policies_dir: str = Field(description="Folder with factory.cedarschema, common/, one folder per set, gate.yaml.")
    kill_switches_file: str = Field(description="Kill-switch journal (JSON lines).")
    review_ttl_hours: float = Field(description="Escalations not decided within this expire (denied); from the "
                                                "settings (FACTORY_REVIEW_TTL_HOURS).")
    audit_anchor: str = Field(description="File holding the audit log's last seq and hash.")

    def engine(self, name: str) -> Any:
        """The validated, pre-parsed policy set `name` (PolicyError naming the file when invalid)."""
        root = Path(self.policies_dir)
        return _engine(str(root), name, _stamp(root, name))

    def switches(self) -> Any:
        from factory_pipelines.lib.governance.kill_switches import KillSwitches

        return KillSwitches(Path(self.kill_switches_file))

    def gate_config(self) -> Any:
        from factory_pipelines.lib.governance.gate_config import load_gate_config

        return load_gate_config(Path(self.policies_dir))
