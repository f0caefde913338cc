"""Feature tables (Parquet, one file per day), their Feast registration and the online store.

`features/customer_daily` and `features/ticket_features` are computed in DuckDB from the staging
tables; `features/feast_registry` applies `feature_repo/` to the Feast registry; `features/online_store`
materializes each day into the online store that agents read at run time. Feast is imported inside
the asset bodies only.
"""

import hashlib
from datetime import date
from pathlib import Path

import dagster as dg
import yaml

from factory_pipelines.lib.data.features import (
    customer_daily_sql,
    day_window,
    ticket_features_sql,
    write_feature_partition,
)
from factory_pipelines.lib.sql import lit
from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.warehouse import WarehouseResource

GROUP = "features"
LEXICON_FILE = Path(__file__).with_name("lexicon.yaml")
FEATURE_VIEWS = {"customer_daily": "customer_daily_profile", "ticket_features": "ticket_text_stats"}
FEED = {"customer_daily": "customers", "ticket_features": "tickets"}  # the source each table cannot do without


def _feature_table(warehouse: WarehouseResource, sql: str, directory: Path, partition: date) -> dg.MaterializeResult:
    """Write one day of a feature table and describe the file it wrote."""
    with warehouse.connect() as con:
        stats = write_feature_partition(con, sql, directory, partition)
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(stats['path'])})").fetchall()
    schema = dg.TableSchema(columns=[dg.TableColumn(name=r[0], type=r[1]) for r in rows])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": stats["rows"], "path": stats["path"], "dagster/column_schema": schema}
    )


def build_feature_assets(
    partitions: dg.PartitionsDefinition, feature_data_dir: Path, feature_repo: Path, staged: set[str]
) -> list[dg.AssetsDefinition]:
    """The feature assets the fed sources allow: customer features need customers, ticket features tickets."""
    tables = {
        "customer_daily": customer_daily_asset(partitions, feature_data_dir, staged),
        "ticket_features": ticket_features_asset(partitions, feature_data_dir),
    }
    fed = {name: asset for name, asset in tables.items() if FEED[name] in staged}
    registry = feast_registry_asset(feature_repo)
    online = online_store_asset(partitions, [*fed.values(), registry], [FEATURE_VIEWS[name] for name in fed])
    return [*fed.values(), registry, online]


def customer_daily_asset(
    partitions: dg.PartitionsDefinition, feature_data_dir: Path, staged: set[str]
) -> dg.AssetsDefinition:
    """features/customer_daily: the customer snapshot of each day, from the staged sources there are."""

    @dg.asset(
        key=["features", "customer_daily"],
        deps=[dg.AssetKey(["staging", s]) for s in ("customers", "orders", "tickets") if s in staged],
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        owners=["team:data-platform"],
        description=(
            "One row per customer per day: plan, tenure, spend 30/90 days, refunds 90 days, tickets 7/30 "
            "days, from everything known by the end of that day (stamped 23:59:59.999999 UTC). "
            f"File: {feature_data_dir}/customer_daily/<day>.parquet."
        ),
        group_name=GROUP,
        tags={"layer": "features"},
    )
    def customer_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        partition = date.fromisoformat(context.partition_key)
        sql = customer_daily_sql(partition, with_orders="orders" in staged, with_tickets="tickets" in staged)
        return _feature_table(warehouse, sql, feature_data_dir / "customer_daily", partition)

    return customer_daily


def ticket_features_asset(partitions: dg.PartitionsDefinition, feature_data_dir: Path) -> dg.AssetsDefinition:
    """features/ticket_features: text and metadata signals of each day's tickets."""

    @dg.asset(
        key=["features", "ticket_features"],
        deps=[dg.AssetKey(["staging", "tickets"])],
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        owners=["team:data-platform"],
        description=(
            "One row per ticket: length, channel, hour, weekday, shouting, sentiment proxy, refund and amount "
            f"mentions, order reference, follow-up. File: {feature_data_dir}/ticket_features/<day>.parquet."
        ),
        group_name=GROUP,
        tags={"layer": "features"},
    )
    def ticket_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        partition = date.fromisoformat(context.partition_key)
        lexicon = yaml.safe_load(LEXICON_FILE.read_text())
        sql = ticket_features_sql(partition, lexicon["positive"], lexicon["negative"])
        return _feature_table(warehouse, sql, feature_data_dir / "ticket_features", partition)

    return ticket_features


def feast_registry_asset(feature_repo: Path) -> dg.AssetsDefinition:
    """features/feast_registry: the repo applied; its code version is the hash of the repo's files."""
    repo_files = sorted(feature_repo.glob("*.py")) + [feature_repo / "feature_store.yaml"]
    repo_hash = hashlib.sha256(b"".join(p.read_bytes() for p in repo_files if p.exists())).hexdigest()[:12]

    @dg.asset(
        key=["features", "feast_registry"],
        kinds={"feast"},
        owners=["team:ml-platform"],
        code_version=repo_hash,
        description=(
            f"The Feast registry: entities, feature views and feature services of {feature_repo.name}/ applied "
            "(idempotent; re-run after editing the repo)."
        ),
        group_name=GROUP,
        tags={"layer": "features"},
    )
    def feast_registry(feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        applied = feature_store.apply()
        return dg.MaterializeResult(metadata={k: dg.MetadataValue.json(v) for k, v in applied.items()})

    return feast_registry


def online_store_asset(
    partitions: dg.PartitionsDefinition, deps: list[dg.AssetsDefinition], online_views: list[str]
) -> dg.AssetsDefinition:
    """features/online_store: each day materialized online, unless the store already holds a newer day."""

    @dg.asset(
        key=["features", "online_store"],
        deps=deps,
        partitions_def=partitions,
        kinds={"feast", "sqlite"},
        owners=["team:ml-platform"],
        description=(
            "Each day's feature rows materialized into the Feast online store, where agents read them "
            "(feature service support_agent_v1). A backfill of a day older than what is online updates "
            "the offline tables only, so online values never move back in time."
        ),
        group_name=GROUP,
        tags={"layer": "features"},
    )
    def online_store(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        start, end = day_window(date.fromisoformat(context.partition_key))
        views, skipped = [], []
        for view in online_views:
            until = feature_store.materialized_until(view)
            (skipped if until is not None and until > end else views).append(view)
        if views:
            feature_store.materialize(start, end, views)
        if skipped:
            context.log.info(f"online store already holds newer days for {skipped}; left as is")
        return dg.MaterializeResult(
            metadata={
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "materialized_views": dg.MetadataValue.json(views),
                "skipped_views_newer_online": dg.MetadataValue.json(skipped),
            }
        )

    return online_store
