"""The evals domain: champion vs challenger of an agent on its golden suite, as `factory eval` and as the asset
`evals/<agent>` (with the blocking check `promotion_gate_<agent>`, see checks.py).

Both go through `compare`: resolve the champion (the manifest as it runs: prompt and first-pass classifier
at alias `champion`) and the challenger (what the options name, else whatever the registries hold at alias
`challenger`), decide every case with the real runtime and Cedar gate in the suite's scratch world, log both
evaluations and their paired comparison to MLflow (tagged with both sides' versions, which `factory
promote` looks up), and judge the promotion gate.
"""


import hashlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.defs.evals.checks import (
    gate_check_result,
    gate_check_spec,
    live_check_result,
    live_check_spec,
)
from factory_pipelines.lib.config_files import ConfigError
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings


class EvaluationSetupError(ConfigError):
    """The evaluation cannot start: no suite, a version that does not exist, no right to evaluate."""


class NoChallenger(EvaluationSetupError):
    """Nothing waits at alias `challenger`: there is nothing to judge."""


class AlreadyChampion(NoChallenger):
    """The challenger named is the champion's configuration (a file promoted before, say)."""


@dataclass(frozen=True)
class ChallengerChoice:
    """What the challenger changes; all None: whatever the registries hold at alias `challenger`."""

    prompt_version: int | None = None
    prompt_alias: str | None = None
    model_version: int | None = None
    provider: str | None = None  # a name under the manifest's model_alternatives: provider parity

    @property
    def named(self) -> bool:
        return any(v is not None for v in (self.prompt_version, self.prompt_alias, self.model_version, self.provider))


@dataclass
class Comparison:
    """A finished champion-vs-challenger evaluation: the JSON-ready summary and the gate's verdict."""

    summary: dict[str, Any]
    gate: Any


def experiment_name(agent: str) -> str:
    return f"evals/{agent}"


def manifest_of(settings: Settings, agent: str) -> Any:
    """The agent's manifest (a ConfigError names a missing or bad file)."""
    from factory_pipelines.lib.agents.manifests import load_manifest

    path = settings.manifests_dir / f"{agent}.yaml"
    if not path.is_file():
        raise EvaluationSetupError(f"no manifest {path}")
    return load_manifest(path)


def suite_of(settings: Settings, agent: str) -> tuple[Any, Any, Any]:
    """The agent's manifest, its suite and the suite's dataset (a ConfigError names any bad file)."""
    from factory_pipelines.lib.evals.suites import load_suite

    manifest = manifest_of(settings, agent)
    path = settings.manifests_dir / f"{agent}.yaml"
    if manifest.evaluation is None:
        raise EvaluationSetupError(f"{path} names no evaluation suite (evaluation.suite)")
    suite = load_suite(settings.evals_dir / "suites" / f"{manifest.evaluation.suite}.yaml")
    if suite.agent != manifest.name:
        raise EvaluationSetupError(f"{path} names suite {suite.name}, which is agent {suite.agent}'s")
    return manifest, suite, suite.load_dataset()


def challenger_of(tracking: TrackingResource, manifest: Any, choice: ChallengerChoice) -> tuple[str | None, int | None]:
    """The challenger's prompt URI (None: the champion's) and classifier version (None: the champion's)."""
    from factory_pipelines.lib.evals.promotion import Aliases, slots

    if choice.prompt_version is not None and choice.prompt_alias is not None:
        raise EvaluationSetupError("give --prompt-version or --prompt-alias, not both")
    if choice.provider is not None and any(v is not None for v in (choice.prompt_version, choice.prompt_alias,
                                                                    choice.model_version)):
        raise EvaluationSetupError("--provider evaluates the champion's prompt and classifier on another provider: "
                                   "give it alone (one change at a time)")
    if choice.model_version is not None and not manifest.decision.first_pass:
        raise EvaluationSetupError(f"{manifest.name} has no first-pass classifier (decision.first_pass)")
    name = manifest.prompt_name
    if choice.named:
        prompt = (f"prompts:/{name}/{choice.prompt_version}" if choice.prompt_version is not None
                  else f"prompts:/{name}@{choice.prompt_alias}" if choice.prompt_alias else None)
        return prompt, choice.model_version
    current = slots(Aliases(tracking.client(), tracking.tracking_uri), manifest)
    waiting = {k: s.challenger for k, s in current.items() if s.challenger is not None and s.challenger != s.champion}
    if not waiting:
        raise NoChallenger(
            f"{manifest.name} has no challenger: change defs/registry/prompts/{name}.yaml and run `factory run --job "
            "models_job` (a changed file is registered as the next version, alias challenger), retrain the "
            "classifier the same way, or name --prompt-version, --prompt-alias, --prompt-file or --model-version")
    prompt = f"prompts:/{name}/{waiting['prompt']}" if "prompt" in waiting else None
    return prompt, waiting.get("first_pass")


