"""`factory explain <ticket>`: everything behind one ticket's outcome, from the warehouse and the run log.

The answer to "why did the agent do that?": where the ticket came from (file, row, partition, the data
version of the load and the contract results of that partition), what the agent read (features with
their event times, passages, the order), which prompt, model and classifier versions decided it, each
tool call with its policy decision (outcome, determining policies, policy-set hash, shadow outcome),
the reviews of escalated calls, the side effects that executed, the cost, the trace id and the audit
entries that record it all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from factory_pipelines.lib.sql import table_exists


class ExplainError(LookupError):
    """The ticket is unknown, or no agent decided it yet."""


def explain_ticket(con: Any, ticket_id: str, agent: str | None = None,
                   lineage: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole story of one ticket as plain data (what `--json` prints). `lineage(partition)` gives what the
    orchestrator knows of the ticket's partition as plain data (`data_version`, `contracts`: check -> status);
    the caller reads it from the Dagster instance (`factory_pipelines.runs.partition_lineage`)."""
    decisions = _rows(con, "SELECT * FROM agents.decisions WHERE ticket_id = ? AND (? IS NULL OR agent = ?) "
                           "ORDER BY decided_at DESC", [ticket_id, agent, agent])
    source = _rows(con, "SELECT _partition AS partition, _source_file AS source_file, _source_row AS source_row, "
                        "_run_id AS load_run_id, _loaded_at AS loaded_at FROM raw.tickets WHERE ticket_id = ? "
                        "ORDER BY _loaded_at DESC LIMIT 1", [ticket_id])
    if not decisions and not source:
        raise ExplainError(f"no ticket {ticket_id!r} in raw.tickets or agents.decisions")
    story: dict[str, Any] = {"ticket_id": ticket_id, "source": source[0] if source else None, "agents": []}
    if source and lineage is not None:
        story["source"] |= lineage(str(source[0]["partition"]))
    for decision in decisions:
        story["agents"].append(_agent_story(con, decision))
    if not decisions:
        story["note"] = "no agent has decided this ticket yet"
    story["audit_entries"] = _rows(con, 'SELECT seq, "at", kind, actor FROM governance.audit_log WHERE subject = ? '
                                        "ORDER BY seq", [f"ticket:{ticket_id}"])
    return story


def _agent_story(con: Any, row: dict[str, Any]) -> dict[str, Any]:
    tid, agent, run_id = row["ticket_id"], row["agent"], row["run_id"]
    calls = _rows(con, "SELECT tool, tool_version, arguments, status, verdict, reason, policies, policy_hash, "
                       "shadow_verdict, shadow_policies, executed, error, output, called_at FROM agents.tool_calls "
                       "WHERE ticket_id = ? AND agent = ? AND run_id = ? ORDER BY called_at", [tid, agent, run_id])
    earlier = _rows(con, "SELECT count(*) AS n FROM agents.tool_calls WHERE ticket_id = ? AND agent = ? AND run_id <> ?",
                    [tid, agent, run_id])[0]["n"]
    read: dict[str, Any] = {}
    for call in calls:
        output = json.loads(call.pop("output")) if call.get("output") else None
        call["arguments"] = json.loads(call["arguments"])
        if output and call["tool"] == "customer_features":
            read["features"] = {k: {"value": v, "event_time": output.get("event_times", {}).get(k)}
                                for k, v in output["features"].items()}
            read["feature_service"] = output.get("feature_service")
        elif output and call["tool"] == "kb_search":
            read["passages"] = [{k: p[k] for k in ("article_id", "title", "score")} for p in output["passages"]]
        elif output and call["tool"] == "order_lookup":
            read["order"] = output
        elif output:
            call["result"] = output
    reviews = _rows(con, "SELECT item_id, tool, status, policies, reason, reviewer, review_reason, reviewed_at, "
                         "executed_at, outcome_reason, expires_at FROM governance.review_queue "
                         "WHERE ticket_id = ? AND agent = ? ORDER BY created_at", [tid, agent]) \
        if table_exists(con, "governance", "review_queue") else []
    effects = _rows(con, "SELECT tool, result, run_id, executed_at FROM agents.outbox WHERE ticket_id = ? AND agent = ? "
                         "ORDER BY executed_at", [tid, agent]) if table_exists(con, "agents", "outbox") else []
    for effect in effects:
        effect["result"] = json.loads(effect["result"]) if effect["result"] else None
    return {
        "agent": agent, "agent_version": row["agent_version"], "partition": row["partition"], "status": row["status"],
        "decision": json.loads(row["decision"] or "{}"), "decided_by": json.loads(row["decided_by"] or "{}"),
        "rules_fired": row["rules_fired"], "reply": row["reply"], "cited_passages": row["cited_passages"],
        "prompt": f"{row['prompt_name']} v{row['prompt_version']}",
        "model": f"{row['model_provider']}:{row['model_version']}", "classifier": row["first_pass_model"],
        "read": read, "tool_calls": calls, "earlier_attempts": earlier, "reviews": reviews, "side_effects": effects,
        "cost": {k: row[k] for k in ("model_calls", "cache_hits", "tokens_in", "tokens_out", "cost_usd", "latency_s")},
        "trace_id": row["trace_id"], "dagster_run_id": run_id, "error": row["error"],
    }


