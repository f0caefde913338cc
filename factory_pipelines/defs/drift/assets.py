"""The drift domain's assets: `drift/<agent>`, one night of an agent judged against its reference window.

For the day of its partition it reads the features the agent read (its Feast service, point in time), the
day's ticket texts, its decisions and tool calls, and the first pass's confidences with the labels where they
exist, over the reference window and the day (`drift/<agent>.yaml`); every family is evaluated with Evidently
(`lib/drift`), the records are kept in `drift.results`, the night's HTML report is written to
`<drift_dir>/<agent>/<day>.html` and logged with the metrics to MLflow (experiment `drift/<agent>`). A window
with no rows (the first days of a factory, a quiet day) is not a crash: every check fails at WARN naming the
window and the table, and the night is recorded as unjudged.
"""

import time
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.defs.agents.assets import MODEL_POOL
from factory_pipelines.defs.drift.checks import FAMILIES, WINDOW_METRIC, check_result, check_spec
from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource
from factory_pipelines.settings import Settings

TREND_NIGHTS = 30  # nights of history drawn in the report's trend lines


def experiment_name(agent: str) -> str:
    return f"drift/{agent}"


def report_path(drift_dir: Path, agent: str, day: date) -> Path:
    return Path(drift_dir) / agent / f"{day.isoformat()}.html"


def configured_families(config: Any) -> list[str]:
    """The families `drift/<agent>.yaml` turns on, in check order (eval scores have their own asset,
    `drift/eval_scores/<agent>`)."""
    return [f for f in FAMILIES if f != "eval_scores" and getattr(config, f) is not None]


def judge_night(config: Any, day: date, con: Any, labels_dir: Path, read_features: Any) -> Any:
    """The agent's `DriftRun` for `day`; a window without rows gives a night of one unjudged `window` record."""
    from factory_pipelines.lib.drift.config import windows
    from factory_pipelines.lib.drift.evaluate import evaluate_night
    from factory_pipelines.lib.drift.inputs import label_days, load_inputs
    from factory_pipelines.lib.drift.records import DriftRun, DriftWindowError, insufficient

    reference, current = windows(config, day)
    labels = label_days(labels_dir, reference.start, current.end) if config.quality else {}
    inputs = load_inputs(con, config, reference.start, current.end, labels=labels, read_features=read_features)
    try:
        return evaluate_night(config, day, inputs)
    except DriftWindowError as exc:
        record = insufficient(WINDOW_METRIC, "rows", "window", 0.0, 0.0, 0, 0, str(exc))
        return DriftRun(config.agent, day, reference, current, (record,))


