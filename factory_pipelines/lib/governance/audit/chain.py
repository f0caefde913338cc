"""The audit log: an append-only, hash-chained record in the warehouse that shows any later change.

Why: what agents and reviewers decided must be provable after the fact, and a row in a database table can
be changed by anyone with write access to the file. Each entry of `governance.audit_log` stores the hash
of its predecessor and its own hash over that and its fields (`entry_hash`), so editing, deleting,
inserting or reordering entries breaks the chain where it happened; `verify` names the entries and the
kind of tampering. Deleting the *last* entries leaves a shorter chain that is still valid: only a copy of
the head kept outside the warehouse shows it. `save_anchor` writes the head to a file, `verify(anchor=)`
compares against it.

The hash of an entry is the SHA-256 hex digest of the UTF-8 text `prev_hash + json([seq, at, kind, actor,
subject, payload_json])` (compact separators, non-ASCII kept), with `at` in ISO-8601 UTC with
microseconds (`2026-11-01T12:00:00.000000Z`) and `payload_json` the canonical JSON text stored in the row
(`canonical_payload`); the first entry's predecessor is `GENESIS`. The table has no primary key on
purpose: a forged row with a duplicate seq must stay visible to `verify`, not be refused quietly.
`"at"` is a reserved word in DuckDB 2.0: quote it in SQL.

Transactions: `append` runs one INSERT (atomic on its own) and never begins or commits, so it can run
inside the caller's transaction and an event commits with the change it records. Appenders of one
process are serialized by a lock around reading the head and inserting; inside a transaction use
`lib.sql.transaction(con)`, which holds that lock until the commit, or another thread could read the same head
and fork the chain (`verify` reports that as an inserted duplicate). DuckDB lets one process write a
file at a time, so there is nothing to serialize across processes. The anchor is written by
`save_anchor(con, path)` after the commit, never by `append`, so a rollback cannot leave an anchor ahead
of the log; it refuses to overwrite an anchor the log no longer matches, which would bless a truncation.

`audit.verify.verify` re-hashes the chain and names what was changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from factory_pipelines.lib.sql import WRITE_LOCK, table_exists

AUDIT_DDL = """
CREATE SCHEMA IF NOT EXISTS governance;
CREATE TABLE IF NOT EXISTS governance.audit_log (
    seq BIGINT NOT NULL, "at" TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL, actor VARCHAR NOT NULL,
    subject VARCHAR, payload JSON NOT NULL, prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL);
"""
GENESIS = "0" * 64
_COLUMNS = 'seq, "at", kind, actor, subject, payload, prev_hash, hash'
class AnchorMismatch(ValueError):
    """The anchor file names a head the log does not have (tampering or a stale file): run `verify`."""


@dataclass(frozen=True)
class AuditEvent:
    """One thing to record: what happened (kind), who did it (actor), to what (subject), the details."""

    kind: str
    actor: str
    subject: str | None
    payload: dict[str, Any]
    at: datetime | None = None  # None: the time of `append`, UTC

    def __post_init__(self) -> None:
        for name in ("kind", "actor"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"an audit event needs a non-empty {name}, got {getattr(self, name)!r}")
        if self.at is not None and (self.at.tzinfo is None or self.at.utcoffset() is None):
            raise ValueError(f"audit event time {self.at!r} has no time zone")


def ensure_audit_log(con: Any) -> None:
    con.execute(AUDIT_DDL)


def canonical_payload(payload: dict[str, Any]) -> str:
    """The payload as canonical JSON: the text stored in the row and hashed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
                      allow_nan=False)


def at_text(at: datetime) -> str:
    """An aware time as hashed: ISO-8601 UTC with microseconds and a Z."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit time {at!r} has no time zone")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def chain_hash(prev_hash: str, seq: int, at: str, kind: str, actor: str, subject: str | None,
          payload_json: str) -> str:
    # The text json.dumps([seq, at, ...], separators=(",", ":"), ensure_ascii=False) gives, built directly
    # with the string escaper json.dumps uses (twice as fast); `verify` inlines the same expression.
    esc = encode_basestring
    subject_json = "null" if subject is None else esc(subject)
    text = f"{prev_hash}[{seq},{esc(at)},{esc(kind)},{esc(actor)},{subject_json},{esc(payload_json)}]"
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(prev_hash: str, seq: int, at: datetime, kind: str, actor: str, subject: str | None,
               payload_json: str) -> str:
    """SHA-256 hex of `prev_hash` and the entry's fields (see the module docstring for the encoding)."""
    return chain_hash(prev_hash, seq, at_text(at), kind, actor, subject, payload_json)


def head(con: Any) -> tuple[int, str]:
    """(seq, hash) of the last entry; (0, GENESIS) when the log is empty."""
    rows = con.execute(
        "SELECT seq, hash FROM governance.audit_log ORDER BY seq DESC, rowid DESC LIMIT 1").fetchall()
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)


