"""`alerts.check_failures`: one row per failed check evaluation, recorded once, listed, acknowledged.

The row is the alert: it is written before any webhook is called, so a dead webhook never loses it (its
delivery status, attempts and last error sit on the row, and a later sensor tick sends it again). The id is
derived from check, asset, partition and run id, so the sensor seeing the same evaluation again inserts
nothing. Only scalar metadata is kept (no example rows of a contract), so an alert copies no ticket payload
that retention would have to purge. Acknowledging is an audit event, in the same commit as the update.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from factory_pipelines.lib.sql import table_exists, transaction

TABLE = "alerts.check_failures"
DDL = f"""
CREATE SCHEMA IF NOT EXISTS alerts;
CREATE TABLE IF NOT EXISTS {TABLE} (
    alert_id VARCHAR PRIMARY KEY, check_name VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition VARCHAR,
    agent VARCHAR, severity VARCHAR NOT NULL, observed JSON, bound JSON, description VARCHAR, metadata JSON,
    run_id VARCHAR NOT NULL, evaluated_at TIMESTAMPTZ, created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    acked_at TIMESTAMPTZ, acked_by VARCHAR, ack_note VARCHAR,
    delivery_status VARCHAR NOT NULL, delivery_attempts INTEGER NOT NULL DEFAULT 0, delivery_error VARCHAR,
    delivered_at TIMESTAMPTZ)
"""
COLUMNS = ("alert_id", "check_name", "asset_key", "partition", "agent", "severity", "observed", "bound",
           "description", "metadata", "run_id", "evaluated_at", "created_at", "acked_at", "acked_by", "ack_note",
           "delivery_status", "delivery_attempts", "delivery_error", "delivered_at")
JSON_COLUMNS = ("observed", "bound", "metadata")

# A check says what it saw and what it allowed under these metadata names (the first present wins).
OBSERVED_KEYS = ("observed", "observed_value", "value")
BOUND_KEYS = ("bound", "expected", "error_bound", "threshold")
# Assets whose last key part names an agent (agents/<a>, evals/<a>, evals/live/<a>, drift/<a>).
AGENT_ASSET_ROOTS = ("agents", "evals", "drift")
MAX_TEXT = 500  # longer text metadata (markdown summaries) stays in Dagster, not in the alert

Severity = Literal["warn", "error"]
DeliveryStatus = Literal["none", "pending", "delivered", "failed"]
UNDELIVERED = ("pending", "failed")


class AlertError(ValueError):
    """An alert that does not exist, is ambiguous, or was already acknowledged."""


def alert_id(check_name: str, asset_key: str, partition: str | None, run_id: str) -> str:
    """Stable id of one evaluation: the same check, asset, partition and run always give the same id."""
    text = json.dumps([check_name, asset_key, partition, run_id], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= MAX_TEXT)


@dataclass(frozen=True)
class CheckFailure:
    """One failed evaluation of an asset check, as the sensor read it from Dagster (plain values only)."""

    check_name: str
    asset_key: str  # "raw/tickets"
    run_id: str
    severity: Severity = "error"
    partition: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    evaluated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.severity not in ("warn", "error"):
            raise ValueError(f"severity must be warn or error, not {self.severity!r}")

    @property
    def alert_id(self) -> str:
        return alert_id(self.check_name, self.asset_key, self.partition, self.run_id)

    def _first(self, keys: tuple[str, ...]) -> Any:
        return next((self.metadata[k] for k in keys if k in self.metadata), None)

    @property
    def observed(self) -> Any:
        return self._first(OBSERVED_KEYS)

    @property
    def bound(self) -> Any:
        return self._first(BOUND_KEYS)

    @property
    def agent(self) -> str | None:
        """`metadata["agent"]`, else the agent an agents/, evals/ or drift/ asset is named after."""
        if isinstance(self.metadata.get("agent"), str):
            return self.metadata["agent"]
        parts = self.asset_key.split("/")
        return parts[-1] if len(parts) > 1 and parts[0] in AGENT_ASSET_ROOTS else None

    def scalar_metadata(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(self.metadata.items()) if _scalar(v)}


def ensure_alerts(con: Any) -> None:
    con.execute(DDL)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record(con: Any, failures: list[CheckFailure], *, deliver: bool) -> list[str]:
    """Insert the alerts not yet recorded, in one commit; returns the ids that are new.

    `deliver`: a webhook is configured, so new rows start `pending` (else `none`: nothing will send them)."""
    if not failures:
        return []
    ensure_alerts(con)
    status: DeliveryStatus = "pending" if deliver else "none"
    rows = {f.alert_id: [f.alert_id, f.check_name, f.asset_key, f.partition, f.agent, f.severity, _json(f.observed),
                         _json(f.bound), f.description, _json(f.scalar_metadata()), f.run_id, f.evaluated_at, status]
            for f in failures}  # the same evaluation twice in one batch is one alert
    with transaction(con):
        return _insert_new(con, list(rows.values()))


def _insert_new(con: Any, rows: list[list[Any]]) -> list[str]:
    existing = {r[0] for r in con.execute(
        f"SELECT alert_id FROM {TABLE} WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))", [[r[0] for r in rows]]
    ).fetchall()}
    fresh = [r for r in rows if r[0] not in existing]
    if fresh:
        con.executemany(
            f"INSERT INTO {TABLE} (alert_id, check_name, asset_key, partition, agent, severity, observed, bound, "
            "description, metadata, run_id, evaluated_at, delivery_status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?::JSON, ?::JSON, ?, ?::JSON, ?, ?, ?)", fresh)
    return [r[0] for r in fresh]


def _rows(con: Any, where: str, params: list[Any], order: str = "created_at DESC, alert_id",
          limit: int | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where} ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out = []
    for values in con.execute(sql, params).fetchall():
        row = dict(zip(COLUMNS, values, strict=True))
        for key in JSON_COLUMNS:
            row[key] = json.loads(row[key]) if row[key] is not None else None
        out.append(row)
    return out


def list_alerts(con: Any, *, open_only: bool = True, agent: str | None = None, asset: str | None = None,
                severity: Severity | None = None, check_name: str | None = None,
                since: datetime | date | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Alerts, newest first, as dicts of the table's columns (JSON columns decoded).

    `open_only`: not acknowledged. `asset`: that key or every key under it ("drift" matches "drift/<agent>").
    `since`: recorded at or after (a date means its midnight UTC). No table yet: no alerts."""
    if not table_exists(con, "alerts", "check_failures"):
        return []
    where, params = ["true"], []
    if open_only:
        where.append("acked_at IS NULL")
    if agent:
        where.append("agent = ?")
        params.append(agent)
    if asset:
        where.append("(asset_key = ? OR starts_with(asset_key, ?))")
        params += [asset.rstrip("/"), asset.rstrip("/") + "/"]
    if severity:
        where.append("severity = ?")
        params.append(severity)
    if check_name:
        where.append("check_name = ?")
        params.append(check_name)
    if since is not None:
        start = since if isinstance(since, datetime) else datetime(since.year, since.month, since.day, tzinfo=UTC)
        where.append("created_at >= ?")
        params.append(start if start.tzinfo else start.replace(tzinfo=UTC))
    return _rows(con, " AND ".join(where), params, limit=limit)


