"""The governance assets: `governance/review_actions`, one sweep of the human review queue.

Pending items past their deadline expire (denied), and every approved item runs once through the outbox
after its kill switches and policies are checked again (a switch turned on, or a policy that now denies,
cancels it). The queue is filled by the agent runs, so the sweep sits downstream of every `agents/<name>`
(all their days); it never needs them in its own run. Its trigger is in `sensors.py`, its check in
`checks.py`.
"""


from pathlib import Path

import dagster as dg

from factory_pipelines.resources.governance import PolicyEngineResource
from factory_pipelines.resources.warehouse import WarehouseResource

REVIEW_ACTIONS = dg.AssetKey(["governance", "review_actions"])


def build_review_actions(manifests_dir: Path, agent_runs: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The sweep, downstream of the agent runs that escalate into the queue: every partition of each
    (`AllPartitionMapping`), as a dependency only, so the sweep runs on its own."""

    @dg.asset(key=REVIEW_ACTIONS, group_name="governance", kinds={"duckdb", "python"},
              deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in agent_runs],
              tags={"layer": "governance"}, owners=["team:governance"],
              description="One sweep of the review queue (governance.review_queue): overdue escalations expire, "
                          "approved ones are executed exactly once through the outbox, after kill switches and "
                          "policies are checked again. Every outcome is an audit event.")
    def review_actions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       policy_engine: PolicyEngineResource) -> dg.MaterializeResult:
        from factory_pipelines.lib.agents.manifests import load_manifests
        from factory_pipelines.lib.governance.audit.chain import save_anchor
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

    return review_actions