def log_night(tracking: TrackingResource, run: Any, report: Path, dagster_run_id: str) -> str:
    """One MLflow run per night in `drift/<agent>`: the judged values as metrics (trends plot in the UI), the
    report as an artifact; returns its run id."""
    import mlflow

    tracking.activate(experiment_name(run.agent))
    tags = {"agent": run.agent, "day": run.day.isoformat(), "verdict": run.verdict,
            "reference": str(run.reference), "current": str(run.current), "dagster_run_id": dagster_run_id}
    with mlflow.start_run(run_name=f"{run.agent} {run.day.isoformat()}", tags=tags) as active:
        step = int(time.mktime(run.day.timetuple()) // 86400)  # days since the epoch: one step per night
        mlflow.log_metrics(run.mlflow_metrics(), step=step)
        mlflow.log_artifact(str(report), artifact_path="report")
        return str(active.info.run_id)


def build_drift_asset(settings: Settings, manifest: Any, config: Any, partitions: dg.PartitionsDefinition,
                      scores: dg.AssetKey | None = None) -> dg.AssetsDefinition:
    """`drift/<agent>` downstream of `agents/<agent>` (and of `scores`, the night's evaluation scores, which its
    report and verdict include when they ran), one check per configured family."""
    agent = manifest.name
    key = dg.AssetKey(["drift", agent])
    families = configured_families(config)
    drift_dir, labels_dir, service = Path(settings.drift_dir), Path(settings.labels_dir), manifest.feature_service
    deps = [dg.AssetKey(["agents", agent]), *([scores] if scores else [])]

    @dg.asset(key=key, deps=deps, partitions_def=partitions, group_name="drift",
              check_specs=[check_spec(key, f) for f in families], kinds={"evidently", "duckdb", "mlflow"},
              owners=["team:ml-platform"], tags={"layer": "drift"},
              description=f"Nightly drift of {agent}: {', '.join(families)} of the day against the "
                          f"{config.windows.reference.days or 'fixed'}-day reference (drift/{agent}.yaml).")
    def drift_night(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    feature_store: FeatureStoreResource, tracking: TrackingResource) -> Any:
        from dataclasses import replace

        from factory_pipelines.lib.drift.report import write_report
        from factory_pipelines.lib.drift.store import history, record_night, scores_of

        day = date.fromisoformat(context.partition_key)
        with warehouse.connect() as con:
            run = judge_night(config, day, con, labels_dir,
                              lambda entities: feature_store.historical_features(entities, service))
            record_night(con, run, context.run.run_id)
            past = history(con, agent, day, TREND_NIGHTS)
            whole = replace(run, results=run.results + scores_of(con, agent, day))  # what the page shows
        report = write_report(whole, report_path(drift_dir, agent, day), past)
        mlflow_run = log_night(tracking, whole, report, context.run.run_id)
        links = {"report": dg.MetadataValue.path(str(report)), "mlflow_run": mlflow_run}
        context.log.info(f"drift/{agent} {day}: {whole.verdict} ({len(whole.by_status('error'))} error, "
                         f"{len(whole.by_status('warn'))} warn records); report {report}")
        yield dg.MaterializeResult(metadata={
            "verdict": whole.verdict, "reference": str(run.reference), "current": str(run.current),
            "drifted_slices": dg.MetadataValue.json(whole.drifted_slices()), "records": len(whole.results), **links})
        for family in families:
            yield check_result(family, list(run.results), links)

    return drift_night


def scores_key(agent: str) -> dg.AssetKey:
    return dg.AssetKey(["drift", "eval_scores", agent])


def build_scores_asset(settings: Settings, manifest: Any, config: Any, partitions: dg.PartitionsDefinition,
                       after: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """`drift/eval_scores/<agent>`: the agent's golden suite re-run on its champion for the night, judged against
    the champion's last accepted scores (`nightly_scores`), downstream of the registries that name the champion."""
    agent, key = manifest.name, scores_key(manifest.name)
    bounds = config.eval_scores.pairs()

    @dg.asset(key=key, deps=after, partitions_def=partitions, group_name="drift",
              check_specs=[check_spec(key, "eval_scores")], kinds={"mlflow", "duckdb"}, owners=["team:ml-platform"],
              tags={"layer": "drift"}, pool=MODEL_POOL,
              description=f"The golden suite {manifest.evaluation.suite} re-run on {agent}'s champion each night "
                          f"(MLflow experiment evals/{agent}, eval.role=nightly), against its last accepted scores.")
    def eval_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource, tracking: TrackingResource,
                    llm: LLMResource) -> Any:
        from factory_pipelines.defs.evals.assets import EvaluationSetupError, nightly_scores
        from factory_pipelines.lib.drift.records import insufficient
        from factory_pipelines.lib.drift.scores import METRIC
        from factory_pipelines.lib.drift.store import record_scores

        day = date.fromisoformat(context.partition_key)
        try:
            scores = nightly_scores(settings, tracking, llm, agent, day=day, bounds=bounds)
        except EvaluationSetupError as exc:  # no champion yet, no suite: a night with nothing to judge, said so
            context.log.warning(f"drift/eval_scores/{agent} {day}: the golden suite did not run: {exc}")
            unjudged = [insufficient(METRIC, "suite", "run", 0.0, 0.0, 0, 0, f"the golden suite did not run: {exc}")]
            with warehouse.connect() as con:
                record_scores(con, agent, day, unjudged, context.run.run_id)
            yield dg.MaterializeResult(metadata={"verdict": "insufficient", "why": str(exc)})
            yield check_result("eval_scores", unjudged, {})
            return
        with warehouse.connect() as con:
            record_scores(con, agent, day, scores.results, context.run.run_id)
        links = {"mlflow_run": scores.run_id, "accepted_run": scores.accepted_run_id}
        context.log.info(f"drift/eval_scores/{agent} {day}: {scores.verdict} against the scores accepted from "
                         f"{scores.accepted_from} (MLflow run {scores.accepted_run_id}), {scores.n_cases} cases in "
                         f"{scores.seconds} s")
        yield dg.MaterializeResult(metadata={
            "verdict": scores.verdict, "accepted_from": scores.accepted_from, "dataset_version": scores.dataset_version,
            "champion": dg.MetadataValue.json(scores.champion), "cases": scores.n_cases, "seconds": scores.seconds,
            "scores": dg.MetadataValue.json(scores.current), **links})
        yield check_result("eval_scores", scores.results, links)

    return eval_scores
