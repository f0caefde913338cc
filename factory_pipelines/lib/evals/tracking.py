"""The MLflow side of an evaluation: the golden dataset as an MLflow evaluation dataset, the per-case scores as
assessments on the agent's own traces, each agent configuration as a LoggedModel, and the paired comparison
of champion and challenger as a run of its own.

The agent has already decided every case (the harness ran it, each case in its own trace); MLflow only scores
the precomputed outputs with code scorers, so an evaluation never calls a model. MLflow is imported inside the
functions, so loading the code location stays fast; the caller points MLflow at the tracking store and turns
its telemetry off (`TrackingResource.activate`). `mlflow.genai.evaluate` is not thread-safe: one at a time.

Facts checked on MLflow 3.17.2 (sqlite store, no network: a blocked `socket.connect` saw no attempt):
- `mlflow.genai.datasets.create_dataset(name, experiment_id, tags)` + `EvaluationDataset.merge_records` make a
  dataset the experiment's Datasets page lists. Outside Databricks there are no dataset versions
  (`list_versions` raises) and names are not unique, so the version goes in the name (`<name>@<version>`) and a
  `version` tag, and an existing name is reused. Records are upserted by a hash of `inputs` (two cases with the
  same inputs would merge). The digest is sha256(name:last_update_time)[:8], changed by every merge, and the
  handle `merge_records` returns keeps the old one: read the dataset again before linking it.
- `evaluate(data=<EvaluationDataset>)` logs it as the run's input (source_type `mlflow_evaluation_dataset`,
  source `{"dataset_id": ...}`), but its records have no outputs. A DataFrame carrying the dataset identity in
  `df.attrs[MLFLOW_GENAI_EVALUATE_DATASET_IDENTITY]` (with `records_sha256` of that DataFrame) is linked the same
  way, outputs included. That is how `to_df()` keeps lineage; the test checks the run's input.
- Rows with `inputs`, `outputs`, `expectations` and `trace`: a `Trace` of the same experiment is used as it is
  (another experiment's is copied and the copy scored, `harness._should_clone_trace`). It is linked to the run
  and gets one CODE assessment per scorer (`mlflow.assessment.sourceRunId` = run) plus one HUMAN expectation per
  expectation key, so the case's expectations go in as one key (`EXPECTED`) and the scorers get them unpacked.
  A frame without a `trace` column gets a minimal new trace per row; a frame where only some rows have one
  fails (`_convert_to_eval_set` reads `.data` of the NaN), so a record without a trace gets one made here. A
  scorer returning None logs no assessment and is left out of `<scorer>/mean`, the aggregate each scorer logs.
- What a case costs (306 cases: about 45 s a side with MLflow's defaults, about 10 s, 30 ms a case, as configured
  here; `benchmarks/eval_overhead.py`): the harness throttles "predictions" (here: linking the trace to the
  run) to 10-20 a second (`MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT` "auto") and scorer calls to that times the
  number of scorers, runs
  `MLFLOW_GENAI_EVAL_MAX_WORKERS` (10) items at once, each item's scorers in a pool of
  `MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS` (10) threads, and each scorer call in a thread of its own unless the
  scorer has `timeout=0` (default 300 s); the settings are read when `evaluate` runs (`EVALUATE_SETTINGS`).
  Every assessment is a transaction of its own (`create_assessment`, no batch API), about 1.7 ms of CPU on
  SQLite; after scoring every trace is read again (`get_trace`, which reads the trace info twice: about 5 ms).
  `search_traces(filter_string="trace.request_id IN (...)")` returns full traces, about 1.3 ms each. The first
  `evaluate` of a process imports `databricks.sdk` (`harness._warmup_databricks_sdk`, 2-5 s). A trace made
  inside `set_active_model` costs about 3 ms of CPU more to export than one outside it.
- `result_df` has one row per record in input order, with `<scorer>/value` and, where a scorer raised,
  `<scorer>/error_message`. MLflow only warns, and `<scorer>/mean` averages the cases that did not fail.
- `mlflow.create_external_model(name, params, tags, model_type, experiment_id)` makes a READY LoggedModel.
  `search_logged_models(filter_string="tags.k = 'v'")` finds it again. `evaluate(model_id=)` adds a model input
  to the run and copies the run's metrics onto the model (with dataset name and digest). Traces link to it only
  when made inside `set_active_model(model_id=)` (a context manager); `search_traces(model_id=)` finds them.
- Evaluation runs page: columns Run Name, Status, Type ("Eval"), Created at, Dataset, Version (the LoggedModel),
  and the metrics, params and tags you pick; "Compare" takes two selected runs. `search_runs` filters on
  `tags.x` and `dataset.name`. The artifact viewer renders `.md` and `.html`. (Read from the UI bundle.)
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import math
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MODEL_HASH_TAG = "config_sha256"
SCORERS = "case_scorers"  # the one MLflow scorer that runs every case scorer (`_as_scorer`)
EXPECTED = "expected"  # the one expectation each trace gets: the case's expectations, all keys in one value
TRACE_BATCH = 100  # trace ids per search
# MLflow's evaluation harness as code scorers on precomputed outputs need it: one worker (the SQLite store takes
# one writer at a time; ten threads only queued for its connections) and no rate limits (by default predictions
# are throttled to 10-20 a second and scorer calls to 10 a second per scorer, for remote judges).
EVALUATE_SETTINGS = {"MLFLOW_GENAI_EVAL_MAX_WORKERS": "1", "MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS": "1",
                     "MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT": "0", "MLFLOW_GENAI_EVAL_SCORER_RATE_LIMIT": "0"}


class ScorerError(RuntimeError):
    """A scorer raised on a case; MLflow would only have warned. The run is marked FAILED."""


@dataclass(frozen=True)
class RegisteredDataset:
    """A golden dataset version as an MLflow evaluation dataset (`name` is `<suite>@<version>`)."""

    dataset_id: str
    name: str
    version: str
    digest: str
    records: int
    created: bool  # False when this version was registered before


@dataclass(frozen=True)
class EvaluationRun:
    """One `mlflow.genai.evaluate` run: per-case values by scorer (record order; None: did not apply), metrics."""

    run_id: str
    trace_ids: list[str]
    values: dict[str, list[float | None]]
    metrics: dict[str, float]


def register_dataset(name: str, version: str, records: Sequence[Mapping[str, Any]], experiment_id: str) -> RegisteredDataset:
    """Register `records` ({inputs, expectations, tags?}; tags such as the case id) as `<name>@<version>` once:
    the same version again is reused, so its digest, which the runs recorded, stays the same."""
    from mlflow.genai.datasets import add_dataset_to_experiments, create_dataset, get_dataset, search_datasets

    full = f"{name}@{version}"
    if "'" in full or '"' in full:
        raise ValueError(f"dataset name {full!r} must not contain quotes")
    rows = [{"inputs": dict(r["inputs"]), "expectations": dict(r.get("expectations") or {}),
             **({"tags": dict(r["tags"])} if r.get("tags") else {})} for r in records]
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = json.dumps(row["inputs"], sort_keys=True, default=str)
        if key in seen:
            raise ValueError(f"{full}: records {seen[key]} and {i} have the same inputs; MLflow would merge them")
        seen[key] = i
    tune_sqlite_store()
    found = search_datasets(filter_string=f"name = '{full}'", order_by=["created_time ASC"], max_results=1)
    dataset = found[0] if found else create_dataset(name=full, experiment_id=experiment_id,
                                                    tags={"dataset": name, "version": version})
    if experiment_id not in (dataset.experiment_ids or []):
        add_dataset_to_experiments(dataset.dataset_id, [experiment_id])
    if _record_count(dataset) != len(rows):  # new, or a registration that stopped half-way
        dataset.merge_records(rows)
    dataset = get_dataset(dataset_id=dataset.dataset_id)  # merge_records leaves the old digest on the handle
    return RegisteredDataset(dataset.dataset_id, full, version, dataset.digest, _record_count(dataset), not found)


def _record_count(dataset: Any) -> int:
    return int(json.loads(dataset.profile or "{}").get("num_records", 0))


def evaluate_outputs(run_name: str, records: Sequence[Mapping[str, Any]], scorers: Mapping[str, Callable[..., Any]],
                     *, dataset: RegisteredDataset, experiment_id: str, tags: Mapping[str, str],
                     model_id: str | None = None, metrics: Mapping[str, float] | None = None) -> EvaluationRun:
    """Score precomputed outputs in one run named `run_name`, linked to `dataset` and `model_id`.

    `records`: {inputs, outputs, expectations, trace_id?}; `scorers`: name -> `@scorer`-shaped function of
    (inputs, outputs, expectations, trace) keywords. `metrics` (suite metrics) go on the same run. Raises
    ScorerError naming the scorer and the first failing case, instead of MLflow's warning.
    """
    import mlflow
    from mlflow.genai.datasets import get_dataset

    if not records:
        raise ValueError(f"{run_name}: no records to evaluate")
    tune_sqlite_store()
    handle = get_dataset(dataset_id=dataset.dataset_id)
    frame = _frame(records, handle)
    run_tags = {**tags, "eval.dataset": dataset.name, "eval.dataset_version": dataset.version}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        for key, value in EVALUATE_SETTINGS.items():  # read when `evaluate` runs; what every evaluation here needs
            os.environ[key] = value
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a banner: the caller reports instead
            result = mlflow.genai.evaluate(data=frame, scorers=[_as_scorer(scorers)],
                                           model_id=model_id)
        table = result.result_df
        if table is None or len(table) != len(records):
            raise RuntimeError(f"{run_name}: MLflow returned {0 if table is None else len(table)} result rows "
                               f"for {len(records)} records")
        _raise_on_scorer_error(table, scorers, records)
        if metrics:
            mlflow.log_metrics(dict(metrics), dataset=handle, model_id=model_id)
    values = {name: [_number(v) for v in table[f"{name}/value"]] if f"{name}/value" in table else [None] * len(table)
              for name in scorers}
    return EvaluationRun(run.info.run_id, list(table["trace_id"]), values,
                         {**{k: float(v) for k, v in result.metrics.items()}, **dict(metrics or {})})


def tune_sqlite_store() -> bool:
    """A SQLite tracking store in WAL mode with `synchronous=NORMAL` (no fsync per commit); other stores as they
    are. Every assessment MLflow logs is a transaction of its own; in SQLite's default rollback-journal mode each
    commit syncs the journal and the database. WAL is stored in the database file (kept for every later
    process); `synchronous` is set on each connection of the process's MLflow engine. A commit can then be lost
    on power loss, not on a crash of the process, and the file stays consistent. Returns whether it was tuned."""
    import sqlite3

    from mlflow.tracking._tracking_service.utils import _get_store
    from sqlalchemy import event

    engine = getattr(_get_store(), "engine", None)
    if engine is None or engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    if getattr(engine, "_factory_tuned", False):
        return True

    def on_connect(connection: Any, _record: Any) -> None:
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # needs a moment without other writers; else later
        except sqlite3.OperationalError:
            pass
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # pooled connections were opened before the listener: new ones get the pragmas
    engine._factory_tuned = True
    return True


def _frame(records: Sequence[Mapping[str, Any]], handle: Any) -> Any:
    """The rows for `evaluate`, with the agent's traces, carrying the dataset identity so the run links to it.
    A record without a trace (a case that failed before its trace id was kept) gets a trace of its own here, so
    every case still gets its assessments."""
    import pandas as pd
    from mlflow.genai.datasets.evaluation_dataset import compute_records_sha256
    from mlflow.utils.mlflow_tags import MLFLOW_GENAI_EVALUATE_DATASET_IDENTITY

    trace_ids = [record.get("trace_id") or _stand_in_trace(record, i) for i, record in enumerate(records)]
    traces = _traces(trace_ids)
    rows = []
    for i, (record, trace_id) in enumerate(zip(records, trace_ids, strict=True)):
        if trace_id not in traces:
            raise ValueError(f"{_case(record, i)}: trace {trace_id} is not in the tracking store")
        rows.append({"inputs": dict(record["inputs"]), "outputs": record["outputs"],
                     "expectations": {EXPECTED: dict(record.get("expectations") or {})}, "trace": traces[trace_id]})
    frame = pd.DataFrame(rows)
    frame.attrs[MLFLOW_GENAI_EVALUATE_DATASET_IDENTITY] = {
        "name": handle.name, "digest": handle.digest, "source_type": handle.source_type,
        "source": handle.source.to_json(), "schema": handle.schema, "profile": handle.profile,
        "records_sha256": compute_records_sha256(frame)}
    return frame


def _traces(trace_ids: Sequence[str]) -> dict[str, Any]:
    """The traces of `trace_ids`, spans included, by id: one search per TRACE_BATCH ids (`get_trace` per id reads
    each trace's info twice, about four times the cost)."""
    import mlflow

    wanted = list(dict.fromkeys(trace_ids))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), TRACE_BATCH):
        batch = wanted[start:start + TRACE_BATCH]
        ids = ", ".join(f"'{t}'" for t in batch)
        if "'" in "".join(batch):
            raise ValueError(f"trace ids must not contain quotes: {batch}")
        for trace in mlflow.search_traces(filter_string=f"trace.request_id IN ({ids})", max_results=len(batch),
                                          return_type="list"):
            found[trace.info.trace_id] = trace
    return found


