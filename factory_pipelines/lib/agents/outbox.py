"""The outbox: every side effect of an agent happens at most once, whatever retries and re-runs do.

A side-effecting tool call gets an idempotency key from (agent, ticket, tool, canonical arguments).
`execute_once` records the call and runs its effect in one warehouse transaction: the effect writes its
own rows (a refund, a sent reply) on the same connection, and the outbox row is marked done in the same
commit. A second call with the same key, from a retried step, a re-run partition or an approval clicked
twice, finds the done row and returns the stored result without acting. A crash before the commit
leaves nothing behind, so the next attempt acts once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from factory_pipelines.lib.sql import transaction

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS agents.outbox (
    idempotency_key VARCHAR PRIMARY KEY, agent VARCHAR NOT NULL, ticket_id VARCHAR, tool VARCHAR NOT NULL,
    tool_version VARCHAR, arguments JSON NOT NULL, result JSON, run_id VARCHAR, partition DATE,
    executed_at TIMESTAMPTZ DEFAULT current_timestamp)
"""


def canonical(arguments: BaseModel | dict[str, Any]) -> str:
    """Arguments as canonical JSON: the same call always gives the same text, field order aside."""
    data = arguments.model_dump(mode="json") if isinstance(arguments, BaseModel) else arguments
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def idempotency_key(agent: str, ticket_id: str, tool: str, arguments: BaseModel | dict[str, Any]) -> str:
    """The key of one side effect: agent, ticket, tool and canonical arguments, hashed."""
    text = "\x1f".join([agent, ticket_id, tool, canonical(arguments)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OutboxResult:
    key: str
    executed: bool  # False when an earlier attempt already acted and its result is returned
    result: dict[str, Any]


def ensure_outbox(con: Any) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS agents")
    con.execute(OUTBOX_DDL)


def done_result(con: Any, agent: str, ticket_id: str, tool: str,
                arguments: BaseModel | dict[str, Any]) -> dict[str, Any] | None:
    """The stored result when this exact side effect already happened, else None."""
    row = con.execute("SELECT result FROM agents.outbox WHERE idempotency_key = ?",
                      [idempotency_key(agent, ticket_id, tool, arguments)]).fetchone()
    return json.loads(row[0]) if row else None


def execute_once(
    con: Any, *, agent: str, ticket_id: str, tool: str, tool_version: str, arguments: BaseModel | dict[str, Any],
    effect: Callable[[Any], dict[str, Any]], run_id: str | None = None, partition: str | None = None,
) -> OutboxResult:
    """Run `effect(con)` once per key, in the same transaction that records it as done (the outbox table must
    exist: `ensure_outbox`, once per connection, not per call)."""
    key = idempotency_key(agent, ticket_id, tool, arguments)
    with transaction(con):
        done = con.execute("SELECT result FROM agents.outbox WHERE idempotency_key = ?", [key]).fetchone()
        if done is not None:
            return OutboxResult(key, executed=False, result=json.loads(done[0]))
        result = effect(con)
        con.execute(
            "INSERT INTO agents.outbox (idempotency_key, agent, ticket_id, tool, tool_version, arguments, result, "
            "run_id, partition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [key, agent, ticket_id, tool, tool_version, canonical(arguments), json.dumps(result, default=str),
             run_id, partition],
        )
    return OutboxResult(key, executed=True, result=result)
