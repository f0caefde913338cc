"""The routing sweep: one agent configuration decided over a suite at every point of a grid of cascade
thresholds (`decision.model_below_confidence`, `decision.escalate_below_confidence`), and the
cost-versus-accuracy frontier of those points.

Grid points ask many of the same questions (a ticket whose fields stay with the classifier at 0.3 and at 0.45
asks the model nothing either way), so one response cache is carried from point to point and a repeated call
is free; a point's cost is still what it would cost live, the uncached cost of every call
(`CaseOutcome.uncached_cost_usd`), and its tickets/s the uncached time. The recommendation is the cheapest
point whose accuracy on every field is within the suite's tolerance of the most accurate point's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from factory_pipelines.lib.evals.harness import AgentConfiguration, Governance
from factory_pipelines.lib.evals.scorers import DECISION_FIELDS, CaseScorer
from factory_pipelines.lib.evals.world import EvalWorld

DEFAULT_TOLERANCE = 0.02  # accuracy a cheaper point may give up when the suite names no tolerance for a field


@dataclass
class SweepPoint:
    """One grid point: its thresholds and what the configuration did there."""

    thresholds: dict[str, float]
    accuracy: dict[str, float]  # field -> accuracy
    cost_per_1k_usd: float  # uncached, per 1,000 tickets
    tickets_per_s: float  # uncached, one ticket after another
    escalated_fields: int = 0
    model_fields: int = 0
    on_frontier: bool = False
    recommended: bool = False

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy) if self.accuracy else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_accuracy": self.mean_accuracy}


def grid_of(grid: Any, escalation: bool) -> list[dict[str, float]]:
    """Every combination of the grid's thresholds; the first threshold alone when there is no remote tier."""
    first = sorted(set(grid.model_below_confidence))
    if not escalation:
        return [{"model_below_confidence": m} for m in first]
    return [{"model_below_confidence": m, "escalate_below_confidence": e}
            for m, e in itertools.product(first, sorted(set(grid.escalate_below_confidence)))]


def at(configuration: AgentConfiguration, thresholds: Mapping[str, float]) -> AgentConfiguration:
    """The configuration with the manifest's decision thresholds set to `thresholds`."""
    manifest = configuration.manifest
    decision = manifest.decision.model_copy(update=dict(thresholds))
    return replace(configuration, label=_label(thresholds), manifest=manifest.model_copy(update={"decision": decision}))


def sweep(cases: Sequence[Mapping[str, Any]], configuration: AgentConfiguration, governance: Governance,
          new_world: Callable[[], EvalWorld], scorers: Mapping[str, CaseScorer], grid: Any, *,
          tolerances: Mapping[str, float],
          on_point: Callable[[SweepPoint, Any], None] = lambda *_: None) -> list[SweepPoint]:
    """Decide every case at every grid point (one shared response cache) and mark the frontier and the pick;
    `on_point(point, evaluation)` sees each point as it is done."""
    from factory_pipelines.lib.evals.evaluate import evaluate

    cache: dict[str, tuple[Any, ...]] = {}
    points = []
    for thresholds in grid_of(grid, configuration.escalate_provider is not None):
        result = evaluate(cases, at(configuration, thresholds), governance, new_world, scorers, model_cache=cache)
        points.append(_point(thresholds, result))
        on_point(points[-1], result)
    mark(points, tolerances)
    return points


def _point(thresholds: Mapping[str, float], result: Any) -> SweepPoint:
    outcomes = result.outcomes
    seconds = sum(max(o.uncached_latency_s, 0.0) for o in outcomes)
    tiers = [t for o in outcomes for t in o.decided_by.values()]
    return SweepPoint(
        dict(thresholds), {f: result.metrics[f"{f}_accuracy"] for f in DECISION_FIELDS if f"{f}_accuracy" in result.metrics},
        round(1000 * sum(o.uncached_cost_usd for o in outcomes) / max(len(outcomes), 1), 6),
        round(len(outcomes) / seconds, 3) if seconds > 0 else float("inf"),
        escalated_fields=tiers.count("escalated_model"), model_fields=tiers.count("model"))


