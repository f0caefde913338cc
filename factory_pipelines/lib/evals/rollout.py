"""Staged promotion: a challenger that passed the offline gate runs in shadow on live days, then as a canary on
a share of the tickets, and only then becomes champion.

The stage is an alias in MLflow's registries, beside `champion` and `challenger`: `shadow` or `canary` on the
challenger's prompt version (and its classifier version when that changed). `factory promote` moves it one
stage at a time (`promotion.promote`); the agent run reads it (`staged`):
- shadow: the champion decides and acts on every ticket; the challenger decides them too, and every tool
  call it makes goes through the gate in log-only mode (judged and recorded, never executed);
- canary: the challenger decides and acts on the tickets whose stable hash falls in the suite's share
  (`in_canary`), with its side effects gated as usual; the champion decides those in shadow, so every
  ticket of a staged day has both decisions.
The live comparison of a day (`live_day`: agreement per field, escalation and denial rates, cost per ticket
of each side) is judged against the suite's `stages.live` bounds and recorded in `evals.live_days`; a stage
is done when it has the suite's number of passing days (`passing_days`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.sql import table_exists, transaction

STAGES = ("shadow", "canary")
FIELDS = ("category", "priority", "action")  # compared when both sides decided them
LIVE_DAYS_DDL = """
CREATE TABLE IF NOT EXISTS evals.live_days (
    agent VARCHAR, partition DATE, stage VARCHAR, champion JSON, challenger JSON, paired INTEGER, metrics JSON,
    passed BOOLEAN, failures VARCHAR[], run_id VARCHAR, evaluated_at TIMESTAMPTZ DEFAULT current_timestamp)
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveBounds(_Strict):
    """What a live day of a staged challenger must show to count as passed."""

    agreement_at_least: float = Field(0.8, ge=0, le=1, description="Share of paired tickets on which the two "
                                      "sides decided the same, per field (category, priority, action).")
    escalation_rate_increase_at_most: float = Field(0.05, ge=0, le=1, description="Challenger's share of tickets "
                                                    "put before a human minus the champion's.")
    denial_rate_increase_at_most: float = Field(0.05, ge=0, le=1, description="The same for denied calls.")
    cost_ratio_at_most: float = Field(1.5, gt=0, description="Challenger's cost per ticket over the champion's.")
    min_tickets: int = Field(20, ge=1, description="Paired tickets a day needs to count at all.")


class Stages(_Strict):
    """A suite's `stages:`: live days a challenger needs after the offline gate (0 skips a stage)."""

    shadow_days: int = Field(0, ge=0, description="Passing shadow days before the canary (or champion).")
    canary_days: int = Field(0, ge=0, description="Passing canary days before champion.")
    canary_share: float = Field(0.1, gt=0, le=1, description="Share of tickets the canary decides and acts on.")
    live: LiveBounds = LiveBounds()

    def days(self, stage: str) -> int:
        return self.shadow_days if stage == "shadow" else self.canary_days

    def after(self, stage: str) -> str:
        """The stage a promotion moves to from `stage` (offline, shadow or canary)."""
        order = ["offline", *(s for s in STAGES if self.days(s) > 0), "champion"]
        later = order[order.index(stage) + 1:] if stage in order else ["champion"]
        return later[0]


@dataclass(frozen=True)
class Rollout:
    """A challenger in shadow or canary: both sides' versions ({prompt, first_pass} -> name/version)."""

    stage: str
    champion: dict[str, str]
    challenger: dict[str, str]
    share: float  # canary share; 0 in shadow

    def changed(self) -> dict[str, str]:
        return {k: v for k, v in self.challenger.items() if v != self.champion.get(k)}


