"""The retention domain's asset: one purge of payloads past `retention_days` (lib/governance/retention.py)."""

from typing import Any

import dagster as dg

from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings

PURGE = dg.AssetKey(["retention", "purge"])


def purge_asset(settings: Settings) -> Any:
    """Unpartitioned: a purge is about the warehouse as of now, not a day of data."""
    days, anchor = settings.retention_days, settings.audit_anchor

    @dg.asset(key=PURGE, group_name="retention", kinds={"duckdb", "mlflow", "python"}, owners=["team:governance"],
              tags={"layer": "governance"},
              description="Deletes or masks payloads older than retention_days: raw and staging ticket text, model "
                          "prompts and answers (agents.model_cache), reply bodies, text arguments of tool calls, "
                          "outbox rows and decided review items, and the MLflow traces of agents/* and evals/*. "
                          "Decisions, effects' ids and amounts and the audit log are kept; one audit event.")
    def purge(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              tracking: TrackingResource) -> dg.MaterializeResult:
        from datetime import UTC, datetime

        from factory_pipelines.lib.governance import retention

        with warehouse.connect() as con:
            planned = retention.plan(con, datetime.now(UTC), days)
            seq = retention.purge(con, planned, actor="job:retention", tracking_uri=tracking.tracking_uri,
                                  anchor=anchor) if days else None
        context.log.info(f"retention {days} days: {planned.total} rows, {sum(planned.traces.values())} traces purged")
        return dg.MaterializeResult(metadata={
            "retention_days": days, "cutoff": planned.cutoff.isoformat(), "rows": planned.total,
            "traces": sum(planned.traces.values()), "audit_seq": seq if seq is not None else -1,
            "per_table": dg.MetadataValue.json(planned.counts()["rows"]),
            "per_experiment": dg.MetadataValue.json(planned.traces)})

    return purge
