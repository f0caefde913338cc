"""Conformed tables: key `staging/<source>` = table `staging.<source>`, one partition per raw partition."""

from datetime import date
from pathlib import Path

import dagster as dg
import yaml

from factory_pipelines.lib.data.conform import STAGING_DDL, conform_partition
from factory_pipelines.resources.warehouse import WarehouseResource

GROUP = "staging"
CONFORM_FILE = Path(__file__).with_name("conform.yaml")

DESCRIPTIONS = {
    "tickets": "One row per ticket, first delivery only, trimmed; with follow-up flag and body length.",
    "customers": "One row per customer change, trimmed and lower-cased emails; latest row = current state.",
    "orders": "One row per order state change, with amounts converted to USD at the configured rates.",
    "kb_articles": "One row per article revision; the retrieval corpus for agents.",
}


def staging_schema(source: str) -> dg.TableSchema:
    columns = [part.split() for part in STAGING_DDL[source].replace("\n", " ").split(",")]
    return dg.TableSchema(columns=[dg.TableColumn(name=c[0], type=c[1]) for c in columns if c])


def build_staging_asset(source: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=["staging", source],
        deps=[dg.AssetKey(["raw", source])],
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"duckdb"},
        owners=["team:data-platform"],
        tags={"layer": "staging"},
        description=DESCRIPTIONS[source],
        metadata={"dagster/column_schema": staging_schema(source), "dagster/table_name": f"staging.{source}"},
    )
    def staging_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        fx_rates = yaml.safe_load(CONFORM_FILE.read_text())["fx_rates_to_usd"]
        with warehouse.connect() as con:
            stats = conform_partition(con, source, date.fromisoformat(context.partition_key), fx_rates)
        return dg.MaterializeResult(metadata={"dagster/row_count": stats["rows_out"], **stats})

    return staging_asset