def get_alert(con: Any, alert_id_or_prefix: str) -> dict[str, Any]:
    """One alert by its id or a prefix of 6+ characters (AlertError when none or several match)."""
    key = alert_id_or_prefix.strip().lower()
    if len(key) < 6:
        raise AlertError(f"alert id {alert_id_or_prefix!r} is too short: give at least 6 characters")
    found = _rows(con, "starts_with(alert_id, ?)", [key], limit=2) if table_exists(con, "alerts", "check_failures") \
        else []
    if not found:
        raise AlertError(f"no alert {alert_id_or_prefix!r} (see `factory alerts list --all`)")
    if len(found) > 1:
        raise AlertError(f"alert id {alert_id_or_prefix!r} is ambiguous: give more characters")
    return found[0]


def ack(con: Any, alert_id_or_prefix: str, by: str, note: str = "", anchor: Path | None = None) -> dict[str, Any]:
    """Acknowledge one open alert: who and why on the row, and an `alert_acked` audit event in the same commit.

    `anchor`: the audit anchor file, moved to the new head after the commit (as every audited write does)."""
    from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log, save_anchor

    if not by.strip():
        raise AlertError("an acknowledgement needs who (--by)")
    ensure_audit_log(con)
    with transaction(con):
        row = get_alert(con, alert_id_or_prefix)
        if row["acked_at"] is not None:
            raise AlertError(f"alert {row['alert_id'][:12]} was already acknowledged by {row['acked_by']} at "
                             f"{row['acked_at']:%Y-%m-%d %H:%M} UTC")
        now = datetime.now(UTC)
        con.execute(f"UPDATE {TABLE} SET acked_at = ?, acked_by = ?, ack_note = ? WHERE alert_id = ?",
                    [now, by, note, row["alert_id"]])
        append(con, [AuditEvent("alert_acked", by, f"alert:{row['alert_id']}", {
            "alert_id": row["alert_id"], "check": row["check_name"], "asset": row["asset_key"],
            "partition": row["partition"], "severity": row["severity"], "agent": row["agent"],
            "run_id": row["run_id"], "note": note}, at=now)])
    if anchor is not None:
        save_anchor(con, anchor)
    return {**row, "acked_at": now, "acked_by": by, "ack_note": note}


def undelivered(con: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Alerts a webhook has yet to accept (pending or failed), oldest first."""
    if not table_exists(con, "alerts", "check_failures"):
        return []
    placeholders = ", ".join("?" for _ in UNDELIVERED)
    return _rows(con, f"delivery_status IN ({placeholders})", list(UNDELIVERED), order="created_at, alert_id",
                 limit=limit)


def mark_delivery(con: Any, alert: str, *, delivered: bool, attempts: int, error: str | None = None) -> None:
    """Record one delivery try of `alert`: `attempts` more POSTs, the outcome, the last error (None on success)."""
    with transaction(con):
        con.execute(
            f"UPDATE {TABLE} SET delivery_status = ?, delivery_attempts = delivery_attempts + ?, delivery_error = ?, "
            "delivered_at = CASE WHEN ? THEN current_timestamp ELSE delivered_at END WHERE alert_id = ?",
            ["delivered" if delivered else "failed", attempts, None if delivered else error, delivered, alert])
