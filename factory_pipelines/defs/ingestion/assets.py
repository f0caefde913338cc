"""Raw assets: one daily-partitioned asset per declared source, key `raw/<source>` = table `raw.<source>`.

A source whose declaration says `partition_time: {out_of_partition: warn}` also gets the warning check
`timestamps_in_partition` on its raw asset, evaluated by the load itself (the rows stay loaded); with
`error`, such rows are quarantined as `out_of_partition` and count against the quarantine-rate contract.
"""

import hashlib
from datetime import date

import dagster as dg

from factory_pipelines.lib.data.ingest import QUARANTINE_TABLE, LoadReport, load_partition
from factory_pipelines.lib.data.sources import SourceSpec
from factory_pipelines.resources.warehouse import WarehouseResource

GROUP = "ingestion"


def column_schema(spec: SourceSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description,
                constraints=dg.TableColumnConstraints(
                    nullable=not c.required,
                    unique=spec.primary_key == [c.name],
                    other=[r for r in _rules(c) if r],
                ),
            )
            for c in spec.columns
        ]
    )


def _rules(column) -> list[str]:
    return [
        f"in {column.enum}" if column.enum else "",
        f">= {column.min}" if column.min is not None else "",
        f"<= {column.max}" if column.max is not None else "",
        f"matches {column.pattern}" if column.pattern else "",
        f"at most {column.max_length} chars" if column.max_length else "",
    ]


TIME_CHECK = "timestamps_in_partition"


def report_metadata(report: LoadReport) -> dict[str, dg.MetadataValue | int | float | str]:
    return {
        "dagster/row_count": report.rows_loaded,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "quarantine_rate": round(report.quarantine_rate, 6),
        "quarantined_by_rule": dg.MetadataValue.json(report.quarantined_by_rule),
        "files": dg.MetadataValue.json(report.files),
        "extra_columns_kept_in__extra": dg.MetadataValue.json(report.extra_columns),
        "empty_files": dg.MetadataValue.json(report.empty_files),
        "defaulted_columns": dg.MetadataValue.json(report.defaulted_columns),
        "data_version": report.data_version,
        "quarantine_table": QUARANTINE_TABLE,
    }


def time_check_spec(spec: SourceSpec, partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The warning check of a source whose declaration loads out-of-partition rows (`out_of_partition: warn`),
    partitioned like its asset so each day's result is recorded for that day."""
    rule = spec.partition_time
    if rule is None or rule.out_of_partition != "warn":
        return []
    lag = f" or up to {rule.lag_days} day(s) before it" if rule.lag_days else ""
    return [dg.AssetCheckSpec(
        TIME_CHECK, asset=dg.AssetKey(["raw", spec.name]), blocking=False, partitions_def=partitions,
        description=f"Every loaded row's {rule.column} falls on its landing folder's day{lag} (partition_time in "
                    f"sources/{spec.name}.yaml; warn: such rows are loaded and reported here).",
    )]


def time_check_result(spec: SourceSpec, report: LoadReport) -> dg.AssetCheckResult:
    found = report.out_of_partition
    rows, column = found.get("rows", 0), spec.partition_time.column
    window = f"{found['allowed_from']} .. {found['allowed_to']}"
    text = (f"{rows} of {report.rows_loaded} loaded rows have {column} outside {window} (earliest "
            f"{found.get('earliest')}, latest {found.get('latest')})" if rows else
            f"every loaded row's {column} is within {window}")
    return dg.AssetCheckResult(
        check_name=TIME_CHECK, passed=rows == 0, severity=dg.AssetCheckSeverity.WARN, description=text,
        metadata={"rows_out_of_partition": rows, "column": column, "allowed_from": found["allowed_from"],
                  "allowed_to": found["allowed_to"], "examples": dg.MetadataValue.json(found.get("examples", []))},
    )


def build_raw_asset(
    spec: SourceSpec, partitions: dg.PartitionsDefinition, landing_dir: str
) -> dg.AssetsDefinition:
    check_specs = time_check_spec(spec, partitions)

    @dg.asset(
        key=["raw", spec.name],
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"duckdb", spec.format},
        owners=[f"team:{spec.owner}"],
        tags={"layer": "raw"},
        description=(
            f"{spec.description} Loaded from {landing_dir}/{spec.name}/<day>/{spec.file_pattern}; rows that "
            f"break the declared schema go to {QUARANTINE_TABLE} with the rule broken."
        ),
        metadata={"dagster/column_schema": column_schema(spec), "dagster/table_name": spec.table},
        code_version=hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12],
        check_specs=check_specs or None,
    )
    def raw_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        partition = date.fromisoformat(context.partition_key)
        with warehouse.connect() as con:
            report = load_partition(con, spec, landing_dir, partition, context.run.run_id)
        context.log.info(
            f"{spec.name} {partition}: read {report.rows_read}, loaded {report.rows_loaded}, "
            f"quarantined {report.rows_quarantined} {report.quarantined_by_rule}"
        )
        return dg.MaterializeResult(
            metadata=report_metadata(report), data_version=dg.DataVersion(report.data_version),
            check_results=[time_check_result(spec, report)] if check_specs else None,
        )

    return raw_asset
