"""`factory eval` as an ML engineer runs it: two prompt versions in the real MLflow Prompt Registry, a small
suite of golden cases, the real local model, runtime and Cedar gate, the paired comparison and the verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from factory_pipelines.cli import app
from factory_pipelines.settings import PACKAGE_DIR, REPO_ROOT, get_settings
from tests.conftest import use_home

CASES = 4


def small_suite(root: Path) -> None:
    """The shipped support suite over its first few cases (same schema, same thresholds)."""
    (root / "suites").mkdir(parents=True)
    (root / "datasets").mkdir()
    suite = yaml.safe_load((REPO_ROOT / "evals" / "suites" / "support_triage_golden.yaml").read_text())
    suite["kb"] = str(PACKAGE_DIR / "demo" / "data" / "kb_articles.yaml")
    (root / "suites" / "support_triage_golden.yaml").write_text(yaml.safe_dump(suite))
    lines = (REPO_ROOT / "evals" / "datasets" / "support_triage_golden.jsonl").read_text().splitlines()
    (root / "datasets" / "support_triage_golden.jsonl").write_text("\n".join(lines[:CASES]) + "\n")


def agents_without_classifier(root: Path) -> Path:
    """The shipped agents folder, the support agent deciding every field with the model (no classifier to
    train for this test)."""
    shutil.copytree(PACKAGE_DIR / "defs" / "agents", root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    manifest = root / "manifests" / "support_triage.yaml"
    manifest.write_text("\n".join(line for line in manifest.read_text().splitlines() if "first_pass:" not in line))
    return root / "manifests"


def mlflow_client(settings):
    from factory_pipelines.resources.tracking import TrackingResource

    return TrackingResource(tracking_uri=settings.mlflow_tracking_uri, artifact_root=settings.mlflow_artifact_root).client()


def register_two_prompt_versions(settings) -> None:
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts

    client = mlflow_client(settings)
    specs = load_prompts(PACKAGE_DIR / "defs" / "registry" / "prompts")
    sync_prompts(client, specs)
    changed = specs["support_triage"].model_copy(update={"template": specs["support_triage"].template.replace(
        "Answer with the category", "Think about the customer's intent, then answer with the category")})
    assert sync_prompts(client, {"support_triage": changed})["support_triage"] == {
        "version": 2, "created": True, "alias": "challenger"}


def assert_logged_to_mlflow(settings, report: dict) -> None:
    """Both evaluations are runs of the experiment on the same registered dataset version, with one assessment
    per case on the agent's own traces; the comparison run holds the paired result."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    logged = report["mlflow"]
    runs = {side: client.get_run(logged[f"{side}_run"]) for side in ("champion", "challenger")}
    for side, run in runs.items():
        (dataset,) = run.inputs.dataset_inputs
        assert dataset.dataset.name == logged["dataset"] == f"support_triage_golden@{report['dataset_version']}"
        assert run.data.tags["eval_side"] == side and run.data.tags["prompt"] == report[side]["prompt"]
        assert run.data.metrics["action_accuracy"] == report["metrics"][side]["action_accuracy"]
        traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
        assert len(traces) == CASES and all(t.info.assessments for t in traces)
    comparison = client.get_run(logged["comparison_run"])
    assert "action_accuracy/difference" in comparison.data.metrics
    assert {a.path for a in client.list_artifacts(comparison.info.run_id)} >= {"comparison.json", "comparison.md"}


@pytest.mark.slow
def test_factory_eval_compares_two_prompt_versions_case_by_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                model_dir: Path) -> None:
    small_suite(tmp_path / "evals")
    settings = use_home(monkeypatch, tmp_path / "home", evals_dir=str(tmp_path / "evals"), model_dir=str(model_dir),
                        manifests_dir=str(agents_without_classifier(tmp_path / "agents")))
    register_two_prompt_versions(settings)
    try:
        result = CliRunner().invoke(app, ["eval", "support_triage", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)  # nothing but the report on stdout
        assert (report["cases"], report["trials"]) == (CASES, 1)
        assert report["champion"]["prompt"] == "support_triage/1" and report["challenger"]["prompt"] == "support_triage/2"
        for side in ("champion", "challenger"):
            metrics = report["metrics"][side]
            assert metrics["schema_validity"] == 1.0 and 0 <= metrics["action_accuracy"] <= 1
            assert metrics["latency_p95_s"] > 0 and metrics["cost_per_ticket_usd"] > 0
        comparison = report["gate"]["comparisons"]["action_accuracy"]
        assert comparison["cases"] == CASES and comparison["low"] <= comparison["difference"] <= comparison["high"]
        assert isinstance(report["gate"]["passed"], bool) and report["gate"]["failures"] or report["gate"]["passed"]
        assert_logged_to_mlflow(settings, report)

        client = mlflow_client(settings)
        client.delete_prompt_alias("support_triage", "challenger")
        none = CliRunner().invoke(app, ["eval", "support_triage"])
        assert none.exit_code == 2 and "support_triage has no challenger: change" in " ".join(none.output.split())
        missing = CliRunner().invoke(app, ["eval", "support_triage", "--prompt-version", "9"])
        assert missing.exit_code == 2 and "support_triage/9 is not in the MLflow Prompt Registry" in " ".join(
            missing.output.split())
    finally:
        get_settings.cache_clear()


def with_alternative(manifests: Path, base_url: str) -> None:
    """The support manifest declaring llama.cpp's server over the same GGUF as `model_alternatives.llama_server`
    (filling the reply templates as the local model does: the comparison is of the provider, not of the replies)."""
    path = manifests / "support_triage.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["model_alternatives"] = {"llama_server": {**manifest["model"], "provider": "openai_compatible",
                                                       "name": "gemma-3-270m", "base_url": base_url,
                                                       "writes_replies": False}}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.mark.slow
