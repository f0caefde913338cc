"""Facts the gate looks up itself rather than trust the model: whose order it is, what it cost, what was
refunded on it, a customer's email, and what the factory refunded already. Cached per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from factory_pipelines.lib.agents.toolbox import orders_as_of
from factory_pipelines.lib.governance.gate_config import GateConfig
from factory_pipelines.lib.governance.reply_scan import scan_reply
from factory_pipelines.lib.money import cents
from factory_pipelines.lib.sql import table_exists


@dataclass
class Shop:
    """Orders as of the run's day (the shop's export plus what the factory refunded since) and customers'
    emails, looked up in bulk (`prefetch`) or one at a time."""

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
            then, now = orders_as_of(self.con, orders, self.as_of), orders_as_of(self.con, orders, None)
            self._orders |= {o: then.get(o) for o in orders}  # None: the order did not exist yet on the run's day
            self._latest |= {o: {"status": now[o]["status"], "refund_amount": now[o]["refund_amount"]}
                             for o in orders if o in now}
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


def refunds_used_cents(con: Any, agent: str, partition: str, config: GateConfig) -> int:
    """Refunds already issued by an agent for a partition (every run of the day, approvals included), in cents."""
    if not table_exists(con, "agents", "refunds") or not table_exists(con, "agents", "outbox"):
        return 0
    rows = con.execute(
        "SELECT r.currency, sum(r.amount) FROM agents.refunds r JOIN agents.outbox o "
        "ON json_extract_string(o.result, '$.refund_id') = r.refund_id "
        "WHERE o.agent = ? AND o.partition = ? GROUP BY r.currency", [agent, partition]).fetchall()
    return sum(cents(total * config.usd_per_unit.get(currency, 1.0)) for currency, total in rows)
