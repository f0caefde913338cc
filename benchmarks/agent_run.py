"""The support agent on N demo tickets vs a bare loop calling the same model binding with the same prompts.

Setup (not timed): demo landing files (and their labels) for 5 days in a temporary FACTORY_HOME, the data
plane job for each day and the models job once, in process (`factory_pipelines.runs.run_partitions`):
Feast online store, prompts in the MLflow Prompt Registry, the ticket classifier registered as champion
(trained on 2 days, 3 held out). The GGUF is assembled once into a persistent folder (FACTORY_MODEL_DIR
if set, else the repo's `.factory/models` if it exists, else the temporary home).

Model load: the first `LocalProvider.server` access loads llama.cpp (timed); a second access is a cache
hit of `_local_server` (printed with its `cache_info()`); at the end the cache must show one load for the
whole process.

Project: `run_agent` of `factory_pipelines.defs.agents.assets` (what the `agents/support_triage` asset
runs, without Dagster): prompt and first pass resolved from MLflow, context tools, first pass, rules,
the model, reply, actions through the toolbox, decision rows, one MLflow trace per ticket. The manifest
is `support_triage` with `decision.model_below_confidence = 1.01` (every ticket asks the model), the
response cache is off, and only the first N tickets of the day are read (the day's SQL gets a LIMIT).
Its provider is the `LocalProvider` the `LLMResource` builds, subclassed to record every request.
Bare: the recorded requests, as `LocalProvider.chat` turns them into request bodies (grammar from
`compact_grammar`), sent in a plain loop to `server.handle_chat_completions` of the same llama.cpp
server: no tools, no tracing, no database. Both sides must get the same answers, and the agent's
decision rows must be identical from one repeat to the next (temperature 0, fixed seed).

Repeats (2 by default) alternate which side goes first; median wall time. Effects of the previous repeat
(outbox, refunds, replies, escalations of that day) are deleted between repeats, so every repeat is a
first run of the day. Goal: project / bare <= 1.15.

Throughput (no bare counterpart, reported): the unchanged `support_triage` manifest (classifier first,
the model only for fields it is not sure of), response cache off, on a full demo day: tickets per
second and model calls.

    .venv/bin/python -m benchmarks.agent_run [--tickets N] [--repeat N] [--no-throughput]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks import (
    REPO_ROOT,
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    print_summary_rows,
    verdict,
    write_result,
)

NAME = "agent_run"
GOAL = 1.15  # project wall time / bare wall time, at most
AGENT = "support_triage"
ALWAYS_ASK = 1.01  # decision.model_below_confidence above 1: every open field goes to the model
DAYS = [date(2026, 11, 1) + timedelta(days=k) for k in range(5)]  # > holdout_days (3) labelled days
WARMUP_DAY, COMPARE_DAY, THROUGHPUT_DAY = (d.isoformat() for d in DAYS[2:5])  # held-out days of the classifier
WARMUP_TICKETS = 3
DECISION_COLUMNS = ("ticket_id, status, category, priority, action, decision, decided_by, rules_fired, tool_calls, "
                    "reply, cited_passages, model_calls, tokens_in, tokens_out, truncated, error")
EFFECT_TABLES = ("refunds", "replies", "escalations")


def model_dir(home: Path) -> tuple[Path, str]:
    """Where the GGUF is assembled: FACTORY_MODEL_DIR, the repo's `.factory/models` when it exists, or the home."""
    if os.environ.get("FACTORY_MODEL_DIR"):
        return Path(os.environ["FACTORY_MODEL_DIR"]), "FACTORY_MODEL_DIR"
    repo_models = REPO_ROOT / ".factory" / "models"
    if repo_models.is_dir():
        return repo_models, "the repo's .factory/models (read only unless the GGUF is missing)"
    return home / "models", "the temporary home (assembled again on every run; set FACTORY_MODEL_DIR to keep it)"


