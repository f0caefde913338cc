"""The review sweep's sensor, driven through `build_sensor_context` on a real warehouse."""

from __future__ import annotations

import dagster as dg
import duckdb

from factory_pipelines.definitions import build_definitions
from factory_pipelines.lib.governance.review import ensure_review_queue
from factory_pipelines.settings import Settings


def evaluate(settings: Settings) -> object:
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("review_actions_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"warehouse": defs.resources["warehouse"]})
        return sensor.evaluate_tick(context)


def add_item(settings: Settings, status: str, expires: str = "2099-01-01") -> None:
    with duckdb.connect(settings.warehouse) as con:
        ensure_review_queue(con)
        con.execute("INSERT INTO governance.review_queue (item_id, agent, ticket_id, tool, arguments, created_at, "
                    "expires_at, status) VALUES (?, 'support_triage', 'T-1', 'issue_refund', '{}', now(), ?, ?)",
                    [f"item-{status}-{expires}", expires, status])


def test_the_sensor_starts_a_sweep_only_when_approved_or_overdue_items_wait(settings: Settings) -> None:
    first = evaluate(settings)  # no warehouse yet
    assert not first.run_requests and first.skip_message
    add_item(settings, "pending")
    add_item(settings, "rejected")
    assert not evaluate(settings).run_requests, "pending in time and rejected items need no sweep"
    add_item(settings, "pending", expires="2020-01-01")
    overdue = evaluate(settings).run_requests
    assert len(overdue) == 1 and overdue[0].tags["overdue"] == "1"
    add_item(settings, "approved")
    approved = evaluate(settings).run_requests
    assert len(approved) == 1 and approved[0].tags.items() >= {"approved": "1", "overdue": "1"}.items()


def test_the_sensor_skips_while_a_run_holds_the_warehouse(settings: Settings) -> None:
    import subprocess
    import sys

    add_item(settings, "approved")
    holder = subprocess.Popen(  # another process writing the warehouse, as an agent run does
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({settings.warehouse!r}); print('held', "
                               "flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = evaluate(settings)
    finally:
        holder.kill()
        holder.wait()
    assert not result.run_requests and "busy" in result.skip_message
    assert len(evaluate(settings).run_requests) == 1, "once the run is gone, the sweep starts"
