"""The one path every tool call takes: contract in, budget, gate, outbox, contract out, record, span.

`Toolbox.call` is the choke point. It checks that the agent may use the tool, validates the arguments
against the tool's input schema, spends the run's budget, asks the gate (allow, deny, or escalate to a
human: the governance layer implements `Gate` with its Cedar policy engine and review queue), runs the
tool (side effects through the outbox, `effects.perform_effect`, so a retried step or a re-run partition
never acts twice), validates the output, and records the call (a row for `agents.tool_calls` and a span
on the ticket's trace). Nothing else runs a tool. The read-only tools are implemented here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from factory_pipelines.lib.agents.effects import EFFECTS, perform_effect
from factory_pipelines.lib.agents.facts import TicketFacts
from factory_pipelines.lib.agents.outbox import canonical, done_result
from factory_pipelines.lib.agents.retrieval import KbIndex
from factory_pipelines.lib.agents.tools import CATALOG, ToolSpec
from factory_pipelines.lib.config_files import problems
from factory_pipelines.lib.data.features import EVENT_TIME_SUFFIX
from factory_pipelines.lib.money import cents


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
                   cents(budgets.max_refund_usd_per_run), cents(budgets.max_refund_usd_per_day),
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
    amount_cents: int = 0  # what an allowed refund reserves of the budget (USD cents, as the gate judged it)


@dataclass(frozen=True)
class ToolRequest:
    """What the gate judges: who calls which tool with which (validated) arguments, for which ticket, knowing
    what about it (None outside an agent's ticket, e.g. in a replay)."""

    agent: str
    ticket_id: str
    tool: ToolSpec
    arguments: BaseModel
    facts: TicketFacts | None = None


class Gate(Protocol):
    """What the toolbox asks before and after a tool runs; `governance.gate.CedarGate` is the implementation."""

    @property
    def policy_hash(self) -> str: ...

    def prefetch(self, tickets: list[dict[str, Any]]) -> None:
        """Look up in bulk what the day's tickets will need."""

    def check(self, request: ToolRequest) -> Verdict:
        """Allow, deny or escalate one call; a reviewer's earlier word on this exact call binds."""

    def escalate(self, request: ToolRequest, verdict: Verdict, *, run_id: str, partition: str) -> dict[str, Any]:
        """Put an escalated call in the review queue (once per idempotency key); returns the queue item."""

    def record_effect(self, tx: Any, request: ToolRequest, verdict: Verdict, result: dict[str, Any], *,
                      run_id: str, partition: str) -> None:
        """Record an executed side effect, inside the transaction that executes it."""


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
    features = {k: v for k, v in values.items() if k not in entity and not k.endswith(EVENT_TIME_SUFFIX)}
    times = {k.removesuffix(EVENT_TIME_SUFFIX): datetime.fromtimestamp(v, UTC).isoformat()
             for k, v in values.items() if k.endswith(EVENT_TIME_SUFFIX) and v and features.get(k.removesuffix(EVENT_TIME_SUFFIX)) is not None}
    return {"customer_id": args.customer_id, "ticket_id": args.ticket_id, "features": features,
            "feature_service": env.feature_service, "event_times": times}


def _kb_search(args: Any, env: ToolEnv) -> dict[str, Any]:
    if env.kb is None:
        raise ToolCallError("kb_search: the knowledge base is empty")
    hits = env.kb.search(args.query, args.k)
    return {"passages": [{"article_id": p.passage_id, "title": p.title, "text": p.text, "score": round(s, 4)}
                         for p, s in hits]}


ORDER_COLUMNS = ("customer_id", "product", "amount", "currency", "amount_usd", "status", "refund_amount")


def orders_as_of(con: Any, order_ids: list[str], as_of: datetime | None) -> dict[str, dict[str, Any]]:
    """Each order as the shop's export knew it at `as_of` (None: now): per column, the value of its latest
    row updated by then that has one (a later row without a refund amount does not erase the refund);
    orders not known by then are left out. The one place the factory asks what an order was."""
    if not order_ids:
        return {}
    moment = as_of.replace(tzinfo=None) if as_of is not None else None
    rows = con.execute(
        f"SELECT order_id, {', '.join(f'arg_max({c}, updated_at)' for c in ORDER_COLUMNS)} FROM staging.orders "
        "WHERE list_contains(?, order_id) AND (?::TIMESTAMP IS NULL OR updated_at <= ?) GROUP BY order_id",
        [sorted(set(order_ids)), moment, moment]).fetchall()
    return {row[0]: dict(zip(ORDER_COLUMNS, row[1:], strict=True)) for row in rows}


def _order_lookup(args: Any, env: ToolEnv) -> dict[str, Any]:
    order = orders_as_of(env.con, [args.order_id], env.as_of).get(args.order_id)
    return {"order_id": args.order_id, "found": order is not None, **(order or {})}


IMPLEMENTATIONS: dict[str, Implementation] = {
    "customer_features": _customer_features,
    "kb_search": _kb_search,
    "order_lookup": _order_lookup,
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
    records: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Implementation] = field(default_factory=dict)  # tests: a tool that raises, and so on
    log_only: bool = False  # shadow: side effects are judged and recorded, never executed nor queued for review

    def call(self, tool: str, ticket_id: str, arguments: dict[str, Any], facts: TicketFacts | None = None) -> ToolResult:
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
                result = self._call(spec, ticket_id, arguments, facts, record)
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

    def _call(self, spec: ToolSpec, ticket_id: str, arguments: dict[str, Any], facts: TicketFacts | None,
              record: dict[str, Any]) -> ToolResult:
        try:
            args = spec.input.model_validate(arguments)
        except ValidationError as exc:
            raise ToolCallError(f"{spec.name}: arguments break its input schema: {problems(exc)}") from exc
        self.budget.charge_tool_call(spec.name)
        side_effect = spec.side_effect and spec.name not in self.overrides
        done = done_result(self.env.con, self.agent, ticket_id, spec.name, args) \
            if side_effect and not self.log_only else None
        request = ToolRequest(self.agent, ticket_id, spec, args, facts)
        try:
            verdict = self.gate.check(request)
        except Exception as exc:  # the gate itself failed: fail closed, and say so
            verdict = Verdict("deny", f"ALERT: the gate failed, denied: {type(exc).__name__}: {exc}", ("gate/error",))
        if done is not None and not any(p.startswith("kill_switch") for p in verdict.policies):
            # a re-run: this exact effect happened once already (its own refund must not count against it)
            verdict = Verdict("allow", "already executed once (outbox); nothing runs again", ("outbox/done",),
                              policy_hash=verdict.policy_hash, request=verdict.request)
            return ToolResult(spec.name, "ok", done, verdict, False)
        record |= verdict_fields(verdict)  # kept when the tool then fails
        if verdict.decision == "deny":
            return ToolResult(spec.name, "denied", None, verdict, False)
        if self.log_only and spec.side_effect:  # what would have happened, and nothing more
            if verdict.decision == "allow":
                self.budget.reserve_refund(verdict.amount_cents)  # the shadow's own budget, as if it had run
            return ToolResult(spec.name, "ok" if verdict.decision == "allow" else "escalated", None, verdict, False)
        if verdict.decision == "escalate":
            item = self.gate.escalate(request, verdict, run_id=self.run_id, partition=self.partition)
            return ToolResult(spec.name, "escalated", {"review_item": item["item_id"], "status": item["status"]},
                              verdict, False)
        output, executed = self._run(request, verdict)
        try:
            checked = spec.output.model_validate(output).model_dump(mode="json")
        except ValidationError as exc:
            raise ToolCallError(f"{spec.name}: output breaks its schema: {problems(exc)}") from exc
        return ToolResult(spec.name, "ok", checked, verdict, executed)

    def _run(self, request: ToolRequest, verdict: Verdict) -> tuple[dict[str, Any], bool]:
        """The allowed call itself; a refund's amount is reserved first and released if the tool fails."""
        spec, args = request.tool, request.arguments
        self.budget.reserve_refund(verdict.amount_cents)
        try:
            if spec.name in self.overrides:
                return self.overrides[spec.name](args, self.env), True
            if spec.side_effect:
                def record(tx: Any, result: dict[str, Any]) -> None:
                    self.gate.record_effect(tx, request, verdict, result, run_id=self.run_id, partition=self.partition)

                done = perform_effect(self.env.con, self.agent, request.ticket_id, spec, args, self.run_id,
                                      self.partition, also=record)
                return done.result, done.executed
            return IMPLEMENTATIONS[spec.name](args, self.env), True
        except ToolCallError:
            self.budget.release_refund(verdict.amount_cents)
            raise
        except Exception as exc:  # the tool itself failed: name it, keep the cause
            self.budget.release_refund(verdict.amount_cents)
            raise ToolCallError(f"{spec.name} raised {type(exc).__name__}: {exc}") from exc


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The policy decision of a call, as `agents.tool_calls` columns."""
    return {"verdict": verdict.decision, "reason": verdict.reason, "policies": list(verdict.policies),
            "policy_hash": verdict.policy_hash, "shadow_verdict": verdict.shadow,
            "shadow_policies": list(verdict.shadow_policies),
            "cedar_request": json.dumps(verdict.request) if verdict.request else None}