def build_data(settings: Any) -> dict[str, Any]:
    """Demo files and labels for DAYS, the data plane for each day and the models job once, in process."""
    from factory_pipelines.instance import prepare_instance
    from factory_pipelines.lib.demo_data import write_demo_data
    from factory_pipelines.runs import run_partitions

    start = time.perf_counter()
    summary = write_demo_data(
        settings.landing_dir, DAYS[0], DAYS[-1], seed=settings.demo_seed, defect_rate=settings.demo_defect_rate,
        drift_date=settings.demo_drift_date, truth_dir=Path(settings.home) / "demo_truth",
        tickets_per_day=settings.demo_tickets_per_day, customers=settings.demo_customers,
    )
    prepare_instance(settings)
    data = run_partitions("data_plane_job", [d.isoformat() for d in DAYS])
    data_seconds = time.perf_counter() - start
    models = run_partitions("models_job", [None])
    seconds = time.perf_counter() - start
    for outcome in [*data, *models]:
        if not outcome.success:
            failed = [k for k, ok in outcome.checks.items() if not ok]
            raise SystemExit(f"setup run {outcome.partition or 'models_job'} failed: steps {outcome.failed_steps}, "
                             f"skipped {outcome.skipped_steps}, checks failed {failed}, error {outcome.error!r}")
    classifier = models[0].materialized.get("models/ticket_classifier", {})
    print(f"setup: demo data {summary.rows} ({settings.demo_tickets_per_day} tickets a day), data plane for "
          f"{len(DAYS)} days in {data_seconds:.1f} s, models job in {seconds - data_seconds:.1f} s "
          f"(classifier {classifier.get('model_uri', '?')}, holdout days {classifier.get('holdout_days')})")
    return {"demo_rows": summary.rows, "setup_seconds": seconds, "classifier": classifier.get("model_uri")}


def recording_llm(resource: Any, calls: list[dict[str, Any]]) -> Any:
    """What `run_agent` needs of an LLMResource (`provider(model)`): the real LocalProvider, recording requests."""
    from factory_pipelines.resources.llm import LocalProvider

    class RecordingProvider(LocalProvider):
        def chat(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 temperature: float = 0.0, seed: int = 7, max_tokens: int = 256) -> Any:
            call: dict[str, Any] = {"messages": messages, "schema": schema, "temperature": temperature, "seed": seed,
                                    "max_tokens": max_tokens, "content": None}
            calls.append(call)
            start = time.perf_counter()
            result = super().chat(messages, schema=schema, temperature=temperature, seed=seed, max_tokens=max_tokens)
            call |= {"content": result.content, "chat_s": time.perf_counter() - start, "binding_s": result.latency_s}
            return result

    class RecordingLLM:
        def provider(self, model: Any) -> Any:
            base = resource.provider(model)  # assembles the GGUF if missing; the server is the process's one
            if not isinstance(base, LocalProvider):
                raise SystemExit(f"{AGENT} does not use the local model ({model.provider}); nothing to compare")
            return RecordingProvider(Path(base.path), n_ctx=base.n_ctx, threads=base.threads,
                                     usd_per_cpu_second=base.rate)

    return RecordingLLM()


def run_project(settings: Any, resources: dict[str, Any], manifest: Any, day: str, tickets: int | None,
                calls: list[dict[str, Any]], run_id: str) -> tuple[float, Any]:
    """One agent run over the day (its first `tickets` tickets when given): wall seconds and the RunReport."""
    from factory_pipelines.defs.agents import assets

    context = SimpleNamespace(partition_key=day, run=SimpleNamespace(run_id=run_id))  # what run_agent reads of it
    sql = assets.TICKETS_SQL
    if tickets:
        assets.TICKETS_SQL = f"{sql.rstrip()}\nLIMIT {int(tickets)}"
    try:
        start = time.perf_counter()
        report = assets.run_agent(context, manifest, settings.manifests_dir / f"{AGENT}.yaml", resources["warehouse"],
                                  resources["feature_store"], resources["tracking"],
                                  recording_llm(resources["llm"], calls), settings.labels_dir, False)
        seconds = time.perf_counter() - start
    finally:
        assets.TICKETS_SQL = sql
    if report.errors:
        print(f"  {len(report.errors)} ticket(s) not decided: {report.errors[:3]}")
    return seconds, report


