"""The routing sweep: tickets/s and cost per 1,000 tickets at each threshold of the support agent's cascade, and
the sweep against the same grid evaluated point by point with no shared cache.

Setup (not timed): as `eval_overhead` (demo data for the default range, the data plane, the models job, the
champion configuration of `factory eval support_triage`, its suite, governance, world and scorers). The cascade's
last tier is llama.cpp's OpenAI-compatible server over the same GGUF on a free loopback port (no bigger model is
shipped), priced as a hosted small model (`REMOTE_PRICES`, an assumption stated in the output): the frontier then
shows what each tier costs; a better remote model would move its accuracy, not the method.

Project: `lib.evals.sweep.sweep` over the grid (one response cache carried from point to point; each point priced
uncached). Bare: the same grid, each point its own `evaluate` from scratch (what a loop over a plain evaluation
does). Both sides must reach the same decisions at every point. Printed: per point its thresholds, accuracy per
field, USD per 1,000 tickets, tickets/s (uncached), fields asked of each tier; the frontier and the pick; the two
sides' wall times and their ratio (reported: the cache is the point of the sweep, there is no goal).

Smoke run (`--smoke`): 4 demo days of 20 tickets, 4 cases, the scripted stand-in for llama.cpp's server as the
local model and no remote tier (only `model_below_confidence` is swept).

    .venv/bin/python -m benchmarks.routing_sweep [--cases N] [--model-grid 0,0.45,1.01] [--escalate-grid 0,0.5,1.01]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import (
    cleanup,
    isolated_home,
    parse_args,
    print_summary_rows,
    smoke,
    write_result,
)
from benchmarks.agent_workload import measured
from benchmarks.eval_overhead import build_suite, decisions, demo_factory

NAME = "routing_sweep"
DEFAULT_CASES = 24
REMOTE_MODEL = "gemma-3-270m"
REMOTE_PRICES = (0.00015, 0.0006)  # USD per 1k prompt / completion tokens: a hosted small model's list price


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


@contextmanager
def remote_tier(champion: Any) -> Iterator[Any]:
    """The champion with `decision.escalate_model` on llama.cpp's server over the GGUF (smoke: unchanged)."""
    if smoke():
        yield champion
        return
    from factory_pipelines.lib.agents.manifests import ModelConfig
    from factory_pipelines.lib.agents.models.llama_server import serve_gguf
    from factory_pipelines.lib.agents.models.providers import OpenAICompatibleProvider, model_version

    with serve_gguf(champion.provider.path) as server:
        config = ModelConfig(provider="openai_compatible", name=REMOTE_MODEL, base_url=server.base_url,
                             writes_replies=False)
        provider = OpenAICompatibleProvider(server.base_url, REMOTE_MODEL, usd_per_1k_prompt=REMOTE_PRICES[0],
                                            usd_per_1k_completion=REMOTE_PRICES[1], timeout_s=120)
        manifest = champion.manifest
        decision = manifest.decision.model_copy(update={"escalate_model": config})
        with provider:
            yield dataclasses.replace(champion, manifest=manifest.model_copy(update={"decision": decision}),
                                      escalate_provider=provider, escalate_model_version=model_version(provider))


def run_bare(s: Any, champion: Any, grid: Any) -> list[Any]:
    """Each grid point evaluated on its own, nothing carried from one to the next."""
    from factory_pipelines.lib.evals.evaluate import evaluate
    from factory_pipelines.lib.evals.sweep import at, grid_of

    return [evaluate(s.cases, at(champion, t), s.governance, s.new_world, s.scorers)
            for t in grid_of(grid, champion.escalate_provider is not None)]


def warm_up(s: Any, champion: Any) -> None:
    """Two cases with every tier asked (model load, the server's first calls), not timed."""
    from factory_pipelines.lib.evals.evaluate import evaluate
    from factory_pipelines.lib.evals.sweep import at

    evaluate(s.cases[:2], at(champion, {"model_below_confidence": 1.01, "escalate_below_confidence": 1.01}),
             s.governance, s.new_world, s.scorers)


def run_project(s: Any, champion: Any, grid: Any) -> tuple[list[Any], list[Any]]:
    """The sweep, and the evaluation behind each point (to compare decisions with the bare side)."""
    from factory_pipelines.lib.evals.sweep import sweep

    evaluations: list[Any] = []
    points = sweep(s.cases, champion, s.governance, s.new_world, s.scorers, grid, tolerances=s.suite.tolerances,
                   on_point=lambda _, evaluation: evaluations.append(evaluation))
    return points, evaluations


