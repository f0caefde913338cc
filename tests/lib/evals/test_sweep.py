"""The routing cascade and its sweep, with scripted tiers: the remote tier is asked only for the fields the
local model was unsure of; a sweep over thresholds prices each point uncached, marks the frontier and logs
the frontier page to a real MLflow store; a grid value out of [0, 1.01] names the suite file and key."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from factory_pipelines.lib.agents.manifests import ModelConfig
from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.lib.evals.evaluate import evaluate
from factory_pipelines.lib.evals.scorers import case_scorers
from factory_pipelines.lib.evals.suites import SuiteError, SweepGrid, load_suite
from factory_pipelines.lib.evals.sweep import log_sweep, sweep
from factory_pipelines.settings import REPO_ROOT
from tests.lib.evals.conftest import CASES, world_of

pytestmark = pytest.mark.usefixtures("tracking")
SCORERS = case_scorers({"category": ["refund", "shipping"], "priority": ["low", "medium", "high", "urgent"],
                        "action": ["reply", "refund", "lookup_order", "escalate"]})
REMOTE = ModelConfig(provider="openai_compatible", name="big", base_url="http://127.0.0.1:9/v1")


def local(messages: list[dict[str, str]]) -> tuple[str, dict[str, float]]:
    """Right on shipping, sure of it; on the refund ticket it says `reply` and is unsure of the action only."""
    if "Ticket body: The earbuds" in " ".join(m["content"] for m in messages):
        return (json.dumps({"category": "refund", "priority": "medium", "action": "reply"}),
                {"category": 0.9, "priority": 0.8, "action": 0.2})
    return json.dumps({"category": "shipping", "priority": "medium", "action": "lookup_order"}), {
        "category": 0.9, "priority": 0.9, "action": 0.9}


def remote(messages: list[dict[str, str]]) -> str:
    """Right on both tickets."""
    if "Ticket body: The earbuds" in " ".join(m["content"] for m in messages):
        return json.dumps({"category": "refund", "priority": "medium", "action": "refund"})
    return json.dumps({"category": "shipping", "priority": "medium", "action": "lookup_order"})


def cascade(configuration, remote_provider, below: float = 0.5):
    decision = configuration.manifest.decision.model_copy(
        update={"escalate_model": REMOTE, "escalate_below_confidence": below})
    return replace(configuration, manifest=configuration.manifest.model_copy(update={"decision": decision}),
                   provider=ScriptedProvider([local] * 200, usd_per_call=0.0001),
                   escalate_provider=remote_provider, escalate_model_version="openai_compatible/big")


def test_the_remote_tier_decides_only_the_fields_still_unsure(configuration, governance) -> None:
    big = ScriptedProvider([remote] * 20, model="big", usd_per_call=0.01)
    result = evaluate(CASES, cascade(configuration, big), governance, world_of(CASES), SCORERS)
    shipping, refund = result.outcomes
    assert shipping.decided_by == {"category": "model", "priority": "model", "action": "model"}
    assert refund.decided_by == {"category": "model", "priority": "model", "action": "escalated_model"}
    assert refund.decision["action"] == "refund" and len(big.calls) == 1
    (schema,) = big.schemas  # the sure fields are pinned, the unsure one is open
    assert schema["properties"]["category"]["enum"] == ["refund"]
    assert set(schema["properties"]["action"]["enum"]) == {"reply", "refund", "lookup_order", "escalate"}
    assert refund.tier_costs["escalated_model"]["cost_usd"] == pytest.approx(0.01)
    assert refund.tier_costs["model"]["calls"] == 1 and "escalated_model" not in shipping.tier_costs

    nobody = evaluate(CASES, replace(cascade(configuration, big), escalate_provider=None), governance,
                      world_of(CASES), SCORERS)
    assert all("escalated_model" not in o.decided_by.values() for o in nobody.outcomes)  # no tier: as before


def test_sweep_prices_points_uncached_marks_the_frontier_and_logs_the_page(configuration, governance) -> None:
    import mlflow

    big = ScriptedProvider([remote] * 200, model="big", usd_per_call=0.01)
    grid = SweepGrid(model_below_confidence=[0.5], escalate_below_confidence=[0.0, 0.5, 1.01])
    points = sweep(CASES, cascade(configuration, big), governance, world_of(CASES), SCORERS, grid,
                   tolerances={"action_accuracy": 0.0})
    never, unsure_only, always = points
    assert never.accuracy["action"] == 0.5 and unsure_only.accuracy["action"] == always.accuracy["action"] == 1.0
    assert never.cost_per_1k_usd < unsure_only.cost_per_1k_usd < always.cost_per_1k_usd
    assert unsure_only.cost_per_1k_usd == pytest.approx(1000 * (2 * 0.0001 + 0.01) / 2)  # cache hits priced
    assert len(big.calls) == 3, "the point escalating everything re-asked only the new questions"
    assert [p.on_frontier for p in points] == [True, True, False]
    assert unsure_only.recommended and not always.recommended
    experiment = mlflow.get_experiment_by_name("evals")
    run_id = log_sweep("support_triage", points, experiment_id=experiment.experiment_id, tags={"agent": "x"},
                       params={"agent": "support_triage"})
    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(run_id, "sweep")} == {"sweep/frontier.html", "sweep/points.json"}
    assert len(client.get_metric_history(run_id, "cost_per_1k_usd")) == 3
    assert client.get_run(run_id).data.metrics["recommended_escalate_below_confidence"] == 0.5


def test_a_grid_value_out_of_range_names_the_suite_file_and_key(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO_ROOT / "evals", tmp_path / "evals")
    path = tmp_path / "evals" / "suites" / "support_triage_golden.yaml"
    suite = yaml.safe_load(path.read_text())
    suite["kb"] = str(REPO_ROOT / "factory_pipelines" / "demo" / "data" / "kb_articles.yaml")
    suite["sweep"] = {"escalate_below_confidence": [0.2, 1.5]}
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(SuiteError, match=r"support_triage_golden.yaml: sweep.escalate_below_confidence.1: Input "
                                         r"should be less than or equal to 1.01"):
        load_suite(path)
