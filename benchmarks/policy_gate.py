"""The policy gate: one `CedarGate.check` per tool call, and `PolicyEngine.decide_many` on a batch, vs bare cedarpy.

Setup (not timed): a temporary FACTORY_HOME with a real DuckDB warehouse (`WarehouseResource.connect()`,
threads=2) holding `staging.customers` (3,000 rows) and `staging.orders` (4,000 orders, 7,200 state rows)
in the declared staging shapes; a real kill-switch journal with six flips (global, agent and tool switches,
each turned on and off again: all off); the real policy files (`policies/`, set `support`, `gate.yaml`)
through `PolicyEngineResource`; the `support_triage` manifest. Tickets are generated (seeded) the way the
agent runtime sees them, and each ticket's calls follow the runtime (`lib/agents/runtime.py`): facts start
as `TicketFacts.of(ticket)` (ticket and text, nothing else known), then `customer_features`, `kb_search`,
`order_lookup` (tickets naming an order), and the actions of the decided ticket: `issue_refund` (refund
tickets) and `send_reply` (every ticket; body from the agent's reply templates, the "held" template
after a refund the gate did not allow). Facts are updated between calls as the runtime does.

Facts: the calls of one ticket SHARE one `TicketFacts`, as in the runtime, filled in call by call, so
the gate judges each risk signal once per distinct value of what it reads. Every timed pass starts from
fresh facts copies and a fresh gate (`CedarGate.for_agent`) with a fresh `KillSwitches` on the journal,
like a new agent run (the gate's customer-email cache starts empty).

1. One decision. Project: `CedarGate.check(ToolRequest)` (kill switches, the Cedar request built from the
   call: risk, features, data age, budget; the order lookup of a refund and the reply scan with its
   lookups, against the warehouse; the Cedar decision and the Verdict) plus the record the toolbox
   appends (the verdict's fields and the Cedar request as JSON). The ToolRequest (validated arguments,
   as the toolbox passes them) is built before the clock starts. Bare: `cedarpy.is_authorized` on the
   same Cedar request dicts (recorded with `gate.request` before timing), with the engine's pre-parsed
   `PolicySet` (`engine.enforced`), `Schema` (`engine.schema`) and the agent's pre-parsed `Entities`.
   Every call is timed with `time.perf_counter_ns`; p50 and p95 per side, for the whole mix, for the
   read-only calls (no database) and the side-effect calls (refund: order lookup; reply: scan, email and
   order-owner lookups). Goals: project/bare p50 <= 1.5 on the whole mix, project p50 < 200 us.
2. Batch. `PolicyEngine.decide_many(requests, entities)` vs `cedarpy.is_authorized_batch(requests,
   policy_set, entities, schema)` on --batch recorded requests; us per decision. Goal <= 1.5.

A warm-up pass of each side checks that both sides see the same Cedar requests and agree on allow;
then --rounds rounds, the side going first alternating; gc collected before each timed pass.
Diagnostics (no goal), one pass each: the sides interleaved call by call (project check, then bare on the
same request: neither in a tight loop); a pass of only the read-only calls (no database work in the
pass); the project's time per phase (kill switches, request, decision, verdict + record);
`--profile` prints a cProfile of one project pass.

The tickets and tables are made in `gate_workload.py`; the sides, the shared setup and the passes are in
`gate_harness.py`.

Smoke run (`--smoke`): 40 calls, a batch of 50, one round; no goal judged.

    .venv/bin/python -m benchmarks.policy_gate [--calls N] [--batch N] [--rounds N] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import gc
import time
from importlib import metadata
from typing import Any

from benchmarks import (
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    number,
    parse_args,
    print_summary_rows,
    side_order,
    verdict,
    write_result,
)
from benchmarks.gate_harness import (
    World,
    bare_pass,
    build_world,
    interleaved_pass,
    phases_pass,
    profile,
    project_pass,
)
from benchmarks.gate_workload import Ticket

NAME = "policy_gate"
GOAL = 1.5  # project / bare, p50 per decision (one call) and us per decision (batch), at most
GOAL_P50_US = 200.0  # project p50 of one decision, below


def pct(values: list[int], q: float) -> float:
    """The q-quantile (nearest rank) of ns samples, in us."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] / 1000


