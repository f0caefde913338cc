"""An evaluation: one agent configuration decided over a suite's cases and scored; and the comparison of two
evaluations of the same cases through the promotion gate.

The steps are the harness (`harness.run_cases`), the case scorers and suite metrics (`scorers.py`) and the gate
(`promotion_gate.judge`); this module only strings them together, so every caller (today `factory eval`)
evaluates the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from factory_pipelines.lib.evals.harness import AgentConfiguration, CaseOutcome, Governance, run_cases
from factory_pipelines.lib.evals.promotion_gate import GateResult, SideScores, judge
from factory_pipelines.lib.evals.scorers import CaseScorer, case_matrix, score_cases, suite_metrics
from factory_pipelines.lib.evals.world import EvalWorld


@dataclass
class Evaluation:
    """What one configuration did on the cases: outcomes (trial by trial), per-outcome scores, suite metrics."""

    configuration: AgentConfiguration
    case_ids: list[str]
    trials: int
    outcomes: list[CaseOutcome]
    scores: dict[str, list[float | None]]
    metrics: dict[str, float]

    def side(self) -> SideScores:
        """The evaluation as one side of a paired comparison: each scorer as a (cases, trials) array."""
        return SideScores(self.configuration.label,
                          {name: case_matrix(values, len(self.case_ids), self.trials) for name, values in self.scores.items()},
                          self.metrics)

    def records(self, cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One record per outcome, as MLflow's evaluation takes them: inputs, outputs, expectations, trace."""
        by_id = {str(c["id"]): c for c in cases}
        return [{"inputs": {"case_id": o.case_id, "trial": o.trial, **by_id[o.case_id]["inputs"]["ticket"]},
                 "outputs": o.as_dict(), "expectations": dict(by_id[o.case_id]["expectations"]),
                 "trace_id": o.trace_id} for o in self.outcomes]


def evaluate(cases: Sequence[Mapping[str, Any]], configuration: AgentConfiguration, governance: Governance,
             new_world: Callable[[], EvalWorld], scorers: Mapping[str, CaseScorer], *, trials: int = 1,
             trace_tags: Mapping[str, str] | None = None, model_cache: dict[str, Any] | None = None) -> Evaluation:
    """Decide every case `trials` times with `configuration` and score each outcome (`model_cache`: see
    `harness.run_cases`)."""
    outcomes = run_cases(list(cases), configuration, governance, new_world, trials=trials, trace_tags=trace_tags,
                         model_cache=model_cache)
    by_id = {str(c["id"]): c["expectations"] for c in cases}
    outputs = [o.as_dict() for o in outcomes]
    expectations = [by_id[o.case_id] for o in outcomes]
    scores = score_cases(outputs, expectations, scorers)
    return Evaluation(configuration, [str(c["id"]) for c in cases], trials, outcomes, scores,
                      suite_metrics(outputs, expectations, scores))


def evaluate_logged(cases: Sequence[Mapping[str, Any]], configuration: AgentConfiguration, governance: Governance,
                    new_world: Callable[[], EvalWorld], scorers: Mapping[str, CaseScorer], *, trials: int,
                    dataset: Any, experiment_id: str, tags: Mapping[str, str]) -> tuple[Evaluation, str]:
    """`evaluate`, with the agent's traces grouped under the configuration's LoggedModel, then logged as an
    MLflow evaluation run on the registered `dataset` (one assessment per case and scorer on its trace, the
    suite metrics on the run); returns the evaluation and the run id."""
    from factory_pipelines.lib.evals.tracking import (
        active_model,
        evaluate_outputs,
        model_configuration,
        tune_sqlite_store,
    )

    tune_sqlite_store()  # before the agent: its traces are written to the same store
    side, params = configuration.label, configuration.params
    model_id = model_configuration(params["agent"], params, experiment_id)  # the configuration, whichever side
    with active_model(model_id):
        evaluation = evaluate(cases, configuration, governance, new_world, scorers, trials=trials,
                              trace_tags={**tags, "eval_side": side})
    run = evaluate_outputs(f"{params['agent']} {side} {params['prompt']}", evaluation.records(cases), scorers,
                           dataset=dataset, experiment_id=experiment_id, tags={**tags, **params, "eval_side": side},
                           model_id=model_id, metrics=evaluation.metrics)
    return evaluation, run.run_id


def register_cases(name: str, version: str, cases: Sequence[Mapping[str, Any]], experiment_id: str) -> Any:
    """The golden cases as an MLflow evaluation dataset (once per version): each case's id and ticket as inputs."""
    from factory_pipelines.lib.evals.tracking import register_dataset

    return register_dataset(name, version, [
        {"inputs": {"case_id": c["id"], **c["inputs"]["ticket"]}, "expectations": dict(c["expectations"]),
         "tags": {"case_id": str(c["id"])}} for c in cases], experiment_id)


def compare_evaluations(champion: Evaluation, challenger: Evaluation, *, thresholds: Mapping[str, float],
                        tolerances: Mapping[str, float], budgets: Mapping[str, float]) -> GateResult:
    """The promotion gate for `challenger` against `champion`; both must have decided the same cases."""
    if champion.case_ids != challenger.case_ids:
        raise ValueError(f"{champion.configuration.label} and {challenger.configuration.label} were evaluated on "
                         "different cases: a paired comparison needs the same cases in the same order")
    return judge(champion.side(), challenger.side(), champion.case_ids, thresholds=thresholds, tolerances=tolerances,
                 budgets=budgets)
