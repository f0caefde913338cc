"""The human review queue with a real warehouse and a real escalation: customer C-00001 asks for a 900 USD
refund of their own sofa (O-1000003), which `refunds/above_limit` sends to a reviewer through `Toolbox.call`.
Approved items run exactly once through the outbox, after kill switches and the policies are checked again."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest

from factory_pipelines.lib.agents import effects as effects_module
from factory_pipelines.lib.agents.effects import perform_effect
from factory_pipelines.lib.agents.manifests import AgentManifest
from factory_pipelines.lib.agents.toolbox import Toolbox
from factory_pipelines.lib.governance.audit.verify import verify
from factory_pipelines.lib.governance.gate import recheck_item
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.governance.review import (
    ReviewError,
    decide,
    execute_approved,
    expire_overdue,
    item,
    items,
)
from factory_pipelines.lib.governance.shop import refunds_used_cents
from tests.lib.governance.world import (
    AGENT,
    CONFIG,
    DAY,
    ENGINE,
    MANIFEST,
    budgets,
    count,
    facts,
    make_toolbox,
    manifest_with,
    refund_args,
)

BIG = refund_args("O-1000003", 900.0, "sofa arrived broken")


def escalate(tb: Toolbox, args: dict[str, Any] = BIG, ticket_id: str = "T-3") -> str:
    """The agent asks for the refund; the gate escalates it; returns the review item's id."""
    result = tb.call("issue_refund", ticket_id, args, facts(ticket_id))
    assert (result.status, result.verdict.policies) == ("escalated", ("refunds/above_limit",)), result.verdict
    return result.output["review_item"]


def recheck(con: Any, manifest: AgentManifest | None = MANIFEST) -> Callable[[dict[str, Any]], Any]:
    """What the review sweep asset passes to execute_approved: today's manifest and policies."""
    return lambda row: recheck_item(con, row, manifest, lambda name: ENGINE, CONFIG)


def approve(con: Any, item_id: str, switches: KillSwitches, **kwargs: Any) -> dict[str, Any]:
    return decide(con, item_id, approve=True, reviewer="lead.anna", reason="customer sent photos",
                  switches=switches, **kwargs)


def status(con: Any, item_id: str) -> str:
    return item(con, item_id)["status"]


def effects(con: Any) -> tuple[int, int]:
    return count(con, "SELECT count(*) FROM agents.refunds"), count(con, "SELECT count(*) FROM agents.outbox")


def audit_kinds(con: Any) -> list[str]:
    return [r[0] for r in con.execute("SELECT kind FROM governance.audit_log ORDER BY seq").fetchall()]


def test_approved_item_executes_exactly_once(con: Any, tb: Toolbox, switches: KillSwitches) -> None:
    item_id = escalate(tb)
    approved = approve(con, item_id, switches)
    assert (approved["status"], approved["reviewer"], approved["review_reason"]) == (
        "approved", "lead.anna", "customer sent photos")
    assert effects(con) == (0, 0), "approval alone does not act"

    before = datetime.now(UTC)
    done = execute_approved(con, switches, recheck(con))
    assert [(e.item_id, e.status) for e in done] == [(item_id, "executed")]
    assert con.execute("SELECT order_id, amount, ticket_id, agent FROM agents.refunds").fetchall() == [
        ("O-1000003", 900.0, "T-3", AGENT)]
    outbox = con.execute("SELECT idempotency_key, run_id, partition::VARCHAR, json_extract_string(result, "
                         "'$.refund_id') FROM agents.outbox").fetchall()
    assert len(outbox) == 1 and outbox[0][0] == item_id and outbox[0][1] == f"review:{item_id[:12]}"
    assert outbox[0][2] == DAY
    row = item(con, item_id)
    assert row["status"] == "executed" and before <= row["executed_at"] <= datetime.now(UTC)
    assert json.loads(row["result"]) == {"refund_id": outbox[0][3], "status": "issued"}
    assert row["outcome_reason"] == "approved by lead.anna"
    assert refunds_used_cents(con, AGENT, DAY, CONFIG) == 90000, "counts against the agent's day"

    assert execute_approved(con, switches, recheck(con)) == []
    assert effects(con) == (1, 1) and status(con, item_id) == "executed"


def test_an_item_is_decided_once(con: Any, tb: Toolbox, switches: KillSwitches) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    with pytest.raises(ReviewError, match=rf"item {item_id} is approved by lead\.anna at 20\d\d-.*only a pending"):
        approve(con, item_id, switches)
    with pytest.raises(ReviewError, match="is approved by lead.anna"):
        decide(con, item_id[:8], approve=False, reviewer="bob", reason="too much", switches=switches)
    assert item(con, item_id)["reviewer"] == "lead.anna"
    assert audit_kinds(con) == ["review_approved"]


