"""Promotion and rollback on the real MLflow registries (sqlite store), the real audit log (DuckDB) and the real
Cedar operations policies: what moves, what is refused, all or nothing, and the history rollback restores."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from factory_pipelines.lib.agents.manifests import load_manifest
from factory_pipelines.lib.evals.promotion import (
    PromotionError,
    PromotionRefused,
    champion_history,
    comparison_tags,
    promote,
    rollback,
)
from factory_pipelines.settings import PACKAGE_DIR

POLICIES = PACKAGE_DIR / "policies"
MANIFEST = load_manifest(PACKAGE_DIR / "defs" / "agents" / "manifests" / "support_triage.yaml")
DATASET = "abc123"
V1 = {"prompt": "support_triage/1", "first_pass": "ticket_classifier/1"}


def gate(client: Any, challenger: dict[str, str], passed: bool, failures: list[str] | None = None,
         dataset: str = DATASET) -> str:
    """A comparison run as `factory eval` logs it: both sides' versions and the verdict as tags."""
    experiment = client.get_experiment_by_name("evals/support_triage")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("evals/support_triage")
    run = client.create_run(experiment_id, tags={**comparison_tags(V1, challenger, passed), "dataset_version": dataset,
                                                 "eval.champion_run_id": "r-champion", "eval.challenger_run_id": "r-challenger"})
    client.log_dict(run.info.run_id, {"passed": passed, "failures": failures or []}, "comparison.json")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def do_promote(client: Any, con: Any, only: set[str] | None = None, operator: str = "ana",
               policies: Path = POLICIES) -> Any:
    experiment = client.get_experiment_by_name("evals/support_triage")
    return promote(client=client, where="test store", con=con, policies_dir=policies, operator=operator,
                   manifest=MANIFEST, experiment_id=experiment.experiment_id if experiment else None,
                   dataset_version=DATASET, only=only)


def aliases(client: Any) -> dict[str, Any]:
    def get(kind: str, alias: str) -> int | None:
        try:
            found = (client.get_prompt_version_by_alias("support_triage", alias) if kind == "prompt"
                     else client.get_model_version_by_alias("ticket_classifier", alias))
        except Exception:
            return None
        return int(found.version)

    return {f"{kind}@{alias}": get(kind, alias) for kind in ("prompt", "model")
            for alias in ("champion", "challenger", "rolled_back")}


def events(con: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, json.loads(payload)) for kind, payload in
            con.execute("SELECT kind, payload FROM governance.audit_log ORDER BY seq").fetchall()]


BEFORE = {"prompt@champion": 1, "prompt@challenger": 2, "prompt@rolled_back": None,
          "model@champion": 1, "model@challenger": 2, "model@rolled_back": None}


def test_a_passed_gate_promotes_exactly_its_versions_and_the_event_names_them(client: Any, con: Any) -> None:
    run = gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/2"}, passed=True)
    done = do_promote(client, con)
    assert aliases(client) == {**BEFORE, "prompt@champion": 2, "prompt@challenger": None, "model@champion": 2,
                               "model@challenger": None}
    ((kind, payload),) = events(con)
    assert kind == "promoted" and done.audit_seq == 1
    assert payload["changes"] == {"prompt": {"kind": "prompt", "name": "support_triage", "from": 1, "to": 2},
                                  "first_pass": {"kind": "model", "name": "ticket_classifier", "from": 1, "to": 2}}
    assert payload["gate"]["run_id"] == run and payload["gate"]["champion_run"] == "r-champion"
    assert (payload["operator"], payload["role"], payload["policies"]) == ("ana", "ml_lead", ["operations/promote"])


def test_a_regressing_challenger_is_refused_with_the_gate_failures_and_nothing_moves(client: Any, con: Any) -> None:
    failure = "action_accuracy regressed: -0.1200 [-0.2100, -0.0400], tolerance 0.02"
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/2"}, passed=False, failures=[failure])
    with pytest.raises(PromotionRefused, match="latest promotion gate .* failed") as refused:
        do_promote(client, con)
    assert refused.value.failures == [failure]
    assert aliases(client) == BEFORE
    ((kind, payload),) = events(con)
    assert kind == "promotion_refused" and "failed" in payload["reason"] and payload["gate"]["passed"] is False


def test_versions_the_gate_did_not_compare_are_refused(client: Any, con: Any) -> None:
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}, passed=True)  # prompt alone
    with pytest.raises(PromotionRefused, match="no promotion gate compared exactly .*ticket_classifier/1 -> "
                                                "ticket_classifier/2"):
        do_promote(client, con)  # both challengers: that pair was never judged
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/2"}, passed=True, dataset="older")
    with pytest.raises(PromotionRefused, match="on dataset version abc123"):
        do_promote(client, con)  # judged, but on another dataset version
    assert aliases(client) == BEFORE
    do_promote(client, con, only={"prompt"})  # exactly what was judged
    assert aliases(client) == {**BEFORE, "prompt@champion": 2, "prompt@challenger": None}
    assert [k for k, _ in events(con)] == ["promotion_refused", "promotion_refused", "promoted"]


