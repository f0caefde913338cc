"""The support agent on N demo tickets vs a bare loop calling the same model binding with the same prompts.

Setup (not timed): demo landing files (and their labels) for 5 days in a temporary FACTORY_HOME, the data
plane job for each day and the models job once, in process (`factory_pipelines.runs.run_partitions`):
Feast online store, prompts in the MLflow Prompt Registry, the ticket classifier registered as champion
(trained on 2 days, 3 held out). The GGUF is assembled once into a persistent folder (FACTORY_MODEL_DIR
if set, else the repo's `.factory/models` if it exists, else the temporary home).

Model load: the first `LocalProvider.server` access loads llama.cpp (timed); a second access, from a new
provider, is a hit of the `_local_server` cache; at the end that cache must show one load for the process.

Project: `run_agent` of `factory_pipelines.defs.agents.assets`, what the `agents/support_triage` asset
runs, without Dagster: prompt and first pass resolved from MLflow, context tools, first pass, rules, the
model, reply, actions through the toolbox, decision rows, one MLflow trace per ticket. The manifest is
`support_triage` with `decision.model_below_confidence = 1.01` (every ticket asks the model), the
response cache is off, and the day's ticket query gets `LIMIT N OFFSET k*N`: repeat k decides its own
block of N tickets. Its provider is the `LocalProvider` the `LLMResource` builds (the process's one
llama.cpp server), subclassed to record every request.
Bare: the same requests as `LocalProvider.chat` turns them into request bodies (`grammar` from
`compact_grammar`), in a plain loop over `handle_chat_completions` of a second llama.cpp server built
with the same parameters (`_local_server.__wrapped__`): no tools, no tracing, no database.

Why a block per repeat and a server per side: llama.cpp's server keeps the states of past prompts in RAM
(`cache_ram_mib`, 8 GiB by default) and reuses them for a prompt it has seen, so a side replaying
prompts another side (or an earlier repeat) already sent on the same server skips prompt processing,
about half of a call. Here every prompt is new to the server that answers it, as on a real day. The bare
side's requests come from a dry run of the agent over the same blocks (a provider that records and
answers without the model; prompts do not depend on earlier answers), checked afterwards to equal
the requests of the measured run. Both sides must get the same answers, and the agent's decision rows
must be identical when block 0 is decided again at the end (temperature 0, fixed seed).

Each side is warmed up on 3 tickets of another day; repeats (2 by default) alternate which side goes
first; median wall time. The CPU time other processes used during each timed side is reported (the VM
is shared; llama.cpp with 2 threads on 2 cores slows down several times when a core is taken).
Goal: project / bare <= 1.15.

Throughput (no bare counterpart, reported): the unchanged `support_triage` manifest (classifier first,
the model only for fields it is not sure of), response cache off, on a full demo day: tickets per
second and model calls.

The setup and the agent runs are in `agent_workload.py`; the recording providers, the bare loop and the
scripted server in `agent_model.py`.

Smoke run (`--smoke`): 4 demo days of 20 tickets, blocks of 2 tickets, one repeat, and a scripted stand-in
for llama.cpp's server (`ScriptedServer`: the first value each field of the request's schema allows) on
both sides, so the whole agent path runs in seconds without the model; no goal is judged.

    .venv/bin/python -m benchmarks.agent_run [--tickets N] [--repeat N] [--no-throughput] [--smoke]
"""

from __future__ import annotations

import argparse
import os
from datetime import date, timedelta
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
    timed,
    verdict,
    write_result,
)
from benchmarks.agent_model import SCRIPTED, answers_of, bare_loop, bodies_of, providers, requests_of
from benchmarks.agent_workload import (
    AGENT,
    ALWAYS_ASK,
    Bench,
    breakdown,
    build_data,
    decisions,
    forget_effects,
    measured,
    model_dir,
    prepare,
    row_differences,
)

