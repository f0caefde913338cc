"""The paired statistics of the promotion gate over 10,000 cases x 20 trials: `paired.compare` vs the bare SciPy
calls doing the same resampling.

Data (deterministic, seed 1207, not timed): both sides score the same 10,000 cases in 20 trials each. Binary
metric (pass/fail): each case has its own difficulty (champion pass rate drawn from Beta(4, 1.5)), the challenger
passes 1 point more often; continuous metric (latency, seconds): a lognormal case effect times a lognormal trial
noise, the challenger 2 % faster.

Project: `factory_pipelines.lib.evals.paired.compare(metric, champion, challenger, case_ids, tolerance, kind=...)`:
input checks, the trials averaged per case, `scipy.stats.bootstrap` over the per-case differences (9,999
resamples, percentile, seeded), and for the binary metric the flipped cases by name and McNemar's exact test
(`scipy.stats.binomtest`).
Bare: SciPy alone on the per-case means of both sides, paired, as the docs show it:
`scipy.stats.bootstrap((champion_means, challenger_means), lambda x, y, axis: y.mean(axis) - x.mean(axis),
paired=True, vectorized=True, n_resamples=9999, method="percentile", rng=default_rng(seed), batch=...)` with
the project's batch size (the same memory), plus `binomtest` of the discordant counts for the binary metric.
Paired resampling draws the same case indices for both arrays from the same generator, so both sides resample
the same cases: their intervals must agree (to rounding), or nothing is measured.

Diagnostics (no goal): the bare call with SciPy's default batch (all 9,999 resamples at once: three arrays of
10,000 x 9,999, 2.4 GB; skipped with --no-scipy-default); the whole gate (`promotion_gate.judge`) over the
support suite's tolerances at the same size, one bootstrap per tolerance.

One warm-up of each side; --repeat timed runs each, the order alternating; median seconds.
Goal: the project's comparison under 2 s for each metric (reported beside the ratio project / bare).

    .venv/bin/python -m benchmarks.paired_stats [--cases N] [--trials K] [--repeat N] [--no-scipy-default] [--smoke]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks import (
    REPO_ROOT,
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    parse_args,
    print_summary_rows,
    side_order,
    verdict,
    write_result,
)

NAME = "paired_stats"
GOAL_S = 2.0  # seconds for one metric's paired comparison, at most
SEED = 1207
TOLERANCE = 0.02


def data(cases: int, trials: int) -> dict[str, tuple[Any, Any, str]]:
    """Per metric: champion and challenger scores shaped (cases, trials), and the metric's kind."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    p = rng.beta(4, 1.5, cases)[:, None]
    binary = ((rng.random((cases, trials)) < p).astype(float),
              (rng.random((cases, trials)) < np.minimum(p + 0.01, 1)).astype(float), "binary")
    base = rng.lognormal(0.0, 0.4, cases)[:, None]
    latency = (base * rng.lognormal(0.0, 0.15, (cases, trials)),
               0.98 * base * rng.lognormal(0.0, 0.15, (cases, trials)), "continuous")
    return {"action_accuracy": binary, "latency_s": latency}


def project(metric: str, champion: Any, challenger: Any, ids: list[str], kind: str) -> Any:
    from factory_pipelines.lib.evals.paired import compare

    return compare(metric, champion, challenger, ids, TOLERANCE, kind=kind,  # type: ignore[arg-type]
                   higher_is_better=kind == "binary")


