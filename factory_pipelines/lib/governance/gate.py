"""The policy gate: every tool call becomes a Cedar request, and the answer is allow, deny or escalate.

`CedarGate.check` is what `Toolbox.call` asks before a tool runs. Kill switches come first (a switch
that covers the call denies it, whatever the policies say). Then the call is built into a request:
principal = the agent (stage, version, granted tools), action = the tool, resource = the target
(customer, order or ticket), context = the validated arguments, the customer's features, a risk score
(`policies/gate.yaml`), the budget used so far, and the data behind the call (did the partition's
contracts pass, how old are the features). Facts the policies need and the model could lie about (whose
order it is, what a reply contains) are looked up or scanned here, never taken from the model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.agents.rules import Condition, lookup
from factory_pipelines.lib.agents.toolbox import Budget, ToolRequest, Verdict
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.policy import PolicyDecision, PolicyEngine
from factory_pipelines.lib.sql import table_exists

GATE_CONFIG = "gate.yaml"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CUSTOMER_REF = re.compile(r"\b[Cc]-[0-9]{3,}\b")
ORDER_REF = re.compile(r"\b[Oo]-[0-9]{4,}\b")
DASHES = re.compile("[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")
SPELLED_AT = re.compile(r"\s*(?:\[at\]|\(at\)|\bat\b)\s*", re.IGNORECASE)
SPELLED_AT_ONLY = re.compile(r"\[at\]|\(at\)", re.IGNORECASE)
SPELLED_DOT = re.compile(r"\s*(?:\[dot\]|\(dot\)|\bdot\b)\s*", re.IGNORECASE)


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
    from pydantic import ValidationError

    from factory_pipelines.lib.config_files import read_mapping

    path = Path(root) / GATE_CONFIG
    try:
        return GateConfig.model_validate(read_mapping(path, "gate config", ValueError))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from exc


@dataclass(frozen=True)
class ReplyScan:
    secrets: list[str]
    other_customer_refs: list[str]


def scan_reply(body: str, customer_id: str, own_email: str | None, order_owner: Callable[[str], str | None],
               config: GateConfig) -> ReplyScan:
    """Secrets and other customers' emails, ids and orders in a reply body (what `replies/*` policies judge).
    The body is normalized first, so look-alike letters, invisible characters and odd dashes hide nothing."""
    text = _normalized(body)
    secrets = [name for name, rx in config.compiled_secrets() if rx.search(text)
               and (name != "card_number" or any(_luhn(m.group(0)) for m in rx.finditer(text)))]
    others: list[str] = []
    emails = set(EMAIL.findall(text))
    if SPELLED_DOT.search(text) or SPELLED_AT_ONLY.search(text):  # "jane dot doe at mail dot example"
        emails |= set(EMAIL.findall(SPELLED_DOT.sub(".", SPELLED_AT.sub("@", text))))
    for email in emails:
        domain = email.rsplit("@", 1)[1].lower()
        ours = any(domain == d or domain.endswith(f".{d}") for d in config.allowed_email_domains)
        if email.lower() != (own_email or "").lower() and not ours:
            others.append(email)
    others += [c.upper() for c in CUSTOMER_REF.findall(text) if c.upper() != customer_id]
    for order_id in {o.upper() for o in ORDER_REF.findall(text)}:
        owner = order_owner(order_id)
        if owner is not None and owner != customer_id:
            others.append(order_id)
    return ReplyScan(secrets, sorted(set(others)))


def _normalized(text: str) -> str:
    """NFKC (full-width and compatibility forms), invisible format characters dropped, dashes made '-'."""
    if text.isascii():
        return text
    folded = unicodedata.normalize("NFKC", text)
    return DASHES.sub("-", "".join(ch for ch in folded if unicodedata.category(ch) != "Cf"))


def _luhn(number: str) -> bool:
    """Whether a card-like number passes the Luhn check (tracking numbers and references mostly do not)."""
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return len(digits) >= 13 and total % 10 == 0


def cents(amount: float | None) -> int:
    return int(round((amount or 0) * 100))


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
    manifest_kill_switch: bool = False  # the manifest's own kill_switch: true stops every call
    decisions: int = 0
    alerts: list[str] = field(default_factory=list)
    shop: Shop = field(init=False, repr=False)
    _entities: Any = field(default=None, init=False, repr=False)
    _signals: dict[tuple[Any, ...], bool] = field(default_factory=dict, init=False, repr=False)
    _signal_paths: list[tuple[Signal, tuple[str, ...]]] = field(default_factory=list, init=False, repr=False)
    _data_memo: tuple[Any, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_agent(cls, manifest: Any, engine: PolicyEngine, switches: KillSwitches, config: GateConfig, con: Any,
                  budget: Budget, *, as_of: datetime | None = None, contracts_passed: bool = True) -> CedarGate:
        """The gate of one run of the agent a manifest declares."""
        return cls(engine, manifest.name, manifest.stage, manifest.version, list(manifest.tools), switches, budget,
                   config, con, contracts_passed=contracts_passed, as_of=as_of,
                   manifest_kill_switch=manifest.kill_switch)

    def __post_init__(self) -> None:
        self._entities = self.engine.entities([agent_entity(self.agent, self.stage, self.version, self.tools)])
        self.shop = Shop(self.con, self.as_of)
        self._signal_paths = [(signal, signal.when.paths) for signal in self.config.signals]

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
        decision = self.engine.decide(cedar, self._entities)
        return self.verdict(decision, cedar)

    def verdict(self, decision: PolicyDecision, cedar: dict[str, Any]) -> Verdict:
        self.decisions += 1
        if decision.alert:
            self.alerts.append(decision.reason)
        return Verdict(decision.outcome, decision.reason, decision.policies, policy_hash=self.policy_hash,
                       request=cedar, shadow=decision.shadow_outcome, shadow_policies=decision.shadow_policies)

    def prefetch(self, tickets: list[dict[str, Any]]) -> None:
        """Look up the orders and customer emails a day of tickets will need, in two queries."""
        orders = {t.get("order_id") for t in tickets if t.get("order_id")}
        for ticket in tickets:
            orders |= set(ORDER_REF.findall(f"{ticket.get('subject') or ''} {ticket.get('body') or ''}"))
        self.shop.prefetch({str(t["customer_id"]) for t in tickets if t.get("customer_id")}, orders)

    def request(self, request: ToolRequest) -> dict[str, Any]:
        """The Cedar request of one tool call."""
        facts = request.context.get("facts") or {}
        tool, args = request.tool.name, request.arguments
        customer_id = str((facts.get("ticket") or {}).get("customer_id") or "")
        context: dict[str, Any] = {
            "tool": tool, "ticket_id": request.ticket_id, "risk_score": self._risk(facts),
            "customer": _features(facts.get("features") or {}), "data": self._data(facts.get("feature_times") or {}),
            "budget": self.budget.cedar()}
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

    def _risk(self, facts: dict[str, Any]) -> int:
        """Points of the signals that hold, at most 100; a signal is judged once per distinct value of its paths
        (the text of a ticket is matched once, not on every call)."""
        points = 0
        for signal, paths in self._signal_paths:
            key = (signal.id, *(_hashable(lookup(facts, p)) for p in paths))
            if key not in self._signals:
                self._signals[key] = signal.when.holds(facts)
            points += signal.points if self._signals[key] else 0
        return min(100, points)

    def _data(self, times: dict[str, str]) -> dict[str, Any]:
        if self._data_memo and self._data_memo[0] is times:
            return self._data_memo[1]
        age = -1
        if times and self.as_of is not None:
            oldest = min(datetime.fromisoformat(t) for t in times.values())
            age = max(0, int((self.as_of - oldest.replace(tzinfo=None)).total_seconds() // 3600))
        data = {"contracts_passed": self.contracts_passed, "features_age_hours": age}
        self._data_memo = (times, data)
        return data


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


AS_OF_COLUMNS = ("customer_id", "amount", "amount_usd", "status", "refund_amount", "currency")


@dataclass
class Shop:
    """What the gate looks up itself rather than trust the model: orders as of the run's day (the shop's
    export plus what the factory refunded since) and customers' emails. Cached per run."""

    con: Any
    as_of: datetime | None = None
    _orders: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _emails: dict[str, str | None] = field(default_factory=dict, repr=False)
    _tables: dict[str, bool] = field(default_factory=dict, repr=False)
    _latest: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def has(self, table: str) -> bool:
        if table not in self._tables:
            schema, name = table.split(".")
            self._tables[table] = table_exists(self.con, schema, name)
        return self._tables[table]

    def prefetch(self, customer_ids: set[str], order_ids: set[str]) -> None:
        orders = sorted(set(order_ids) - set(self._orders))
        if orders and self.has("staging.orders"):
            seen = "(?::TIMESTAMP IS NULL OR updated_at <= ?)"  # as of the run's day
            rows = self.con.execute(
                f"SELECT order_id, {', '.join(f'arg_max({c}, updated_at) FILTER (WHERE {seen})' for c in AS_OF_COLUMNS)}, "
                "arg_max(status, updated_at), arg_max(refund_amount, updated_at) "
                "FROM staging.orders WHERE list_contains(?, order_id) GROUP BY order_id",
                [self._as_of(), self._as_of()] * len(AS_OF_COLUMNS) + [orders]).fetchall()
            self._orders |= {o: None for o in orders}
            for row in rows:
                if row[1] is None:  # the order did not exist yet on the run's day
                    continue
                order = dict(zip(AS_OF_COLUMNS, row[1:], strict=False))
                self._orders[row[0]] = order
                self._latest[row[0]] = {"status": row[-2], "refund_amount": row[-1]}
        customers = sorted(set(customer_ids) - set(self._emails))
        if customers and self.has("staging.customers"):
            rows = self.con.execute("SELECT customer_id, any_value(email) FROM staging.customers "
                                    "WHERE list_contains(?, customer_id) GROUP BY customer_id", [customers]).fetchall()
            found_emails = dict(rows)
            self._emails |= {c: found_emails.get(c) for c in customers}

    def order(self, order_id: str) -> dict[str, Any] | None:
        if order_id not in self._orders:
            self.prefetch(set(), {order_id})
        return self._orders.get(order_id)

    def owner(self, order_id: str) -> str | None:
        order = self.order(order_id)
        return order["customer_id"] if order else None

    def email(self, customer_id: str) -> str | None:
        if customer_id not in self._emails:
            self.prefetch({customer_id}, set())
        return self._emails.get(customer_id)

    def refunded_by_us(self, order_id: str) -> list[tuple[str, float]]:
        """Refunds the factory issued on the order, per currency (not cached: a run's own refunds count at once)."""
        if not self.has("agents.refunds"):
            return []
        return self.con.execute("SELECT currency, sum(amount) FROM agents.refunds WHERE order_id = ? GROUP BY currency",
                                [order_id]).fetchall()

    def latest_state(self, order_id: str) -> dict[str, Any]:
        """The order's status and refunded amount in the shop's latest export, not as of the run's day."""
        self.order(order_id)
        return self._latest.get(order_id, {})

    def _as_of(self) -> datetime | None:
        return self.as_of.replace(tzinfo=None) if self.as_of else None


