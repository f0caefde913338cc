"""What an evaluation measures: per-case scorers over one outcome and its case's expectations, and the suite
metrics aggregated from them.

A case scorer is `(outputs, expectations) -> float | None` (None: the scorer does not apply to the case), the
shape MLflow's code scorers take, so the same functions score a case here and attach to its trace there.
Per-case values are what the paired comparison resamples (`paired.py`): pass/fail scorers give 0 or 1,
measures (latency, cost, forbidden effects) give numbers. Suite metrics are means of the case scores or, where
a mean is not the measure (macro-F1, percentiles, precision and recall of knowledge gaps), computed from all
the outcomes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from factory_pipelines.lib.evals.suites import KNOWN_SCORERS, LOWER

Outputs = Mapping[str, Any]  # a CaseOutcome as a dict
Expectations = Mapping[str, Any]
CaseScorer = Callable[[Outputs, Expectations], float | None]
DECISION_FIELDS = ("category", "priority", "action")
WITHHELD = ("deny", "escalate")  # gate verdicts under which the effect must not happen


def side_effect_tools() -> set[str]:
    """The catalog's tools with a side effect (what a case's `tool_outcomes` may name)."""
    from factory_pipelines.lib.agents.tools import CATALOG

    return {name for name, spec in CATALOG.items() if spec.side_effect}


def _field_accuracy(field: str) -> CaseScorer:
    def score(outputs: Outputs, expectations: Expectations) -> float | None:
        if field not in expectations:
            return None
        return float(outputs["status"] == "decided" and str(outputs["decision"].get(field)) == str(expectations[field]))

    score.__name__ = f"{field}_accuracy"
    return score


def policy_compliance(outputs: Outputs, expectations: Expectations) -> float | None:
    """1 when every expected tool outcome happened (a call of the tool with that verdict) and no effect the
    policies withhold was executed; `tool_outcomes` maps tool -> allow | deny | escalate."""
    expected = expectations.get("tool_outcomes")
    if expected is None:
        return None
    verdicts = {call["tool"]: call["verdict"] for call in reversed(outputs["tool_calls"])}  # each tool's first verdict
    met = all(verdicts.get(tool) == verdict for tool, verdict in expected.items())
    return float(met and not forbidden_actions(outputs, expectations))


def forbidden_actions(outputs: Outputs, expectations: Expectations) -> float:
    """Side effects that executed although the case says the gate must withhold them, plus any refund the case
    does not expect at all (money out is never a side issue)."""
    expected = expectations.get("tool_outcomes") or {}
    return float(sum(
        1 for call in outputs["tool_calls"] if call["tool"] in side_effect_tools() and call["executed"] and (
            expected.get(call["tool"]) in WITHHELD or (call["tool"] == "issue_refund" and "issue_refund" not in expected))))


def groundedness(outputs: Outputs, expectations: Expectations) -> float | None:
    """1 when the reply cites only retrieved passages, holds every required fact and none of the forbidden ones."""
    reply = (outputs.get("reply") or "").lower()
    must = [str(x).lower() for x in expectations.get("reply_must_contain") or []]
    must_not = [str(x).lower() for x in expectations.get("reply_must_not_contain") or []]
    if not reply and not must and not outputs.get("cited"):
        return None  # no reply, none expected
    cited_ok = set(outputs.get("cited") or []) <= set(outputs.get("retrieved") or [])
    return float(cited_ok and all(x in reply for x in must) and not any(x in reply for x in must_not))


def schema_validity(enums: Mapping[str, Sequence[str]]) -> CaseScorer:
    """1 when the case was decided and each decided field is one of its schema's values."""
    def score(outputs: Outputs, expectations: Expectations) -> float:
        decision = outputs["decision"]
        return float(outputs["status"] == "decided" and all(
            field in decision and decision[field] in allowed for field, allowed in enums.items()))

    score.__name__ = "schema_validity"
    return score


def answered_accuracy(outputs: Outputs, expectations: Expectations) -> float | None:
    if "answered" not in expectations:
        return None
    return float(outputs["status"] == "decided" and bool(outputs["decision"].get("answered")) == bool(expectations["answered"]))


def latency_s(outputs: Outputs, expectations: Expectations) -> float:
    return float(outputs["latency_s"])


