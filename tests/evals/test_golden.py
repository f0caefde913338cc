"""The committed golden datasets: they load through their suites, are big and varied enough, never hold a ticket
of the classifier's date range, expect the verdicts the real Cedar policies give, and are exactly what
`python -m evals.build_golden` writes today (so they never rot)."""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from datetime import date
from functools import cache
from typing import Any

import pytest

from factory_pipelines.lib.agents.manifests import load_manifest
from factory_pipelines.lib.agents.toolbox import Budget
from factory_pipelines.lib.evals.datasets import ACTIONS, CATEGORIES, PRIORITIES, Dataset, case_day
from factory_pipelines.lib.evals.suites import load_suite
from factory_pipelines.lib.governance.gate import agent_entity, customer_context
from factory_pipelines.lib.governance.gate_config import load_gate_config
from factory_pipelines.lib.governance.policy import PolicyEngine
from factory_pipelines.lib.governance.reply_scan import scan_reply
from factory_pipelines.settings import PACKAGE_DIR, REPO_ROOT, Settings

EVALS = REPO_ROOT / "evals"
# The repo's evals/ folder is a package of the checkout, not a dependency (tests/test_dependencies.py would take
# a static `from evals import ...` for a third-party import).
build_golden = importlib.import_module("evals.build_golden")
golden_expectations = importlib.import_module("evals.golden_expectations")
POLICIES = PACKAGE_DIR / "policies"
MANIFESTS = PACKAGE_DIR / "defs" / "agents" / "manifests"
SUPPORT_TAGS = ("follow_up", "duplicate", "refund_below_limit", "refund_at_limit", "refund_above_limit",
                "refund_at_gate_limit", "refund_above_gate_limit", "refund_at_kb_limit", "refund_above_kb_limit",
                "other_currency", "unknown_order", "angry_high_value", "legal_threat", "empty_body", "huge_body",
                "already_refunded", "cancelled_order", "frequent_refunder", "high_risk")


@cache
def dataset(suite: str) -> Dataset:
    return load_suite(EVALS / "suites" / f"{suite}.yaml").load_dataset()


@cache
def fresh() -> dict[str, bytes]:
    return build_golden.build()


def support() -> list[dict[str, Any]]:
    return dataset("support_triage_golden").records()


def gaps() -> list[dict[str, Any]]:
    return dataset("knowledge_gap_golden").records()


