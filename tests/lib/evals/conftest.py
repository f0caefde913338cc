"""Shared by the evaluation tests: a small KB, a customer, case builders, a scripted configuration of the
support agent and its real Cedar policy set, and a local MLflow store per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from factory_pipelines.lib.agents.manifests import load_manifest
from factory_pipelines.lib.agents.models.prompts import ResolvedPrompt, load_prompt_file
from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.lib.evals.harness import AgentConfiguration, Governance
from factory_pipelines.lib.evals.world import build_world
from factory_pipelines.lib.governance.gate_config import load_gate_config
from factory_pipelines.lib.governance.policy import PolicyEngine
from factory_pipelines.settings import PACKAGE_DIR

AGENTS = PACKAGE_DIR / "defs" / "agents"
POLICIES = PACKAGE_DIR / "policies"
LEXICON = yaml.safe_load((PACKAGE_DIR / "defs" / "features" / "lexicon.yaml").read_text())
FX = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}
KB = [
    {"article_id": "KB-001", "title": "Refund policy", "updated_at": "2026-09-01",
     "body": "Refunds of delivered orders are issued within 30 days.\n\nRefunds above 1,000 need a team lead."},
    {"article_id": "KB-002", "title": "Track your parcel", "updated_at": "2026-09-01",
     "body": "Shipped orders can be tracked from the order page. Parcels arrive in 3-5 days."},
]
CUSTOMER = {"plan": "pro", "region": "EU", "tenure_days": 400, "lifetime_spend": 2500.0, "orders_30d": 1,
            "spend_30d": 80.0, "spend_90d": 300.0, "refunds_90d": 0, "refund_amount_90d": 0.0, "tickets_7d": 1,
            "tickets_30d": 2}


def case(n: int, subject: str, body: str, order: dict[str, Any] | None, truth: dict[str, str]) -> dict[str, Any]:
    ticket = {"ticket_id": f"T-20260920-{n:05d}", "customer_id": "C-00042", "created_at": f"2026-09-20 1{n}:00:00",
              "channel": "email", "subject": subject, "body": body, "order_id": order["order_id"] if order else "",
              "in_reply_to": ""}
    orders = [{"customer_id": "C-00042", "product": "Nimbus Earbuds", "currency": "USD", "status": "delivered",
               "refund_amount": None, "updated_at": "2026-09-10 10:00:00", **order}] if order else []
    return {"id": f"case-{n}", "inputs": {"ticket": ticket, "customer": CUSTOMER, "orders": orders},
            "expectations": truth}


CASES = [
    case(1, "Where is my parcel?", "My order O-1000001 has not arrived yet, where is it?",
         {"order_id": "O-1000001", "amount": 80.0, "status": "shipped"},
         {"category": "shipping", "priority": "medium", "action": "lookup_order"}),
    case(2, "Refund please", "The earbuds from order O-1000002 are broken, I want a refund of my money.",
         {"order_id": "O-1000002", "amount": 60.0}, {"category": "refund", "priority": "medium", "action": "refund"}),
]


def answer(messages: list[dict[str, str]]) -> str:
    text = " ".join(m["content"] for m in messages)
    if "Ticket body: The earbuds" in text:
        return json.dumps({"category": "refund", "priority": "medium", "action": "refund"})
    return json.dumps({"category": "shipping", "priority": "medium", "action": "lookup_order"})


@pytest.fixture
def configuration() -> AgentConfiguration:
    manifest = load_manifest(AGENTS / "manifests" / "support_triage.yaml")
    spec = load_prompt_file(PACKAGE_DIR / "defs" / "registry" / "prompts" / "support_triage.yaml")
    rules, replies = manifest.load_config(AGENTS)
    return AgentConfiguration("champion", manifest, ResolvedPrompt(spec.name, 1, spec.template, spec.response_schema),
                              ScriptedProvider([answer] * 50), "scripted", rules=rules, replies=replies)


@pytest.fixture
def governance() -> Governance:
    return Governance(PolicyEngine.load(POLICIES, "support"), load_gate_config(POLICIES))


@pytest.fixture
def tracking(tmp_path: Path) -> None:
    """A local MLflow store for the agent's traces (tests that run the agent use it)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("evals")


def world_of(cases: list[dict[str, Any]]):
    """A factory of fresh worlds holding `cases` (one per trial)."""
    return lambda: build_world(cases, kb_articles=KB, lexicon=LEXICON, fx_rates=FX)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    """Real MLflow registries (sqlite): prompt support_triage v1 champion, v2 challenger; classifier ticket_classifier v1 champion, v2 challenger."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for n in (1, 2):
        client.register_prompt(name="support_triage", template=f"version {n}: {{{{ticket}}}}")
    client.set_prompt_alias("support_triage", "champion", 1)
    client.set_prompt_alias("support_triage", "challenger", 2)
    client.create_registered_model("ticket_classifier")
    (tmp_path / "model").mkdir()
    for _ in (1, 2):
        client.create_model_version("ticket_classifier", source=str(tmp_path / "model"))
    client.set_registered_model_alias("ticket_classifier", "champion", "1")
    client.set_registered_model_alias("ticket_classifier", "challenger", "2")
    return client


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()
