"""Staged promotion's parts: the canary's stable share, the stage order, the live comparison of a day on real
DuckDB tables, its verdict, and the promotion that moves a challenger one stage at a time on the real MLflow
registries, audit log and Cedar operations policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from factory_pipelines.lib.agents.records import ensure_agent_tables
from factory_pipelines.lib.evals.promotion import PromotionRefused, rollback
from factory_pipelines.lib.evals.rollout import (
    LiveBounds,
    Rollout,
    Stages,
    in_canary,
    judge_live,
    live_day,
    live_days,
    record_live_day,
)
from tests.lib.evals.test_promotion import MANIFEST, POLICIES, aliases, events, gate
from tests.lib.evals.test_promotion import do_promote as offline_promote

STAGES = Stages(shadow_days=2, canary_days=1, canary_share=0.25, live=LiveBounds(min_tickets=4))
CHALLENGER = {"prompt": "support_triage/2", "first_pass": "ticket_classifier/1"}
ROLLOUT = Rollout("shadow", {"prompt": "support_triage/1", "first_pass": "ticket_classifier/1"}, CHALLENGER, 0.0)


def test_the_canary_share_is_a_stable_hash_of_the_ticket_id() -> None:
    tickets = [f"T-20261105-{n:05d}" for n in range(4000)]
    chosen = [t for t in tickets if in_canary("support_triage", t, 0.2)]
    assert chosen == [t for t in tickets if in_canary("support_triage", t, 0.2)]  # the same on every run
    assert 0.18 < len(chosen) / len(tickets) < 0.22
    assert set(chosen) <= {t for t in tickets if in_canary("support_triage", t, 0.5)}  # a wider share keeps them
    assert chosen != [t for t in tickets if in_canary("knowledge_gap", t, 0.2)]  # each agent has its own draw


def test_stages_run_in_order_and_a_zero_skips_one() -> None:
    assert [STAGES.after(s) for s in ("offline", "shadow", "canary")] == ["shadow", "canary", "champion"]
    assert Stages(canary_days=1).after("offline") == "canary"
    assert Stages(shadow_days=3).after("shadow") == "champion"
    assert Stages().after("offline") == "champion"


def decisions(con: Any, rows: list[tuple[str, str, str, list[str], list[str]]]) -> None:
    """(ticket, acting action, shadow action, acting calls, shadow calls) for 2026-11-05, the shadow the challenger."""
    ensure_agent_tables(con)
    for ticket, acting, shadow, acting_calls, shadow_calls in rows:
        con.execute("INSERT INTO agents.decisions (agent, partition, ticket_id, status, category, priority, action, "
                    "tool_calls, cost_usd) VALUES ('support_triage', '2026-11-05', ?, 'decided', 'refund', 'medium', "
                    "?, ?, 0.001)", [ticket, acting, acting_calls])
        con.execute("INSERT INTO agents.shadow_decisions (stage, role, agent, partition, ticket_id, status, category, "
                    "priority, action, tool_calls, cost_usd) VALUES ('shadow', 'challenger', 'support_triage', "
                    "'2026-11-05', ?, 'decided', 'refund', 'medium', ?, ?, 0.002)", [ticket, shadow, shadow_calls])


def test_a_live_day_compares_both_sides_on_the_same_tickets(con: Any) -> None:
    decisions(con, [
        ("T-1", "refund", "refund", ["issue_refund:ok", "send_reply:ok"], ["issue_refund:ok", "send_reply:ok"]),
        ("T-2", "reply", "reply", ["send_reply:ok"], ["send_reply:ok"]),
        ("T-3", "reply", "refund", ["send_reply:ok"], ["issue_refund:escalated", "send_reply:ok"]),
        ("T-4", "escalate", "reply", ["escalate_to_human:ok"], ["send_reply:denied"]),
    ])
    metrics = live_day(con, "support_triage", "2026-11-05", "shadow")
    assert metrics["paired"] == 4 and metrics["agreement"] == {"category": 1.0, "priority": 1.0, "action": 0.5}
    assert metrics["disagreements"] == ["T-3", "T-4"]
    assert metrics["champion"] == {"escalation_rate": 0.25, "denial_rate": 0.0, "cost_per_ticket_usd": 0.001}
    assert metrics["challenger"] == {"escalation_rate": 0.25, "denial_rate": 0.25, "cost_per_ticket_usd": 0.002}
    assert judge_live(metrics, STAGES.live) == [
        "agreement action 0.500 < 0.8", "denial_rate 0.250 vs champion 0.000 (+0.250 > 0.05)",
        "cost per ticket 0.002000 USD is 2.00x the champion's (> 1.5x)"]
    assert judge_live(metrics, LiveBounds(min_tickets=10)) == ["only 4 paired ticket(s); a day counts from 10"]
    assert live_day(con, "support_triage", "2026-11-05", "canary")["paired"] == 0  # the other stage's rows only


def passing_day(con: Any, day: str, stage: str = "shadow", passed: bool = True) -> None:
    rollout = Rollout(stage, ROLLOUT.champion, CHALLENGER, 0.25 if stage == "canary" else 0.0)
    record_live_day(con, "support_triage", day, rollout, {"paired": 40}, [] if passed else ["agreement low"], "run")


def promote(client: Any, con: Any) -> Any:
    from factory_pipelines.lib.evals.promotion import promote as promote_

    experiment = client.get_experiment_by_name("evals/support_triage")
    return promote_(client=client, where="test store", con=con, policies_dir=POLICIES, operator="ana",
                    manifest=MANIFEST, experiment_id=experiment.experiment_id, dataset_version="abc123",
                    only={"prompt"}, stages=STAGES)


def stage_aliases(client: Any) -> dict[str, int | None]:
    def get(alias: str) -> int | None:
        try:
            return int(client.get_prompt_version_by_alias("support_triage", alias).version)
        except Exception:
            return None

    return {alias: get(alias) for alias in ("champion", "challenger", "shadow", "canary")}


def test_a_challenger_goes_shadow_canary_champion_counting_passing_days(client: Any, con: Any) -> None:
    gate(client, CHALLENGER, passed=True)
    done = promote(client, con)
    assert done.stage == {"from": "offline", "to": "shadow"}
    assert stage_aliases(client) == {"champion": 1, "challenger": 2, "shadow": 2, "canary": None}

    passing_day(con, "2026-11-05")
    passing_day(con, "2026-11-06", passed=False)
    with pytest.raises(PromotionRefused, match=r"1 of the 2 passing shadow day\(s\) .*\(2 live day\(s\) judged\)") as no:
        promote(client, con)
    assert no.value.failures == ["2026-11-06: agreement low"]
    assert stage_aliases(client)["shadow"] == 2  # nothing moved
    passing_day(con, "2026-11-06")  # the day re-run: its verdict replaces the failed one
    assert [d for d, ok, _ in live_days(con, "support_triage", "shadow", CHALLENGER) if ok] == ["2026-11-05", "2026-11-06"]

    assert promote(client, con).stage["to"] == "canary"
    assert stage_aliases(client) == {"champion": 1, "challenger": 2, "shadow": None, "canary": 2}
    with pytest.raises(PromotionRefused, match="0 of the 1 passing canary day"):
        promote(client, con)
    passing_day(con, "2026-11-07", "canary")
    assert promote(client, con).stage == {"from": "canary", "to": "champion", "days": [{"day": "2026-11-07",
                                                                                        "passed": True}]}
    assert stage_aliases(client) == {"champion": 2, "challenger": None, "shadow": None, "canary": None}
    assert [k for k, _ in events(con)] == ["promotion_staged", "promotion_refused", "promotion_staged",
                                           "promotion_refused", "promoted"]


def test_rollback_takes_a_staged_challenger_out_and_keeps_the_champion(client: Any, con: Any) -> None:
    gate(client, CHALLENGER, passed=True)
    promote(client, con)
    done = rollback(client=client, where="test store", con=con, policies_dir=POLICIES, operator="on-call",
                    manifest=MANIFEST)
    assert done.action == "withdraw" and done.stage == {"from": "shadow", "to": "offline"}
    assert stage_aliases(client) == {"champion": 1, "challenger": 2, "shadow": None, "canary": None}
    kind, payload = events(con)[-1]
    assert kind == "stage_withdrawn" and payload["changes"]["prompt"]["from"] == 2 and payload["role"] == "on_call"


def test_a_suite_without_stages_promotes_at_once(client: Any, con: Any) -> None:
    gate(client, CHALLENGER, passed=True)
    assert offline_promote(client, con, only={"prompt"}).stage == {"from": "offline", "to": "champion"}
    assert json.loads(json.dumps(aliases(client)))["prompt@champion"] == 2
