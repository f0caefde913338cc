"""The agents domain: one daily-partitioned run asset per agent manifest, with no Python per agent.

`agents/<name>` reads the day's clean tickets, the online features and the knowledge base, resolves its
prompt and first-pass model by alias in MLflow, decides each ticket and acts through the toolbox, then
writes `agents.decisions` (one row per ticket) and `agents.tool_calls`. It does not run when a blocking
contract of its inputs failed for that day. Retired agents get no asset; draft agents are left out of
the schedule. Model calls are limited across runs by the Dagster pool `model_slots`.
"""


import hashlib
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from factory_pipelines.instance import latest_check_statuses
from factory_pipelines.lib.agents.manifests import MODEL_URI, AgentManifest
from factory_pipelines.resources.feature_store import FeatureStoreResource
from factory_pipelines.resources.governance import PolicyEngineResource
from factory_pipelines.resources.llm import LLMResource
from factory_pipelines.resources.tracking import TrackingResource
from factory_pipelines.resources.warehouse import WarehouseResource

MODEL_POOL = "model_slots"
INPUTS = ("tickets", "orders", "kb_articles")  # staging tables an agent reads, when fed

TICKETS_SQL = """
SELECT ticket_id, customer_id, CASE WHEN microsecond(created_at) % 1000000 = 0  -- sub-seconds kept when there
           THEN strftime(created_at, '%Y-%m-%d %H:%M:%S') ELSE strftime(created_at, '%Y-%m-%d %H:%M:%S.%f') END
       AS created_at, channel, subject, body,
       coalesce(order_id, '') AS order_id, coalesce(in_reply_to, '') AS in_reply_to
FROM staging.tickets WHERE _partition = $day ORDER BY created_at, ticket_id
"""
KB_SQL = "SELECT article_id, title, body, updated_at FROM staging.kb_articles WHERE _partition <= $day"


def failed_upstream_checks(context: dg.AssetExecutionContext, keys: list[dg.AssetCheckKey]) -> list[str]:
    """Blocking checks of the inputs whose latest evaluation for this day failed (or never ran)."""
    day, failed = context.partition_key, []
    for key in keys:
        status = latest_check_statuses(context.instance, key, [day]).get(day, "NOT RUN")
        if status != "SUCCEEDED":
            failed.append(f"{key.to_user_string()} ({status.lower()})")
    return failed


@cache
def _first_pass_model(tracking_uri: str, name: str, version: str) -> Any:
    """A registered classifier, loaded once per process and version."""
    import mlflow.pyfunc

    classifier = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().classifier
    if not hasattr(classifier, "heads"):  # pickled by a factory before the classifier learnt user targets
        raise dg.Failure(f"models:/{name}/{version} was trained by an older version of the factory and cannot be "
                         f"loaded: run `factory run --job models_job`, then `factory eval <agent> --model-version N` "
                         f"and `factory promote <agent> --model` (or `factory clean` for the demo)")
    return classifier


def resolve_first_pass(tracking: TrackingResource, uri: str) -> Any:
    from factory_pipelines.lib.agents.models.classifier import FirstPass

    match = MODEL_URI.match(uri)
    name = match["name"]  # type: ignore[index]
    client = tracking.client()
    try:
        version = match["version"] or client.get_model_version_by_alias(name, match["alias"]).version  # type: ignore[index]
    except Exception as exc:
        raise dg.Failure(f"first pass {uri} is not registered in MLflow: materialize models/{name} first ({exc})") from exc
    return FirstPass(uri, str(version), _first_pass_model(tracking.tracking_uri, name, str(version)))


def resolve_prompt(uri: str) -> Any:
    from factory_pipelines.lib.agents.models.prompts import PromptError, load_registered_prompt

    try:
        return load_registered_prompt(uri)
    except PromptError as exc:
        raise dg.Failure(str(exc)) from exc