def bare_bodies(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request bodies `LocalProvider.chat` sends to the binding for the recorded calls."""
    from factory_pipelines.resources.llm import compact_grammar

    bodies = []
    for call in calls:
        body: dict[str, Any] = {"messages": call["messages"], "temperature": call["temperature"], "seed": call["seed"],
                                "max_tokens": call["max_tokens"]}
        if call["schema"] is not None:
            grammar = compact_grammar(call["schema"])
            if grammar is not None:
                body["grammar"] = grammar
            else:
                body["response_format"] = {"type": "json_object", "schema": call["schema"]}
        bodies.append(body)
    return bodies


def run_bare(server: Any, bodies: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """The same requests to the same llama.cpp server, in a plain loop."""
    start = time.perf_counter()
    responses = [server.handle_chat_completions(body) for body in bodies]
    seconds = time.perf_counter() - start
    errors = [r["error"] for r in responses if "error" in r]
    if errors:
        raise SystemExit(f"bare call failed: {errors[0]}")
    return seconds, [r["choices"][0]["message"]["content"] or "" for r in responses]


def decisions(resources: Any, day: str) -> list[tuple]:
    with resources["warehouse"].connect(read_only=True) as con:
        return con.execute(f"SELECT {DECISION_COLUMNS} FROM agents.decisions WHERE agent = ? AND partition = ? "
                           "ORDER BY ticket_id", [AGENT, day]).fetchall()


def forget_effects(resources: Any, day: str) -> int:
    """Delete the day's side effects and outbox rows of the agent, so the next run acts as a first run."""
    with resources["warehouse"].connect() as con:
        done = con.execute("SELECT count(*) FROM agents.outbox WHERE agent = ? AND partition = ?",
                           [AGENT, day]).fetchone()[0]
        for table in EFFECT_TABLES:
            con.execute(f"DELETE FROM agents.{table} WHERE agent = ? AND ticket_id IN (SELECT ticket_id FROM "
                        "agents.outbox WHERE agent = ? AND partition = ?)", [AGENT, AGENT, day])
        con.execute("DELETE FROM agents.outbox WHERE agent = ? AND partition = ?", [AGENT, day])
    return done


def breakdown(seconds: float, report: Any, calls: list[dict[str, Any]]) -> dict[str, float]:
    """Where one project run's time goes: outside the ticket loop, tickets without the model, provider, binding."""
    chat = sum(c.get("chat_s", 0.0) for c in calls)
    binding = sum(c.get("binding_s", 0.0) for c in calls)
    return {"wall_s": seconds, "ticket_loop_s": report.wall_s, "outside_ticket_loop_s": seconds - report.wall_s,
            "tickets_without_model_s": report.wall_s - chat, "provider_chat_s": chat, "binding_s": binding,
            "provider_overhead_s": chat - binding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=40, help="tickets of the compared agent run (N)")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each side, alternating the order")
    parser.add_argument("--no-throughput", action="store_true", help="skip the full-day throughput run")
    args = parser.parse_args()

    home = isolated_home(NAME)
    models_at, why = model_dir(home)
    os.environ["FACTORY_MODEL_DIR"] = str(models_at)
    try:
        settings, info = isolated_settings(home, f"{NAME}: the support agent vs bare llama.cpp calls")
        print(f"model folder: {settings.model_dir} ({why})")
        setup = build_data(settings)

        from factory_pipelines.defs.resources import build_resources
        from factory_pipelines.lib.manifests import load_manifest
        from factory_pipelines.resources.llm import LocalProvider, _local_server, local_model_path

        resources = build_resources(settings)
        manifest = load_manifest(settings.manifests_dir / f"{AGENT}.yaml")
        always = manifest.model_copy(update={"decision": manifest.decision.model_copy(
            update={"model_below_confidence": ALWAYS_ASK})})

        # Model load: once per process.
        start = time.perf_counter()
        path = local_model_path(Path(settings.model_dir))  # assembled from its package when missing
        assemble_s = time.perf_counter() - start
        llm = resources["llm"]
        provider = LocalProvider(path, n_ctx=llm.context_window, threads=llm.threads)
        before = _local_server.cache_info()
        start = time.perf_counter()
        server = provider.server
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        again = LocalProvider(path, n_ctx=llm.context_window, threads=llm.threads).server
        again_s = time.perf_counter() - start
        after = _local_server.cache_info()
        print(f"\nmodel: {path.name} ({path.stat().st_size / 2**20:.0f} MiB, GGUF ready in {assemble_s:.2f} s)")
        print(f"  first LocalProvider.server access (llama.cpp load): {load_s:.3f} s; cache before {before}")
        print(f"  second access, new LocalProvider: {again_s * 1e6:.1f} us, same server: {again is server}; "
              f"cache after {after}")

        # Warm-up (not timed): imports of the agent path, the classifier from MLflow, llama.cpp's first calls.
        calls: list[dict[str, Any]] = []
        warm_s, warm = run_project(settings, resources, always, WARMUP_DAY, WARMUP_TICKETS, calls, "bench-warmup")
        print(f"\nwarm-up: agent run on {warm.tickets} tickets of {WARMUP_DAY} in {warm_s:.2f} s "
              f"({warm.model_calls} model calls; first agent run of the process: imports, classifier load)")

        # Agent vs bare, same N tickets, same requests, same server.
        runs: dict[str, list[dict[str, Any]]] = {"project": [], "bare": []}
        reference_rows: list[tuple] | None = None
        reference_calls: list[dict[str, Any]] | None = None
        bodies: list[dict[str, Any]] = []
        same_rows, same_requests, same_answers = True, True, True

        def project_once(k: int) -> None:
            nonlocal reference_rows, reference_calls, bodies, same_rows, same_requests
            if k:
                forget_effects(resources, COMPARE_DAY)
            recorded: list[dict[str, Any]] = []
            seconds, report = run_project(settings, resources, always, COMPARE_DAY, args.tickets, recorded,
                                          f"bench-compare-{k}")
            rows = decisions(resources, COMPARE_DAY)
            requests = [(c["messages"], c["schema"], c["temperature"], c["seed"], c["max_tokens"]) for c in recorded]
            if reference_rows is None:
                reference_rows, reference_calls, bodies = rows, recorded, bare_bodies(recorded)
            else:
                same_rows &= rows == reference_rows
                same_requests &= requests == [(c["messages"], c["schema"], c["temperature"], c["seed"],
                                               c["max_tokens"]) for c in reference_calls]
            runs["project"].append({"tickets": report.tickets, "decided": report.statuses.get("decided", 0),
                                    "model_calls": report.model_calls, **breakdown(seconds, report, recorded)})
            print(f"  project: {report.tickets} tickets, {report.model_calls} model calls, {seconds:.2f} s "
                  f"(ticket loop {report.wall_s:.2f} s, in the binding {runs['project'][-1]['binding_s']:.2f} s)")

        def bare_once() -> None:
            nonlocal same_answers
            seconds, answers = run_bare(server, bodies)
            same_answers &= answers == [c["content"] for c in reference_calls or []]
            runs["bare"].append({"calls": len(bodies), "wall_s": seconds})
            print(f"  bare:    {len(bodies)} calls to handle_chat_completions, {seconds:.2f} s")

        print(f"\n[agent vs bare] {AGENT} with model_below_confidence={ALWAYS_ASK}, response cache off, first "
              f"{args.tickets} tickets of {COMPARE_DAY}; {args.repeat} repeat(s), order alternating")
        for k in range(args.repeat):  # project first in the first round: its run records the bare side's requests
            for side in (("project", "bare") if k % 2 == 0 else ("bare", "project")):
                if side == "project":
                    project_once(k)
                else:
                    bare_once()
        project_med = median([r["wall_s"] for r in runs["project"]])
        bare_med = median([r["wall_s"] for r in runs["bare"]])
        ratio = project_med / bare_med
        first = runs["project"][0]
        print(f"  project median {project_med:.2f} s, bare median {bare_med:.2f} s, ratio {ratio:.3f} "
              f"(goal <= {GOAL}) -> {verdict(ratio <= GOAL)}")
        print(f"  decision rows identical across repeats: {same_rows}; requests identical: {same_requests}; "
              f"bare answers identical to the agent's: {same_answers}")
        parts = {k: median([r[k] for r in runs["project"]]) for k in runs["project"][0] if k.endswith("_s")}
        print("  where the project's time goes (median):")
        for key, label in (("outside_ticket_loop_s", "outside the ticket loop (resolve prompt and first pass, "
                                                       "read tickets, KB index, write rows, flush traces)"),
                           ("tickets_without_model_s", "in the ticket loop, outside the provider (tools, "
                                                         "first pass, rules, reply, actions, spans)"),
                           ("provider_overhead_s", "in LocalProvider.chat, outside the binding (grammar, "
                                                     "schema check)"),
                           ("binding_s", "in handle_chat_completions")):
            print(f"    {parts[key]:7.2f} s  {label}")
        print(f"  bare median minus the agent's time in the binding: {bare_med - parts['binding_s']:+.2f} s")

        cases: dict[str, Any] = {
            "compare": {"day": COMPARE_DAY, "tickets": first["tickets"], "model_calls": first["model_calls"],
                        "model_below_confidence": ALWAYS_ASK, "runs": runs, "median_s": {"project": project_med,
                        "bare": bare_med}, "project_breakdown_median_s": parts, "ratio": ratio, "goal": GOAL,
                        "met": ratio <= GOAL, "decision_rows_identical": same_rows,
                        "requests_identical": same_requests, "answers_identical": same_answers},
        }
        summary = [{"case": f"{first['tickets']} tickets, model asked for each ({first['model_calls']} calls)",
                    "metric": "median wall time", "unit": "s", "project": project_med, "bare": bare_med,
                    "ratio": ratio, "goal": f"<= {GOAL}", "met": ratio <= GOAL}]

        # Throughput: the default manifest on a full demo day.
        if not args.no_throughput:
            recorded = []
            seconds, report = run_project(settings, resources, manifest, THROUGHPUT_DAY, None, recorded,
                                          "bench-throughput")
            per_s = report.tickets / seconds
            loop_per_s = report.tickets / report.wall_s if report.wall_s else 0.0
            parts_day = breakdown(seconds, report, recorded)
            print(f"\n[throughput] {AGENT} as declared (first pass, model below confidence "
                  f"{manifest.decision.model_below_confidence}), response cache off, {THROUGHPUT_DAY}: "
                  f"{report.tickets} tickets in {seconds:.2f} s -> {per_s:.2f} tickets/s "
                  f"(ticket loop alone {loop_per_s:.2f} tickets/s, as the asset's metadata reports it)")
            print(f"  model calls {report.model_calls} ({report.model_calls / max(report.tickets, 1):.0%} of the "
                  f"tickets), {parts_day['binding_s']:.2f} s in the binding; statuses {dict(report.statuses)}; "
                  f"actions {dict(report.actions)}; accuracy {report.accuracy}")
            cases["throughput"] = {"day": THROUGHPUT_DAY, "tickets": report.tickets, "model_calls": report.model_calls,
                                   "tickets_per_s": per_s, "ticket_loop_tickets_per_s": loop_per_s,
                                   "statuses": dict(report.statuses), "actions": dict(report.actions),
                                   "accuracy": report.accuracy, "breakdown_s": parts_day}
            summary.append({"case": f"full day, {report.tickets} tickets ({report.model_calls} model calls)",
                            "metric": "throughput", "unit": "tickets/s", "project": per_s, "bare": 0,
                            "ratio": None, "goal": "reported", "met": True})

        final = _local_server.cache_info()
        loads = final.misses - before.misses
        print(f"\nmodel loads in this process: {loads} (cache {final}); every agent run and the bare loop used "
              "the same llama.cpp server")
        cases["model_load"] = {"load_s": load_s, "second_access_s": again_s, "assemble_s": assemble_s,
                               "loads": loads, "cache_info": final._asdict()}
        summary.insert(1, {"case": f"model load ({loads} in the process)", "metric": "first access", "unit": "s",
                           "project": load_s, "bare": 0, "ratio": None, "goal": "once per process",
                           "met": loads == 1})

        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "agent": AGENT, "model": path.name, **setup,
                            "warmup": {"day": WARMUP_DAY, "tickets": warm.tickets, "seconds": warm_s},
                            "cases": cases, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
