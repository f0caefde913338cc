"""`factory eval|promote|rollback`: the ML team's commands.

`eval` decides an agent's golden suite with the champion (the manifest as it runs: prompt and first-pass
classifier at alias `champion`) and a challenger (what the options name, else the registries' `challenger`),
case by case on the same dataset version, and prints the paired comparison and the promotion gate's verdict
(`defs/evals/assets.compare`, which the `evals/<agent>` asset runs too). `promote` moves exactly the versions
a passed gate compared; `rollback` restores the previous champion (`lib/evals/promotion.py`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_pipelines.settings import get_settings, turn_off_telemetry

console = Console(width=None if sys.stdout.isatty() else 140)
FLIPS_SHOWN = 10


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate_agent)
    app.command("promote")(promote_agent)
    app.command("rollback")(rollback_agent)


def evaluate_agent(
    agent: Annotated[str, typer.Argument(help="The agent whose manifest names the suite (evaluation.suite).")],
    prompt_version: Annotated[int | None, typer.Option(help="Challenger: this version of the agent's prompt.")] = None,
    prompt_alias: Annotated[str | None, typer.Option(help="Challenger: the prompt at this alias.")] = None,
    prompt_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=(
        "Challenger: this prompt file, registered as the next version of the agent's prompt (alias challenger) "
        "unless a version has the same content."))] = None,
    model_version: Annotated[int | None, typer.Option(help="Challenger: this version of the first-pass "
                                                           "classifier.")] = None,
    provider: Annotated[str | None, typer.Option(help=(
        "Challenger: the champion's prompt and classifier on this provider (a name under the manifest's "
        "model_alternatives): provider parity. Not promotable: a provider is chosen in the manifest."))] = None,
    sweep: Annotated[bool, typer.Option(help=(
        "Instead of a comparison: evaluate the champion over the suite's grid of routing thresholds and log "
        "the cost-versus-accuracy frontier to MLflow."))] = False,
    trials: Annotated[int | None, typer.Option(min=1, help="Runs per case (default: the suite's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option(help="Exit 1 when the promotion gate fails.")] = False,
    promote: Annotated[bool, typer.Option(help="Then promote the challenger when the gate passed (`factory "
                                               "promote`); say why not otherwise.")] = False,
) -> None:
    """Champion vs challenger on the agent's golden suite: metrics, paired intervals, flipped cases, verdict.

    With no challenger option, the challenger is what the registries hold at alias `challenger`."""
    from factory_pipelines.defs.evals.assets import (
        AlreadyChampion,
        ChallengerChoice,
        EvaluationSetupError,
        compare,
    )

    settings = get_settings()
    if provider is not None and promote:
        _fail(f"--provider {provider} cannot be promoted: promotion moves registry aliases, and a provider is chosen "
              f"in the manifest (set `model:` in {agent}'s manifest to switch)")
    resources = _resources(settings)
    if sweep:
        from factory_pipelines.sweep_cli import run_sweep

        run_sweep(settings, resources, agent, as_json=as_json)
        return
    try:
        result = compare(settings, resources["tracking"], resources["llm"], agent,
                         ChallengerChoice(prompt_version, prompt_alias, model_version, provider), trials=trials,
                         prompt_file=prompt_file, warehouse=resources["warehouse"], status=console.status)
    except AlreadyChampion as exc:  # not a mistake: a file promoted before, evaluated again (make run twice)
        console.print(f"[yellow]{escape(str(exc))}[/yellow]", highlight=False)
        return
    except EvaluationSetupError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2, default=str))
    else:
        _print(result.summary, result.gate)
    if promote:
        _promote(settings, resources, agent, only=None, refused_exit=0, reasons_shown=True)
    if check and not result.gate.passed:
        raise typer.Exit(1)


def promote_agent(
    agent: Annotated[str, typer.Argument(help="The agent whose challenger becomes champion.")],
    prompt: Annotated[bool, typer.Option("--prompt", help="Only the prompt.")] = False,
    model: Annotated[bool, typer.Option("--model", help="Only the first-pass classifier.")] = False,
) -> None:
    """Move the challenger's aliases to champion, only when the latest promotion gate for exactly those versions
    passed and the policies let you (a Cedar decision on the Operator); refused otherwise, nothing moved."""
    only = {k for k, on in (("prompt", prompt), ("first_pass", model)) if on} or None
    settings = get_settings()
    _promote(settings, _resources(settings), agent, only=only, refused_exit=1)


def rollback_agent(agent: Annotated[str, typer.Argument(help="The agent whose previous champion is restored.")]) -> None:
    """Restore the champion the latest promotion replaced (the history comes from the audit log)."""
    from factory_pipelines.defs.evals.assets import manifest_of
    from factory_pipelines.lib.evals.promotion import PromotionError, rollback

    settings = get_settings()
    resources = _resources(settings)
    manifest = manifest_of(settings, agent)
    tracking = resources["tracking"]
    try:
        with resources["warehouse"].connect() as con:
            done = rollback(client=tracking.client(), where=tracking.tracking_uri, con=con,
                            policies_dir=settings.policies_dir, operator=settings.operator, manifest=manifest)
    except PromotionError as exc:  # refused by the policies, nothing to restore, or MLflow failing: nothing moved
        _fail(str(exc), code=1)
    who = f"operator {done.operator}, role {done.role}; audit entry {done.audit_seq}"
    if done.action == "withdraw":
        taken = ", ".join(f"{c['kind']} {c['name']} v{c['from']} ({c['stage']})" for c in done.changes.values())
        console.print(f"[green]withdrawn[/green] {agent}: {taken}; the champion alone decides from the next agent "
                      f"day ({who})", highlight=False)
        return
    console.print(f"[green]rolled back[/green] {agent}: {_changes(done.changes)} ({who})", highlight=False)


def _promote(settings: Any, resources: dict[str, Any], agent: str, *, only: set[str] | None, refused_exit: int,
             reasons_shown: bool = False) -> None:
    from factory_pipelines.defs.evals.assets import experiment_name, suite_of
    from factory_pipelines.lib.evals.promotion import PromotionError, PromotionRefused, promote

    manifest, suite, dataset = suite_of(settings, agent)
    tracking = resources["tracking"]
    client = tracking.client()
    experiment = client.get_experiment_by_name(experiment_name(agent))
    try:
        with resources["warehouse"].connect() as con:
            done = promote(client=client, where=tracking.tracking_uri, con=con, policies_dir=settings.policies_dir,
                           operator=settings.operator, manifest=manifest, dataset_version=dataset.version,
                           experiment_id=experiment.experiment_id if experiment else None, only=only,
                           stages=suite.stages)
    except PromotionRefused as exc:
        console.print(f"[red]promotion refused, no alias moved[/red]: {escape(str(exc))}", highlight=False)
        for failure in [] if reasons_shown else exc.failures:  # `eval --promote` printed them with the table
            console.print(f"  - {escape(failure)}", highlight=False)
        if refused_exit:
            raise typer.Exit(refused_exit) from None
        return
    except PromotionError as exc:
        if refused_exit:
            _fail(str(exc), code=refused_exit)
        console.print(f"[red]no alias moved[/red]: {escape(str(exc))}", highlight=False)
        return
    who = f"operator {done.operator}, role {done.role}; audit entry {done.audit_seq}"
    target = done.stage["to"]
    if target == "champion":
        console.print(f"[green]promoted[/green] {agent}: {_changes(done.changes)} (gate run {done.gate.run_id}; "  # type: ignore[union-attr]
                      f"{who})", highlight=False)
        return
    versions = ", ".join(f"{c['kind']} {c['name']} v{c['to']}" for c in done.changes.values())
    acts = ("decides every ticket beside the champion, its tool calls judged and never executed" if target == "shadow"
            else f"decides and acts on {suite.stages.canary_share:.0%} of the tickets")  # type: ignore[union-attr]
    console.print(f"[green]staged[/green] {agent}: {versions} in {target} from the next agent day ({acts}); after "
                  f"{suite.stages.days(target)} passing day(s) of `evals/live/{agent}`, `factory promote {agent}` "  # type: ignore[union-attr]
                  f"again ({who})", highlight=False)


def _changes(changes: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{c['kind']} {c['name']} champion v{c['from']} -> v{c['to']}" for c in changes.values())


def _resources(settings: Any) -> dict[str, Any]:
    """The factory's resources, built once per command, with MLflow's INFO lines quieted (they would interleave
    with the report; importing MLflow configures its loggers, so quiet them after)."""
    turn_off_telemetry()  # before MLflow imports tqdm, which reads TQDM_DISABLE once, at import
    import mlflow  # noqa: F401

    from factory_pipelines.defs.resources import build_resources

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return build_resources(settings)


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _print(summary: dict[str, Any], gate: Any) -> None:
    champion, challenger = summary["metrics"]["champion"], summary["metrics"]["challenger"]
    table = Table(title=f"{summary['agent']} on {summary['suite']} ({summary['cases']} cases x {summary['trials']} "
                        f"trial(s), dataset {summary['dataset_version']}): champion {summary['champion']['prompt']} "
                        f"vs challenger {summary['challenger']['prompt']}{_on(summary)}")
    for column in ("metric", "champion", "challenger", "difference [95% interval]", "flipped", "verdict"):
        table.add_column(column)
    comparisons = gate.comparisons
    for metric in sorted(set(champion) | set(challenger)):
        c = comparisons.get(metric)
        interval = f"{c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}]" if c else ""
        flipped = f"{len(c.fixed)} fixed, {len(c.broken)} broken" if c and c.kind == "binary" else ""
        verdict = ("passes" if c.passes() else "fails") if c else ""
        bound = gate.thresholds.get(metric)
        if bound is not None:
            verdict = f"{verdict}; threshold {'met' if bound['met'] else 'missed'}".lstrip("; ")
        table.add_row(metric, _fmt(champion.get(metric)), _fmt(challenger.get(metric)), interval, flipped, verdict)
    console.print(table)
    for metric, c in comparisons.items():
        if c.broken:
            shown = ", ".join(c.broken[:FLIPS_SHOWN]) + (" …" if len(c.broken) > FLIPS_SHOWN else "")
            console.print(f"{metric}: broken by the challenger: {shown}")
    for name, cases in summary.get("decisions_differ", {}).items():
        shown = ", ".join(cases[:FLIPS_SHOWN]) + (" …" if len(cases) > FLIPS_SHOWN else "")
        console.print(f"{name}: decided differently in {len(cases)} case(s): {shown}", highlight=False)
    runs = summary["mlflow"]
    console.print(f"MLflow (`make mlflow-ui`): experiment {runs['experiment_id']}, dataset {runs['dataset']}, runs "
                  f"champion {runs['champion_run']}, challenger {runs['challenger_run']}, comparison "
                  f"{runs['comparison_run']} (select the two evaluation runs, Compare)", highlight=False)
    if not summary.get("promotable", True):
        console.print("provider parity: not promotable by alias (a provider is chosen in the manifest; set its "
                      "`model:` to switch)", highlight=False)
    if gate.passed:
        console.print("[green]promotion gate passed[/green]: the challenger may replace the champion")
    else:
        console.print("[red]promotion gate failed[/red]:")
        for failure in gate.failures:
            console.print(f"  - {escape(failure)}", highlight=False)


def _on(summary: dict[str, Any]) -> str:
    """" on <provider>" when the two sides ran on different providers (provider parity)."""
    mine, theirs = summary["champion"].get("provider"), summary["challenger"].get("provider")
    return f" (champion on {mine}, challenger on {theirs})" if mine != theirs else ""


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"