def register_prompt_file(tracking: TrackingResource, warehouse: WarehouseResource, manifest: Any, path: Path,
                         actor: str) -> int:
    """A prompt file as a version of the agent's prompt: the version with the same content if there is one, else
    a new version at alias `challenger` (an audited alias move)."""
    from factory_pipelines.lib.agents.models.prompts import load_prompt_file, sync_prompts
    from factory_pipelines.lib.governance.audit.chain import record_alias_moves

    spec = load_prompt_file(path)
    if path.stem != manifest.prompt_name:
        raise EvaluationSetupError(f"{path}: a prompt file for {manifest.name} must be named {manifest.prompt_name}.yaml")
    synced = sync_prompts(tracking.client(), {manifest.prompt_name: spec}, commit=f"prompt file {path}")[manifest.prompt_name]
    if synced["created"]:
        with warehouse.connect() as con:
            record_alias_moves(con, actor, [{"kind": "prompt", "name": manifest.prompt_name, "alias": synced["alias"],
                                             "version": synced["version"], "file": str(path)}])
    return int(synced["version"])


def with_provider(settings: Settings, manifest: Any, name: str | None) -> Any:
    """The manifest with `model` replaced by its alternative `name` (None: as it is)."""
    if name is None:
        return manifest
    if name not in manifest.model_alternatives:
        known = ", ".join(sorted(manifest.model_alternatives)) or "none"
        raise EvaluationSetupError(f"{settings.manifests_dir / (manifest.name + '.yaml')}: no model_alternatives."
                                   f"{name} (the manifest declares: {known})")
    return manifest.model_copy(update={"model": manifest.model_alternatives[name]})


def configuration(settings: Settings, tracking: TrackingResource, llm: LLMResource, manifest: Any, label: str,
                  prompt_uri: str | None, classifier_version: int | None, provider: str | None = None) -> Any:
    """The manifest with the prompt, classifier and provider named, resolved from the MLflow registries."""
    from factory_pipelines.defs.agents.assets import resolve_first_pass
    from factory_pipelines.lib.agents.manifests import MODEL_URI
    from factory_pipelines.lib.agents.models.prompts import PromptError, load_registered_prompt
    from factory_pipelines.lib.agents.models.providers import model_version
    from factory_pipelines.lib.evals.harness import AgentConfiguration

    rules, replies = manifest.load_config(settings.manifests_dir.parent)
    first_pass_uri = manifest.decision.first_pass
    if first_pass_uri and classifier_version is not None:
        first_pass_uri = f"models:/{MODEL_URI.match(first_pass_uri)['name']}/{classifier_version}"  # type: ignore[index]
    try:
        prompt = load_registered_prompt(prompt_uri or manifest.prompt)
        reply_prompt = load_registered_prompt(manifest.reply.prompt) if manifest.reply and manifest.reply.prompt else None
        first_pass = resolve_first_pass(tracking, first_pass_uri) if first_pass_uri else None
    except (PromptError, dg.Failure) as exc:
        raise EvaluationSetupError(f"{label}: {getattr(exc, 'description', None) or exc}") from exc
    manifest = with_provider(settings, manifest, provider)
    chat, escalate = llm.provider(manifest.model), manifest.decision.escalate_model
    escalate_provider = llm.provider(escalate) if escalate is not None else None
    return AgentConfiguration(label, manifest, prompt, chat, model_version(chat), rules=rules,
                              replies=replies, first_pass=first_pass, reply_prompt=reply_prompt,
                              escalate_provider=escalate_provider,
                              escalate_model_version=model_version(escalate_provider) if escalate_provider else "")


