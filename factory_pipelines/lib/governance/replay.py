"""Policy replay: re-decide recorded tool calls with a candidate policy set, executing nothing.

Every call the gate decided is recorded in `agents.tool_calls` with its Cedar request. Replaying those
requests against a candidate folder (same layout as `policies/`) shows, call by call, how the allow /
deny / escalate mix would change before the candidate is enforced. Each call is re-decided with the set
its agent's manifest names and today's agent entity; requests are evaluated in one Cedar batch per set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from factory_pipelines.lib.governance.gate import agent_entity, recorded_request
from factory_pipelines.lib.governance.policy import PolicyEngine


@dataclass(frozen=True)
class Change:
    partition: str
    agent: str
    ticket_id: str
    tool: str
    recorded: str
    recorded_policies: tuple[str, ...]
    candidate: str
    candidate_policies: tuple[str, ...]


@dataclass
class ReplayReport:
    calls: int = 0
    skipped: int = 0  # calls without a Cedar request (stopped by a kill switch, a budget, or a bad argument)
    matrix: Counter = field(default_factory=Counter)  # (recorded, candidate) -> calls
    changed: list[Change] = field(default_factory=list)


def replay(con: Any, policies_dir: Path, manifests: dict[str, Any], start: date, end: date,
           agent: str | None = None) -> ReplayReport:
    """The recorded calls of [start, end] (one agent or all) re-decided with the candidate policies."""
    rows = con.execute(
        "SELECT partition, agent, ticket_id, tool, verdict, policies, cedar_request FROM agents.tool_calls "
        "WHERE partition BETWEEN ? AND ? AND (? IS NULL OR agent = ?) ORDER BY partition, called_at",
        [start, end, agent, agent]).fetchall()
    report = ReplayReport()
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        if row[6] is None or row[1] not in manifests:
            report.skipped += 1
            continue
        groups.setdefault(row[1], []).append(row)
    engines: dict[str, PolicyEngine] = {}
    for name, calls in groups.items():
        manifest = manifests[name]
        if manifest.policy_set not in engines:
            engines[manifest.policy_set] = PolicyEngine.load(policies_dir, manifest.policy_set)
        engine = engines[manifest.policy_set]
        entities = engine.entities([agent_entity(name, manifest.stage, manifest.version, list(manifest.tools))])
        decisions = engine.decide_many([recorded_request(c[6]) for c in calls], entities)
        for call, decision in zip(calls, decisions, strict=True):
            recorded = (call[4], tuple(call[5] or ()))
            report.calls += 1
            report.matrix[(recorded[0], decision.outcome)] += 1
            if (decision.outcome, decision.policies) != recorded:
                report.changed.append(Change(str(call[0]), name, call[2], call[3], recorded[0], recorded[1],
                                             decision.outcome, decision.policies))
    return report