def cost_per_1k(evaluation: Any) -> float:
    """What the point cost per 1,000 tickets when evaluated on its own (every call paid)."""
    return 1000 * sum(o.cost_usd for o in evaluation.outcomes) / max(len(evaluation.outcomes), 1)


def print_points(points: list[Any]) -> None:
    print(f"\n  {'thresholds':38} {'accuracy (category/priority/action)':36} {'USD/1k':>9} {'tickets/s':>9} "
          f"{'model':>5} {'remote':>6}")
    for p in points:
        thresholds = " ".join(f"{k.split('_')[0]}={v:g}" for k, v in p.thresholds.items())
        accuracy = "/".join(f"{v:.3f}" for v in p.accuracy.values())
        mark = (" frontier" if p.on_frontier else "") + (" RECOMMENDED" if p.recommended else "")
        print(f"  {thresholds:38} {accuracy:36} {p.cost_per_1k_usd:9.4f} {p.tickets_per_s:9.2f} "
              f"{p.model_fields:5d} {p.escalated_fields:6d}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help="golden cases evenly spaced over the file")
    parser.add_argument("--model-grid", type=floats, default=[0.0, 0.45, 0.8, 1.01])
    parser.add_argument("--escalate-grid", type=floats, default=[0.0, 0.5, 1.01])
    args = parse_args(parser, cases=4)
    home = isolated_home(NAME)
    try:
        from factory_pipelines.lib.evals.suites import SweepGrid

        settings, info, setup = demo_factory(home, f"{NAME}: the cascade's thresholds, sweep vs point by point")
        s = build_suite(settings, args.cases)
        grid = SweepGrid(model_below_confidence=args.model_grid, escalate_below_confidence=args.escalate_grid)
        with remote_tier(s.champion) as champion:
            tier = (f"remote tier: llama.cpp server over the same GGUF, priced ${REMOTE_PRICES[0]}/"
                    f"${REMOTE_PRICES[1]} per 1k prompt/completion tokens" if champion.escalate_provider else
                    "no remote tier (smoke)")
            print(tier)
            warm_up(s, champion)
            project_s, project_others, (points, evaluations) = measured(lambda: run_project(s, champion, grid))
            bare_s, bare_others, bare = measured(lambda: run_bare(s, champion, grid))
        same = [decisions(a) == decisions(b) for a, b in zip(evaluations, bare, strict=True)]
        print_points(points)
        ratio = project_s / bare_s if bare_s else float("nan")
        print(f"\n  sweep of {len(points)} points x {len(s.cases)} cases: {project_s:.1f} s (shared cache) vs "
              f"{bare_s:.1f} s point by point, ratio {ratio:.3f}; same decisions at {sum(same)} of {len(same)} "
              f"points; other processes {project_others + bare_others:.1f} CPU s meanwhile")
        summary = [{"case": f"sweep, {len(points)} points x {len(s.cases)} cases", "metric": "wall time", "unit": "s",
                    "project": project_s, "bare": bare_s, "ratio": ratio, "goal": "reported", "met": True}]
        if not all(same):  # a remote tier that is not deterministic (llama.cpp's server caches prompts)
            print(f"  WARNING: the two sides decided differently at {len(same) - sum(same)} point(s): "
                  + ", ".join(" ".join(f"{k}={v:g}" for k, v in p.thresholds.items())
                              for p, ok in zip(points, same, strict=True) if not ok))
        summary += [{"case": f"point {' '.join(f'{k}={v:g}' for k, v in p.thresholds.items())}"
                     f"{' (recommended)' if p.recommended else ''}, {p.tickets_per_s:.2f} tickets/s",
                     "metric": "USD per 1k tickets", "unit": "USD",
                     "project": p.cost_per_1k_usd, "bare": cost_per_1k(alone),
                     "ratio": p.cost_per_1k_usd / cost_per_1k(alone) if cost_per_1k(alone) else None,
                     "goal": "reported", "met": True} for p, alone in zip(points, bare, strict=True)]
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "tier": tier, **setup, "points": [p.as_dict() for p in points],
                            "project_s": project_s, "bare_s": bare_s, "ratio": ratio, "same_decisions": same,
                            "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