def check_sides_agree(world: World) -> None:
    """Warm-up of both sides; they must see the same Cedar requests and agree on allow, or nothing is measured."""
    verdicts: list[Any] = []
    results: list[Any] = []
    project_pass(world.sides, world.tickets, verdicts)
    bare_pass(world.sides, world.requests, results)
    same_requests = [v.request for v in verdicts] == world.requests
    agree = all((v.decision == "allow") == r.allowed for v, r in zip(verdicts, results, strict=True))
    print(f"same Cedar requests on both sides: {same_requests}; same allow/deny: {agree}")
    if not (same_requests and agree and [v.decision for v in verdicts] == [d.outcome for d in world.decisions]):
        raise SystemExit("the sides disagree: not measuring")


def one_decision(world: World, rounds: int) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """`rounds` passes of each side, the side going first alternating; p50/p95 per call class and tool."""
    ns: dict[str, list[int]] = {"project": [], "bare": []}
    runs = {"project": lambda: project_pass(world.sides, world.tickets),
            "bare": lambda: bare_pass(world.sides, world.requests)}
    started = time.perf_counter()
    for r in range(rounds):
        for name in side_order(("project", "bare"), r):
            ns[name].extend(runs[name]())
    seconds = time.perf_counter() - started
    flags = world.side_effect * rounds
    classes = {"all": [True] * len(flags), "read_only": [not f for f in flags], "side_effect": flags}
    tools = [c.tool for c in world.calls] * rounds
    single: dict[str, Any] = {}
    for cls, keep in [*classes.items(), *((tool, [t == tool for t in tools]) for tool in world.mix)]:
        sel = {side: [v for v, k in zip(values, keep, strict=True) if k] for side, values in ns.items()}
        single[cls] = {"calls": len(sel["project"]),
                       **{f"{side}_{q}_us": pct(sel[side], p) for side in sel for q, p in (("p50", .5), ("p95", .95))}}
        single[cls]["ratio_p50"] = single[cls]["project_p50_us"] / single[cls]["bare_p50_us"]
        single[cls]["ratio_mean"] = sum(sel["project"]) / sum(sel["bare"])
    print_one_decision(single, len(world.calls), rounds, seconds)
    return single, ns


def print_one_decision(single: dict[str, Any], calls: int, rounds: int, seconds: float) -> None:
    print(f"\n[one decision] {calls:,} calls x {rounds} passes per side, side order alternating "
          f"({seconds:.1f} s); microseconds per call")
    print(f"  {'calls':22}{'n':>7}  {'project p50':>11} {'p95':>8}   {'bare p50':>8} {'p95':>8}   "
          f"{'ratio p50':>9} {'ratio mean':>10}")
    labels = {"all": "all (realistic mix)", "read_only": "read-only (no DB)", "side_effect": "side effects (DB)"}
    for cls, row in single.items():
        print(f"  {labels.get(cls, '  ' + cls):22}{row['calls']:>7,}  {row['project_p50_us']:>11.1f} "
              f"{row['project_p95_us']:>8.1f}   {row['bare_p50_us']:>8.1f} {row['bare_p95_us']:>8.1f}   "
              f"{row['ratio_p50']:>9.2f} {row['ratio_mean']:>10.2f}")
    whole = single["all"]
    print(f"  whole mix: ratio of p50 {whole['ratio_p50']:.2f} (goal <= {GOAL}) -> "
          f"{verdict(whole['ratio_p50'] <= GOAL)}; project p50 {whole['project_p50_us']:.1f} us (goal < "
          f"{GOAL_P50_US:.0f} us) -> {verdict(whole['project_p50_us'] < GOAL_P50_US)}")
    print(f"  read-only calls only: ratio of p50 {single['read_only']['ratio_p50']:.2f}")


