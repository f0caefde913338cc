"""One check per drift family on `drift/<agent>`: `feature_drift`, `text_drift`, `decision_drift`,
`quality_drift` (and `eval_score_drift` on `drift/eval_scores/<agent>`).

A check passes only when every record of its family is `ok`. A warn-level record fails it at WARN severity, an
error-level one at ERROR (what blocks promotion and becomes Cedar's `data.drift`); a family that could not be
judged (too few rows, no reference window yet) fails at WARN and says why, so a night without evidence never
reads as a clean night. The metadata echoes the worst record's observed value and bound (what an alert row
keeps), every record as a table, and the report's path.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

# family -> the record metrics it judges (lib/drift/records.DriftResult.metric)
FAMILIES: dict[str, tuple[str, ...]] = {
    "features": ("feature",),
    "text": ("text",),
    "decisions": ("decision", "rate", "cost_per_ticket"),
    "quality": ("estimated_accuracy", "realized_accuracy"),
    "eval_scores": ("eval_score",),
}
WINDOW_METRIC = "window"  # a night whose windows could not be read: every family is unjudged
DESCRIPTIONS = {
    "features": "The features the agent read (Feast, point in time): Wasserstein and PSI per numeric column, "
                "Jensen-Shannon per categorical one (KS and chi-square on small windows).",
    "text": "The ticket texts: ROC AUC of a classifier telling the current window from the reference.",
    "decisions": "The category, priority and action mix; escalation, denial and refund rates; cost per ticket.",
    "quality": "The first pass's accuracy estimated from its confidences (CBPE) against the reference's realized "
               "accuracy; realized accuracy too on days with labels.",
    "eval_scores": "The golden suite re-run on the champion against its last accepted scores.",
}


def check_name(family: str) -> str:
    return {"features": "feature_drift", "decisions": "decision_drift", "eval_scores": "eval_score_drift"}.get(
        family, f"{family}_drift")


def check_spec(key: dg.AssetKey, family: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(check_name(family), asset=key, description=DESCRIPTIONS[family])


def _bound(record: Any) -> float | None:
    if record.status == "error":
        return record.error
    return record.warn if record.status in ("warn", "ok") else None


def check_result(family: str, results: list[Any], links: dict[str, str]) -> dg.AssetCheckResult:
    """The family's verdict over its records (`DriftResult`s of the night, window records included)."""
    from factory_pipelines.lib.drift.records import SEVERITY, worst

    mine = [r for r in results if r.metric in FAMILIES[family] or r.metric == WINDOW_METRIC]
    status = worst(r.status for r in mine) if mine else "insufficient"
    ranked = sorted(mine, key=lambda r: SEVERITY[r.status], reverse=True)
    top = ranked[0] if ranked else None
    if not mine:
        why = "no record: the family produced nothing to judge"
    elif status == "ok":
        why = f"{len(mine)} record(s) within their bounds"
    else:
        named = [r for r in ranked if r.status == status]
        why = "; ".join(f"{r.key} {_shown(r)}" for r in named[:5]) + (f" (+{len(named) - 5} more)" if len(named) > 5 else "")
        why = f"{status}: {why}"
    rows = [{"key": r.key, "status": r.status, "value": r.value, "warn": r.warn, "error": r.error,
             "n_reference": r.n_reference, "n_current": r.n_current, "message": r.message} for r in ranked]
    metadata: dict[str, Any] = {
        "status": status, "records": dg.MetadataValue.json(rows),
        "observed": top.value if top is not None else None, "bound": _bound(top) if top is not None else None,
        "worst": top.key if top is not None else "", **links}
    severity = dg.AssetCheckSeverity.ERROR if status == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(check_name=check_name(family), passed=status == "ok", severity=severity,
                               description=why, metadata=metadata)


def _shown(record: Any) -> str:
    if record.value is None:
        return f"not judged ({record.message})"
    side = ">=" if record.higher_is_worse else "<="
    bound = record.error if record.status == "error" else record.warn
    return f"{record.value:.4g} {side} {bound:g}" + (f" ({record.message})" if record.message else "")