NAME = "agent_run"
GOAL = 1.15  # project wall time / bare wall time, at most
FIRST_DAY = date(2026, 11, 1)
N_DAYS = 5  # more labelled days than holdout_days (3); the last three are held out from training
SMOKE_DAYS = 4  # one day to train on
WARMUP_TICKETS = 3
SMOKE_DEMO = {"FACTORY_DEMO_TICKETS_PER_DAY": "20", "FACTORY_DEMO_CUSTOMERS": "30"}
BUSY_SHARE = 0.1  # other processes using more than this share of a core during a timed side: say so


def model_load(bench: Bench) -> dict[str, Any]:
    """The first `LocalProvider.server` access (llama.cpp loads the model), a second one (a cache hit), and the
    bare side's own server with the same parameters, outside the cache."""
    from factory_pipelines.lib.agents.models.providers import _local_server

    llm, path, base = bench.resources["llm"], bench.path, bench.base
    before = _local_server.cache_info()

    def server_of_a_new_provider() -> Any:
        return base(path, n_ctx=llm.context_window, threads=llm.threads).server

    seconds = {}
    seconds["load_s"], server = timed(server_of_a_new_provider)
    seconds["second_access_s"], again = timed(server_of_a_new_provider)
    seconds["bare_server_load_s"], bare = timed(
        lambda: SCRIPTED if smoke() else _local_server.__wrapped__(str(path), llm.context_window, llm.threads))
    size = f"{path.stat().st_size / 2**20:.0f} MiB" if path.exists() else "not assembled: scripted server (smoke run)"
    print(f"\nmodel: {path.name} ({size}; GGUF ready in {bench.assemble_s:.2f} s)")
    print(f"  first LocalProvider.server access (llama.cpp loads the model): {seconds['load_s']:.3f} s; cache "
          f"before: {before}")
    print(f"  second access, from a new LocalProvider: {seconds['second_access_s'] * 1e6:.0f} us, same server: "
          f"{again is server}; cache after: {_local_server.cache_info()}")
    print(f"  the bare side's own server (same parameters, outside the cache): loaded in "
          f"{seconds['bare_server_load_s']:.3f} s")
    return {"server": bare, "before": before, "assemble_s": bench.assemble_s, **seconds}


def warm_up(bench: Bench, bare_server: Any, recording: type) -> dict[str, Any]:
    """Each side once, not timed: imports of the agent path, the classifier from MLflow, first calls."""
    calls: list[dict[str, Any]] = []
    seconds, _, report = bench.run(bench.always, bench.warmup_day, recording, calls, "bench-warmup", WARMUP_TICKETS)
    bare_s, _, responses = measured(lambda: bare_loop(bare_server, bodies_of(bench.base, calls)))
    print(f"\nwarm-up on {report.tickets} tickets of {bench.warmup_day}: agent {seconds:.2f} s (first agent run of "
          f"the process: imports, classifier load), bare {bare_s:.2f} s; same answers: "
          f"{answers_of(responses) == [c['content'] for c in calls]}")
    return {"day": bench.warmup_day, "tickets": report.tickets, "seconds": seconds, "bare_seconds": bare_s}


def dry_runs(bench: Bench, dry: type, n: int, repeat: int) -> list[list[dict[str, Any]]]:
    """The requests of each block of N tickets, from a dry run of the agent (no model); the day's effects are
    undone afterwards, so the measured runs act as first runs."""
    blocks: list[list[dict[str, Any]]] = []
    seconds = 0.0
    for k in range(repeat):
        calls: list[dict[str, Any]] = []
        s, _, report = bench.run(bench.always, bench.compare_day, dry, calls, f"bench-dry-{k}", n, k * n)
        if report.tickets < n:
            raise SystemExit(f"{bench.compare_day} has {k * n + report.tickets} tickets, fewer than --tickets "
                             f"{n} x --repeat {repeat}")
        blocks.append(calls)
        seconds += s
    forget_effects(bench.resources, bench.compare_day)
    print(f"dry runs (requests recorded, no model): {repeat} x {n} tickets of {bench.compare_day} in {seconds:.2f} s, "
          f"{sum(map(len, blocks))} model requests")
    return blocks


