"""The human review queue: calls the policies escalate wait here until a reviewer approves or rejects them.

An escalated call is stored with everything needed to run it later: its validated arguments, its
idempotency key (the item id), the decision with its reasons and policies, and the Cedar request.
`decide` records a reviewer's approval or rejection (with a reason) and `execute_approved` runs each
approved call exactly once through the same outbox, re-checking kill switches and the policies first:
a switch turned on or a policy that now denies cancels the call instead. Items not decided in time
expire (denied). Every decision, execution, cancellation and expiry is an audit event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from factory_pipelines.lib.agents.effects import perform_effect
from factory_pipelines.lib.agents.outbox import canonical, done_result, idempotency_key
from factory_pipelines.lib.agents.tools import CATALOG
from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log
from factory_pipelines.lib.governance.kill_switches import KillSwitches
from factory_pipelines.lib.sql import transaction

REVIEW_DDL = """
CREATE TABLE IF NOT EXISTS governance.review_queue (
    item_id VARCHAR PRIMARY KEY, agent VARCHAR NOT NULL, ticket_id VARCHAR, tool VARCHAR NOT NULL,
    tool_version VARCHAR, arguments JSON NOT NULL, reason VARCHAR, policies VARCHAR[], policy_hash VARCHAR,
    cedar_request JSON, run_id VARCHAR, partition DATE, created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL, reviewer VARCHAR, review_reason VARCHAR,
    reviewed_at TIMESTAMPTZ, executed_at TIMESTAMPTZ, result JSON, outcome_reason VARCHAR)
"""
COLUMNS = ("item_id", "agent", "ticket_id", "tool", "tool_version", "arguments", "reason", "policies", "policy_hash",
           "cedar_request", "run_id", "partition", "created_at", "expires_at", "status", "reviewer", "review_reason",
           "reviewed_at", "executed_at", "result", "outcome_reason")
STATUSES = ("pending", "approved", "rejected", "expired", "executed", "cancelled")
DEFAULT_TTL_HOURS = 72.0


class ReviewError(ValueError):
    """A review action that cannot be taken: unknown item, already decided, expired, or killed."""


def ensure_review_queue(con: Any) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS governance")
    con.execute(REVIEW_DDL)
    ensure_audit_log(con)


def enqueue(con: Any, request: Any, verdict: Any, *, run_id: str, partition: str,
            ttl_hours: float = DEFAULT_TTL_HOURS) -> dict[str, Any]:
    """Store an escalated call once per idempotency key (a re-run finds the same item); returns the item."""
    ensure_review_queue(con)
    key = idempotency_key(request.agent, request.ticket_id, request.tool.name, request.arguments)
    now = datetime.now(UTC)
    con.execute(
        "INSERT OR IGNORE INTO governance.review_queue (item_id, agent, ticket_id, tool, tool_version, arguments, "
        "reason, policies, policy_hash, cedar_request, run_id, partition, created_at, expires_at, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
        [key, request.agent, request.ticket_id, request.tool.name, request.tool.version, canonical(request.arguments),
         verdict.reason, list(verdict.policies), verdict.policy_hash, json.dumps(verdict.request), run_id, partition,
         now, now + timedelta(hours=ttl_hours)])
    return item(con, key)


def status_of(con: Any, request: Any) -> str | None:
    """The review status of this exact call (by idempotency key), or None when it was never escalated.
    The queue must exist (`ensure_review_queue`, once per connection: this runs on every side-effect call)."""
    key = idempotency_key(request.agent, request.ticket_id, request.tool.name, request.arguments)
    row = con.execute("SELECT status FROM governance.review_queue WHERE item_id = ?", [key]).fetchone()
    return row[0] if row else None


def items(con: Any, status: str | None = None, agent: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    ensure_review_queue(con)
    where, params = [], []
    if status:
        where.append("status = ?")
        params.append(status)
    if agent:
        where.append("agent = ?")
        params.append(agent)
    sql = f"SELECT {', '.join(COLUMNS)} FROM governance.review_queue" + \
        (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY created_at, item_id LIMIT {int(limit)}"
    return [dict(zip(COLUMNS, row, strict=True)) for row in con.execute(sql, params).fetchall()]


def item(con: Any, item_id: str) -> dict[str, Any]:
    """One item by id or unique id prefix (at least 6 characters)."""
    ensure_review_queue(con)
    if len(item_id) < 6:
        raise ReviewError(f"give at least 6 characters of the item id, not {item_id!r}")
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM governance.review_queue WHERE starts_with(item_id, ?) "
                       "LIMIT 2", [item_id]).fetchall()
    if not rows:
        raise ReviewError(f"no review item {item_id!r}; `factory review list` shows the queue")
    if len(rows) > 1:
        raise ReviewError(f"{item_id!r} matches several items; give more of the id")
    return dict(zip(COLUMNS, rows[0], strict=True))


def counts(con: Any) -> dict[str, int]:
    ensure_review_queue(con)
    return dict(con.execute("SELECT status, count(*) FROM governance.review_queue GROUP BY status").fetchall())


def decide(con: Any, item_id: str, *, approve: bool, reviewer: str, reason: str, switches: KillSwitches,
           now: datetime | None = None) -> dict[str, Any]:
    """Approve or reject a pending item (one decision per item, ever); an audit event in the same commit."""
    if not reviewer.strip() or not reason.strip():
        raise ReviewError("a review needs the reviewer's name and a reason")
    now = now or datetime.now(UTC)
    found = item(con, item_id)
    expire_overdue(con, now)
    found = item(con, found["item_id"])
    if found["status"] != "pending":
        who = f" by {found['reviewer']} at {found['reviewed_at']}" if found["reviewer"] else ""
        raise ReviewError(f"item {found['item_id']} is {found['status']}{who}; only a pending item can be decided")
    if approve:
        killed = switches.blocking(found["agent"], found["tool"])
        if killed:
            raise ReviewError(f"item {found['item_id']} cannot be approved: {killed}. Revive first, or reject it")
    status = "approved" if approve else "rejected"
    with transaction(con):
        con.execute("UPDATE governance.review_queue SET status = ?, reviewer = ?, review_reason = ?, reviewed_at = ? "
                    "WHERE item_id = ? AND status = 'pending'", [status, reviewer, reason, now, found["item_id"]])
        append(con, [_event(f"review_{status}", reviewer, found, {"reason": reason})])
    return item(con, found["item_id"])


def expire_overdue(con: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Pending items past their deadline become expired (denied); returns them."""
    ensure_review_queue(con)
    now = now or datetime.now(UTC)
    overdue = [i for i in items(con, "pending", limit=100_000) if i["expires_at"] <= now]
    if not overdue:
        return []
    with transaction(con):
        for row in overdue:
            con.execute("UPDATE governance.review_queue SET status = 'expired', outcome_reason = ? WHERE item_id = ?",
                        [f"not decided by {row['expires_at']:%Y-%m-%d %H:%M} UTC", row["item_id"]])
        append(con, [_event("review_expired", "factory", row, {"expires_at": str(row["expires_at"])})
                     for row in overdue])
    return overdue


