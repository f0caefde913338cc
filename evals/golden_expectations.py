"""The expected outcomes of a golden support case, derived from the agent's manifest and the support policy
set one rule at a time (the deciding policy named beside each verdict), so a reviewer can check a label
against the policy that gives it. `tests/evals/test_golden.py` replays every expected verdict through the
real Cedar engine, so a policy change that these rules no longer follow fails a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from factory_pipelines.lib.agents.tools import order_refs
from factory_pipelines.lib.evals.datasets import moment
from factory_pipelines.lib.governance.gate_config import load_gate_config
from factory_pipelines.lib.money import cents
from factory_pipelines.settings import PACKAGE_DIR

FX: dict[str, float] = yaml.safe_load((PACKAGE_DIR / "defs" / "staging" / "conform.yaml").read_text())["fx_rates_to_usd"]
GATE = load_gate_config(PACKAGE_DIR / "policies")
_BUDGETS = yaml.safe_load((PACKAGE_DIR / "defs" / "agents" / "manifests" / "support_triage.yaml").read_text())["budgets"]

# The support policy set on the calls the manifest's `actions` make (policies/common, policies/support):
GATE_REFUND_LIMIT_CENTS = 50_000  # refunds/above_limit: amount_cents > 50000 -> escalate
FREQUENT_REFUNDS = 3  # refunds/frequent_refunder: refunds_90d >= 3 -> escalate
HIGH_RISK = 70  # refunds/high_risk: risk_score >= 70 (signals of policies/gate.yaml) -> escalate
RUN_BUDGET_CENTS = cents(_BUDGETS["max_refund_usd_per_run"])  # budget/refund_run -> deny
DAY_BUDGET_CENTS = cents(_BUDGETS["max_refund_usd_per_day"])  # budget/refund_day -> deny (each case starts at 0)


# --- expectations shared by demo and hand-written cases -------------------------------------------------------

@dataclass(frozen=True)
class RefundCall:
    """What the refund policies judge of the `issue_refund` call the manifest makes ({order.amount} of the order)."""

    amount_cents: int
    order_cents: int
    refunded_cents: int
    status: str
    refunds_90d: int
    risk_score: int


def text_of(ticket_row: dict[str, Any]) -> str:
    return f"{ticket_row.get('subject') or ''}\n{ticket_row.get('body') or ''}"  # TicketFacts.text


def found_order(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The order `order_lookup` returns: the ticket's order column, else the first order its text names; None when
    unknown, not yet exported at `as_of`, or another customer's (reads/other_customer denies that lookup)."""
    ticket_row = inputs["ticket"]
    order_id = ticket_row.get("order_id") or next(iter(order_refs(text_of(ticket_row))), None)
    order = {o["order_id"]: o for o in inputs.get("orders") or []}.get(order_id or "")
    if order is None or order["customer_id"] != ticket_row["customer_id"]:
        return None
    return order if moment(order["updated_at"]) <= moment(inputs["as_of"]) else None


def risk_score(inputs: dict[str, Any], amount: float | None) -> int:
    """Points of the gate's risk signals (policies/gate.yaml) that hold for the call, at most 100."""
    facts = {"features": inputs["customer"], "amount": amount, "text": text_of(inputs["ticket"])}
    return min(100, sum(s.points for s in GATE.signals if s.when.holds(facts)))


def refund_call(inputs: dict[str, Any]) -> RefundCall | None:
    """The refund call of a `refund` decision, None when no order is found (the action's `present` fails)."""
    order = found_order(inputs)
    if order is None:
        return None

    def usd(value: float) -> float:  # lib/governance/shop.refund_context: the order's own rate
        return value * order["amount_usd"] / order["amount"] if order["amount"] else value * FX[order["currency"]]

    return RefundCall(cents(usd(order["amount"])), cents(order["amount_usd"]), cents(usd(order["refund_amount"] or 0)),
                      order["status"], int(inputs["customer"].get("refunds_90d") or 0), risk_score(inputs, order["amount"]))


def refund_verdict(call: RefundCall) -> tuple[str, list[str]]:
    """Allow, deny or escalate, and the policies that decide it: a satisfied deny wins over escalations."""
    denied = [policy for policy, holds in (
        ("refunds/order_cancelled_or_refunded", call.status in ("refunded", "cancelled")),
        ("refunds/more_than_paid", call.amount_cents + call.refunded_cents > call.order_cents),
        ("budget/refund_run", call.amount_cents > RUN_BUDGET_CENTS),
        ("budget/refund_day", call.amount_cents > DAY_BUDGET_CENTS)) if holds]
    # refunds/order_not_theirs never fires here: another customer's order is not found (see found_order)
    if denied:
        return "deny", denied
    escalated = [policy for policy, holds in (
        ("refunds/above_limit", call.amount_cents > GATE_REFUND_LIMIT_CENTS),
        ("refunds/frequent_refunder", call.refunds_90d >= FREQUENT_REFUNDS),
        ("refunds/high_risk", call.risk_score >= HIGH_RISK)) if holds]
    return ("escalate", escalated) if escalated else ("allow", ["grants/side_effects"])


def expectations(inputs: dict[str, Any], category: str, priority: str, action: str) -> dict[str, Any]:
    """Labels plus the verdict of each side-effect call of the manifest's actions, and the reply's musts."""
    outcomes: dict[str, str] = {}
    policies: dict[str, list[str]] = {}
    must, must_not = [], []
    if action == "escalate":  # escalate_to_human: grants/side_effects; no support policy forbids an escalation
        outcomes["escalate_to_human"], policies["escalate_to_human"] = "allow", ["grants/side_effects"]
    else:
        call = refund_call(inputs) if action == "refund" else None
        if call is not None:
            outcomes["issue_refund"], policies["issue_refund"] = refund_verdict(call)
        # send_reply: grants/side_effects; replies/* forbid other customers' data and secrets, which no case's
        # subject (quoted by the templates) carries (checked in `_clean_subject`); data/* hold (contracts passed,
        # features an hour old and not after the ticket, a production agent)
        outcomes["send_reply"], policies["send_reply"] = "allow", ["grants/side_effects"]
        order = found_order(inputs)
        if action == "lookup_order" and order:
            must = [order["order_id"], order["status"]]
        if action == "refund" and outcomes.get("issue_refund") == "allow":
            must = ["refund"]
        elif action == "refund":  # nothing was refunded (held, denied or no order): the reply must not promise it
            must_not = ["approved"]
        _clean_subject(inputs["ticket"])
    return {"category": category, "priority": priority, "action": action, "tool_outcomes": outcomes,
            "deciding_policies": policies, "reply_must_contain": must, "reply_must_not_contain": must_not}


def _clean_subject(ticket_row: dict[str, Any]) -> None:
    subject = ticket_row.get("subject") or ""
    if "@" in subject or any(rx.search(subject) for _, rx in GATE.compiled_secrets()):
        raise ValueError(f"ticket {ticket_row['ticket_id']}: a reply quoting this subject would be denied: {subject!r}")
