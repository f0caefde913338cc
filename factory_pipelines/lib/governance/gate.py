"""The policy gate: every tool call becomes a Cedar request, and the answer is allow, deny or escalate.

`CedarGate` implements the toolbox's `Gate`. Kill switches come first (a switch that covers the call
denies it, whatever the policies say). Then the call is built into a request: principal = the agent
(stage, version, granted tools), action = the tool, resource = the target (customer, order or ticket),
context = the validated arguments, the customer's features, a risk score (`policies/gate.yaml`), the
budget used so far, and the data behind the call (did the partition's contracts pass, how old are the
features, is any newer than the ticket, did last night's drift reach error level). Facts the policies need and the model could lie about (whose
order it is, what a reply contains) are looked up (`shop`) or scanned (`reply_scan`) here, never taken
from the model. A reviewer's word on an exact call binds re-runs; escalated calls go to the review queue,
and an executed side effect is written to the audit log in the transaction that executes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from factory_pipelines.lib.agents.facts import TicketFacts
from factory_pipelines.lib.agents.outbox import idempotency_key
from factory_pipelines.lib.agents.records import write_results
from factory_pipelines.lib.agents.rules import lookup
from factory_pipelines.lib.agents.toolbox import Budget, ToolRequest, Verdict
from factory_pipelines.lib.agents.tools import CATALOG, order_refs
from factory_pipelines.lib.governance import review
from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log, save_anchor
from factory_pipelines.lib.governance.gate_config import GateConfig, Signal
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.policy import PolicyDecision, PolicyEngine
from factory_pipelines.lib.governance.shop import Shop, refund_context, refunds_used_cents, reply_context
from factory_pipelines.lib.money import cents


@dataclass
class CedarGate:
    """The gate of one agent run: its policy set, kill switches, budget and the data behind the run."""

    engine: PolicyEngine
    agent: str
    stage: str
    version: str
    tools: list[str]
    switches: KillSwitches
    budget: Budget
    config: GateConfig
    con: Any  # the warehouse, for facts the model must not supply: order owners, customer emails
    contracts_passed: bool = True
    as_of: datetime | None = None
    drift_status: str = "none"  # lib/drift/status.py: none, ok, insufficient, warn, error or acknowledged
    drift_slices: tuple[str, ...] = ()  # the drifted `metric.column.method` keys of that night
    manifest_kill_switch: bool = False  # the manifest's own kill_switch: true stops every call
    review_ttl_hours: float = review.DEFAULT_TTL_HOURS  # escalated calls wait this long for a reviewer
    decisions: int = 0
    alerts: list[str] = field(default_factory=list)
    shop: Shop = field(init=False, repr=False)
    _entities: Any = field(default=None, init=False, repr=False)
    _signals: dict[tuple[Any, ...], bool] = field(default_factory=dict, init=False, repr=False)
    _signal_paths: list[tuple[Signal, tuple[str, ...]]] = field(default_factory=list, init=False, repr=False)
    _data_memo: tuple[Any, Any, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_agent(cls, manifest: Any, engine: PolicyEngine, switches: KillSwitches, config: GateConfig, con: Any,
                  budget: Budget, *, as_of: datetime | None = None, contracts_passed: bool = True,
                  review_ttl_hours: float = review.DEFAULT_TTL_HOURS, drift_status: str = "none",
                  drift_slices: tuple[str, ...] = ()) -> CedarGate:
        """The gate of one run of the agent a manifest declares (`drift_*`: the agent's latest drift night)."""
        return cls(engine, manifest.name, manifest.stage, manifest.version, list(manifest.tools), switches, budget,
                   config, con, contracts_passed=contracts_passed, as_of=as_of,
                   drift_status=drift_status, drift_slices=tuple(drift_slices),
                   manifest_kill_switch=manifest.kill_switch, review_ttl_hours=review_ttl_hours)

    def __post_init__(self) -> None:
        self._entities = self.engine.entities([agent_entity(self.agent, self.stage, self.version, self.tools)])
        self.shop = Shop(self.con, self.as_of)
        self._signal_paths = [(signal, signal.when.paths) for signal in self.config.signals]
        review.ensure_review_queue(self.con)  # and the audit log: escalations and effects are written there

    @property
    def policy_hash(self) -> str:
        return f"{self.engine.name}@{self.engine.hash}"

    def check(self, request: ToolRequest) -> Verdict:
        killed = "kill_switch/manifest (kill_switch: true in the agent's manifest)" if self.manifest_kill_switch \
            else self.switches.blocking(self.agent, request.tool.name)
        if killed:
            return Verdict("deny", f"{request.tool.name} stopped by {killed}", (killed.split(" ")[0],),
                           policy_hash=self.policy_hash)
        cedar = self.request(request)
        verdict = self.verdict(self.engine.decide(cedar, self._entities), cedar)
        return self._reviewed(request, verdict) if request.tool.side_effect else verdict

    def verdict(self, decision: PolicyDecision, cedar: dict[str, Any]) -> Verdict:
        self.decisions += 1
        if decision.alert:
            self.alerts.append(decision.reason)
        amount = cedar["context"].get("amount_cents", 0) if cedar["action"]["id"] == "issue_refund" else 0
        return Verdict(decision.outcome, decision.reason, decision.policies, policy_hash=self.policy_hash,
                       request=cedar, shadow=decision.shadow_outcome, shadow_policies=decision.shadow_policies,
                       amount_cents=amount)

    def _reviewed(self, request: ToolRequest, verdict: Verdict) -> Verdict:
        """A reviewer's word on this exact call binds re-runs: rejected, expired or cancelled stays denied, and one
        pending or approved waits for the review sweep, whatever the policies say now."""
        if verdict.decision == "deny":
            return verdict
        status = review.status_of(self.con, request)
        if status in ("rejected", "expired", "cancelled"):
            return Verdict("deny", f"{request.tool.name} was {status} in review", (f"review/{status}",),
                           policy_hash=verdict.policy_hash, request=verdict.request)
        if status in ("pending", "approved") and verdict.decision == "allow":
            return Verdict("escalate", f"{request.tool.name} is {status} in review; the review sweep runs it",
                           (f"review/{status}",), policy_hash=verdict.policy_hash, request=verdict.request)
        return verdict

    def escalate(self, request: ToolRequest, verdict: Verdict, *, run_id: str, partition: str) -> dict[str, Any]:
        return review.enqueue(self.con, request, verdict, run_id=run_id, partition=partition,
                              ttl_hours=self.review_ttl_hours)

    def record_effect(self, tx: Any, request: ToolRequest, verdict: Verdict, result: dict[str, Any], *,
                      run_id: str, partition: str) -> None:
        """The audit event of an executed side effect, committed with the effect itself."""
        append(tx, [effect_event(request.agent, request.ticket_id, request.tool.name, request.arguments, result,
                                 {"verdict": verdict.decision, "policies": list(verdict.policies),
                                  "policy_hash": verdict.policy_hash, "run_id": run_id, "partition": partition})])

    def prefetch(self, tickets: list[dict[str, Any]]) -> None:
        """Look up the orders (as of the run's day and now) and customer emails a day of tickets will need, in bulk."""
        orders = {t.get("order_id") for t in tickets if t.get("order_id")}
        for ticket in tickets:
            orders |= set(order_refs(f"{ticket.get('subject') or ''} {ticket.get('body') or ''}"))
        self.shop.prefetch({str(t["customer_id"]) for t in tickets if t.get("customer_id")}, orders)

    def request(self, request: ToolRequest) -> dict[str, Any]:
        """The Cedar request of one tool call."""
        facts = request.facts or TicketFacts.of({"ticket_id": request.ticket_id})
        tool, args = request.tool.name, request.arguments
        customer_id = facts.customer_id
        context: dict[str, Any] = {
            "tool": tool, "ticket_id": request.ticket_id, "risk_score": self._risk(facts),
            "customer": customer_context(facts.features), "data": self._data(facts), "budget": self.budget.cedar()}
        if tool == "customer_features":
            resource = {"type": "Customer", "id": args.customer_id}
            context |= {"own": args.customer_id == customer_id}
        elif tool in ("order_lookup", "issue_refund"):
            resource = {"type": "Order", "id": args.order_id}
        else:
            resource = {"type": "Ticket", "id": getattr(args, "ticket_id", None) or request.ticket_id}
        if tool == "order_lookup":
            order = self.shop.order(args.order_id)
            context |= {"order_found": order is not None,
                        "own": order is None or order["customer_id"] == customer_id}
        if tool == "issue_refund":
            context |= refund_context(self.shop, args, customer_id, self.config)
        elif tool == "send_reply":
            context |= reply_context(self.shop, args, request.ticket_id, customer_id, self.config)
        elif tool == "escalate_to_human":
            context |= {"priority": args.priority}
        return {"principal": {"type": "Agent", "id": self.agent}, "action": {"type": "Action", "id": tool},
                "resource": resource, "context": context}

    def _risk(self, facts: TicketFacts) -> int:
        """Points of the signals that hold, at most 100; a signal is judged once per distinct value of its paths
        (the text of a ticket is matched once, not on every call)."""
        points = 0
        for signal, paths in self._signal_paths:
            key = (signal.id, *(_hashable(lookup(facts, p)) for p in paths))
            if key not in self._signals:
                self._signals[key] = signal.when.holds(facts)
            points += signal.points if self._signals[key] else 0
        return min(100, points)

    def _data(self, facts: TicketFacts) -> dict[str, Any]:
        """The data behind the call: the partition's contracts, the age of the oldest feature at the ticket's
        time (-1: none read), whether any feature is newer than the ticket (read from its future), and the
        agent's drift status with its drifted slices."""
        times, moment = facts.feature_times, _ticket_time(facts) or self.as_of
        if self._data_memo and self._data_memo[0] is times and self._data_memo[1] == moment:
            return self._data_memo[2]
        age, after = -1, False
        if times and moment is not None:
            stamps = [_naive_utc(datetime.fromisoformat(t)) for t in times.values()]
            age = max(0, int((moment - min(stamps)).total_seconds() // 3600))
            after = max(stamps) > moment
        data = {"contracts_passed": self.contracts_passed, "features_age_hours": age, "features_after_ticket": after,
                "drift": {"status": self.drift_status, "slices": list(self.drift_slices)}}
        self._data_memo = (times, moment, data)
        return data


def _ticket_time(facts: TicketFacts) -> datetime | None:
    created = facts.ticket.get("created_at")
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return _naive_utc(created) if isinstance(created, datetime) else None


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def customer_context(values: dict[str, Any]) -> dict[str, Any]:
    """The customer's features as Cedar sees them (whole numbers, money in cents)."""
    def whole(name: str) -> int:
        value = values.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    return {"known": values.get("tenure_days") is not None, "plan": str(values.get("plan") or ""),
            "tenure_days": whole("tenure_days"), "lifetime_spend_cents": cents(values.get("lifetime_spend")),
            "refunds_90d": whole("refunds_90d"), "refund_amount_90d_cents": cents(values.get("refund_amount_90d")),
            "tickets_7d": whole("tickets_7d")}


def effect_event(agent: str, ticket_id: str, tool: str, arguments: Any, result: dict[str, Any],
                 extra: dict[str, Any]) -> AuditEvent:
    """The audit event of an executed side effect (by the agent or on a reviewer's approval)."""
    payload = {"tool": tool, "idempotency_key": idempotency_key(agent, ticket_id, tool, arguments),
               "arguments": arguments.model_dump(mode="json"), "result": result, **extra}
    return AuditEvent("effect_executed", f"agent:{agent}", f"ticket:{ticket_id}", payload)


def tool_call_event(record: dict[str, Any]) -> AuditEvent:
    """The audit event of one tool call: who called what, the policy decision, and what happened."""
    keys = ("agent", "tool", "tool_version", "ticket_id", "status", "verdict", "reason", "policies", "policy_hash",
            "shadow_verdict", "executed", "error", "run_id", "partition")
    payload = {k: record.get(k) for k in keys} | {"arguments": json.loads(record["arguments"])}
    return AuditEvent("tool_call", f"agent:{record['agent']}", f"ticket:{record['ticket_id']}", payload)


def record_agent_day(con: Any, agent: str, partition: str, rows: list[dict[str, Any]],
                     tool_calls: list[dict[str, Any]], anchor: Path | None = None) -> None:
    """An agent day's decisions and tool calls, with one audit event per call in the same commit; then the
    audit anchor moves to the new head."""
    ensure_audit_log(con)
    write_results(con, agent, partition, rows, tool_calls,
                  also=lambda tx: append(tx, [tool_call_event(r) for r in tool_calls]))
    if anchor is not None:
        save_anchor(con, anchor)


def record_policy_set(con: Any, engine: PolicyEngine, actor: str) -> bool:
    """An audit event when a policy set is used with a hash not seen before (a policy change); True if new."""
    ensure_audit_log(con)
    subject = f"policy_set:{engine.name}"
    last = con.execute("SELECT json_extract_string(payload, '$.hash') FROM governance.audit_log "
                       "WHERE kind = 'policy_set' AND subject = ? ORDER BY seq DESC LIMIT 1", [subject]).fetchone()
    if last and last[0] == engine.hash:
        return False
    append(con, [AuditEvent("policy_set", actor, subject, {
        "set": engine.name, "hash": engine.hash, "previous_hash": last[0] if last else None, "files": engine.files,
        "policies": sorted(engine.policies), "log_only": sorted(i for i, p in engine.policies.items() if p.log_only)})])
    return True


def recorded_request(text: str) -> dict[str, Any]:
    """A Cedar request as recorded, with context attributes added to the schema since filled in with the
    value they had then (so replays and rechecks of old calls stay valid requests)."""
    request = json.loads(text)
    data = request["context"].get("data", {})
    data.setdefault("features_after_ticket", False)
    data.setdefault("drift", {"status": "none", "slices": []})  # recorded before drift entered the context
    return request


def agent_entity(name: str, stage: str, version: str, tools: list[str]) -> dict[str, Any]:
    """The Cedar entity of an agent (the principal of its calls)."""
    return {"uid": {"type": "Agent", "id": name}, "parents": [],
            "attrs": {"stage": stage, "version": version, "granted": sorted(tools)}}


def recheck_item(con: Any, item: dict[str, Any], manifest: Any, engine_for: Callable[[str], PolicyEngine],
                 config: GateConfig) -> PolicyDecision:
    """The decision now for an escalated call a reviewer approved: today's manifest and policies, today's
    refund spending; the approval stands in for the escalation, so only a deny stops it."""
    if manifest is None or manifest.stage == "retired":
        return PolicyDecision("deny", ("manifest/missing",), f"agent {item['agent']} is no longer declared")
    if manifest.kill_switch:
        return PolicyDecision("deny", ("kill_switch/manifest",), "kill_switch: true in the agent's manifest")
    engine = engine_for(manifest.policy_set)
    request = recorded_request(item["cedar_request"])
    shop = Shop(con)
    ticket = con.execute("SELECT customer_id FROM staging.tickets WHERE ticket_id = ? LIMIT 1",
                         [item["ticket_id"]]).fetchone() if shop.has("staging.tickets") else None
    customer = ticket[0] if ticket else ""
    args = CATALOG[item["tool"]].input.model_validate_json(item["arguments"])
    if item["tool"] == "issue_refund":  # the order as it is now, with what was refunded since the escalation
        request["context"] |= refund_context(shop, args, customer, config)
    if item["tool"] == "send_reply":  # the body scanned again with today's patterns and ownership data
        request["context"] |= reply_context(shop, args, item["ticket_id"], customer, config)
    if item["tool"] == "issue_refund" and item["partition"] is not None:
        used = refunds_used_cents(con, item["agent"], str(item["partition"]), config)
        request["context"]["budget"]["refund_day_used_cents"] = used
        request["context"]["budget"]["refund_day_max_cents"] = cents(manifest.budgets.max_refund_usd_per_day)
    entities = engine.entities([agent_entity(manifest.name, manifest.stage, manifest.version, list(manifest.tools))])
    return engine.decide(request, entities)