def test_a_later_failed_gate_for_the_same_versions_wins(client: Any, con: Any) -> None:
    challenger = {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}
    gate(client, challenger, passed=True)
    gate(client, challenger, passed=False, failures=["policy_compliance is 98.00%, the gate requires 100%"])
    with pytest.raises(PromotionRefused):
        do_promote(client, con, only={"prompt"})
    assert aliases(client) == BEFORE


def test_nothing_to_promote_says_so(client: Any, con: Any) -> None:
    client.delete_prompt_alias("support_triage", "challenger")
    with pytest.raises(PromotionError, match="nothing to promote, no challenger for prompt support_triage"):
        do_promote(client, con, only={"prompt"})


def test_who_may_promote_is_a_cedar_decision_and_a_denial_is_audited(client: Any, con: Any, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "operators.yaml").write_text("default_role: viewer\noperators:\n  eve: ml_engineer\n  ana: ml_lead\n")
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}, passed=True)
    with pytest.raises(PromotionRefused, match="the policies do not permit this promotion: no policy permits promote"):
        do_promote(client, con, only={"prompt"}, operator="eve", policies=policies)
    assert aliases(client) == BEFORE
    ((kind, payload),) = events(con)
    assert (kind, payload["operator"], payload["role"], payload["policies"]) == (
        "promotion_refused", "eve", "ml_engineer", ["default_deny"])
    do_promote(client, con, only={"prompt"}, operator="ana", policies=policies)
    assert aliases(client)["prompt@champion"] == 2


class FailingRegistry:
    """The MLflow client, losing its server when the classifier's alias is moved (after the prompt's)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def set_registered_model_alias(self, *args: Any) -> None:
        raise ConnectionError("HTTPConnectionPool(host='mlflow', port=5000): Max retries exceeded")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_mlflow_failing_mid_way_moves_nothing(client: Any, con: Any) -> None:
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/2"}, passed=True)
    with pytest.raises(PromotionError, match="failed moving model ticket_classifier@champion to 2 .*Max retries "
                                             "exceeded.*1 alias\\(es\\) moved before were restored, no alias moved"):
        do_promote(FailingRegistry(client), con)
    assert aliases(client) == BEFORE
    assert [k for k, _ in events(con)] == ["alias_move_failed"]


def test_mlflow_unreachable_before_anything_moves(con: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = mlflow.MlflowClient(tracking_uri=f"http://127.0.0.1:{port}", registry_uri=f"http://127.0.0.1:{port}")
    with pytest.raises(PromotionError, match="could not be read .*no alias moved"):
        promote(client=unreachable, where=f"http://127.0.0.1:{port}", con=con, policies_dir=POLICIES, operator="ana",
                manifest=MANIFEST, experiment_id="1", dataset_version=DATASET)


def test_rollback_restores_the_previous_champion_from_the_audit_log(client: Any, con: Any) -> None:
    with pytest.raises(PromotionError, match="no earlier champion to restore"):
        rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="ana", manifest=MANIFEST)
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}, passed=True)
    do_promote(client, con, only={"prompt"})
    done = rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="on-call",
                    manifest=MANIFEST)
    assert done.role == "on_call" and done.changes["prompt"]["from"] == 2 and done.changes["prompt"]["to"] == 1
    assert aliases(client) == {**BEFORE, "prompt@challenger": None, "prompt@rolled_back": 2}
    assert [e["kind"] for e in champion_history(con, "support_triage")] == ["promoted", "rolled_back"]
    with pytest.raises(PromotionError, match="no earlier champion to restore"):  # that promotion is undone
        rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="ana", manifest=MANIFEST)
    with pytest.raises(PromotionError, match="nothing to promote"):  # the rolled-back version is no challenger
        do_promote(client, con, only={"prompt"})


def test_rollback_rights_and_a_champion_moved_by_hand(client: Any, con: Any) -> None:
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}, passed=True)
    do_promote(client, con, only={"prompt"})
    with pytest.raises(PromotionRefused, match="do not permit this rollback"):
        rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="ci", manifest=MANIFEST)
    client.set_prompt_alias("support_triage", "champion", 1)  # someone moved it outside factory promote
    with pytest.raises(PromotionError, match="the champion changed since the promotion being undone"):
        rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="ana", manifest=MANIFEST)
    assert [k for k, _ in events(con)] == ["promoted", "promotion_refused"]


def test_a_bad_operators_file_names_the_file_and_field(client: Any, con: Any, tmp_path: Path) -> None:
    from factory_pipelines.lib.governance.operators import OperatorsError

    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "operators.yaml").write_text("default_role: ml_lead\noperator:\n  eve: ml_engineer\n")
    gate(client, {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}, passed=True)
    with pytest.raises(OperatorsError, match=r"operators.yaml: operator: Extra inputs are not permitted"):
        do_promote(client, con, only={"prompt"}, policies=policies)
    assert aliases(client) == BEFORE