def refund_context(shop: Shop, args: Any, customer_id: str, config: GateConfig) -> dict[str, Any]:
    """What the refund policies judge, from the warehouse (never from the model): the amount in USD cents, and
    whose order it is, what it cost, what was refunded on it so far, its status."""
    order = shop.order(args.order_id)

    def usd(amount: float, currency: str) -> float:
        """The order's own rate for its currency (what the customer paid), the configured rate otherwise."""
        if order and currency == order["currency"] and order["amount"]:
            return amount * order["amount_usd"] / order["amount"]
        return amount * config.usd_per_unit.get(currency, 1.0)

    if order:  # ownership and price as of the run's day; refunds and status as they are now (a re-run of an
        order = order | shop.latest_state(args.order_id)  # old day must see what the shop refunded since)
    refunded = usd(order["refund_amount"] or 0, order["currency"]) + sum(
        usd(total, currency) for currency, total in shop.refunded_by_us(args.order_id)) if order else 0
    return {"amount_cents": cents(usd(args.amount, args.currency)), "currency": args.currency, "order": {
        "found": order is not None, "customer_matches": bool(order and order["customer_id"] == customer_id),
        "amount_cents": cents(order["amount_usd"]) if order else 0, "refunded_cents": cents(refunded),
        "status": (order or {}).get("status") or "unknown"}}


