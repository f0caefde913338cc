"""`factory alerts list|ack`: the on-call engineer's view of failed checks.

`list` shows the rows `check_alerts_sensor` wrote to `alerts.check_failures` (open ones by default, newest
first); `ack` closes one with who and why, as an audit event, so an open error-level alert can hold up what
depends on it (promotion) until a person has looked.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_pipelines.settings import get_settings

alerts = typer.Typer(help="Alerts on failed asset checks (written by check_alerts_sensor).", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts, name="alerts")


def _warehouse(read_only: bool) -> Any:
    from factory_pipelines.resources.warehouse import WarehouseResource

    return WarehouseResource(database=get_settings().warehouse).connect(read_only=read_only)


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _webhook(row: dict[str, Any]) -> str:
    status = row["delivery_status"]
    if status in ("none", "pending"):
        return status
    return f"{status} ({row['delivery_attempts']} POST{'s' if row['delivery_attempts'] != 1 else ''})"


@alerts.command("list")
def alerts_list(
    everything: Annotated[bool, typer.Option("--all", help="Acknowledged alerts too.")] = False,
    since: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
                                                   help="Recorded at or after this day or time (UTC).")] = None,
    agent: Annotated[str | None, typer.Option(help="One agent's alerts.")] = None,
    asset: Annotated[str | None, typer.Option(help="One asset key, or every key under it (e.g. drift).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Alerts on failed checks, newest first: open ones unless --all."""
    from factory_pipelines.lib.alerts.store import list_alerts

    database = get_settings().warehouse
    rows: list[dict[str, Any]] = []
    if "://" in database or database.startswith("md:") or Path(database).exists():
        with _warehouse(read_only=True) as con:
            rows = list_alerts(con, open_only=not everything, agent=agent, asset=asset,
                               since=since.replace(tzinfo=UTC) if since else None)
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table(title=f"Alerts: {'all' if everything else 'open'} ({len(rows)})")
    for column in ("alert", "recorded (UTC)", "severity", "check", "partition", "observed", "bound", "acked",
                   "webhook"):
        table.add_column(column, overflow="fold")
    for row in rows:
        colour = "red" if row["severity"] == "error" else "yellow"
        acked = f"{row['acked_by']} {row['acked_at']:%m-%d %H:%M}" if row["acked_at"] else ""
        table.add_row(row["alert_id"][:12], f"{row['created_at']:%Y-%m-%d %H:%M}",
                      f"[{colour}]{row['severity']}[/{colour}]", escape(f"{row['asset_key']}:{row['check_name']}"),
                      row["partition"] or "", escape(_short(row["observed"])), escape(_short(row["bound"])),
                      escape(acked), _webhook(row))
    console.print(table)
    if rows and not everything:
        console.print("Acknowledge one with `factory alerts ack <alert> --by <you> --note <why>`.")


@alerts.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="Alert id (or its first 6+ characters).")],
    by: Annotated[str | None, typer.Option("--by", help="Who acknowledges (default: FACTORY_OPERATOR, the login "
                                                       "name); recorded in the audit log.")] = None,
    note: Annotated[str, typer.Option("--note", help="Why, or what was done (recorded in the audit log).")] = "",
) -> None:
    """Acknowledge an open alert: who and why on the row, and an `alert_acked` audit event."""
    from factory_pipelines.lib.alerts.store import AlertError, ack

    settings = get_settings()
    try:
        with _warehouse(read_only=False) as con:
            row = ack(con, alert_id, by=by or settings.operator, note=note, anchor=Path(settings.audit_anchor))
    except AlertError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]acknowledged[/green] {row['alert_id'][:12]} ({escape(row['asset_key'])}:"
                  f"{escape(row['check_name'])} {row['partition'] or ''}, {row['severity']}) by {escape(row['acked_by'])}"
                  + (f": {escape(note)}" if note else ""))