def mark(points: list[SweepPoint], tolerances: Mapping[str, float]) -> SweepPoint | None:
    """Flag the frontier (no other point is as cheap and as accurate, and better in one) and the recommended
    point: the cheapest within tolerance of the most accurate on every field. Returns the recommendation."""
    for p in points:
        p.on_frontier = not any(q.cost_per_1k_usd <= p.cost_per_1k_usd and q.mean_accuracy >= p.mean_accuracy and (
            q.cost_per_1k_usd < p.cost_per_1k_usd or q.mean_accuracy > p.mean_accuracy) for q in points)
    if not points:
        return None
    best = max(points, key=lambda p: (p.mean_accuracy, -p.cost_per_1k_usd))
    near = [p for p in points if all(p.accuracy.get(f, 0.0) >= best.accuracy[f] - tolerances.get(
        f"{f}_accuracy", DEFAULT_TOLERANCE) - 1e-12 for f in best.accuracy)]
    pick = min(near, key=lambda p: (p.cost_per_1k_usd, -p.mean_accuracy))
    pick.recommended = True
    return pick


def _label(thresholds: Mapping[str, float]) -> str:
    return "sweep " + " ".join(f"{k}={v:g}" for k, v in thresholds.items())


def frontier_html(agent: str, points: Sequence[SweepPoint]) -> str:
    """A self-contained page (inline SVG, no script): cost per 1,000 tickets against mean accuracy, the frontier
    joined by a line, the recommended point ringed; and the table of every point."""
    width, height, pad = 640, 400, 60
    costs = [p.cost_per_1k_usd for p in points] or [0.0]
    low, high = min(costs), max(costs)
    span = (high - low) or 1.0

    def xy(p: SweepPoint) -> tuple[float, float]:
        return (pad + (p.cost_per_1k_usd - low) / span * (width - 2 * pad),
                height - pad - p.mean_accuracy * (height - 2 * pad))

    frontier = sorted((p for p in points if p.on_frontier), key=lambda p: p.cost_per_1k_usd)
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, frontier))
    ring = ' stroke="#000" stroke-width="2"'
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if p.recommended else 4}" fill="{"#c00" if p.on_frontier else "#888"}"'
        f'{ring if p.recommended else ""}><title>{_label(p.thresholds)}: accuracy '
        f'{p.mean_accuracy:.3f}, ${p.cost_per_1k_usd:.4f} per 1k</title></circle>' for p in points for x, y in [xy(p)])
    axes = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#000"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#000"/>'
            f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">USD per 1,000 tickets '
            f'(uncached; {low:.4g} to {high:.4g})</text><text x="15" y="{height / 2}" transform="rotate(-90 15 '
            f'{height / 2})" text-anchor="middle">mean accuracy (0 to 1)</text>')
    rows = "".join(f"<tr><td>{_label(p.thresholds)[6:]}</td><td>{p.mean_accuracy:.4f}</td><td>"
                   f"{p.cost_per_1k_usd:.4f}</td><td>{p.tickets_per_s:.2f}</td><td>{'yes' if p.on_frontier else ''}"
                   f"</td><td>{'recommended' if p.recommended else ''}</td></tr>" for p in points)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{agent} routing sweep</title></head><body>"
            f"<h1>{agent}: cost versus accuracy</h1><svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{height}'>{axes}<polyline points='{line}' fill='none' stroke='#c00'/>{dots}</svg>"
            "<table border='1'><tr><th>thresholds</th><th>mean accuracy</th><th>USD per 1k</th><th>tickets/s</th>"
            f"<th>frontier</th><th></th></tr>{rows}</table></body></html>")


def log_sweep(agent: str, points: Sequence[SweepPoint], *, experiment_id: str, tags: Mapping[str, str],
              params: Mapping[str, str]) -> str:
    """One MLflow run: each point's metrics at its step, the frontier page and the points as artifacts."""
    import json

    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{agent} routing sweep",
                          tags={**tags, "eval.role": "sweep"}) as run:
        mlflow.log_params({**params, "points": str(len(points))})
        for step, p in enumerate(points):
            mlflow.log_metrics({**{f"{f}_accuracy": v for f, v in p.accuracy.items()}, "mean_accuracy": p.mean_accuracy,
                                "cost_per_1k_usd": p.cost_per_1k_usd, "tickets_per_s": p.tickets_per_s,
                                **{k: v for k, v in p.thresholds.items()}}, step=step)
        pick = next((p for p in points if p.recommended), None)
        if pick is not None:
            mlflow.log_metrics({f"recommended_{k}": v for k, v in pick.thresholds.items()})
        mlflow.log_text(frontier_html(agent, points), "sweep/frontier.html")
        mlflow.log_text(json.dumps([p.as_dict() for p in points], indent=2), "sweep/points.json")
    return run.info.run_id