def suite_parts(settings: Settings, manifest: Any, suite: Any, cases: list[dict[str, Any]],
                champion: Any) -> tuple[Any, Callable[[], Any], dict[str, Any]]:
    """The governance every case is gated by, a maker of fresh scratch worlds, and the suite's scorers."""
    import yaml

    from factory_pipelines.defs.features.assets import LEXICON_FILE
    from factory_pipelines.defs.staging.assets import CONFORM_FILE
    from factory_pipelines.lib.evals.harness import Governance
    from factory_pipelines.lib.evals.scorers import ALWAYS_SCORED, case_scorers
    from factory_pipelines.lib.evals.world import build_world, load_kb
    from factory_pipelines.lib.governance.gate_config import load_gate_config
    from factory_pipelines.lib.governance.policy import PolicyEngine

    governance = Governance(PolicyEngine.load(settings.policies_dir, manifest.policy_set),
                            load_gate_config(settings.policies_dir))
    kb, lexicon = load_kb(suite.kb_path), yaml.safe_load(LEXICON_FILE.read_text())
    fx = yaml.safe_load(CONFORM_FILE.read_text())["fx_rates_to_usd"]
    enums = {f: list(p.get("enum", [])) for f, p in champion.prompt.response_schema.get("properties", {}).items()}
    scorers = {name: scorer for name, scorer in case_scorers(enums).items()
               if name in suite.scorers or name in ALWAYS_SCORED}
    return governance, lambda: build_world(cases, kb_articles=kb, lexicon=lexicon, fx_rates=fx), scorers


def compare(settings: Settings, tracking: TrackingResource, llm: LLMResource, agent: str, choice: ChallengerChoice,
            *, trials: int | None = None, prompt_file: Path | None = None, warehouse: WarehouseResource | None = None,
            status: Callable[[str], AbstractContextManager[Any]] = lambda _: nullcontext()) -> Comparison:
    """Champion vs challenger of `agent` on its suite, logged to MLflow; `status(text)` wraps the long part."""
    from factory_pipelines.lib.evals.evaluate import compare_evaluations, evaluate_logged, register_cases
    from factory_pipelines.lib.evals.promotion import ROLE_TAG, comparison_tags
    from factory_pipelines.lib.evals.tracking import log_comparison
    from factory_pipelines.lib.governance.operators import authorize

    manifest, suite, dataset = suite_of(settings, agent)
    decision, role = authorize(settings.policies_dir, settings.operator, "evaluate", manifest)
    if decision.outcome != "allow":
        raise EvaluationSetupError(f"operator {settings.operator} (role {role}) may not evaluate {agent}: {decision.reason}")
    if prompt_file is not None:
        if choice.prompt_version is not None or choice.prompt_alias is not None:
            raise EvaluationSetupError("give --prompt-file or --prompt-version/--prompt-alias, not both")
        if warehouse is None:
            raise ValueError("a prompt file is registered with an audited alias move: pass the warehouse")
        version = register_prompt_file(tracking, warehouse, manifest, prompt_file, f"operator:{settings.operator}")
        choice = ChallengerChoice(prompt_version=version, model_version=choice.model_version)
    experiment_id = tracking.activate(experiment_name(agent))
    champion = configuration(settings, tracking, llm, manifest, "champion", None, None)
    prompt_uri, model_version = challenger_of(tracking, manifest, choice)
    challenger = configuration(settings, tracking, llm, manifest, "challenger", prompt_uri, model_version,
                               choice.provider)
    if challenger.versions == champion.versions:
        raise AlreadyChampion(f"{agent}: the challenger ({', '.join(champion.versions.values())}) is the champion "
                              "already: nothing to compare")
    cases, k = dataset.records(), trials or suite.trials
    governance, new_world, scorers = suite_parts(settings, manifest, suite, cases, champion)
    tags = {"agent": agent, "suite": suite.name, "dataset_version": dataset.version}
    registered = register_cases(dataset.name, dataset.version, cases, experiment_id)
    results, runs = {}, {}
    with status(f"deciding {len(cases)} cases x {k} trial(s), twice"):
        for side in (champion, challenger):
            results[side.label], runs[side.label] = evaluate_logged(
                cases, side, governance, new_world, scorers, trials=k, dataset=registered,
                experiment_id=experiment_id, tags=tags)
    gate = compare_evaluations(results["champion"], results["challenger"], thresholds=suite.bounds,
                               tolerances=suite.tolerances, budgets=suite.budget_limits)
    comparison_run = log_comparison(
        f"{agent} champion vs challenger", runs["champion"], runs["challenger"], gate.summary(),
        experiment_id=experiment_id,
        tags={**tags, **comparison_tags(champion.versions, challenger.versions, gate.passed),
              **({ROLE_TAG: "provider_parity"} if choice.provider else {})})  # never a gate `factory promote` finds
    summary = {"agent": agent, "suite": suite.name, "dataset": str(dataset.path), "dataset_version": dataset.version,
               "cases": len(cases), "trials": k, "champion": {**champion.params, **champion.versions},
               "challenger": {**challenger.params, **challenger.versions},
               "metrics": {label: r.metrics for label, r in results.items()}, "gate": gate.summary(),
               "decisions_differ": decisions_differ(results["champion"], results["challenger"]),
               "promotable": choice.provider is None,
               "mlflow": {"experiment_id": experiment_id, "dataset": registered.name, **{f"{label}_run": run_id
                          for label, run_id in runs.items()}, "comparison_run": comparison_run}}
    return Comparison(summary, gate)


