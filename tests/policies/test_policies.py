"""Policy tests: every policy of every set is exercised with allow, deny and escalate cases (cases.yaml),
through the real Cedar engine, as cedar-examples does with its ALLOW/DENY folders; bad sets fail loading."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from factory_pipelines.lib.governance.gate import agent_entity
from factory_pipelines.lib.governance.policy import COMMON, PolicyEngine, PolicyError
from factory_pipelines.settings import PACKAGE_DIR

POLICIES = PACKAGE_DIR / "policies"
HERE = Path(__file__).parent
BASES = yaml.safe_load((HERE / "bases.yaml").read_text())
CASES = yaml.safe_load((HERE / "cases.yaml").read_text())
SETS = sorted(p.name for p in POLICIES.iterdir() if p.is_dir() and p.name != COMMON)
SUPPORT_TOOLS = ["customer_features", "kb_search", "order_lookup", "issue_refund", "send_reply", "escalate_to_human"]


def request_of(case: dict[str, Any]) -> dict[str, Any]:
    base = copy.deepcopy(BASES[case.get("base_of_action", case["base"])] if case.get("action") else BASES[case["base"]])
    principal = {"type": "Operator", "id": "ana"} if "role" in case else \
        {"type": "Agent", "id": case.get("principal", "support_triage")}
    request = {"principal": principal,
               "action": {"type": "Action", "id": base["action"]}, "resource": base["resource"],
               "context": base["context"]}
    for path, value in (case.get("override") or {}).items():
        *parents, leaf = path.split(".")
        node = request
        for key in parents:
            node = node[key]
        node[leaf] = value
    return request


def decide(policy_set: str, case: dict[str, Any], root: Path = POLICIES) -> Any:
    engine = PolicyEngine.load(root, policy_set)
    tools = case.get("set_principal_tools") or case.get("tools") or SUPPORT_TOOLS
    principal = case.get("principal", "support_triage")
    records = [agent_entity(principal, case.get("stage", "production"), "1.0.0", tools)]
    if "role" in case:  # an operator (evaluate, promote, rollback) acting on the agent
        records.append({"uid": {"type": "Operator", "id": "ana"}, "parents": [], "attrs": {"role": case["role"]}})
    entities = engine.entities(records)
    return engine.decide(request_of(case), entities)


CASE_PARAMS = [pytest.param(group["set"], case, id=f"{group['policy']}-{n}-{case['expect']}")
               for group in CASES for n, case in enumerate(group["cases"])]


@pytest.mark.parametrize(("policy_set", "case"), CASE_PARAMS)
def test_policy_case(policy_set: str, case: dict[str, Any]) -> None:
    decision = decide(policy_set, case)
    assert decision.outcome == case["expect"], decision
    if "by" in case:
        assert case["by"] in decision.policies, decision
    assert not decision.alert


def test_every_policy_has_allow_deny_and_escalate_cases() -> None:
    covered = {group["policy"]: {c["expect"] for c in group["cases"]} for group in CASES}
    for name in SETS:
        for policy_id in PolicyEngine.load(POLICIES, name).policies:
            assert policy_id in covered, f"{policy_id} ({name}) has no cases in tests/policies/cases.yaml"
    incomplete = {p: e for p, e in covered.items() if not {"allow", "deny"} <= e or len(e) < 2}
    assert not incomplete, incomplete


def test_every_set_validates_with_ids_on_every_policy() -> None:
    for name in SETS:
        engine = PolicyEngine.load(POLICIES, name)
        assert len(engine.hash) == 16 and all("/" in i for i in engine.policies)


def copy_policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    return root


@pytest.mark.parametrize(("text", "message"), [
    ('@id("x/bad") permit (principal, action, resource) when { context.nope > 1 };', "does not validate"),
    ('@id("x/syntax") permit (principal, action, resource) when { context.tool == };', "invalid Cedar policy"),
    ('permit (principal, action, resource);', "has no @id"),
    ('@id("grants/reads") permit (principal, action, resource);', "also used in"),
    ('@id("x/odd") @outcome("maybe") forbid (principal, action, resource);', "is not valid for a forbid"),
    ('@id("x/mode") @mode("sometimes") forbid (principal, action, resource);', "must be"),
])
def test_an_invalid_policy_fails_the_load_naming_file_and_policy(tmp_path: Path, text: str, message: str) -> None:
    root = copy_policies(tmp_path)
    (root / "support" / "zz_new.cedar").write_text(text)
    with pytest.raises(PolicyError, match=message) as error:
        PolicyEngine.load(root, "support")
    assert "zz_new.cedar" in str(error.value) or "x/bad" in str(error.value)


def test_an_invalid_schema_and_a_missing_set_fail_the_load(tmp_path: Path) -> None:
    root = copy_policies(tmp_path)
    with pytest.raises(PolicyError, match="does not exist.*'knowledge', 'operations', 'support'"):
        PolicyEngine.load(root, "billing")
    (root / "factory.cedarschema").write_text("entity Agent = { stage: Strin };")
    with pytest.raises(PolicyError, match="factory.cedarschema"):
        PolicyEngine.load(root, "support")


def test_a_request_outside_the_schema_is_denied_with_an_alert() -> None:
    case = {"base": "refund", "expect": "deny", "override": {"context.smuggled": "approve"}}
    decision = decide("support", case)
    assert decision.outcome == "deny" and decision.alert and decision.policies == ("cedar/error",)


def test_log_only_policy_is_recorded_as_shadow_but_not_enforced(tmp_path: Path) -> None:
    root = copy_policies(tmp_path)
    (root / "support" / "trial.cedar").write_text(
        '@id("refunds/trial_cap_100") @mode("log_only") @outcome("escalate")\n'
        'forbid (principal, action == Action::"issue_refund", resource) when { context.amount_cents > 10000 };\n')
    decision = decide("support", {"base": "refund"}, root)
    assert decision.outcome == "allow"
    assert decision.shadow_outcome == "escalate" and decision.shadow_policies == ("refunds/trial_cap_100",)
    small = decide("support", {"base": "refund", "override": {"context.amount_cents": 5000}}, root)
    assert small.outcome == "allow" and small.shadow_outcome is None


def test_policy_hash_changes_with_any_file(tmp_path: Path) -> None:
    root = copy_policies(tmp_path)
    before = PolicyEngine.load(root, "support").hash
    path = root / "support" / "refunds.cedar"
    path.write_text(path.read_text().replace("50000", "40000"))
    assert PolicyEngine.load(root, "support").hash != before


def test_an_escalating_forbid_never_turns_an_unpermitted_call_into_an_escalation(tmp_path: Path) -> None:
    """Approving an escalation executes the call, so only a call some policy permits may escalate."""
    root = copy_policies(tmp_path)
    grants = root / "common" / "grants.cedar"
    grants.write_text(grants.read_text().replace("@id(\"grants/not_granted\")", "@id(\"grants/not_granted\")\n"
                                                 "@mode(\"log_only\")"))  # no hard forbid for ungranted tools
    case = {"base": "refund", "override": {"context.amount_cents": 70000}, "set_principal_tools": ["kb_search"]}
    decision = decide("support", case, root)
    assert (decision.outcome, decision.policies) == ("deny", ("default_deny",))
    assert decide("support", {"base": "refund", "override": {"context.amount_cents": 70000}}, root).outcome == "escalate"
