"""`factory`: run the data plane, write demo data, show status, open the UI, wipe local state.

Every command drives Dagster's own APIs on the factory's instance (the same job the UI launches), so a
run started here shows in the Dagster UI with its events, checks and metadata.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from factory_pipelines.agents_cli import register as register_agents
from factory_pipelines.alerts_cli import register as register_alerts
from factory_pipelines.drift_cli import drift_summary
from factory_pipelines.drift_cli import register as register_drift
from factory_pipelines.evals_cli import register as register_evals
from factory_pipelines.governance_cli import register as register_governance
from factory_pipelines.instance import prepare_instance
from factory_pipelines.lib.config_files import ConfigError
from factory_pipelines.purge_cli import register as register_purge
from factory_pipelines.servers import serve
from factory_pipelines.settings import Settings, get_settings, turn_off_telemetry

app = typer.Typer(help="AI Factory: governed agent workflows on Dagster.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 120)

StartOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day (default: settings.start_date).")]
EndOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day (default: settings.end_date).")]


def _days(settings: Settings, start: datetime | None, end: datetime | None) -> list[date]:
    first = start.date() if start else settings.start_date
    last = end.date() if end else settings.end_date
    if first > last:
        raise typer.BadParameter(f"start {first} is after end {last}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


register_agents(app)
register_evals(app)
register_alerts(app)
register_drift(app)
register_governance(app)
register_purge(app)


@app.command("demo-data")
def demo_data(
    start: StartOpt = None,
    end: EndOpt = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    defect_rate: Annotated[float | None, typer.Option(help="Share of rows with a defect (0..1).")] = None,
    drift_date: Annotated[str | None, typer.Option(help="Day distributions shift (YYYY-MM-DD or 'none').")] = None,
) -> None:
    """Write deterministic demo landing files for a date range (tickets CSV, customers/orders Parquet, KB JSONL)."""
    from factory_pipelines.demo import write_demo_data

    settings = get_settings()
    days = _days(settings, start, end)
    drift = settings.demo_drift_date if drift_date is None else (
        None if drift_date.lower() == "none" else date.fromisoformat(drift_date)
    )
    summary = write_demo_data(
        Path(settings.landing_dir), days[0], days[-1],
        seed=settings.demo_seed if seed is None else seed,
        defect_rate=settings.demo_defect_rate if defect_rate is None else defect_rate,
        drift_date=drift,
        truth_dir=Path(settings.home) / "demo_truth",
        tickets_per_day=settings.demo_tickets_per_day,
        customers=settings.demo_customers,
    )
    table = Table(title=f"Demo landing files {days[0]} .. {days[-1]} in {settings.landing_dir}")
    table.add_column("source")
    table.add_column("rows", justify="right")
    table.add_column("defects injected", justify="right")
    for source, rows in summary.rows.items():
        kinds = summary.defects.get(source, {})
        table.add_row(source, str(rows), ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "0")
    console.print(table)


PHASES = {"data_plane_job": "data plane", "models_job": "models and prompts", "agents_job": "agents",
          "drift_job": "drift", "live_evals_job": "live comparisons"}
# A job run day by day right after another's day: the drift of day D is judged before the agents decide D+1,
# so their gate sees it (`data.drift`), as the nightly schedules order it.
DAY_AFTER = {"agents_job": "drift_job"}


def _stop_on_signals(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command under one `SignalStop`: a SIGINT or SIGTERM (Ctrl-C, a service manager, `kill`) ends the
    whole command, with or without a terminal; one arriving before any run started exits at once."""

    @functools.wraps(command)
    def stoppable(*args: Any, **kwargs: Any) -> Any:
        from factory_pipelines.signals import Interrupted, SignalStop

        with SignalStop():
            try:
                return command(*args, **kwargs)
            except Interrupted as interrupted:
                console.print(f"[red]Stopped by {signal.Signals(interrupted.signum).name}[/red] before any run "
                              "started: nothing was run. Start the same command again when you want it.")
                raise typer.Exit(128 + interrupted.signum) from None

    return stoppable


