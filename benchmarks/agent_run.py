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

Smoke run (`--smoke`): 4 demo days of 20 tickets, blocks of 2 tickets, one repeat, and a scripted stand-in
for llama.cpp's server (`ScriptedServer`: the first value each field of the request's schema allows) on
both sides, so the whole agent path runs in seconds without the model; no goal is judged.

    .venv/bin/python -m benchmarks.agent_run [--tickets N] [--repeat N] [--no-throughput] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks import (
    REPO_ROOT,
    build_demo_factory,
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    parse_args,
    print_summary_rows,
    smoke,
    verdict,
    write_result,
)

NAME = "agent_run"
GOAL = 1.15  # project wall time / bare wall time, at most
AGENT = "support_triage"
ALWAYS_ASK = 1.01  # decision.model_below_confidence above 1: every open field goes to the model
FIRST_DAY = date(2026, 11, 1)
N_DAYS = 5  # more labelled days than holdout_days (3); the last three are held out from training
SMOKE_DAYS = 4  # one day to train on
WARMUP_TICKETS = 3
SMOKE_DEMO = {"FACTORY_DEMO_TICKETS_PER_DAY": "20", "FACTORY_DEMO_CUSTOMERS": "30"}
DECISION_COLUMNS = ("ticket_id, status, category, priority, action, decision, decided_by, rules_fired, tool_calls, "
                    "reply, cited_passages, prompt_version, model_version, first_pass_model, model_calls, tokens_in, "
                    "tokens_out, truncated, error")
EFFECT_TABLES = ("refunds", "replies", "escalations")
BUSY_SHARE = 0.1  # other processes using more than this share of a core during a timed side: say so


def model_dir(home: Path) -> tuple[Path, str]:
    """Where the GGUF is assembled: FACTORY_MODEL_DIR, the repo's `.factory/models` when it exists, or the home."""
    if os.environ.get("FACTORY_MODEL_DIR"):
        return Path(os.environ["FACTORY_MODEL_DIR"]), "FACTORY_MODEL_DIR"
    repo_models = REPO_ROOT / ".factory" / "models"
    if repo_models.is_dir():
        return repo_models, "the repo's .factory/models; only read unless the GGUF is missing"
    return home / "models", "the temporary home: assembled on every run, set FACTORY_MODEL_DIR to keep it"


def build_data(settings: Any, days: list[date]) -> dict[str, Any]:
    """Demo files and labels for the days, the data plane for each day and the models job once, in process."""
    start = time.perf_counter()
    summary, outcomes = build_demo_factory(settings, days, jobs=("data_plane_job", "models_job"), labels=True)
    seconds = time.perf_counter() - start
    classifier = outcomes["models_job"][0].materialized.get("models/ticket_classifier", {})
    print(f"setup: demo data {summary.rows} ({settings.demo_tickets_per_day} tickets a day), data plane for "
          f"{len(days)} days and models job in {seconds:.1f} s (classifier {classifier.get('model_uri', '?')}, "
          f"held out {classifier.get('holdout_days')})")
    return {"demo_rows": summary.rows, "setup_seconds": seconds, "classifier": classifier.get("model_uri")}


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by the whole machine (all cores) and by this process (all its threads)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:8]]
        machine = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # without idle and iowait
    except (OSError, ValueError):
        machine = float("nan")
    own = os.times()
    return machine, own.user + own.system


