"""Evaluating the golden set with MLflow bookkeeping vs the same agent on the same cases without it.

Setup (not timed): demo landing files and labels for the default date range (2026-11-01..07, as `make run`) in a
temporary FACTORY_HOME, the data plane job for each day and the models job once, in process: prompts in the
MLflow Prompt Registry, the ticket classifier trained on the first 4 days and registered as champion. Then what `factory eval support_triage` builds, with its own helpers
(`factory_pipelines.defs.evals.assets`: `suite_of`, `configuration`, `suite_parts`): the manifest as shipped
(first pass, the local model below its confidence threshold), its golden suite and dataset, the champion
configuration (prompt and classifier at alias `champion`, the real local model), the Cedar governance, the
suite's scratch world and scorers. The dataset version is registered as an MLflow evaluation dataset once
(timed, reported: it happens once per dataset version, not per evaluation).

Project: `evaluate_logged(cases, champion, ...)`, what `factory eval` runs per side: the agent decides every
case inside the configuration's LoggedModel (each case in its own trace, as always), then the MLflow
evaluation run (`tracking.evaluate_outputs`): the code scorers through `mlflow.genai.evaluate` on the agent's
own traces (one CODE assessment per scorer and case), the run linked to the dataset version and the LoggedModel,
`<scorer>/mean` and the suite metrics on the run.
Bare: `evaluate(cases, champion, ...)`: the same agent, configuration and cases, the same scorers and suite
metrics, no evaluation bookkeeping (the agent traces each case either way).

Each side is warmed up on 3 cases (model load, imports; the first `mlflow.genai.evaluate` of a process imports
`databricks.sdk`: reported); then --repeat runs of each side on the cases, the side going first alternating;
median wall time. Goal: project / bare <= 1.2. Printed: where the project's time goes (the agent, the
LoggedModel lookup, the MLflow evaluation run), the CPU seconds of each side and of other processes meanwhile.
Checks: both sides scored every case alike (same decisions); the logged run has one trace per case, each with
one CODE assessment per scorer that applied and one expectation, the dataset version and the LoggedModel as
its inputs, `<scorer>/mean` and the suite metrics.

Smoke run (`--smoke`): 4 demo days of 20 tickets, 4 cases, one repeat, and the scripted stand-in for
llama.cpp's server (`agent_model.ScriptedServer`) as the champion's model; no goal is judged.

    .venv/bin/python -m benchmarks.eval_overhead [--cases N] [--repeat N] [--mlflow-defaults] [--smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
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
    smoke,
    verdict,
    write_result,
)
from benchmarks.agent_model import local_provider
from benchmarks.agent_workload import build_data, measured, model_dir

NAME = "eval_overhead"
GOAL = 1.2  # evaluate_logged wall time / evaluate wall time, at most
AGENT = "support_triage"
SMOKE_DAYS = 4  # one day to train the classifier on, three held out
SMOKE_DEMO = {"FACTORY_DEMO_TICKETS_PER_DAY": "20", "FACTORY_DEMO_CUSTOMERS": "30"}
WARMUP_CASES = 3
DEFAULT_CASES = 51  # every sixth golden case: demo tickets and hand-written edges alike (all 306: --cases 0)
BUSY_SHARE = 0.1  # other processes using more than this share of a core during a timed side: say so


@dataclasses.dataclass
class Suite:
    """What both sides evaluate with, built as `factory eval` builds it."""

    settings: Any
    resources: dict[str, Any]
    manifest: Any
    suite: Any
    dataset: Any
    champion: Any
    cases: list[dict[str, Any]]
    governance: Any
    new_world: Callable[[], Any]
    scorers: dict[str, Any]
    experiment_id: str
    registered: Any
    register_s: float
    tags: dict[str, str]


def build_suite(settings: Any, n_cases: int | None) -> Suite:
    """The champion configuration, governance, world and scorers of the agent's suite, and its registered dataset."""
    from factory_pipelines.defs.evals.assets import configuration, experiment_name, suite_of, suite_parts
    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.lib.evals.evaluate import register_cases

    resources = build_resources(settings)
    import mlflow  # noqa: F401 (importing it configures its loggers: quiet them after, as `factory eval` does)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    experiment_id = resources["tracking"].activate(experiment_name(AGENT))
    manifest, suite, dataset = suite_of(settings, AGENT)
    if smoke():  # no GGUF to assemble: the model is the scripted stand-in below
        from factory_pipelines.resources import llm

        llm.local_model_path = lambda folder: Path(folder) / "scripted-smoke-run.gguf"
    champion = configuration(settings, resources["tracking"], resources["llm"], manifest, "champion", None, None)
    if smoke():  # the scripted stand-in for llama.cpp's server, same request path
        provider = champion.provider
        champion = dataclasses.replace(champion, provider=local_provider()(
            provider.path, n_ctx=provider.n_ctx, threads=provider.threads, usd_per_cpu_second=provider.rate))
    cases = spread(dataset.records(), n_cases)
    governance, new_world, scorers = suite_parts(settings, manifest, suite, cases, champion)
    start = time.perf_counter()
    registered = register_cases(dataset.name, dataset.version, cases, experiment_id)
    register_s = time.perf_counter() - start
    print(f"suite {suite.name}: {len(cases)} of {len(dataset.records())} cases, dataset {dataset.version}, "
          f"{len(scorers)} scorers ({', '.join(scorers)}); champion {champion.params['prompt']}, first pass "
          f"{champion.params['first_pass']}, model {champion.params['model']}; dataset registered as "
          f"{registered.name} in {register_s:.2f} s (once per version)")
    tags = {"agent": AGENT, "suite": suite.name, "dataset_version": dataset.version}
    return Suite(settings, resources, manifest, suite, dataset, champion, cases, governance, new_world, scorers,
                 experiment_id, registered, register_s, tags)


