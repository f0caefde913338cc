"""`factory alerts list|ack` on the settings' warehouse: open alerts listed, one acknowledged (audited), then
only under --all; filters and --json."""

from __future__ import annotations

import json

import duckdb
from typer.testing import CliRunner

from factory_pipelines.cli import app
from factory_pipelines.lib.alerts.store import CheckFailure, record
from factory_pipelines.settings import Settings

runner = CliRunner()


def test_list_ack_and_list_again(settings: Settings) -> None:
    empty = runner.invoke(app, ["alerts", "list", "--json"])
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []  # no warehouse yet: no alerts, no error
    with duckdb.connect(settings.warehouse) as con:
        drift, contract = record(con, [
            CheckFailure("psi_within_bound", "drift/support_triage", "run-1", partition="2026-11-06",
                         metadata={"observed": 0.31, "bound": 0.25}),
            CheckFailure("contract_tickets_v1", "raw/tickets", "run-1", "warn", partition="2026-11-06")],
            deliver=False)
    shown = runner.invoke(app, ["alerts", "list"])
    assert shown.exit_code == 0, shown.output
    assert drift[:12] in shown.output and "drift/support_triage:psi_within_bound" in shown.output
    assert "0.31" in shown.output and "Alerts: open (2)" in shown.output
    only = json.loads(runner.invoke(app, ["alerts", "list", "--json", "--agent", "support_triage"]).stdout)
    assert [a["alert_id"] for a in only] == [drift]
    assert json.loads(runner.invoke(app, ["alerts", "list", "--json", "--since", "2999-01-01"]).stdout) == []

    done = runner.invoke(app, ["alerts", "ack", drift[:8], "--by", "oncall", "--note", "demo drift day"])
    assert done.exit_code == 0, done.output
    assert "acknowledged" in done.output and "by oncall: demo drift day" in done.output
    again = runner.invoke(app, ["alerts", "ack", drift[:8], "--by", "oncall"])
    assert again.exit_code == 1 and "already acknowledged" in again.output
    assert runner.invoke(app, ["alerts", "ack", "ffffffffff"]).exit_code == 1
    open_now = json.loads(runner.invoke(app, ["alerts", "list", "--json"]).stdout)
    assert [a["alert_id"] for a in open_now] == [contract]
    every = json.loads(runner.invoke(app, ["alerts", "list", "--all", "--json"]).stdout)
    assert {a["alert_id"]: a["acked_by"] for a in every} == {drift: "oncall", contract: None}
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT kind, actor FROM governance.audit_log").fetchall() == [("alert_acked", "oncall")]
    assert settings.audit_anchor.exists()
