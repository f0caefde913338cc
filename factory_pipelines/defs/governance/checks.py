"""The governance check: `audit_log_verified` on `governance/review_actions`, re-run after every sweep.

Not partitioned (one log) and not blocking: a broken chain is an alarm for people, it must not stop the
sweep that executes what reviewers approved.
"""

from pathlib import Path

import dagster as dg

from factory_pipelines.defs.governance.assets import REVIEW_ACTIONS
from factory_pipelines.resources.governance import PolicyEngineResource
from factory_pipelines.resources.warehouse import WarehouseResource


def build_audit_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=REVIEW_ACTIONS, name="audit_log_verified", blocking=False,
                    description="The audit log's hash chain is intact: no entry edited, deleted, inserted or "
                                "reordered, and nothing cut from its end (against the anchor file).")
    def audit_log_verified(warehouse: WarehouseResource, policy_engine: PolicyEngineResource) -> dg.AssetCheckResult:
        from factory_pipelines.lib.governance.audit.verify import verify

        with warehouse.connect(read_only=True) as con:
            report = verify(con, Path(policy_engine.audit_anchor))
        problems = [f"seq {p.seq}: {p.kind}: {p.detail}" for p in report.problems[:20]]
        return dg.AssetCheckResult(passed=report.ok, severity=dg.AssetCheckSeverity.ERROR, metadata={
            "entries": report.entries, "head_seq": report.head_seq, "seconds": round(report.seconds, 3),
            "problems": dg.MetadataValue.json(problems)})

    return audit_log_verified
