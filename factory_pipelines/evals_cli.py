"""`factory eval`: evaluate a configuration of an agent against its champion on the agent's golden suite, case
by case, and print the paired comparison and the promotion gate's verdict.

The champion is the manifest as it runs (its prompt and first-pass classifier at alias `champion`); the
challenger changes what the options name: a prompt version or alias, a classifier version. Both are decided by
the real runtime and Cedar gate in the suite's scratch world, on the same dataset version.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory_pipelines.settings import get_settings

console = Console(width=None if sys.stdout.isatty() else 140)
FLIPS_SHOWN = 10


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate_agent)


def evaluate_agent(
    agent: Annotated[str, typer.Argument(help="The agent whose manifest names the suite (evaluation.suite).")],
    prompt_version: Annotated[int | None, typer.Option(help="Challenger: this version of the agent's prompt.")] = None,
    prompt_alias: Annotated[str | None, typer.Option(help="Challenger: the prompt at this alias.")] = None,
    model_version: Annotated[int | None, typer.Option(help="Challenger: this version of the first-pass "
                                                           "classifier.")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Runs per case (default: the suite's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option(help="Exit 1 when the promotion gate fails.")] = False,
) -> None:
    """Champion vs challenger on the agent's golden suite: metrics, paired intervals, flipped cases, verdict."""
    from factory_pipelines.lib.agents.models.prompts import PromptError
    from factory_pipelines.lib.evals.evaluate import compare_evaluations, evaluate_logged, register_cases
    from factory_pipelines.lib.evals.tracking import log_comparison

    settings = get_settings()
    import mlflow  # noqa: F401 (importing it configures its loggers: quiet them after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines would interleave with the report
    if prompt_version is not None and prompt_alias is not None:
        raise typer.BadParameter("give --prompt-version or --prompt-alias, not both")
    manifest, suite, dataset = _suite_of(agent)
    if model_version is not None and not manifest.decision.first_pass:
        raise typer.BadParameter(f"{agent} has no first-pass classifier (decision.first_pass)", param_hint="--model-version")
    from factory_pipelines.defs.resources import build_resources

    resources = build_resources(settings)
    experiment_id = resources["tracking"].activate(f"evals/{agent}")
    champion = _configuration(resources, manifest, "champion", None, None)
    challenger_prompt = _prompt_uri(manifest, prompt_version, prompt_alias, model_version)
    try:
        challenger = _configuration(resources, manifest, "challenger", challenger_prompt, model_version)
    except PromptError as exc:
        if challenger_prompt != f"prompts:/{manifest.prompt_name}@challenger":
            raise
        raise typer.BadParameter(
            f"{manifest.prompt_name} has no challenger yet: change defs/registry/prompts/{manifest.prompt_name}.yaml "
            "and run `factory run --job models_job` (a changed file is registered as the next version, alias "
            "challenger), or name --prompt-version / --prompt-alias") from exc
    cases, k = dataset.records(), trials or suite.trials
    governance, new_world, scorers = _suite_parts(settings, manifest, suite, cases, champion)
    tags = {"agent": agent, "suite": suite.name, "dataset_version": dataset.version}
    registered = register_cases(dataset.name, dataset.version, cases, experiment_id)
    results, runs = {}, {}
    with console.status(f"deciding {len(cases)} cases x {k} trial(s), twice"):
        for side in (champion, challenger):
            results[side.label], runs[side.label] = evaluate_logged(
                cases, side, governance, new_world, scorers, trials=k, dataset=registered,
                experiment_id=experiment_id, tags=tags)
    gate = compare_evaluations(results["champion"], results["challenger"], thresholds=suite.bounds,
                               tolerances=suite.tolerances, budgets=suite.budget_limits)
    comparison_run = log_comparison(f"{agent} champion vs challenger", runs["champion"], runs["challenger"],
                                    gate.summary(), experiment_id=experiment_id, tags=tags)
    summary = {"agent": agent, "suite": suite.name, "dataset": str(dataset.path), "dataset_version": dataset.version,
               "cases": len(cases), "trials": k, "champion": champion.params, "challenger": challenger.params,
               "metrics": {label: r.metrics for label, r in results.items()}, "gate": gate.summary(),
               "mlflow": {"experiment_id": experiment_id, "dataset": registered.name, **{f"{label}_run": run_id
                          for label, run_id in runs.items()}, "comparison_run": comparison_run}}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print(summary, gate)
    if check and not gate.passed:
        raise typer.Exit(1)