@dataclass(frozen=True)
class Execution:
    item_id: str
    status: str  # executed | cancelled
    detail: str


def execute_approved(con: Any, switches: KillSwitches, recheck: Callable[[dict[str, Any]], Any],
                     now: datetime | None = None) -> list[Execution]:
    """Run every approved item once through the outbox; a kill switch or a policy that now denies cancels it.

    `recheck(item)` returns the current policy decision for the item's stored request (the reviewer's
    approval stands in for the escalation, so only a deny stops it)."""

    expire_overdue(con, now)
    done = []
    for row in items(con, "approved", limit=100_000):
        spec = CATALOG[row["tool"]]
        args = spec.input.model_validate_json(row["arguments"])
        already = done_result(con, row["agent"], row["ticket_id"], row["tool"], args)
        if already is not None:  # it ran already (the agent, after a policy change): nothing runs again
            _finish(con, row, "executed", "already executed (outbox)", already)
            done.append(Execution(row["item_id"], "executed", json.dumps(already)))
            continue
        killed = switches.blocking(row["agent"], row["tool"])
        decision = None if killed else recheck(row)
        if killed or decision.outcome == "deny":
            why = killed or f"denied at execution by {', '.join(decision.policies)}: {decision.reason}"
            _finish(con, row, "cancelled", why, None)
            done.append(Execution(row["item_id"], "cancelled", why))
            continue

        def mark(tx: Any, result: dict[str, Any], row: dict[str, Any] = row) -> None:
            _mark(tx, row, "executed", f"approved by {row['reviewer']}", result)

        outcome = perform_effect(con, row["agent"], row["ticket_id"], spec, args, f"review:{row['item_id'][:12]}",
                                 str(row["partition"]) if row["partition"] else None, also=mark)
        done.append(Execution(row["item_id"], "executed", json.dumps(outcome.result)))
    return done


def _finish(con: Any, row: dict[str, Any], status: str, why: str, result: dict[str, Any] | None) -> None:
    with transaction(con):
        _mark(con, row, status, why, result)


def _mark(con: Any, row: dict[str, Any], status: str, why: str, result: dict[str, Any] | None) -> None:
    con.execute("UPDATE governance.review_queue SET status = ?, outcome_reason = ?, executed_at = ?, result = ? "
                "WHERE item_id = ? AND status = 'approved'",
                [status, why, datetime.now(UTC), json.dumps(result) if result is not None else None, row["item_id"]])
    append(con, [_event(f"review_{status}", "factory", row, {"detail": why, "result": result})])


def _event(kind: str, actor: str, row: dict[str, Any], extra: dict[str, Any]) -> AuditEvent:
    payload = {"item_id": row["item_id"], "agent": row["agent"], "tool": row["tool"], "ticket_id": row["ticket_id"],
               "arguments": json.loads(row["arguments"]), "policies": list(row["policies"] or []),
               "policy_hash": row["policy_hash"], **extra}
    return AuditEvent(kind, actor, f"ticket:{row['ticket_id']}", payload)
