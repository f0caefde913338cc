"""The outbox: a side effect happens once per key, across retries, re-runs and crashes."""

from __future__ import annotations

import duckdb
import pytest

from factory_pipelines.lib.agents.outbox import ensure_outbox, execute_once, idempotency_key
from factory_pipelines.lib.agents.tools import IssueRefundIn

REFUND = IssueRefundIn(order_id="O-1234567", amount=49.99, currency="USD", reason="arrived broken")


def refund_effect(con: duckdb.DuckDBPyConnection) -> dict:
    con.execute("CREATE TABLE IF NOT EXISTS refunds (order_id VARCHAR, amount DOUBLE)")
    con.execute("INSERT INTO refunds VALUES (?, ?)", [REFUND.order_id, REFUND.amount])
    return {"refund_id": "R-1", "status": "issued"}


def call(con: duckdb.DuckDBPyConnection, effect=refund_effect, arguments=REFUND):
    ensure_outbox(con)
    return execute_once(con, agent="support_triage", ticket_id="T-1", tool="issue_refund", tool_version="1.0.0",
                        arguments=arguments, effect=effect, run_id="run-1", partition="2026-11-01")


def test_same_call_twice_acts_once() -> None:
    con = duckdb.connect()
    first, second = call(con), call(con)
    assert first.executed and not second.executed and second.result == first.result
    assert con.execute("SELECT count(*) FROM refunds").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM agents.outbox").fetchone()[0] == 1


def test_key_ignores_field_order_but_not_values() -> None:
    same = {"currency": "USD", "reason": "arrived broken", "amount": 49.99, "order_id": "O-1234567"}
    assert idempotency_key("a", "T-1", "issue_refund", REFUND) == idempotency_key("a", "T-1", "issue_refund", same)
    other = REFUND.model_copy(update={"amount": 50.0})
    assert idempotency_key("a", "T-1", "issue_refund", other) != idempotency_key("a", "T-1", "issue_refund", REFUND)
    assert idempotency_key("b", "T-1", "issue_refund", REFUND) != idempotency_key("a", "T-1", "issue_refund", REFUND)


def test_crash_inside_the_effect_leaves_nothing_and_the_retry_acts_once() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE refunds (order_id VARCHAR, amount DOUBLE)")

    def crashing(c: duckdb.DuckDBPyConnection) -> dict:
        refund_effect(c)
        raise ConnectionError("payment provider went away")

    with pytest.raises(ConnectionError):
        call(con, effect=crashing)
    assert con.execute("SELECT count(*) FROM refunds").fetchone()[0] == 0
    assert call(con).executed
    assert call(con).executed is False
    assert con.execute("SELECT count(*) FROM refunds").fetchone()[0] == 1
