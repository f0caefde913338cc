"""A configuration decided over golden cases in the scratch world: the real runtime, tools and Cedar gate; the
outcome keeps each tool call's verdict and effect, and trials do not see each other's effects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from factory_pipelines.lib.agents.manifests import load_manifest
from factory_pipelines.lib.agents.models.prompts import ResolvedPrompt, load_prompt_file
from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.lib.evals.harness import AgentConfiguration, Governance, run_cases
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
                              ScriptedProvider([answer] * 50), "scripted", rules=rules, replies=replies,
                              feature_names=tuple(CUSTOMER))


@pytest.fixture
def governance() -> Governance:
    return Governance(PolicyEngine.load(POLICIES, "support"), load_gate_config(POLICIES))


@pytest.fixture(autouse=True)
def tracking(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("evals")


def world():
    return build_world(CASES, kb_articles=KB, lexicon=LEXICON, fx_rates=FX)


def test_each_case_is_decided_by_the_real_runtime_and_gate(configuration, governance) -> None:
    first, second = run_cases(CASES, configuration, governance, world)
    assert (first.status, first.decision["action"]) == ("decided", "lookup_order")
    assert [c["tool"] for c in first.tool_calls][:3] == ["customer_features", "kb_search", "order_lookup"]
    assert first.retrieved and set(first.cited) <= set(first.retrieved)
    refund = next(c for c in second.tool_calls if c["tool"] == "issue_refund")
    assert (refund["verdict"], refund["executed"]) == ("allow", True)
    assert first.trace_id and second.trace_id and first.trace_id != second.trace_id


def test_trials_do_not_see_each_others_effects(configuration, governance) -> None:
    outcomes = run_cases(CASES[1:], configuration, governance, world, trials=2)
    refunds = [next(c for c in o.tool_calls if c["tool"] == "issue_refund") for o in outcomes]
    assert [(o.trial, r["verdict"], r["executed"]) for o, r in zip(outcomes, refunds, strict=True)] == [
        (0, "allow", True), (1, "allow", True)]


def test_the_world_serves_each_ticket_its_own_features_known_before_it(configuration) -> None:
    w = world()
    features = w.online_features({"customer_id": "C-00042", "ticket_id": "T-20260920-00002"})
    assert features["plan"] == "pro" and features["mentions_refund"] is True and features["has_order_ref"] is True
    assert features["plan__ts"] < features["mentions_refund__ts"]
    assert w.con.execute("SELECT amount_usd FROM staging.orders WHERE order_id = 'O-1000002'").fetchall() == [(60.0,)]
    w.close()