def test_provider_parity_runs_the_champion_on_another_provider_and_is_never_promoted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path, llama_server) -> None:
    """The same prompt and GGUF, in process and behind llama.cpp's HTTP server: both sides run every case
    through the real gate, the comparison is tagged provider parity and says which decisions differ, and
    neither `--promote` nor `factory promote` moves anything."""
    import mlflow

    small_suite(tmp_path / "evals")
    manifests = agents_without_classifier(tmp_path / "agents")
    with_alternative(manifests, llama_server.base_url)
    settings = use_home(monkeypatch, tmp_path / "home", evals_dir=str(tmp_path / "evals"), model_dir=str(model_dir),
                        manifests_dir=str(manifests))
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts

    sync_prompts(mlflow_client(settings), load_prompts(PACKAGE_DIR / "defs" / "registry" / "prompts"))
    try:
        result = CliRunner().invoke(app, ["eval", "support_triage", "--provider", "llama_server", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["champion"]["provider"] == "local/gemma-3-270m-q4_k_m"
        assert report["challenger"]["provider"] == "openai_compatible/gemma-3-270m"
        assert report["champion"]["prompt"] == report["challenger"]["prompt"] == "support_triage/1"
        assert report["promotable"] is False and report["cases"] == CASES
        for side in ("champion", "challenger"):
            assert report["metrics"][side]["schema_validity"] == 1.0
        cases = {json.loads(line)["id"] for line in
                 (tmp_path / "evals" / "datasets" / "support_triage_golden.jsonl").read_text().splitlines()}
        assert set(report["decisions_differ"]) <= {"category", "priority", "action"}
        assert all(set(ids) <= cases for ids in report["decisions_differ"].values())
        comparison = mlflow.MlflowClient(settings.mlflow_tracking_uri).get_run(report["mlflow"]["comparison_run"])
        assert comparison.data.tags["eval.role"] == "provider_parity"

        refused = CliRunner().invoke(app, ["eval", "support_triage", "--provider", "llama_server", "--promote"])
        assert refused.exit_code != 0 and "a provider is chosen in the manifest" in " ".join(refused.output.split())
        unknown = CliRunner().invoke(app, ["eval", "support_triage", "--provider", "vllm"])
        assert unknown.exit_code == 2 and "no model_alternatives.vllm (the manifest declares: llama_server)" in " ".join(
            unknown.output.split())
        nothing = CliRunner().invoke(app, ["promote", "support_triage"])
        assert nothing.exit_code != 0 and "nothing to promote" in " ".join(nothing.output.split())
        assert mlflow_client(settings).get_prompt_version_by_alias("support_triage", "champion").version == 1
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_factory_eval_sweep_prices_each_threshold_and_logs_the_frontier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path, llama_server) -> None:
    """`factory eval --sweep` with the local model and llama.cpp's server as the cascade's last tier: one point
    per escalation threshold, the server asked only at the point that escalates, the page logged to MLflow."""
    import mlflow

    small_suite(tmp_path / "evals")
    suite_path = tmp_path / "evals" / "suites" / "support_triage_golden.yaml"
    suite = yaml.safe_load(suite_path.read_text())
    suite["sweep"] = {"model_below_confidence": [0.45], "escalate_below_confidence": [0.0, 1.01]}
    suite_path.write_text(yaml.safe_dump(suite))
    manifests = agents_without_classifier(tmp_path / "agents")
    path = manifests / "support_triage.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["decision"]["escalate_model"] = {**manifest["model"], "provider": "openai_compatible",
                                              "name": "gemma-3-270m", "base_url": llama_server.base_url}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    settings = use_home(monkeypatch, tmp_path / "home", evals_dir=str(tmp_path / "evals"), model_dir=str(model_dir),
                        manifests_dir=str(manifests), llm_prices='{"gemma-3-270m": [0.5, 1.5]}')
    from factory_pipelines.lib.agents.models.prompts import load_prompts, sync_prompts

    sync_prompts(mlflow_client(settings), load_prompts(PACKAGE_DIR / "defs" / "registry" / "prompts"))
    try:
        result = CliRunner().invoke(app, ["eval", "support_triage", "--sweep", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        never, always = report["points"]
        assert never["thresholds"] == {"model_below_confidence": 0.45, "escalate_below_confidence": 0.0}
        assert never["escalated_fields"] == 0 and 0 < never["model_fields"] <= 3 * CASES  # no first pass; rules
        assert always["escalated_fields"] == never["model_fields"] and always["model_fields"] == 0
        assert always["cost_per_1k_usd"] > never["cost_per_1k_usd"] > 0  # the server tier is priced per token
        assert sum(p["recommended"] for p in report["points"]) == 1
        client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
        run = client.get_run(report["mlflow"]["run"])
        assert run.data.tags["eval.role"] == "sweep"
        assert {a.path for a in client.list_artifacts(run.info.run_id, "sweep")} == {
            "sweep/frontier.html", "sweep/points.json"}
    finally:
        get_settings.cache_clear()
