"""`factory drift [--agent A] [--date D]`: one night of drift by hand (the nightly schedules run it at 06:00).

It materializes the `drift/...` assets of the agents for the day (`drift_job`, on the factory's instance, so the
Dagster UI shows the run and the alerts are recorded as `factory run` records them), then prints per agent the
verdict, every record that is not ok, and the report's path. It exits 1 when a check failed at ERROR or when a
window had nothing to judge (the message names the table and the window).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_pipelines.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 140)
STYLE = {"ok": "green", "warn": "yellow", "error": "red", "insufficient": "dim"}


def register(app: typer.Typer) -> None:
    app.command("drift")(drift)


def drift(
    agent: Annotated[list[str] | None, typer.Option("--agent", help="An agent with a drift/<agent>.yaml "
                                                                    "(repeatable); default: all of them.")] = None,
    day: Annotated[datetime | None, typer.Option("--date", formats=["%Y-%m-%d"],
                                                 help="The day judged; default: yesterday (UTC), as the "
                                                      "nightly schedule does.")] = None,
) -> None:
    """Judge a day's drift per agent against its reference window; print the verdicts and the reports."""
    from factory_pipelines.defs.drift.schedules import DRIFT_JOB
    from factory_pipelines.instance import prepare_instance
    from factory_pipelines.runs import failures_table, load_definitions, run_partitions

    settings = get_settings()
    judged = day.date() if day else datetime.now(UTC).date() - timedelta(days=1)
    if judged < settings.start_date:
        raise typer.BadParameter(f"{judged} is before the first partition {settings.start_date} "
                                 "(FACTORY_START_DATE)", param_hint="--date")
    prepare_instance(settings)
    definitions = load_definitions()
    if DRIFT_JOB not in {j.name for j in definitions.jobs}:
        raise typer.BadParameter(f"no agent has a drift configuration in {settings.drift_config_dir} "
                                 "(drift/<agent>.yaml)", param_hint="--agent")
    keys = drift_keys(definitions)
    unknown = sorted(set(agent or ()) - set(keys))
    if unknown:
        raise typer.BadParameter(f"no drift asset for {unknown}; agents with drift: {sorted(keys)}",
                                 param_hint="--agent")
    chosen = agent or sorted(keys)
    selection = [k for a in chosen for k in keys[a]]
    (outcome,) = run_partitions(DRIFT_JOB, [judged.isoformat()], definitions=definitions, asset_selection=selection)
    with _warehouse(settings) as con:
        nights = {a: _night(con, a, judged) for a in chosen}
    for name in chosen:
        _print_night(nights[name], report_of(settings, name, judged))
    failures = failures_table([outcome], title=f"Failed drift checks {judged}")
    if failures is not None:
        console.print(failures)
    if not outcome.success:
        console.print(f"[red]drift_job {judged} failed: {escape(outcome.error)}[/red] (run {outcome.run_id})")
        raise typer.Exit(1)
    unjudged = [(n, record) for n in nights.values() if n is not None and (record := _window_record(n))]
    for night, record in unjudged:
        console.print(f"[red]{night.agent} {judged}: nothing to judge: {escape(record.message)}[/red]")
    if unjudged or any(n is not None and n.verdict == "error" for n in nights.values()):
        raise typer.Exit(1)


def drift_keys(definitions: Any) -> dict[str, list[Any]]:
    """agent -> its `drift/...` asset keys (the agent is the key's last part: `drift/<agent>`)."""
    keys: dict[str, list[Any]] = {}
    for key in definitions.resolve_all_asset_keys():
        if key.path[0] == "drift" and len(key.path) >= 2:
            keys.setdefault(key.path[-1], []).append(key)
    return keys


def report_of(settings: Settings, agent: str, day: date) -> Path:
    from factory_pipelines.defs.drift.assets import report_path

    return report_path(Path(settings.drift_dir), agent, day)


def _warehouse(settings: Settings) -> Any:
    from factory_pipelines.resources.warehouse import WarehouseResource

    return WarehouseResource(database=settings.warehouse).connect(read_only=True)


def _night(con: Any, agent: str, day: date) -> Any:
    from factory_pipelines.lib.drift.store import night
    from factory_pipelines.lib.sql import table_exists

    if not table_exists(con, "drift", "results"):
        return None
    run = night(con, agent, day)
    return run if run.results else None


def _window_record(night: Any) -> Any:
    from factory_pipelines.defs.drift.checks import WINDOW_METRIC

    return next((r for r in night.results if r.metric == WINDOW_METRIC), None)


def _print_night(night: Any, report: Path) -> None:
    from factory_pipelines.lib.drift.records import SEVERITY

    if night is None:
        console.print(f"no drift recorded for this agent and day (see the run's errors above); report {report}")
        return
    table = Table(title=f"drift/{night.agent} {night.day}: [{STYLE[night.verdict]}]{night.verdict}[/] "
                        f"(reference {night.reference}, current {night.current})")
    for column, justify in (("record", "left"), ("status", "left"), ("value", "right"), ("warn", "right"),
                            ("error", "right"), ("rows ref / cur", "right"), ("why", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    shown = [r for r in night.results if r.status != "ok"]
    for r in sorted(shown, key=lambda r: SEVERITY[r.status], reverse=True):
        value = "" if r.value is None else f"{r.value:.4g}"
        table.add_row(r.key, f"[{STYLE[r.status]}]{r.status}[/]", value, f"{r.warn:g}", f"{r.error:g}",
                      f"{r.n_reference} / {r.n_current}", escape(r.message or ""))
    ok = len(night.results) - len(shown)
    table.caption = f"{ok} of {len(night.results)} records ok" + (" (not listed)" if shown and ok else "")
    console.print(table)
    console.print(f"report: {report}", soft_wrap=True)


def drift_summary(settings: Settings, days: list[str]) -> Table | None:
    """Per agent, the drift verdict of each day of the range (what `factory run` prints), or None without
    drift; the caption gives the reports of the days that did not pass."""
    from factory_pipelines.lib.drift.store import verdicts
    from factory_pipelines.lib.sql import table_exists

    with _warehouse(settings) as con:
        found = {(a, d.isoformat()): v for a, d, v, _ in verdicts(con) if d.isoformat() in days}
        held = con.execute("SELECT partition, count(*) FROM agents.tool_calls WHERE list_contains(policies, "
                           "'data/drift') AND partition::VARCHAR IN (SELECT unnest(?)) GROUP BY ALL ORDER BY 1",
                           [days]).fetchall() if table_exists(con, "agents", "tool_calls") else []
    agents = sorted({a for a, _ in found})
    if not agents:
        return None
    table = Table(title="Drift verdict per day (ok, warn, error; insufficient: too little to judge)")
    table.add_column("agent")
    for key in days:
        table.add_column(key[5:], justify="center")
    for name in agents:
        cells = [found.get((name, key), "-") for key in days]
        table.add_row(name, *(f"[{STYLE.get(c, 'dim')}]{c}[/]" for c in cells))
    flagged = [(a, d) for (a, d), v in sorted(found.items()) if v in ("warn", "error")]
    latest = [(a, max(d for b, d in found if b == a)) for a in agents]
    shown = dict.fromkeys([*flagged[-3:], *latest])
    escalated = ", ".join(f"{n} on {d}" for d, n in held)
    table.caption = (f"refunds escalated by data/drift (a drifted night before the day): {escalated or 'none'}\n"
                     "reports: " + ", ".join(str(report_of(settings, a, date.fromisoformat(d))) for a, d in shown))
    return table
