"""The promotion gate as a blocking asset check: `promotion_gate_<agent>` on `evals/<agent>`; and the live
gate `live_gate_<agent>` on `evals/live/<agent>`, one verdict per shadow or canary day.

The verdict is computed with the evaluation (`lib/evals/promotion_gate.judge`) and reported here: it passes
only when every gated metric meets its threshold, no paired interval says the challenger is worse than the
tolerance, policy compliance is 100% and cost and latency stay in budget. With no challenger it passes and
says there was nothing to judge. `factory promote` reads the same verdict from the MLflow comparison run.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def gate_check_name(agent: str) -> str:
    return f"promotion_gate_{agent}"


def gate_check_spec(key: dg.AssetKey, agent: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(gate_check_name(agent), asset=key, blocking=True,
                             description="The challenger may replace the champion: thresholds met, no paired "
                                         "regression beyond the suite's tolerances, 100% policy compliance, "
                                         "cost and latency in budget.")


def gate_check_result(agent: str, comparison: Any) -> dg.AssetCheckResult:
    """The check's result for a finished comparison (`defs.evals.assets.Comparison`), or None: no challenger."""
    if comparison is None:
        return dg.AssetCheckResult(check_name=gate_check_name(agent), passed=True,
                                   description="no challenger: nothing to judge", metadata={"challenger": "none"})
    gate, summary = comparison.gate, comparison.summary
    intervals = {metric: f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"
                 for metric, c in gate.summary()["comparisons"].items()}
    return dg.AssetCheckResult(
        check_name=gate_check_name(agent), passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR,
        description="passed: the challenger may be promoted (`factory promote`)" if gate.passed
        else "failed: " + "; ".join(gate.failures),
        metadata={"failures": dg.MetadataValue.json(gate.failures), "intervals": dg.MetadataValue.json(intervals),
                  "champion": summary["champion"]["prompt"], "challenger": summary["challenger"]["prompt"],
                  "mlflow_comparison_run": summary["mlflow"]["comparison_run"]})


def live_check_name(agent: str) -> str:
    return f"live_gate_{agent}"


def live_check_spec(key: dg.AssetKey, agent: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(live_check_name(agent), asset=key, blocking=True,
                             description="The staged challenger's live day counts toward promotion: enough paired "
                                         "tickets, agreement with the champion, escalation and denial rates and "
                                         "cost per ticket within the suite's stages.live bounds.")


def live_check_result(agent: str, rollout: Any, failures: list[str], metrics: dict[str, Any]) -> dg.AssetCheckResult:
    """The live day's verdict; with nothing in shadow or canary it passes and says so."""
    if rollout is None:
        return dg.AssetCheckResult(check_name=live_check_name(agent), passed=True, metadata={"stage": "none"},
                                   description="no challenger in shadow or canary: nothing to compare")
    shown = metrics.get("disagreements", [])[:20]
    return dg.AssetCheckResult(
        check_name=live_check_name(agent), passed=not failures, severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{rollout.stage} day passed" if not failures else f"{rollout.stage} day failed: "
                     + "; ".join(failures)),
        metadata={"stage": rollout.stage, "failures": dg.MetadataValue.json(failures),
                  "paired_tickets": metrics.get("paired", 0), "disagreeing_tickets": dg.MetadataValue.json(shown)})
