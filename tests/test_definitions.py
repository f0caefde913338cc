"""The code location as Dagster loads it: keys, checks, jobs and schedules are public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from factory_pipelines.definitions import DOMAINS, build_definitions, build_domains
from factory_pipelines.settings import PACKAGE_DIR, REPO_ROOT, Settings

EXPECTED_ASSETS = {
    "raw/customers": "ingestion", "raw/kb_articles": "ingestion", "raw/orders": "ingestion", "raw/tickets": "ingestion",
    "staging/customers": "staging", "staging/kb_articles": "staging", "staging/orders": "staging",
    "staging/tickets": "staging", "features/customer_daily": "features", "features/feast_registry": "features",
    "features/online_store": "features", "features/ticket_features": "features",
    "registry/prompt_versions": "registry", "models/ticket_classifier": "models",
    "agents/support_triage": "agents", "agents/knowledge_gap": "agents",
    "governance/review_actions": "governance", "evals/support_triage": "evals", "evals/knowledge_gap": "evals",
    "evals/live/support_triage": "evals", "evals/live/knowledge_gap": "evals", "retention/purge": "retention",
    "drift/support_triage": "drift", "drift/knowledge_gap": "drift",
    "drift/eval_scores/support_triage": "drift", "drift/eval_scores/knowledge_gap": "drift",
}
EXPECTED_CHECKS = {
    *(f"raw/{s}:contract_{s}_v1" for s in ("tickets", "customers", "orders", "kb_articles")),
    *(f"raw/{s}:quarantine_rate_within_bound" for s in ("tickets", "customers", "orders", "kb_articles")),
    *(f"staging/{s}:contract_staging_{s}_v1" for s in ("tickets", "customers", "orders", "kb_articles")),
    "governance/review_actions:audit_log_verified",
    "evals/support_triage:promotion_gate_support_triage", "evals/knowledge_gap:promotion_gate_knowledge_gap",
    "evals/live/support_triage:live_gate_support_triage", "evals/live/knowledge_gap:live_gate_knowledge_gap",
    *(f"drift/support_triage:{c}" for c in ("feature_drift", "text_drift", "decision_drift", "quality_drift")),
    *(f"drift/knowledge_gap:{c}" for c in ("text_drift", "decision_drift")),
    *(f"drift/eval_scores/{a}:eval_score_drift" for a in ("support_triage", "knowledge_gap")),
}
DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_offset=1, timezone="UTC")  # FACTORY_START_DATE


def test_assets_checks_jobs_and_schedules(settings: Settings) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_ASSETS
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    assert defs.resolve_job_def("data_plane_job").partitions_def == DAYS
    schedule = defs.resolve_schedule_def("data_plane_daily_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    agents = defs.resolve_job_def("agents_job")
    assert {k.to_user_string() for k in agents.asset_layer.executable_asset_keys} == {
        "agents/support_triage", "agents/knowledge_gap"}
    assert defs.resolve_schedule_def("agents_daily_schedule").cron_schedule == "0 4 * * *"
    review = defs.resolve_job_def("review_actions_job")
    assert {k.to_user_string() for k in review.asset_layer.executable_asset_keys} == {"governance/review_actions"}
    sensor = defs.resolve_sensor_def("review_actions_sensor")
    assert sensor.minimum_interval_seconds == 30 and sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_evaluations_sit_downstream_of_the_registries_and_gate_promotion(settings: Settings) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["evals", "support_triage"]))
    assert {k.to_user_string() for k in node.parent_keys} == {"registry/prompt_versions", "models/ticket_classifier"}
    assert node.partitions_def is None
    (spec,) = [s for s in defs.resolve_assets_def(node.key).check_specs]
    assert spec.name == "promotion_gate_support_triage" and spec.blocking
    evals = defs.resolve_job_def("evals_job")
    assert {k.to_user_string() for k in evals.asset_layer.executable_asset_keys} == {
        "evals/support_triage", "evals/knowledge_gap"}


def test_live_comparisons_follow_each_agent_day(settings: Settings) -> None:
    defs = build_definitions(settings)
    node = defs.resolve_asset_graph().get(dg.AssetKey(["evals", "live", "support_triage"]))
    assert {k.to_user_string() for k in node.parent_keys} == {"agents/support_triage"} and node.partitions_def == DAYS
    (spec,) = defs.resolve_assets_def(node.key).check_specs
    assert spec.name == "live_gate_support_triage"
    live = defs.resolve_job_def("live_evals_job")
    assert {k.to_user_string() for k in live.asset_layer.executable_asset_keys} == {
        "evals/live/support_triage", "evals/live/knowledge_gap"}
    assert defs.resolve_schedule_def("live_evals_daily_schedule").cron_schedule == "0 5 * * *"


def test_agent_runs_sit_downstream_of_features_checks_prompts_and_the_classifier(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey(["agents", "support_triage"])).parent_keys}
    assert parents == {"staging/tickets", "staging/orders", "staging/kb_articles", "features/online_store",
                       "registry/prompt_versions", "models/ticket_classifier"}
    node = graph.get(dg.AssetKey(["agents", "support_triage"]))
    assert node.pools == {"model_slots"} and node.partitions_def == DAYS


def test_the_review_sweep_sits_downstream_of_every_day_of_every_agent(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    sweep = graph.get(dg.AssetKey(["governance", "review_actions"]))
    agents = {dg.AssetKey(["agents", "support_triage"]), dg.AssetKey(["agents", "knowledge_gap"])}
    assert set(sweep.parent_keys) == agents and sweep.partitions_def is None
    for agent in agents:
        assert isinstance(graph.get_partition_mapping(sweep.key, agent), dg.AllPartitionMapping)
        assert sweep.key in graph.get(agent).child_keys


README_SECTIONS = {"Assets": "assets", "Checks": "checks", "Jobs, schedules and sensors": "jobs"}


def readme_lists(path: Path) -> dict[str, set[str]]:
    """The names a domain README's tables list, per section: the first cell of each row, in backticks."""
    listed: dict[str, set[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = README_SECTIONS.get(line[3:].strip())
            if section:
                listed[section] = set()
        elif section and line.startswith("| `"):
            listed[section].add(line.split("`")[1])
    return listed


def test_each_domain_readme_lists_exactly_what_the_domain_defines(settings: Settings) -> None:
    """Asset keys, `asset:check` names, jobs, schedules and sensors: all listed, none invented."""
    built, graph = build_domains(settings), build_definitions(settings).resolve_asset_graph()
    assert set(built) == set(DOMAINS) == {p.name for p in (PACKAGE_DIR / "defs").iterdir()
                                          if p.is_dir() and p.name != "__pycache__"}
    for domain, defs in built.items():
        listed = readme_lists(PACKAGE_DIR / "defs" / domain / "README.md")
        assert set(listed) == set(README_SECTIONS.values()), domain
        defined = {
            "assets": {key.to_user_string() for a in defs.assets or [] for key in a.keys},
            "checks": {f"{k.asset_key.to_user_string()}:{k.name}"  # asset checks, and check specs of assets
                       for c in [*(defs.asset_checks or []), *(defs.assets or [])] for k in c.check_keys},
            "jobs": {d.name for d in [*(defs.jobs or []), *(defs.schedules or []), *(defs.sensors or [])]},
        }
        assert listed == defined, domain
        assert {graph.get(dg.AssetKey.from_user_string(k)).group_name for k in defined["assets"]} <= {domain}


def test_every_asset_documents_itself(settings: Settings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.owners and node.kinds, key
    for key in graph.get_all_asset_keys():
        if key.path[0] in ("raw", "staging"):
            schema = graph.get(key).metadata["dagster/column_schema"]
            assert len(schema.columns) >= 5, key
            assert graph.get(key).metadata["dagster/table_name"] == ".".join(key.path)


def test_blocking_checks_are_partitioned_like_their_assets(settings: Settings) -> None:
    defs = build_definitions(settings)
    for checks_def in defs.asset_checks:
        for spec in checks_def.check_specs:
            if spec.asset_key.path[0] == "governance":  # the audit chain: one log, not partitioned, never blocks
                assert not spec.blocking and spec.partitions_def is None, spec.key
                continue
            assert spec.blocking, spec.key
            assert spec.partitions_def == DAYS, spec.key


def test_loading_the_code_location_imports_no_heavy_library() -> None:
    code = (
        "import sys, factory_pipelines.definitions as d; "
        "print(','.join(m for m in ('feast', 'great_expectations', 'mlflow', 'sklearn', 'ibis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == ""


def test_dagster_validates_the_code_location(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "factory_pipelines.definitions"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_a_manifest_naming_a_missing_or_invalid_policy_set_fails_the_load(tmp_path, monkeypatch) -> None:
    import shutil

    import pytest
    import yaml

    from factory_pipelines.lib.governance.policy import PolicyError
    from factory_pipelines.settings import PACKAGE_DIR
    from tests.conftest import use_home

    agents = tmp_path / "agents"
    shutil.copytree(PACKAGE_DIR / "defs" / "agents", agents)
    path = agents / "manifests" / "support_triage.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "policy_set": "billing"}))
    settings = use_home(monkeypatch, tmp_path / "home", manifests_dir=str(agents / "manifests"))
    with pytest.raises(PolicyError, match=r"support_triage.yaml: agent support_triage, policy_set 'billing'.*does not exist"):
        build_definitions(settings)
    policies = tmp_path / "policies"
    shutil.copytree(PACKAGE_DIR / "policies", policies)
    (policies / "knowledge" / "typo.cedar").write_text('@id("x/typo") permit (principal, action, resource) when { 1 };')
    settings = use_home(monkeypatch, tmp_path / "home2", policies_dir=str(policies))
    with pytest.raises(PolicyError, match="knowledge_gap.yaml.*does not validate"):
        build_definitions(settings)


def test_each_agents_drift_follows_its_day_and_runs_nightly_by_default(settings: Settings) -> None:
    from datetime import UTC, datetime

    defs = build_definitions(settings)
    node = defs.resolve_asset_graph().get(dg.AssetKey(["drift", "support_triage"]))
    assert {k.to_user_string() for k in node.parent_keys} == {
        "agents/support_triage", "drift/eval_scores/support_triage"} and node.partitions_def == DAYS
    scores = defs.resolve_asset_graph().get(dg.AssetKey(["drift", "eval_scores", "support_triage"]))
    assert {k.to_user_string() for k in scores.parent_keys} == {"registry/prompt_versions", "models/ticket_classifier"}
    drift = defs.resolve_job_def("drift_job")
    assert {k.to_user_string() for k in drift.asset_layer.executable_asset_keys} == {
        "drift/support_triage", "drift/knowledge_gap", "drift/eval_scores/support_triage",
        "drift/eval_scores/knowledge_gap"}
    schedule = defs.resolve_schedule_def("drift_support_triage_nightly_schedule")
    assert schedule.cron_schedule == "0 6 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.DagsterInstance.ephemeral() as instance:
        repository = defs.get_repository_def()
        context = dg.build_schedule_context(instance=instance, repository_def=repository,
                                            scheduled_execution_time=datetime(2026, 11, 7, 6, 0, tzinfo=UTC))
        (request,) = schedule.evaluate_tick(context).run_requests or []
        assert request.partition_key == "2026-11-06"
        assert request.asset_selection == [dg.AssetKey(["drift", "eval_scores", "support_triage"]),
                                           dg.AssetKey(["drift", "support_triage"])]
        context = dg.build_schedule_context(instance=instance, repository_def=repository,
                                            scheduled_execution_time=datetime(2026, 11, 1, 6, 0, tzinfo=UTC))
        assert not schedule.evaluate_tick(context).run_requests, "the day before the first partition is skipped"