def test_a_review_needs_a_reviewer_and_a_reason(con: Any, tb: Toolbox, switches: KillSwitches) -> None:
    item_id = escalate(tb)
    with pytest.raises(ReviewError, match="reviewer's name and a reason"):
        decide(con, item_id, approve=True, reviewer="lead", reason="  ", switches=switches)
    with pytest.raises(ReviewError, match="no review item"):
        approve(con, "ffffffffff", switches)
    assert status(con, item_id) == "pending"


def test_rejected_item_is_never_executed(con: Any, tb: Toolbox, switches: KillSwitches) -> None:
    item_id = escalate(tb)
    rejected = decide(con, item_id, approve=False, reviewer="lead.anna", reason="outside the return window",
                      switches=switches)
    assert (rejected["status"], rejected["review_reason"]) == ("rejected", "outside the return window")
    assert execute_approved(con, switches, recheck(con)) == []
    assert effects(con) == (0, 0) and status(con, item_id) == "rejected"
    with pytest.raises(ReviewError, match="is rejected by lead.anna"):
        approve(con, item_id, switches)
    again = tb.call("issue_refund", "T-3", BIG, facts("T-3"))  # the agent asks again: still not refunded
    assert (again.status, again.output, again.verdict.policies) == ("denied", None, ("review/rejected",))
    assert effects(con) == (0, 0)


@pytest.mark.parametrize(("scope", "target"), [("agent", AGENT), ("tool", "issue_refund"), ("global", "")])
def test_approval_is_refused_while_a_kill_switch_is_on(con: Any, tb: Toolbox, switches: KillSwitches, scope: str,
                                                      target: str) -> None:
    item_id = escalate(tb)
    KillSwitches(switches.path).flip(scope, target, True, by="ops", reason="incident 42")  # type: ignore[arg-type]
    with pytest.raises(ReviewError, match=r"cannot be approved: kill_switch/.*by ops: incident 42.*Revive first"):
        approve(con, item_id, switches)
    assert status(con, item_id) == "pending" and audit_kinds(con) == []
    KillSwitches(switches.path).flip(scope, target, False, by="ops", reason="resolved")  # type: ignore[arg-type]
    assert approve(con, item_id, switches)["status"] == "approved"


def test_kill_switch_turned_on_after_approval_cancels_the_execution(con: Any, tb: Toolbox,
                                                                   switches: KillSwitches) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    KillSwitches(switches.path).flip("agent", AGENT, True, by="ops", reason="refund storm")
    done = execute_approved(con, switches, recheck(con))
    assert [(e.item_id, e.status) for e in done] == [(item_id, "cancelled")]
    assert done[0].detail.startswith(f"kill_switch/agent:{AGENT}")
    row = item(con, item_id)
    assert row["status"] == "cancelled" and "refund storm" in row["outcome_reason"] and row["result"] is None
    assert effects(con) == (0, 0)

    KillSwitches(switches.path).flip("agent", AGENT, False, by="ops", reason="over")
    assert execute_approved(con, switches, recheck(con)) == [], "a cancelled item stays cancelled"
    assert effects(con) == (0, 0)


