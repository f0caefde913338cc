"""An executed side effect and its audit event commit together: a process killed at any point leaves both or
neither, and `verify` names an effect that no audit event accounts for. Real processes, real SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from factory_pipelines.lib.governance.audit.verify import verify
from factory_pipelines.lib.governance.gate import record_agent_day
from factory_pipelines.settings import REPO_ROOT
from tests.lib.governance.world import AGENT, DAY, facts, refund_args, reply_args

CHILD = """
import os, signal, sys
from pathlib import Path
import mlflow
mlflow.set_tracking_uri("sqlite:///" + sys.argv[2])
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.gate import CedarGate
from tests.lib.governance.world import facts, make_toolbox, make_warehouse, refund_args

con = make_warehouse(Path(sys.argv[1]) / "warehouse.duckdb")
tb = make_toolbox(con, KillSwitches(Path(sys.argv[1]) / "kill_switches.jsonl"))
if sys.argv[3] == "inside":  # killed after the refund's INSERT, before its transaction commits
    def killed(self, tx, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    CedarGate.record_effect = killed
result = tb.call("issue_refund", "T-1", refund_args(), facts())
assert result.executed, result
os.kill(os.getpid(), signal.SIGKILL)  # after the effect, before the day's records are written
"""


def run_child(tmp_path: Path, where: str) -> duckdb.DuckDBPyConnection:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path), str(tmp_path / "m.db"), where],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    return duckdb.connect(str(tmp_path / "warehouse.duckdb"))


def test_killed_after_the_effect_the_audit_log_already_accounts_for_it(tmp_path: Path) -> None:
    con = run_child(tmp_path, "after")
    refunds = con.execute("SELECT refund_id FROM agents.refunds").fetchall()
    assert len(refunds) == 1, "the refund committed"
    assert con.execute("SELECT count(*) FROM agents.tool_calls").fetchall()[0][0] == 0, "the day's records did not"
    events = con.execute("SELECT json_extract_string(payload, '$.result.refund_id') FROM governance.audit_log "
                         "WHERE kind = 'effect_executed'").fetchall()
    assert events == refunds
    report = verify(con)
    assert report.ok, report.summary()


def test_killed_inside_the_effect_transaction_leaves_neither(tmp_path: Path) -> None:
    con = run_child(tmp_path, "inside")
    assert con.execute("SELECT count(*) FROM agents.refunds").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM agents.outbox").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM governance.audit_log WHERE kind = 'effect_executed'").fetchall()[0][0] == 0
    assert verify(con).ok


def test_verify_names_an_executed_effect_without_its_audit_event(tmp_path: Path) -> None:
    con = run_child(tmp_path, "after")
    con.execute("DELETE FROM governance.audit_log WHERE kind = 'effect_executed'")  # the chain's tail, cut
    report = verify(con)
    assert not report.ok
    assert [(p.kind, p.detail.split(" (")[0]) for p in report.problems] == [
        ("unaudited", "executed issue_refund for ticket T-1")], report.summary()


def test_verify_names_every_unaudited_effect_and_accepts_the_day_records_of_older_warehouses(con, tb) -> None:
    """Each effect without its event is one problem; a warehouse written before effects had their own event
    accounts for them by the day's `tool_call` events (executed), so upgrading does not fail verify."""
    tb.call("issue_refund", "T-1", refund_args(), facts())
    tb.call("issue_refund", "T-1", refund_args("O-1000004", 60.0), facts())
    tb.call("send_reply", "T-1", reply_args("Your refund is on its way."), facts())
    con.execute("DELETE FROM governance.audit_log WHERE kind = 'effect_executed'")
    report = verify(con)
    assert sorted(p.detail.split(" (")[0] for p in report.problems if p.kind == "unaudited") == [
        "executed issue_refund for ticket T-1", "executed issue_refund for ticket T-1",
        "executed send_reply for ticket T-1"], report.summary()
    record_agent_day(con, AGENT, DAY, [], tb.records)  # the tool_call events of the day, as older runs wrote
    assert verify(con).ok, verify(con).summary()
