"""The small world of the governance tests: a warehouse with two customers, five orders and nine tickets
(T-1 is customer C-00001's, T-2 is C-00002's), the shipped support manifest and policies, and helpers to
build a toolbox with the real Cedar gate and to describe what the runtime knows of a ticket."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from factory_pipelines.lib.agents.facts import TicketFacts
from factory_pipelines.lib.agents.manifests import AgentManifest, load_manifest
from factory_pipelines.lib.agents.records import ensure_agent_tables
from factory_pipelines.lib.agents.toolbox import Budget, Toolbox, ToolEnv
from factory_pipelines.lib.governance.gate import CedarGate
from factory_pipelines.lib.governance.gate_config import load_gate_config
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.policy import PolicyEngine
from factory_pipelines.settings import PACKAGE_DIR

POLICIES = PACKAGE_DIR / "policies"
MANIFEST = load_manifest(PACKAGE_DIR / "defs" / "agents" / "manifests" / "support_triage.yaml")
ENGINE = PolicyEngine.load(POLICIES, MANIFEST.policy_set)
CONFIG = load_gate_config(POLICIES)
AGENT = MANIFEST.name
DAY = "2026-11-03"
AS_OF = datetime(2026, 11, 4)  # the run of DAY looks at the world as of the next midnight (naive UTC)
FRESH = "2026-11-03T12:00:00+00:00"  # 12 h before AS_OF
STALE = "2026-11-01T12:00:00+00:00"  # 60 h before AS_OF
POLICY_HASH = re.compile(r"^support@[0-9a-f]{16}$")
OWN_EMAIL = "jane.doe@mail.example"
OTHER_EMAIL = "bob.smith@mail.example"


def make_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.orders (order_id VARCHAR, customer_id VARCHAR, product VARCHAR,
        amount DOUBLE, currency VARCHAR, amount_usd DOUBLE, status VARCHAR, refund_amount DOUBLE, updated_at TIMESTAMP)""")
    con.execute("""INSERT INTO staging.orders VALUES
        ('O-1000001', 'C-00001', 'Kettle', 49.99, 'USD', 49.99, 'delivered', NULL, '2026-11-01 09:00:00'),
        ('O-1000002', 'C-00002', 'Lamp', 120.0, 'USD', 120.0, 'delivered', NULL, '2026-11-01 09:00:00'),
        ('O-1000003', 'C-00001', 'Sofa', 900.0, 'USD', 900.0, 'delivered', NULL, '2026-11-01 09:00:00'),
        ('O-1000004', 'C-00001', 'Chair', 200.0, 'USD', 200.0, 'delivered', NULL, '2026-11-01 09:00:00'),
        ('O-1000006', 'C-00001', 'Desk', 500.0, 'EUR', 540.0, 'delivered', NULL, '2026-11-01 09:00:00')""")
    con.execute("""CREATE TABLE staging.tickets (ticket_id VARCHAR, customer_id VARCHAR, created_at TIMESTAMP,
        channel VARCHAR, subject VARCHAR, body VARCHAR, order_id VARCHAR, in_reply_to VARCHAR, _partition DATE)""")
    con.execute(f"""INSERT INTO staging.tickets SELECT 'T-' || n, CASE n WHEN 2 THEN 'C-00002' ELSE 'C-00001' END,
        TIMESTAMP '{DAY} 10:00:00', 'email', 'Refund', 'Please refund my order.', NULL, NULL, DATE '{DAY}'
        FROM range(1, 10) r(n)""")  # T-1..T-9; T-2 is C-00002's
    con.execute("CREATE TABLE staging.customers (customer_id VARCHAR, email VARCHAR)")
    con.execute(f"INSERT INTO staging.customers VALUES ('C-00001', '{OWN_EMAIL}'), ('C-00002', '{OTHER_EMAIL}')")
    ensure_agent_tables(con)  # outbox and effect tables, as AgentRunner.run creates them
    return con


def manifest_with(**changes: Any) -> AgentManifest:
    return AgentManifest.model_validate({**MANIFEST.model_dump(), **changes})


def budgets(**changes: Any) -> dict[str, Any]:
    return {**MANIFEST.budgets.model_dump(), **changes}


def make_toolbox(con: Any, switches: KillSwitches, *, manifest: AgentManifest = MANIFEST, contracts_passed: bool = True,
                 refund_day_used_cents: int = 0, overrides: dict[str, Any] | None = None,
                 review_ttl_hours: float = 72.0, run_id: str = "run-1") -> Toolbox:
    env = ToolEnv(con=con, online_features=lambda entity: {}, online_features_many=lambda es: [{} for _ in es],
                  kb=None, feature_service=manifest.feature_service, as_of=AS_OF)
    budget = Budget.from_manifest(manifest.budgets, refund_day_used_cents)
    gate = CedarGate.for_agent(manifest, ENGINE, switches, CONFIG, con, budget, as_of=AS_OF,
                               contracts_passed=contracts_passed, review_ttl_hours=review_ttl_hours)
    return Toolbox(manifest.name, env, gate, budget, run_id=run_id, partition=DAY, overrides=overrides or {})


def facts(ticket_id: str = "T-1", customer_id: str = "C-00001", *, refunds_90d: int = 0,
          times: dict[str, str] | None = None, text: str = "My order arrived broken, please refund it.") -> TicketFacts:
    """What the runtime knows of a ticket before acting (see AgentRunner.decide): a fresh, long-standing customer."""
    return TicketFacts(
        ticket={"ticket_id": ticket_id, "customer_id": customer_id}, text=text,
        features={"plan": "pro", "tenure_days": 400, "lifetime_spend": 900.0, "refunds_90d": refunds_90d,
                  "tickets_7d": 1},
        feature_times={"plan": FRESH, "tenure_days": FRESH} if times is None else times)


def refund_args(order_id: str = "O-1000001", amount: float = 49.99, reason: str = "arrived broken",
                currency: str = "USD") -> dict[str, Any]:
    return {"order_id": order_id, "amount": amount, "currency": currency, "reason": reason}


def reply_args(body: str, ticket_id: str = "T-1") -> dict[str, Any]:
    return {"ticket_id": ticket_id, "body": body, "cited_article_ids": ["KB-001#1"]}


def count(con: Any, sql: str, params: list[Any] | None = None) -> int:
    return con.execute(sql, params or []).fetchall()[0][0]  # fetched to the end: audit.verify reads with con.sql
