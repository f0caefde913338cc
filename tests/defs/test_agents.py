"""Agents as Dagster assets, end to end with the real local model, DuckDB, Feast, MLflow and Dagster:
six demo days through the data plane, the classifier trained and registered, prompts synced, then both
agents over a held-out day; a re-run; a day whose contracts failed; stages deciding what is scheduled."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from factory_pipelines.definitions import build_definitions
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import prepare_instance
from factory_pipelines.runs import PartitionOutcome, run_partitions
from factory_pipelines.settings import PACKAGE_DIR, Settings, get_settings
from tests.conftest import use_home

pytestmark = pytest.mark.slow
DAYS = [f"2026-11-0{d}" for d in range(1, 7)]
HELD_OUT = "2026-11-06"
BAD_DAY = "2026-11-07"


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[dict]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = use_home(monkeypatch, tmp_path_factory.mktemp("agents"), start_date=DAYS[0], end_date=BAD_DAY,
                            model_dir=str(model_dir))
        truth = Path(settings.home) / "demo_truth"
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 1), date(2026, 11, 6), tickets_per_day=80,
                        customers=150, defect_rate=0.01, truth_dir=truth)
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 7), date(2026, 11, 7), tickets_per_day=80,
                        customers=150, defect_rate=0.3, truth_dir=truth)  # a day its contracts must refuse
        prepare_instance(settings)
        defs = build_definitions(settings)
        plane = run_partitions("data_plane_job", [*DAYS, BAD_DAY], definitions=defs)
        models = run_partitions("models_job", [None], definitions=defs)[0]
        agents = run_partitions("agents_job", [HELD_OUT], definitions=defs)[0]
        yield {"settings": settings, "defs": defs, "plane": plane, "models": models, "agents": agents}
    get_settings.cache_clear()


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_models_job_registers_the_classifier_and_prompts(factory: dict) -> None:
    models: PartitionOutcome = factory["models"]
    assert models.success, (models.failed_steps, models.error)
    meta = models.materialized["models/ticket_classifier"]
    assert meta["alias"] == "champion" and meta["model_uri"] == "models:/ticket_classifier/1"
    assert meta["train_days"] == DAYS[:3] and meta["holdout_days"] == DAYS[3:]
    assert meta["holdout_category_accuracy"] >= 0.8, meta
    prompts = models.materialized["registry/prompt_versions"]["prompts"]
    assert prompts == {name: {"version": 1, "created": True, "alias": "champion"}
                       for name in ("knowledge_gap", "support_reply", "support_triage")}

    from mlflow import MlflowClient

    client = MlflowClient(factory["settings"].mlflow_tracking_uri)
    version = client.get_model_version_by_alias("ticket_classifier", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["lineage.feature_service"] == "support_agent_v1"
    assert run.data.params["train_days"] == ",".join(DAYS[:3])


def test_both_agents_decide_every_ticket_of_the_day(factory: dict) -> None:
    agents: PartitionOutcome = factory["agents"]
    assert agents.success, (agents.failed_steps, agents.error)
    settings = factory["settings"]
    tickets = query(settings, f"SELECT count(*) FROM staging.tickets WHERE _partition = '{HELD_OUT}'")[0][0]
    support = agents.materialized["agents/support_triage"]
    gap = agents.materialized["agents/knowledge_gap"]
    assert support["tickets"] == support["decided"] == tickets == gap["decided"]
    assert support["labelled_tickets"] == tickets
    assert support["action_accuracy"] >= 0.85 and support["category_accuracy"] >= 0.85, support
    assert gap["model_calls"] > 0 and gap["cost_usd"] > 0, "the real local model was asked"
    assert support["prompt_version"] == "support_triage/1" and support["first_pass"].endswith("v1")
    rows = query(settings, f"""SELECT agent, count(*), count(DISTINCT trace_id), min(prompt_version),
        bool_and(run_id = '{agents.run_id}') FROM agents.decisions WHERE partition = '{HELD_OUT}' GROUP BY 1 ORDER BY 1""")
    assert rows == [("knowledge_gap", tickets, tickets, 1, True), ("support_triage", tickets, tickets, 1, True)]


def test_one_trace_per_ticket_tagged_with_run_and_versions(factory: dict) -> None:
    import mlflow

    settings = factory["settings"]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name("agents/support_triage")
    traces = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")
    tickets = query(settings, f"SELECT count(*) FROM staging.tickets WHERE _partition = '{HELD_OUT}'")[0][0]
    assert len(traces) == tickets
    tags = traces[0].info.tags
    assert tags["partition"] == HELD_OUT and tags["dagster_run_id"] == factory["agents"].run_id
    assert tags["prompt"] == "support_triage/1" and tags["model_version"].startswith("gemma-3-270m")
    names = {span.name for span in traces[0].data.spans}
    assert {"tool customer_features", "tool kb_search", "first pass"} <= names, names


def test_rerun_of_the_day_acts_once_and_reuses_model_answers(factory: dict) -> None:
    settings = factory["settings"]
    before = query(settings, "SELECT count(*) FROM agents.outbox")[0][0]
    again = run_partitions("agents_job", [HELD_OUT], definitions=factory["defs"])[0]
    assert again.success
    assert query(settings, "SELECT count(*) FROM agents.outbox")[0][0] == before > 0
    gap = again.materialized["agents/knowledge_gap"]
    assert gap["cache_hits"] == gap["model_calls"] == factory["agents"].materialized["agents/knowledge_gap"]["model_calls"]
    assert query(settings, f"SELECT count(*) FROM agents.decisions WHERE partition = '{HELD_OUT}'")[0][0] == \
        2 * factory["agents"].materialized["agents/support_triage"]["tickets"]


def test_agents_do_not_run_on_a_day_whose_contracts_failed(factory: dict) -> None:
    bad = factory["plane"][-1]
    assert not bad.success and not all(bad.checks.values())
    outcome = run_partitions("agents_job", [BAD_DAY], definitions=factory["defs"])[0]
    assert not outcome.success and not outcome.materialized
    assert "blocking contract(s) of its inputs did not pass" in outcome.error
    assert "raw/tickets:" in outcome.error or "staging/tickets:" in outcome.error


def test_stage_decides_what_exists_and_what_is_scheduled(factory: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    agents_dir = tmp_path / "agents"
    shutil.copytree(PACKAGE_DIR / "defs" / "agents", agents_dir)
    for name, stage in (("knowledge_gap", "draft"), ("support_triage", "retired")):
        path = agents_dir / "manifests" / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "stage": stage}))
    settings = use_home(monkeypatch, tmp_path / "home", manifests_dir=str(agents_dir / "manifests"))
    defs = build_definitions(settings)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "agents/knowledge_gap" in keys and "agents/support_triage" not in keys
    assert "agents_job" not in {job.name for job in defs.jobs}, "a draft agent is never scheduled"


@pytest.fixture
def cli(factory: dict) -> object:
    """The `factory` command on the module's factory (another test may have cached other settings)."""
    from typer.testing import CliRunner

    from factory_pipelines.cli import app

    get_settings.cache_clear()
    assert get_settings().home == factory["settings"].home
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_every_tool_call_passed_the_gate_and_is_in_the_verified_audit_log(factory: dict, cli: object) -> None:
    support = factory["agents"].materialized["agents/support_triage"]
    assert support["policy_set"].startswith("support@") and support["policy_alerts"] == 0
    calls = query(factory["settings"], f"SELECT count(*), count(verdict), count(policy_hash) FROM agents.tool_calls "
                                       f"WHERE run_id = '{factory['agents'].run_id}' AND agent = 'support_triage'")[0]
    assert calls[0] == calls[1] == calls[2] == support["gate_allowed"] + support["gate_denied"] + \
        support["gate_escalated"] > 0
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output