def compare_sides(bench: Bench, bare_server: Any, recording: type, dry: list[list[dict[str, Any]]],
                  n: int) -> dict[str, Any]:
    """Agent vs bare: block k of N tickets on each side, each prompt new to the server that answers it, the side
    going first alternating."""
    print(f"\n[agent vs bare] {AGENT} with model_below_confidence={ALWAYS_ASK}, response cache off, "
          f"{len(dry)} block(s) of {n} tickets of {bench.compare_day}, order alternating")
    runs: dict[str, list[dict[str, Any]]] = {"project": [], "bare": []}
    out: dict[str, Any] = {"runs": runs, "project_calls": [], "bare_answers": [], "block0_rows": []}
    for k in range(len(dry)):
        for side in side_order(("project", "bare"), k):
            if side == "project":
                calls: list[dict[str, Any]] = []
                seconds, others, report = bench.run(bench.always, bench.compare_day, recording, calls,
                                                    f"bench-compare-{k}", n, k * n)
                if k == 0:
                    out["block0_rows"] = decisions(bench.resources, bench.compare_day)
                out["project_calls"].append(calls)
                runs["project"].append({"block": k, "tickets": report.tickets, "model_calls": report.model_calls,
                                        "others_cpu_s": others, **breakdown(seconds, report, calls)})
                print(f"  block {k} project: {report.tickets} tickets, {report.model_calls} model calls, "
                      f"{seconds:.2f} s (in the binding {runs['project'][-1]['binding_s']:.2f} s); "
                      f"other processes {others:.1f} CPU s")
            else:
                bodies = bodies_of(bench.base, dry[k])
                seconds, others, responses = measured(lambda bodies=bodies: bare_loop(bare_server, bodies))
                out["bare_answers"].append(answers_of(responses))
                runs["bare"].append({"block": k, "calls": len(bodies), "wall_s": seconds, "others_cpu_s": others})
                print(f"  block {k} bare:    {len(bodies)} calls to handle_chat_completions, {seconds:.2f} s; "
                      f"other processes {others:.1f} CPU s")
    return out


def decided_again(bench: Bench, recording: type, dry: list[list[dict[str, Any]]], compared: dict[str, Any],
                  n: int) -> dict[str, Any]:
    """Checks: the measured requests are the dry run's, both sides answered alike, and block 0's decision rows
    are the same when it is decided again."""
    calls = compared["project_calls"]
    checks: dict[str, Any] = {
        "requests_identical": all(requests_of(calls[k]) == requests_of(dry[k]) for k in range(len(dry))),
        "answers_identical": all([c["content"] for c in calls[k]] == compared["bare_answers"][k]
                                 for k in range(len(dry)))}
    forget_effects(bench.resources, bench.compare_day)
    again: list[dict[str, Any]] = []
    seconds, _, _ = bench.run(bench.always, bench.compare_day, recording, again, "bench-check", n, 0)
    rows_again = decisions(bench.resources, bench.compare_day)
    checks["decision_rows_identical"] = rows_again == compared["block0_rows"]
    checks["decision_row_differences"] = row_differences(compared["block0_rows"], rows_again)
    checks["answers_identical_decided_again"] = [c["content"] for c in again] == [c["content"] for c in calls[0]]
    checks["check_run"] = {"seconds": seconds, "binding_s": sum(c["binding_s"] for c in again)}
    return checks