def in_canary(agent: str, ticket_id: str, share: float) -> bool:
    """Whether a ticket is the canary's: a stable hash of agent and ticket id, so re-runs pick the same tickets."""
    digest = hashlib.sha256(f"{agent}/{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def stage_versions(aliases: Any, current: dict[str, Any], stage: str) -> dict[str, int]:
    """Slot key -> version at alias `stage` (slots without it are left out)."""
    found = {k: aliases.get(s.kind, s.name, stage) for k, s in current.items()}
    return {k: v for k, v in found.items() if v is not None}


def staged(aliases: Any, current: dict[str, Any], stages: Stages | None) -> Rollout | None:
    """The challenger in canary (first) or shadow, from the registries' aliases; None: nothing staged."""
    champion = {k: s.ref(s.champion) if s.champion else "none" for k, s in current.items()}
    for stage in ("canary", "shadow"):
        versions = stage_versions(aliases, current, stage)
        if versions:
            challenger = {**champion, **{k: current[k].ref(v) for k, v in versions.items()}}
            share = (stages or Stages()).canary_share if stage == "canary" else 0.0
            return Rollout(stage, champion, challenger, share)
    return None


LIVE_SQL = """
WITH pairs AS (
    SELECT d.ticket_id, s.role AS shadow_role, d.category AS a_category, d.priority AS a_priority,
           d.action AS a_action, d.cost_usd AS a_cost, d.run_id AS a_run, s.category AS s_category,
           s.priority AS s_priority, s.action AS s_action, s.cost_usd AS s_cost,
           len(list_filter(d.tool_calls, lambda c: c LIKE '%:escalated' OR c = 'escalate_to_human:ok')) > 0
               AS a_escalated,
           len(list_filter(s.tool_calls, lambda c: c LIKE '%:escalated' OR c = 'escalate_to_human:ok')) > 0
               AS s_escalated,
           len(list_filter(d.tool_calls, lambda c: c LIKE '%:denied')) > 0 AS a_denied,
           len(list_filter(s.tool_calls, lambda c: c LIKE '%:denied')) > 0 AS s_denied
    FROM agents.decisions d JOIN agents.shadow_decisions s USING (agent, partition, ticket_id)
    WHERE d.agent = $agent AND d.partition = $day AND s.stage = $stage AND d.status = 'decided'
      AND s.status = 'decided')
SELECT ticket_id, shadow_role, a_category, a_priority, a_action, s_category, s_priority, s_action,
       a_cost, s_cost, a_escalated, s_escalated, a_denied, s_denied FROM pairs ORDER BY ticket_id
"""


def live_day(con: Any, agent: str, day: str, stage: str) -> dict[str, Any]:
    """A staged day in numbers: paired tickets, agreement per field, and per side (champion, challenger) the
    share of tickets put before a human (escalated to one, or a call held for review), the share with a denied
    call, and the cost per ticket; the tickets that disagree."""
    rows = con.execute(LIVE_SQL, {"agent": agent, "day": day, "stage": stage}).fetchall()
    sides: dict[str, dict[str, list[Any]]] = {"champion": {}, "challenger": {}}
    agree = {f: 0 for f in FIELDS}
    disagreements: list[str] = []
    for (ticket, shadow_role, *values) in rows:
        acting, shadow = values[0:3], values[3:6]
        (a_cost, s_cost, a_esc, s_esc, a_den, s_den) = values[6:]
        same = [a == s for a, s in zip(acting, shadow, strict=True)]
        agree = {f: agree[f] + int(ok) for f, ok in zip(FIELDS, same, strict=True)}
        if not all(same):
            disagreements.append(ticket)
        mine = {"acting": (a_cost, a_esc, a_den), "shadow": (s_cost, s_esc, s_den)}
        roles = {"shadow": shadow_role, "acting": "challenger" if shadow_role == "champion" else "champion"}
        for where, (cost, escalated, denied) in mine.items():
            side = sides[roles[where]]
            for name, value in (("cost", cost or 0.0), ("escalated", escalated), ("denied", denied)):
                side.setdefault(name, []).append(value)
    paired = len(rows)

    def mean(values: list[Any]) -> float:
        return round(sum(float(v) for v in values) / len(values), 8) if values else 0.0

    return {"paired": paired, "agreement": {f: round(agree[f] / paired, 4) if paired else 0.0 for f in FIELDS},
            **{side: {"escalation_rate": mean(v.get("escalated", [])), "denial_rate": mean(v.get("denied", [])),
                      "cost_per_ticket_usd": mean(v.get("cost", []))} for side, v in sides.items()},
            "disagreements": disagreements}


def judge_live(metrics: dict[str, Any], bounds: LiveBounds) -> list[str]:
    """What keeps a live day from passing (empty: it passed)."""
    if metrics["paired"] < bounds.min_tickets:
        return [f"only {metrics['paired']} paired ticket(s); a day counts from {bounds.min_tickets}"]
    failures = [f"agreement {f} {v:.3f} < {bounds.agreement_at_least}" for f, v in metrics["agreement"].items()
                if v < bounds.agreement_at_least]
    champion, challenger = metrics["champion"], metrics["challenger"]
    for rate, bound in (("escalation_rate", bounds.escalation_rate_increase_at_most),
                        ("denial_rate", bounds.denial_rate_increase_at_most)):
        increase = challenger[rate] - champion[rate]
        if increase > bound:
            failures.append(f"{rate} {challenger[rate]:.3f} vs champion {champion[rate]:.3f} (+{increase:.3f} > "
                            f"{bound})")
    base, cost = champion["cost_per_ticket_usd"], challenger["cost_per_ticket_usd"]
    if base > 0 and cost / base > bounds.cost_ratio_at_most:
        failures.append(f"cost per ticket {cost:.6f} USD is {cost / base:.2f}x the champion's "
                        f"(> {bounds.cost_ratio_at_most}x)")
    return failures


def record_live_day(con: Any, agent: str, day: str, rollout: Rollout, metrics: dict[str, Any],
                    failures: list[str], run_id: str) -> None:
    """The day's verdict for this stage and these versions, replacing an earlier one (a re-run)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS evals")
    con.execute(LIVE_DAYS_DDL)
    challenger = json.dumps(rollout.challenger, sort_keys=True)
    with transaction(con):
        con.execute("DELETE FROM evals.live_days WHERE agent = ? AND partition = ? AND stage = ? AND challenger = ?",
                    [agent, day, rollout.stage, challenger])
        con.execute("INSERT INTO evals.live_days (agent, partition, stage, champion, challenger, paired, metrics, "
                    "passed, failures, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [agent, day, rollout.stage, json.dumps(rollout.champion, sort_keys=True), challenger,
                     metrics["paired"], json.dumps(metrics), not failures, failures, run_id])


def live_days(con: Any, agent: str, stage: str, challenger: dict[str, str]) -> list[tuple[str, bool, list[str]]]:
    """(day, passed, failures) of every live day recorded for this stage and these challenger versions."""
    if not table_exists(con, "evals", "live_days"):
        return []
    rows = con.execute("SELECT strftime(partition, '%Y-%m-%d'), passed, failures FROM evals.live_days WHERE "
                       "agent = ? AND stage = ? AND challenger = ? ORDER BY partition",
                       [agent, stage, json.dumps(challenger, sort_keys=True)]).fetchall()
    return [(day, bool(passed), list(failures or [])) for day, passed, failures in rows]
