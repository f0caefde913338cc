"""Data contracts as blocking asset checks: a Great Expectations suite per table, plus quarantine rates.

Every check is partitioned like its asset and validates only that day's rows. A failing check has
severity ERROR and `blocking=True`, so in the same run nothing downstream of the table is built; its
metadata names the failed expectations, unexpected counts and example rows. Great Expectations is
imported inside the check (it takes seconds), never when the code location loads.
"""

from datetime import date
from pathlib import Path

import dagster as dg

from factory_pipelines.lib.data.ingest import QUARANTINE_TABLE
from factory_pipelines.lib.data.sources import SourceSpec
from factory_pipelines.resources.warehouse import WarehouseResource


def contract_check(
    asset_key: dg.AssetKey, table: str, suite_path: Path, index_columns: list[str],
    partitions: dg.PartitionsDefinition, source: SourceSpec | None = None, follows: SourceSpec | None = None,
) -> dg.AssetChecksDefinition:
    """`contract_<suite>`: the table's rows of one day validated against its suite, adapted to the source
    declaration the table follows (`source` for a raw table, which also adds the declaration's row rules;
    `follows` for a conformed table). Metadata `adjusted_by_declaration` lists what the declaration dropped
    or relaxed."""
    suite = suite_path.stem
    declaration = source or follows

    @dg.asset_check(
        asset=asset_key,
        name=f"contract_{suite}",
        blocking=True,
        partitions_def=partitions,
        description=f"Great Expectations suite {suite} ({suite_path.name}) over one day of {table}.",
        metadata={"suite_file": str(suite_path)},
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        from factory_pipelines.lib.data.conform import STAGING_ORIGIN
        from factory_pipelines.lib.data.contracts import Declaration, declared_expectations, validate_frame

        partition = date.fromisoformat(context.partition_key)
        frame = warehouse.query_df(f"SELECT * FROM {table} WHERE _partition = ?", [partition])
        declared = declared_expectations(source) if source is not None else None
        follow = None
        if declaration is not None:
            origin = STAGING_ORIGIN.get(declaration.name, {}) if table.startswith("staging.") else {}
            rows_read = None  # a raw table's day: loaded + quarantined, so an all-quarantined day is not quiet
            if source is not None:
                rows_read = len(frame) + sum(quarantined_by_rule(warehouse, source.name, partition).values())
            follow = Declaration(declaration, origin, rows_read)
        result = validate_frame(frame, suite_path, index_columns, declared, follow)
        failed = [f.model_dump(mode="json") for f in result.failed]  # each with up to 5 example rows
        return dg.AssetCheckResult(
            passed=result.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=result.summary(),
            metadata={
                "suite": suite,
                "rows_validated": result.rows,
                "expectations_evaluated": result.evaluated,
                "expectations_failed": len(result.failed),
                "failed_expectations": dg.MetadataValue.json(failed),
                "summary": dg.MetadataValue.md(_markdown(result)),
                "adjusted_by_declaration": dg.MetadataValue.json(result.adjustments),
            },
        )

    return _check


def quarantined_by_rule(warehouse: WarehouseResource, source: str, partition: date) -> dict[str, int]:
    """The day's rows of `source` that went to quarantine, per rule: with the loaded rows, what its files held."""
    with warehouse.connect() as con:
        return dict(con.execute(f"SELECT rule, count(*) FROM {QUARANTINE_TABLE} WHERE source = ? AND partition = ? "
                                "GROUP BY rule", [source, partition]).fetchall())


def _markdown(result) -> str:
    adjusted = "".join(f"\n- {note}" for note in result.adjustments)
    adjusted = f"\n\nAdjusted by the source declaration:{adjusted}" if adjusted else ""
    if result.success:
        return f"All {result.evaluated} expectations of `{result.suite}` passed on {result.rows} rows.{adjusted}"
    lines = ["| expectation | column | unexpected | observed | expected |", "|---|---|---|---|---|"]
    for f in result.failed:
        expected = {k: v for k, v in f.kwargs.items() if k not in ("column", "batch_id")}
        lines.append(
            f"| {f.expectation} | {f.column or ''} | {f.unexpected_count if f.unexpected_count is not None else ''} "
            f"| {str(f.observed)[:80] if f.observed is not None else ''} | {str(expected)[:120]} |"
        )
    return "\n".join(lines) + adjusted


def quarantine_rate_check(spec: SourceSpec, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """`quarantine_rate_within_bound`: a day whose quarantined share passes the bound fails its contract."""

    @dg.asset_check(
        asset=dg.AssetKey(["raw", spec.name]),
        name="quarantine_rate_within_bound",
        blocking=True,
        partitions_def=partitions,
        description=(
            f"At most {spec.max_quarantine_rate:.1%} of a day's {spec.name} rows may be quarantined "
            f"(max_quarantine_rate in the source declaration; days under {spec.quarantine_rate_min_rows} rows "
            f"are judged as if they had {spec.quarantine_rate_min_rows})."
        ),
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        partition = date.fromisoformat(context.partition_key)
        with warehouse.connect() as con:
            loaded = con.execute(f"SELECT count(*) FROM {spec.table} WHERE _partition = ?", [partition]).fetchall()[0][0]
        by_rule = quarantined_by_rule(warehouse, spec.name, partition)
        quarantined = sum(by_rule.values())
        read = loaded + quarantined
        rate = quarantined / read if read else 0.0
        allowed = spec.allowed_quarantined(read)
        return dg.AssetCheckResult(
            passed=quarantined <= allowed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{quarantined} of {read} rows quarantined ({rate:.2%}); at most {allowed:.1f} allowed "
                f"({spec.max_quarantine_rate:.2%} of max({read}, {spec.quarantine_rate_min_rows}) rows)"
            ),
            metadata={
                "rows_read": read,
                "rows_quarantined": quarantined,
                "quarantine_rate": round(rate, 6),
                "max_quarantine_rate": spec.max_quarantine_rate,
                "allowed_quarantined_rows": round(allowed, 2),
                "quarantined_by_rule": dg.MetadataValue.json(by_rule),
            },
        )

    return _check