def spread(records: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """`n` records evenly spaced over the file (the demo cases come first, the hand-written edges after), or all."""
    if not n or n >= len(records):
        return list(records)
    return [records[i * len(records) // n] for i in range(n)]


class Stopwatch:
    """Wall seconds spent in the tracking functions `evaluate_logged` calls, summed per name until `take()`."""

    NAMES = ("model_configuration", "evaluate_outputs", "evaluate_outputs_cpu")

    def __init__(self) -> None:
        from factory_pipelines.lib.evals import tracking

        self.seconds: dict[str, float] = dict.fromkeys(self.NAMES, 0.0)
        for name in self.NAMES[:2]:
            setattr(tracking, name, self._timed(name, getattr(tracking, name)))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), cpu_s()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.seconds[f"{name}_cpu"] = self.seconds.get(f"{name}_cpu", 0.0) + cpu_s() - cpu

        return timed

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, dict.fromkeys(self.NAMES, 0.0)
        return {k: v for k, v in taken.items() if k in self.NAMES}


def sides(s: Suite) -> dict[str, Callable[[list[dict[str, Any]]], Any]]:
    from factory_pipelines.lib.evals.evaluate import evaluate, evaluate_logged

    def bare(cases: list[dict[str, Any]]) -> Any:
        return evaluate(cases, s.champion, s.governance, s.new_world, s.scorers, trials=1,
                        trace_tags={**s.tags, "eval_side": s.champion.label})

    def project(cases: list[dict[str, Any]]) -> Any:
        return evaluate_logged(cases, s.champion, s.governance, s.new_world, s.scorers, trials=1,
                               dataset=s.registered, experiment_id=s.experiment_id, tags=s.tags)

    return {"project": project, "bare": bare}


def cpu_s() -> float:
    own = os.times()
    return own.user + own.system


def run_side(fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    """Wall and own CPU seconds of fn(), CPU seconds other processes used meanwhile, and its value."""
    cpu = cpu_s()
    wall, others, value = measured(fn)
    return {"wall_s": wall, "cpu_s": cpu_s() - cpu, "others_cpu_s": others}, value


def warm_up(s: Suite, run: dict[str, Callable[[list[dict[str, Any]]], Any]], watch: Stopwatch) -> dict[str, Any]:
    """Each side once on a few cases, not timed for the goal: model load, imports, the first MLflow evaluation."""
    cases = s.cases[:WARMUP_CASES]
    out = {}
    for name in ("bare", "project"):
        figures, _ = run_side(lambda name=name: run[name](cases))
        out[name] = {**figures, **(watch.take() if name == "project" else {})}
    print(f"\nwarm-up on {len(cases)} cases: bare {out['bare']['wall_s']:.2f} s (first agent run: model load, "
          f"imports, classifier), project {out['project']['wall_s']:.2f} s, of which the MLflow evaluation run "
          f"{out['project']['evaluate_outputs']:.2f} s (the first `mlflow.genai.evaluate` of a process imports "
          "databricks.sdk)")
    return out


def compare(s: Suite, run: dict[str, Callable[[list[dict[str, Any]]], Any]], watch: Stopwatch,
            repeat: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Any]]]:
    print(f"\n[evaluate_logged vs evaluate] {len(s.cases)} cases x 1 trial, {repeat} run(s) per side, order "
          "alternating")
    runs: dict[str, list[dict[str, Any]]] = {"project": [], "bare": []}
    results: dict[str, list[Any]] = {"project": [], "bare": []}
    for r in range(repeat):
        for name in side_order(("project", "bare"), r):
            watch.take()
            figures, value = run_side(lambda name=name: run[name](s.cases))
            if name == "project":
                figures |= watch.take()
                figures["agent_s"] = figures["wall_s"] - figures["evaluate_outputs"] - figures["model_configuration"]
            runs[name].append({"repeat": r, **figures})
            results[name].append(value)
            extra = (f" (agent {figures['agent_s']:.2f} s, LoggedModel {figures['model_configuration']:.2f} s, "
                     f"MLflow evaluation run {figures['evaluate_outputs']:.2f} s)" if name == "project" else "")
            print(f"  run {r} {name + ':':8} {figures['wall_s']:7.2f} s wall, {figures['cpu_s']:.2f} CPU s{extra}; "
                  f"other processes {figures['others_cpu_s']:.1f} CPU s")
    return runs, results


def check_logged(s: Suite, evaluation: Any, run_id: str) -> dict[str, Any]:
    """What the issue asks of the logged run, read back from the store."""
    import mlflow
    from mlflow.tracing.constant import AssessmentMetadataKey

    from factory_pipelines.lib.evals.tracking import EXPECTED

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    datasets = [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs]
    models = [m.model_id for m in run.inputs.model_inputs]
    traces = mlflow.search_traces(locations=[s.experiment_id], run_id=run_id, return_type="list")
    by_case = {t.info.trace_id: t for t in traces}
    assessed = expected_once = 0
    for k, outcome in enumerate(evaluation.outcomes):
        trace = by_case.get(outcome.trace_id)
        if trace is None:
            continue
        code = sorted(a.name for a in trace.info.assessments if a.source.source_type == "CODE"
                      and (a.metadata or {}).get(AssessmentMetadataKey.SOURCE_RUN_ID) == run_id)
        applied = sorted(n for n, values in evaluation.scores.items() if values[k] is not None)
        assessed += code == applied
        expected_once += [a.name for a in trace.info.assessments if a.expectation is not None] == [EXPECTED]
    means = {f"{n}/mean" for n, values in evaluation.scores.items() if any(v is not None for v in values)}
    checks = {
        "traces_linked": len(traces), "cases": len(evaluation.outcomes),
        "agent_traces": sorted(by_case) == sorted(o.trace_id for o in evaluation.outcomes),
        "cases_with_one_code_assessment_per_scorer": assessed, "cases_with_one_expectation": expected_once,
        "dataset_input": datasets == [(s.registered.name, s.registered.digest)],
        "model_input": len(models) == 1 and models[0] == evaluation_model_id(s),
        "scorer_means": means <= set(run.data.metrics), "suite_metrics": set(evaluation.metrics) <= set(run.data.metrics),
    }
    checks["ok"] = (checks["agent_traces"] and assessed == expected_once == len(evaluation.outcomes) == len(traces)
                    and checks["dataset_input"] and checks["model_input"] and checks["scorer_means"]
                    and checks["suite_metrics"])
    return checks


def evaluation_model_id(s: Suite) -> str:
    from factory_pipelines.lib.evals.tracking import model_configuration

    params = s.champion.params
    return model_configuration(params["agent"], params, s.experiment_id)


def mlflow_defaults(s: Suite, run: dict[str, Callable[[list[dict[str, Any]]], Any]], watch: Stopwatch) -> dict[str, Any]:
    """Diagnostic: one project run with MLflow's own harness settings (ten workers, rate limits, the scorer's
    call in a thread with a timeout), to show what `EVALUATE_SETTINGS` and `timeout=0` buy."""
    from factory_pipelines.lib.evals import tracking

    settings, wrap = tracking.EVALUATE_SETTINGS, tracking._as_scorer

    def with_timeout(scorers: Any) -> Any:
        made = wrap(scorers)
        made.timeout = None  # MLflow's default: each call in a thread of its own, up to 300 s
        return made

    kept = {k: os.environ.pop(k) for k in settings if k in os.environ}  # set by the runs before (not restored)
    tracking.EVALUATE_SETTINGS, tracking._as_scorer = {}, with_timeout
    try:
        watch.take()
        figures, _ = run_side(lambda: run["project"](s.cases))
        figures |= watch.take()
    finally:
        tracking.EVALUATE_SETTINGS, tracking._as_scorer = settings, wrap
        os.environ.update(kept)
    print(f"  diagnostic, harness at MLflow's defaults: {figures['wall_s']:.2f} s wall, MLflow evaluation run "
          f"{figures['evaluate_outputs']:.2f} s")
    return figures


def decisions(evaluation: Any) -> list[tuple]:
    """What the agent decided and did per case (latency and cost differ from run to run, the rest must not)."""
    return [(o.case_id, o.status, json.dumps(o.decision, sort_keys=True), json.dumps(o.tool_calls), o.reply, o.cited)
            for o in evaluation.outcomes]


def report(s: Suite, runs: dict[str, list[dict[str, Any]]], results: dict[str, list[Any]],
           checks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    med = {name: median([r["wall_s"] for r in rs]) for name, rs in runs.items()}
    parts = {key: median([r[key] for r in runs["project"]]) for key in
             ("agent_s", "model_configuration", "evaluate_outputs", "evaluate_outputs_cpu", "cpu_s")}
    bare_cpu = median([r["cpu_s"] for r in runs["bare"]])
    ratio = med["project"] / med["bare"]
    # The bookkeeping alone on top of the bare agent: the agent's own time varies from run to run far more than
    # the bookkeeping costs (llama.cpp: the same 20 requests took 6 to 32 CPU seconds), see the README.
    added = (med["bare"] + parts["model_configuration"] + parts["evaluate_outputs"]) / med["bare"]
    cpu_ratio = parts["cpu_s"] / bare_cpu if bare_cpu else float("nan")
    first = decisions(results["bare"][0])
    same = all(decisions(e) == first for e in [*results["bare"], *(ev for ev, _ in results["project"])])
    busy = [f"{name} run {r['repeat']}" for name, rs in runs.items() for r in rs
            if r["others_cpu_s"] > BUSY_SHARE * r["wall_s"]]
    n = len(s.cases)
    print(f"  project median {med['project']:.2f} s, bare median {med['bare']:.2f} s, ratio {ratio:.3f} "
          f"(goal <= {GOAL}) -> {verdict(ratio <= GOAL)}; CPU seconds {parts['cpu_s']:.2f} vs {bare_cpu:.2f} "
          f"({cpu_ratio:.3f}); the bare median plus the project's bookkeeping (LoggedModel, evaluation run): "
          f"{added:.3f}")
    print("  where the project's time goes (median):")
    print(f"    {parts['agent_s']:7.2f} s  the agent deciding the cases (bare median: {med['bare']:.2f} s)")
    print(f"    {parts['model_configuration']:7.2f} s  the configuration's LoggedModel (search, or create once)")
    print(f"    {parts['evaluate_outputs']:7.2f} s  the MLflow evaluation run: {parts['evaluate_outputs'] / n * 1000:.1f} "
          f"ms a case, {parts['evaluate_outputs_cpu'] / n * 1000:.1f} ms of CPU (trace search, {len(s.scorers)} "
          "scorers, an assessment per scorer and one expectation, link, trace re-read, metrics)")
    print(f"  same decisions on every run of both sides: {same}; logged run: {checks}")
    if busy:
        print(f"  WARNING: other processes used more than {BUSY_SHARE:.0%} of a core during {', '.join(busy)}: "
              "the figures are disturbed")
    case = {"cases": n, "median_s": med, "ratio": ratio, "cpu_ratio": cpu_ratio, "bookkeeping_ratio": added, "project_breakdown_median_s": parts,
            "bare_cpu_s": bare_cpu, "runs": runs, "same_decisions": same, "checks": checks, "disturbed": busy,
            "goal": GOAL, "met": ratio <= GOAL}
    row = {"case": f"golden set, {n} cases x 1 trial", "metric": "median wall time", "unit": "s",
           "project": med["project"], "bare": med["bare"], "ratio": ratio, "goal": f"<= {GOAL}",
           "met": ratio <= GOAL and same and checks["ok"]}
    return case, row


def demo_factory(home: Path, title: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Settings in `home`, the model folder, and the demo data plane and models job over the default range (as
    `make run`; smoke: its first days, small): what the evaluation benchmarks start from."""
    if smoke():
        os.environ.update(SMOKE_DEMO)
    models_at, why = model_dir(home)
    os.environ["FACTORY_MODEL_DIR"] = str(models_at)
    settings, info = isolated_settings(home, title)
    print(f"model folder: {settings.model_dir} ({why})")
    days = [settings.start_date + timedelta(days=k)
            for k in range(SMOKE_DAYS if smoke() else (settings.end_date - settings.start_date).days + 1)]
    return settings, info, build_data(settings, days)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help="N golden cases evenly spaced over the "
                        f"file (default {DEFAULT_CASES}, every sixth; 0: all 306)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating which goes first")
    parser.add_argument("--mlflow-defaults", action="store_true", help="one more project run with MLflow's own "
                        "harness settings (diagnostic)")
    args = parse_args(parser, cases=4, repeat=1)
    home = isolated_home(NAME)
    try:
        settings, info, setup = demo_factory(home, f"{NAME}: evaluate_logged vs evaluate of the same agent")
        s = build_suite(settings, args.cases or None)
        run, watch = sides(s), Stopwatch()
        warm = warm_up(s, run, watch)
        runs, results = compare(s, run, watch, args.repeat)
        evaluation, run_id = results["project"][-1]
        checks = check_logged(s, evaluation, run_id)
        case, row = report(s, runs, results, checks)
        if args.mlflow_defaults:
            case["mlflow_defaults"] = mlflow_defaults(s, run, watch)
        summary = [row, {"case": "dataset version registered (once per version)", "metric": "time", "unit": "s",
                         "project": s.register_s, "bare": 0, "ratio": None, "goal": "reported", "met": True}]
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "agent": AGENT, "suite": s.suite.name, "dataset_version": s.dataset.version,
                            "champion": s.champion.params, **setup, "warmup": warm, "case": case, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
