"""Tickets and their truth labels: labels follow from the text, drift is measurable."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factory_pipelines.demo import HIGH_VALUE, REFUND_LIMIT, DemoDataSummary, write_demo_data
from factory_pipelines.demo.tickets import decide
from tests.demo.readers import D1, INJECTION_CUES, days, read_rows, truth


def test_truth_matches_tickets(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, truth_dir, _ = clean
    orders = {r["order_id"]: r for d in days(6)
              for r in pq.read_table(landing / "orders" / str(d) / "orders.parquet").to_pylist()}
    seen: dict[str, dict[str, str]] = {}
    labels: Counter[str] = Counter()
    injections, refund_checked, order_checked = 0, 0, 0
    for day in days(6):
        rows = read_rows("tickets", landing / "tickets" / str(day) / "tickets.csv")
        tickets = {r["ticket_id"]: r for r in rows}
        labelled = truth(truth_dir, day)
        assert [t["ticket_id"] for t in labelled] == list(tickets)
        for t in labelled:
            row = tickets[t["ticket_id"]]
            labels[t["category"]] += 1
            assert t["priority"] in {"low", "medium", "high", "urgent"}
            assert t["action"] in {"reply", "refund", "lookup_order", "escalate"}
            assert t["sentiment"] in {"angry", "neutral", "polite"}
            assert bool(INJECTION_CUES.search(row["body"])) == t["is_injection"]
            if t["is_injection"]:
                injections += 1
                assert t["action"] == "escalate"
            if t["sentiment"] == "angry":
                assert "!" in row["body"] or re.search("[A-Z]{6,}", row["body"])
            if t["sentiment"] == "polite":
                assert re.search("(?i)thank|dear|hope|good morning|appreciate", row["body"])
            if t["is_duplicate_of"]:
                orig = seen[t["is_duplicate_of"]]
                assert (orig["customer_id"], orig["body"]) == (row["customer_id"], row["body"])
            if t["is_follow_up"]:
                assert row["in_reply_to"] and row["in_reply_to"] in row["body"]
                if row["in_reply_to"] in seen:
                    assert seen[row["in_reply_to"]]["customer_id"] == row["customer_id"]
            else:
                assert row["in_reply_to"] == ""
            if t["order_id"]:
                assert t["order_id"] in row["body"].upper() or row["order_id"] == t["order_id"]
                if t["order_id"] in orders:
                    order_checked += 1
                    assert orders[t["order_id"]]["customer_id"] == row["customer_id"]
            if t["action"] == "refund":
                refund_checked += 1
                assert t["amount"] is not None and f"{t['amount']:,.2f}" in row["body"]
                if t["order_id"] in orders:
                    assert t["amount"] == orders[t["order_id"]]["amount"]
            seen[t["ticket_id"]] = row
    total = sum(labels.values())
    assert set(labels) == {"billing", "refund", "shipping", "technical", "account", "product"}
    assert 0.005 < injections / total < 0.05
    assert refund_checked > 10 and order_checked > 50


@pytest.mark.parametrize(("intent", "sentiment", "amount", "legal", "injection", "expected"), [
    ("refund_defective", "neutral", 120.0, False, False, ("refund", "medium")),
    ("refund_defective", "neutral", REFUND_LIMIT + 1, False, False, ("escalate", "high")),
    ("shipping_where", "angry", HIGH_VALUE, False, False, ("escalate", "high")),
    ("shipping_question", "angry", None, False, False, ("reply", "high")),
    ("account_password", "polite", None, False, False, ("reply", "low")),
    ("billing_invoice", "neutral", 40.0, True, False, ("escalate", "urgent")),
    ("account_hacked", "neutral", None, False, False, ("escalate", "urgent")),
    ("product_presale", "polite", None, False, True, ("escalate", "high")),
])
def test_decide_follows_the_truth_rules(intent: str, sentiment: str, amount: float | None, legal: bool,
                                        injection: bool, expected: tuple[str, str]) -> None:
    assert decide(intent, sentiment, amount, legal, injection) == expected


def test_drift_shifts_distributions(tmp_path: Path) -> None:
    drift = D1 + timedelta(days=4)
    write_demo_data(tmp_path / "l", D1, D1 + timedelta(days=7), defect_rate=0.0, drift_date=drift,
                    truth_dir=tmp_path / "t", tickets_per_day=120, customers=200)

    def stats(period: list[date]) -> dict[str, float]:
        labels = [t for d in period for t in truth(tmp_path / "t", d)]
        rows = [r for d in period
                for r in read_rows("tickets", tmp_path / "l" / "tickets" / str(d) / "tickets.csv")]
        placed = [r["amount"] for d in period
                  for r in pq.read_table(tmp_path / "l" / "orders" / str(d) / "orders.parquet").to_pylist()
                  if r["status"] == "placed"]
        return {"refund_shipping": sum(t["category"] in ("refund", "shipping") for t in labels) / len(labels),
                "angry": sum(t["sentiment"] == "angry" for t in labels) / len(labels),
                "chat": sum(r["channel"] == "chat" for r in rows) / len(rows),
                "body": sum(len(r["body"]) for r in rows) / len(rows),
                "amount": sum(placed) / len(placed)}

    before, after = stats(days(4)), stats(days(4, drift))
    assert after["refund_shipping"] > before["refund_shipping"] + 0.1
    assert after["angry"] > before["angry"] + 0.1
    assert after["chat"] > before["chat"] + 0.1
    assert after["amount"] > 1.3 * before["amount"]
    assert after["body"] > before["body"]
