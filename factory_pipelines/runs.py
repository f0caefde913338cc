"""Running the factory's jobs in process on its Dagster instance, and reading back what happened.

`run_partitions` executes a job once per day with `execute_in_process` on the persistent instance, the
same job definition the UI launches, so each run is recorded with its events. `status_tables` reads
the instance (materialized partitions, latest check evaluations) and the quarantine table.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
from rich.table import Table

from factory_pipelines.settings import Settings
from factory_pipelines.signals import Interrupted, SignalStop

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the summary reports failures
PID_TAG, HOST_TAG = "factory/pid", "factory/host"


@dataclass
class PartitionOutcome:
    """What one day's run did: assets materialized, checks evaluated, steps that failed or were skipped."""

    partition: str
    run_id: str
    success: bool
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    check_descriptions: dict[str, str] = field(default_factory=dict)
    failed_steps: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    error: str = ""
    interrupted: bool = False  # a SIGINT or SIGTERM arrived while it ran and the run did not succeed
    alerts: int = 0  # failed checks of the run newly recorded in alerts.check_failures


def load_definitions() -> dg.Definitions:
    """The code location's definitions for the current settings (built fresh, so tests can change them)."""
    from factory_pipelines.definitions import build_definitions

    return build_definitions()


def run_partitions(
    job_name: str,
    partitions: list[str | None],
    on_start: Callable[[str], None] = lambda key: None,
    on_done: Callable[[str, bool], None] = lambda key, ok: None,
    definitions: dg.Definitions | None = None,
    stop: SignalStop | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> list[PartitionOutcome]:
    """Run `job_name` for each partition key in order (None: an unpartitioned job), on the instance at
    $DAGSTER_HOME. With `stop`, a SIGINT or SIGTERM ends the loop: the run it arrived in is the last
    outcome (`interrupted` unless it succeeded all the same), the later keys are not run, and `stop.signum`
    says which signal it was. `asset_selection`: only those assets of the job (and their checks)."""
    defs = definitions or load_definitions()
    job = defs.resolve_job_def(job_name)
    outcomes: list[PartitionOutcome] = []
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    with dg.DagsterInstance.get() as instance:
        release_abandoned_runs(instance)
        try:
            for key in partitions:
                if stop is not None and stop.stopped:
                    break
                on_start(key or job_name)
                with stop.running() if stop is not None else nullcontext():
                    result = job.execute_in_process(
                        partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_LOGS, tags=tags,
                        asset_selection=asset_selection,
                    )
                outcome = _outcome(key or "", result)
                outcome.alerts = record_alerts(instance, result.run_id)
                # a signal that came as the run ended leaves it succeeded: report it as finished, as Dagster has it
                outcome.interrupted = stop is not None and stop.stopped and not result.success
                outcomes.append(outcome)
                on_done(key or job_name, result.success)
        except Interrupted:
            pass  # between runs: nothing is half done; `stop.signum` tells the caller
    return outcomes


def record_alerts(instance: dg.DagsterInstance, run_id: str) -> int:
    """The run's failed checks as alert rows (and webhook posts) now, as the alert sensor would on its next
    tick: `factory run` records them with no daemon running; the sensor finds them recorded (same ids)."""
    from factory_pipelines.defs.alerts.sensors import sweep, webhook_of
    from factory_pipelines.settings import get_settings

    settings = get_settings()
    fresh, _ = sweep(instance, settings.warehouse, webhook_of(settings), [run_id])
    return len(fresh)


def release_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs a `factory` process on this machine started and did not live to finish, and free
    their pool slots: a killed run would hold its `model_slots` slot forever and every later agent run
    would wait for it."""
    host, abandoned = socket.gethostname(), []
    in_flight = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    for run in instance.get_runs(filters=in_flight):
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or pid is None or _alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"the factory process {pid} that ran it is gone")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        abandoned.append(run.run_id)
    return abandoned


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _outcome(key: str, result: Any) -> PartitionOutcome:
    outcome = PartitionOutcome(partition=key, run_id=result.run_id, success=result.success)
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            outcome.materialized["/".join(mat.asset_key.path)] = {k: v.value for k, v in mat.metadata.items()}
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{'/'.join(evaluation.asset_key.path)}:{evaluation.check_name}"
            outcome.checks[name] = evaluation.passed
            outcome.check_descriptions[name] = evaluation.description or ""
        elif event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # a failed blocking check: reported with its reason under `checks`
            outcome.failed_steps.append(event.step_key or "")
            while error is not None and error.cause is not None:
                error = error.cause  # the user-code error, not Dagster's wrapper
            outcome.error = outcome.error or (error.message.strip().splitlines()[0] if error else "")
        elif event.event_type_value == "STEP_SKIPPED":
            outcome.skipped_steps.append(event.step_key or "")
    return outcome


def failures_table(outcomes: list[PartitionOutcome], title: str = "Failed checks and steps") -> Table | None:
    """Failed checks and steps with their reasons, or None when nothing failed."""
    failures = Table(title=title)
    for column in ("day", "check or step", "why"):
        failures.add_column(column)
    for o in outcomes:
        for name, ok in o.checks.items():
            if not ok:
                failures.add_row(o.partition, name, o.check_descriptions[name][:300])
        for step in o.failed_steps:
            failures.add_row(o.partition or "-", f"step {step}", o.error[:300])
    alerts = sum(o.alerts for o in outcomes)
    if alerts:
        failures.caption = f"{alerts} new alert(s) recorded: factory alerts list"
    return failures if failures.row_count else None


def models_table(outcome: PartitionOutcome) -> Table:
    """What the models job registered: prompt versions and the classifier with its alias and holdout scores."""
    table = Table(title="Models and prompts (MLflow registry)")
    for column in ("asset", "version", "alias / state", "holdout macro-F1 per target (x the TF-IDF baseline)"):
        table.add_column(column)
    prompts = outcome.materialized.get("registry/prompt_versions", {}).get("prompts") or {}
    for name, info in prompts.items():
        table.add_row(f"prompt {name}", str(info["version"]), "new" if info["created"] else "unchanged", "")
    for key, meta in outcome.materialized.items():
        if key.startswith("models/"):
            ratios = meta.get("macro_f1_vs_baseline") or {}  # the targets the classifier file names
            scores = ", ".join(f"{t} {meta.get(f'holdout_{t}_macro_f1', 0):.3f} ({r:.2f}x)" for t, r in ratios.items())
            table.add_row(key, str(meta.get("model_uri", "")), str(meta.get("alias", "")),
                          f"{scores} on {', '.join(meta.get('holdout_days') or [])}")
    return table


def agents_table(outcomes: list[PartitionOutcome], holdout_days: list[str]) -> Table:
    """Per agent over the days run (one column each): decisions, actions, accuracy on labelled tickets (on
    the classifier's held-out days, and on all days), model calls, tokens, cost and speed."""
    per_agent: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for o in outcomes:
        for key, meta in o.materialized.items():
            if key.startswith("agents/"):
                per_agent.setdefault(key.removeprefix("agents/"), []).append((o.partition, meta))
    table = Table(title="Agent runs (accuracy: category / priority / action on the demo's labelled tickets)")
    table.add_column("")
    columns: list[list[str]] = []
    for agent, runs in sorted(per_agent.items()):
        table.add_column(agent)

        def total(field: str, rs: list[tuple[str, dict[str, Any]]] = runs) -> float:
            return sum(float(m.get(field, 0) or 0) for _, m in rs)

        actions: dict[str, int] = {}
        for _, meta in runs:
            counts = meta.get("actions") or {k.split(":")[0]: v for k, v in (meta.get("tool_calls") or {}).items()
                                             if k.endswith(":ok") and not k.startswith(READ_TOOLS)}
            for name, n in counts.items():
                actions[name] = actions.get(name, 0) + int(n)
        columns.append([
            str(len(runs)), f"{total('decided'):.0f}", f"{total('not_decided'):.0f}",
            ", ".join(f"{k} {v}" for k, v in sorted(actions.items())),
            _accuracy([(d, m) for d, m in runs if d in holdout_days]), _accuracy(runs),
            f"{total('model_calls'):.0f} ({total('cache_hits'):.0f} from cache)",
            f"{total('tokens_in'):.0f} in, {total('tokens_out'):.0f} out", f"{total('cost_usd'):.5f}",
            f"{total('tickets') / max(total('wall_s'), 1e-9):.1f}",
            f"{total('gate_allowed'):.0f} / {total('gate_denied'):.0f} / {total('gate_escalated'):.0f}"
            + (f" ({total('policy_alerts'):.0f} ALERTS)" if total("policy_alerts") else ""),
            ", ".join(sorted({str(m.get("policy_set")) for _, m in runs if m.get("policy_set")})) or "-",
        ])
    labels = ["days", "tickets decided", "tickets not decided", "actions", "accuracy, held-out days",
              "accuracy, all days", "model calls", "tokens", "cost (USD)", "tickets per second",
              "tool calls allowed / denied / escalated", "policy set"]
    for n, label in enumerate(labels):
        table.add_row(label, *(column[n] for column in columns))
    return table


READ_TOOLS = ("kb_search", "customer_features", "order_lookup")


def governance_table(settings: Settings) -> Table:
    """The review queue by status, the kill switches that are on, and the audit chain verified end to end."""
    from factory_pipelines.lib.governance.audit.verify import verify
    from factory_pipelines.lib.governance.kill_switches import KillSwitches, sync_audit
    from factory_pipelines.lib.governance.review import counts
    from factory_pipelines.resources.warehouse import WarehouseResource

    switches = KillSwitches(settings.kill_switches_file)
    with WarehouseResource(database=settings.warehouse).connect() as con:
        sync_audit(con, switches)
        queue = counts(con)
        report = verify(con, settings.audit_anchor)
    table = Table(title="Governance")
    table.add_column("")
    table.add_column("")
    table.add_row("review queue", ", ".join(f"{k} {v}" for k, v in sorted(queue.items())) or "empty")
    table.add_row("kill switches on", ", ".join(f"{s}:{t}" for s, t in switches.state()) or "none")
    table.add_row("audit log", f"{'verified' if report.ok else 'BROKEN'}: {report.entries} entries in "
                               f"{report.seconds:.2f} s" + ("" if report.ok else f", {len(report.problems)} problem(s)"))
    return table


def _accuracy(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """category / priority / action accuracy weighted by labelled tickets, or '-' without labels."""
    labelled = sum(int(m.get("labelled_tickets", 0)) for _, m in runs)
    fields = [f for f in ("category", "priority", "action") if any(f"{f}_accuracy" in m for _, m in runs)]
    if not labelled or not fields:
        return "-"
    scores = [sum(m.get(f"{f}_accuracy", 0) * int(m.get("labelled_tickets", 0)) for _, m in runs) / labelled
              for f in fields]
    return " / ".join(f"{score:.3f}" for score in scores)


def summary_tables(outcomes: list[PartitionOutcome], settings: Settings) -> list[Table]:
    """A table per day (assets, checks, quarantine) and the failed checks with their reasons."""
    days = Table(title="Data plane runs")
    for column in ("day", "assets", "checks passed", "checks failed", "rows loaded", "rows quarantined", "run id"):
        days.add_column(column, justify="right" if column not in ("day", "run id") else "left")
    for o in outcomes:
        raw = {k: v for k, v in o.materialized.items() if k.startswith("raw/")}
        loaded = sum(int(m.get("rows_loaded", 0)) for m in raw.values())
        quarantined = sum(int(m.get("rows_quarantined", 0)) for m in raw.values())
        passed = sum(o.checks.values())
        days.add_row(
            o.partition, str(len(o.materialized)), str(passed), str(len(o.checks) - passed), str(loaded),
            str(quarantined), o.run_id[:8],
        )
    return [days, quarantine_table(settings, [o.partition for o in outcomes])]


def _read_quarantine(settings: Settings, queries: list[str], params: dict[str, Any]) -> list[list[Any]] | None:
    """Results of read queries on raw.quarantine; None while there is no warehouse or table yet."""
    import duckdb

    from factory_pipelines.resources.warehouse import WarehouseResource

    try:
        with WarehouseResource(database=settings.warehouse).connect(read_only=True) as con:
            return [con.execute(sql, params).fetchall() for sql in queries]
    except (duckdb.CatalogException, duckdb.IOException):
        return None


def quarantine_table(settings: Settings, partitions: list[str]) -> Table:
    """Quarantined rows per source and day, with the rules they broke."""
    table = Table(title="Quarantine (raw.quarantine)")
    for column in ("source", "day", "rows", "rules"):
        table.add_column(column)
    results = _read_quarantine(settings, [
        "SELECT source, partition::VARCHAR, count(*), string_agg(DISTINCT rule, ', ' ORDER BY rule) "
        "FROM raw.quarantine WHERE partition::VARCHAR IN (SELECT unnest($p)) GROUP BY ALL ORDER BY 1, 2",
    ], {"p": partitions})
    rows = results[0] if results else []
    for row in rows:
        table.add_row(*(str(v) for v in row))
    if not rows:
        table.add_row("(none)", "", "", "")
    return table


def quarantine_rows(
    settings: Settings, partitions: list[str], source: str | None, limit: int
) -> tuple[list[tuple[str, ...]], int]:
    """Quarantined rows of some days (and a source), as text cells, and how many there are in all."""
    where = "partition::VARCHAR IN (SELECT unnest($p))" + (" AND source = $s" if source else "")
    params: dict[str, Any] = {"p": partitions} | ({"s": source} if source else {})
    results = _read_quarantine(settings, [
        f"SELECT count(*) FROM raw.quarantine WHERE {where}",
        "SELECT source, partition::VARCHAR, regexp_extract(source_file, '[^/]+$'), "
        "coalesce('row ' || source_row, 'line ' || source_line, ''), rule, coalesce(column_name, ''), "
        f"coalesce(detail, ''), left(coalesce(payload, ''), 160) FROM raw.quarantine WHERE {where} "
        f"ORDER BY 1, 2, source_file, coalesce(source_row, source_line) LIMIT {int(limit)}",
    ], params)
    if results is None:
        return [], 0
    total, rows = results[0][0][0], results[1]
    return [tuple(str(v) for v in row) for row in rows], total


def partition_lineage(instance: dg.DagsterInstance, partition: str,
                      checks: list[dg.AssetCheckKey]) -> dict[str, Any]:
    """What the instance knows of one day of tickets, as plain data for `explain`: the data version of its
    latest `raw/tickets` load and the latest result of each of `checks` for that day."""
    from factory_pipelines.instance import latest_check_statuses

    out: dict[str, Any] = {"data_version": None, "contracts": {}}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", "tickets"]), asset_partitions=[partition]), limit=1).records
    if records and records[0].asset_materialization and records[0].asset_materialization.tags:
        out["data_version"] = records[0].asset_materialization.tags.get("dagster/data_version")
    for check in checks:
        status = latest_check_statuses(instance, check, [partition]).get(partition, "NOT RUN")
        out["contracts"][check.to_user_string()] = status
    return out


def status_tables(partitions: list[str], settings: Settings) -> list[Table]:
    """Per asset and day: materialized or not; per check and day: the latest result."""
    from factory_pipelines.instance import latest_check_statuses

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    assets = Table(title="Assets (✓ materialized, · missing)")
    assets.add_column("asset")
    checks = Table(title="Checks (✓ passed, ✗ failed, · not run)")
    checks.add_column("check")
    for key in partitions:
        assets.add_column(key[5:], justify="center")
        checks.add_column(key[5:], justify="center")
    with dg.DagsterInstance.get() as instance:
        for asset_key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
            node = graph.get(asset_key)
            if node.partitions_def is None:
                done = instance.get_latest_materialization_event(asset_key) is not None
                assets.add_row(asset_key.to_user_string(), *(["✓" if done else "·"] * len(partitions)))
                continue
            done_keys = instance.get_materialized_partitions(asset_key)
            assets.add_row(asset_key.to_user_string(), *("✓" if p in done_keys else "·" for p in partitions))
        for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
            statuses = latest_check_statuses(instance, check_key, partitions)
            cells = [{"SUCCEEDED": "✓", "FAILED": "✗"}.get(statuses.get(p, ""), "·") for p in partitions]
            checks.add_row(check_key.to_user_string(), *cells)
    return [assets, checks, quarantine_table(settings, partitions)]


def span(keys: list[str]) -> str:
    """Days as short ranges: `2026-11-01 .. 2026-11-03, 2026-11-05`."""
    parts: list[list[str]] = []
    for key in keys:
        if parts and date.fromisoformat(key) - date.fromisoformat(parts[-1][-1]) == timedelta(days=1):
            parts[-1].append(key)
        else:
            parts.append([key])
    return ", ".join(p[0] if len(p) == 1 else f"{p[0]} .. {p[-1]}" for p in parts)


def days_to_show(days: list[date], materialized: set[str], columns: int) -> list[date]:
    """The range, or when it has more days than fit as columns, the last `columns` of them ending at the
    latest day with a materialization in it (a range from an old FACTORY_START_DATE would squash every column
    to nothing)."""
    if len(days) <= columns:
        return days
    done = [i for i, d in enumerate(days) if d.isoformat() in materialized]
    last = done[-1] if done else len(days) - 1
    first = max(0, last - columns + 1)
    return days[first:first + columns]


def days_shown(shown: list[date], days: list[date], start: datetime | None, end: datetime | None,
                elsewhere: set[str]) -> str:
    """Which days `status` looked at, where the range came from, how to look at others, and the days not shown
    that have materializations."""
    origin = " and ".join(dict.fromkeys([
        "--start" if start else "FACTORY_START_DATE", "--end" if end else "FACTORY_END_DATE"]))
    count = f"{len(shown)} day{'s' if len(shown) > 1 else ''}"
    if len(shown) < len(days):
        count = f"the {count} that fit, of the {len(days)} of {days[0]} .. {days[-1]}"
    text = (f"Days shown: {shown[0]} .. {shown[-1]} ({count}; range from {origin}). Other days: "
            "`factory status --start YYYY-MM-DD --end YYYY-MM-DD`; the default range is "
            "FACTORY_START_DATE .. FACTORY_END_DATE (docs/settings.md).")
    if elsewhere:
        text += f"\nMaterialized days not shown: {span(sorted(elsewhere))}."
    return text


def materialized_days() -> set[str]:
    """Every day some asset of the instance has a materialization for."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        found = {p for key in instance.get_asset_keys() for p in instance.get_materialized_partitions(key)}
    return {p for p in found if is_day(p)}


def is_day(key: str) -> bool:
    try:
        date.fromisoformat(key)
    except ValueError:
        return False
    return len(key) == 10
