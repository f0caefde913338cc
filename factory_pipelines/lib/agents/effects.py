"""The side-effecting tools: what each writes, always through the outbox, so it happens at most once.

`perform_effect` is the only way a refund, a reply or an escalation is written: the agent's toolbox
calls it after the gate allowed the call, and the review sweep after a reviewer approved it. Whatever
else must be true of an executed effect (an audit event, the review item marked executed) is written by
`also` inside the same transaction, so a process killed at any point leaves both or neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from factory_pipelines.lib.agents.outbox import OutboxResult, canonical, execute_once
from factory_pipelines.lib.agents.tools import ToolSpec

EFFECT_DDL = [
    "CREATE SCHEMA IF NOT EXISTS agents",
    """CREATE TABLE IF NOT EXISTS agents.refunds (refund_id VARCHAR PRIMARY KEY, agent VARCHAR, ticket_id VARCHAR,
        order_id VARCHAR, amount DOUBLE, currency VARCHAR, reason VARCHAR, issued_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS agents.replies (message_id VARCHAR PRIMARY KEY, agent VARCHAR, ticket_id VARCHAR,
        body VARCHAR, cited_article_ids VARCHAR[], sent_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS agents.escalations (queue_item_id VARCHAR PRIMARY KEY, agent VARCHAR,
        ticket_id VARCHAR, reason VARCHAR, priority VARCHAR, status VARCHAR DEFAULT 'open',
        created_at TIMESTAMPTZ DEFAULT current_timestamp)""",
]
EFFECTS: dict[str, tuple[str, str, Callable[[Any], list[Any]], str]] = {
    # tool -> (id prefix, insert SQL, values from args, output id field); run inside the outbox transaction
    "issue_refund": ("R", "INSERT INTO agents.refunds (refund_id, agent, ticket_id, order_id, amount, currency, reason) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     lambda a: [a.order_id, a.amount, a.currency, a.reason], "refund_id"),
    "send_reply": ("M", "INSERT INTO agents.replies (message_id, agent, ticket_id, body, cited_article_ids) "
                        "VALUES (?, ?, ?, ?, ?)",
                   lambda a: [a.body, list(a.cited_article_ids)], "message_id"),
    "escalate_to_human": ("Q", "INSERT INTO agents.escalations (queue_item_id, agent, ticket_id, reason, priority) "
                               "VALUES (?, ?, ?, ?, ?)",
                          lambda a: [a.reason, a.priority], "queue_item_id"),
}
Also = Callable[[Any, dict[str, Any]], None]  # (transaction connection, the effect's result)


def effect_id(prefix: str, agent: str, ticket_id: str, tool: str, args: BaseModel) -> str:
    text = f"{agent}|{ticket_id}|{tool}|{canonical(args)}"
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def perform_effect(con: Any, agent: str, ticket_id: str, spec: ToolSpec, args: BaseModel, run_id: str | None,
                   partition: str | None, also: Also | None = None) -> OutboxResult:
    """A side effect through the outbox: at most once per key; `also(con, result)` runs in the same transaction."""
    prefix, sql, values, id_field = EFFECTS[spec.name]
    this_id = effect_id(prefix, agent, ticket_id, spec.name, args)

    def act(tx: Any) -> dict[str, Any]:
        tx.execute(sql, [this_id, agent, ticket_id, *values(args)])
        result = {id_field: this_id} | ({"status": "issued"} if spec.name == "issue_refund" else {})
        if also is not None:
            also(tx, result)
        return result

    return execute_once(con, agent=agent, ticket_id=ticket_id, tool=spec.name, tool_version=spec.version,
                        arguments=args, effect=act, run_id=run_id, partition=partition)


def ensure_effect_tables(con: Any) -> None:
    for statement in EFFECT_DDL:
        con.execute(statement)