NIGHTLY, ACCEPTED_TAG, NIGHT_TAG = "nightly", "eval.accepted", "eval.night"


@dataclass
class NightlyScores:
    """One night's re-run of the golden suite on the champion, against its last accepted scores.

    `accepted_from` says where those came from: `promotion` (the champion's side of the gate that promoted it),
    `accepted` (a nightly run tagged `eval.accepted=true`), `evaluation` (the champion side of the latest
    comparison of the same versions on the same dataset version) or `baseline` (none: tonight's run is the
    accepted baseline from now on)."""

    agent: str
    day: date
    current: dict[str, float]
    accepted: dict[str, float]
    accepted_run_id: str
    accepted_from: str
    run_id: str
    dataset_version: str
    champion: dict[str, str]
    n_cases: int
    results: list[Any]  # lib.drift.records.DriftResult, one per gated metric
    seconds: float

    @property
    def verdict(self) -> str:
        from factory_pipelines.lib.drift.records import worst

        return worst(r.status for r in self.results)


@dataclass(frozen=True)
class AcceptedScores:
    run_id: str
    source: str  # promotion | accepted | evaluation
    dataset_version: str
    metrics: dict[str, float]


def nightly_scores(settings: Settings, tracking: TrackingResource, llm: LLMResource, agent: str, *,
                   day: date | None = None, accept: bool = False,
                   bounds: Mapping[str, tuple[float, float]] | None = None) -> NightlyScores:
    """The champion alone on its golden suite, logged as one MLflow run of experiment `evals/<agent>` (tags
    eval.role=nightly, eval.night=<day> and the champion's versions), judged against its last accepted scores
    (`lib.drift.scores`: one record per gated metric; `bounds` overrides a metric's (warn, error)). With no
    accepted scores, or with `accept`, tonight's run becomes the accepted baseline (tag eval.accepted=true)."""
    from factory_pipelines.lib.drift.records import worst
    from factory_pipelines.lib.drift.scores import baseline, gated_bounds, not_comparable, score_drift
    from factory_pipelines.lib.evals.evaluate import evaluate_logged, register_cases
    from factory_pipelines.lib.evals.promotion import DATASET_TAG, ROLE_TAG, side_tags
    from factory_pipelines.lib.governance.operators import authorize

    started = time.perf_counter()
    manifest, suite, dataset = suite_of(settings, agent)
    if accept:
        decision, role = authorize(settings.policies_dir, settings.operator, "evaluate", manifest)
        if decision.outcome != "allow":
            raise EvaluationSetupError(f"operator {settings.operator} (role {role}) may not accept {agent}'s "
                                       f"nightly scores: {decision.reason}")
    day = day or datetime.now(UTC).date()
    gated = gated_bounds(suite, bounds)
    experiment_id = tracking.activate(experiment_name(agent))
    champion = configuration(settings, tracking, llm, manifest, NIGHTLY, None, None)
    client = tracking.client()
    found = None if accept else accepted_scores(client, experiment_id, champion.versions, dataset.version)
    cases = dataset.records()
    governance, new_world, scorers = suite_parts(settings, manifest, suite, cases, champion)
    tags = {"agent": agent, "suite": suite.name, DATASET_TAG: dataset.version, ROLE_TAG: NIGHTLY,
            NIGHT_TAG: day.isoformat(), **side_tags("champion", champion.versions)}
    registered = register_cases(dataset.name, dataset.version, cases, experiment_id)
    evaluation, run_id = evaluate_logged(cases, champion, governance, new_world, scorers, trials=suite.trials,
                                         dataset=registered, experiment_id=experiment_id, tags=tags)
    current, n = dict(evaluation.metrics), len(cases)
    if found is None:
        results, accepted, accepted_run, source = baseline(current, gated, n), current, run_id, "baseline"
        client.set_tag(run_id, ACCEPTED_TAG, "true")
    elif found.dataset_version != dataset.version:
        accepted, accepted_run, source = found.metrics, found.run_id, found.source
        results = not_comparable(gated, n, (
            f"the golden dataset changed: the accepted scores (MLflow run {found.run_id}) are on dataset version "
            f"{found.dataset_version}, the suite's is {dataset.version}, so they are not compared; to accept "
            f"tonight's scores as the new baseline, tag run {run_id} {ACCEPTED_TAG}=true (MLflow UI, the run, "
            "Tags) or re-run the nightly with accept"), current, found.metrics)
    else:
        accepted, accepted_run, source = found.metrics, found.run_id, found.source
        results = score_drift(current, found.metrics, gated, n)
    client.set_tag(run_id, "eval.accepted_run_id", accepted_run)
    client.set_tag(run_id, "eval.drift", worst(r.status for r in results))
    return NightlyScores(agent, day, current, dict(accepted), accepted_run, source, run_id, dataset.version,
                         dict(champion.versions), n, results, round(time.perf_counter() - started, 2))