@app.command()
@_stop_on_signals
def run(
    start: StartOpt = None,
    end: EndOpt = None,
    job: Annotated[str, typer.Option(help="One job to run (data_plane_job, models_job, agents_job, drift_job, "
                                          "live_evals_job); default: all of them in that order (each day's drift "
                                          "right after its agents).")] = "all",
) -> None:
    """Run the factory for each day of a range, in process, on its Dagster instance: data plane, then models
    and prompts, then agents with each day's drift right after it, then the live comparisons of challengers in shadow or canary."""
    from factory_pipelines.defs.agents.definitions import why_no_agents_job
    from factory_pipelines.defs.agents.schedules import AGENTS_JOB
    from factory_pipelines.runs import load_definitions
    from factory_pipelines.signals import SignalStop

    settings = get_settings()
    days = _days(settings, start, end)
    if days[0] < settings.start_date or days[-1] > date.today() + timedelta(days=1):
        raise typer.BadParameter(
            f"days must lie between the first partition {settings.start_date} (FACTORY_START_DATE) and today",
            param_hint="--start/--end",
        )
    prepare_instance(settings)
    definitions = load_definitions()
    available = [j.name for j in definitions.jobs]
    jobs = [j for j in PHASES if j in available] if job == "all" else [job]
    no_agents = "" if AGENTS_JOB in available else why_no_agents_job(settings, definitions)
    if any(j not in available for j in jobs):
        why = f" ({no_agents})" if job == AGENTS_JOB else ""
        raise typer.BadParameter(f"unknown job {job!r}{why}; the code location has {available}", param_hint="--job")
    if job == "all" and no_agents:
        console.print(f"[yellow]{AGENTS_JOB} is not run: {no_agents}[/yellow]")
    keys = [d.isoformat() for d in days]
    started = time.perf_counter()
    outcomes = _run_jobs(definitions, jobs, keys, stop_after_failed_data_plane=job == "all")
    stop = SignalStop.current()
    if stop.stopped:
        _print_interrupted(stop.name, jobs, keys, outcomes)
        raise typer.Exit(128 + (stop.signum or signal.SIGINT))
    _print_summary(outcomes, settings)
    elapsed = time.perf_counter() - started
    failed = [(name, o.partition or name) for name, runs in outcomes.items() for o in runs if not o.success]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed: {', '.join(p for _, p in failed)}[/red] ({elapsed:.0f} s)")
        console.print("Open the Dagster UI (`make ui`) or run `factory status` to see which check failed and why.")
        raise typer.Exit(1)
    warned = sorted({f"{o.partition} {n}" for rs in outcomes.values() for o in rs for n, ok in o.checks.items() if not ok})
    verdict = (f"[yellow]All runs succeeded; warning checks failed: {', '.join(warned)}[/yellow]" if warned
               else "[green]All runs succeeded, every check passed[/green]")  # a failed warning does not block
    console.print(f"{verdict} ({elapsed:.0f} s)")
    console.print("Browse the asset graph, checks and runs: `make ui` (http://127.0.0.1:3000); prompts, the "
                  "classifier and one trace per ticket: `make mlflow-ui` (http://127.0.0.1:5000).")


def _run_jobs(definitions: Any, jobs: list[str], keys: list[str],
              stop_after_failed_data_plane: bool) -> dict[str, list]:
    """Each job over the days in order, with a progress bar on a terminal and a line per run otherwise (a
    service's log); stops early after a signal (see `SignalStop`) or a failed data plane."""
    from factory_pipelines.defs.drift.schedules import DRIFT_JOB, day_selection
    from factory_pipelines.runs import run_partitions
    from factory_pipelines.signals import Interrupted, SignalStop

    stop = SignalStop.current()
    outcomes: dict[str, list] = {}
    log = not console.is_terminal

    def started(name: str, key: str) -> None:
        if log:
            console.print(f"{datetime.now():%H:%M:%S} {name} {key}: started")

    def done(name: str, key: str, ok: bool) -> None:
        if log:
            console.print(f"{datetime.now():%H:%M:%S} {name} {key}: {'succeeded' if ok else 'FAILED'}")

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, disable=log,
    ) as progress:
        tasks: dict[str, Any] = {}

        def run(name: str, partitions: list[str | None], selection: list[Any] | None = None) -> bool:
            """`name` over `partitions` (only the `selection` of its assets, when given), outcomes appended;
            False when a signal stopped it."""
            if name not in tasks:
                total = 1 if name == "models_job" else len(keys)
                tasks[name] = progress.add_task(PHASES.get(name, name), total=total)
            task = tasks[name]

            def on_start(key: str) -> None:
                progress.update(task, description=f"{PHASES.get(name, name)} {key}")
                started(name, key)

            def on_done(key: str, ok: bool) -> None:
                progress.advance(task)
                done(name, key, ok)

            outcomes.setdefault(name, []).extend(
                run_partitions(name, partitions, definitions=definitions, on_start=on_start, on_done=on_done, stop=stop,
                               asset_selection=selection))
            return not stop.stopped

        def run_days(name: str, days: list[str]) -> bool:
            """`name` day by day; drift re-runs the golden suites (the same champions on the same cases every
            night of a range) on the range's last day only."""
            if name != DRIFT_JOB:
                return run(name, list(days))
            return all(run(name, [day], day_selection(definitions, scores=day == keys[-1])) for day in days)

        try:
            for name in jobs:
                if name in outcomes:
                    continue  # ran with the job it follows
                follower = DAY_AFTER.get(name) if DAY_AFTER.get(name) in jobs else None
                if follower is None:
                    if not (run(name, [None]) if name == "models_job" else run_days(name, keys)):
                        break
                elif not all(run(name, [key]) and run_days(follower, [key]) for key in keys):
                    break
                if name == "data_plane_job" and stop_after_failed_data_plane and not all(o.success for o in outcomes[name]):
                    break  # agents never run on days whose contracts failed; say so before going on
        except Interrupted:
            pass  # between two jobs; reported by the caller
    return outcomes


