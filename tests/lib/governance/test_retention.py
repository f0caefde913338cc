"""Retention on a real DuckDB with the real DDLs: old payloads go, new ones stay, decisions, effects' ids and
amounts and the audit log stay, the chain verifies; old MLflow traces go in a real sqlite store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from factory_pipelines.lib.agents.records import ensure_agent_tables
from factory_pipelines.lib.data.conform import STAGING_DDL
from factory_pipelines.lib.data.ingest import ensure_tables
from factory_pipelines.lib.data.partition_load import QUARANTINE_DDL
from factory_pipelines.lib.data.sources import load_source
from factory_pipelines.lib.governance.audit.chain import AuditEvent, append
from factory_pipelines.lib.governance.audit.verify import verify
from factory_pipelines.lib.governance.retention import PURGED, plan, purge, purge_traces
from factory_pipelines.lib.governance.review import ensure_review_queue
from factory_pipelines.settings import PACKAGE_DIR

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
OLD, NEW = date(2026, 8, 1), date(2026, 11, 30)  # 125 and 4 days before NOW


def _warehouse(path: Path) -> Any:
    con = duckdb.connect(str(path))
    ensure_tables(con, load_source(PACKAGE_DIR / "defs" / "ingestion" / "sources" / "tickets.yaml"))
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(f"CREATE TABLE staging.tickets ({STAGING_DDL['tickets']})")
    con.execute(QUARANTINE_DDL)
    ensure_agent_tables(con)
    ensure_review_queue(con)
    for day, n in ((OLD, "1"), (NEW, "2")):
        at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        tid = f"T-{day:%Y%m%d}-0000{n}"
        con.execute("INSERT INTO raw.tickets (ticket_id, customer_id, created_at, channel, subject, body, _partition, "
                    "_extra) VALUES (?, 'C-00012', ?, 'email', 'refund', 'I am bob@example.com', ?, '{\"x\": 1}')",
                    [tid, at.replace(tzinfo=None), day])
        con.execute("INSERT INTO staging.tickets (ticket_id, customer_id, subject, body, body_chars, _partition) "
                    "VALUES (?, 'C-00012', 'refund', 'I am bob@example.com', 20, ?)", [tid, day])
        con.execute("INSERT INTO raw.quarantine (source, partition, rule, payload) VALUES ('tickets', ?, 'enum', "
                    "'bob@example.com,...')", [day])
        con.execute("INSERT INTO agents.model_cache (key, model_version, prompt, result, created_at) "
                    "VALUES (?, 'm', 'p/1', '{\"content\": \"x\"}', ?)", [f"k{n}", at])
        for table in ("decisions", "shadow_decisions"):
            con.execute(f"INSERT INTO agents.{table} (agent, partition, ticket_id, status, category, action, "
                        "cost_usd, reply) VALUES ('support', ?, ?, 'decided', 'refund', 'refund', 0.01, 'Dear Bob')",
                        [day, tid])
        con.execute("INSERT INTO agents.refunds (refund_id, agent, ticket_id, order_id, amount, currency, reason, "
                    "issued_at) VALUES (?, 'support', ?, 'O-1234567', 12.5, 'USD', 'damaged', ?)", [f"R-{n}", tid, at])
        con.execute("INSERT INTO agents.replies (message_id, agent, ticket_id, body, cited_article_ids, sent_at) "
                    "VALUES (?, 'support', ?, 'Dear Bob, ...', ['KB-1'], ?)", [f"M-{n}", tid, at])
        reply = json.dumps({"body": "Dear Bob", "cited_article_ids": ["KB-1"]})
        for table in ("tool_calls", "shadow_tool_calls"):
            con.execute(f"INSERT INTO agents.{table} (agent, ticket_id, tool, arguments, status, partition, called_at) "
                        "VALUES ('support', ?, 'send_reply', ?, 'executed', ?, ?), "
                        "('support', ?, 'kb_search', '{\"query\": \"bob@example.com\", \"k\": 3}', 'ok', ?, ?), "
                        "('support', ?, 'issue_refund', '{\"order_id\": \"O-1234567\", \"amount\": 12.5}', 'executed', "
                        "?, ?)", [tid, reply, day, at, tid, day, at, tid, day, at])
        con.execute("INSERT INTO agents.outbox (idempotency_key, agent, ticket_id, tool, arguments, executed_at) "
                    "VALUES (?, 'support', ?, 'send_reply', ?, ?)", [f"key{n}", tid, reply, at])
        for status, suffix in (("executed", "a"), ("pending", "b")):
            con.execute("INSERT INTO governance.review_queue (item_id, agent, ticket_id, tool, arguments, created_at, "
                        "expires_at, status) VALUES (?, 'support', ?, 'send_reply', ?, ?, ?, ?)",
                        [f"I-{n}{suffix}", tid, reply, at, at + timedelta(hours=72), status])
        append(con, [AuditEvent("effect_executed", "agent:support", f"ticket:{tid}",
                                {"idempotency_key": f"key{n}", "tool": "send_reply"}, at=at)])
    return con


def _snapshot(con: Any) -> dict[str, list[tuple]]:
    tables = ["raw.tickets", "staging.tickets", "raw.quarantine", "agents.model_cache", "agents.decisions",
              "agents.replies", "agents.refunds", "agents.tool_calls", "agents.outbox", "governance.review_queue",
              "governance.audit_log"]
    return {t: sorted(map(str, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


def test_purge_masks_and_deletes_exactly_the_old_payloads(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "w.duckdb")
    before = _snapshot(con)
    dry = plan(con, NOW, 90)
    counts = {(r.table, r.what): r.rows for r in dry.rows}
    assert all(v == 1 for k, v in counts.items() if k[0] != "governance.review_queue"), counts
    assert counts[("governance.review_queue", "arguments.body (send_reply)")] == 1  # the pending item is kept
    assert _snapshot(con) == before  # planning changes nothing

    seq = purge(con, dry, anchor=tmp_path / "anchor")
    one = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    assert one(f"SELECT subject, body, _extra FROM raw.tickets WHERE _partition = '{OLD}'") == [(PURGED, PURGED, None)]
    assert one(f"SELECT subject, body FROM raw.tickets WHERE _partition = '{NEW}'") == [("refund", "I am bob@example.com")]
    assert one("SELECT body, body_chars FROM staging.tickets ORDER BY _partition") == [
        (PURGED, 20), ("I am bob@example.com", 20)]
    assert one("SELECT payload IS NULL FROM raw.quarantine ORDER BY partition") == [(True,), (False,)]
    assert one("SELECT key FROM agents.model_cache") == [("k2",)]
    assert one("SELECT reply, category, action, cost_usd FROM agents.decisions ORDER BY partition") == [
        (PURGED, "refund", "refund", 0.01), ("Dear Bob", "refund", "refund", 0.01)]
    assert one("SELECT message_id, body, cited_article_ids FROM agents.replies ORDER BY sent_at") == [
        ("M-1", PURGED, ["KB-1"]), ("M-2", "Dear Bob, ...", ["KB-1"])]
    assert one("SELECT refund_id, amount, order_id FROM agents.refunds ORDER BY refund_id") == [
        ("R-1", 12.5, "O-1234567"), ("R-2", 12.5, "O-1234567")]
    args = one("SELECT tool, partition, arguments FROM agents.tool_calls ORDER BY partition, tool")
    old = {tool: json.loads(a) for tool, day, a in args if day == OLD}
    assert old["send_reply"] == {"body": PURGED, "cited_article_ids": ["KB-1"]}
    assert old["kb_search"] == {"query": PURGED, "k": 3}
    assert old["issue_refund"] == {"order_id": "O-1234567", "amount": 12.5}
    assert all(PURGED not in a for _, day, a in args if day == NEW)
    assert one("SELECT idempotency_key, json_extract_string(arguments, '$.body') FROM agents.outbox ORDER BY 1") == [
        ("key1", PURGED), ("key2", "Dear Bob")]
    assert one("SELECT item_id, json_extract_string(arguments, '$.body') FROM governance.review_queue ORDER BY 1") == [
        ("I-1a", PURGED), ("I-1b", "Dear Bob"), ("I-2a", "Dear Bob"), ("I-2b", "Dear Bob")]

    report = verify(con, anchor=tmp_path / "anchor")
    assert report.ok, report.summary()
    event = one(f"SELECT kind, payload FROM governance.audit_log WHERE seq = {seq}")[0]
    assert event[0] == "retention_purge"
    payload = json.loads(event[1])
    assert payload["days"] == 90 and payload["total_rows"] == dry.total == len(dry.rows) == 13
    assert {(r["table"], r["rows"]) for r in payload["rows"]} >= {("agents.model_cache", 1), ("raw.tickets", 1)}
    assert plan(con, NOW, 90).total == 0  # nothing left to purge
    assert plan(con, NOW, 0).rows == []  # 0 keeps forever


def test_traces_older_than_the_cutoff_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    ids = {name: client.create_experiment(name, artifact_location=str(tmp_path / name.replace("/", "_")))
           for name in ("agents/support", "evals/support", "other")}
    for name, experiment_id in ids.items():
        mlflow.set_experiment(experiment_id=experiment_id)
        for k in range(2):
            with mlflow.start_span(name=f"{name} {k}") as span:
                span.set_inputs({"subject": "hello"})
    cutoff = datetime.now(UTC) + timedelta(seconds=1)  # every trace is older
    assert purge_traces(uri, cutoff, dry_run=True) == {"agents/support": 2, "evals/support": 2}
    assert purge_traces(uri, cutoff - timedelta(days=1)) == {"agents/support": 0, "evals/support": 0}
    assert purge_traces(uri, cutoff) == {"agents/support": 2, "evals/support": 2}
    left = {name: len(client.search_traces(locations=[i])) for name, i in ids.items()}
    assert left == {"agents/support": 0, "evals/support": 0, "other": 2}  # not the factory's: untouched


def test_factory_purge_dry_run_then_purge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from factory_pipelines.cli import app
    from tests.conftest import use_home

    settings = use_home(monkeypatch, tmp_path / "home")
    _warehouse(Path(settings.warehouse)).close()
    runner = CliRunner()
    dry = runner.invoke(app, ["purge", "--dry-run", "--days", "30", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and planned["audit_seq"] is None and planned["total_rows"] == 13
    assert runner.invoke(app, ["purge", "--dry-run", "--days", "30"]).output.count("would go; nothing changed") == 1
    done = runner.invoke(app, ["purge", "--days", "30"])
    assert done.exit_code == 0, done.output
    assert "audit event retention_purge at seq 3" in done.output
    audit = runner.invoke(app, ["audit", "verify"])
    assert audit.exit_code == 0, audit.output
    again = json.loads(runner.invoke(app, ["purge", "--dry-run", "--days", "30", "--json"]).stdout)
    assert again["total_rows"] == 0


def test_the_retention_asset_purges_with_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.defs.retention.assets import purge_asset
    from tests.conftest import use_home

    settings = use_home(monkeypatch, tmp_path / "home", retention_days="30")
    _warehouse(Path(settings.warehouse)).close()
    resources = build_resources(settings)
    result = dg.materialize([purge_asset(settings)], resources={k: resources[k] for k in ("warehouse", "tracking")})
    assert result.success
    metadata = result.asset_materializations_for_node("retention__purge")[0].metadata
    assert metadata["rows"].value == 13 and metadata["retention_days"].value == 30
    assert metadata["audit_seq"].value == 3
