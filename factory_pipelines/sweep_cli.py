"""`factory eval AGENT --sweep`: the champion over the suite's grid of routing thresholds, the cost-versus-accuracy
frontier printed and logged to MLflow (experiment `evals/<agent>`, a run with the frontier page as an artifact),
and the recommended setting (`lib/evals/sweep.py` says how it is chosen)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def run_sweep(settings: Any, resources: dict[str, Any], agent: str, *, as_json: bool = False) -> dict[str, Any]:
    """Sweep the champion's routing thresholds on the agent's suite; print the table (or JSON) and return it."""
    from factory_pipelines.defs.evals.assets import (
        EvaluationSetupError,
        configuration,
        experiment_name,
        suite_of,
        suite_parts,
    )
    from factory_pipelines.lib.evals.sweep import log_sweep, sweep

    experiment_id = resources["tracking"].activate(experiment_name(agent))  # before the registries are read
    try:
        manifest, suite, dataset = suite_of(settings, agent)
        champion = configuration(settings, resources["tracking"], resources["llm"], manifest, "champion", None, None)
    except EvaluationSetupError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    cases = dataset.records()
    governance, new_world, scorers = suite_parts(settings, manifest, suite, cases, champion)
    with console.status(f"deciding {len(cases)} cases at each routing threshold"):
        points = sweep(cases, champion, governance, new_world, scorers, suite.sweep, tolerances=suite.tolerances)
    tags = {"agent": agent, "suite": suite.name, "dataset_version": dataset.version}
    run_id = log_sweep(agent, points, experiment_id=experiment_id, tags=tags, params=champion.params)
    report = {"agent": agent, "suite": suite.name, "dataset_version": dataset.version, "cases": len(cases),
              "points": [p.as_dict() for p in points], "mlflow": {"experiment_id": experiment_id, "run": run_id,
                                                                   "artifact": "sweep/frontier.html"}}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report, champion.escalate_provider is not None)
    return report


def _print(report: dict[str, Any], escalation: bool) -> None:
    points = report["points"]
    fields = list(points[0]["accuracy"]) if points else []
    keys = list(points[0]["thresholds"]) if points else []
    table = Table(title=f"{report['agent']} routing sweep on {report['suite']} ({report['cases']} cases, dataset "
                        f"{report['dataset_version']})")
    for column in (*keys, *(f"{f} acc." for f in fields), "USD / 1k tickets", "tickets/s", "to model",
                   "escalated", "frontier"):
        table.add_column(column)
    for p in points:
        table.add_row(*(f"{p['thresholds'][k]:g}" for k in keys), *(f"{p['accuracy'][f]:.3f}" for f in fields),
                      f"{p['cost_per_1k_usd']:.4f}", f"{p['tickets_per_s']:.2f}", str(p["model_fields"]),
                      str(p["escalated_fields"]), ("yes" if p["on_frontier"] else "") + (" *" if p["recommended"] else ""))
    console.print(table)
    if not escalation:
        console.print("no escalate_model in the manifest: only decision.model_below_confidence was swept")
    pick = next((p for p in points if p["recommended"]), None)
    if pick is not None:
        setting = ", ".join(f"decision.{k}: {v:g}" for k, v in pick["thresholds"].items())
        console.print(f"recommended (*): {setting}: the cheapest within the suite's tolerance of the best accuracy "
                      f"(mean {pick['mean_accuracy']:.3f}, ${pick['cost_per_1k_usd']:.4f} per 1,000 tickets)",
                      highlight=False)
    runs = report["mlflow"]
    console.print(f"MLflow: experiment {runs['experiment_id']}, run {runs['run']}, artifact {runs['artifact']}",
                  highlight=False)
