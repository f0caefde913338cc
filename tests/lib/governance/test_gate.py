"""The Cedar policy gate through `Toolbox.call`: the real DuckDB warehouse, cedarpy, the policy files of
`factory_pipelines/policies` and the kill-switch journal; nothing of ours is mocked.

The warehouse knows two customers and four orders; the ticket being handled (T-1) is customer C-00001's.
Facts the policies need (whose order it is, what a reply contains) come from the warehouse, never from the
arguments or the facts the model could have shaped.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from factory_pipelines.lib.agents import effects as effects_module
from factory_pipelines.lib.agents.toolbox import Toolbox, ToolCallError, ToolRequest
from factory_pipelines.lib.agents.tools import CATALOG
from factory_pipelines.lib.governance.audit.verify import verify
from factory_pipelines.lib.governance.gate import record_agent_day
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.shop import refunds_used_cents
from tests.lib.governance.world import (
    AGENT,
    CONFIG,
    DAY,
    FRESH,
    MANIFEST,
    OTHER_EMAIL,
    OWN_EMAIL,
    POLICY_HASH,
    STALE,
    budgets,
    count,
    facts,
    make_toolbox,
    manifest_with,
    refund_args,
    reply_args,
)

# --- refunds -------------------------------------------------------------------------------------------------


def test_small_refund_on_own_delivered_order_is_allowed_and_executes_once(con: Any, tb: Toolbox) -> None:
    first = tb.call("issue_refund", "T-1", refund_args(), facts())
    assert (first.status, first.verdict.decision, first.executed) == ("ok", "allow", True)
    assert first.verdict.policies == ("grants/side_effects",)
    assert POLICY_HASH.match(first.verdict.policy_hash)
    context = first.verdict.request["context"]
    assert context["amount_cents"] == 4999 and context["order"] == {
        "found": True, "customer_matches": True, "amount_cents": 4999, "refunded_cents": 0, "status": "delivered"}
    assert context["data"] == {"contracts_passed": True, "features_age_hours": 12, "features_after_ticket": False,
                               "drift": {"status": "none", "slices": []}}
    assert con.execute("SELECT order_id, amount, currency, ticket_id FROM agents.refunds").fetchall() == [
        ("O-1000001", 49.99, "USD", "T-1")]

    second = tb.call("issue_refund", "T-1", refund_args(), facts())
    assert (second.status, second.verdict.decision, second.executed) == ("ok", "allow", False)
    assert second.output == first.output and first.output["refund_id"].startswith("R-")
    assert count(con, "SELECT count(*) FROM agents.refunds") == 1
    assert count(con, "SELECT count(*) FROM agents.outbox") == 1


def test_refund_on_another_customers_order_is_denied_whatever_the_model_claims(con: Any, tb: Toolbox) -> None:
    lying = facts()
    lying.order = {"order_id": "O-1000002", "customer_id": "C-00001", "found": True}  # not so
    result = tb.call("issue_refund", "T-1", refund_args("O-1000002", 20.0, "customer C-00001 owns order O-1000002"),
                     lying)
    assert (result.status, result.verdict.decision, result.executed) == ("denied", "deny", False)
    assert result.verdict.policies == ("refunds/order_not_theirs",)
    assert result.verdict.request["context"]["order"]["found"] is True
    assert result.verdict.request["context"]["order"]["customer_matches"] is False
    assert result.output is None

    unknown = tb.call("issue_refund", "T-1", refund_args("O-9999999", 20.0), facts())
    assert set(unknown.verdict.policies) == {"refunds/order_not_theirs", "refunds/more_than_paid"}  # paid: 0
    assert unknown.verdict.request["context"]["order"]["found"] is False
    assert count(con, "SELECT count(*) FROM agents.refunds") == 0
    assert count(con, "SELECT count(*) FROM agents.outbox") == 0


def test_refund_above_500_usd_escalates_into_the_review_queue_once(con: Any, tb: Toolbox) -> None:
    args = refund_args("O-1000003", 900.0, "sofa arrived broken")
    result = tb.call("issue_refund", "T-1", args, facts())
    assert (result.status, result.verdict.decision, result.executed) == ("escalated", "escalate", False)
    assert result.verdict.policies == ("refunds/above_limit",)
    assert result.output["status"] == "pending"

    rows = con.execute("SELECT item_id, agent, ticket_id, tool, tool_version, arguments, policies, policy_hash, "
                       "cedar_request, run_id, partition, status, created_at, expires_at, reviewer "
                       "FROM governance.review_queue").fetchall()
    assert len(rows) == 1
    (item_id, agent, ticket_id, tool, version, arguments, policies, policy_hash, cedar, run_id, partition, status,
     created, expires, reviewer) = rows[0]
    assert item_id == result.output["review_item"]
    assert (agent, ticket_id, tool, version, run_id, status, reviewer) == (
        AGENT, "T-1", "issue_refund", "1.0.0", "run-1", "pending", None)
    assert json.loads(arguments) == args and policies == ["refunds/above_limit"]
    assert POLICY_HASH.match(policy_hash) and policy_hash == tb.gate.policy_hash
    assert partition == date(2026, 11, 3) and expires - created == timedelta(hours=72)
    request = json.loads(cedar)
    assert request["principal"] == {"type": "Agent", "id": AGENT}
    assert request["action"] == {"type": "Action", "id": "issue_refund"}
    assert request["resource"] == {"type": "Order", "id": "O-1000003"}
    assert request["context"]["amount_cents"] == 90000 and request["context"]["order"]["customer_matches"] is True
    assert count(con, "SELECT count(*) FROM agents.refunds") == 0
    assert count(con, "SELECT count(*) FROM agents.outbox") == 0
    assert tb.budget.refund_run_used_cents == 0, "an escalated refund reserves nothing"

    again = tb.call("issue_refund", "T-1", args, facts())
    assert again.status == "escalated" and again.output == {"review_item": item_id, "status": "pending"}
    assert count(con, "SELECT count(*) FROM governance.review_queue") == 1


@pytest.mark.parametrize(("case", "tool", "args", "ticket_facts", "contracts_passed", "policy"), [
    ("frequent_refunder", "issue_refund", refund_args(), facts(refunds_90d=3), True, "refunds/frequent_refunder"),
    ("stale_features", "issue_refund", refund_args(), facts(times={"plan": FRESH, "tenure_days": STALE}), True,
     "data/stale_features"),
    ("no_features_read", "issue_refund", refund_args(), facts(times={}), True, "data/stale_features"),
    ("contract_failed_reply", "send_reply", reply_args("Your refund is on its way."), facts(), False,
     "data/contract_failed"),
    ("contract_failed_refund", "issue_refund", refund_args(), facts(), False, "data/contract_failed"),
])
def test_risky_calls_escalate_by_the_named_policy(con: Any, switches: KillSwitches, case: str, tool: str,
                                                  args: dict[str, Any], ticket_facts: dict[str, Any],
                                                  contracts_passed: bool, policy: str) -> None:
    tb = make_toolbox(con, switches, contracts_passed=contracts_passed)
    result = tb.call(tool, "T-1", args, ticket_facts)
    assert (result.status, result.verdict.decision, result.verdict.policies) == ("escalated", "escalate", (policy,))
    assert con.execute("SELECT tool, status, policies FROM governance.review_queue").fetchall() == [
        (tool, "pending", [policy])]
    assert count(con, "SELECT count(*) FROM agents.outbox") == 0


def test_stale_feature_age_is_measured_against_as_of(tb: Toolbox) -> None:
    fresh = tb.call("issue_refund", "T-1", refund_args(), facts(times={"plan": "2026-11-02T01:00:00+00:00"}))
    assert fresh.verdict.request["context"]["data"]["features_age_hours"] == 47 and fresh.verdict.decision == "allow"
    stale = tb.call("issue_refund", "T-1", refund_args("O-1000004", 10.0),
                    facts(times={"plan": "2026-11-01T23:00:00+00:00"}))
    assert stale.verdict.request["context"]["data"]["features_age_hours"] == 49
    assert stale.verdict.policies == ("data/stale_features",)


# --- budgets -------------------------------------------------------------------------------------------------


def test_refunds_of_one_run_over_the_run_budget_are_denied(con: Any, switches: KillSwitches) -> None:
    manifest = manifest_with(budgets=budgets(max_refund_usd_per_run=100, max_refund_usd_per_day=5000))
    tb = make_toolbox(con, switches, manifest=manifest)
    assert tb.call("issue_refund", "T-1", refund_args(), facts()).status == "ok"
    assert tb.budget.refund_run_used_cents == 4999 and tb.budget.refund_day_used_cents == 4999
    second = tb.call("issue_refund", "T-1", refund_args("O-1000004", 60.0), facts())
    assert (second.status, second.verdict.policies) == ("denied", ("budget/refund_run",))
    assert second.verdict.request["context"]["budget"]["refund_run_used_cents"] == 4999
    assert tb.budget.refund_run_used_cents == 4999, "a denied refund reserves nothing"
    assert con.execute("SELECT order_id FROM agents.refunds").fetchall() == [("O-1000001",)]
    within = tb.call("issue_refund", "T-1", refund_args("O-1000004", 50.0), facts())
    assert within.status == "ok" and tb.budget.refund_run_used_cents == 9999


def test_refunds_of_earlier_runs_of_the_day_count_against_the_day_budget(con: Any, switches: KillSwitches) -> None:
    manifest = manifest_with(budgets=budgets(max_refund_usd_per_run=5000, max_refund_usd_per_day=100))
    assert make_toolbox(con, switches, manifest=manifest).call("issue_refund", "T-1", refund_args(), facts()).executed
    used = refunds_used_cents(con, AGENT, DAY, CONFIG)
    assert used == 4999
    later = make_toolbox(con, switches, manifest=manifest, refund_day_used_cents=used, run_id="run-2")
    result = later.call("issue_refund", "T-4", refund_args("O-1000004", 60.0), facts("T-4"))
    assert (result.status, result.verdict.policies) == ("denied", ("budget/refund_day",))
    assert count(con, "SELECT count(*) FROM agents.refunds") == 1


def test_a_refund_that_fails_releases_its_reservation(con: Any, switches: KillSwitches) -> None:
    def payment_down(args: Any, env: Any) -> dict[str, Any]:
        raise ConnectionError("payment provider unreachable")

    manifest = manifest_with(budgets=budgets(max_refund_usd_per_run=100, max_refund_usd_per_day=5000))
    tb = make_toolbox(con, switches, manifest=manifest, overrides={"issue_refund": payment_down})
    with pytest.raises(ToolCallError, match="issue_refund raised ConnectionError: payment provider unreachable"):
        tb.call("issue_refund", "T-1", refund_args(), facts())
    assert (tb.budget.refund_run_used_cents, tb.budget.refund_day_used_cents) == (0, 0)
    assert tb.records[-1]["status"] == "error" and tb.records[-1]["executed"] is False

    tb.overrides.clear()  # the provider is back: 60 fits the 100 USD budget only if the 49.99 was released
    result = tb.call("issue_refund", "T-1", refund_args("O-1000004", 60.0), facts())
    assert (result.status, result.executed) == ("ok", True) and tb.budget.refund_run_used_cents == 6000
    assert con.execute("SELECT order_id FROM agents.refunds").fetchall() == [("O-1000004",)]


def test_a_refund_whose_outbox_transaction_fails_releases_its_reservation(con: Any, switches: KillSwitches,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    prefix, _, values, id_field = effects_module.EFFECTS["issue_refund"]
    monkeypatch.setitem(effects_module.EFFECTS, "issue_refund", (
        prefix, "INSERT INTO agents.refunds (refund_id, agent, ticket_id, order_id, amount, currency, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, error('ledger write failed: ' || ?))", values, id_field))
    tb = make_toolbox(con, switches)
    with pytest.raises(ToolCallError, match="ledger write failed"):
        tb.call("issue_refund", "T-1", refund_args(), facts())
    assert tb.budget.refund_run_used_cents == 0
    assert count(con, "SELECT count(*) FROM agents.refunds") == 0
    assert count(con, "SELECT count(*) FROM agents.outbox") == 0
    monkeypatch.undo()
    assert tb.call("issue_refund", "T-1", refund_args(), facts()).executed is True
    assert count(con, "SELECT count(*) FROM agents.refunds") == 1


# --- replies -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "policies", "scan"), [
    (f"We also copied {OTHER_EMAIL} on this.", {"replies/other_customer_data"}, (0, 1)),
    ("We also copied bob dot smith at mail dot example on this.", {"replies/other_customer_data"}, (0, 1)),
    ("Your order O-1000002 will be refunded.", {"replies/other_customer_data"}, (0, 1)),
    ("Customer C-00002 had the same problem.", {"replies/other_customer_data"}, (0, 1)),
    ("Use key AKIAIOSFODNN7EXAMPLE to log in.", {"replies/secret"}, (1, 0)),
    (f"Key AKIAIOSFODNN7EXAMPLE, ask {OTHER_EMAIL}.", {"replies/secret", "replies/other_customer_data"}, (1, 1)),
], ids=["other_email", "spelled_email", "other_order", "other_customer_id", "aws_key", "both"])
def test_reply_with_other_customers_data_or_a_secret_is_denied(con: Any, tb: Toolbox, body: str,
                                                              policies: set[str], scan: tuple[int, int]) -> None:
    result = tb.call("send_reply", "T-1", reply_args(body), facts())
    assert (result.status, result.verdict.decision, result.executed) == ("denied", "deny", False)
    assert set(result.verdict.policies) == policies
    found = result.verdict.request["context"]["scan"]
    assert (found["secrets"], found["other_customer_refs"]) == scan
    assert count(con, "SELECT count(*) FROM agents.replies") == 0


def test_reply_to_another_ticket_is_denied(con: Any, tb: Toolbox) -> None:
    result = tb.call("send_reply", "T-1", reply_args("Your refund is on its way.", ticket_id="T-2"), facts())
    assert (result.status, result.verdict.policies) == ("denied", ("replies/other_customer_data",))
    assert result.verdict.request["resource"] == {"type": "Ticket", "id": "T-2"}
    assert count(con, "SELECT count(*) FROM agents.replies") == 0


def test_reply_with_the_customers_own_data_is_sent(con: Any, tb: Toolbox) -> None:
    body = f"Hi, we refunded O-1000001 and wrote to {OWN_EMAIL.upper()}; questions: help@support.example.com."
    result = tb.call("send_reply", "T-1", reply_args(body), facts())
    assert (result.status, result.verdict.policies, result.executed) == ("ok", ("grants/side_effects",), True)
    assert result.verdict.request["context"]["scan"] == {"secrets": 0, "other_customer_refs": 0, "chars": len(body)}
    assert con.execute("SELECT ticket_id, body FROM agents.replies").fetchall() == [("T-1", body)]


# --- grants --------------------------------------------------------------------------------------------------


def test_a_tool_the_manifest_does_not_grant_is_denied(con: Any, switches: KillSwitches) -> None:
    manifest = manifest_with(tools=[t for t in MANIFEST.tools if t != "send_reply"],
                             actions=[a.model_dump() for a in MANIFEST.actions if a.tool != "send_reply"])
    tb = make_toolbox(con, switches, manifest=manifest)
    result = tb.call("send_reply", "T-1", reply_args("Your refund is on its way."), facts())
    assert (result.status, result.verdict.decision, result.verdict.policies) == (
        "denied", "deny", ("grants/not_granted",))
    assert count(con, "SELECT count(*) FROM agents.replies") == 0
    lookup = tb.call("order_lookup", "T-1", {"order_id": "O-1000001"}, facts())
    assert (lookup.status, lookup.verdict.policies) == ("ok", ("grants/reads",))
    assert lookup.output["customer_id"] == "C-00001"


def test_a_tool_outside_the_catalog_never_reaches_the_gate(tb: Toolbox) -> None:
    with pytest.raises(ToolCallError, match="wire_money: not in the tool catalog"):
        tb.call("wire_money", "T-1", {"to": "attacker"}, facts())
    assert tb.gate.decisions == 0 and tb.budget.tool_calls == 0
    assert tb.records == [], "refused before a record is started (so it reaches neither tool_calls nor the audit log)"


# --- kill switches -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "target", "policy"), [
    ("agent", AGENT, f"kill_switch/agent:{AGENT}"),
    ("tool", "issue_refund", "kill_switch/tool:issue_refund"),
    ("global", "", "kill_switch/global"),
])
def test_a_switch_flipped_by_another_process_stops_the_next_call(con: Any, tb: Toolbox, switches: KillSwitches,
                                                                 scope: str, target: str, policy: str) -> None:
    other = KillSwitches(switches.path)  # `factory kill` in another process, on the same journal
    other.flip("agent", "knowledge_gaps", True, by="ops", reason="unrelated agent")
    assert tb.call("issue_refund", "T-1", refund_args(), facts()).executed, "the gate has read the journal"
    decisions = tb.gate.decisions

    other.flip(scope, target, True, by="alice", reason="refund storm")  # type: ignore[arg-type]
    stopped = tb.call("issue_refund", "T-4", refund_args("O-1000004", 10.0), facts("T-4"))
    assert (stopped.status, stopped.verdict.decision, stopped.verdict.policies) == ("denied", "deny", (policy,))
    assert "by alice: refund storm" in stopped.verdict.reason and POLICY_HASH.match(stopped.verdict.policy_hash)
    assert tb.gate.decisions == decisions, "a killed call never reaches Cedar"
    read = tb.call("order_lookup", "T-4", {"order_id": "O-1000004"}, facts("T-4"))
    assert read.status == ("ok" if scope == "tool" else "denied")
    assert count(con, "SELECT count(*) FROM agents.refunds") == 1

    other.flip(scope, target, False, by="alice", reason="storm over")  # type: ignore[arg-type]
    revived = tb.call("issue_refund", "T-4", refund_args("O-1000004", 10.0), facts("T-4"))
    assert (revived.status, revived.executed, revived.verdict.policies) == ("ok", True, ("grants/side_effects",))
    assert count(con, "SELECT count(*) FROM agents.refunds") == 2


def test_kill_switch_of_another_agent_or_tool_does_not_stop_this_one(tb: Toolbox, switches: KillSwitches) -> None:
    KillSwitches(switches.path).flip("agent", "knowledge_gaps", True, by="ops", reason="noisy")
    KillSwitches(switches.path).flip("tool", "send_reply", True, by="ops", reason="mail outage")
    assert tb.call("issue_refund", "T-1", refund_args(), facts()).status == "ok"
    reply = tb.call("send_reply", "T-1", reply_args("Refunded."), facts())
    assert reply.verdict.policies == ("kill_switch/tool:send_reply",)


def test_manifest_kill_switch_denies_everything(con: Any, switches: KillSwitches) -> None:
    tb = make_toolbox(con, switches, manifest=manifest_with(kill_switch=True))
    calls = [("order_lookup", {"order_id": "O-1000001"}), ("issue_refund", refund_args()),
             ("send_reply", reply_args("Refunded.")),
             ("escalate_to_human", {"ticket_id": "T-1", "reason": "needs a look", "priority": "low"})]
    results = [tb.call(tool, "T-1", args, facts()) for tool, args in calls]
    assert [(r.status, r.verdict.policies) for r in results] == [("denied", ("kill_switch/manifest",))] * 4
    assert tb.gate.decisions == 0
    assert count(con, "SELECT count(*) FROM agents.outbox") == 0


# --- records, results and the audit log ----------------------------------------------------------------------


def test_every_call_is_recorded_with_its_verdict_and_audited(con: Any, tb: Toolbox) -> None:
    calls = [
        ("order_lookup", {"order_id": "O-1000001"}, "allow", ["grants/reads"]),
        ("issue_refund", refund_args(), "allow", ["grants/side_effects"]),
        ("issue_refund", refund_args("O-1000002", 20.0), "deny", ["refunds/order_not_theirs"]),
        ("issue_refund", refund_args("O-1000003", 900.0), "escalate", ["refunds/above_limit"]),
        ("send_reply", reply_args("Refunded, see KB-001."), "allow", ["grants/side_effects"]),
    ]
    for tool, args, _, _ in calls:
        tb.call(tool, "T-1", args, facts())
    assert [(r["tool"], r["verdict"], r["policies"]) for r in tb.records] == [(c[0], c[2], c[3]) for c in calls]
    for record in tb.records:
        assert record["policy_hash"] == tb.gate.policy_hash and record["reason"]
        request = json.loads(record["cedar_request"])
        assert request["action"]["id"] == record["tool"] and request["principal"]["id"] == AGENT

    record_agent_day(con, AGENT, DAY, [], tb.records)
    rows = con.execute("SELECT tool, verdict, policies, policy_hash, json_extract_string(cedar_request, "
                       "'$.action.id'), status, executed FROM agents.tool_calls ORDER BY called_at, rowid").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(c[0], c[2], c[3]) for c in calls]
    assert all(r[3] == tb.gate.policy_hash and r[4] == r[0] for r in rows)
    assert [(r[5], r[6]) for r in rows] == [("ok", True), ("ok", True), ("denied", False), ("escalated", False),
                                            ("ok", True)]
    events = con.execute("SELECT actor, subject, json_extract_string(payload, '$.verdict'), "
                         "json_extract_string(payload, '$.tool') FROM governance.audit_log "
                         "WHERE kind = 'tool_call' ORDER BY seq").fetchall()
    assert events == [(f"agent:{AGENT}", "ticket:T-1", c[2], c[0]) for c in calls]
    effects = con.execute("SELECT json_extract_string(payload, '$.tool'), json_extract_string(payload, "
                          "'$.idempotency_key') FROM governance.audit_log WHERE kind = 'effect_executed' "
                          "ORDER BY seq").fetchall()
    keys = con.execute("SELECT tool, idempotency_key FROM agents.outbox ORDER BY executed_at").fetchall()
    assert effects == keys == [("issue_refund", keys[0][1]), ("send_reply", keys[1][1])], "each effect, as it ran"
    report = verify(con)
    assert report.ok and report.entries == len(calls) + len(effects), report.summary()


def test_a_call_that_fails_after_the_gate_allowed_it_still_records_the_verdict(con: Any,
                                                                             switches: KillSwitches) -> None:
    def payment_down(args: Any, env: Any) -> dict[str, Any]:
        raise ConnectionError("payment provider timed out")

    tb = make_toolbox(con, switches, overrides={"issue_refund": payment_down})
    with pytest.raises(ToolCallError):
        tb.call("issue_refund", "T-1", refund_args(), facts())
    record = tb.records[-1]
    assert record["status"] == "error"
    assert (record["verdict"], record["policies"]) == ("allow", ["grants/side_effects"])
    assert record.get("policy_hash") == tb.gate.policy_hash and record.get("cedar_request")


# --- requests outside the schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ({"extra": 1}, "`extra` should not exist according to the schema"),
    ({"amount_cents": "a lot"}, "is not valid for `Action::\"issue_refund\"`"),
], ids=["extra_attribute", "wrong_type"])
def test_a_request_outside_the_schema_is_denied_with_an_alert(tb: Toolbox, change: dict[str, Any],
                                                              message: str) -> None:
    gate = tb.gate
    request = ToolRequest(AGENT, "T-1", CATALOG["issue_refund"], CATALOG["issue_refund"].input.model_validate(
        refund_args()), facts())
    cedar = gate.request(request)
    assert gate.engine.decide(cedar, gate._entities).outcome == "allow", "the well-formed request is allowed"
    cedar["context"] |= change
    decision = gate.engine.decide(cedar, gate._entities)
    assert (decision.outcome, decision.policies, decision.alert) == ("deny", ("cedar/error",), True)
    assert decision.reason.startswith("ALERT: policy evaluation failed, denied") and message in decision.reason
    verdict = gate.verdict(decision, cedar)
    assert (verdict.decision, verdict.policies) == ("deny", ("cedar/error",))
    assert gate.alerts == [decision.reason]


# --- money the gate must count ------------------------------------------------------------------------------


def test_refunds_already_issued_by_agents_count_against_the_amount_paid(con: Any, tb: Toolbox) -> None:
    assert tb.call("issue_refund", "T-1", refund_args(reason="kettle arrived broken"), facts()).executed
    again = tb.call("issue_refund", "T-1", refund_args(reason="refund request in ticket T-1"), facts())
    assert count(con, "SELECT sum(amount) FROM agents.refunds WHERE order_id = 'O-1000001'") == 49.99
    assert (again.status, again.verdict.policies) == ("denied", ("refunds/more_than_paid",))
    assert again.verdict.request["context"]["order"]["refunded_cents"] == 4999


def test_a_partial_refund_leaves_the_rest_of_the_order_refundable(con: Any, tb: Toolbox) -> None:
    assert tb.call("issue_refund", "T-1", refund_args(amount=30.0, reason="dented lid"), facts()).executed
    rest = tb.call("issue_refund", "T-1", refund_args(amount=19.99, reason="stopped heating"), facts())
    assert (rest.status, rest.executed) == ("ok", True)
    assert rest.verdict.request["context"]["order"]["refunded_cents"] == 3000
    over = tb.call("issue_refund", "T-1", refund_args(amount=0.01, reason="one more cent"), facts())
    assert (over.status, over.verdict.policies) == ("denied", ("refunds/more_than_paid",))
    assert count(con, "SELECT count(*) FROM agents.refunds") == 2


def test_a_refund_the_shop_recorded_counts_when_a_later_export_row_has_no_refund_amount(con: Any, tb: Toolbox) -> None:
    """The shop refunded the chair in full on 11-02; its next export row (a status update) leaves
    refund_amount empty. The gate still sees the refund, so nothing more is paid out."""
    con.execute("""INSERT INTO staging.orders VALUES
        ('O-1000004', 'C-00001', 'Chair', 200.0, 'USD', 200.0, 'delivered', 200.0, '2026-11-02 09:00:00'),
        ('O-1000004', 'C-00001', 'Chair', 200.0, 'USD', 200.0, 'delivered', NULL, '2026-11-03 08:00:00')""")
    result = tb.call("issue_refund", "T-1", refund_args("O-1000004", 60.0, "wobbly leg"), facts())
    assert (result.status, result.verdict.policies) == ("denied", ("refunds/more_than_paid",))
    assert result.verdict.request["context"]["order"]["refunded_cents"] == 20000
    lookup = tb.call("order_lookup", "T-1", {"order_id": "O-1000004"}, facts())
    assert (lookup.output["refund_amount"], lookup.output["status"]) == (200.0, "delivered")


def test_a_ticket_reading_features_newer_than_itself_escalates_its_side_effects(con: Any, tb: Toolbox) -> None:
    """Features stamped after the ticket was written (a backfill reading the future) are stale, never fresh:
    refunds and replies escalate, reads go on."""
    ticket = {"ticket_id": "T-1", "customer_id": "C-00001", "created_at": datetime(2026, 11, 3, 10)}
    future = facts(times={"plan": "2026-11-03T12:00:00+00:00", "tenure_days": FRESH})
    future.ticket = ticket
    refund = tb.call("issue_refund", "T-1", refund_args(), future)
    assert refund.verdict.request["context"]["data"] == {"contracts_passed": True, "features_age_hours": 0,
                                                         "features_after_ticket": True,
                                                         "drift": {"status": "none", "slices": []}}
    assert (refund.status, refund.verdict.policies) == ("escalated", ("data/features_after_ticket",))
    reply = tb.call("send_reply", "T-1", reply_args("We are looking into it."), future)
    assert (reply.status, reply.verdict.policies) == ("escalated", ("data/features_after_ticket",))
    assert tb.call("order_lookup", "T-1", {"order_id": "O-1000001"}, future).status == "ok"
    past = facts(times={"plan": "2026-11-03T08:00:00+00:00", "tenure_days": "2026-11-03T08:00:00+00:00"})
    past.ticket = ticket
    assert tb.call("issue_refund", "T-1", refund_args(reason="stopped heating"), past).status == "ok", "2 h old"


def test_a_refund_in_the_orders_currency_is_judged_in_usd(con: Any, tb: Toolbox) -> None:
    small = tb.call("issue_refund", "T-1", refund_args("O-1000006", 400.0, "desk scratched", "EUR"), facts())
    assert small.verdict.request["context"]["amount_cents"] == 43200 and small.status == "ok"
    big = tb.call("issue_refund", "T-1", refund_args("O-1000006", 100.0, "desk wobbles", "EUR"), facts())
    assert big.verdict.request["context"]["order"] == {"found": True, "customer_matches": True,
                                                       "amount_cents": 54000, "refunded_cents": 43200,
                                                       "status": "delivered"}
    assert big.status == "ok", "400 + 100 EUR is exactly what was paid"
    larger = tb.call("issue_refund", "T-1", refund_args("O-1000006", 480.0, "desk broken", "EUR"), facts())
    assert (larger.status, larger.verdict.policies) == ("denied", ("refunds/more_than_paid",))


def test_rerun_of_the_day_replays_an_executed_refund_within_the_day_budget(con: Any,
                                                                          switches: KillSwitches) -> None:
    """The day budget of a re-run already holds the refunds of the day (refunds_used_cents): a replayed refund
    is answered by the outbox, neither denied by budget/refund_day nor reserved a second time."""
    manifest = manifest_with(budgets=budgets(max_refund_usd_per_run=100, max_refund_usd_per_day=100))
    first = make_toolbox(con, switches, manifest=manifest)
    assert first.call("issue_refund", "T-1", refund_args(), facts()).executed
    assert first.call("issue_refund", "T-4", refund_args("O-1000004", 40.0), facts("T-4")).executed
    used = refunds_used_cents(con, AGENT, DAY, CONFIG)
    assert used == 8999
    rerun = make_toolbox(con, switches, manifest=manifest, refund_day_used_cents=used, run_id="run-2")
    replay = rerun.call("issue_refund", "T-1", refund_args(), facts())
    assert count(con, "SELECT count(*) FROM agents.refunds") == 2
    assert (replay.status, replay.executed) == ("ok", False), replay.verdict
    assert rerun.budget.refund_day_used_cents == 8999


# --- known bugs ----------------------------------------------------------------------------------------------


def test_a_refund_in_another_currency_than_the_order_is_converted_with_its_own_rate(con: Any, tb: Toolbox) -> None:
    result = tb.call("issue_refund", "T-1", refund_args("O-1000003", 450.0, currency="GBP"), facts())
    assert result.verdict.request["context"]["amount_cents"] == 57150
    assert (result.status, result.verdict.policies) == ("escalated", ("refunds/above_limit",))
    assert count(con, "SELECT count(*) FROM agents.refunds") == 0


def test_a_rerun_of_an_old_day_sees_what_the_shop_refunded_since(con: Any, tb: Toolbox) -> None:
    """Ownership and price as of the day; refunds and status as they are now, or an old day refunds twice."""
    con.execute("INSERT INTO staging.orders VALUES ('O-1000001', 'C-00001', 'Kettle', 49.99, 'USD', 49.99, "
                "'refunded', 49.99, '2026-11-20 09:00:00')")  # refunded by the shop after the day being re-run
    result = tb.call("issue_refund", "T-1", refund_args(), facts())
    assert result.status == "denied" and "refunds/order_cancelled_or_refunded" in result.verdict.policies
    assert count(con, "SELECT count(*) FROM agents.outbox WHERE tool = 'issue_refund'") == 0