def _stand_in_trace(record: Mapping[str, Any], index: int) -> str:
    """A trace holding the record's inputs and outputs, for a record that came without one."""
    import mlflow

    with mlflow.start_span(name=f"evaluation {_case(record, index)} (no agent trace)") as span:
        span.set_inputs(dict(record["inputs"]))
        span.set_outputs(record["outputs"])
    return span.trace_id


def _as_scorer(scorers: Mapping[str, Callable[..., Any]]) -> Any:
    """The scorers as one MLflow code scorer (`SCORERS`) that returns a Feedback per scorer and case, named after
    the scorer, source CODE with the scorer's name as its id, as MLflow makes them for one scorer each; None
    logs nothing; a scorer that raises gives a Feedback with its error (`<scorer>/error_message`), as in MLflow.
    One MLflow scorer instead of one per function: MLflow hashes each scorer's source for every case
    (`add_scorer_metadata`) and schedules each call as a future; nine scorers cost 4.6 ms of CPU a case, one
    0.8 ms. Each function gets the keywords its signature names, the expectations unpacked (`EXPECTED`)."""
    from mlflow.entities import AssessmentError, AssessmentSource, AssessmentSourceType, Feedback
    from mlflow.genai.scorers import Scorer, scorer

    wanted = {}
    for name, function in scorers.items():
        if isinstance(function, Scorer):
            raise TypeError(f"scorer {name}: give the function, not an MLflow Scorer")
        wanted[name] = set(inspect.signature(function).parameters)

    def case_scorers(inputs: Any, outputs: Any, expectations: Any, trace: Any) -> list[Any]:
        given = {"inputs": inputs, "outputs": outputs, "expectations": _unpacked(expectations), "trace": trace}
        feedbacks = []
        for name, function in scorers.items():
            source = AssessmentSource(source_type=AssessmentSourceType.CODE, source_id=name)
            try:
                value = function(**{k: v for k, v in given.items() if k in wanted[name]})
            except Exception as exc:  # reported per case by MLflow, turned into ScorerError by the caller
                feedbacks.append(Feedback(name=name, source=source, error=AssessmentError(
                    error_code="SCORER_ERROR", error_message=str(exc), stack_trace=traceback.format_exc())))
                continue
            if value is not None:
                feedbacks.append(Feedback(name=name, value=value, source=source))
        return feedbacks

    return scorer(case_scorers, name=SCORERS, timeout=0)  # no timeout: MLflow would run each call in a thread


