"""Drift of what the agent decided: the category, priority and action mix, the rates of escalations, denied
calls and refunds, and the cost per ticket.

The mixes are categorical columns and get the same Evidently tests as features (Jensen-Shannon above 1,000
reference rows, chi-square or z at or below). A rate is judged by its absolute change (0.05 = 5 points), the
cost by its relative change (against at least `cost_floor_usd`, so a fraction of a cent on a nearly free
reference is no drift): both read directly as "the agent escalates 7 points more than usual".
`decision_flags` derives the three flags from the agent tables (`agents.decisions`, `agents.tool_calls`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from factory_pipelines.lib.drift.config import DecisionSpec, DriftConfig, FeatureSpec
from factory_pipelines.lib.drift.features import column_drift
from factory_pipelines.lib.drift.records import Distribution, DriftResult, insufficient, judge

if TYPE_CHECKING:
    import pandas as pd


def decision_flags(decisions: pd.DataFrame, tool_calls: pd.DataFrame | None = None) -> pd.DataFrame:
    """`decisions` with boolean `escalated` (action escalate, or a call escalated or sent to a human),
    `denied` (a call the gate denied) and `refunded` (a refund executed), per ticket."""
    out = decisions.copy()
    out["escalated"] = out["action"].eq("escalate") if "action" in out else False
    out["denied"] = False
    out["refunded"] = False
    if tool_calls is not None and not tool_calls.empty:
        calls = tool_calls.assign(
            _escalated=tool_calls["tool"].eq("escalate_to_human") | tool_calls["verdict"].eq("escalate"),
            _denied=tool_calls["verdict"].eq("deny"),
            _refunded=tool_calls["tool"].eq("issue_refund") & tool_calls["executed"].fillna(False).astype(bool))
        per_ticket = calls.groupby("ticket_id")[["_escalated", "_denied", "_refunded"]].any()
        joined = out[["ticket_id"]].join(per_ticket, on="ticket_id")  # tickets without calls: NaN, not True
        out["escalated"] = out["escalated"].astype(bool) | joined["_escalated"].eq(True).to_numpy()
        out["denied"] = joined["_denied"].eq(True).to_numpy()
        out["refunded"] = joined["_refunded"].eq(True).to_numpy()
    return out


def decision_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig,
                   spec: DecisionSpec | None = None) -> list[DriftResult]:
    """Mix records (metric `decision`), then one `rate` record per flag, then `cost_per_ticket`."""
    spec = spec or config.decisions
    if spec is None:
        return []
    needed = [*spec.categorical, *spec.rates, *([spec.cost] if spec.cost else [])]
    missing = [c for c in needed if c not in reference or c not in current]
    if missing:
        raise KeyError(f"{spec.table}: decision columns {missing} are not in the reference or current rows")
    as_features = FeatureSpec(table=spec.table, categorical=spec.categorical, categorical_method=spec.method)
    results = [dataclasses.replace(r, metric="decision")
               for column in spec.categorical
               for r in column_drift(reference[column], current[column], column, "categorical", config, as_features)]
    results += [_rate(reference[c], current[c], c, spec, config) for c in spec.rates]
    if spec.cost:
        results.append(_cost(reference[spec.cost], current[spec.cost], spec, config))
    return results


def _short(n_reference: int, n_current: int, config: DriftConfig) -> str:
    need = config.min_rows
    if n_reference < need.reference or n_current < need.current:
        return f"too few tickets: reference {n_reference} (needs {need.reference}), current {n_current} (needs {need.current})"
    return ""


def _rate(reference: pd.Series, current: pd.Series, column: str, spec: DecisionSpec,
          config: DriftConfig) -> DriftResult:
    ref, cur, bound = reference.dropna().astype(bool), current.dropna().astype(bool), spec.rate_bound
    short = _short(len(ref), len(cur), config)
    if short:
        return insufficient("rate", column, "abs_change", bound.warn, bound.error, len(ref), len(cur), short)
    r, c = float(ref.mean()), float(cur.mean())
    value = abs(c - r)
    return DriftResult("rate", column, "abs_change", value, bound.warn, bound.error,
                       judge(value, bound.warn, bound.error, True), len(ref), len(cur), True,
                       f"{column} rate {r:.1%} -> {c:.1%}", r, c, Distribution((column,), (r,), (c,)))


def _cost(reference: pd.Series, current: pd.Series, spec: DecisionSpec, config: DriftConfig) -> DriftResult:
    ref, cur, bound = reference.dropna().astype(float), current.dropna().astype(float), spec.cost_bound
    short = _short(len(ref), len(cur), config)
    if short:
        return insufficient("cost_per_ticket", spec.cost or "cost", "rel_change", bound.warn, bound.error,
                            len(ref), len(cur), short)
    r, c = float(ref.mean()), float(cur.mean())
    base = max(r, spec.cost_floor_usd)
    value = abs(c - r) / base if base > 0 else (0.0 if c == r else math.inf)
    return DriftResult("cost_per_ticket", spec.cost or "cost", "rel_change", value, bound.warn, bound.error,
                       judge(value, bound.warn, bound.error, True), len(ref), len(cur), True,
                       f"mean cost per ticket {r:.6f} -> {c:.6f} USD", r, c,
                       Distribution(("USD per ticket",), (r,), (c,)))