def _print_interrupted(signal_name: str, jobs: list[str], keys: list[str], outcomes: dict[str, list]) -> None:
    """What a signal left behind: the runs that finished, the one it interrupted, what did not start, and the
    commands that do the rest (re-running a day is safe: loads replace the day, done side effects are skipped)."""
    from factory_pipelines.runs import span

    console.print(f"[red]Stopped by {signal_name}.[/red]")
    resume: list[str] = []
    for name in jobs:
        label = PHASES.get(name, name)
        runs = outcomes.get(name, [])
        finished = [o for o in runs if not o.interrupted]
        interrupted = [o for o in runs if o.interrupted]
        if name == "models_job":
            if finished:
                console.print(f"  finished: {label} ({'succeeded' if finished[0].success else 'FAILED'})")
            elif interrupted:
                console.print(f"  interrupted: {label} (run {interrupted[0].run_id[:8]}, failed in Dagster)")
            else:
                console.print(f"  not started: {label}")
            if not finished:
                resume.append("factory run --job models_job")
            continue
        ok = [o.partition for o in finished if o.success]
        failed = [o.partition for o in finished if not o.success]
        if ok:
            console.print(f"  finished: {label} {span(ok)}")
        if failed:
            console.print(f"  finished, FAILED: {label} {span(failed)} (see `factory status`)")
        for o in interrupted:
            console.print(f"  interrupted: {label} {o.partition} (run {o.run_id[:8]}, failed in Dagster)")
        ran = {o.partition for o in finished}
        left = [k for k in keys if k not in ran]
        not_started = [k for k in left if k not in {o.partition for o in interrupted}]
        if not_started:
            console.print(f"  not started: {label} {span(not_started)}")
        if left:
            resume.append(f"factory run --job {name} --start {left[0]} --end {left[-1]}")
    if resume:
        console.print("To finish, run in this order:", soft_wrap=True)
        for command in resume:
            console.print(f"  {command}", soft_wrap=True)
        console.print(f"or the whole range again: factory run --start {keys[0]} --end {keys[-1]}", soft_wrap=True)


def _print_summary(outcomes: dict[str, list], settings: Settings) -> None:
    from factory_pipelines.runs import (
        agents_table,
        failures_table,
        governance_table,
        models_table,
        summary_tables,
    )

    holdout: list[str] = []
    if "data_plane_job" in outcomes:
        for table in summary_tables(outcomes["data_plane_job"], settings):
            console.print(table)
    for model_run in outcomes.get("models_job", []):
        console.print(models_table(model_run))
        for meta in model_run.materialized.values():
            holdout = list(meta.get("holdout_days") or holdout)
    if "agents_job" in outcomes:
        console.print(agents_table(outcomes["agents_job"], holdout))
        console.print(governance_table(settings))
    if "drift_job" in outcomes:
        drifted = drift_summary(settings, [o.partition for o in outcomes["drift_job"]])
        if drifted is not None:
            console.print(drifted)
    failures = failures_table([o for runs in outcomes.values() for o in runs])
    if failures is not None:
        console.print(failures)


