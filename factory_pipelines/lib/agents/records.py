"""What an agent run leaves behind: its tables (decisions, tool calls, the response cache), the day's report,
and the one write that replaces a day's decisions and appends its tool calls.

`write_results` takes an `also(con)` that runs in the same commit: governance adds the audit events of the
calls there (`governance.gate.record_agent_day`), so the records and their audit trail commit together.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory_pipelines.lib.agents.effects import ensure_effect_tables
from factory_pipelines.lib.agents.outbox import ensure_outbox
from factory_pipelines.lib.sql import transaction

DECISIONS_DDL = """
CREATE TABLE IF NOT EXISTS agents.decisions (
    agent VARCHAR, agent_version VARCHAR, partition DATE, ticket_id VARCHAR, status VARCHAR,
    category VARCHAR, priority VARCHAR, action VARCHAR, decision JSON, decided_by JSON, rules_fired VARCHAR[],
    tool_calls VARCHAR[], reply VARCHAR, cited_passages VARCHAR[], prompt_name VARCHAR, prompt_version INTEGER,
    model_provider VARCHAR, model_version VARCHAR, first_pass_model VARCHAR, model_calls INTEGER,
    cache_hits INTEGER, tokens_in INTEGER, tokens_out INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    truncated BOOLEAN, error VARCHAR, trace_id VARCHAR, run_id VARCHAR, decided_at TIMESTAMPTZ, tier_costs JSON,
    first_pass JSON)
"""
TOOL_CALLS_DDL = """
CREATE TABLE IF NOT EXISTS agents.tool_calls (
    agent VARCHAR, ticket_id VARCHAR, tool VARCHAR, tool_version VARCHAR, arguments JSON, status VARCHAR,
    verdict VARCHAR, reason VARCHAR, policies VARCHAR[], executed BOOLEAN, error VARCHAR, latency_s DOUBLE,
    run_id VARCHAR, partition DATE, called_at TIMESTAMPTZ DEFAULT current_timestamp)
"""
TOOL_CALLS_GOVERNANCE = {  # columns added by the policy gate (kept as ALTERs so older warehouses upgrade in place)
    "policy_hash": "VARCHAR", "shadow_verdict": "VARCHAR", "shadow_policies": "VARCHAR[]", "cedar_request": "JSON",
    "output": "JSON"}
SHADOW_TABLES = {  # what the other configuration of a staged day decided (and the gate said), nothing executed
    "shadow_decisions": DECISIONS_DDL.replace("agents.decisions (", "agents.shadow_decisions (stage VARCHAR, role VARCHAR, "),
    "shadow_tool_calls": TOOL_CALLS_DDL.replace("agents.tool_calls (", "agents.shadow_tool_calls (stage VARCHAR, role VARCHAR, "),
}
CACHE_DDL = """
CREATE TABLE IF NOT EXISTS agents.model_cache (
    key VARCHAR PRIMARY KEY, model_version VARCHAR, prompt VARCHAR, result JSON,
    created_at TIMESTAMPTZ DEFAULT current_timestamp)
