"""The agent benchmark's setup and agent runs: the demo factory the agent reads, the resources and manifests of
its runs (`Bench`), `run_agent` on a block of a day's tickets, and what is read or undone between runs
(decision rows, the day's side effects).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks import REPO_ROOT, build_demo_factory, smoke, timed
from benchmarks.agent_model import local_provider

AGENT = "support_triage"
ALWAYS_ASK = 1.01  # decision.model_below_confidence above 1: every open field goes to the model
DECISION_COLUMNS = ("ticket_id, status, category, priority, action, decision, decided_by, rules_fired, tool_calls, "
                    "reply, cited_passages, prompt_version, model_version, first_pass_model, model_calls, tokens_in, "
                    "tokens_out, truncated, error")
EFFECT_TABLES = ("refunds", "replies", "escalations")


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
    seconds, (summary, outcomes) = timed(
        lambda: build_demo_factory(settings, days, jobs=("data_plane_job", "models_job"), labels=True))
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


def decisions(resources: dict[str, Any], day: str) -> list[tuple]:
    """The agent's decision rows of the day, to compare a block decided twice."""
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