@app.command()
def status(start: StartOpt = None, end: EndOpt = None) -> None:
    """What is materialized, which checks passed or failed, and quarantine counts, per source and day."""
    from factory_pipelines.runs import days_shown, days_to_show, materialized_days, status_tables

    settings = get_settings()
    prepare_instance(settings)
    days = _days(settings, start, end)
    materialized = materialized_days()
    shown = days_to_show(days, materialized, max(7, (console.width - 44) // 8))
    keys = [d.isoformat() for d in shown]
    for table in status_tables(keys, settings):
        console.print(table)
    console.print(days_shown(shown, days, start, end, materialized - set(keys)), soft_wrap=True)


@app.command()
def quarantine(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    limit: Annotated[int, typer.Option(help="Rows to show at most.")] = 50,
) -> None:
    """The quarantined rows themselves: source, day, file, row or line, rule, column, why, raw payload."""
    from factory_pipelines.runs import quarantine_rows

    settings = get_settings()
    days = [d.isoformat() for d in _days(settings, start, end)]
    table = Table(title=f"Quarantined rows {days[0]} .. {days[-1]}" + (f" of {source}" if source else ""))
    for column in ("source", "day", "file", "row/line", "rule", "column", "detail", "payload"):
        table.add_column(column, overflow="fold")
    rows, total = quarantine_rows(settings, days, source, limit)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{total} quarantined row(s) in all" + (f"; showing {len(rows)}" if total > len(rows) else ""))


@app.command()
def clean(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Wipe all local state: the folder `settings.home` (Dagster, DuckDB, Feast, MLflow, landing files)."""
    home = Path(get_settings().home)
    if not home.exists():
        console.print(f"Nothing to wipe: {home} does not exist.")
        return
    if not yes:
        typer.confirm(f"Delete {home} and everything in it?", abort=True)
    shutil.rmtree(home)
    console.print(f"Wiped {home}.")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on localhost.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Start the Dagster UI (and daemon, for schedules) on localhost with the factory's instance."""
    settings = get_settings()
    prepare_instance(settings)
    turn_off_telemetry()
    target = ["-m", "factory_pipelines.definitions"]
    bin_dir = Path(sys.executable).parent
    console.print(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    raise typer.Exit(serve({
        "dagster-webserver": [str(bin_dir / "dagster-webserver"), *target, "-h", host, "-p", str(port)],
        "dagster-daemon": [str(bin_dir / "dagster-daemon"), "run", *target],
    }, settings.child_env(), console))


@app.command("mlflow-ui")
def mlflow_ui(
    port: Annotated[int, typer.Option(help="Port on localhost.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on the factory's tracking store: prompts, the classifier, evaluations, traces."""
    settings = get_settings()
    settings.ensure_dirs()
    turn_off_telemetry()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.mlflow_tracking_uri,
               "--default-artifact-root", settings.mlflow_artifact_root, "--host", host, "--port", str(port), "--workers", "1"]
    console.print(f"MLflow UI on http://{host}:{port} (Ctrl-C to stop)")
    raise typer.Exit(serve({"mlflow server": command}, settings.child_env(), console))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def feast(ctx: typer.Context) -> None:
    """Run the `feast` CLI on feature_repo/ with the factory's registry and stores (e.g. `factory feast plan`)."""
    settings = get_settings()
    settings.ensure_dirs()
    turn_off_telemetry()
    env = settings.child_env(FACTORY_FEAST_REGISTRY=settings.feast_registry,
                             FACTORY_FEAST_ONLINE_PATH=str(settings.feast_online_path))
    feast_bin = shutil.which("feast", path=str(Path(sys.executable).parent)) or "feast"
    raise typer.Exit(subprocess.call([feast_bin, *ctx.args], cwd=settings.feature_repo, env=env))


STOPPED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)


def main() -> None:
    """The `factory` command. Stopped by a signal, it runs the exit handlers and leaves without the
    interpreter's final teardown of every module, which takes seconds once GX, Feast, pandas and MLflow are
    loaded (all state is written by then: runs are recorded, connections closed)."""
    try:
        app()
    except ConfigError as exc:  # a mistake in a file the user wrote: its message names file, field and reason
        Console(stderr=True).print(f"[red]configuration error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    except SystemExit as done:
        if done.code not in STOPPED_CODES:
            raise
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(done.code))


if __name__ == "__main__":
    main()