"""


@dataclass
class RunReport:
    """What one agent run did over one day, for asset metadata and the CLI summary."""

    agent: str
    partition: str
    tickets: int = 0
    statuses: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    tool_calls: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)  # policy gate: allow / deny / escalate per call
    policy_alerts: int = 0
    policy_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    cache_hits: int = 0
    latencies: list[float] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    labelled: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: str = ""
    wall_s: float = 0.0
    prompt_version: str = ""
    model_version: str = ""
    first_pass: str = ""
    rollout: dict[str, Any] = field(default_factory=dict)  # the staged challenger's part of the day, if any

    @property
    def not_done(self) -> list[str]:
        return [t for t, _ in self.errors]

    def absorb(self, other: RunReport) -> None:
        """Add another run's report of the same day (a canary's tickets) to this one."""
        labelled = self.labelled + other.labelled
        if labelled:
            self.accuracy = {k: round((self.accuracy.get(k, 0.0) * self.labelled
                                       + other.accuracy.get(k, 0.0) * other.labelled) / labelled, 4)
                             for k in {*self.accuracy, *other.accuracy}}
        for name in ("statuses", "actions", "tool_calls", "verdicts"):
            getattr(self, name).update(getattr(other, name))
        for name in ("tickets", "policy_alerts", "tokens_in", "tokens_out", "cost_usd", "model_calls", "cache_hits",
                     "labelled", "wall_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies += other.latencies
        self.errors += other.errors
        self.stopped = self.stopped or other.stopped
        for name in ("prompt_version", "model_version", "first_pass"):
            if getattr(other, name) and getattr(other, name) != getattr(self, name):
                setattr(self, name, f"{getattr(self, name)} (canary: {getattr(other, name)})")

    def add_rows(self, rows: list[dict[str, Any]], labels: dict[str, dict[str, Any]], fields: list[str]) -> None:
        """Count the day's decision rows in: statuses, reasons of those not decided, usage, actions, and the
        accuracy of each answer field on the labelled tickets."""
        hits: Counter = Counter()
        for row in rows:
            self.statuses[row["status"]] += 1
            if row["status"] != "decided":
                self.errors.append((row["ticket_id"], row["error"] or row["status"]))
                continue
            self.latencies.append(row["latency_s"])
            for key in ("tokens_in", "tokens_out", "model_calls", "cache_hits"):
                setattr(self, key, getattr(self, key) + row[key])
            self.cost_usd += row["cost_usd"]
            self.tool_calls.update(row["tool_calls"])
            if row["action"]:
                self.actions[row["action"]] += 1
            truth = labels.get(row["ticket_id"])
            if truth:
                self.labelled += 1
                decision = json.loads(row["decision"])
                hits.update(f for f in fields if f in truth and str(truth[f]) == str(decision.get(f)))
        if self.labelled:
            measured = [f for f in fields if any(f in t for t in labels.values())]
            self.accuracy = {f"{f}_accuracy": round(hits[f] / self.labelled, 4) for f in measured}

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q * 100) - 1]


def charge_tier(tiers: dict[str, dict[str, float]], tier: str, result: Any, uncached: Any) -> None:
    """A call's share of its tier: calls, cost paid, and the cost and latency it would have had with no cache
    hit (what a routing sweep compares: the cache makes repeated grid points free, not cheap)."""
    spent = tiers.setdefault(tier, {"calls": 0, "cost_usd": 0.0, "latency_s": 0.0, "uncached_cost_usd": 0.0,
                                    "uncached_latency_s": 0.0})
    spent["calls"] += 1
    spent["latency_s"] = round(spent["latency_s"] + result.latency_s, 6)
    spent["cost_usd"] = round(spent["cost_usd"] + result.cost_usd, 8)
    spent["uncached_cost_usd"] = round(spent["uncached_cost_usd"] + uncached.cost_usd, 8)
    spent["uncached_latency_s"] = round(spent["uncached_latency_s"] + uncached.latency_s, 6)


def ensure_agent_tables(con: Any) -> None:
    ensure_outbox(con)
    ensure_effect_tables(con)
    for ddl in (DECISIONS_DDL, TOOL_CALLS_DDL, CACHE_DDL):
        con.execute(ddl)
    for ddl in SHADOW_TABLES.values():
        con.execute(ddl)
    for table in ("tool_calls", "shadow_tool_calls"):
        for column, kind in TOOL_CALLS_GOVERNANCE.items():
            con.execute(f"ALTER TABLE agents.{table} ADD COLUMN IF NOT EXISTS {column} {kind}")
    for table in ("decisions", "shadow_decisions"):  # the routing cascade's cost per tier (older warehouses)
        con.execute(f"ALTER TABLE agents.{table} ADD COLUMN IF NOT EXISTS tier_costs JSON")
        con.execute(f"ALTER TABLE agents.{table} ADD COLUMN IF NOT EXISTS first_pass JSON")  # label, confidence


def write_results(con: Any, agent: str, partition: str, rows: list[dict[str, Any]], tool_calls: list[dict[str, Any]],
                  also: Callable[[Any], None] | None = None) -> None:
    """Replace the day's decisions of the agent and append its tool calls; `also(con)` runs in the same commit."""
    ensure_agent_tables(con)
    with transaction(con):
        con.execute("DELETE FROM agents.decisions WHERE agent = ? AND partition = ?", [agent, partition])
        for table, records in (("decisions", rows), ("tool_calls", tool_calls)):
            _insert(con, table, records)
        if also is not None:
            also(con)


def write_shadow_results(con: Any, agent: str, partition: str, stage: str, role: str, rows: list[dict[str, Any]],
                         tool_calls: list[dict[str, Any]]) -> None:
    """Replace the day's shadow decisions and tool calls of the agent (a staged day; `role`: which side they are)."""
    ensure_agent_tables(con)
    with transaction(con):
        for table, records in (("shadow_decisions", rows), ("shadow_tool_calls", tool_calls)):
            con.execute(f"DELETE FROM agents.{table} WHERE agent = ? AND partition = ?", [agent, partition])
            _insert(con, table, [{**r, "stage": stage, "role": role} for r in records])


def _insert(con: Any, table: str, records: list[dict[str, Any]]) -> None:
    """Append records to `agents.<table>` by column name (none: nothing to do)."""
    import pandas as pd

    if records:
        con.register("new_rows", pd.DataFrame(records))
        con.execute(f"INSERT INTO agents.{table} BY NAME SELECT * FROM new_rows")
        con.unregister("new_rows")