def reply_context(shop: Shop, args: Any, ticket_id: str, customer_id: str, config: GateConfig) -> dict[str, Any]:
    """What the reply policies judge: the body scanned, a reply to another ticket counting as another
    customer's data."""
    scan = scan_reply(args.body, customer_id, shop.email(customer_id), shop.owner, config)
    foreign_ticket = int(args.ticket_id != ticket_id)
    return {"scan": {"secrets": len(scan.secrets), "other_customer_refs": len(scan.other_customer_refs) + foreign_ticket,
                     "chars": len(args.body)}, "cited": len(args.cited_article_ids)}


def _features(values: dict[str, Any]) -> dict[str, Any]:
    def whole(name: str) -> int:
        value = values.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    return {"known": values.get("tenure_days") is not None, "plan": str(values.get("plan") or ""),
            "tenure_days": whole("tenure_days"), "lifetime_spend_cents": cents(values.get("lifetime_spend")),
            "refunds_90d": whole("refunds_90d"), "refund_amount_90d_cents": cents(values.get("refund_amount_90d")),
            "tickets_7d": whole("tickets_7d")}



def refunds_used_cents(con: Any, agent: str, partition: str, config: GateConfig) -> int:
    """Refunds already issued by an agent for a partition (every run of the day, approvals included), in cents."""
    if not table_exists(con, "agents", "refunds") or not table_exists(con, "agents", "outbox"):
        return 0
    rows = con.execute(
        "SELECT r.currency, sum(r.amount) FROM agents.refunds r JOIN agents.outbox o "
        "ON json_extract_string(o.result, '$.refund_id') = r.refund_id "
        "WHERE o.agent = ? AND o.partition = ? GROUP BY r.currency", [agent, partition]).fetchall()
    return sum(cents(total * config.usd_per_unit.get(currency, 1.0)) for currency, total in rows)