def accepted_scores(client: Any, experiment_id: str, versions: Mapping[str, str],
                    dataset_version: str) -> AcceptedScores | None:
    """The champion's last accepted scores: the most recent of its own side of the passed gate that promoted it
    (it was the challenger there) and a nightly run tagged eval.accepted=true for the same versions, whatever
    the dataset version; else, for a champion never promoted through the gate, its side of the latest
    comparison of the same versions on this dataset version; None when there is neither."""
    from factory_pipelines.lib.evals.promotion import DATASET_TAG, GATE_TAG, ROLE_TAG, side_tags

    def latest(wanted: Mapping[str, str]) -> Any:
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in wanted.items())
        runs = client.search_runs([experiment_id], filter_string=where, order_by=["attributes.start_time DESC"],
                                  max_results=1)
        return runs[0] if runs else None

    gate = latest({ROLE_TAG: "comparison", GATE_TAG: "passed", **side_tags("challenger", versions)})
    night = latest({ROLE_TAG: NIGHTLY, ACCEPTED_TAG: "true", **side_tags("champion", versions)})
    candidates = [(run.info.start_time, source, run.data.tags.get(tag) or run.info.run_id)
                  for run, source, tag in ((gate, "promotion", "eval.challenger_run_id"), (night, "accepted", ""))
                  if run is not None]
    if not candidates:
        compared = latest({ROLE_TAG: "comparison", DATASET_TAG: dataset_version, **side_tags("champion", versions)})
        if compared is None or not compared.data.tags.get("eval.champion_run_id"):
            return None
        candidates = [(compared.info.start_time, "evaluation", compared.data.tags["eval.champion_run_id"])]
    _, source, run_id = max(candidates)
    run = client.get_run(run_id)
    return AcceptedScores(run_id, source, run.data.tags.get(DATASET_TAG) or run.data.tags.get("eval.dataset_version", ""),
                          {k: float(v) for k, v in run.data.metrics.items()})


def decisions_differ(champion: Any, challenger: Any) -> dict[str, list[str]]:
    """Per decision field, the cases whose first trial the two sides decided differently (right or wrong)."""
    from factory_pipelines.lib.evals.scorers import DECISION_FIELDS

    first = {o.case_id: o for o in champion.outcomes if o.trial == 0}
    differ: dict[str, list[str]] = {}
    for other in (o for o in challenger.outcomes if o.trial == 0):
        mine = first[other.case_id].decision
        for name in DECISION_FIELDS:
            if (name in mine or name in other.decision) and mine.get(name) != other.decision.get(name):
                differ.setdefault(name, []).append(other.case_id)
    return differ