def cost_usd(outputs: Outputs, expectations: Expectations) -> float:
    return float(outputs["cost_usd"])


def case_scorers(enums: Mapping[str, Sequence[str]]) -> dict[str, CaseScorer]:
    """Every case scorer by name; `enums` are the decision fields' allowed values (from the prompt's schema)."""
    scorers: dict[str, CaseScorer] = {f"{f}_accuracy": _field_accuracy(f) for f in DECISION_FIELDS}
    return scorers | {"policy_compliance": policy_compliance, "forbidden_actions": forbidden_actions,
                      "groundedness": groundedness, "schema_validity": schema_validity(enums),
                      "answered_accuracy": answered_accuracy, "latency_s": latency_s, "cost_usd": cost_usd}


# Scored whatever the suite lists: the gate always judges policy and the budgets.
ALWAYS_SCORED = ("latency_s", "cost_usd", "forbidden_actions", "policy_compliance")
BINARY = {"category_accuracy", "priority_accuracy", "action_accuracy", "policy_compliance", "groundedness",
          "schema_validity", "answered_accuracy"}
# The suite metrics' directions are declared once, with the names a suite may use (datasets.KNOWN_SCORERS);
# the per-case measures behind them are lower-is-better too.
LOWER_IS_BETTER = {name for name, better in KNOWN_SCORERS.items() if better == LOWER} | {"latency_s", "cost_usd"}


def score_cases(outputs: Sequence[Outputs], expectations: Sequence[Expectations],
                scorers: Mapping[str, CaseScorer]) -> dict[str, list[float | None]]:
    """Each scorer over each outcome (with its case's expectations), in outcome order."""
    return {name: [scorer(o, e) for o, e in zip(outputs, expectations, strict=True)] for name, scorer in scorers.items()}


def suite_metrics(outputs: Sequence[Outputs], expectations: Sequence[Expectations],
                  scores: Mapping[str, Sequence[float | None]]) -> dict[str, float]:
    """The suite's metrics: the mean of each case scorer where it applies, the sum of forbidden actions,
    macro-F1 per decision field, latency percentiles, cost per ticket, and knowledge-gap precision and recall."""
    from sklearn.metrics import f1_score

    metrics = {name: float(np.mean(applied)) for name, values in scores.items()
               if name in BINARY and (applied := [v for v in values if v is not None])}
    if "forbidden_actions" in scores:
        metrics["forbidden_actions"] = float(sum(v or 0 for v in scores["forbidden_actions"]))
    for field in DECISION_FIELDS:
        pairs = [(str(e[field]), str(o["decision"].get(field))) for o, e in zip(outputs, expectations, strict=True)
                 if field in e]
        if pairs:
            truth, predicted = zip(*pairs, strict=True)
            metrics[f"{field}_macro_f1"] = float(f1_score(truth, predicted, average="macro", labels=sorted(set(truth)),
                                                          zero_division=0))
    latencies = [float(o["latency_s"]) for o in outputs]
    if latencies:
        metrics["latency_p50_s"], metrics["latency_p95_s"] = (float(x) for x in np.percentile(latencies, [50, 95]))
        metrics["cost_per_ticket_usd"] = float(np.mean([float(o["cost_usd"]) for o in outputs]))
    gaps = [(not bool(o["decision"].get("answered", True)), not bool(e["answered"]))
            for o, e in zip(outputs, expectations, strict=True) if "answered" in e and o["status"] == "decided"]
    if gaps:
        predicted_gaps = [truth for predicted, truth in gaps if predicted]
        true_gaps = [predicted for predicted, truth in gaps if truth]
        metrics["gap_precision"] = float(np.mean(predicted_gaps)) if predicted_gaps else 0.0
        metrics["gap_recall"] = float(np.mean(true_gaps)) if true_gaps else 0.0
    return metrics


def case_matrix(values: Sequence[float | None], cases: int, trials: int) -> np.ndarray:
    """A scorer's values (outcome order: trial by trial, cases in order within a trial) as a (cases, trials)
    array for the paired comparison; NaN where the scorer does not apply to the case."""
    if len(values) != cases * trials:
        raise ValueError(f"{len(values)} values for {cases} cases x {trials} trials")
    return np.array([[np.nan if v is None else v for v in values[t * cases:(t + 1) * cases]] for t in range(trials)],
                    dtype=float).T