def bare(champion: Any, challenger: Any, kind: str, batch: int | None) -> tuple[float, float, float | None]:
    """SciPy alone: the paired bootstrap of the difference of case means, McNemar for a binary metric."""
    import numpy as np
    from scipy import stats

    a, b = champion.mean(axis=1), challenger.mean(axis=1)
    result = stats.bootstrap((a, b), lambda x, y, axis: y.mean(axis) - x.mean(axis), paired=True, vectorized=True,
                             n_resamples=9999, method="percentile", rng=np.random.default_rng(0), batch=batch)
    p_value = None
    if kind == "binary":
        fixed, broken = int(((a <= 0.5) & (b > 0.5)).sum()), int(((a > 0.5) & (b <= 0.5)).sum())
        p_value = float(stats.binomtest(fixed, fixed + broken, 0.5).pvalue) if fixed + broken else 1.0
    return float(result.confidence_interval.low), float(result.confidence_interval.high), p_value


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure_metric(metric: str, champion: Any, challenger: Any, kind: str, ids: list[str], repeat: int,
                   scipy_default: bool) -> dict[str, Any]:
    from factory_pipelines.lib.evals.paired import BATCH_VALUES, DEFAULT_RESAMPLES

    batch = max(1, min(DEFAULT_RESAMPLES, BATCH_VALUES // len(ids)))
    sides = {"project": lambda: project(metric, champion, challenger, ids, kind),
             "bare": lambda: bare(champion, challenger, kind, batch)}
    _, mine = timed(sides["project"])  # warm-up, and the answers compared
    _, (low, high, p_value) = timed(sides["bare"])
    agree = abs(mine.low - low) < 1e-12 and abs(mine.high - high) < 1e-12 and (
        p_value is None or abs(mine.p_value - p_value) < 1e-12)
    print(f"\n[{metric}, {kind}] {len(ids):,} cases x {champion.shape[1]}/{challenger.shape[1]} trials: "
          f"{mine.describe()}")
    print(f"  bare SciPy: [{low:+.6g}, {high:+.6g}]" + (f", McNemar p={p_value:.3g}" if p_value is not None else "")
          + f"; same interval as the project: {agree}")
    if not agree:
        raise SystemExit(f"{metric}: the project and bare SciPy disagree; not measuring")
    seconds: dict[str, list[float]] = {"project": [], "bare": []}
    for r in range(repeat):
        for name in side_order(list(sides), r):
            seconds[name].append(timed(sides[name])[0])
    med = {name: median(values) for name, values in seconds.items()}
    ratio = med["project"] / med["bare"]
    print(f"  {repeat} runs per side, median: project {med['project']:.3f} s, bare {med['bare']:.3f} s (batches of "
          f"{batch} resamples), ratio {ratio:.2f}; goal under {GOAL_S:g} s -> {verdict(med['project'] < GOAL_S)}")
    out: dict[str, Any] = {"kind": kind, "cases": len(ids), "trials": champion.shape[1], "batch": batch,
                           "seconds": seconds, "median_s": med, "ratio": ratio, "interval": [mine.low, mine.high],
                           "difference": mine.difference, "p_value": mine.p_value, "fixed": len(mine.fixed),
                           "broken": len(mine.broken), "met": med["project"] < GOAL_S}
    if scipy_default:
        out["bare_scipy_default_batch_s"], _ = timed(lambda: bare(champion, challenger, kind, None))
        gb = 3 * len(ids) * 9999 * 8 / 1e9  # the indices and both resampled arrays
        print(f"  diagnostic: bare with SciPy's default batch (all resamples at once, ~{gb:.1f} GB): "
              f"{out['bare_scipy_default_batch_s']:.2f} s")
    return out


def whole_gate(cases: int, trials: int) -> dict[str, Any]:
    """Diagnostic: `judge` over the support suite's tolerances at this size, one bootstrap per tolerance."""
    import numpy as np
    import yaml

    from factory_pipelines.lib.evals.promotion_gate import PAIRED_ON, SideScores, judge

    suite = yaml.safe_load((REPO_ROOT / "evals" / "suites" / "support_triage_golden.yaml").read_text())
    tolerances = {**suite["tolerances"], "cost_per_ticket_usd": 0.001}
    rng = np.random.default_rng(SEED)

    def side(shift: float) -> dict[str, Any]:
        scores = {}
        for metric in tolerances:
            metric = PAIRED_ON.get(metric, metric)
            if metric == "cost_usd":
                scores[metric] = rng.gamma(2.0, 0.001, (cases, trials))
            elif metric == "forbidden_actions":
                scores[metric] = (rng.random((cases, trials)) < 0.001).astype(float)
            else:
                p = rng.beta(4, 1.5, cases)[:, None]
                scores[metric] = (rng.random((cases, trials)) < np.minimum(p + shift, 1)).astype(float)
        scores["groundedness"][rng.random(cases) < 0.3] = np.nan  # applies to 70 % of the cases
        return scores

    champion, challenger = SideScores("champion", side(0.0), {}), SideScores("challenger", side(0.01), {})
    ids = [f"case-{i:05d}" for i in range(cases)]
    seconds, gate = timed(lambda: judge(champion, challenger, ids, thresholds={}, tolerances=tolerances, budgets={}))
    print(f"\n[the whole gate] promotion_gate.judge over the support suite's {len(tolerances)} tolerances "
          f"({', '.join(tolerances)}), {cases:,} cases x {trials} trials: {seconds:.2f} s, "
          f"{len(gate.comparisons)} paired comparisons ({seconds / max(len(gate.comparisons), 1):.2f} s each)")
    return {"seconds": seconds, "comparisons": len(gate.comparisons), "tolerances": sorted(tolerances)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side, order alternating")
    parser.add_argument("--no-scipy-default", action="store_true", help="skip the bare call at SciPy's default batch")
    args = parse_args(parser, cases=300, trials=3, repeat=1)
    home = isolated_home(NAME)  # nothing is written there; the settings must still not point at the repo
    try:
        _, info = isolated_settings(home, f"{NAME}: paired.compare vs bare scipy.stats.bootstrap (paired) + binomtest")
        run(args, info)
    finally:
        cleanup(home)


def run(args: argparse.Namespace, info: dict[str, Any]) -> None:
    ids = [f"case-{i:05d}" for i in range(args.cases)]
    metrics = {metric: measure_metric(metric, a, b, kind, ids, args.repeat, not args.no_scipy_default)
               for metric, (a, b, kind) in data(args.cases, args.trials).items()}
    gate = whole_gate(args.cases, args.trials)
    summary = [{"case": f"{metric} ({m['kind']}), {args.cases:,} cases x {args.trials} trials", "metric": "median time",
                "unit": "s", "project": m["median_s"]["project"], "bare": m["median_s"]["bare"], "ratio": m["ratio"],
                "goal": f"< {GOAL_S:g} s", "met": m["met"]} for metric, m in metrics.items()]
    summary.append({"case": f"whole gate, {gate['comparisons']} paired comparisons", "metric": "time", "unit": "s",
                    "project": gate["seconds"], "bare": 0, "ratio": None, "goal": "reported", "met": True})
    print("\nsummary")
    print_summary_rows(summary)
    write_result(NAME, {"machine": info, "cases": args.cases, "trials": args.trials, "repeat": args.repeat,
                        "seed": SEED, "metrics": metrics, "gate": gate, "summary": summary})


if __name__ == "__main__":
    main()