def measured(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds of fn(), CPU seconds other processes used meanwhile, and fn's value."""
    machine, own = cpu_seconds()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    machine_after, own_after = cpu_seconds()
    return seconds, max(0.0, (machine_after - machine) - (own_after - own)), value


def first_values(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The first value each field of a flat JSON schema allows."""
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False}
    return {k: v["enum"][0] if "enum" in v else empty.get(v.get("type"), "")
            for k, v in (schema or {}).get("properties", {}).items()}


class ScriptedServer:
    """Smoke runs only: stands in for llama.cpp's server (`handle_chat_completions`), answering each request with
    `first_values` of the schema the smoke provider adds to the body."""

    def handle_chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps(first_values(body.get("smoke_schema")))
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        return {"choices": [{"message": {"content": content}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(content.split())}}


SCRIPTED = ScriptedServer()


def local_provider() -> type:
    """The provider class both sides' requests come from: `LocalProvider`, or in a smoke run one whose server is
    the scripted stand-in (same request bodies, plus the schema the stand-in answers from)."""
    from factory_pipelines.lib.agents.models.providers import LocalProvider

    if not smoke():
        return LocalProvider

    class SmokeProvider(LocalProvider):
        @property
        def server(self) -> Any:
            return SCRIPTED

        @staticmethod
        def request_body(messages: list[dict[str, str]], schema: dict[str, Any] | None, temperature: float, seed: int,
                         max_tokens: int) -> dict[str, Any]:
            return LocalProvider.request_body(messages, schema, temperature, seed, max_tokens) | {"smoke_schema": schema}

    return SmokeProvider


def providers(base: type) -> tuple[type, type]:
    """Two subclasses of `base`: one records each request and calls the model, one records and answers dry."""
    from factory_pipelines.lib.agents.models.providers import ChatResult

    class Recording(base):  # type: ignore[misc, valid-type]
        calls: list[dict[str, Any]]

        def chat(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 temperature: float = 0.0, seed: int = 7, max_tokens: int = 256) -> Any:
            call: dict[str, Any] = {"messages": messages, "schema": schema, "temperature": temperature, "seed": seed,
                                    "max_tokens": max_tokens, "content": None}
            self.calls.append(call)
            start = time.perf_counter()
            result = self.answer(messages, schema=schema, temperature=temperature, seed=seed, max_tokens=max_tokens)
            call |= {"content": result.content, "chat_s": time.perf_counter() - start, "binding_s": result.latency_s}
            return result

        def answer(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
            return super().chat(messages, **kwargs)

    class Dry(Recording):
        """The first value each field allows, without the model: a run that only collects the requests."""

        def answer(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
            data = first_values(kwargs["schema"])
            return ChatResult(content=json.dumps(data), data=data, provider=self.name, model=self.model,
                              prompt_tokens=0, completion_tokens=0, latency_s=0.0, cost_usd=0.0)

    return Recording, Dry


@dataclass
class Bench:
    """What every agent run of the benchmark shares: settings, resources, the manifests, the model's path."""

    settings: Any
    resources: dict[str, Any]
    manifest: Any  # support_triage as declared (throughput)
    always: Any  # the same, asking the model for every open field (compare)
    path: Path  # the GGUF (not assembled in a smoke run)
    assemble_s: float  # getting the GGUF ready (assembled from its package the first time)
    base: type  # LocalProvider, or the smoke provider
    warmup_day: str
    compare_day: str
    throughput_day: str

    def llm(self, kind: type, calls: list[dict[str, Any]]) -> Any:
        """What `run_agent` uses of an LLMResource, `provider(model)`: the resource's LocalProvider as `kind`."""
        from factory_pipelines.lib.agents.models.providers import LocalProvider

        resource = self.resources["llm"]

        def provider(model: Any) -> Any:
            if not smoke():
                base = resource.provider(model)  # assembles the GGUF if missing; the server is the process's one
                if not isinstance(base, LocalProvider):
                    raise SystemExit(f"{AGENT} does not use the local model ({model.provider}); nothing to compare")
            wrapped = kind(self.path, n_ctx=resource.context_window, threads=resource.threads,
                           usd_per_cpu_second=resource.usd_per_cpu_second)
            wrapped.calls = calls
            return wrapped

        return SimpleNamespace(provider=provider)

    def run(self, manifest: Any, day: str, kind: type, calls: list[dict[str, Any]], run_id: str,
            limit: int | None = None, offset: int = 0) -> tuple[float, float, Any]:
        """One agent run over the day or a block of it: wall seconds, others' CPU seconds, the RunReport."""
        from factory_pipelines.defs.agents.assets import run_agent

        context = SimpleNamespace(partition_key=day, run=SimpleNamespace(run_id=run_id))  # what run_agent reads
        r, llm = self.resources, self.llm(kind, calls)
        with ticket_block(limit, offset):
            seconds, others, report = measured(lambda: run_agent(
                context, manifest, self.settings.manifests_dir / f"{AGENT}.yaml", warehouse=r["warehouse"],
                feature_store=r["feature_store"], tracking=r["tracking"], llm=llm, policy_engine=r["policy_engine"],
                labels_dir=self.settings.labels_dir, response_cache=False))
        if report.errors:
            print(f"  {len(report.errors)} ticket(s) not decided: {report.errors[:3]}")
        return seconds, others, report


@contextmanager
def ticket_block(limit: int | None, offset: int = 0) -> Iterator[None]:
    """The agent reads `limit` tickets of the day from `offset` (its ticket query gets LIMIT and OFFSET)."""
    from factory_pipelines.defs.agents import assets

    sql = assets.TICKETS_SQL
    if limit:
        assets.TICKETS_SQL = f"{sql.rstrip()}\nLIMIT {int(limit)} OFFSET {int(offset)}"
    try:
        yield
    finally:
        assets.TICKETS_SQL = sql


def bodies_of(base: type, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request bodies `LocalProvider.chat` sends to the binding for these calls."""
    return [base.request_body(c["messages"], c["schema"], c["temperature"], c["seed"], c["max_tokens"])
            for c in calls]


def bare_loop(server: Any, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bare side: the requests, one after the other, to the llama.cpp server."""
    return [server.handle_chat_completions(body) for body in bodies]


def answers_of(responses: list[dict[str, Any]]) -> list[str]:
    errors = [r["error"] for r in responses if "error" in r]
    if errors:
        raise SystemExit(f"a bare call failed: {errors[0]}")
    return [r["choices"][0]["message"]["content"] or "" for r in responses]


def requests_of(calls: list[dict[str, Any]]) -> list[tuple]:
    return [(c["messages"], c["schema"], c["temperature"], c["seed"], c["max_tokens"]) for c in calls]


def decisions(resources: dict[str, Any], day: str) -> list[tuple]:
    with resources["warehouse"].connect(read_only=True) as con:
        return con.execute(f"SELECT {DECISION_COLUMNS} FROM agents.decisions WHERE agent = ? AND partition = ? "
                           "ORDER BY ticket_id", [AGENT, day]).fetchall()


def row_differences(rows: list[tuple], again: list[tuple]) -> dict[str, list[str]]:
    """Ticket -> the decision columns that differ between two runs (a ticket missing from one: its id)."""
    columns = [c.strip() for c in DECISION_COLUMNS.split(",")]
    first, second = {r[0]: r for r in rows}, {r[0]: r for r in again}
    return {t: [c for c, x, y in zip(columns, first.get(t, ()), second.get(t, ()), strict=False) if x != y]
            or ["ticket_id"] for t in sorted(set(first) | set(second)) if first.get(t) != second.get(t)}


def forget_effects(resources: dict[str, Any], day: str) -> None:
    """Delete the day's side effects and outbox rows of the agent: the next run of the day acts as a first run."""
    with resources["warehouse"].connect() as con:
        for table in EFFECT_TABLES:
            con.execute(f"DELETE FROM agents.{table} WHERE agent = ? AND ticket_id IN (SELECT ticket_id FROM "
                        "agents.outbox WHERE agent = ? AND partition = ?)", [AGENT, AGENT, day])
        con.execute("DELETE FROM agents.outbox WHERE agent = ? AND partition = ?", [AGENT, day])


def breakdown(seconds: float, report: Any, calls: list[dict[str, Any]]) -> dict[str, float]:
    """Where a project run's time goes: outside the ticket loop, tickets without the model, provider, binding."""
    chat = sum(c.get("chat_s", 0.0) for c in calls)
    binding = sum(c.get("binding_s", 0.0) for c in calls)
    return {"wall_s": seconds, "ticket_loop_s": report.wall_s, "outside_ticket_loop_s": seconds - report.wall_s,
            "tickets_without_model_s": report.wall_s - chat, "provider_overhead_s": chat - binding,
            "binding_s": binding}


def prepare(settings: Any, days: list[date]) -> Bench:
    """The resources and manifests of the agent runs, over the days whose data the setup built."""
    from factory_pipelines.defs.resources import build_resources
    from factory_pipelines.lib.agents.manifests import load_manifest

    manifest = load_manifest(settings.manifests_dir / f"{AGENT}.yaml")
    always = manifest.model_copy(update={"decision": manifest.decision.model_copy(
        update={"model_below_confidence": ALWAYS_ASK})})
    warmup, compare, throughput = (d.isoformat() for d in days[-3:])  # the days held out from training
    start = time.perf_counter()
    path = Path(settings.model_dir) / "scripted-smoke-run.gguf"
    if not smoke():
        from factory_pipelines.lib.agents.models.providers import local_model_path

        path = local_model_path(Path(settings.model_dir))
    return Bench(settings, build_resources(settings), manifest, always, path, time.perf_counter() - start,
                 local_provider(), warmup, compare, throughput)


def model_load(bench: Bench) -> dict[str, Any]:
    """The first `LocalProvider.server` access (llama.cpp loads the model), a second one (a cache hit), and the
    bare side's own server with the same parameters, outside the cache."""
    from factory_pipelines.lib.agents.models.providers import _local_server

    llm, path, base = bench.resources["llm"], bench.path, bench.base
    before = _local_server.cache_info()
    seconds = {}
    start = time.perf_counter()
    server = base(path, n_ctx=llm.context_window, threads=llm.threads).server
    seconds["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    again = base(path, n_ctx=llm.context_window, threads=llm.threads).server
    seconds["second_access_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bare = SCRIPTED if smoke() else _local_server.__wrapped__(str(path), llm.context_window, llm.threads)
    seconds["bare_server_load_s"] = time.perf_counter() - start
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
        for side in (("project", "bare") if k % 2 == 0 else ("bare", "project")):
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