def record_policy_set(con: Any, engine: PolicyEngine, actor: str) -> bool:
    """An audit event when a policy set is used with a hash not seen before (a policy change); True if new."""
    from factory_pipelines.lib.governance.audit import AuditEvent, append, ensure_audit_log

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


def agent_entity(name: str, stage: str, version: str, tools: list[str]) -> dict[str, Any]:
    """The Cedar entity of an agent (the principal of its calls)."""
    return {"uid": {"type": "Agent", "id": name}, "parents": [],
            "attrs": {"stage": stage, "version": version, "granted": sorted(tools)}}


def recheck_item(con: Any, item: dict[str, Any], manifest: Any, engine_for: Callable[[str], PolicyEngine],
                 config: GateConfig) -> PolicyDecision:
    """The decision now for an escalated call a reviewer approved: today's manifest and policies, today's
    refund spending; the approval stands in for the escalation, so only a deny stops it."""
    import json

    if manifest is None or manifest.stage == "retired":
        return PolicyDecision("deny", ("manifest/missing",), f"agent {item['agent']} is no longer declared")
    if manifest.kill_switch:
        return PolicyDecision("deny", ("kill_switch/manifest",), "kill_switch: true in the agent's manifest")
    from factory_pipelines.lib.agents.tools import CATALOG

    engine = engine_for(manifest.policy_set)
    request = json.loads(item["cedar_request"])
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
        request["context"]["budget"]["refund_day_max_cents"] = int(manifest.budgets.max_refund_usd_per_day * 100)
    entities = engine.entities([agent_entity(manifest.name, manifest.stage, manifest.version, list(manifest.tools))])
    return engine.decide(request, entities)
