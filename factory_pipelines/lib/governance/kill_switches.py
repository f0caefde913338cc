"""Kill switches: global, per agent and per tool, flipped by `factory kill|revive` and obeyed at once.

The switches are a small append-only journal (one JSON line per flip: scope, target, on/off, who, why,
when) in the factory's home, not a warehouse table: a flip must land while an agent run holds the
warehouse, and every gate check re-reads the journal when its size or modification time changed (a
`stat` per call, microseconds). The journal is copied into the audit log (`sync_audit`) by the next
process that writes the warehouse, so each flip is also an audit event.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Scope = Literal["global", "agent", "tool"]
SCOPES: tuple[Scope, ...] = ("global", "agent", "tool")


@dataclass
class KillSwitches:
    """The journal at `path`; `blocking(agent, tool)` names the switch that stops a call, if any."""

    path: Path
    _stamp: tuple[int, int, int] | None = field(default=None, init=False, repr=False)
    _on: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def flip(self, scope: Scope, target: str, on: bool, by: str, reason: str) -> dict[str, Any]:
        """Append one flip; it takes effect at the next gate check of every process."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
        if scope != "global" and not target:
            raise ValueError(f"a {scope} kill switch needs the {scope}'s name")
        if not by.strip() or not reason.strip():
            raise ValueError("a kill switch flip needs who (--by) and why (--reason)")
        event = {"id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(), "scope": scope,
                 "target": target if scope != "global" else "*", "on": on, "by": by, "reason": reason}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as journal:
            fcntl.flock(journal, fcntl.LOCK_EX)
            journal.write(json.dumps(event, sort_keys=True) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        return event

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def state(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The switches that are on now, keyed by (scope, target), with the flip that turned each on."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._on = None, {}
            return self._on
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)  # a replaced file is a new inode
        if stamp != self._stamp:
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for event in self.events():
                latest[(event["scope"], event["target"])] = event
            self._on = {k: e for k, e in latest.items() if e["on"]}
            self._stamp = stamp
        return self._on

    def blocking(self, agent: str, tool: str) -> str | None:
        """`kill_switch/<scope>` of the first switch that covers this call, else None."""
        on = self.state()
        if not on:
            return None
        for key in (("global", "*"), ("agent", agent), ("tool", tool)):
            if key in on:
                event = on[key]
                return f"kill_switch/{key[0]}" + (f":{key[1]}" if key[0] != "global" else "") + \
                    f" (on since {event['at'][:19]} by {event['by']}: {event['reason']})"
        return None


def sync_audit(con: Any, switches: KillSwitches) -> int:
    """Copy flips not yet in the audit log into it; returns how many. Idempotent (keyed by flip id)."""
    from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log

    events = switches.events()
    if not events:
        return 0
    ensure_audit_log(con)
    seen = {row[0] for row in con.execute(
        "SELECT json_extract_string(payload, '$.id') FROM governance.audit_log WHERE kind = 'kill_switch'").fetchall()}
    new = [e for e in events if e["id"] not in seen]
    append(con, [AuditEvent("kill_switch", e["by"], f"{e['scope']}:{e['target']}", e,
                            datetime.fromisoformat(e["at"])) for e in new])
    return len(new)