def _agent_files(manifest: AgentManifest, manifest_path: Path) -> list[Path]:
    return [manifest_path, *manifest.config_files(manifest_path.parent.parent).values()]


def build_agent_asset(manifest: AgentManifest, manifest_path: Path, partitions: dg.PartitionsDefinition,
                      staged: set[str], check_keys: list[dg.AssetCheckKey], labels_dir: Path,
                      response_cache: bool, policies_dir: Path, suite_file: Path | None = None) -> dg.AssetsDefinition:
    """The run asset of one agent manifest; its policy set is validated here, so a bad one fails the load."""
    from factory_pipelines.lib.governance.policy import PolicyEngine, PolicyError

    files = _agent_files(manifest, manifest_path)
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{manifest_path}: agent {manifest.name} needs {path}, which does not exist")
    try:
        engine = PolicyEngine.load(policies_dir, manifest.policy_set)
    except PolicyError as exc:
        raise PolicyError(f"{manifest_path}: agent {manifest.name}, policy_set {manifest.policy_set!r}: {exc}") from exc
    files += [policies_dir / f for f in engine.files]
    inputs = [dg.AssetKey(["staging", t]) for t in INPUTS if t in staged]
    deps = [*inputs, dg.AssetKey(["features", "online_store"]), dg.AssetKey(["registry", "prompt_versions"])]
    if manifest.decision.first_pass:
        deps.append(dg.AssetKey(["models", MODEL_URI.match(manifest.decision.first_pass)["name"]]))  # type: ignore[index]
    guarded_assets = inputs + [dg.AssetKey(["raw", t]) for t in INPUTS if t in staged]
    guarded = [key for key in check_keys if key.asset_key in guarded_assets]
    code_version = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:12]

    @dg.asset(
        key=["agents", manifest.name],
        deps=deps,
        partitions_def=partitions,
        group_name="agents",
        kinds={"python", "mlflow", "duckdb"},
        owners=[manifest.owner] if manifest.owner.startswith("team:") or "@" in manifest.owner else [],
        tags={"layer": "agents", "stage": manifest.stage},
        code_version=code_version,
        pool=MODEL_POOL,
        description=f"{manifest.description} Agent {manifest.name} v{manifest.version} ({manifest.stage}); "
                    f"model {manifest.model.provider}/{manifest.model.name}; prompt {manifest.prompt}; tools "
                    f"{', '.join(manifest.tools)}; every tool call authorized by Cedar policy set "
                    f"{manifest.policy_set} ({engine.hash}). Writes agents.decisions and agents.tool_calls.",
    )
    def agent_run(context: dg.AssetExecutionContext, warehouse: WarehouseResource, feature_store: FeatureStoreResource,
                  tracking: TrackingResource, llm: LLMResource,
                  policy_engine: PolicyEngineResource) -> dg.MaterializeResult:
        failed = failed_upstream_checks(context, guarded)
        if failed:
            raise dg.Failure(f"{manifest.name} not run for {context.partition_key}: blocking contract(s) of its "
                             f"inputs did not pass: {', '.join(failed)}", metadata={"failed_checks": failed})
        report = run_agent(context, manifest, manifest_path, warehouse, feature_store, tracking, llm, policy_engine,
                           labels_dir, response_cache, suite_file)
        metadata = report_metadata(report)
        if report.errors:
            raise dg.Failure(
                f"{len(report.errors)} of {report.tickets} ticket(s) not decided ({dict(report.statuses)}); "
                f"{report.stopped or 'see the errors'}. Decided tickets are saved; re-run the day to pick up the "
                f"rest (side effects already done are not repeated).", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return agent_run


def day_features(feature_store: FeatureStoreResource, manifest: AgentManifest, tickets: list[dict[str, Any]],
                 day: str) -> Any:
    """The agent's feature reads for a day, each ticket's as of its creation time (never a later day's values):
    read in bulk once, then served per ticket from memory."""
    from factory_pipelines.lib.data.features import AsOfFeatures

    times = {str(t["ticket_id"]): datetime.fromisoformat(str(t["created_at"])).replace(tzinfo=UTC) for t in tickets}
    features = AsOfFeatures(lambda rows, at: feature_store.features_as_of(rows, at, manifest.feature_service), times,
                            default=datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC))
    if "customer_features" in manifest.context:  # the entities the tool reads, in one go
        features.many([{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets
                       if t.get("customer_id")])
    return features


def run_agent(context: dg.AssetExecutionContext, manifest: AgentManifest, manifest_path: Path,
              warehouse: WarehouseResource, feature_store: FeatureStoreResource, tracking: TrackingResource,
              llm: LLMResource, policy_engine: PolicyEngineResource, labels_dir: Path, response_cache: bool,
              suite_file: Path | None = None) -> Any:
    """Resolve prompt, model, tools and policies for the day, decide every ticket, write the results; with a
    challenger in shadow or canary, decide the day with both (`run_staged`)."""
    from factory_pipelines.lib.agents.models.classifier import read_labels
    from factory_pipelines.lib.agents.models.providers import model_version
    from factory_pipelines.lib.agents.runtime import AgentRunner
    from factory_pipelines.lib.governance.gate import record_agent_day, record_policy_set
    from factory_pipelines.lib.governance.kill_switches import sync_audit
    from factory_pipelines.lib.governance.pii import mask_traces
    from factory_pipelines.settings import get_settings

    day = context.partition_key
    tracking.activate(f"agents/{manifest.name}")
    prompt = resolve_prompt(manifest.prompt)
    first_pass = resolve_first_pass(tracking, manifest.decision.first_pass) if manifest.decision.first_pass else None
    rollout = rollout_of(tracking, manifest, suite_file)
    rules, replies = manifest.load_config(manifest_path.parent.parent)
    reply_prompt = resolve_prompt(manifest.reply.prompt) if manifest.reply and manifest.reply.prompt else None
    provider = llm.provider(manifest.model)
    version = model_version(provider)
    escalate = manifest.decision.escalate_model  # the routing cascade's last tier, when the manifest names one
    escalate_provider = llm.provider(escalate) if escalate is not None else None
    with warehouse.connect() as con:
        tickets = con.execute(TICKETS_SQL, {"day": day}).df().to_dict("records")
        sync_audit(con, policy_engine.switches())
        record_policy_set(con, policy_engine.engine(manifest.policy_set), actor=f"run:{context.run.run_id[:8]}")
        env = tool_env(con, feature_store, manifest, tickets, day)
        toolbox = day_toolbox(context, manifest, policy_engine, env)
        runner = AgentRunner(manifest, prompt, provider, version, toolbox, rules=rules, first_pass=first_pass,
                             reply_templates=replies, reply_prompt=reply_prompt, use_cache=response_cache,
                             escalate_provider=escalate_provider,
                             escalate_model_version=model_version(escalate_provider) if escalate_provider else "",
                             feature_names=feature_store.feature_names(manifest.feature_service)
                             if "customer_features" in manifest.context else [],
                             trace_tags={"dagster_run_id": context.run.run_id, "partition": day, "agent": manifest.name,
                                         "agent_version": manifest.version, "prompt": f"{prompt.name}/{prompt.version}",
                                         "model_version": version})
        labels = read_labels(labels_dir, [day]) if Path(labels_dir).exists() else {}
        with mask_traces(get_settings().pii_mask_traces):  # span payloads masked as they end (lib/governance/pii.py)
            if rollout is None:
                report, rows = runner.run(tickets, labels)
            else:
                report, rows = run_staged(context, tracking, policy_engine, runner, rollout, tickets, labels)
        record_agent_day(con, manifest.name, day, rows, toolbox.records, anchor=Path(policy_engine.audit_anchor))
    import mlflow

    mlflow.flush_trace_async_logging()
    return report


def tool_env(con: Any, feature_store: FeatureStoreResource, manifest: AgentManifest, tickets: list[dict[str, Any]],
             day: str) -> Any:
    """What the day's tools reach: the warehouse, the features as of each ticket, the KB of the day."""
    from factory_pipelines.lib.agents.retrieval import KbIndex
    from factory_pipelines.lib.agents.toolbox import ToolEnv

    articles = con.execute(KB_SQL, {"day": day}).df().to_dict("records") if "kb_search" in manifest.tools else []
    features = day_features(feature_store, manifest, tickets, day)
    return ToolEnv(con=con, kb=KbIndex(articles) if articles else None, feature_service=manifest.feature_service,
                   as_of=datetime.combine(date.fromisoformat(day) + timedelta(days=1), time()),
                   online_features=features.one, online_features_many=features.many)


def day_toolbox(context: dg.AssetExecutionContext, manifest: AgentManifest, policy_engine: PolicyEngineResource,
                env: Any, *, log_only: bool = False) -> Any:
    """The day's toolbox behind the agent's Cedar gate, with its own budget (a shadow's calls are log-only) and
    the drift of the nights before the day (a day never reads its own night: re-runs decide alike)."""
    from factory_pipelines.lib.agents.toolbox import Budget, Toolbox
    from factory_pipelines.lib.drift.status import drift_status
    from factory_pipelines.lib.governance.gate import CedarGate
    from factory_pipelines.lib.governance.shop import refunds_used_cents

    day, config = context.partition_key, policy_engine.gate_config()
    budget = Budget.from_manifest(manifest.budgets, refunds_used_cents(env.con, manifest.name, day, config))
    drift = drift_status(env.con, manifest.name, date.fromisoformat(day) - timedelta(days=1))
    gate = CedarGate.for_agent(manifest, policy_engine.engine(manifest.policy_set), policy_engine.switches(), config,
                               env.con, budget, as_of=env.as_of, review_ttl_hours=policy_engine.review_ttl_hours,
                               drift_status=drift.status, drift_slices=drift.slices)
    return Toolbox(manifest.name, env, gate, budget, run_id=context.run.run_id, partition=day, log_only=log_only)


def rollout_of(tracking: TrackingResource, manifest: AgentManifest, suite_file: Path | None) -> Any:
    """The challenger in shadow or canary for this agent (aliases `shadow`/`canary`), or None."""
    from dataclasses import replace

    from factory_pipelines.lib.evals.promotion import Aliases, slots
    from factory_pipelines.lib.evals.rollout import staged
    from factory_pipelines.lib.evals.suites import load_suite

    aliases = Aliases(tracking.client(), tracking.tracking_uri)
    rollout = staged(aliases, slots(aliases, manifest), None)
    stages = load_suite(suite_file).stages if rollout and rollout.stage == "canary" and suite_file else None
    return replace(rollout, share=stages.canary_share) if stages else rollout  # the suite's share, not the default


def run_staged(context: dg.AssetExecutionContext, tracking: TrackingResource, policy_engine: PolicyEngineResource,
               champion: Any, rollout: Any, tickets: list[dict[str, Any]],
               labels: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """A day with a staged challenger. Shadow: the champion acts on every ticket, the challenger decides them too
    with log-only calls. Canary: the challenger acts on its share, the champion on the rest and, log-only, on the
    canary's tickets too. The acting side's report and rows are returned; the other side's go to the shadow tables."""
    from dataclasses import replace

    from factory_pipelines.lib.agents.records import write_shadow_results
    from factory_pipelines.lib.evals.rollout import in_canary

    agent, day = champion.manifest.name, context.partition_key
    prompt = resolve_prompt(f"prompts:/{rollout.challenger['prompt']}")
    first_pass = champion.first_pass
    if rollout.challenger.get("first_pass", "none") not in ("none", rollout.champion.get("first_pass")):
        first_pass = resolve_first_pass(tracking, f"models:/{rollout.challenger['first_pass']}")
    tags = {**champion.trace_tags, "stage": rollout.stage}
    challenger = replace(champion, prompt=prompt, first_pass=first_pass,
                         trace_tags={**tags, "role": "challenger", "prompt": f"{prompt.name}/{prompt.version}"})
    shadow_box = day_toolbox(context, champion.manifest, policy_engine, champion.toolbox.env, log_only=True)
    if rollout.stage == "shadow":
        report, rows = champion.run(tickets, labels)
        shadow, shadow_role, shadow_tickets = replace(challenger, toolbox=shadow_box), "challenger", tickets
    else:
        canary = [t for t in tickets if in_canary(agent, str(t["ticket_id"]), rollout.share)]
        chosen = {str(t["ticket_id"]) for t in canary}
        report, rows = replace(champion, trace_tags={**tags, "role": "champion"}).run(
            [t for t in tickets if str(t["ticket_id"]) not in chosen], labels)
        canary_report, canary_rows = challenger.run(canary, labels)
        report.absorb(canary_report)
        rows += canary_rows
        shadow = replace(champion, toolbox=shadow_box, trace_tags={**tags, "role": "champion"})
        shadow_role, shadow_tickets = "champion", canary
    _, shadow_rows = shadow.run(shadow_tickets, labels)
    write_shadow_results(champion.toolbox.env.con, agent, day, rollout.stage, shadow_role, shadow_rows,
                         shadow_box.records)
    context.log.info(f"{agent} {rollout.stage}: challenger {rollout.changed()}; {len(shadow_rows)} ticket(s) decided "
                     f"in shadow by the {shadow_role}, nothing executed")
    report.rollout = {"stage": rollout.stage, "challenger": rollout.changed(), "shadow_tickets": len(shadow_rows),
                      "canary_tickets": len(shadow_rows) if rollout.stage == "canary" else 0}
    return report, rows


def report_metadata(report: Any) -> dict[str, Any]:
    """A day of an agent in numbers: tickets, actions, tokens, cost, latency, accuracy on labelled tickets."""
    metadata: dict[str, Any] = {
        "tickets": report.tickets, "decided": report.statuses.get("decided", 0),
        "not_decided": len(report.errors), "statuses": dg.MetadataValue.json(dict(report.statuses)),
        "actions": dg.MetadataValue.json(dict(report.actions)),
        "tool_calls": dg.MetadataValue.json(dict(report.tool_calls)),
        "gate_allowed": report.verdicts.get("allow", 0), "gate_denied": report.verdicts.get("deny", 0),
        "gate_escalated": report.verdicts.get("escalate", 0), "policy_alerts": report.policy_alerts,
        "policy_set": report.policy_hash,
        "model_calls": report.model_calls, "cache_hits": report.cache_hits,
        "tokens_in": report.tokens_in, "tokens_out": report.tokens_out, "cost_usd": round(report.cost_usd, 6),
        "latency_p50_s": round(report.percentile(0.5), 4), "latency_p95_s": round(report.percentile(0.95), 4),
        "wall_s": round(report.wall_s, 2),
        "tickets_per_s": round(report.tickets / report.wall_s, 2) if report.wall_s else 0.0,
        "prompt_version": report.prompt_version, "model_version": report.model_version,
        "first_pass": report.first_pass, "labelled_tickets": report.labelled,
        **{k: float(v) for k, v in report.accuracy.items()},
    }
    if report.rollout:  # a challenger in shadow or canary decided the day too
        metadata["rollout"] = dg.MetadataValue.json(report.rollout)
    if report.errors:
        metadata["not_decided_tickets"] = dg.MetadataValue.md(
            "| ticket | reason |\n|---|---|\n" + "\n".join(f"| {t} | {e[:200]} |" for t, e in report.errors[:50]))
    return metadata
