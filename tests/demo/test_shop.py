"""Customers and orders: a full CRM snapshot then daily changes; an order keeps its facts as its status
moves."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from factory_pipelines.demo import DemoDataSummary
from factory_pipelines.demo.shop import mailbox
from tests.demo.readers import D1, SMALL, days


def test_customers_change_over_days(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    first = pq.read_table(landing / "customers" / str(D1) / "customers.parquet").to_pylist()
    assert len(first) == SMALL["customers"] and len({c["email"] for c in first}) == len(first)
    plans = {c["customer_id"]: c["plan"] for c in first}
    spend = {p: [c["lifetime_spend"] for c in first if c["plan"] == p] for p in ("free", "enterprise")}
    assert max(spend["free"]) < min(spend["enterprise"])  # spend consistent with plan
    for day in days(5, D1 + timedelta(days=1)):
        later = pq.read_table(landing / "customers" / str(day) / "customers.parquet").to_pylist()
        assert 1 <= len(later) <= 0.1 * SMALL["customers"]
        assert all(c["updated_at"].date() == day for c in later)
        assert all(c["customer_id"] in plans or c["signup_date"] == day for c in later)


def test_orders_move_through_their_statuses(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    statuses = Counter()
    first_seen: dict[str, dict[str, Any]] = {}
    for day in days(6):
        for row in pq.read_table(landing / "orders" / str(day) / "orders.parquet").to_pylist():
            statuses[row["status"]] += 1
            assert (row["refund_amount"] is not None) == (row["status"] == "refunded")
            if row["order_id"] in first_seen:  # a status change keeps the order's facts, later timestamp
                prev = first_seen[row["order_id"]]
                assert (row["amount"], row["customer_id"]) == (prev["amount"], prev["customer_id"])
                assert row["updated_at"] > prev["updated_at"]
            first_seen[row["order_id"]] = row
    assert all(statuses[s] > 0 for s in ("placed", "shipped", "delivered", "refunded", "cancelled"))


def test_mailbox_is_ascii() -> None:
    assert mailbox("José", "O'Brien") == "jose.obrien"
    assert mailbox("Søren", "Müller") == "soren.muller"