def test_a_reviewer_approves_an_escalated_refund_and_it_runs_once(factory: dict, cli: object) -> None:
    """The documented path: the gate escalates, `factory review approve`, `factory review execute`."""
    from factory_pipelines.lib.agents.facts import TicketFacts
    from factory_pipelines.lib.agents.manifests import load_manifest
    from factory_pipelines.lib.agents.toolbox import Budget, Toolbox, ToolEnv
    from factory_pipelines.lib.governance.gate import CedarGate
    from factory_pipelines.lib.governance.gate_config import load_gate_config
    from factory_pipelines.lib.governance.kill_switches import KillSwitches
    from factory_pipelines.lib.governance.policy import PolicyEngine

    settings = factory["settings"]
    manifest = load_manifest(settings.manifests_dir / "support_triage.yaml")
    with duckdb.connect(settings.warehouse) as con:
        order_id, customer, amount, currency = con.execute(
            "SELECT order_id, customer_id, amount, currency FROM staging.orders WHERE status = 'delivered' "
            "AND amount_usd BETWEEN 520 AND 2000 AND coalesce(refund_amount, 0) = 0 ORDER BY order_id LIMIT 1").fetchone()
        con.execute("INSERT INTO staging.tickets (ticket_id, customer_id, subject, body, _partition) VALUES "
                    "('T-REVIEW-1', ?, 'Broken on arrival', 'Please refund it.', ?)", [customer, HELD_OUT])
        budget = Budget.from_manifest(manifest.budgets)
        gate = CedarGate.for_agent(manifest, PolicyEngine.load(settings.policies_dir, "support"),
                                   KillSwitches(settings.kill_switches_file), load_gate_config(settings.policies_dir),
                                   con, budget, as_of=__import__("datetime").datetime(2026, 11, 7))
        env = ToolEnv(con=con, online_features=dict, online_features_many=list, kb=None,
                      feature_service="support_agent_v1", as_of=gate.as_of)
        facts = TicketFacts(ticket={"ticket_id": "T-REVIEW-1", "customer_id": customer}, text="Please refund it.",
                            features={"tenure_days": 400, "lifetime_spend": 5000.0},
                            feature_times={"tenure_days": "2026-11-06T23:00:00+00:00"})
        result = Toolbox("support_triage", env, gate, budget, run_id="test", partition=HELD_OUT).call(
            "issue_refund", "T-REVIEW-1", {"order_id": order_id, "amount": amount, "currency": currency,
                                           "reason": "broken on arrival"}, facts)
    assert result.status == "escalated" and result.verdict.policies == ("refunds/above_limit",)
    item = result.output["review_item"]
    listed = cli("review", "list")
    assert item[:12] in listed.output and "refunds/above_limit" in listed.output
    approved = cli("review", "approve", item[:10], "--reviewer", "Dana", "--reason", "verified photo")
    assert approved.exit_code == 0, approved.output
    twice = cli("review", "approve", item[:10], "--reviewer", "Sam", "--reason", "again")
    assert twice.exit_code == 1 and "is approved by Dana" in twice.output
    for _ in range(2):
        executed = cli("review", "execute")
        assert executed.exit_code == 0, executed.output
    refunds = query(settings, f"SELECT count(*) FROM agents.refunds WHERE order_id = '{order_id}'")[0][0]
    assert refunds == 1
    assert query(settings, f"SELECT status, reviewer FROM governance.review_queue WHERE item_id = '{item}'") == \
        [("executed", "Dana")]
    kinds = {k for (k,) in query(settings, "SELECT DISTINCT kind FROM governance.audit_log")}
    assert {"tool_call", "policy_set", "alias_moved", "review_approved", "review_executed"} <= kinds
    assert cli("audit", "verify").exit_code == 0
    ticket = query(settings, f"SELECT ticket_id FROM agents.decisions WHERE agent = 'support_triage' AND partition = "
                             f"'{HELD_OUT}' AND action = 'refund' ORDER BY ticket_id LIMIT 1")[0][0]
    story = cli("explain", ticket, "--json")
    assert story.exit_code == 0, story.output
    told = __import__("json").loads(story.output)
    assert told["source"]["data_version"] and told["source"]["contracts"]
    assert set(told["source"]["contracts"].values()) == {"SUCCEEDED"}
    support = next(a for a in told["agents"] if a["agent"] == "support_triage")
    assert support["read"]["features"] and support["read"]["passages"] and support["trace_id"]
    # a re-run's side effects that already happened answer from the outbox (nothing runs, no gate asked)
    assert all(c["policy_hash"].startswith("support@") or c["policies"] == ["outbox/done"] and not c["executed"]
               for c in support["tool_calls"])
