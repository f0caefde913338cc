"""The policy gate benchmark's harness: the gate's ingredients (`Sides`), the shared setup (`World`), and the
passes that time each side call by call: the project's `CedarGate.check` plus the toolbox's record, bare
`cedarpy.is_authorized`, and the diagnostic passes (interleaved, per phase, profiled).

Every pass builds a fresh gate and fresh facts, as a new agent run does.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.gate_workload import (
    AS_OF,
    ORDERS,
    READ_ONLY,
    SIDE_EFFECTS,
    Call,
    Ticket,
    build_warehouse,
    latest_orders,
    make_tickets,
    manifest_path,
)


class Sides:
    """The gate's ingredients, shared by every pass; a pass builds its own gate as a run does."""

    def __init__(self, settings: Any, con: Any) -> None:
        from factory_pipelines.lib.agents.manifests import load_manifest
        from factory_pipelines.lib.agents.toolbox import Budget
        from factory_pipelines.lib.governance.gate import agent_entity
        from factory_pipelines.resources.governance import PolicyEngineResource

        self.manifest = load_manifest(manifest_path())
        self.resource = PolicyEngineResource(policies_dir=str(settings.policies_dir),
                                             kill_switches_file=str(settings.kill_switches_file),
                                             review_ttl_hours=settings.review_ttl_hours,
                                             audit_anchor=str(settings.audit_anchor))
        self.engine = self.resource.engine(self.manifest.policy_set)
        self.config = self.resource.gate_config()
        self.con = con
        self.budget = Budget.from_manifest(self.manifest.budgets)
        m = self.manifest
        self.entities = self.engine.entities([agent_entity(m.name, m.stage, m.version, list(m.tools))])

    def gate(self) -> Any:
        from factory_pipelines.lib.governance.gate import CedarGate

        return CedarGate.for_agent(self.manifest, self.engine, self.resource.switches(), self.config, self.con,
                                   self.budget, as_of=AS_OF)


def prefetched_gate(sides: Sides, tickets: list[Ticket]) -> tuple[Any, int]:
    """A fresh gate that looked up the day's orders and emails in bulk, as the runtime does before the first
    ticket (`AgentRunner.run` -> `gate.prefetch`); returns it and that cost spread over the calls, in ns."""
    gate = sides.gate()
    start = time.perf_counter_ns()
    gate.prefetch([t.facts.ticket for t in tickets])
    calls = sum(len(t.calls) for t in tickets) or 1
    return gate, (time.perf_counter_ns() - start) // calls


def tool_requests(sides: Sides, tickets: list[Ticket]) -> Iterator[tuple[Call, Any]]:
    """Every call as the runtime makes it: each ticket's facts start fresh and grow call by call."""
    from factory_pipelines.lib.agents.toolbox import ToolRequest
    from factory_pipelines.lib.agents.tools import CATALOG

    for t in tickets:
        facts = copy.copy(t.facts)
        for call in t.calls:
            for name, value in call.before.items():
                setattr(facts, name, value)
            yield call, ToolRequest(sides.manifest.name, t.tid, CATALOG[call.tool], call.args, facts)


