"""The governance domain: approved escalations executed exactly once, and the audit chain verified.

`governance/review_actions` is one sweep of the human review queue: pending items past their deadline
expire (denied), and every approved item runs once through the outbox after its kill switches and
policies are checked again (a switch turned on, or a policy that now denies, cancels it). The sensor
`review_actions_sensor` starts the sweep when approved or overdue items wait; `factory review execute`
runs it at once. Its check `audit_log_verified` re-verifies the whole hash chain after every sweep.
"""


from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.resources.governance import PolicyEngineResource
from factory_pipelines.resources.warehouse import WarehouseResource

REVIEW_ACTIONS = dg.AssetKey(["governance", "review_actions"])
REVIEW_JOB = "review_actions_job"


def build_governance_assets(manifests_dir: Path) -> list[Any]:
    @dg.asset(key=REVIEW_ACTIONS, group_name="governance", kinds={"duckdb", "python"},
              tags={"layer": "governance"}, owners=["team:governance"],
              description="One sweep of the review queue (governance.review_queue): overdue escalations expire, "
                          "approved ones are executed exactly once through the outbox, after kill switches and "
                          "policies are checked again. Every outcome is an audit event.")
    def review_actions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       policy_engine: PolicyEngineResource) -> dg.MaterializeResult:
        from factory_pipelines.lib.agents.manifests import load_manifests
        from factory_pipelines.lib.governance.audit import save_anchor
        from factory_pipelines.lib.governance.gate import recheck_item
        from factory_pipelines.lib.governance.kill_switches import sync_audit
        from factory_pipelines.lib.governance.review import counts, execute_approved, expire_overdue

        manifests = load_manifests(manifests_dir)
        switches = policy_engine.switches()
        config = policy_engine.gate_config()
        with warehouse.connect() as con:
            sync_audit(con, switches)
            expired = expire_overdue(con)
            done = execute_approved(con, switches, lambda item: recheck_item(
                con, item, manifests.get(item["agent"]), policy_engine.engine, config))
            queue = counts(con)
            save_anchor(con, Path(policy_engine.audit_anchor))
        for execution in done:
            context.log.info(f"review item {execution.item_id[:12]}: {execution.status} ({execution.detail[:200]})")
        table = "| item | status | detail |\n|---|---|---|\n" + "\n".join(
            f"| {e.item_id[:12]} | {e.status} | {e.detail[:120]} |" for e in done)
        return dg.MaterializeResult(metadata={
            "executed": sum(e.status == "executed" for e in done), "cancelled": sum(e.status == "cancelled" for e in done),
            "expired": len(expired), "queue": dg.MetadataValue.json(queue), "pending": queue.get("pending", 0),
            "outcomes": dg.MetadataValue.md(table)})

    @dg.asset_check(asset=REVIEW_ACTIONS, name="audit_log_verified", blocking=False,
                    description="The audit log's hash chain is intact: no entry edited, deleted, inserted or "
                                "reordered, and nothing cut from its end (against the anchor file).")
    def audit_log_verified(warehouse: WarehouseResource, policy_engine: PolicyEngineResource) -> dg.AssetCheckResult:
        from factory_pipelines.lib.governance.audit import verify

        with warehouse.connect(read_only=True) as con:
            report = verify(con, Path(policy_engine.audit_anchor))
        problems = [f"seq {p.seq}: {p.kind}: {p.detail}" for p in report.problems[:20]]
        return dg.AssetCheckResult(passed=report.ok, severity=dg.AssetCheckSeverity.ERROR, metadata={
            "entries": report.entries, "head_seq": report.head_seq, "seconds": round(report.seconds, 3),
            "problems": dg.MetadataValue.json(problems)})

    return [review_actions, audit_log_verified]


def build_review_sensor(job: Any) -> dg.SensorDefinition:
    @dg.sensor(name="review_actions_sensor", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts a sweep of the review queue when approved items wait to run or pending ones are "
                           "past their deadline (checks every 30 s; skips while a run holds the warehouse).")
    def review_actions_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> Any:
        import duckdb

        busy = context.instance.get_runs(filters=dg.RunsFilter(job_name=REVIEW_JOB, statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
        if busy:
            return dg.SkipReason("a sweep of the review queue is already running")
        try:  # one try, no waiting: a run holding the warehouse just means "look again in 30 s"
            with duckdb.connect(warehouse.database, read_only=True) as con:
                waiting = con.execute(
                    "SELECT count(*) FILTER (WHERE status = 'approved'), "
                    "count(*) FILTER (WHERE status = 'pending' AND expires_at <= now()) FROM governance.review_queue"
                ).fetchone()
        except duckdb.CatalogException:
            return dg.SkipReason("no review queue yet")
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            return dg.SkipReason(f"warehouse busy ({str(exc)[:80]}); trying again in 30 s")
        approved, overdue = waiting
        if not approved and not overdue:
            return dg.SkipReason("nothing approved or overdue")
        return dg.RunRequest(tags={"approved": str(approved), "overdue": str(overdue)})

    return review_actions_sensor