def phases_report(world: World) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Median and mean us per phase of `check`, for read-only and side-effect calls (one instrumented pass)."""
    phases = phases_pass(world.sides, world.tickets)
    phase_us = {c: {p: pct(v, .5) for p, v in ps.items()} for c, ps in phases.items()}
    phase_mean_us = {c: {p: sum(v) / len(v) / 1000 for p, v in ps.items()} for c, ps in phases.items()}
    print("  where the project's time goes (one instrumented pass; median / mean us per phase):")
    for c, ps in phase_us.items():
        print(f"    {c:12} " + ", ".join(f"{p} {ps[p]:.1f} / {phase_mean_us[c][p]:.1f}" for p in ps))
    return phase_us, phase_mean_us


def diagnostics_report(world: World) -> dict[str, Any]:
    """How much of the gap is the bare side's tight loop, and the database around the calls (no goal)."""
    side_effect = world.side_effect
    mixed = interleaved_pass(world.sides, world.tickets, world.requests)
    reads = [Ticket(t.tid, t.facts, [c for c in t.calls if not c.side_effect]) for t in world.tickets]
    read_requests = [r for r, f in zip(world.requests, side_effect, strict=True) if not f]
    alone = {"project": project_pass(world.sides, reads), "bare": bare_pass(world.sides, read_requests)}
    diagnostics: dict[str, Any] = {}
    for label, pair, keep in (
            ("interleaved call by call, all calls", mixed, [True] * len(side_effect)),
            ("interleaved call by call, read-only calls", mixed, [not f for f in side_effect]),
            ("interleaved call by call, side-effect calls", mixed, side_effect),
            ("pass of the read-only calls alone (no DB in the pass)", alone, [True] * len(read_requests))):
        sel = {side: [v for v, k in zip(values, keep, strict=True) if k] for side, values in pair.items()}
        row = {f"{side}_p50_us": pct(v, .5) for side, v in sel.items()}
        row["ratio_p50"] = row["project_p50_us"] / row["bare_p50_us"]
        diagnostics[label] = row
    print("  diagnostics (one pass each, no goal): p50 us project / bare, ratio")
    for label, row in diagnostics.items():
        print(f"    {label + ':':56}{row['project_p50_us']:8.1f} / {row['bare_p50_us']:6.1f}   {row['ratio_p50']:.2f}")
    return diagnostics


def batch_case(world: World, size: int, rounds: int) -> dict[str, Any]:
    """`decide_many` vs `cedarpy.is_authorized_batch` on the recorded requests cycled to `size`, median us each."""
    import cedarpy

    batch = [world.requests[k % len(world.requests)] for k in range(size)]
    engine, entities = world.sides.engine, world.sides.entities
    batch_runs = {"project": lambda: engine.decide_many(batch, entities),
                  "bare": lambda: cedarpy.is_authorized_batch(batch, engine.enforced, entities, engine.schema)}
    answers = {name: fn() for name, fn in batch_runs.items()}  # warm-up
    agree = all((d.outcome == "allow") == r.allowed for d, r in zip(answers["project"], answers["bare"], strict=True))
    seconds: dict[str, list[float]] = {"project": [], "bare": []}
    for r in range(rounds):
        for name in side_order(("project", "bare"), r):
            gc.collect()
            start = time.perf_counter()
            batch_runs[name]()
            seconds[name].append(time.perf_counter() - start)
    per = {name: median(v) / size * 1e6 for name, v in seconds.items()}
    ratio = per["project"] / per["bare"]
    print(f"\n[batch] {size:,} recorded requests, {rounds} repetitions per side, median; same allow/deny: {agree}")
    print(f"  project decide_many:          {per['project']:7.2f} us per decision "
          f"({median(seconds['project']) * 1000:.1f} ms a batch)")
    print(f"  bare is_authorized_batch:     {per['bare']:7.2f} us per decision "
          f"({median(seconds['bare']) * 1000:.1f} ms a batch)")
    print(f"  ratio project/bare: {ratio:.2f}  (goal <= {GOAL}) -> {verdict(ratio <= GOAL)}")
    return {"size": size, "seconds": seconds, "us_per_decision": per, "ratio": ratio, "agree": agree}


