"""Builds the golden datasets (`evals/datasets/*.jsonl`) from labelled demo tickets and the hand-written cases in
`evals/cases/*.yaml`: `.venv/bin/python -m evals.build_golden`. The same bytes on every run and machine.

Demo cases come from the demo generator with their own seed, on days outside the product's default range
(`Settings.start_date .. end_date`, where the classifier trains and holds out its last days), so no case is a
ticket the classifier learned from or is scored on. Labels follow the demo's truth rules (`demo.tickets.decide`);
each case's customer features are what `support_agent_v1` would serve as of the ticket (the CRM, order and ticket
history up to the end of the day before), and its order is the row the shop exported before the ticket.

Expected tool outcomes are derived from the manifest's `actions` and the support policy set, one policy per rule,
in `golden_expectations.py` (`refund_verdict`); `tests/evals/test_golden.py` replays them through the real Cedar engine.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from evals.golden_expectations import (
    FX,
    GATE_REFUND_LIMIT_CENTS,
    expectations,
    found_order,
    text_of,
)
from factory_pipelines.demo.context import Ctx, at
from factory_pipelines.demo.shop import Customer, Order, customer_rows, placed_orders
from factory_pipelines.demo.tickets import (
    HIGH_VALUE,
    REFUND_LIMIT,
    TICKET_COLUMNS,
    Ticket,
    decide,
    ticket,
    ticket_times,
)
from factory_pipelines.demo.vocabulary import ticket_words
from factory_pipelines.lib.agents.facts import parse_amount
from factory_pipelines.lib.agents.tools import order_refs
from factory_pipelines.lib.evals.datasets import load_dataset, moment
from factory_pipelines.lib.money import cents

EVALS = Path(__file__).resolve().parent
SUPPORT_FILE, GAP_FILE = "support_triage_golden.jsonl", "knowledge_gap_golden.jsonl"
SEED = 1207  # not the product's demo seed (7): other customers, orders and tickets
WINDOW = (date(2027, 1, 11), date(2027, 1, 24))  # after the default range 2026-11-01 .. 2026-11-07
DRIFT = date(2027, 1, 18)  # the second week writes angrier, longer tickets, as a drifted day does
HISTORY_DAYS = 120  # orders placed this far back still count in 90-day features (refunds land <= 23 days later)
CTX = Ctx(SEED, 150, 400, DRIFT)
SUPPORT_QUOTAS = {"normal": 150, "follow_up": 20, "duplicate": 14, "injection": 10}
GAP_DEMO_CASES = 36


def tags_for(inputs: dict[str, Any], exp: dict[str, Any], *, source: str, intent: str, sentiment: str, legal: bool,
             injection: bool, follow_up: bool, duplicate: bool, amount: float | None) -> list[str]:
    """What a case exercises, derived from its inputs and expectations (a hand-written case may add more)."""
    default_action = ticket_words().intents[intent].action
    body, orders, refunding = inputs["ticket"]["body"] or "", inputs.get("orders") or [], default_action == "refund"
    named = inputs["ticket"].get("order_id") or next(iter(order_refs(text_of(inputs["ticket"]))), None)
    usd = max((o["amount_usd"] for o in orders), default=None)
    verdict, why = exp["tool_outcomes"].get("issue_refund"), exp["deciding_policies"].get("issue_refund", [])
    flags = {
        source: True, "injection": injection, "follow_up": follow_up, "duplicate": duplicate, "legal_threat": legal,
        "angry_high_value": sentiment == "angry" and (amount or 0) >= HIGH_VALUE and default_action != "reply",
        "other_currency": any(o["currency"] != "USD" for o in orders), "empty_body": len(body.strip(" .-?")) == 0,  # a subject-only ticket: the body a client sends
        "huge_body": len(body) >= 10_000, "unknown_order": bool(named) and named not in {o["order_id"] for o in orders},
        "refund_at_kb_limit": refunding and amount == REFUND_LIMIT,
        "refund_above_kb_limit": refunding and (amount or 0) > REFUND_LIMIT,
        "refund_at_gate_limit": refunding and usd is not None and cents(usd) == GATE_REFUND_LIMIT_CENTS,
        "refund_above_gate_limit": refunding and usd is not None and cents(usd) > GATE_REFUND_LIMIT_CENTS,
        "already_refunded": verdict == "deny" and "refunds/more_than_paid" in why,
        "cancelled_order": verdict == "deny" and any(o["status"] == "cancelled" for o in orders),
        "frequent_refunder": "refunds/frequent_refunder" in why, "high_risk": "refunds/high_risk" in why}
    flags["refund_above_limit"] = flags["refund_above_kb_limit"] or flags["refund_above_gate_limit"]
    flags["refund_at_limit"] = flags["refund_at_kb_limit"] or flags["refund_at_gate_limit"]
    flags["refund_below_limit"] = refunding and amount is not None and not (
        flags["refund_above_limit"] or flags["refund_at_limit"])
    return sorted(name for name, on in flags.items() if on)


# --- demo cases ----------------------------------------------------------------------------------------------

class DemoWorld:
    """The demo shop around the window: orders, CRM rows and tickets, indexed once."""

    def __init__(self) -> None:
        start = WINDOW[0] - timedelta(days=HISTORY_DAYS)
        days = [start + timedelta(days=k) for k in range((WINDOW[1] - start).days + 1)]
        self.orders: dict[str, Order] = {o.id: o for d in days for o in placed_orders(CTX, d)}
        self.by_customer: dict[str, list[Order]] = {}
        for order in self.orders.values():
            self.by_customer.setdefault(order.customer.id, []).append(order)
        self.crm: dict[str, list[tuple[datetime, str, float]]] = {}
        for d in days:
            for row in customer_rows(CTX, d, start):
                self.crm.setdefault(row["customer_id"], []).append((row["updated_at"], row["plan"], row["lifetime_spend"]))
        ticket_days = [d for d in days if d >= WINDOW[0] - timedelta(days=31)]
        self.tickets: dict[date, list[Ticket]] = {d: [ticket(CTX, d, n) for n in range(len(ticket_times(CTX, d)))]
                                                  for d in ticket_days}
        self.opened: dict[str, list[datetime]] = {}
        for d in ticket_days:
            for n, t in enumerate(self.tickets[d]):
                self.opened.setdefault(t.row[1], []).append(ticket_times(CTX, d)[n])

    def features(self, customer: Customer, day: date) -> dict[str, Any]:
        """`customer_daily` of the day before (customer_daily_sql): everything known by midnight of `day`."""
        as_of = at(day, 0)
        crm = max((r for r in self.crm.get(customer.id, []) if r[0] < as_of), key=lambda r: r[0], default=None)
        plan, spend = (crm[1], crm[2]) if crm else (customer.plan, customer.spend(day))
        rows = []  # (ordered_at, status, status time, amount_usd, refund_usd) of each order as exported by then
        for order in self.by_customer.get(customer.id, []):
            if order.ordered_at < as_of:
                status, when, refund = order.status_before(as_of)
                rows.append((order.ordered_at, status, when, usd(order.amount, customer.currency),
                             usd(refund, customer.currency) if refund is not None else None))
        live = [r for r in rows if r[1] != "cancelled"]
        refunded = [r for r in rows if r[1] == "refunded" and r[2] >= as_of - timedelta(days=90)]
        opened = self.opened.get(customer.id, [])
        return {"plan": plan, "region": customer.region, "tenure_days": (day - timedelta(days=1) - customer.signup).days,
                "lifetime_spend": spend,
                "orders_30d": sum(1 for r in live if r[0] >= as_of - timedelta(days=30)),
                "spend_30d": round(sum(r[3] for r in live if r[0] >= as_of - timedelta(days=30)), 2),
                "spend_90d": round(sum(r[3] for r in live if r[0] >= as_of - timedelta(days=90)), 2),
                "refunds_90d": len(refunded),
                "refund_amount_90d": round(sum(r[4] if r[4] is not None else r[3] for r in refunded), 2),
                "tickets_7d": sum(1 for t in opened if as_of - timedelta(days=7) <= t < as_of),
                "tickets_30d": sum(1 for t in opened if as_of - timedelta(days=30) <= t < as_of)}

    def order_row(self, order: Order, day: date) -> dict[str, Any]:
        """The order's latest shop export row before the ticket's day began."""
        status, when, refund = order.status_before(at(day, 0))
        currency = order.customer.currency
        return {"order_id": order.id, "customer_id": order.customer.id, "product": order.product, "amount": order.amount,
                "currency": currency, "amount_usd": usd(order.amount, currency), "status": status, "refund_amount": refund,
                "ordered_at": stamp(order.ordered_at), "updated_at": stamp(when)}

    def inputs(self, t: Ticket, day: date) -> dict[str, Any]:
        row = dict(zip(TICKET_COLUMNS, t.row, strict=True))
        named = [o for o in dict.fromkeys([row["order_id"], *order_refs(text_of(row))]) if o in self.orders]
        return {"ticket": row, "customer": self.features(t.customer, day), "as_of": iso(row["created_at"]),
                "orders": [self.order_row(self.orders[o], day) for o in named]}


def usd(amount: float, currency: str) -> float:
    return round(amount * FX[currency], 2)  # conform.py: round(amount * rate, 2)


def stamp(moment_: datetime) -> str:
    return moment_.strftime("%Y-%m-%d %H:%M:%S")


def iso(text: str) -> str:
    return moment(text).isoformat()


def kind_of(t: Ticket) -> str:
    truth = t.truth
    return ("injection" if truth["is_injection"] else "duplicate" if truth["is_duplicate_of"]
            else "follow_up" if truth["is_follow_up"] else "normal")


def pool(world: DemoWorld, purpose: str) -> list[tuple[date, Ticket]]:
    """Every window ticket, in a seeded order of its own per purpose."""
    tickets = [(d, t) for d, day in sorted(world.tickets.items()) if WINDOW[0] <= d <= WINDOW[1] for t in day]
    random.Random(f"{SEED}/golden/{purpose}").shuffle(tickets)
    return tickets


def demo_support_cases(world: DemoWorld, used_orders: set[str]) -> list[dict[str, Any]]:
    """Quotas per kind; at most 3 normal tickets per (intent, action, priority), 3 per (kind, category) else; no
    order in two cases (a refund executed in one would change the other's verdict)."""
    picked, kinds, buckets = [], Counter(), Counter()
    for day, t in pool(world, "support"):
        kind = kind_of(t)
        bucket = (kind, t.intent, t.truth["action"], t.truth["priority"]) if kind == "normal" else (kind, t.truth["category"])
        if kinds[kind] >= SUPPORT_QUOTAS[kind] or buckets[bucket] >= 3:
            continue
        inputs = world.inputs(t, day)
        orders = {o["order_id"] for o in inputs["orders"]}
        if orders & used_orders:
            continue
        used_orders |= orders
        kinds[kind] += 1
        buckets[bucket] += 1
        truth = t.truth
        exp = expectations(inputs, truth["category"], truth["priority"], truth["action"])
        legal = any(threat in (t.row[5] or "") for threat in ticket_words().legal_threats)
        tags = tags_for(inputs, exp, source="demo", intent=t.intent, sentiment=truth["sentiment"], legal=legal,
                        injection=truth["is_injection"], follow_up=truth["is_follow_up"],
                        duplicate=bool(truth["is_duplicate_of"]), amount=truth["amount"])
        picked.append({"id": f"demo-{t.row[0]}", "inputs": inputs, "expectations": exp, "tags": tags})
    return sorted(picked, key=lambda c: c["id"])


# Whether the shipped KB answers a demo ticket, by intent (the article that does), or by its text: True / False,
# None for a question the KB half answers (left out of the golden set).
COVERED_ERRORS = ("ERR-502", "PAY-1042", "E1003", "SYNC_TIMEOUT")  # KB-022, KB-023; "500 Internal Server Error" is not
COMPATIBLE = ("iPhone", "Android", "Windows", "220V")  # KB-034
KB_ANSWERS: dict[str, bool | Callable[[str], bool | None]] = {
    "refund_defective": True, "refund_return": True, "refund_status": True, "refund_subscription": True,  # KB-002..006
    "shipping_where": True, "shipping_not_shipped": True, "shipping_address": True,  # KB-008/009, shipping policy, KB-010
    "shipping_question": lambda text: "express shipping cost" not in text.lower(),  # KB-007/011 give times, no price
    "billing_double": True, "billing_invoice": True, "billing_plan": True, "billing_fraud": True,  # KB-015/014/017/018
    "technical_app": lambda text: any(code in text for code in COVERED_ERRORS),
    "technical_device": lambda text: True if "factory reset" in text or "disconnecting from Bluetooth" in text or (
        "grinding" in text) else None if "firmware" in text else False,  # KB-020, KB-019, KB-024
    "account_password": True, "account_change": True, "account_hacked": True,  # KB-025, KB-026/027/028, KB-029
    "product_warranty": True, "product_plan": True,  # KB-033, KB-031/032
    "product_presale": lambda text: False if "difference between" in text else True if "back in stock" in text or any(
        c in text for c in COMPATIBLE) else False,  # KB-035, KB-034; no article compares products
}


def kb_answers(t: Ticket) -> bool | None:
    if t.truth["is_follow_up"]:
        return True  # a chase-up asks nothing new of the KB (knowledge_gap rule follow_up_is_not_a_question)
    rule = KB_ANSWERS[t.intent]
    return rule(text_of(dict(zip(TICKET_COLUMNS, t.row, strict=True)))) if callable(rule) else rule


def gap_expectations(answered: bool) -> dict[str, Any]:
    """A gap is escalated with priority low: grants/side_effects allows it (escalations/knowledge_not_urgent only
    forbids high and urgent); an answered ticket calls no side-effect tool."""
    if answered:
        return {"answered": True, "tool_outcomes": {}, "deciding_policies": {}}
    return {"answered": False, "tool_outcomes": {"escalate_to_human": "allow"},
            "deciding_policies": {"escalate_to_human": ["grants/side_effects"]}}


def demo_gap_cases(world: DemoWorld) -> list[dict[str, Any]]:
    """Up to 3 tickets per (intent, answered): every gap kind the demo writes, and the questions it answers."""
    picked, buckets = [], Counter()
    for _, t in pool(world, "knowledge_gap"):
        answered = kb_answers(t)
        if answered is None or buckets[t.intent, answered] >= 3 or len(picked) >= GAP_DEMO_CASES:
            continue
        buckets[t.intent, answered] += 1
        row = dict(zip(TICKET_COLUMNS, t.row, strict=True))
        tags = ["demo", *(["follow_up"] if t.truth["is_follow_up"] else []), *(["injection"] if t.truth["is_injection"] else []),
                "answered" if answered else "knowledge_gap"]
        picked.append({"id": f"demo-{t.row[0]}", "inputs": {"ticket": row, "as_of": iso(row["created_at"])},
                       "expectations": gap_expectations(answered), "tags": sorted(tags)})
    return sorted(picked, key=lambda c: c["id"])


# --- hand-written cases (evals/cases/*.yaml) -------------------------------------------------------------------

SUPPORT_KEYS = {"id", "intent", "subject", "body", "channel", "sentiment", "legal", "injection", "order", "unknown_order",
                "other_customer", "order_column", "in_reply_to", "duplicate_of", "padding", "customer", "tags", "expect",
                "reply_must_contain", "reply_must_not_contain", "amount"}
GAP_KEYS = {"id", "answered", "subject", "body", "channel", "in_reply_to", "tags"}


def _read_cases(name: str, keys: set[str]) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    path = EVALS / "cases" / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = spec["cases"]
    for raw in cases:
        if stray := set(raw) - keys:
            raise ValueError(f"{path}: case {raw.get('id')!r}: unknown keys {sorted(stray)}; known: {sorted(keys)}")
    return path, spec["defaults"], cases


def _created(defaults: dict[str, Any], k: int) -> datetime:
    return datetime.fromisoformat(str(defaults["start"])) + timedelta(minutes=37 * k)


def _fill(text: str, order_id: str, padding: dict[str, Any] | None) -> str:
    text = text.replace("{oid}", order_id)
    return text.replace("{padding}", " ".join([padding["text"]] * padding["times"])) if padding else text


def hand_support_case(path: Path, k: int, raw: dict[str, Any], defaults: dict[str, Any],
                      earlier: dict[str, tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One case of evals/cases/support_triage.yaml; labels by the demo's truth rules, checked against `expect`."""
    base_k, spec = k, {**defaults, **raw}
    if raw.get("duplicate_of"):  # the same customer re-sends the same text about the same order
        base_k, base = earlier[raw["duplicate_of"]]
        spec = {**defaults, **base, **{key: raw[key] for key in ("id", "tags", "expect") if key in raw}}
    created = _created(defaults, k)
    oid, cid, opened = f"O-99{base_k:05d}", f"C-7{base_k:04d}", _created(defaults, base_k)
    orders = []
    if spec.get("order"):
        o = spec["order"]
        orders.append({"order_id": oid, "customer_id": f"C-6{base_k:04d}" if spec.get("other_customer") else cid,
                       "product": o["product"], "amount": o["amount"], "currency": o.get("currency", "USD"),
                       "amount_usd": usd(o["amount"], o.get("currency", "USD")), "status": o["status"],
                       "refund_amount": o.get("refund_amount"), "ordered_at": stamp(opened - timedelta(days=9)),
                       "updated_at": stamp(opened - timedelta(days=2))})
    has_order = bool(orders) or spec.get("unknown_order", False)
    row = {"ticket_id": f"T-{created:%Y%m%d}-9{k:04d}", "customer_id": cid, "created_at": stamp(created),
           "channel": spec["channel"], "subject": _fill(spec["subject"], oid, None),
           "body": _fill(spec["body"], oid, spec.get("padding")),
           "order_id": oid if has_order and spec.get("order_column", True) else "", "in_reply_to": spec.get("in_reply_to", "")}
    inputs = {"ticket": row, "customer": {**defaults["customer"], **spec.get("customer", {})}, "as_of": iso(row["created_at"]),
              "orders": orders}
    order = found_order(inputs)
    amount = order["amount"] if order else spec.get("amount", parse_amount(text_of(row)))
    intent, sentiment = spec["intent"], spec["sentiment"]
    action, priority = decide(intent, sentiment, amount, spec.get("legal", False), spec.get("injection", False))
    exp = expectations(inputs, ticket_words().intents[intent].category, priority, action)
    for key, value in (raw.get("expect") or {}).items():
        if exp.get(key) != value:
            raise ValueError(f"{path}: case {raw['id']}: expect.{key} is {value!r}, the truth rules give {exp.get(key)!r}")
    if raw.get("duplicate_of") and "issue_refund" in exp["tool_outcomes"]:
        raise ValueError(f"{path}: case {raw['id']}: a duplicate of a refund would see the original's refund")
    exp["reply_must_contain"] += spec.get("reply_must_contain", [])
    exp["reply_must_not_contain"] += spec.get("reply_must_not_contain", [])
    tags = tags_for(inputs, exp, source="hand_written", intent=intent, sentiment=sentiment, legal=spec.get("legal", False),
                    injection=spec.get("injection", False), follow_up=bool(row["in_reply_to"]),
                    duplicate=bool(raw.get("duplicate_of")), amount=amount)
    return {"id": raw["id"], "inputs": inputs, "expectations": exp, "tags": sorted(set(tags) | set(raw.get("tags", [])))}


def hand_support_cases(used_orders: set[str]) -> list[dict[str, Any]]:
    path, defaults, raws = _read_cases("support_triage", SUPPORT_KEYS)
    earlier: dict[str, tuple[int, dict[str, Any]]] = {}
    cases = []
    for k, raw in enumerate(raws, start=1):
        case = hand_support_case(path, k, raw, defaults, earlier)
        earlier[raw["id"]] = (k, raw)
        orders = {o["order_id"] for o in case["inputs"]["orders"]}
        if orders & used_orders and not raw.get("duplicate_of"):
            raise ValueError(f"{path}: case {raw['id']}: order {sorted(orders)} is in another case")
        used_orders |= orders
        cases.append(case)
    return cases


def hand_gap_cases() -> list[dict[str, Any]]:
    path, defaults, raws = _read_cases("knowledge_gap", GAP_KEYS)
    cases = []
    for k, raw in enumerate(raws, start=1):
        spec, created = {**defaults, **raw}, _created(defaults, k)
        row = {"ticket_id": f"T-{created:%Y%m%d}-8{k:04d}", "customer_id": f"C-8{k:04d}", "created_at": stamp(created),
               "channel": spec["channel"], "subject": spec["subject"], "body": spec["body"], "order_id": "",
               "in_reply_to": spec.get("in_reply_to", "")}
        tags = {"hand_written", "answered" if raw["answered"] else "knowledge_gap", *raw.get("tags", []),
                *(["follow_up"] if row["in_reply_to"] else [])}
        cases.append({"id": raw["id"], "inputs": {"ticket": row, "as_of": iso(row["created_at"])},
                      "expectations": gap_expectations(bool(raw["answered"])), "tags": sorted(tags)})
    return cases


def jsonl(cases: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(case, sort_keys=True, ensure_ascii=False) + "\n" for case in cases).encode("utf-8")


def build() -> dict[str, bytes]:
    """File name -> bytes of both golden datasets."""
    world, used_orders = DemoWorld(), set()
    support = demo_support_cases(world, used_orders) + hand_support_cases(used_orders)
    gaps = demo_gap_cases(world) + hand_gap_cases()
    return {SUPPORT_FILE: jsonl(support), GAP_FILE: jsonl(gaps)}


def summary(path: Path) -> str:
    """Counts per label field and tag, as the builder prints them."""
    dataset = load_dataset(path)
    records = dataset.records()
    fields = ("category", "priority", "action") if dataset.agent == "support_triage" else ("answered",)
    lines = [f"{path.relative_to(EVALS.parent)}: {len(records)} cases, version {dataset.version}"]
    for field in fields:
        counts = Counter(str(r["expectations"][field]) for r in records)
        lines.append(f"  {field}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    outcomes = Counter(f"{tool}={verdict}" for r in records for tool, verdict in r["expectations"]["tool_outcomes"].items())
    lines.append("  tool outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    tags = Counter(tag for r in records for tag in r["tags"])
    lines.append("  tags: " + ", ".join(f"{k} {v}" for k, v in sorted(tags.items())))
    return "\n".join(lines)


def main() -> int:
    out = EVALS / "datasets"
    out.mkdir(exist_ok=True)
    for name, data in build().items():
        (out / name).write_bytes(data)
        print(summary(out / name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
