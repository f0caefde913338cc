"""`factory purge [--dry-run] [--days N] [--json]`: retention by hand (the `retention_job` runs it nightly).

Prints, per table, the rows whose payload a purge deletes or masks and the MLflow traces it deletes; without
`--dry-run` it applies that and prints the seq of its `retention_purge` audit event (the audit anchor moves).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from factory_pipelines.settings import get_settings

console = Console(width=None if sys.stdout.isatty() else 140)


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; change nothing.")] = False,
    days: Annotated[int | None, typer.Option("--days", min=0, help="Days kept (default FACTORY_RETENTION_DAYS; "
                                                                   "0 keeps forever).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete or mask payloads (ticket text, prompts, model answers, reply bodies, traces) older than the
    retention; decisions, effects' ids and amounts and the audit log are kept."""
    from factory_pipelines.lib.governance import retention
    from factory_pipelines.resources.warehouse import WarehouseResource

    settings = get_settings()
    kept = settings.retention_days if days is None else days
    with WarehouseResource(database=settings.warehouse).connect(read_only=dry_run) as con:
        planned = retention.plan(con, datetime.now(UTC), kept, tracking_uri=settings.mlflow_tracking_uri)
        seq = None if dry_run or not kept else retention.purge(
            con, planned, actor=f"operator:{settings.operator}", tracking_uri=settings.mlflow_tracking_uri,
            anchor=settings.audit_anchor)
    if as_json:
        print(json.dumps({**planned.counts(), "dry_run": dry_run, "audit_seq": seq}, indent=2))
        return
    if not kept:
        console.print("retention_days is 0: everything is kept forever, nothing to purge")
        return
    title = (f"{'would purge' if dry_run else 'purged'}: payloads older than {kept} days "
             f"(before {planned.cutoff:%Y-%m-%d %H:%M} UTC)")
    table = Table(title=title)
    for column, justify in (("table", "left"), ("payload", "left"), ("action", "left"), ("rows", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in planned.rows:
        table.add_row(row.table, row.what, row.action, str(row.rows))
    for experiment, count in planned.traces.items():
        table.add_row(f"mlflow {experiment}", "traces", "delete", str(count))
    console.print(table)
    if seq is None:
        console.print(f"dry run: {planned.total} rows and {sum(planned.traces.values())} traces would go; "
                      "nothing changed")
    else:
        console.print(f"{planned.total} rows and {sum(planned.traces.values())} traces purged; audit event "
                      f"retention_purge at seq {seq}")