def report_compare(compared: dict[str, Any], checks: dict[str, Any], n: int, day: str) -> tuple[dict[str, Any],
                                                                                                 dict[str, Any]]:
    """The comparison's figures and checks printed; its case and summary row."""
    runs = compared["runs"]
    project_med = median([r["wall_s"] for r in runs["project"]])
    bare_med = median([r["wall_s"] for r in runs["bare"]])
    ratio = project_med / bare_med if bare_med else float("nan")
    parts = {key: median([r[key] for r in runs["project"]]) for key in runs["project"][0] if key.endswith("_s")}
    busy = [f"{side} block {r['block']}" for side, rs in runs.items() for r in rs
            if r["others_cpu_s"] > BUSY_SHARE * r["wall_s"]]
    per_block = [p["wall_s"] / b["wall_s"] if b["wall_s"] else float("nan")
                 for p, b in zip(runs["project"], runs["bare"], strict=True)]
    print(f"  project median {project_med:.2f} s, bare median {bare_med:.2f} s, ratio {ratio:.3f} "
          f"(goal <= {GOAL}) -> {verdict(ratio <= GOAL)}; per block {', '.join(f'{r:.3f}' for r in per_block)}")
    print(f"  requests of the measured runs = the dry runs': {checks['requests_identical']}; bare answers = the "
          f"agent's: {checks['answers_identical']}; decision rows of block 0 identical when decided again: "
          f"{checks['decision_rows_identical']} (that run took {checks['check_run']['seconds']:.2f} s, "
          f"{checks['check_run']['binding_s']:.2f} s in the binding with every prompt in llama.cpp's prompt cache)")
    if not checks["decision_rows_identical"]:
        print(f"  decided again, the model's answers were "
              f"{'the same' if checks['answers_identical_decided_again'] else 'NOT the same'}; rows that differ: "
              f"{checks['decision_row_differences']}. The second time every prompt was in llama.cpp's prompt cache "
              "(restored, only its last tokens evaluated again): a cached prompt can get another answer than a "
              "fresh one at temperature 0")
    if busy:
        print(f"  WARNING: other processes used more than {BUSY_SHARE:.0%} of a core during {', '.join(busy)}: "
              "the figures are disturbed")
    print_breakdown(parts, bare_med)
    first = runs["project"][0]
    case = {"day": day, "tickets_per_block": n, "blocks": len(runs["project"]), "model_calls": first["model_calls"],
            "model_below_confidence": ALWAYS_ASK, "runs": runs, "median_s": {"project": project_med, "bare": bare_med},
            "project_breakdown_median_s": parts, "ratio": ratio, "goal": GOAL, "met": ratio <= GOAL,
            **checks, "ratio_per_block": per_block, "disturbed": busy}
    row = {"case": f"{n} tickets, model asked for each ({first['model_calls']} calls)", "metric": "median wall time",
           "unit": "s", "project": project_med, "bare": bare_med, "ratio": ratio, "goal": f"<= {GOAL}",
           "met": ratio <= GOAL}
    return case, row


def print_breakdown(parts: dict[str, float], bare_median: float) -> None:
    print("  where the project's time goes (median):")
    for key, label in (("outside_ticket_loop_s", "outside the ticket loop: resolve prompt and first pass, read "
                                                   "tickets, KB index, first-pass batch, write rows, flush traces"),
                       ("tickets_without_model_s", "in the ticket loop, outside the provider: tools, rules, "
                                                     "reply, actions, spans"),
                       ("provider_overhead_s", "in LocalProvider.chat, outside the binding: grammar, schema check"),
                       ("binding_s", "in handle_chat_completions")):
        print(f"    {parts[key]:7.2f} s  {label}")
    print(f"  bare median minus the agent's median time in the binding: {bare_median - parts['binding_s']:+.2f} s")


