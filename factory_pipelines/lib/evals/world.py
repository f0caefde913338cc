"""The scratch world a golden suite is decided in: its tickets, orders and customers in an in-memory DuckDB,
conformed by the data plane's own SQL, and the features each ticket is decided on.

A golden case carries what the agent would find about it in production (the ticket, the customer's features
as of the ticket, the orders the ticket can reach). The world turns that into the tables and feature reads the
agent's tools and the gate use, with the same code the pipeline runs (`conform_partition`,
`ticket_features_sql`), so an evaluation decides a case exactly as a run would, and nothing it does (a
refund, a reply, an escalation) touches the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from factory_pipelines.lib.config_files import ConfigError
from factory_pipelines.lib.data.conform import conform_partition
from factory_pipelines.lib.data.features import EVENT_TIME_SUFFIX, ticket_features_sql
from factory_pipelines.lib.evals.datasets import moment

TICKET_COLUMNS = ("ticket_id", "customer_id", "created_at", "channel", "subject", "body", "order_id", "in_reply_to")
ORDER_COLUMNS = ("order_id", "customer_id", "product", "amount", "currency", "status", "refund_amount", "ordered_at",
                 "updated_at")
CUSTOMER_SNAPSHOT_BEFORE = timedelta(hours=1)  # the customer's features are known before the ticket arrives


class WorldError(ConfigError):
    """A suite whose cases cannot share one world (a ticket or order id used twice with different content) or
    whose knowledge base is unreadable; the message names the cases or the file."""


@dataclass
class EvalWorld:
    """The tables (`con`) and, per ticket, the features the agent reads (with Feast's `<name>__ts` times)."""

    con: Any
    features: dict[str, dict[str, Any]]
    kb_articles: list[dict[str, Any]]

    def online_features(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        """What Feast would serve for {customer_id, ticket_id} as of the ticket: the case's own features."""
        values = self.features.get(str(entity.get("ticket_id")), {})
        return {**dict(entity), **values}

    @property
    def feature_names(self) -> list[str]:
        """Every feature the world serves (what a prompt may use), without Feast's event-time columns."""
        return sorted({k for values in self.features.values() for k in values if not k.endswith(EVENT_TIME_SUFFIX)})

    def online_features_many(self, entities: list[dict[str, Any]], *_: Any) -> list[dict[str, Any]]:
        return [self.online_features(e) for e in entities]

    def close(self) -> None:
        self.con.close()


def load_kb(path: Path) -> list[dict[str, Any]]:
    """A suite's knowledge base: a YAML file of `articles` (`id` or `article_id`, `title`, `text` or `body`,
    optional `updated_at`), as the retrieval index takes them."""
    import yaml

    try:
        articles = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("articles") or []
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise WorldError(f"{path}: cannot read the knowledge base: {exc}") from exc
    if not articles:
        raise WorldError(f"{path}: no articles (a YAML mapping with a list under `articles`)")
    kb = []
    for n, a in enumerate(articles):
        article_id, body = a.get("article_id") or a.get("id"), a.get("body") or a.get("text")
        if not (article_id and a.get("title") and body):
            raise WorldError(f"{path}: articles[{n}] needs an id (or article_id), a title and a text (or body)")
        kb.append({"article_id": article_id, "title": a["title"], "body": body,
                   "updated_at": str(a.get("updated_at") or "2000-01-01")})
    return kb


def build_world(cases: Iterable[Mapping[str, Any]], *, kb_articles: list[dict[str, Any]],
                lexicon: Mapping[str, list[str]], fx_rates: Mapping[str, float]) -> EvalWorld:
    """One world for `cases` (dicts with `id` and `inputs`: `ticket`, `customer`, `orders`)."""
    import duckdb

    cases = list(cases)
    tickets, orders, customers = _rows(cases)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.tickets (ticket_id VARCHAR, customer_id VARCHAR, created_at TIMESTAMP, channel VARCHAR,"
                " subject VARCHAR, body VARCHAR, order_id VARCHAR, in_reply_to VARCHAR, _partition DATE)")
    con.execute("CREATE TABLE raw.orders (order_id VARCHAR, customer_id VARCHAR, product VARCHAR, amount DOUBLE, "
                "currency VARCHAR, status VARCHAR, refund_amount DOUBLE, ordered_at TIMESTAMP, updated_at TIMESTAMP, "
                "_partition DATE)")
    con.execute("CREATE TABLE raw.customers (customer_id VARCHAR, name VARCHAR, email VARCHAR, plan VARCHAR, "
                "region VARCHAR, signup_date DATE, lifetime_spend DOUBLE, updated_at TIMESTAMP, _partition DATE)")
    _insert(con, "INSERT INTO raw.tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[*(t.get(c) for c in TICKET_COLUMNS), _day(t["created_at"])] for t in tickets.values()])
    _insert(con, "INSERT INTO raw.orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[*(o.get(c) for c in ORDER_COLUMNS), _day(o["updated_at"])] for o in orders.values()])
    known = min((moment(t["created_at"]) for t in tickets.values()), default=datetime.now(UTC)) - timedelta(days=1)
    _insert(con, "INSERT INTO raw.customers VALUES (?, ?, ?, NULL, NULL, NULL, NULL, ?, ?)",
                    [[c["customer_id"], c["name"], c["email"], known, known.date()] for c in customers.values()])
    for table in ("tickets", "orders", "customers"):
        for (day,) in con.execute(f"SELECT DISTINCT _partition FROM raw.{table} ORDER BY 1").fetchall():
            conform_partition(con, table, day, dict(fx_rates))
    features = _features(con, cases, tickets, lexicon)
    return EvalWorld(con, features, list(kb_articles))


def _insert(con: Any, sql: str, rows: list[list[Any]]) -> None:
    if rows:  # DuckDB refuses executemany with no rows (a suite whose cases reach no order)
        con.executemany(sql, rows)


def _rows(cases: list[Mapping[str, Any]]) -> tuple[dict[str, dict], dict[str, dict], dict[str, dict]]:
    """The tickets, orders and customers (id, name, email) of all cases, each id once: the same id in two cases
    must be the same row, since one world holds them all (a customer's features may differ per case)."""
    tickets: dict[str, dict] = {}
    orders: dict[str, dict] = {}
    customers: dict[str, dict] = {}
    seen: dict[tuple[str, str], str] = {}

    def keep(kind: str, table: dict[str, dict], key: str, row: dict, case_id: str) -> None:
        if key in table and table[key] != row:
            raise WorldError(f"cases {seen[kind, key]} and {case_id} give {kind} {key} different values")
        table[key] = row
        seen.setdefault((kind, key), case_id)

    for case in cases:
        inputs, case_id = case["inputs"], str(case["id"])
        ticket = {c: inputs["ticket"].get(c) for c in TICKET_COLUMNS}
        keep("ticket", tickets, str(ticket["ticket_id"]), ticket, case_id)
        for order in inputs.get("orders") or []:
            row = {c: order.get(c) for c in ORDER_COLUMNS}
            row["ordered_at"] = row["ordered_at"] or row["updated_at"]
            keep("order", orders, str(row["order_id"]), row, case_id)
        customer_id = ticket.get("customer_id")
        if customer_id:  # the gate looks up a customer's email (a reply must not name another customer's)
            customer = inputs.get("customer") or {}
            row = {"customer_id": customer_id, "name": customer.get("name"),
                   "email": customer.get("email") or f"{str(customer_id).lower()}@customers.example.org"}
            keep("customer", customers, str(customer_id), row, case_id)
    return tickets, orders, customers


def _features(con: Any, cases: list[Mapping[str, Any]], tickets: dict[str, dict],
              lexicon: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per ticket: the case's customer features (known an hour before the ticket) and the ticket's own features
    computed by the pipeline's SQL (known at the ticket's time)."""
    ticket_features: dict[str, dict[str, Any]] = {}
    for (day,) in con.execute("SELECT DISTINCT _partition FROM staging.tickets ORDER BY 1").fetchall():
        frame = con.execute(ticket_features_sql(day, list(lexicon["positive"]), list(lexicon["negative"]))).df()
        for row in frame.to_dict("records"):
            ticket_features[str(row["ticket_id"])] = {k: _plain(v) for k, v in row.items()
                                                     if k not in ("ticket_id", "customer_id", "event_timestamp")}
    features = {}
    for case in cases:
        ticket = case["inputs"]["ticket"]
        at = moment(ticket["created_at"])
        customer = {k: v for k, v in (case["inputs"].get("customer") or {}).items() if k not in ("name", "email")}
        own = ticket_features.get(str(ticket["ticket_id"]), {})
        known = int((at - CUSTOMER_SNAPSHOT_BEFORE).timestamp())
        features[str(ticket["ticket_id"])] = (
            customer | {f"{k}{EVENT_TIME_SUFFIX}": known for k in customer}
            | own | {f"{k}{EVENT_TIME_SUFFIX}": int(at.timestamp()) for k in own})
    return features


def _day(value: Any) -> date:
    return moment(value).astimezone(UTC).date()


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (the features feed JSON traces and the Cedar context)."""
    return value.item() if hasattr(value, "item") else value