def _suite_of(agent: str) -> tuple[Any, Any, Any]:
    """The agent's manifest, its suite and the suite's dataset (a ConfigError names any bad file)."""
    from factory_pipelines.lib.agents.manifests import load_manifest
    from factory_pipelines.lib.evals.datasets import load_suite

    path = get_settings().manifests_dir / f"{agent}.yaml"
    if not path.is_file():
        raise typer.BadParameter(f"no manifest {path}", param_hint="AGENT")
    manifest = load_manifest(path)
    if manifest.evaluation is None:
        raise typer.BadParameter(f"{path} names no evaluation suite (evaluation.suite)", param_hint="AGENT")
    suite = load_suite(get_settings().evals_dir / "suites" / f"{manifest.evaluation.suite}.yaml")
    if suite.agent != manifest.name:
        raise typer.BadParameter(f"{path} names suite {suite.name}, which is agent {suite.agent}'s", param_hint="AGENT")
    return manifest, suite, suite.load_dataset()


def _prompt_uri(manifest: Any, version: int | None, alias: str | None, classifier_version: int | None) -> str | None:
    """The challenger's prompt: the version or alias named; the champion's when only the classifier changes (one
    change at a time); else the prompt at `challenger`."""
    name = manifest.prompt_name
    if version is not None:
        return f"prompts:/{name}/{version}"
    if alias is None and classifier_version is not None:
        return None
    return f"prompts:/{name}@{alias or 'challenger'}"


def _configuration(resources: dict[str, Any], manifest: Any, label: str, prompt_uri: str | None,
                   classifier_version: int | None) -> Any:
    """The manifest with the prompt and classifier the options name, resolved from the MLflow registries."""
    from factory_pipelines.defs.agents.assets import resolve_first_pass
    from factory_pipelines.lib.agents.manifests import MODEL_URI
    from factory_pipelines.lib.agents.models.prompts import load_registered_prompt
    from factory_pipelines.lib.agents.models.providers import model_version
    from factory_pipelines.lib.evals.harness import AgentConfiguration

    rules, replies = manifest.load_config(get_settings().manifests_dir.parent)
    first_pass_uri = manifest.decision.first_pass
    if first_pass_uri and classifier_version is not None:
        first_pass_uri = f"models:/{MODEL_URI.match(first_pass_uri)['name']}/{classifier_version}"  # type: ignore[index]
    provider = resources["llm"].provider(manifest.model)
    return AgentConfiguration(
        label, manifest, load_registered_prompt(prompt_uri or manifest.prompt), provider, model_version(provider),
        rules=rules, replies=replies,
        first_pass=resolve_first_pass(resources["tracking"], first_pass_uri) if first_pass_uri else None,
        reply_prompt=load_registered_prompt(manifest.reply.prompt) if manifest.reply and manifest.reply.prompt else None)


def _suite_parts(settings: Any, manifest: Any, suite: Any, cases: list[dict[str, Any]], champion: Any) -> tuple:
    import yaml

    from factory_pipelines.defs.features.assets import LEXICON_FILE
    from factory_pipelines.defs.staging.assets import CONFORM_FILE
    from factory_pipelines.lib.evals.harness import Governance
    from factory_pipelines.lib.evals.scorers import case_scorers
    from factory_pipelines.lib.evals.world import build_world, load_kb
    from factory_pipelines.lib.governance.gate_config import load_gate_config
    from factory_pipelines.lib.governance.policy import PolicyEngine

    governance = Governance(PolicyEngine.load(settings.policies_dir, manifest.policy_set),
                            load_gate_config(settings.policies_dir))
    kb, lexicon = load_kb(suite.kb_path), yaml.safe_load(LEXICON_FILE.read_text())
    fx = yaml.safe_load(CONFORM_FILE.read_text())["fx_rates_to_usd"]
    enums = {f: list(p.get("enum", [])) for f, p in champion.prompt.response_schema.get("properties", {}).items()}
    scorers = {name: scorer for name, scorer in case_scorers(enums).items()
               if name in suite.scorers or name in ("latency_s", "cost_usd", "forbidden_actions", "policy_compliance")}
    return governance, lambda: build_world(cases, kb_articles=kb, lexicon=lexicon, fx_rates=fx), scorers


def _print(summary: dict[str, Any], gate: Any) -> None:
    champion, challenger = summary["metrics"]["champion"], summary["metrics"]["challenger"]
    table = Table(title=f"{summary['agent']} on {summary['suite']} ({summary['cases']} cases x {summary['trials']} "
                        f"trial(s), dataset {summary['dataset_version']}): champion {summary['champion']['prompt']} "
                        f"vs challenger {summary['challenger']['prompt']}")
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
    runs = summary["mlflow"]
    console.print(f"MLflow (`make mlflow-ui`): experiment {runs['experiment_id']}, dataset {runs['dataset']}, runs "
                  f"champion {runs['champion_run']}, challenger {runs['challenger_run']}, comparison "
                  f"{runs['comparison_run']} (select the two evaluation runs, Compare)", highlight=False)
    if gate.passed:
        console.print("[green]promotion gate passed[/green]: the challenger may replace the champion")
    else:
        console.print("[red]promotion gate failed[/red]:")
        for failure in gate.failures:
            console.print(f"  - {escape(failure)}", highlight=False)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"