def test_crash_between_approval_and_execution_then_exactly_once(con: Any, tb: Toolbox, switches: KillSwitches,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    prefix, _, values, id_field = effects_module.EFFECTS["issue_refund"]
    monkeypatch.setitem(effects_module.EFFECTS, "issue_refund", (
        prefix, "INSERT INTO agents.refunds (refund_id, agent, ticket_id, order_id, amount, currency, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, error('payment provider crashed: ' || ?))", values, id_field))
    with pytest.raises(duckdb.Error, match="payment provider crashed"):
        execute_approved(con, switches, recheck(con))
    row = item(con, item_id)
    assert (row["status"], row["executed_at"], row["result"]) == ("approved", None, None)
    assert effects(con) == (0, 0)
    assert "review_executed" not in audit_kinds(con)

    monkeypatch.undo()
    done = execute_approved(con, switches, recheck(con))
    assert [(e.item_id, e.status) for e in done] == [(item_id, "executed")]
    assert effects(con) == (1, 1) and status(con, item_id) == "executed"
    assert execute_approved(con, switches, recheck(con)) == []
    assert effects(con) == (1, 1)
    assert audit_kinds(con) == ["review_approved", "review_executed"]
    assert verify(con).ok


def test_overdue_item_expires_and_cannot_be_approved(con: Any, tb: Toolbox, switches: KillSwitches) -> None:
    item_id = escalate(tb)
    created = item(con, item_id)["created_at"]
    assert expire_overdue(con, created + timedelta(hours=71)) == [] and status(con, item_id) == "pending"
    with pytest.raises(ReviewError, match=rf"item {item_id} is expired; only a pending"):
        approve(con, item_id, switches, now=created + timedelta(hours=72, seconds=1))
    row = item(con, item_id)
    assert row["status"] == "expired" and row["outcome_reason"].startswith("not decided by ")
    assert execute_approved(con, switches, recheck(con)) == [] and effects(con) == (0, 0)
    assert audit_kinds(con) == ["review_expired"]


def test_tiny_ttl_expires_in_the_sweep(con: Any, switches: KillSwitches) -> None:
    tb = make_toolbox(con, switches, review_ttl_hours=1 / 3600)
    item_id = escalate(tb)
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert execute_approved(con, switches, recheck(con), now=later) == []
    assert status(con, item_id) == "expired" and [i["item_id"] for i in items(con, "expired")] == [item_id]
    assert expire_overdue(con, later) == [], "expired once"
    assert audit_kinds(con) == ["review_expired"]


@pytest.mark.parametrize(("manifest", "policy"), [
    (manifest_with(tools=[t for t in MANIFEST.tools if t != "issue_refund"],
                   actions=[a.model_dump() for a in MANIFEST.actions if a.tool != "issue_refund"]),
     "grants/not_granted"),
    (manifest_with(kill_switch=True), "kill_switch/manifest"),
    (manifest_with(stage="retired"), "manifest/missing"),
    (None, "manifest/missing"),
], ids=["tool_withdrawn", "manifest_kill_switch", "retired", "manifest_gone"])
def test_a_policy_that_now_denies_cancels_the_approved_item(con: Any, tb: Toolbox, switches: KillSwitches,
                                                           manifest: AgentManifest | None, policy: str) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    done = execute_approved(con, switches, recheck(con, manifest))
    assert [(e.item_id, e.status) for e in done] == [(item_id, "cancelled")]
    assert done[0].detail.startswith(f"denied at execution by {policy}")
    assert status(con, item_id) == "cancelled" and effects(con) == (0, 0)


def test_the_day_budget_is_rechecked_at_execution(con: Any, switches: KillSwitches) -> None:
    manifest = manifest_with(budgets=budgets(max_refund_usd_per_day=1000))
    tb = make_toolbox(con, switches, manifest=manifest)
    con.execute("INSERT INTO staging.orders VALUES ('O-1000005', 'C-00001', 'Bed', 800.0, 'USD', 800.0, "
                "'delivered', NULL, '2026-11-01 09:00:00')")
    first = escalate(tb)  # 900 USD; with the 800 USD below, each fits the 1,000 USD day, not both
    other = tb.call("issue_refund", "T-9", refund_args("O-1000005", 800.0, "bed arrived broken"), facts("T-9"))
    assert other.status == "escalated"
    for item_id in (first, other.output["review_item"]):
        approve(con, item_id, switches)
    done = execute_approved(con, switches, recheck(con, manifest))
    assert sorted(e.status for e in done) == ["cancelled", "executed"]
    cancelled = next(e for e in done if e.status == "cancelled")
    assert cancelled.detail.startswith("denied at execution by budget/refund_day")
    assert effects(con) == (1, 1)


def test_every_review_outcome_is_an_audit_event_and_the_chain_verifies(con: Any, tb: Toolbox,
                                                                      switches: KillSwitches) -> None:
    executed = escalate(tb, ticket_id="T-3")
    rejected = escalate(tb, ticket_id="T-5")
    expired = escalate(tb, ticket_id="T-6")
    cancelled = escalate(tb, ticket_id="T-7")
    approve(con, executed, switches)
    decide(con, rejected, approve=False, reviewer="lead.anna", reason="duplicate ticket", switches=switches)
    approve(con, cancelled, switches)
    assert expire_overdue(con, item(con, expired)["expires_at"] + timedelta(seconds=1))[0]["item_id"] == expired
    gone = manifest_with(kill_switch=True)
    done = execute_approved(con, switches, lambda row: recheck_item(
        con, row, MANIFEST if row["item_id"] == executed else gone, lambda name: ENGINE, CONFIG))
    assert {e.item_id: e.status for e in done} == {executed: "executed", cancelled: "cancelled"}

    events = con.execute("SELECT kind, actor, json_extract_string(payload, '$.item_id'), subject "
                         "FROM governance.audit_log ORDER BY seq").fetchall()
    by_item = {(kind, item_id) for kind, _, item_id, _ in events}
    assert by_item == {("review_approved", executed), ("review_rejected", rejected), ("review_approved", cancelled),
                       ("review_expired", expired), ("review_executed", executed),
                       ("review_cancelled", cancelled)}
    assert len(events) == 6
    actors = {kind: actor for kind, actor, _, _ in events}
    assert actors["review_approved"] == actors["review_rejected"] == "lead.anna"
    assert actors["review_expired"] == actors["review_executed"] == actors["review_cancelled"] == "factory"
    assert {subject for *_, subject in events} == {"ticket:T-3", "ticket:T-5", "ticket:T-6", "ticket:T-7"}
    payload = json.loads(con.execute("SELECT payload FROM governance.audit_log WHERE kind = 'review_approved' "
                                     "ORDER BY seq LIMIT 1").fetchall()[0][0])
    assert payload["arguments"] == BIG and payload["policies"] == ["refunds/above_limit"]
    assert payload["reason"] == "customer sent photos" and payload["policy_hash"] == tb.gate.policy_hash
    report = verify(con)
    assert report.ok and report.entries == 6, report.summary()


def test_the_agent_rerunning_the_day_after_execution_does_not_refund_again(con: Any, tb: Toolbox,
                                                                          switches: KillSwitches) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    [execution] = execute_approved(con, switches, recheck(con))
    stored = json.loads(item(con, item_id)["result"])

    rerun = make_toolbox(con, switches, refund_day_used_cents=refunds_used_cents(con, AGENT, DAY, CONFIG),
                         run_id="run-2")
    again = rerun.call("issue_refund", "T-3", BIG, facts("T-3"))
    assert (again.status, again.executed, again.output) == ("ok", False, stored)
    assert execution.status == "executed"
    assert effects(con) == (1, 1)
    assert count(con, "SELECT count(*) FROM governance.review_queue") == 1
    assert rerun.records[-1]["executed"] is False and rerun.records[-1]["status"] == "ok"


def test_a_rejection_binds_a_rerun_even_when_the_policies_would_now_allow(con: Any, tb: Toolbox,
                                                                          switches: KillSwitches) -> None:
    """Escalated for stale features, rejected; the re-run has fresh features (the gate alone would allow)."""
    small = refund_args("O-1000001", 20.0, "arrived broken")
    stale = tb.call("issue_refund", "T-1", small, facts("T-1", times={"plan": "2026-10-01T00:00:00+00:00"}))
    assert stale.status == "escalated" and stale.verdict.policies == ("data/stale_features",)
    decide(con, stale.output["review_item"], approve=False, reviewer="lead.anna", reason="not eligible",
           switches=switches)
    again = tb.call("issue_refund", "T-1", small, facts("T-1"))
    assert (again.status, again.verdict.policies) == ("denied", ("review/rejected",))
    assert effects(con) == (0, 0)


def test_an_approved_item_the_agent_already_ran_is_marked_executed_not_cancelled(con: Any, tb: Toolbox,
                                                                                switches: KillSwitches) -> None:
    item_id = escalate(tb)
    approve(con, item_id, switches)
    row = item(con, item_id)
    from factory_pipelines.lib.agents.tools import CATALOG

    args = CATALOG["issue_refund"].input.model_validate_json(row["arguments"])
    perform_effect(con, AGENT, row["ticket_id"], CATALOG["issue_refund"], args, "other-run", DAY)
    done = execute_approved(con, switches, recheck(con))
    assert [(d.item_id, d.status) for d in done] == [(item_id, "executed")]
    assert effects(con)[0] == 1 and status(con, item_id) == "executed"


def test_an_approved_reply_is_scanned_again_at_execution(con: Any, switches: KillSwitches) -> None:
    """A reply escalated for a failed contract, approved; a secret pattern added since catches it at execution."""
    held = make_toolbox(con, switches, contracts_passed=False)
    reply = {"ticket_id": "T-1", "body": "Your voucher code is ZEBRA-7731, valid until Friday.", "cited_article_ids": []}
    result = held.call("send_reply", "T-1", reply, facts("T-1"))
    assert result.status == "escalated" and result.verdict.policies == ("data/contract_failed",)
    approve(con, result.output["review_item"], switches)
    stricter = CONFIG.model_copy(update={"secret_patterns": {**CONFIG.secret_patterns, "voucher": r"ZEBRA-[0-9]+"}})
    done = execute_approved(con, switches, lambda row: recheck_item(con, row, MANIFEST, lambda _: ENGINE, stricter))
    assert [d.status for d in done] == ["cancelled"] and "replies/secret" in done[0].detail
    assert count(con, "SELECT count(*) FROM agents.replies") == 0
