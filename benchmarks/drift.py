"""Feature drift over 1,000,000 rows x 20 features: `lib.drift.features.feature_drift` vs the bare Evidently
calls on the same columns in the same run; then the nightly HTML report's generation, timed on its own.

Data (seeded, not timed): a reference and a current window of N rows each (default 1,000,000), 15 numeric
columns (normal, lognormal and integer counts; the current window shifted on every third) and 5 categorical
ones (string labels, 4 to 12 categories; two with a moved mix).

Project: `feature_drift(reference, current, config)`: per column the missing values dropped, Evidently's default
test chosen for the size (`get_stattest`: Wasserstein (normed) / Jensen-Shannon above 1,000 reference rows),
run, judged against the bounds, PSI on every numeric column, and the report's reference-vs-current shares.
Bare: per column what Evidently's own `ValueDrift` runs for it: `get_stattest(ref, cur, type, None)`, the test
called with its default threshold, and `psi_stat_test` on the numeric ones (no report, no judging, no plot
data). Both sides' values must agree exactly, or nothing is measured.

One warm-up of each side (and Evidently's import, seconds, outside the timing); --repeat timed runs each, the
order alternating; median seconds. Goal: project / bare at most 1.3.
Report: `report.write_report` of that night with 29 earlier nights (its trend), median of --repeat runs.

    .venv/bin/python -m benchmarks.drift [--rows N] [--repeat N] [--smoke]
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks import (
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    parse_args,
    print_summary_rows,
    side_order,
    timed,
    verdict,
    write_result,
)

NAME = "drift"
GOAL_RATIO = 1.3
SEED = 1306
NUMERIC, CATEGORICAL = 15, 5


def data(rows: int) -> tuple[Any, Any, list[str], list[str]]:
    """(reference, current, numeric columns, categorical columns), seeded."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    ref, cur = {}, {}
    numeric = [f"num_{i:02d}" for i in range(NUMERIC)]
    for i, name in enumerate(numeric):
        shift = 0.3 if i % 3 == 0 else 0.0
        draw = (lambda s: rng.normal(s, 1.0, rows), lambda s: rng.lognormal(s, 0.5, rows),
                lambda s: rng.poisson(3 + 3 * s, rows).astype(float))[i % 3]
        ref[name], cur[name] = draw(0.0), draw(shift)
    categorical = [f"cat_{i}" for i in range(CATEGORICAL)]
    for i, name in enumerate(categorical):
        labels = np.array([f"{name}_{k}" for k in range(4 + 2 * i)])
        p = np.linspace(1, 2, len(labels))
        q = p[::-1] if i < 2 else p
        ref[name] = labels[rng.choice(len(labels), rows, p=p / p.sum())]
        cur[name] = labels[rng.choice(len(labels), rows, p=q / q.sum())]
    return pd.DataFrame(ref), pd.DataFrame(cur), numeric, categorical


def project(reference: Any, current: Any, config: Any) -> list[Any]:
    from factory_pipelines.lib.drift.features import feature_drift

    return feature_drift(reference, current, config)


def bare(reference: Any, current: Any, numeric: list[str], categorical: list[str]) -> dict[str, float]:
    """Evidently alone, per column: its default test for the size, then PSI on the numeric ones."""
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    out = {}
    for columns, kind in ((numeric, ColumnType.Numerical), (categorical, ColumnType.Categorical)):
        for column in columns:
            ref, cur = reference[column], current[column]
            test = get_stattest(ref, cur, kind, None)
            out[f"{column}.{test.name}"] = float(test(ref, cur, kind, None).drift_score)
            if kind == ColumnType.Numerical:
                out[f"{column}.psi"] = float(psi_stat_test(ref, cur, kind, None).drift_score)
    return out