def append(con: Any, events: Sequence[AuditEvent]) -> list[int]:
    """Append `events` in order after the head, in one INSERT; returns their seqs.

    Never begins or commits: inside the caller's transaction the entries commit or roll back with it
    (use `lib.sql.transaction(con)` there). The log must exist (`ensure_audit_log`).
    """
    if not events:
        return []
    import pyarrow as pa

    now = datetime.now(UTC)
    times = [now if e.at is None else e.at.astimezone(UTC) for e in events]
    texts = [t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z" for t in times]
    payloads = [canonical_payload(e.payload) for e in events]
    with WRITE_LOCK:
        last_seq, prev = head(con)
        first = last_seq + 1
        prevs, hashes = [], []
        for k, event in enumerate(events):
            prevs.append(prev)
            prev = chain_hash(prev, first + k, texts[k], event.kind, event.actor, event.subject, payloads[k])
            hashes.append(prev)
        table = pa.table({
            "seq": pa.array(range(first, first + len(events)), type=pa.int64()),
            "at": pa.array(times, type=pa.timestamp("us", tz="UTC")),
            "kind": [e.kind for e in events],
            "actor": [e.actor for e in events],
            "subject": pa.array([e.subject for e in events], type=pa.string()),
            "payload": payloads,
            "prev_hash": prevs,
            "hash": hashes,
        })
        name = f"_audit_append_{threading.get_ident()}"
        con.register(name, table)
        try:
            con.execute(f"INSERT INTO governance.audit_log ({_COLUMNS}) SELECT {_COLUMNS} FROM {name}")
        finally:
            con.unregister(name)
    return list(range(first, first + len(events)))


def read_anchor(path: Path) -> tuple[int, str]:
    """(seq, hash) from an anchor file written by `save_anchor`."""
    text = Path(path).read_text().split()
    if len(text) != 2 or not text[0].isdigit() or len(text[1]) != 64:
        raise ValueError(f"{path} is not an audit anchor ('<seq> <sha256 hex>')")
    return int(text[0]), text[1]


def save_anchor(con: Any, path: Path) -> tuple[int, str]:
    """Write the committed head to `path` atomically (call it after the commit); returns it.

    Refuses (AnchorMismatch) when an existing anchor names an entry the log lacks or has with another
    hash: overwriting it would hide a truncation or a rewrite.
    """
    path = Path(path)
    with WRITE_LOCK:
        seq, digest = head(con)
        if path.exists():
            old_seq, old_hash = read_anchor(path)
            found = {r[0] for r in con.execute("SELECT hash FROM governance.audit_log WHERE seq = ?",
                                                 [old_seq]).fetchall()}
            if old_seq > seq or (old_seq > 0 and old_hash not in found):
                raise AnchorMismatch(f"anchor {path} names entry {old_seq} ({old_hash[:12]}) that the log "
                                     f"(head {seq}) does not have: run verify before moving the anchor")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{seq} {digest}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return seq, digest


def record_alias_moves(con: Any, actor: str, moves: list[dict[str, Any]]) -> None:
    """One audit event per registry alias set (prompt or model): which alias now points at which version."""
    ensure_audit_log(con)
    append(con, [AuditEvent("alias_moved", actor, f"{m['kind']}:{m['name']}", m) for m in moves])


def unaudited_effects(con: Any) -> list[str]:
    """Executed side effects (outbox rows) that no audit event accounts for: each is written with its effect
    (`effect_executed` by the agent, `review_executed` by the review sweep; warehouses written before effects
    had their own event account for them by the day's `tool_call` event with `executed`), so one missing was
    removed, or the effect was written behind the factory's back."""
    if not table_exists(con, "agents", "outbox"):
        return []
    rows = con.execute("""
        WITH keyed AS (
            SELECT CASE kind WHEN 'effect_executed' THEN json_extract_string(payload, '$.idempotency_key')
                             ELSE json_extract_string(payload, '$.item_id') END AS key
            FROM governance.audit_log WHERE kind IN ('effect_executed', 'review_executed')),
        called AS (
            SELECT json_extract_string(payload, '$.run_id') AS run_id, json_extract_string(payload, '$.ticket_id')
                   AS ticket_id, json_extract_string(payload, '$.tool') AS tool
            FROM governance.audit_log WHERE kind = 'tool_call' AND json_extract(payload, '$.executed')::BOOLEAN)
        SELECT o.idempotency_key, o.tool, o.ticket_id FROM agents.outbox o
        ANTI JOIN keyed k ON k.key = o.idempotency_key
        ANTI JOIN called c ON c.run_id = o.run_id AND c.ticket_id = o.ticket_id AND c.tool = o.tool
        ORDER BY o.executed_at, o.idempotency_key""").fetchall()
    return [f"executed {tool} for ticket {ticket} (outbox key {key[:12]}) has no audit event"
            for key, tool, ticket in rows]
