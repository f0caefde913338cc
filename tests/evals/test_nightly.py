"""The nightly re-run of the golden suite on the champion (`nightly_scores`), against its last accepted scores:
the first night of a fresh factory becomes the baseline, the next compares with it, a champion that got worse
behind the same versions fails; a champion promoted through the gate is compared with its side of that gate, a
champion only ever evaluated with the champion side of its latest comparison; a changed dataset is not
compared until a new baseline is accepted. Real MLflow runs and registries on a temp store, the real runtime
and Cedar gate; the model is scripted (tests/evals/test_promotion_cli.py's six cases)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from factory_pipelines.lib.agents.models.providers import ScriptedProvider
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.settings import get_settings
from tests.conftest import use_home
from tests.evals.test_eval_cli import agents_without_classifier, mlflow_client
from tests.evals.test_promotion_cli import BROKEN, PROMPT, answer, challenger_file, invoke, suite

# Six scripted cases decide in milliseconds: their wall-clock latency and CPU-priced cost are noise, so only
# the labels and the policy are judged at the suite's bounds here (the defaults are lib/drift/scores.py's).
QUIET = {"latency_p95_s": (1e6, 2e6), "cost_per_ticket_usd": (1e6, 2e6)}


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts

    suite(tmp_path / "evals")
    settings = use_home(monkeypatch, tmp_path / "home", evals_dir=str(tmp_path / "evals"),
                        manifests_dir=str(agents_without_classifier(tmp_path / "agents")), operator="ana")
    monkeypatch.setattr(LLMResource, "provider", lambda self, model: ScriptedProvider([answer] * 1000))
    sync_prompts(mlflow_client(settings), load_prompts(PROMPT.parent))  # v1: champion
    yield settings
    get_settings.cache_clear()


def night(settings: Any, day: int, **options: Any) -> Any:
    from factory_pipelines.defs.evals.assets import nightly_scores
    from factory_pipelines.defs.resources import build_resources

    resources = build_resources(settings)
    return nightly_scores(settings, resources["tracking"], resources["llm"], "support_triage",
                          day=date(2026, 12, day), bounds=QUIET, **options)


def statuses(nightly: Any) -> dict[str, str]:
    return {r.column: r.status for r in nightly.results}


def latest_comparison(settings: Any) -> Any:
    client = mlflow_client(settings)
    (experiment,) = [e for e in client.search_experiments() if e.name == "evals/support_triage"]
    (run,) = client.search_runs([experiment.experiment_id], "tags.`eval.role` = 'comparison'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    return run


@pytest.mark.slow
def test_the_first_night_is_the_baseline_the_next_compares_and_a_worse_champion_fails(
        factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = night(factory, 1)
    assert (first.accepted_from, first.accepted_run_id, first.n_cases) == ("baseline", first.run_id, 6)
    assert first.champion["prompt"] == "support_triage/1" and first.current == first.accepted
    assert {r.status for r in first.results} == {"ok"} and {r.message for r in first.results} == {"baseline accepted"}
    assert {"action_accuracy", "policy_compliance", "forbidden_actions", "latency_p95_s"} <= set(statuses(first))
    run = mlflow_client(factory).get_run(first.run_id)
    assert {k: run.data.tags.get(k) for k in ("eval.role", "eval.night", "eval.accepted", "eval.champion.prompt",
                                             "dataset_version", "eval.drift")} == {
        "eval.role": "nightly", "eval.night": "2026-12-01", "eval.accepted": "true",
        "eval.champion.prompt": "support_triage/1", "dataset_version": first.dataset_version, "eval.drift": "ok"}
    assert run.data.metrics["action_accuracy"] == first.current["action_accuracy"] == 1.0

    second = night(factory, 2)
    assert (second.accepted_from, second.accepted_run_id) == ("accepted", first.run_id)
    assert second.run_id != first.run_id and second.verdict == "ok", [r.message for r in second.results]
    assert "eval.accepted" not in mlflow_client(factory).get_run(second.run_id).data.tags

    def worse(messages: list[dict[str, str]]) -> str:  # the same versions, a model that stopped refunding
        labels = json.loads(answer(messages))
        return json.dumps({**labels, "action": "reply" if labels["action"] == "refund" else labels["action"]})

    monkeypatch.setattr(LLMResource, "provider", lambda self, model: ScriptedProvider([worse] * 1000))
    third = night(factory, 3)
    assert third.accepted_run_id == first.run_id and third.verdict == "error"
    drop = next(r for r in third.results if r.column == "action_accuracy")
    assert (drop.method, drop.value, drop.status, drop.reference_value, drop.current_value) == (
        "drop", 0.5, "error", 1.0, 0.5)
    assert drop.message.startswith("action_accuracy dropped 0.5 (1 accepted -> 0.5 tonight)")
    assert statuses(third)["policy_compliance"] == "error"
    assert mlflow_client(factory).get_run(third.run_id).data.tags["eval.drift"] == "error"


@pytest.mark.slow
def test_the_accepted_scores_follow_the_gate_and_a_changed_dataset_waits_for_a_new_baseline(
        factory: Any, tmp_path: Path) -> None:
    bad = invoke("eval", "support_triage", "--prompt-file", str(challenger_file(tmp_path / "bad", f"{BROKEN}: no.")))
    assert bad.exit_code == 0, bad.output  # the gate failed: champion v1 stays, never promoted
    evaluated = night(factory, 1)
    assert evaluated.accepted_from == "evaluation" and evaluated.verdict == "ok"
    assert evaluated.accepted_run_id == latest_comparison(factory).data.tags["eval.champion_run_id"]

    good = invoke("eval", "support_triage", "--prompt-file", str(challenger_file(tmp_path / "good", "Be precise.")))
    assert good.exit_code == 0 and "promotion gate passed" in good.text, good.output
    # the aliases as `factory promote` moves them (its Cedar decision and audit event: test_promotion_cli.py)
    mlflow_client(factory).set_prompt_alias("support_triage", "champion", 3)
    mlflow_client(factory).delete_prompt_alias("support_triage", "challenger")
    promoted = night(factory, 2)
    assert (promoted.accepted_from, promoted.champion["prompt"]) == ("promotion", "support_triage/3")
    assert promoted.accepted_run_id == latest_comparison(factory).data.tags["eval.challenger_run_id"]
    assert promoted.verdict == "ok", [r.message for r in promoted.results]

    golden = tmp_path / "evals" / "datasets" / "support_triage_golden.jsonl"
    golden.write_text("".join(golden.read_text().splitlines(keepends=True)[:4]))
    changed = night(factory, 3)
    assert changed.dataset_version != promoted.dataset_version and changed.n_cases == 4
    assert {r.status for r in changed.results} == {"insufficient"} and changed.accepted_from == "promotion"
    message = changed.results[0].message
    assert message.startswith("the golden dataset changed: the accepted scores (MLflow run "
                              f"{promoted.accepted_run_id}) are on dataset version {promoted.dataset_version}")
    assert f"tag run {changed.run_id} eval.accepted=true" in message

    accepted = night(factory, 4, accept=True)
    assert (accepted.accepted_from, accepted.accepted_run_id) == ("baseline", accepted.run_id)
    after = night(factory, 5)
    assert (after.accepted_from, after.accepted_run_id, after.verdict) == ("accepted", accepted.run_id, "ok")


@pytest.mark.slow
def test_the_drift_asset_records_each_nights_scores_apart_from_the_data_drift(
        factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`drift/eval_scores/support_triage`: the check passes on the baseline night and fails at ERROR on a worse
    champion, echoing the value and its bound; the records land in drift.results beside the day's data drift,
    which a re-run of the data drift keeps, and the Cedar drift status never counts them."""
    import dagster as dg

    from factory_pipelines.defs.drift.assets import build_scores_asset
    from factory_pipelines.defs.partitions import daily_partitions
    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.lib.agents.manifests import load_manifests
    from factory_pipelines.lib.drift.config import Bound, DriftConfig, EvalScoresSpec
    from factory_pipelines.lib.drift.records import DriftRun, Window, insufficient
    from factory_pipelines.lib.drift.status import drift_status
    from factory_pipelines.lib.drift.store import record_night, scores_of
    from factory_pipelines.resources.warehouse import WarehouseResource

    config = DriftConfig(agent="support_triage", eval_scores=EvalScoresSpec(
        bounds={m: Bound(warn=w, error=e) for m, (w, e) in QUIET.items()}))
    manifest = load_manifests(factory.manifests_dir)["support_triage"]
    asset = build_scores_asset(factory, manifest, config, daily_partitions(factory), after=[])
    instance = dg.DagsterInstance.ephemeral()

    def materialize(day: str) -> dg.AssetCheckEvaluation:
        result = dg.materialize([asset], partition_key=day, resources=build_resources(factory), instance=instance)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    first = materialize("2026-12-01")
    assert first.check_name == "eval_score_drift" and first.passed, first.description
    day = date(2026, 12, 2)
    warehouse = WarehouseResource(database=factory.warehouse)
    with warehouse.connect() as con:  # the day's data drift, judged error, recorded before the suite runs
        window = Window(day, day)
        record_night(con, DriftRun("support_triage", day, window, window, (
            insufficient("text", "body", "domain_classifier_roc_auc", 0.6, 0.7, 0, 0, "no texts"),)), "data")

    def worse(messages: list[dict[str, str]]) -> str:
        labels = json.loads(answer(messages))
        return json.dumps({**labels, "action": "reply" if labels["action"] == "refund" else labels["action"]})

    monkeypatch.setattr(LLMResource, "provider", lambda self, model: ScriptedProvider([worse] * 1000))
    second = materialize("2026-12-02")
    assert not second.passed and second.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in second.metadata.items()}
    assert (metadata["status"], metadata["observed"], metadata["bound"]) == ("error", 0.5, 0.04)
    assert metadata["worst"] == "eval_score.action_accuracy.drop"
    with warehouse.connect() as con:
        assert {r.column: r.status for r in scores_of(con, "support_triage", day)}["action_accuracy"] == "error"
        record_night(con, DriftRun("support_triage", day, window, window, (  # the data drift judged again
            insufficient("text", "body", "domain_classifier_roc_auc", 0.6, 0.7, 0, 0, "no texts"),)), "again")
        assert scores_of(con, "support_triage", day), "a re-run of the data drift dropped the night's scores"
        status = drift_status(con, "support_triage", day)
    assert (status.status, status.night, status.slices) == ("insufficient", day, ())
