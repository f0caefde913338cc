"""One agent configuration decided over a golden suite's cases: the real runtime, tools and Cedar gate, in the
suite's scratch world (`world.py`), each case on its own budget and clock, K trials per case.

What a case's outcome keeps is what the scorers judge (`scorers.py`): the decision, every tool call with the
gate's verdict and whether it executed, the reply and the passages it cited and retrieved, latency, tokens,
cost and the case's trace. A trial runs in a fresh world, so a refund executed in trial 1 is not an order
already refunded in trial 2.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from factory_pipelines.lib.agents.manifests import MODEL_URI
from factory_pipelines.lib.evals.datasets import moment
from factory_pipelines.lib.evals.world import EvalWorld


@dataclass(frozen=True)
class AgentConfiguration:
    """What is evaluated: a manifest with a prompt, a model provider and the first-pass classifier resolved.
    `label` names it in reports and runs (e.g. `champion` or `prompt v3`)."""

    label: str
    manifest: Any
    prompt: Any
    provider: Any
    model_version: str
    rules: list[Any] = field(default_factory=list)
    replies: dict[str, Any] | None = None
    first_pass: Any = None
    reply_prompt: Any = None
    escalate_provider: Any = None  # the routing cascade's last tier (manifest decision.escalate_model), if any
    escalate_model_version: str = ""

    @property
    def params(self) -> dict[str, str]:
        """The configuration as MLflow run parameters (what makes two configurations different)."""
        model, decision = self.manifest.model, self.manifest.decision
        escalate = decision.escalate_model
        return {"agent": self.manifest.name, "agent_version": self.manifest.version, "provider": model.provider,
                "model": model.name, "model_version": self.model_version, "temperature": str(model.temperature),
                "prompt": f"{self.prompt.name}/{self.prompt.version}",
                "first_pass": f"{self.first_pass.uri} v{self.first_pass.version}" if self.first_pass else "none",
                "model_below_confidence": str(decision.model_below_confidence),
                "escalate": (f"{escalate.provider}/{escalate.name} below {decision.escalate_below_confidence}"
                             if escalate and self.escalate_provider is not None else "none")}

    @property
    def versions(self) -> dict[str, str]:
        """What promotion moves, as `<name>/<version>`: the prompt, and the first-pass classifier ("none")."""
        first_pass = "none"
        if self.first_pass is not None:
            first_pass = f"{MODEL_URI.match(self.first_pass.uri)['name']}/{self.first_pass.version}"  # type: ignore[index]
        model = self.manifest.model
        return {"prompt": f"{self.prompt.name}/{self.prompt.version}", "first_pass": first_pass,
                "provider": f"{model.provider}/{model.name}"}  # not an alias: a provider is chosen in the manifest


@dataclass
class CaseOutcome:
    """One trial of one case: what the agent decided and did."""

    case_id: str
    trial: int
    status: str  # decided | failed | unprocessed | deferred
    decision: dict[str, Any]
    tool_calls: list[dict[str, Any]]
    reply: str | None
    cited: list[str]
    retrieved: list[str]
    latency_s: float
    cost_usd: float
    tokens: int
    trace_id: str | None
    error: str | None
    decided_by: dict[str, str] = field(default_factory=dict)
    tier_costs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def uncached_cost_usd(self) -> float:
        """What the case cost with no response cache (a hit is free; the sweep prices the configuration)."""
        return self.cost_usd + sum(t["uncached_cost_usd"] - t["cost_usd"] for t in self.tier_costs.values())

    @property
    def uncached_latency_s(self) -> float:
        """The case's time with every model call made (a cache hit takes ~0 s: add back what its first call took)."""
        return self.latency_s + sum(t["uncached_latency_s"] - t.get("latency_s", 0.0) for t in self.tier_costs.values())

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Governance:
    """The policy side every case is gated by: the Cedar engine of the agent's policy set and the gate config."""

    engine: Any
    gate_config: Any


def run_cases(cases: list[Mapping[str, Any]], configuration: AgentConfiguration, governance: Governance,
              new_world: Callable[[], EvalWorld], *, trials: int = 1, trace_tags: Mapping[str, str] | None = None,
              model_cache: dict[str, tuple[Any, ...]] | None = None) -> list[CaseOutcome]:
    """Decide every case `trials` times; outcomes in case order, trial by trial. `model_cache` carries the
    worlds' response caches from one call to the next (a sweep's grid points ask the same questions)."""
    outcomes: list[CaseOutcome] = []
    for trial in range(trials):
        world = new_world()
        try:
            if model_cache is not None:
                _seed_cache(world.con, model_cache)
            with tempfile.TemporaryDirectory(prefix="factory-eval-") as scratch:
                for case in cases:
                    outcomes.append(_decide(case, trial, configuration, governance, world, Path(scratch),
                                            dict(trace_tags or {}), use_cache=trials == 1))
            if model_cache is not None:
                model_cache.update({row[0]: row for row in world.con.execute(
                    "SELECT key, model_version, prompt, result FROM agents.model_cache").fetchall()})
        finally:
            world.close()
    return outcomes