def summary_rows(single: dict[str, Any], batch: dict[str, Any], calls: int, rounds: int) -> list[dict[str, Any]]:
    whole, reads, effects = single["all"], single["read_only"], single["side_effect"]
    return [
        {"case": f"one decision, realistic mix ({calls:,} calls x {rounds})", "metric": "p50 latency", "unit": "us",
         "project": whole["project_p50_us"], "bare": whole["bare_p50_us"], "ratio": whole["ratio_p50"],
         "goal": f"<= {GOAL}", "met": whole["ratio_p50"] <= GOAL},
        {"case": "one decision, realistic mix", "metric": "project p50", "unit": "us",
         "project": whole["project_p50_us"], "bare": whole["bare_p50_us"], "ratio": None,
         "goal": f"< {GOAL_P50_US:.0f} us", "met": whole["project_p50_us"] < GOAL_P50_US},
        {"case": "one decision, read-only calls (no DB)", "metric": "p50 latency", "unit": "us",
         "project": reads["project_p50_us"], "bare": reads["bare_p50_us"], "ratio": reads["ratio_p50"],
         "goal": "reported", "met": True},
        {"case": "one decision, refund/reply calls (DB)", "metric": "p50 latency", "unit": "us",
         "project": effects["project_p50_us"], "bare": effects["bare_p50_us"], "ratio": effects["ratio_p50"],
         "goal": "reported", "met": True},
        {"case": f"batch of {batch['size']:,} requests", "metric": "per decision", "unit": "us",
         "project": batch["us_per_decision"]["project"], "bare": batch["us_per_decision"]["bare"],
         "ratio": batch["ratio"], "goal": f"<= {GOAL}", "met": batch["ratio"] <= GOAL},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000, help="tool calls per pass (tickets of ~4.3 calls)")
    parser.add_argument("--batch", type=int, default=5000, help="Cedar requests in the batch")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per side (one decision and batch)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one project pass")
    args = parse_args(parser, calls=40, batch=50, rounds=1)

    home = isolated_home(NAME)
    try:
        settings, info = isolated_settings(home, f"{NAME}: CedarGate.check and decide_many vs bare cedarpy")
        info["libraries"]["cedarpy"] = metadata.version("cedarpy")
        print(f"cedarpy {info['libraries']['cedarpy']}")
        from factory_pipelines.resources.warehouse import WarehouseResource

        with WarehouseResource(database=settings.warehouse).connect() as con:
            world = build_world(settings, con, args.calls)
            check_sides_agree(world)
            single, ns = one_decision(world, args.rounds)
            phase_us, phase_mean_us = phases_report(world)
            diagnostics = diagnostics_report(world)
            batch = batch_case(world, args.batch, args.rounds)
            if args.profile:
                print("\ncProfile of one project pass\n" + profile(world.sides, world.tickets))
        calls = world.calls
        summary = summary_rows(single, batch, len(calls), args.rounds)
        print("\nsummary")
        print_summary_rows(summary)
        print(f"(absolute figures: project p50 {number(single['all']['project_p50_us'])} us, p95 "
              f"{number(single['all']['project_p95_us'])} us per decision)")
        write_result(NAME, {"machine": info, "calls_per_pass": len(calls), "tickets": len(world.tickets),
                            "rounds": args.rounds, "batch": args.batch, "tool_mix": world.mix,
                            "decisions": world.outcomes, **world.setup,
                            "facts": "shared by the calls of a ticket; fresh facts and gate every pass",
                            "one_decision": single, "diagnostics": diagnostics, "phases_median_us": phase_us,
                            "phases_mean_us": phase_mean_us, "batch_seconds": batch["seconds"],
                            "batch_us_per_decision": batch["us_per_decision"], "batch_ratio": batch["ratio"],
                            "samples_ns": ns, "sample_side_effect": world.side_effect, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