def tagged(records: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [r for r in records if tag in r["tags"]]


@pytest.mark.parametrize("name", [build_golden.SUPPORT_FILE, build_golden.GAP_FILE])
def test_the_committed_dataset_is_what_the_builder_writes(name: str) -> None:
    committed = (EVALS / "datasets" / name).read_bytes()
    assert committed == fresh()[name], f"evals/datasets/{name} is stale: run `.venv/bin/python -m evals.build_golden`"


def test_the_builder_writes_the_same_bytes_twice() -> None:
    assert build_golden.build() == fresh()


def test_the_support_set_covers_every_label_and_edge() -> None:
    records = support()
    assert len(records) >= 250
    for field, values in (("category", CATEGORIES), ("priority", PRIORITIES), ("action", ACTIONS)):
        counts = Counter(r["expectations"][field] for r in records)
        assert set(counts) == set(values) and min(counts.values()) >= 10, (field, counts)
    tags = Counter(tag for r in records for tag in r["tags"])
    assert {tag: tags[tag] for tag in SUPPORT_TAGS if not tags[tag]} == {}
    assert tags["injection"] >= 40 and tags["follow_up"] >= 10 and tags["duplicate"] >= 10
    currencies = {o["currency"] for r in records for o in r["inputs"]["orders"]}
    assert {"USD", "EUR", "GBP"} <= currencies
    verdicts = Counter((tool, v) for r in records for tool, v in r["expectations"]["tool_outcomes"].items())
    assert {("issue_refund", "allow"), ("issue_refund", "deny"), ("issue_refund", "escalate"),
            ("send_reply", "allow"), ("escalate_to_human", "allow")} <= set(verdicts)
    assert len(tagged(records, "demo")) >= 150 and len(tagged(records, "hand_written")) >= 80


def test_the_knowledge_gap_set_has_gaps_and_answers() -> None:
    records = gaps()
    answered = Counter(r["expectations"]["answered"] for r in records)
    assert len(records) >= 60 and answered[True] >= 20 and answered[False] >= 20
    assert all(r["expectations"]["tool_outcomes"] == ({} if r["expectations"]["answered"] else
                                                      {"escalate_to_human": "allow"}) for r in records)


@pytest.mark.parametrize("suite", ["support_triage_golden", "knowledge_gap_golden"])
def test_no_case_is_a_ticket_of_the_classifiers_date_range(suite: str) -> None:
    fields = Settings.model_fields
    start, end = fields["start_date"].default, fields["end_date"].default
    days = {date.fromisoformat(case_day(c)) for c in dataset(suite).cases}
    assert not [d for d in days if start <= d <= end]
    demo = [c for c in dataset(suite).cases if "demo" in c.tags]
    assert demo and all(c.id == f"demo-{c.inputs.ticket.ticket_id}" for c in demo)


def test_the_injection_texts_are_not_the_red_team_corpus() -> None:
    corpus = [json.loads(line) for line in (EVALS / "injections" / "attacks.jsonl").read_text().splitlines() if line]
    snippets = {a["body"][i:i + 60] for a in corpus for i in range(0, max(1, len(a["body"]) - 60), 30)}
    texts = [r["inputs"]["ticket"]["subject"] + "\n" + r["inputs"]["ticket"]["body"] for r in tagged(support(), "injection")]
    assert not [t for t in texts for s in snippets if len(s) == 60 and s in t]


def test_every_case_names_orders_of_its_own_and_no_order_twice() -> None:
    owners: dict[str, str] = {}
    for record in support():
        for order in record["inputs"]["orders"]:
            previous = owners.setdefault(order["order_id"], record["id"])
            assert previous == record["id"] or "duplicate" in record["tags"], (order["order_id"], previous, record["id"])


@cache
def engine(policy_set: str) -> tuple[PolicyEngine, Any, Any]:
    manifest = load_manifest(MANIFESTS / f"{'support_triage' if policy_set == 'support' else 'knowledge_gap'}.yaml")
    policies = PolicyEngine.load(POLICIES, policy_set)
    entities = policies.entities([agent_entity(manifest.name, manifest.stage, manifest.version, list(manifest.tools))])
    return policies, entities, manifest


def cedar_request(record: dict[str, Any], tool: str, manifest: Any) -> dict[str, Any]:
    """The request the gate builds for `tool` in this case, from the case's facts (lib/governance/gate.py)."""
    inputs, expected = record["inputs"], record["expectations"]
    ticket = inputs["ticket"]
    features = inputs.get("customer") or {}
    context: dict[str, Any] = {
        "tool": tool, "ticket_id": ticket["ticket_id"], "customer": customer_context(features),
        "data": {"contracts_passed": True, "features_age_hours": 1, "features_after_ticket": False,
                 "drift": {"status": "none", "slices": []}},
        "budget": Budget.from_manifest(manifest.budgets).cedar(), "risk_score": 0}
    resource = {"type": "Ticket", "id": ticket["ticket_id"]}
    if tool == "issue_refund":
        call = golden_expectations.refund_call(inputs)
        order = golden_expectations.found_order(inputs)
        resource = {"type": "Order", "id": order["order_id"]}
        context |= {"risk_score": call.risk_score, "amount_cents": call.amount_cents, "currency": order["currency"],
                    "order": {"found": True, "customer_matches": True, "amount_cents": call.order_cents,
                              "refunded_cents": call.refunded_cents, "status": call.status}}
    elif tool == "send_reply":
        owners = {o["order_id"]: o["customer_id"] for o in inputs["orders"]}
        scan = scan_reply(ticket["subject"], ticket["customer_id"], f"{ticket['customer_id'].lower()}@customers.example.org",
                          owners.get, load_gate_config(POLICIES))
        context |= {"scan": {"secrets": len(scan.secrets), "other_customer_refs": len(scan.other_customer_refs),
                             "chars": 200}, "cited": 2}
    else:
        context["priority"] = expected.get("priority", "low")
    return {"principal": {"type": "Agent", "id": manifest.name}, "action": {"type": "Action", "id": tool},
            "resource": resource, "context": context}


@pytest.mark.parametrize("suite", ["support_triage_golden", "knowledge_gap_golden"])
def test_each_expected_verdict_is_what_the_cedar_policies_decide(suite: str) -> None:
    policies, entities, manifest = engine("support" if suite.startswith("support") else "knowledge")
    calls = [(r, tool, verdict) for r in dataset(suite).records() for tool, verdict in r["expectations"]["tool_outcomes"].items()]
    decisions = policies.decide_many([cedar_request(r, tool, manifest) for r, tool, _ in calls], entities)
    wrong = [(r["id"], tool, verdict, d.outcome, d.policies) for (r, tool, verdict), d in zip(calls, decisions, strict=True)
             if d.outcome != verdict or not set(r["expectations"]["deciding_policies"][tool]) <= set(d.policies)]
    assert len(calls) > 20 and wrong == []


@pytest.mark.parametrize("name", [build_golden.SUPPORT_FILE, build_golden.GAP_FILE])
def test_every_golden_ticket_is_one_ingestion_would_load(name: str) -> None:
    """The declared row rules of the shipped tickets source (required, enum, pattern, length) hold for every
    case's ticket: a case the data plane would quarantine could never reach the agent."""
    from factory_pipelines.lib.data.sources import load_source

    spec = load_source(PACKAGE_DIR / "defs" / "ingestion" / "sources" / "tickets.yaml")
    broken = []
    for line in (REPO_ROOT / "evals" / "datasets" / name).read_text().splitlines():
        case = json.loads(line)
        ticket = case["inputs"]["ticket"]
        for column in spec.columns:
            value = ticket.get(column.name)
            text = "" if value is None else str(value)
            if (column.required and not text.strip()) or (column.enum and text and text not in column.enum) or (
                    column.pattern and text and not re.fullmatch(column.pattern.strip("^$"), text)) or (
                    column.max_length and len(text) > column.max_length):
                broken.append(f"{case['id']}: {column.name}={text[:40]!r}")
    assert broken == []