def _seed_cache(con: Any, rows: dict[str, tuple[Any, ...]]) -> None:
    from factory_pipelines.lib.agents.records import ensure_agent_tables

    ensure_agent_tables(con)
    if rows:
        con.executemany("INSERT OR REPLACE INTO agents.model_cache (key, model_version, prompt, result) "
                        "VALUES (?, ?, ?, ?)", list(rows.values()))


def _decide(case: Mapping[str, Any], trial: int, configuration: AgentConfiguration, governance: Governance,
            world: EvalWorld, scratch: Path, trace_tags: dict[str, str], *, use_cache: bool) -> CaseOutcome:
    from factory_pipelines.lib.agents.retrieval import KbIndex
    from factory_pipelines.lib.agents.runtime import AgentRunner
    from factory_pipelines.lib.agents.toolbox import Budget, Toolbox, ToolEnv
    from factory_pipelines.lib.governance.gate import CedarGate
    from factory_pipelines.lib.governance.kill_switches import KillSwitches

    manifest, case_id = configuration.manifest, str(case["id"])
    ticket = dict(case["inputs"]["ticket"])
    as_of = _as_of(case)
    env = ToolEnv(con=world.con, kb=KbIndex(world.kb_articles) if world.kb_articles else None,
                  feature_service=manifest.feature_service, as_of=as_of,
                  online_features=world.online_features, online_features_many=world.online_features_many)
    budget = Budget.from_manifest(manifest.budgets)
    gate = CedarGate.for_agent(manifest, governance.engine, KillSwitches(scratch / "switches.jsonl"),
                               governance.gate_config, world.con, budget, as_of=as_of)
    run_id = f"eval:{configuration.label}:{case_id}:{trial}"
    toolbox = Toolbox(manifest.name, env, gate, budget, run_id=run_id, partition=str(moment(ticket["created_at"]).date()))
    runner = AgentRunner(manifest, configuration.prompt, configuration.provider, configuration.model_version, toolbox,
                         rules=configuration.rules, first_pass=configuration.first_pass,
                         reply_templates=configuration.replies, reply_prompt=configuration.reply_prompt,
                         use_cache=use_cache, feature_names=world.feature_names,
                         trace_tags={**trace_tags, "eval_case": case_id, "eval_trial": str(trial)},
                         escalate_provider=configuration.escalate_provider,
                         escalate_model_version=configuration.escalate_model_version)
    _, (row,) = runner.run([ticket])
    return _outcome(case_id, trial, row, toolbox.records)


def _as_of(case: Mapping[str, Any]) -> datetime:
    """The case's clock: its `as_of`, else the ticket's time (never before the ticket)."""
    at = moment(case["inputs"]["ticket"]["created_at"])
    given = case["inputs"].get("as_of")
    return max(at, moment(given)) if given else at


def _outcome(case_id: str, trial: int, row: dict[str, Any], records: list[dict[str, Any]]) -> CaseOutcome:
    decision = json.loads(row["decision"]) if row.get("decision") else {}
    calls = [{"tool": r["tool"], "verdict": r.get("verdict"), "status": r.get("status"),
              "executed": r.get("status") == "ok"}  # done now, or found done by the outbox
             for r in records]
    retrieved = []
    for record in records:
        if record["tool"] == "kb_search" and record.get("output"):
            retrieved += [p["article_id"] for p in json.loads(record["output"]).get("passages", [])]
    return CaseOutcome(
        case_id=case_id, trial=trial, status=row["status"], decision=decision, tool_calls=calls, reply=row.get("reply"),
        cited=list(row.get("cited_passages") or []), retrieved=retrieved, latency_s=float(row.get("latency_s") or 0),
        cost_usd=float(row.get("cost_usd") or 0), tokens=int(row.get("tokens_in") or 0) + int(row.get("tokens_out") or 0),
        trace_id=row.get("trace_id"), error=row.get("error"), decided_by=json.loads(row.get("decided_by") or "{}"),
        tier_costs=json.loads(row.get("tier_costs") or "{}"))