def build_eval_assets(settings: Settings, manifests: list[Any], after: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`evals/<agent>` for every manifest that names a suite: downstream of the prompt and model registries."""
    return [_eval_asset(settings, manifest, after) for manifest in manifests if manifest.evaluation is not None]


def _eval_asset(settings: Settings, manifest: Any, after: list[dg.AssetKey]) -> dg.AssetsDefinition:
    suite_file = settings.evals_dir / "suites" / f"{manifest.evaluation.suite}.yaml"
    key = dg.AssetKey(["evals", manifest.name])

    @dg.asset(
        key=key, deps=after, group_name="evals", kinds={"mlflow"}, owners=["team:ml-platform"],
        tags={"layer": "evals"}, check_specs=[gate_check_spec(key, manifest.name)],
        code_version=hashlib.sha256(suite_file.read_bytes()).hexdigest()[:12] if suite_file.is_file() else None,
        description=(f"{manifest.name}'s champion vs the challenger the registries hold at alias `challenger`, "
                     f"on suite {manifest.evaluation.suite} (evals/suites/{suite_file.name}): "
                     "both evaluations and their paired comparison logged to MLflow experiment "
                     f"{experiment_name(manifest.name)}; the promotion gate is the check."),
    )
    def evaluation(context: dg.AssetExecutionContext, tracking: TrackingResource,
                   llm: LLMResource) -> dg.MaterializeResult:
        try:
            result = compare(settings, tracking, llm, manifest.name, ChallengerChoice())
        except NoChallenger as exc:
            context.log.info(str(exc))
            return dg.MaterializeResult(metadata={"challenger": "none", "why": str(exc)},
                                        check_results=[gate_check_result(manifest.name, None)])
        except EvaluationSetupError as exc:
            raise dg.Failure(str(exc)) from exc
        return dg.MaterializeResult(metadata=_metadata(result.summary),
                                    check_results=[gate_check_result(manifest.name, result)])

    return evaluation


def _metadata(summary: dict[str, Any]) -> dict[str, Any]:
    runs = summary["mlflow"]
    return {"champion": summary["champion"]["prompt"] + " + " + summary["champion"]["first_pass"],
            "challenger": summary["challenger"]["prompt"] + " + " + summary["challenger"]["first_pass"],
            "dataset_version": summary["dataset_version"], "cases": summary["cases"], "trials": summary["trials"],
            "gate_passed": summary["gate"]["passed"], "mlflow_experiment_id": runs["experiment_id"],
            "mlflow_comparison_run": runs["comparison_run"],
            "metrics": dg.MetadataValue.json(summary["metrics"])}


def build_live_assets(settings: Settings, manifests: list[Any],
                      partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """`evals/live/<agent>` for every agent with a suite: the day's live comparison of a staged challenger."""
    return [_live_asset(settings, manifest, partitions) for manifest in manifests if manifest.evaluation is not None]


def _live_asset(settings: Settings, manifest: Any, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey(["evals", "live", manifest.name])
    suite_file = settings.evals_dir / "suites" / f"{manifest.evaluation.suite}.yaml"

    @dg.asset(
        key=key, deps=[dg.AssetKey(["agents", manifest.name])], partitions_def=partitions, group_name="evals",
        kinds={"duckdb"}, owners=["team:ml-platform"], tags={"layer": "evals"},
        check_specs=[live_check_spec(key, manifest.name)],
        description=(f"The day's live comparison of {manifest.name}'s challenger in shadow or canary with the "
                     "champion, on the same tickets (agents.decisions beside agents.shadow_decisions): agreement "
                     "per field, escalation and denial rates, cost per ticket; judged by the suite's stages.live "
                     "bounds and recorded in evals.live_days, where `factory promote` counts the passing days."),
    )
    def live_comparison(context: dg.AssetExecutionContext, tracking: TrackingResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
        from factory_pipelines.defs.agents.assets import rollout_of
        from factory_pipelines.lib.evals.rollout import Stages, judge_live, live_day, record_live_day
        from factory_pipelines.lib.evals.suites import load_suite

        day, rollout = context.partition_key, rollout_of(tracking, manifest, suite_file)
        if rollout is None:
            return dg.MaterializeResult(metadata={"stage": "none"},
                                        check_results=[live_check_result(manifest.name, None, [], {})])
        bounds = (load_suite(suite_file).stages or Stages()).live
        with warehouse.connect() as con:
            metrics = live_day(con, manifest.name, day, rollout.stage)
            failures = judge_live(metrics, bounds)
            record_live_day(con, manifest.name, day, rollout, metrics, failures, context.run.run_id)
        return dg.MaterializeResult(
            metadata={"stage": rollout.stage, "challenger": dg.MetadataValue.json(rollout.changed()),
                      "paired_tickets": metrics["paired"], "agreement": dg.MetadataValue.json(metrics["agreement"]),
                      "champion": dg.MetadataValue.json(metrics["champion"]),
                      "challenger_live": dg.MetadataValue.json(metrics["challenger"])},
            check_results=[live_check_result(manifest.name, rollout, failures, metrics)])

    return live_comparison
