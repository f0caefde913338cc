"""The MLflow side of evaluations on a real local MLflow store (SQLite under tmp): datasets, code scorers on the
agent's traces, scorer failures, LoggedModels and the paired comparison run."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factory_pipelines.lib.evals.tracking import (
    EVALUATE_SETTINGS,
    EXPECTED,
    ScorerError,
    active_model,
    evaluate_outputs,
    log_comparison,
    model_configuration,
    register_dataset,
    tune_sqlite_store,
)

CASES = [{"inputs": {"case_id": f"c{i}", "body": f"ticket {i}"}, "expectations": {"category": cat},
          "tags": {"case_id": f"c{i}"}}
         for i, cat in enumerate(["refund", "shipping", "refund", "billing", "shipping"])]
ANSWERS = ["refund", "shipping", "billing", "billing", "refund"]  # c2 and c4 wrong


def category_match(outputs: dict[str, Any], expectations: dict[str, Any]) -> float:
    return float(outputs["category"] == expectations["category"])


def refund_caught(outputs: dict[str, Any], expectations: dict[str, Any]) -> float | None:
    """Applies only to refund cases."""
    return None if expectations["category"] != "refund" else float(outputs["category"] == "refund")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One SQLite store for the module (creating its tables takes seconds); each test has its own experiment."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")
        yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def experiment(store: None, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    import mlflow

    experiment_id = mlflow.create_experiment(request.node.name, artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outgoing connection attempt, refused."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"network is off in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def agent_records(answers: list[str], *, traced: bool = True) -> list[dict[str, Any]]:
    """What the harness hands over: each case decided in its own trace, outputs precomputed."""
    import mlflow

    @mlflow.trace(name="support_agent")
    def decide(case_id: str, body: str, answer: str) -> dict[str, str]:
        return {"category": answer}

    records = []
    for case, answer in zip(CASES, answers, strict=True):
        outputs = decide(**case["inputs"], answer=answer)
        records.append({**case, "outputs": outputs,
                        "trace_id": mlflow.get_last_active_trace_id() if traced else None})
    return records


def evaluate(name: str, records: list[dict[str, Any]], dataset: Any, experiment: str, **kwargs: Any) -> Any:
    return evaluate_outputs(name, records, {"category_match": category_match, "refund_caught": refund_caught},
                            dataset=dataset, experiment_id=experiment, **{"tags": {"suite": "triage"}, **kwargs})


def test_a_dataset_version_is_registered_once_and_is_the_runs_input(experiment: str) -> None:
    import mlflow
    from mlflow.genai.datasets import search_datasets

    first = register_dataset("triage", "v1", CASES, experiment)
    again = register_dataset("triage", "v1", CASES, experiment)
    other = register_dataset("triage", "v2", CASES[:3], experiment)
    assert (first.created, again.created, first.dataset_id, first.records) == (True, False, again.dataset_id, 5)
    assert first.digest == again.digest  # nothing merged the second time
    assert other.dataset_id != first.dataset_id and other.records == 3
    listed = search_datasets(experiment_ids=[experiment], filter_string="name LIKE 'triage@%'")
    assert sorted(d.name for d in listed) == ["triage@v1", "triage@v2"]
    [stored] = search_datasets(filter_string="name = 'triage@v1'")
    assert stored.tags["version"] == "v1"
    assert sorted(t["case_id"] for t in stored.to_df()["tags"]) == [f"c{i}" for i in range(5)]
    with pytest.raises(ValueError, match="records 0 and 1 have the same inputs"):
        register_dataset("triage", "v3", [CASES[0], CASES[0]], experiment)

    run = mlflow.get_run(evaluate("champion", agent_records(ANSWERS), first, experiment).run_id)
    [linked] = run.inputs.dataset_inputs
    assert (linked.dataset.name, linked.dataset.digest) == ("triage@v1", first.digest)
    assert (linked.dataset.source_type, json.loads(linked.dataset.source)) == (
        "mlflow_evaluation_dataset", {"dataset_id": first.dataset_id})
    assert run.data.tags["eval.dataset_version"] == "v1"


def test_code_scorers_give_per_case_values_and_one_assessment_per_case_on_the_agents_trace(
        experiment: str, no_network: list[Any]) -> None:
    import mlflow

    dataset = register_dataset("triage", "v1", CASES, experiment)
    records = agent_records(ANSWERS)
    result = evaluate("champion", records, dataset, experiment, metrics={"macro_f1_category": 0.5})

    assert result.values == {"category_match": [1.0, 1.0, 0.0, 1.0, 0.0], "refund_caught": [1.0, None, 0.0, None, None]}
    assert result.metrics == {"category_match/mean": 0.6, "refund_caught/mean": 0.5, "macro_f1_category": 0.5}
    assert mlflow.get_run(result.run_id).data.metrics == result.metrics
    assert result.trace_ids == [r["trace_id"] for r in records]  # the agent's traces, not copies
    for trace_id, applies in zip(result.trace_ids, [True, False, True, False, False], strict=True):
        scored = [(a.name, a.source.source_id) for a in mlflow.get_trace(trace_id).info.assessments
                  if a.source.source_type == "CODE" and a.metadata["mlflow.assessment.sourceRunId"] == result.run_id]
        assert sorted(scored) == ([("category_match", "category_match"), ("refund_caught", "refund_caught")]
                                  if applies else [("category_match", "category_match")])
    linked = mlflow.search_traces(locations=[experiment], run_id=result.run_id, return_type="list")
    assert sorted(t.info.trace_id for t in linked) == sorted(result.trace_ids)
    assert no_network == []


def test_each_trace_gets_the_cases_expectations_as_one_expectation(experiment: str) -> None:
    """MLflow logs one HUMAN expectation per key, each a transaction: the case's expectations go in as one."""
    import mlflow

    dataset = register_dataset("triage", "v1", CASES, experiment)
    result = evaluate("champion", agent_records(ANSWERS), dataset, experiment)
    for trace_id, case in zip(result.trace_ids, CASES, strict=True):
        expectations = [a for a in mlflow.get_trace(trace_id).info.assessments if a.expectation is not None]
        assert [(a.name, a.source.source_type, a.value) for a in expectations] == [
            (EXPECTED, "HUMAN", case["expectations"])]