def _unpacked(expectations: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((expectations or {}).get(EXPECTED) or {})


def _raise_on_scorer_error(table: Any, scorers: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    for name in scorers:
        column = f"{name}/error_message"
        if column not in table:
            continue
        failed = [i for i, message in enumerate(table[column]) if isinstance(message, str)]
        if failed:
            first = failed[0]
            raise ScorerError(f"scorer {name} raised on {_case(records[first], first)} (trace "
                              f"{table['trace_id'].iloc[first]}): {table[column].iloc[first]}; "
                              f"{len(failed)} of {len(records)} cases failed")


def _case(record: Mapping[str, Any], index: int) -> str:
    inputs = record.get("inputs") or {}
    if "case_id" not in inputs:
        return f"record {index}"
    return f"case {inputs['case_id']}" + (f" trial {inputs['trial']}" if "trial" in inputs else "")


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def model_configuration(name: str, params: Mapping[str, Any], experiment_id: str) -> str:
    """The LoggedModel of one agent configuration (provider, model, parameters, prompt name and version): the
    same name and params give the same model id, so traces and runs of a configuration group under it."""
    import mlflow

    text = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in sorted(params.items())}
    digest = hashlib.sha256(json.dumps([name, text], sort_keys=True).encode()).hexdigest()
    found = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list", max_results=1,
                                        filter_string=f"tags.{MODEL_HASH_TAG} = '{digest}'")
    if found:
        return found[0].model_id
    return mlflow.create_external_model(name=name, params=text, tags={MODEL_HASH_TAG: digest}, model_type="agent",
                                        experiment_id=experiment_id).model_id


