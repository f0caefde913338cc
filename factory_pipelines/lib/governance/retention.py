"""Retention: payloads older than N days are deleted or masked; decisions, effects and the audit log stay.

Why: raw ticket text, prompts, model answers, reply bodies and trace payloads are needed to debug and replay
recent days, not forever, and they are where the customers' personal data sits. What a purge keeps is what
the factory must prove or measure later: decisions (labels, actions, costs), aggregates, the ids and amounts
of effects (refunds, replies, escalations, outbox rows) and the audit log. The audit chain hashes only its own
rows (`governance.audit_log`), never the columns purged here, so `audit verify` passes after a purge; the
audit log's own payloads (tool-call arguments) are kept, as the chain requires.

`plan` counts, per table and column, the rows a purge would change (rows already purged are not counted
again, so a second purge plans nothing); `purge` applies a plan in one transaction with one `retention_purge`
audit event carrying the counts; `purge_traces` deletes the MLflow traces of the factory's experiments
(`agents/<name>`, `evals/<name>`) older than the cutoff through the public client API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log, save_anchor
from factory_pipelines.lib.sql import table_exists, transaction

PURGED = "[purged]"
TRACE_EXPERIMENTS = ("agents/", "evals/")
FINAL_REVIEW = "status IN ('rejected', 'expired', 'executed', 'cancelled')"  # a pending item still needs its args


@dataclass(frozen=True)
class Target:
    """One payload of one table: how it goes (`set` for a mask, none for a delete), when a row is old (`age`, a
    DATE or a timestamp column) and when it still holds the payload (`pending`)."""

    table: str
    what: str
    action: Literal["delete", "mask"]
    age: str
    age_is_date: bool
    pending: str = "TRUE"
    set: str = ""


def _text(*columns: str) -> tuple[str, str]:
    """(pending, set) masking text columns to PURGED."""
    return (" OR ".join(f"{c} IS DISTINCT FROM '{PURGED}'" for c in columns),
            ", ".join(f"{c} = '{PURGED}'" for c in columns))


def _json_key(column: str, key: str, when: str) -> tuple[str, str]:
    """(pending, set) masking one key of a JSON column, on the rows `when` holds."""
    return (f"{when} AND json_extract_string({column}, '$.{key}') IS DISTINCT FROM '{PURGED}'",
            f"{column} = json_merge_patch({column}, '{{\"{key}\": \"{PURGED}\"}}')")


TARGETS: tuple[Target, ...] = (
    Target("raw.tickets", "subject, body, _extra", "mask", "_partition", True,
           _text("subject", "body")[0] + " OR _extra IS NOT NULL", _text("subject", "body")[1] + ", _extra = NULL"),
    Target("staging.tickets", "subject, body", "mask", "_partition", True, *_text("subject", "body")),
    Target("raw.quarantine", "payload (rejected raw rows)", "mask", "partition", True, "payload IS NOT NULL",
           "payload = NULL"),
    Target("agents.model_cache", "prompts and model answers", "delete", "created_at", False),
    Target("agents.decisions", "reply", "mask", "partition", True, *_text("reply")),
    Target("agents.shadow_decisions", "reply", "mask", "partition", True, *_text("reply")),
    Target("agents.replies", "body", "mask", "sent_at", False, *_text("body")),
    *(Target(table, "arguments.body (send_reply)", "mask", age, False,
             *_json_key("arguments", "body", f"tool = 'send_reply'{extra}"))
      for table, age, extra in (("agents.tool_calls", "called_at", ""), ("agents.shadow_tool_calls", "called_at", ""),
                                ("agents.outbox", "executed_at", ""),
                                ("governance.review_queue", "created_at", f" AND {FINAL_REVIEW}"))),
    *(Target(table, "arguments.query (kb_search: ticket text)", "mask", "called_at", False,
             *_json_key("arguments", "query", "tool = 'kb_search'"))
      for table in ("agents.tool_calls", "agents.shadow_tool_calls")),
)


@dataclass
class PlanRow:
    table: str
    what: str
    action: str
    rows: int


@dataclass
class PurgePlan:
    """What a purge at `cutoff` changes: rows per table and payload (zero rows included, for the record)."""

    days: int
    cutoff: datetime
    rows: list[PlanRow] = field(default_factory=list)
    traces: dict[str, int] = field(default_factory=dict)  # experiment -> traces older than the cutoff

    @property
    def total(self) -> int:
        return sum(r.rows for r in self.rows)

    def counts(self) -> dict[str, Any]:
        """JSON-ready: the audit event's payload and the CLI's --json."""
        return {"days": self.days, "cutoff": self.cutoff.isoformat(), "rows": [asdict(r) for r in self.rows],
                "total_rows": self.total, "traces": dict(self.traces), "total_traces": sum(self.traces.values())}


def cutoff_of(now: datetime, days: int) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"retention time {now!r} has no time zone")
    return now.astimezone(UTC) - timedelta(days=days)


def _where(con: Any, target: Target) -> str | None:
    schema, table = target.table.split(".")
    if not table_exists(con, schema, table):
        return None
    return f"{target.age} < ? AND ({target.pending})"


def _bound(target: Target, cutoff: datetime) -> Any:
    return cutoff.date() if target.age_is_date else cutoff


def plan(con: Any, now: datetime, days: int, tracking_uri: str | None = None) -> PurgePlan:
    """The rows a purge keeping `days` days (0: keep forever, nothing planned) would delete or mask; with
    `tracking_uri`, the traces too."""
    if days < 0:
        raise ValueError(f"retention days must be 0 (keep forever) or more, got {days}")
    result = PurgePlan(days, cutoff_of(now, days))
    for target in TARGETS if days else ():
        where = _where(con, target)
        rows = 0 if where is None else con.execute(f"SELECT count(*) FROM {target.table} WHERE {where}",
                                                   [_bound(target, result.cutoff)]).fetchall()[0][0]
        result.rows.append(PlanRow(target.table, target.what, target.action, int(rows)))
    if tracking_uri and days:
        result.traces = purge_traces(tracking_uri, result.cutoff, dry_run=True)
    return result


def purge(con: Any, planned: PurgePlan, actor: str = "retention", tracking_uri: str | None = None,
          anchor: Path | None = None) -> int:
    """Apply `planned` (from `plan`): the MLflow traces first (with `tracking_uri`; their counts replace the
    plan's), then the warehouse in one transaction with its `retention_purge` audit event; returns its seq.
    The anchor, when given, moves to the new head after the commit."""
    if tracking_uri and planned.days:
        planned.traces = purge_traces(tracking_uri, planned.cutoff)
    ensure_audit_log(con)
    with transaction(con):
        for target in TARGETS if planned.days else ():
            where = _where(con, target)
            if where is None:
                continue
            sql = (f"DELETE FROM {target.table} WHERE {where}" if target.action == "delete"
                   else f"UPDATE {target.table} SET {target.set} WHERE {where}")
            con.execute(sql, [_bound(target, planned.cutoff)])
        seq = append(con, [AuditEvent("retention_purge", actor, "retention", planned.counts())])[0]
    if anchor is not None:
        save_anchor(con, anchor)
    return seq


def factory_experiments(client: Any) -> list[Any]:
    """The experiments whose traces hold ticket payloads: agents/<name> and evals/<name>."""
    return [e for e in client.search_experiments(max_results=1000) if e.name.startswith(TRACE_EXPERIMENTS)]


def purge_traces(tracking_uri: str, cutoff: datetime, dry_run: bool = False) -> dict[str, int]:
    """Delete (or, dry, count) the traces of the factory's experiments that started before `cutoff`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    millis = int(cutoff.timestamp() * 1000)
    counts: dict[str, int] = {}
    for experiment in factory_experiments(client):
        if dry_run:
            counts[experiment.name] = _count_traces(client, experiment.experiment_id, millis)
        else:
            counts[experiment.name] = int(client.delete_traces(experiment.experiment_id,
                                                               max_timestamp_millis=millis) or 0)
    return counts


def _count_traces(client: Any, experiment_id: str, millis: int) -> int:
    count, token = 0, None
    while True:
        page = client.search_traces(locations=[experiment_id], filter_string=f"trace.timestamp_ms < {millis}",
                                    max_results=500, page_token=token, include_spans=False)
        count += len(page)
        token = page.token
        if not token:
            return count