def test_the_harness_runs_with_one_worker_and_no_rate_limit(
        experiment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import mlflow

    seen: list[dict[str, str | None]] = []
    evaluate_genai = mlflow.genai.evaluate

    def spying(**kwargs: Any) -> Any:
        seen.append({k: os.environ.get(k) for k in EVALUATE_SETTINGS})
        return evaluate_genai(**kwargs)

    monkeypatch.setattr(mlflow.genai, "evaluate", spying)
    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_WORKERS", "4")
    monkeypatch.delenv("MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT", raising=False)
    dataset = register_dataset("triage", "v1", CASES, experiment)
    evaluate("champion", agent_records(ANSWERS), dataset, experiment)
    assert seen == [dict(EVALUATE_SETTINGS)]  # a user's MLFLOW_GENAI_EVAL_MAX_WORKERS=4 does not apply here


def test_a_sqlite_store_is_tuned_once_wal_and_no_fsync_per_commit(store: None) -> None:
    from mlflow.tracking._tracking_service.utils import _get_store

    assert tune_sqlite_store() and tune_sqlite_store()
    engine = _get_store().engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    listeners = [fn for fn in engine.pool.dispatch.connect if getattr(fn, "__qualname__", "").startswith("tune_sqlite")]
    assert len(listeners) == 1


def test_records_with_and_without_a_trace_are_scored_together(experiment: str) -> None:
    import mlflow

    dataset = register_dataset("triage", "v1", CASES, experiment)
    records = agent_records(ANSWERS)
    records[1]["trace_id"] = None  # a case that failed before its trace id was kept
    result = evaluate("mixed", records, dataset, experiment)
    assert result.values["category_match"] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert result.trace_ids[0] == records[0]["trace_id"] and len(set(result.trace_ids)) == 5
    stand_in = mlflow.get_trace(result.trace_ids[1])
    assert stand_in.data.spans[0].name == "evaluation case c1 (no agent trace)"
    assert [a.name for a in stand_in.info.assessments if a.source.source_type == "CODE"] == ["category_match"]


def test_records_without_a_trace_are_scored_on_new_traces(experiment: str) -> None:
    dataset = register_dataset("triage", "v1", CASES, experiment)
    result = evaluate("untraced", agent_records(ANSWERS, traced=False), dataset, experiment)
    assert result.values["category_match"] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert len(set(result.trace_ids)) == 5


def test_a_scorer_that_raises_fails_the_evaluation_naming_scorer_and_case(experiment: str) -> None:
    import mlflow

    def strict_billing(outputs: dict[str, Any]) -> float:
        if outputs["category"] == "billing":
            raise KeyError("no billing rule")
        return 1.0

    dataset = register_dataset("triage", "v1", CASES, experiment)
    with pytest.raises(ScorerError, match=r"scorer strict_billing raised on case c2 .*no billing rule.*2 of 5 cases"):
        evaluate_outputs("broken", agent_records(ANSWERS), {"category_match": category_match,
                                                            "strict_billing": strict_billing},
                         dataset=dataset, experiment_id=experiment, tags={})
    [run] = mlflow.search_runs([experiment], filter_string="attributes.run_name = 'broken'", output_format="list")
    assert run.info.status == "FAILED"


def test_a_configuration_is_one_logged_model_its_traces_and_runs_group_under(experiment: str) -> None:
    import mlflow

    params = {"provider": "local", "model": "gemma3-270m", "temperature": 0.0, "prompt": "support_triage",
              "prompt_version": 3}
    model_id = model_configuration("support_triage", params, experiment)
    assert model_configuration("support_triage", dict(params), experiment) == model_id
    assert model_configuration("support_triage", {**params, "temperature": 0.7}, experiment) != model_id
    assert mlflow.get_logged_model(model_id).params["prompt_version"] == "3"

    with active_model(model_id):
        records = agent_records(ANSWERS)
    assert mlflow.get_active_model_id() is None
    grouped = mlflow.search_traces(locations=[experiment], model_id=model_id, return_type="list")
    assert sorted(t.info.trace_id for t in grouped) == sorted(r["trace_id"] for r in records)
    dataset = register_dataset("triage", "v1", CASES, experiment)
    run = mlflow.get_run(evaluate("champion", records, dataset, experiment, model_id=model_id).run_id)
    assert [m.model_id for m in run.inputs.model_inputs] == [model_id]
    assert {m.key: m.dataset_name for m in mlflow.get_logged_model(model_id).metrics}["category_match/mean"] == "triage@v1"


def test_champion_and_challenger_on_one_dataset_version_are_found_together_and_compared(experiment: str) -> None:
    import mlflow

    dataset = register_dataset("triage", "v1", CASES, experiment)
    champion = evaluate("champion", agent_records(ANSWERS), dataset, experiment,
                        tags={"suite": "triage", "agent": "support", "role": "champion"})
    challenger = evaluate("challenger", agent_records([c["expectations"]["category"] for c in CASES]), dataset,
                          experiment, tags={"suite": "triage", "agent": "support", "role": "challenger"})
    found = mlflow.search_runs([experiment], output_format="list", filter_string=(
        "tags.agent = 'support' and tags.`eval.dataset_version` = 'v1' and dataset.name = 'triage@v1'"))
    assert sorted(r.info.run_id for r in found) == sorted([champion.run_id, challenger.run_id])

    summary = {"passed": True, "failures": [], "comparisons": {"category_match": {
        "champion_mean": 0.6, "challenger_mean": 1.0, "difference": 0.4, "low": 0.0, "high": 0.8, "passes": True,
        "fixed": ["c2", "c4"], "broken": []}}}
    run_id = log_comparison("support: challenger vs champion", champion.run_id, challenger.run_id, summary,
                            experiment_id=experiment, tags={"suite": "triage", "agent": "support"})
    run = mlflow.get_run(run_id)
    assert run.data.metrics == {"category_match/champion": 0.6, "category_match/challenger": 1.0,
                                "category_match/difference": 0.4, "category_match/ci_low": 0.0,
                                "category_match/ci_high": 0.8, "gate_passed": 1.0}
    assert run.data.tags["eval.challenger_run_id"] == challenger.run_id
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["triage@v1"]
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/comparison.json") == summary
    table = mlflow.artifacts.load_text(f"runs:/{run_id}/comparison.md")
    assert "| category_match | 0.6 | 1 | 0.4 | [0, 0.8] | yes | c2, c4 | - |" in table

    other = register_dataset("triage", "v2", CASES, experiment)
    elsewhere = evaluate("challenger v2", agent_records(ANSWERS), other, experiment)
    with pytest.raises(ValueError, match="not evaluated on the same dataset version"):
        log_comparison("mismatch", champion.run_id, elsewhere.run_id, summary, experiment_id=experiment, tags={})