def requests_of(sides: Sides, tickets: list[Ticket]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The Cedar request of every call (`gate.request`, fresh facts and gate) and the engine's decision."""
    gate, requests, decisions = sides.gate(), [], []
    for _, request in tool_requests(sides, tickets):
        cedar = gate.request(request)
        requests.append(cedar)
        decisions.append(sides.engine.decide(cedar, sides.entities))
    return requests, decisions


def hold_replies(sides: Sides, tickets: list[Ticket]) -> int:
    """As the runtime: after a refund the gate did not allow, the reply says so (the "held" template)."""
    from factory_pipelines.lib.agents.rules import fill

    _, decisions = requests_of(sides, tickets)
    k, held = 0, 0
    for t in tickets:
        outcome = None
        for call in t.calls:
            if call.tool == "issue_refund":
                outcome = decisions[k].outcome
            elif call.tool == "send_reply" and outcome not in (None, "allow"):
                status = "escalated" if outcome == "escalate" else "denied"
                templates, reply_facts = t.reply  # type: ignore[misc]
                body = str(fill(templates["held"][status], reply_facts)).strip()
                call.args = call.args.model_copy(update={"body": body})
                call.before = {**call.before, "held": status, "reply": {"body": body, "cited": call.args.cited_article_ids}}
                held += 1
            k += 1
    return held


def project_pass(sides: Sides, tickets: list[Ticket], out: list[Any] | None = None) -> list[int]:
    """One run's worth of calls through a fresh gate; ns per call (check + the toolbox's record)."""
    from factory_pipelines.lib.agents.toolbox import verdict_fields

    clock = time.perf_counter_ns
    gate, prefetch_ns = prefetched_gate(sides, tickets)
    samples: list[int] = []
    records: list[dict[str, Any]] = []
    gc.collect()
    for _, request in tool_requests(sides, tickets):
        start = clock()
        v = gate.check(request)
        records.append(verdict_fields(v))  # what Toolbox.call records of the decision
        samples.append(clock() - start + prefetch_ns)
        if out is not None:
            out.append(v)
    return samples


def bare_pass(sides: Sides, requests: list[dict[str, Any]], out: list[Any] | None = None) -> list[int]:
    import cedarpy

    clock, policies, entities, schema = time.perf_counter_ns, sides.engine.enforced, sides.entities, sides.engine.schema
    authorize = cedarpy.is_authorized
    samples: list[int] = []
    gc.collect()
    for request in requests:
        start = clock()
        result = authorize(request, policies, entities, schema)
        samples.append(clock() - start)
        if out is not None:
            out.append(result)
    return samples


def interleaved_pass(sides: Sides, tickets: list[Ticket], requests: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Diagnostic: the sides call by call (project check, then bare on the same request), so neither runs in
    a tight loop with warm caches; ns per call of each side."""
    import cedarpy

    from factory_pipelines.lib.agents.toolbox import verdict_fields

    clock = time.perf_counter_ns
    gate, prefetch_ns = prefetched_gate(sides, tickets)
    policies, entities, schema = sides.engine.enforced, sides.entities, sides.engine.schema
    out: dict[str, list[int]] = {"project": [], "bare": []}
    gc.collect()
    for k, (_, request) in enumerate(tool_requests(sides, tickets)):
        start = clock()
        verdict_fields(gate.check(request))
        middle = clock()
        cedarpy.is_authorized(requests[k], policies, entities, schema)
        out["project"].append(middle - start + prefetch_ns)
        out["bare"].append(clock() - middle)
    return out


def phases_pass(sides: Sides, tickets: list[Ticket]) -> dict[str, dict[str, list[int]]]:
    """Diagnostic: `check` taken apart (same steps, timed one by one); ns per phase and call class."""
    from factory_pipelines.lib.agents.toolbox import verdict_fields

    clock, agent = time.perf_counter_ns, sides.manifest.name
    gate, _ = prefetched_gate(sides, tickets)
    phases: dict[str, dict[str, list[int]]] = {c: {p: [] for p in ("switches", "request", "decide", "verdict_record")}
                                                for c in ("read_only", "side_effect")}
    gc.collect()
    for call, request in tool_requests(sides, tickets):
        p = phases["side_effect" if call.side_effect else "read_only"]
        t0 = clock()
        gate.switches.blocking(agent, call.tool)
        t1 = clock()
        cedar = gate.request(request)
        t2 = clock()
        decision = gate.engine.decide(cedar, sides.entities)
        t3 = clock()
        verdict_fields(gate.verdict(decision, cedar))
        t4 = clock()
        for name, ns in (("switches", t1 - t0), ("request", t2 - t1), ("decide", t3 - t2),
                         ("verdict_record", t4 - t3)):
            p[name].append(ns)
    return phases


def profile(sides: Sides, tickets: list[Ticket]) -> str:
    """A cProfile of one project pass (`--profile`): where its time goes, function by function."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    project_pass(sides, tickets)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return text.getvalue()


@dataclass
class World:
    """The setup every pass shares: the gate's ingredients, the tickets and their calls, the recorded requests."""

    sides: Sides
    tickets: list[Ticket]
    requests: list[dict[str, Any]]  # the Cedar request of every call
    decisions: list[Any]  # the engine's decision on each
    setup: dict[str, Any]

    @property
    def calls(self) -> list[Call]:
        return [c for t in self.tickets for c in t.calls]

    @property
    def side_effect(self) -> list[bool]:
        return [c.side_effect for c in self.calls]

    @property
    def mix(self) -> dict[str, int]:
        return {tool: sum(c.tool == tool for c in self.calls) for tool in READ_ONLY + SIDE_EFFECTS}

    @property
    def outcomes(self) -> dict[str, int]:
        return {o: sum(d.outcome == o for d in self.decisions) for o in ("allow", "deny", "escalate")}


def build_world(settings: Any, con: Any, n_calls: int) -> World:
    """The warehouse tables, a kill-switch journal with six flips (all off at the end), the gate's ingredients
    and the seeded tickets with their calls (replies held where the refund was not allowed)."""
    from factory_pipelines.lib.governance.kill_switches import KillSwitches

    start = time.perf_counter()
    setup: dict[str, Any] = build_warehouse(con)
    switches = KillSwitches(settings.kill_switches_file)
    for scope, target in (("global", ""), ("agent", "support_triage"), ("tool", "issue_refund")):
        switches.flip(scope, target, True, "bench", "drill")  # type: ignore[arg-type]
        switches.flip(scope, target, False, "bench", "drill over")  # type: ignore[arg-type]
    setup["kill_switch_flips"] = len(switches.events())
    sides = Sides(settings, con)
    tickets = make_tickets(n_calls, latest_orders(con))
    setup["held_replies"] = hold_replies(sides, tickets)
    requests, decisions = requests_of(sides, tickets)
    setup["setup_s"] = time.perf_counter() - start
    world = World(sides, tickets, requests, decisions, setup)
    calls = world.calls
    print(f"setup in {setup['setup_s']:.1f} s: staging.customers {setup['customers_rows']:,} rows, "
          f"staging.orders {setup['orders_rows']:,} rows ({ORDERS:,} orders); kill-switch journal "
          f"{setup['kill_switch_flips']} flips, all off; policy set {sides.engine.name}@{sides.engine.hash} "
          f"({len(sides.engine.policies)} policies, log-only set: {sides.engine.full is not None})")
    print(f"{len(tickets)} tickets, {len(calls)} calls per pass ({len(calls) / len(tickets):.2f} a ticket, "
          f"facts shared by the calls of a ticket): {world.mix}; {sum(world.side_effect)} side-effect calls")
    print(f"decisions: {world.outcomes}; {setup['held_replies']} replies use the held template")
    return world