@contextmanager
def active_model(model_id: str) -> Iterator[None]:
    """Run the agent inside this so its traces link to the configuration's LoggedModel."""
    import mlflow

    with mlflow.set_active_model(model_id=model_id):
        yield


def log_comparison(run_name: str, champion_run_id: str, challenger_run_id: str, comparison: Mapping[str, Any],
                   *, experiment_id: str, tags: Mapping[str, str]) -> str:
    """A run holding the paired result of two evaluation runs of the same dataset: per metric both means, the
    difference and its interval, plus `comparison.json` and `comparison.md`. `comparison` is
    `GateResult.summary()`'s shape: {passed, failures, comparisons: {metric: {champion_mean, ...}}}."""
    import mlflow
    from mlflow.entities import DatasetInput

    client = mlflow.MlflowClient()
    inputs = [{(d.dataset.name, d.dataset.digest): d.dataset for d in client.get_run(r).inputs.dataset_inputs}
              for r in (champion_run_id, challenger_run_id)]
    if not inputs[0] or set(inputs[0]) != set(inputs[1]):
        raise ValueError(f"runs {champion_run_id} and {challenger_run_id} were not evaluated on the same dataset "
                         f"version: {sorted(inputs[0])} vs {sorted(inputs[1])}")
    rows = comparison.get("comparisons", {})
    metrics = {f"{metric}/{key}": float(row[source]) for metric, row in rows.items() for key, source in (
        ("champion", "champion_mean"), ("challenger", "challenger_mean"), ("difference", "difference"),
        ("ci_low", "low"), ("ci_high", "high")) if row.get(source) is not None}
    run_tags = {**tags, "eval.champion_run_id": champion_run_id, "eval.challenger_run_id": challenger_run_id}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        client.log_inputs(run.info.run_id, datasets=[DatasetInput(d) for d in inputs[0].values()])
        mlflow.log_metrics({**metrics, "gate_passed": float(bool(comparison.get("passed")))})
        mlflow.log_dict(dict(comparison), "comparison.json")
        mlflow.log_text(comparison_markdown(comparison), "comparison.md")
    return run.info.run_id


def comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """The paired result as a markdown table (the MLflow artifact viewer renders it), verdict and reasons first."""
    lines = [f"**Gate: {'passed' if comparison.get('passed') else 'refused'}**", ""]
    lines += [f"- {failure}" for failure in comparison.get("failures", [])]
    lines += ["", "| metric | champion | challenger | difference | 95% interval | passes | fixed | broken |",
              "|---|---|---|---|---|---|---|---|"]
    for metric, row in comparison.get("comparisons", {}).items():
        lines.append(f"| {metric} | {_fmt(row.get('champion_mean'))} | {_fmt(row.get('challenger_mean'))} | "
                     f"{_fmt(row.get('difference'))} | [{_fmt(row.get('low'))}, {_fmt(row.get('high'))}] | "
                     f"{'yes' if row.get('passes') else 'no'} | {', '.join(row.get('fixed', [])) or '-'} | "
                     f"{', '.join(row.get('broken', [])) or '-'} |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