def render(story: dict[str, Any], console: Console) -> None:
    """The story for people: one table per part."""
    source = story.get("source") or {}
    console.rule(f"ticket {story['ticket_id']}")
    if source:
        console.print(f"source: {source.get('source_file')} row {source.get('source_row')}, partition "
                      f"{source.get('partition')}, data version {source.get('data_version') or '-'}, loaded by run "
                      f"{str(source.get('load_run_id'))[:8]}")
        if source.get("contracts"):
            console.print("contracts: " + ", ".join(f"{k} {v}" for k, v in source["contracts"].items()))
    if story.get("note"):
        console.print(story["note"])
    for part in story["agents"]:
        console.rule(f"{part['agent']} v{part['agent_version']} on {part['partition']}: {part['status']}")
        console.print(f"decision {part['decision']} (decided by {part['decided_by']}); rules fired: "
                      f"{', '.join(part['rules_fired'] or []) or 'none'}")
        console.print(f"prompt {part['prompt']}; model {part['model']}; classifier {part['classifier'] or '-'}")
        read = part["read"]
        if read.get("features"):
            console.print(f"features ({read.get('feature_service')}): " + ", ".join(
                f"{k}={v['value']} @{(v['event_time'] or '-')[:19]}" for k, v in read["features"].items()))
        if read.get("passages"):
            console.print("passages: " + ", ".join(f"{p['article_id']} ({p['score']})" for p in read["passages"]))
        if read.get("order"):
            console.print(f"order: {read['order']}")
        calls = Table(title=f"tool calls (run {str(part['dagster_run_id'])[:8]}; {part['earlier_attempts']} in "
                            "earlier runs)")
        for column in ("tool", "arguments", "verdict", "policies", "policy set", "status", "executed"):
            calls.add_column(column, overflow="fold")
        for call in part["tool_calls"]:
            shadow = f" (log-only: {call['shadow_verdict']})" if call.get("shadow_verdict") else ""
            calls.add_row(call["tool"], json.dumps(call["arguments"])[:90], f"{call['verdict']}{shadow}",
                          ", ".join(call["policies"] or []), call["policy_hash"] or "-", call["status"],
                          "yes" if call["executed"] else "no")
        console.print(calls)
        for review in part["reviews"]:
            console.print(f"review {review['item_id'][:12]} {review['tool']}: {review['status']}"
                          + (f" by {review['reviewer']} ({review['review_reason']})" if review["reviewer"] else "")
                          + (f"; {review['outcome_reason']}" if review["outcome_reason"] else ""))
        for effect in part["side_effects"]:
            console.print(f"side effect {effect['tool']} {effect['result']} at {effect['executed_at']:%Y-%m-%d %H:%M} "
                          f"(run {str(effect['run_id'])[:12]})")
        cost = part["cost"]
        console.print(f"cost: {cost['model_calls']} model call(s) ({cost['cache_hits']} cached), {cost['tokens_in']} + "
                      f"{cost['tokens_out']} tokens, {cost['cost_usd']} USD; trace {part['trace_id']}")
    console.print(f"audit entries: {len(story['audit_entries'])} (seq "
                  f"{', '.join(str(e['seq']) for e in story['audit_entries'][:12])})")


def _rows(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        cursor = con.execute(sql, params)
    except Exception as exc:  # a table that does not exist yet: nothing to tell
        if "does not exist" in str(exc):
            return []
        raise
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]

