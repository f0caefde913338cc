"""The one path every tool call takes: contract in, budget, gate, outbox, contract out, record, span.

`Toolbox.call` is the choke point. It checks that the agent may use the tool, validates the arguments
against the tool's input schema, spends the run's budget, asks the gate (allow, deny, or escalate to a
human; the governance layer plugs its Cedar policy engine in here), runs the tool (side effects through
the outbox, so a retried step or a re-run partition never acts twice), validates the output, and records
the call (a row for `agents.tool_calls` and a span on the ticket's trace). Nothing else runs a tool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from factory_pipelines.lib.agents.outbox import canonical, done_result, execute_once
from factory_pipelines.lib.agents.retrieval import KbIndex
from factory_pipelines.lib.agents.tools import CATALOG, ToolSpec

TIMESTAMP_SUFFIX = "__ts"  # Feast's suffix for a feature's event time (epoch seconds) in online responses
EFFECT_DDL = [
    "CREATE SCHEMA IF NOT EXISTS agents",
    """CREATE TABLE IF NOT EXISTS agents.refunds (refund_id VARCHAR PRIMARY KEY, agent VARCHAR, ticket_id VARCHAR,
        order_id VARCHAR, amount DOUBLE, currency VARCHAR, reason VARCHAR, issued_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS agents.replies (message_id VARCHAR PRIMARY KEY, agent VARCHAR, ticket_id VARCHAR,
        body VARCHAR, cited_article_ids VARCHAR[], sent_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS agents.escalations (queue_item_id VARCHAR PRIMARY KEY, agent VARCHAR,
        ticket_id VARCHAR, reason VARCHAR, priority VARCHAR, status VARCHAR DEFAULT 'open',
        created_at TIMESTAMPTZ DEFAULT current_timestamp)""",
]


class ToolCallError(RuntimeError):
    """A tool call failed: bad arguments, a broken output contract, or the tool raised."""


class BudgetExhausted(RuntimeError):
    """The run spent its tokens, tool calls or cost budget; remaining tickets are deferred."""


@dataclass
class Budget:
    """What one agent run may spend (manifest `budgets`); every model and tool call is charged here, and a
    refund's amount is reserved before it runs (released if it fails). Money is in cents."""

    max_tokens: int
    max_tool_calls: int
    max_cost_usd: float
    refund_run_max_cents: int = 0
    refund_day_max_cents: int = 0
    refund_day_used_cents: int = 0  # refunds of the day before this run (all runs of the agent)
    tokens: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0
    refund_run_used_cents: int = 0

    @classmethod
    def from_manifest(cls, budgets: Any, refund_day_used_cents: int = 0) -> Budget:
        return cls(budgets.max_tokens, budgets.max_tool_calls, budgets.max_cost_usd,
                   int(budgets.max_refund_usd_per_run * 100), int(budgets.max_refund_usd_per_day * 100),
                   refund_day_used_cents)

    def charge_tool_call(self, tool: str) -> None:
        if self.tool_calls >= self.max_tool_calls:
            raise BudgetExhausted(f"tool-call budget of {self.max_tool_calls} spent; {tool} not called")
        self.tool_calls += 1

    def check_model_call(self) -> None:
        if self.tokens >= self.max_tokens:
            raise BudgetExhausted(f"token budget of {self.max_tokens} spent")
        if self.cost_usd >= self.max_cost_usd:
            raise BudgetExhausted(f"cost budget of {self.max_cost_usd} USD spent")

    def charge_model_call(self, tokens: int, cost_usd: float) -> None:
        self.tokens += tokens
        self.cost_usd += cost_usd

    def reserve_refund(self, amount_cents: int) -> None:
        self.refund_run_used_cents += amount_cents
        self.refund_day_used_cents += amount_cents

    def release_refund(self, amount_cents: int) -> None:
        self.reserve_refund(-amount_cents)

    def cedar(self) -> dict[str, int]:
        """What the policies see of the budget (context.budget)."""
        return {"tool_calls_used": self.tool_calls, "tool_calls_max": self.max_tool_calls,
                "refund_run_used_cents": self.refund_run_used_cents, "refund_run_max_cents": self.refund_run_max_cents,
                "refund_day_used_cents": self.refund_day_used_cents, "refund_day_max_cents": self.refund_day_max_cents}


@dataclass(frozen=True)
class Verdict:
    decision: Literal["allow", "deny", "escalate"]
    reason: str
    policies: tuple[str, ...] = ()
    policy_hash: str = ""  # <set>@<hash> of the policy set that decided
    request: dict[str, Any] | None = None  # the Cedar request, kept for explain and replay
    shadow: str | None = None  # outcome with log-only policies enforced too, when different
    shadow_policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolRequest:
    """What the gate judges: who calls which tool with which (validated) arguments, for which ticket."""

    agent: str
    ticket_id: str
    tool: ToolSpec
    arguments: BaseModel
    context: dict[str, Any]


class Gate(Protocol):
    def check(self, request: ToolRequest) -> Verdict: ...


@dataclass
class ToolResult:
    tool: str
    status: Literal["ok", "denied", "escalated"]
    output: dict[str, Any] | None
    verdict: Verdict
    executed: bool = True  # False when the outbox found an earlier attempt and returned its result


@dataclass
class ToolEnv:
    """What tool implementations reach: the warehouse connection, the online features, the KB index."""

    con: Any
    online_features: Callable[[dict[str, Any]], dict[str, Any]]
    online_features_many: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    kb: KbIndex | None
    feature_service: str
    as_of: datetime


Implementation = Callable[[Any, ToolEnv], dict[str, Any]]


def _customer_features(args: Any, env: ToolEnv) -> dict[str, Any]:
    entity = {"customer_id": args.customer_id} | ({"ticket_id": args.ticket_id} if args.ticket_id else {})
    values = env.online_features(entity)
    features = {k: v for k, v in values.items() if k not in entity and not k.endswith(TIMESTAMP_SUFFIX)}
    times = {k.removesuffix(TIMESTAMP_SUFFIX): datetime.fromtimestamp(v, UTC).isoformat()
             for k, v in values.items() if k.endswith(TIMESTAMP_SUFFIX) and v and features.get(k.removesuffix(TIMESTAMP_SUFFIX)) is not None}
    return {"customer_id": args.customer_id, "ticket_id": args.ticket_id, "features": features,
            "feature_service": env.feature_service, "event_times": times}


def _kb_search(args: Any, env: ToolEnv) -> dict[str, Any]:
    if env.kb is None:
        raise ToolCallError("kb_search: the knowledge base is empty")
    hits = env.kb.search(args.query, args.k)
    return {"passages": [{"article_id": p.passage_id, "title": p.title, "text": p.text, "score": round(s, 4)}
                         for p, s in hits]}


def _order_lookup(args: Any, env: ToolEnv) -> dict[str, Any]:
    row = env.con.execute(
        "SELECT customer_id, product, amount, currency, amount_usd, status, refund_amount FROM staging.orders "
        "WHERE order_id = ? AND updated_at <= ? ORDER BY updated_at DESC LIMIT 1",
        [args.order_id, env.as_of.replace(tzinfo=None)],
    ).fetchone()
    if row is None:
        return {"order_id": args.order_id, "found": False}
    keys = ("customer_id", "product", "amount", "currency", "amount_usd", "status", "refund_amount")
    return {"order_id": args.order_id, "found": True, **dict(zip(keys, row, strict=True))}


def _effect_id(prefix: str, agent: str, ticket_id: str, tool: str, args: BaseModel) -> str:
    import hashlib

    text = f"{agent}|{ticket_id}|{tool}|{canonical(args)}"
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


IMPLEMENTATIONS: dict[str, Implementation] = {
    "customer_features": _customer_features,
    "kb_search": _kb_search,
    "order_lookup": _order_lookup,
}
EFFECTS: dict[str, tuple[str, str, Callable[[Any], list[Any]], str]] = {
    # tool -> (id prefix, insert SQL, values from args, output id field); run inside the outbox transaction
    "issue_refund": ("R", "INSERT INTO agents.refunds (refund_id, agent, ticket_id, order_id, amount, currency, reason) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     lambda a: [a.order_id, a.amount, a.currency, a.reason], "refund_id"),
    "send_reply": ("M", "INSERT INTO agents.replies (message_id, agent, ticket_id, body, cited_article_ids) "
                        "VALUES (?, ?, ?, ?, ?)",
                   lambda a: [a.body, list(a.cited_article_ids)], "message_id"),
    "escalate_to_human": ("Q", "INSERT INTO agents.escalations (queue_item_id, agent, ticket_id, reason, priority) "
                               "VALUES (?, ?, ?, ?, ?)",
                          lambda a: [a.reason, a.priority], "queue_item_id"),
}
assert set(IMPLEMENTATIONS) | set(EFFECTS) == set(CATALOG), "every catalog tool has an implementation"


@dataclass
class Toolbox:
    """Tools of one agent run, behind `call`; `records` collects one row per call for `agents.tool_calls`."""

    agent: str
    env: ToolEnv
    gate: Gate
    budget: Budget
    run_id: str
    partition: str
    review_ttl_hours: float = 72.0  # escalated calls wait this long for a reviewer
    records: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Implementation] = field(default_factory=dict)  # tests: a tool that raises, and so on

    def call(self, tool: str, ticket_id: str, arguments: dict[str, Any], context: dict[str, Any] | None = None) -> ToolResult:
        """Run one tool call through contract, budget, gate and outbox; raises ToolCallError on failure."""
        import mlflow
        from mlflow.entities import SpanType

        spec = CATALOG.get(tool)
        if spec is None:
            raise ToolCallError(f"{tool}: not in the tool catalog")
        record: dict[str, Any] = {"agent": self.agent, "ticket_id": ticket_id, "tool": tool, "tool_version": spec.version,
                                  "arguments": canonical(arguments), "run_id": self.run_id, "partition": self.partition,
                                  "verdict": None, "reason": None, "policies": [], "executed": False, "error": None}
        started = time.perf_counter()
        with mlflow.start_span(name=f"tool {tool}", span_type=SpanType.TOOL) as span:
            span.set_inputs(arguments)
            span.set_attributes({"tool.version": spec.version, "side_effect": spec.side_effect})
            try:
                result = self._call(spec, ticket_id, arguments, context or {}, record)
            except (ToolCallError, BudgetExhausted) as exc:
                record |= {"status": "error", "error": str(exc)[:1000], "latency_s": time.perf_counter() - started}
                if isinstance(exc, BudgetExhausted):
                    record |= {"verdict": "deny", "reason": str(exc), "policies": ["budget/tool_calls"]}
                self.records.append(record)
                span.set_attributes({"error": str(exc)[:500]})
                span.set_status("ERROR")
                raise
            record |= verdict_fields(result.verdict) | {
                "status": result.status, "executed": result.executed, "latency_s": time.perf_counter() - started,
                "output": json.dumps(result.output, default=str) if result.output is not None else None}
            self.records.append(record)
            span.set_outputs(result.output)
            span.set_attributes({"verdict": result.verdict.decision, "status": result.status,
                                 "executed": result.executed})
        return result

    def _call(self, spec: ToolSpec, ticket_id: str, arguments: dict[str, Any], context: dict[str, Any],
              record: dict[str, Any]) -> ToolResult:
        try:
            args = spec.input.model_validate(arguments)
        except ValidationError as exc:
            raise ToolCallError(f"{spec.name}: arguments break its input schema: {_problems(exc)}") from exc
        self.budget.charge_tool_call(spec.name)
        side_effect = spec.side_effect and spec.name not in self.overrides
        done = done_result(self.env.con, self.agent, ticket_id, spec.name, args) if side_effect else None
        request = ToolRequest(self.agent, ticket_id, spec, args, context)
        try:
            verdict = self.gate.check(request)
        except Exception as exc:  # the gate itself failed: fail closed, and say so
            verdict = Verdict("deny", f"ALERT: the gate failed, denied: {type(exc).__name__}: {exc}", ("gate/error",))
        if done is not None and not any(p.startswith("kill_switch") for p in verdict.policies):
            # a re-run: this exact effect happened once already (its own refund must not count against it)
            verdict = Verdict("allow", "already executed once (outbox); nothing runs again", ("outbox/done",),
                              policy_hash=verdict.policy_hash, request=verdict.request)
            return ToolResult(spec.name, "ok", done, verdict, False)
        if side_effect and verdict.decision != "deny":
            verdict = self._reviewed(request, verdict)
        record |= verdict_fields(verdict)  # kept when the tool then fails
        if verdict.decision == "deny":
            return ToolResult(spec.name, "denied", None, verdict, False)
        if verdict.decision == "escalate":
            return self._escalate(request, verdict)
        reserved = (verdict.request or {}).get("context", {}).get("amount_cents", 0) if spec.name == "issue_refund" else 0
        self.budget.reserve_refund(reserved)
        try:
            if spec.name in self.overrides:
                output, executed = self.overrides[spec.name](args, self.env), True
            elif spec.side_effect:
                done = perform_effect(self.env.con, self.agent, ticket_id, spec, args, self.run_id, self.partition)
                output, executed = done.result, done.executed
            else:
                output, executed = IMPLEMENTATIONS[spec.name](args, self.env), True
        except ToolCallError:
            self.budget.release_refund(reserved)
            raise
        except Exception as exc:  # the tool itself failed: name it, keep the cause
            self.budget.release_refund(reserved)
            raise ToolCallError(f"{spec.name} raised {type(exc).__name__}: {exc}") from exc
        try:
            checked = spec.output.model_validate(output).model_dump(mode="json")
        except ValidationError as exc:
            raise ToolCallError(f"{spec.name}: output breaks its schema: {_problems(exc)}") from exc
        return ToolResult(spec.name, "ok", checked, verdict, executed)

    def _reviewed(self, request: ToolRequest, verdict: Verdict) -> Verdict:
        """A reviewer's word on this exact call binds re-runs: rejected, expired or cancelled stays denied, and one
        pending or approved waits for the review sweep, whatever the policies say now."""
        from factory_pipelines.lib.governance.review import status_of

        status = status_of(self.env.con, request)
        if status in ("rejected", "expired", "cancelled"):
            return Verdict("deny", f"{request.tool.name} was {status} in review", (f"review/{status}",),
                           policy_hash=verdict.policy_hash, request=verdict.request)
        if status in ("pending", "approved") and verdict.decision == "allow":
            return Verdict("escalate", f"{request.tool.name} is {status} in review; the review sweep runs it",
                           (f"review/{status}",), policy_hash=verdict.policy_hash, request=verdict.request)
        return verdict

    def _escalate(self, request: ToolRequest, verdict: Verdict) -> ToolResult:
        """The call waits in the review queue, once per idempotency key."""
        from factory_pipelines.lib.governance.review import enqueue

        item = enqueue(self.env.con, request, verdict, run_id=self.run_id, partition=self.partition,
                       ttl_hours=self.review_ttl_hours)
        return ToolResult(request.tool.name, "escalated", {"review_item": item["item_id"], "status": item["status"]},
                          verdict, False)


def perform_effect(con: Any, agent: str, ticket_id: str, spec: ToolSpec, args: BaseModel, run_id: str | None,
                   partition: str | None, also: Callable[[Any, dict[str, Any]], None] | None = None) -> Any:
    """A side effect through the outbox: at most once per key; `also(con, result)` runs in the same transaction
    (the review queue marks an approved item executed with it)."""
    prefix, sql, values, id_field = EFFECTS[spec.name]
    effect_id = _effect_id(prefix, agent, ticket_id, spec.name, args)

    def act(tx: Any) -> dict[str, Any]:
        tx.execute(sql, [effect_id, agent, ticket_id, *values(args)])
        result = {id_field: effect_id} | ({"status": "issued"} if spec.name == "issue_refund" else {})
        if also is not None:
            also(tx, result)
        return result

    return execute_once(con, agent=agent, ticket_id=ticket_id, tool=spec.name, tool_version=spec.version,
                        arguments=args, effect=act, run_id=run_id, partition=partition)


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The policy decision of a call, as `agents.tool_calls` columns."""
    return {"verdict": verdict.decision, "reason": verdict.reason, "policies": list(verdict.policies),
            "policy_hash": verdict.policy_hash, "shadow_verdict": verdict.shadow,
            "shadow_policies": list(verdict.shadow_policies),
            "cedar_request": json.dumps(verdict.request) if verdict.request else None}


def ensure_effect_tables(con: Any) -> None:
    for statement in EFFECT_DDL:
        con.execute(statement)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