def throughput(bench: Bench, recording: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest as declared (classifier first, the model only for fields it is not sure of) on a full day."""
    calls: list[dict[str, Any]] = []
    day, manifest = bench.throughput_day, bench.manifest
    seconds, others, report = bench.run(manifest, day, recording, calls, "bench-throughput")
    per_s = report.tickets / seconds
    loop_per_s = report.tickets / report.wall_s if report.wall_s else 0.0
    parts = breakdown(seconds, report, calls)
    tickets = max(report.tickets, 1)
    print(f"\n[throughput] {AGENT} as declared (first pass, model below confidence "
          f"{manifest.decision.model_below_confidence}), response cache off, {day}: {report.tickets} tickets in "
          f"{seconds:.2f} s -> {per_s:.2f} tickets/s (the ticket loop alone, as the asset's metadata reports it: "
          f"{loop_per_s:.2f} tickets/s); other processes {others:.1f} CPU s")
    print(f"  model calls {report.model_calls} (for {report.model_calls / tickets:.0%} of the tickets), "
          f"{parts['binding_s']:.2f} s in the binding, {parts['tickets_without_model_s']:.2f} s in the ticket loop "
          f"outside the provider ({parts['tickets_without_model_s'] / tickets * 1000:.0f} ms a ticket), "
          f"{parts['outside_ticket_loop_s']:.2f} s outside the loop")
    print(f"  statuses {dict(report.statuses)}; actions {dict(report.actions)}; accuracy {report.accuracy}")
    case = {"day": day, "tickets": report.tickets, "model_calls": report.model_calls, "tickets_per_s": per_s,
            "ticket_loop_tickets_per_s": loop_per_s, "others_cpu_s": others, "statuses": dict(report.statuses),
            "actions": dict(report.actions), "accuracy": report.accuracy, "breakdown_s": parts}
    row = {"case": f"full day, {report.tickets} tickets ({report.model_calls} model calls)", "metric": "throughput",
           "unit": "tickets/s", "project": per_s, "bare": 0, "ratio": None, "goal": "reported", "met": True}
    return case, row


def loads_report(load: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """How many times the process loaded the model through LocalProvider (once is the goal)."""
    from factory_pipelines.lib.agents.models.providers import _local_server

    final = _local_server.cache_info()
    loads = final.misses - load["before"].misses
    print(f"\nmodel loads through LocalProvider in this process: {loads} ({final}); every agent run used that "
          "one server")
    case = {k: load[k] for k in ("load_s", "second_access_s", "assemble_s", "bare_server_load_s")} | {
        "loads": loads, "cache_info": final._asdict()}
    row = {"case": f"model load ({loads} in the process)", "metric": "load time", "unit": "s",
           "project": load["load_s"], "bare": load["bare_server_load_s"], "ratio": None, "goal": "once per process",
           "met": loads == 1}
    return case, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=30, help="tickets of each compared agent run (N)")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each side (one block of N tickets "
                        "each), alternating which goes first")
    parser.add_argument("--no-throughput", action="store_true", help="skip the full-day throughput run")
    args = parse_args(parser, tickets=2, repeat=1)
    days = [FIRST_DAY + timedelta(days=k) for k in range(SMOKE_DAYS if smoke() else N_DAYS)]
    if smoke():
        os.environ.update(SMOKE_DEMO)
    home = isolated_home(NAME)
    models_at, why = model_dir(home)
    os.environ["FACTORY_MODEL_DIR"] = str(models_at)
    try:
        settings, info = isolated_settings(home, f"{NAME}: the support agent vs bare llama.cpp calls")
        print(f"model folder: {settings.model_dir} ({why})")
        setup = build_data(settings, days)
        bench = prepare(settings, days)
        recording, dry = providers(bench.base)
        load = model_load(bench)
        warm = warm_up(bench, load["server"], recording)
        blocks = dry_runs(bench, dry, args.tickets, args.repeat)
        compared = compare_sides(bench, load["server"], recording, blocks, args.tickets)
        checks = decided_again(bench, recording, blocks, compared, args.tickets)
        cases: dict[str, Any] = {}
        cases["compare"], row = report_compare(compared, checks, args.tickets, bench.compare_day)
        summary = [row]
        if not args.no_throughput:
            cases["throughput"], row = throughput(bench, recording)
            summary.append(row)
        cases["model_load"], row = loads_report(load)
        summary.insert(1, row)
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "agent": AGENT, "model": bench.path.name, **setup, "warmup": warm,
                            "cases": cases, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