def report_time(results: list[Any], repeat: int, home: Path) -> tuple[float, int]:
    """Median seconds of writing the night's page with 29 earlier nights; the page's size in bytes."""
    import dataclasses

    from factory_pipelines.lib.drift.records import DriftRun, Window
    from factory_pipelines.lib.drift.report import write_report

    night = date(2026, 11, 6)

    def run_of(day: date, scale: float) -> DriftRun:
        moved = tuple(dataclasses.replace(r, value=r.value * scale) for r in results)
        return DriftRun("bench", day, Window(day - timedelta(days=14), day - timedelta(days=1)), Window(day, day), moved)

    history = [run_of(night - timedelta(days=d), 0.5 + 0.01 * d) for d in range(1, 30)]
    tonight = run_of(night, 1.0)
    path = home / "report.html"
    seconds = [timed(lambda: write_report(tonight, path, history))[0] for _ in range(max(repeat, 1))]
    return median(seconds), path.stat().st_size


def run(args: argparse.Namespace, info: dict[str, Any], home: Path) -> None:
    from factory_pipelines.lib.drift.config import DriftConfig
    from factory_pipelines.lib.drift.engine import evidently

    import_s, _ = timed(evidently)
    reference, current, numeric, categorical = data(args.rows)
    config = DriftConfig.model_validate({"agent": "bench", "features": {
        "table": "bench", "numeric": numeric, "categorical": categorical}})
    sides = {"project": lambda: project(reference, current, config),
             "bare": lambda: bare(reference, current, numeric, categorical)}
    _, mine = timed(sides["project"])
    _, theirs = timed(sides["bare"])
    values = {f"{r.column}.{r.method}": r.value for r in mine}
    if values != theirs:
        raise SystemExit(f"the project and bare Evidently disagree: {set(values.items()) ^ set(theirs.items())}")
    drifted = sorted({r.column for r in mine if r.status == "error"})
    print(f"\n{args.rows:,} rows per window x {NUMERIC + CATEGORICAL} features, {len(mine)} records, same values "
          f"as bare Evidently; error-level columns: {drifted} (Evidently imported in {import_s:.1f} s, not timed)")
    seconds: dict[str, list[float]] = {"project": [], "bare": []}
    for r in range(args.repeat):
        for name in side_order(list(sides), r):
            seconds[name].append(timed(sides[name])[0])
    med = {name: median(v) for name, v in seconds.items()}
    ratio = med["project"] / med["bare"]
    print(f"  {args.repeat} runs per side, median: project {med['project']:.3f} s, bare {med['bare']:.3f} s, "
          f"ratio {ratio:.3f}; goal <= {GOAL_RATIO} -> {verdict(ratio <= GOAL_RATIO)}")
    report_s, size = report_time(mine, args.repeat, home)
    print(f"  report: {len(mine)} records, 30 nights of trend, {size / 1024:.0f} KiB, written in {report_s:.3f} s")
    summary = [{"case": f"feature drift, {args.rows:,} rows x {NUMERIC + CATEGORICAL} features", "metric": "median time",
                "unit": "s", "project": med["project"], "bare": med["bare"], "ratio": ratio,
                "goal": f"ratio <= {GOAL_RATIO}", "met": ratio <= GOAL_RATIO},
               {"case": f"HTML report, {len(mine)} records x 30 nights", "metric": "time", "unit": "s",
                "project": report_s, "bare": 0, "ratio": None, "goal": "reported", "met": True}]
    print("\nsummary")
    print_summary_rows(summary)
    write_result(NAME, {"machine": info, "rows": args.rows, "repeat": args.repeat, "seed": SEED,
                        "seconds": seconds, "median_s": med, "ratio": ratio, "report_s": report_s,
                        "report_bytes": size, "evidently_import_s": import_s, "summary": summary})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per window")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side, order alternating")
    args = parse_args(parser, rows=5000, repeat=1)
    home = isolated_home(NAME)
    try:
        _, info = isolated_settings(home, f"{NAME}: feature_drift vs bare Evidently stattests")
        run(args, info, home)
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
