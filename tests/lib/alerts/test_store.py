"""The alert table: recorded once per evaluation, listed with filters, acknowledged once and audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from factory_pipelines.lib.alerts import store
from factory_pipelines.lib.alerts.store import AlertError, CheckFailure, ack, get_alert, list_alerts, record
from factory_pipelines.lib.governance.audit.chain import read_anchor
from factory_pipelines.lib.governance.audit.verify import verify


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def drift(agent: str, run: str = "run-1", partition: str = "2026-11-06", severity: str = "error") -> CheckFailure:
    return CheckFailure(check_name="psi_within_bound", asset_key=f"drift/{agent}", run_id=run, severity=severity,
                        partition=partition, description="PSI 0.31 above 0.25",
                        metadata={"observed": 0.31, "bound": 0.25, "rows": 150, "summary": "x" * 2000,
                                  "examples": [{"email": "a@b.c"}]},
                        evaluated_at=datetime(2026, 11, 7, 3, 0, tzinfo=UTC))


def test_the_id_is_stable_and_recording_twice_inserts_nothing(con) -> None:
    failure = drift("support_triage")
    assert failure.alert_id == store.alert_id("psi_within_bound", "drift/support_triage", "2026-11-06", "run-1")
    assert failure.alert_id != drift("support_triage", run="run-2").alert_id
    assert failure.alert_id != drift("support_triage", partition="2026-11-07").alert_id
    assert record(con, [failure, failure], deliver=False) == [failure.alert_id]
    assert record(con, [failure, drift("support_triage", run="run-2")], deliver=False) == [
        drift("support_triage", run="run-2").alert_id]
    assert record(con, [failure], deliver=True) == []
    assert con.execute("SELECT count(*) FROM alerts.check_failures").fetchall()[0][0] == 2


def test_a_row_holds_the_check_its_bound_and_scalar_metadata_only(con) -> None:
    (new,) = record(con, [drift("support_triage")], deliver=True)
    row = get_alert(con, new[:8])
    assert (row["check_name"], row["asset_key"], row["partition"], row["agent"], row["severity"]) == (
        "psi_within_bound", "drift/support_triage", "2026-11-06", "support_triage", "error")
    assert (row["observed"], row["bound"], row["run_id"]) == (0.31, 0.25, "run-1")
    assert row["metadata"] == {"bound": 0.25, "observed": 0.31, "rows": 150}  # no long text, no example rows
    assert (row["delivery_status"], row["delivery_attempts"], row["acked_at"]) == ("pending", 0, None)
    contract = CheckFailure("contract_tickets_v1", "raw/tickets", "run-9", metadata={"agent": "knowledge_gap"})
    record(con, [contract, CheckFailure("quarantine_rate_within_bound", "raw/orders", "run-9", "warn")],
           deliver=False)
    assert {r["asset_key"]: r["agent"] for r in list_alerts(con)} == {
        "drift/support_triage": "support_triage", "raw/tickets": "knowledge_gap", "raw/orders": None}
    assert get_alert(con, contract.alert_id)["delivery_status"] == "none"


def test_list_filters_by_agent_asset_severity_and_time(con) -> None:
    assert list_alerts(con) == []  # no table yet
    record(con, [drift("support_triage"), drift("knowledge_gap", severity="warn"),
                 CheckFailure("contract_orders_v1", "raw/orders", "run-3")], deliver=False)
    assert len(list_alerts(con)) == 3
    assert [r["agent"] for r in list_alerts(con, agent="knowledge_gap")] == ["knowledge_gap"]
    assert {r["asset_key"] for r in list_alerts(con, asset="drift")} == {"drift/support_triage", "drift/knowledge_gap"}
    assert list_alerts(con, asset="dri") == []  # a prefix of a key part is not a match
    assert [r["agent"] for r in list_alerts(con, asset="drift/", severity="error")] == ["support_triage"]
    assert len(list_alerts(con, since=date.today())) == 3
    assert list_alerts(con, since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_ack_closes_the_alert_once_and_writes_an_audit_event(con, tmp_path: Path) -> None:
    record(con, [drift("support_triage"), drift("knowledge_gap")], deliver=False)
    target = list_alerts(con, agent="support_triage")[0]["alert_id"]
    anchor = tmp_path / "governance" / "audit_head"
    with pytest.raises(AlertError, match="needs who"):
        ack(con, target, by=" ")
    done = ack(con, target[:10], by="oncall", note="known demo drift", anchor=anchor)
    assert (done["acked_by"], done["ack_note"]) == ("oncall", "known demo drift")
    assert [r["agent"] for r in list_alerts(con)] == ["knowledge_gap"]
    assert len(list_alerts(con, open_only=False)) == 2
    with pytest.raises(AlertError, match="already acknowledged by oncall"):
        ack(con, target, by="someone")
    kind, actor, subject, payload = con.execute(
        "SELECT kind, actor, subject, payload FROM governance.audit_log").fetchall()[0]
    assert (kind, actor, subject) == ("alert_acked", "oncall", f"alert:{target}")
    assert '"note":"known demo drift"' in payload and '"check":"psi_within_bound"' in payload
    assert read_anchor(anchor)[0] == 1 and verify(con, anchor).ok


def test_unknown_short_or_ambiguous_ids_are_refused(con) -> None:
    with pytest.raises(AlertError, match="no alert"):
        get_alert(con, "abcdef12")
    seen: dict[str, str] = {}
    for k in range(200_000):  # two runs whose alert ids share 6 characters (a birthday search, a few thousand)
        run = f"run-{k}"
        prefix = drift("support_triage", run=run).alert_id[:6]
        if prefix in seen:
            break
        seen[prefix] = run
    record(con, [drift("support_triage", run=seen[prefix]), drift("support_triage", run=run)], deliver=False)
    with pytest.raises(AlertError, match="too short"):
        ack(con, "abc", by="oncall")
    with pytest.raises(AlertError, match="ambiguous"):
        get_alert(con, prefix)
    with pytest.raises(ValueError, match="severity"):
        CheckFailure("c", "a", "r", severity="critical")  # type: ignore[arg-type]
