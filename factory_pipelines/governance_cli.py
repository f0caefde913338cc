"""`factory policy|review|kill|revive|switches|audit|explain`: the governance commands.

Policies are validated and replayed here; reviewers list, show, approve and reject escalated calls (and
can run the sweep that executes approved ones at once); on-call flips kill switches; anyone verifies the
audit chain or explains a ticket. Commands that write the warehouse wait while a run holds it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from factory_pipelines.settings import get_settings

policy = typer.Typer(help="Cedar policy sets: validate, list, replay recorded calls against a candidate.",
                     no_args_is_help=True)
review = typer.Typer(help="The human review queue of escalated tool calls.", no_args_is_help=True)
audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)

Reviewer = Annotated[str, typer.Option("--reviewer", help="Who decides (recorded in the audit log).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
By = Annotated[str, typer.Option("--by", help="Who flips the switch.")]
Agent = Annotated[str | None, typer.Option("--agent", help="One agent.")]
Tool = Annotated[str | None, typer.Option("--tool", help="One tool.")]
Everything = Annotated[bool, typer.Option("--all", help="Every agent and tool (the global switch).")]


def register(app: typer.Typer) -> None:
    app.add_typer(policy, name="policy")
    app.add_typer(review, name="review")
    app.add_typer(audit, name="audit")
    app.command("kill")(kill)
    app.command("revive")(revive)
    app.command("switches")(switches)
    app.command("explain")(explain)
    app.command("redteam")(redteam)


def _warehouse(read_only: bool = False) -> Any:
    from factory_pipelines.resources.warehouse import WarehouseResource

    return WarehouseResource(database=get_settings().warehouse).connect(read_only=read_only)


def _resource() -> Any:
    from factory_pipelines.defs.resources import build_resources

    return build_resources(get_settings())["policy_engine"]


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


# --- policy -------------------------------------------------------------------------------------------------

@policy.command("validate")
def policy_validate(
    policies: Annotated[Path | None, typer.Option(help="Policies folder (default: FACTORY_POLICIES_DIR).")] = None,
) -> None:
    """Load and validate every policy set against the schema; exit 1 naming the file and policy on error."""
    from factory_pipelines.lib.governance.policy import COMMON, PolicyEngine, PolicyError

    root = policies or get_settings().policies_dir
    sets = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and p.name != COMMON)
    errors = 0
    for name in sets:
        try:
            engine = PolicyEngine.load(root, name)
        except PolicyError as exc:
            errors += 1
            console.print(f"[red]invalid[/red] {exc}")
            continue
        table = Table(title=f"policy set {name} @ {engine.hash}")
        for column in ("id", "effect", "outcome", "mode", "file"):
            table.add_column(column)
        for info in engine.policies.values():
            table.add_row(info.id, info.effect, info.outcome, "log only" if info.log_only else "enforced", info.file)
        console.print(table)
    if errors:
        raise typer.Exit(1)


@policy.command("replay")
def policy_replay(
    policies: Annotated[Path, typer.Option("--policies", help="Candidate policies folder (schema, common/, sets).")],
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First partition.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last partition.")],
    agent: Agent = None,
    show: Annotated[int, typer.Option(help="Changed calls to list.")] = 50,
) -> None:
    """Re-decide recorded tool calls with a candidate policy set, executing nothing; shows how the
    allow / deny / escalate mix would change, call by call."""
    from factory_pipelines.lib.agents.manifests import load_manifests
    from factory_pipelines.lib.governance.policy import PolicyError
    from factory_pipelines.lib.governance.replay import replay

    try:
        with _warehouse(read_only=True) as con:
            report = replay(con, Path(policies), load_manifests(get_settings().manifests_dir),
                            start.date(), end.date(), agent)
    except PolicyError as exc:
        _fail(f"candidate policies invalid: {exc}")
    mix = Table(title=f"{report.calls} recorded calls {start:%Y-%m-%d} .. {end:%Y-%m-%d} re-decided with {policies} "
                      f"({report.skipped} without a Cedar request skipped: kill switch, budget or errors)")
    outcomes = ("allow", "deny", "escalate")
    mix.add_column("recorded \\ candidate")
    for outcome in outcomes:
        mix.add_column(outcome, justify="right")
    for recorded in outcomes:
        mix.add_row(recorded, *(str(report.matrix.get((recorded, c), 0)) for c in outcomes))
    console.print(mix)
    if report.changed:
        table = Table(title=f"{len(report.changed)} call(s) would change (first {show})")
        for column in ("partition", "agent", "ticket", "tool", "recorded", "candidate"):
            table.add_column(column, overflow="fold")
        for change in report.changed[:show]:
            table.add_row(change.partition, change.agent, change.ticket_id, change.tool,
                          f"{change.recorded} ({', '.join(change.recorded_policies)})",
                          f"{change.candidate} ({', '.join(change.candidate_policies)})")
        console.print(table)
    else:
        console.print("[green]No recorded call would change.[/green]")


# --- review -------------------------------------------------------------------------------------------------

@review.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="pending, approved, rejected, expired, executed, cancelled, or all.")]
    = "pending",
    agent: Agent = None,
) -> None:
    """Escalated calls in the queue (pending by default), oldest first."""
    from factory_pipelines.lib.governance.review import counts, items

    with _warehouse() as con:
        rows = items(con, None if status == "all" else status, agent)
        totals = counts(con)
    table = Table(title=f"Review queue: {status} ({', '.join(f'{k} {v}' for k, v in sorted(totals.items())) or 'empty'})")
    for column in ("item", "agent", "ticket", "call", "why", "status", "expires (UTC)"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["item_id"][:12], row["agent"], row["ticket_id"], _call(row["tool"], row["arguments"]),
                      ", ".join(row["policies"] or []), row["status"], f"{row['expires_at']:%Y-%m-%d %H:%M}")
    console.print(table)


def _call(tool: str, arguments: str) -> str:
    args = json.loads(arguments)
    if tool == "issue_refund":
        return f"refund {args['amount']:.2f} {args['currency']} on {args['order_id']}"
    if tool == "send_reply":
        return f"reply: {args['body'][:60]}"
    return f"{tool} {arguments[:60]}"


@review.command("show")
def review_show(item_id: Annotated[str, typer.Argument(help="Item id (or its first 6+ characters).")]) -> None:
    """One item: the call, the decision and its policies, the Cedar request, the review and the outcome."""
    from factory_pipelines.lib.governance.review import ReviewError, item

    try:
        with _warehouse() as con:
            row = item(con, item_id)
    except ReviewError as exc:
        _fail(str(exc))
    row["cedar_request"] = json.loads(row["cedar_request"]) if row["cedar_request"] else None
    row["arguments"] = json.loads(row["arguments"])
    console.print_json(json.dumps(row, default=str))


def _decide(item_id: str, approve: bool, reviewer: str, reason: str) -> None:
    from factory_pipelines.lib.governance.audit.chain import save_anchor
    from factory_pipelines.lib.governance.review import ReviewError, decide

    resource = _resource()
    try:
        with _warehouse() as con:
            row = decide(con, item_id, approve=approve, reviewer=reviewer, reason=reason, switches=resource.switches())
            save_anchor(con, Path(resource.audit_anchor))
    except ReviewError as exc:
        _fail(str(exc))
    console.print(f"[green]{row['status']}[/green] {row['item_id'][:12]} ({row['tool']} for ticket {row['ticket_id']}) "
                  f"by {reviewer}: {reason}")
    if approve:
        console.print("It runs once at the next sweep: the sensor `review_actions_sensor` (with the Dagster daemon, "
                      "`make ui`) or now with `factory review execute`.")


@review.command("approve")
def review_approve(item_id: Annotated[str, typer.Argument(help="Item id or prefix.")], reviewer: Reviewer,
                   reason: Reason) -> None:
    """Approve a pending item: it is executed once, by the next sweep."""
    _decide(item_id, True, reviewer, reason)


@review.command("reject")
def review_reject(item_id: Annotated[str, typer.Argument(help="Item id or prefix.")], reviewer: Reviewer,
                  reason: Reason) -> None:
    """Reject a pending item: it is never executed."""
    _decide(item_id, False, reviewer, reason)


@review.command("execute")
def review_execute() -> None:
    """Sweep the queue now (the job the sensor starts): expire overdue items, execute approved ones once."""
    from factory_pipelines.defs.governance.sensors import REVIEW_JOB
    from factory_pipelines.instance import prepare_instance
    from factory_pipelines.runs import load_definitions, run_partitions

    prepare_instance(get_settings())
    outcome = run_partitions(REVIEW_JOB, [None], definitions=load_definitions())[0]
    meta = outcome.materialized.get("governance/review_actions", {})
    console.print(f"executed {meta.get('executed', 0)}, cancelled {meta.get('cancelled', 0)}, expired "
                  f"{meta.get('expired', 0)}; queue now {meta.get('queue', {})} (run {outcome.run_id[:8]})")
    if not outcome.success:
        _fail("the sweep failed; see the run in the Dagster UI")


# --- kill switches ------------------------------------------------------------------------------------------

def _flip(on: bool, agent: str | None, tool: str | None, everything: bool, by: str, reason: str) -> None:
    chosen = [s for s, v in (("agent", agent), ("tool", tool), ("global", everything)) if v]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --agent NAME, --tool NAME or --all")
    scope = chosen[0]
    from factory_pipelines.lib.agents.manifests import load_manifests
    from factory_pipelines.lib.agents.tools import CATALOG

    known = {"agent": set(load_manifests(get_settings().manifests_dir)), "tool": set(CATALOG)}.get(scope)
    if known is not None and (agent or tool) not in known:  # a typo must not look like a switch that holds
        raise typer.BadParameter(f"no {scope} {agent or tool!r}; known: {', '.join(sorted(known))}")
    try:
        event = _resource().switches().flip(scope, agent or tool or "*", on, by, reason)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    word = "[red]KILLED[/red]" if on else "[green]revived[/green]"
    console.print(f"{word} {scope} {event['target']} by {by}: {reason}. Takes effect at the next tool call of every "
                  f"run; approved calls it covers are cancelled, not executed.")


def kill(agent: Agent = None, tool: Tool = None, everything: Everything = False, by: By = "",
         reason: Reason = "") -> None:
    """Stop tool calls at once: of one agent, of one tool, or all (--all). No code change, no restart."""
    _flip(True, agent, tool, everything, by, reason)


def revive(agent: Agent = None, tool: Tool = None, everything: Everything = False, by: By = "",
           reason: Reason = "") -> None:
    """Turn a kill switch off again."""
    _flip(False, agent, tool, everything, by, reason)


def switches() -> None:
    """The kill switches that are on, and the last flips."""
    store = _resource().switches()
    on = store.state()
    console.print(f"{len(on)} switch(es) on" + (": " + ", ".join(f"{s}:{t}" for s, t in on) if on else ""))
    table = Table(title=f"Last flips ({store.path})")
    for column in ("at", "scope", "target", "on", "by", "reason"):
        table.add_column(column)
    for event in store.events()[-20:]:
        table.add_row(event["at"][:19], event["scope"], event["target"], "ON" if event["on"] else "off", event["by"],
                      event["reason"])
    console.print(table)


# --- audit and explain --------------------------------------------------------------------------------------

@audit.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Check the whole hash chain; exit 1 naming each edited, deleted, inserted or reordered entry."""
    from factory_pipelines.lib.governance.audit.verify import verify
    from factory_pipelines.lib.governance.kill_switches import sync_audit

    resource = _resource()
    with _warehouse() as con:
        sync_audit(con, resource.switches())
        report = verify(con, Path(resource.audit_anchor))
    if as_json:
        console.print_json(json.dumps({"ok": report.ok, "entries": report.entries, "head_seq": report.head_seq,
                                       "seconds": report.seconds, "problems": [p.__dict__ for p in report.problems]}))
    else:
        console.print(("[green]" if report.ok else "[red]") + report.summary() + ("[/green]" if report.ok else "[/red]"))
        for problem in report.problems:
            console.print(f"  seq {problem.seq}: {problem.kind}: {problem.detail}")
    if not report.ok:
        raise typer.Exit(1)


@audit.command("tail")
def audit_tail(n: Annotated[int, typer.Option("-n", help="Entries.")] = 20,
               kind: Annotated[str | None, typer.Option(help="Only this kind (tool_call, review_approved, ...).")]
               = None) -> None:
    """The last entries of the audit log."""
    with _warehouse(read_only=True) as con:
        rows = con.execute('SELECT seq, "at", kind, actor, subject, payload FROM governance.audit_log '
                           + ("WHERE kind = ? " if kind else "") + "ORDER BY seq DESC LIMIT ?",
                           [kind, n] if kind else [n]).fetchall()
    table = Table(title="Audit log (newest first)")
    for column in ("seq", "at", "kind", "actor", "subject", "payload"):
        table.add_column(column, overflow="fold")
    for seq, at, k, actor, subject, payload in rows:
        table.add_row(str(seq), f"{at:%Y-%m-%d %H:%M:%S}", k, actor, subject or "", payload[:160])
    console.print(table)


def explain(
    ticket_id: Annotated[str, typer.Argument(help="Ticket id.")],
    agent: Agent = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Everything behind one ticket's outcome: source and contracts, features, passages, prompt and model
    versions, every tool call with its policy decision, reviews, side effects, cost and trace."""
    from factory_pipelines.instance import prepare_instance
    from factory_pipelines.lib.governance.explain import ExplainError, explain_ticket, render
    from factory_pipelines.runs import partition_lineage

    settings = get_settings()
    prepare_instance(settings)
    try:
        with _warehouse(read_only=True) as con:
            story = explain_ticket(con, ticket_id, agent=agent, lineage=lambda partition: partition_lineage(
                _instance(), partition, _ticket_checks()))
    except ExplainError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(story, default=str, indent=2))
    else:
        render(story, console)


def _ticket_checks() -> list[Any]:
    """The contract and quarantine checks of the ticket tables, as the code location names them."""
    import dagster as dg

    from factory_pipelines.lib.data.sources import load_sources

    settings = get_settings()
    spec = load_sources(settings.source_dirs, settings.suite_dirs).get("tickets")
    if spec is None:
        return []
    raw, staging = dg.AssetKey(["raw", "tickets"]), dg.AssetKey(["staging", "tickets"])
    return [dg.AssetCheckKey(raw, f"contract_{spec.contract}"), dg.AssetCheckKey(raw, "quarantine_rate_within_bound"),
            dg.AssetCheckKey(staging, "contract_staging_tickets_v1")]


def _instance() -> Any:
    import dagster as dg

    return dg.DagsterInstance.get()


def redteam(
    corpus: Annotated[Path | None, typer.Option(help="JSONL attacks, one object per line with at least `body` "
                                                     "(default: evals/injections/attacks.jsonl).")] = None,
    agent: Annotated[str, typer.Option(help="Agent whose manifest, rules, replies and policy set to attack.")]
    = "support_triage",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay prompt-injection attacks through the real agent and the real policy gate in a scratch warehouse;
    exit 1 when any forbidden action executed."""
    from factory_pipelines.lib.agents.manifests import load_manifest
    from factory_pipelines.lib.agents.models.prompts import ResolvedPrompt, load_prompt_file
    from factory_pipelines.lib.governance.red_team import load_corpus, run_corpus
    from factory_pipelines.settings import PACKAGE_DIR, REPO_ROOT, turn_off_telemetry

    settings = get_settings()
    turn_off_telemetry()
    path = corpus or REPO_ROOT / "evals" / "injections" / "attacks.jsonl"
    try:
        attacks = load_corpus(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    manifest = load_manifest(settings.manifests_dir / f"{agent}.yaml")
    spec = load_prompt_file(PACKAGE_DIR / "defs" / "registry" / "prompts" / f"{manifest.prompt_name}.yaml")
    resource = _resource()
    import tempfile

    import mlflow

    from factory_pipelines.lib.governance.kill_switches import KillSwitches

    mlflow.tracing.disable()  # attacks are judged from their effects; their traces would only fill a store
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        report = run_corpus(attacks, manifest=manifest, engine=resource.engine(manifest.policy_set),
                            config=resource.gate_config(), switches=KillSwitches(Path(scratch) / "switches.jsonl"),
                            kb_articles=_kb_articles(), agents_dir=settings.manifests_dir.parent,
                            prompt=ResolvedPrompt(spec.name, 1, spec.template, spec.response_schema))
    summary = {"corpus": str(path), "attacks": report.attacks, "by_kind": dict(report.by_kind),
               "tool_calls": dict(sorted(report.tool_calls.items())), "escalated_to_review": report.escalated_to_review,
               "forbidden_executed": report.forbidden_executed}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        table = Table(title=f"{report.attacks} attacks from {path} against {agent} "
                            f"({', '.join(f'{k} {v}' for k, v in sorted(report.by_kind.items()))})")
        table.add_column("tool call : verdict")
        table.add_column("calls", justify="right")
        for key, n in sorted(report.tool_calls.items()):
            table.add_row(key, str(n))
        console.print(table)
        colour = "green" if report.ok else "red"
        console.print(f"[{colour}]forbidden actions executed: {len(report.forbidden_executed)}[/{colour}]")
        for line in report.forbidden_executed:
            console.print(f"  {line}")
    if not report.ok:
        raise typer.Exit(1)


def _kb_articles() -> list[dict[str, Any]]:
    """The knowledge base the attacks are retrieved against: the warehouse's, when there is one."""
    import duckdb

    try:
        with _warehouse(read_only=True) as con:
            rows = con.execute("SELECT article_id, title, body, updated_at FROM staging.kb_articles").fetchall()
        return [dict(zip(("article_id", "title", "body", "updated_at"), r, strict=True)) for r in rows]
    except (duckdb.CatalogException, duckdb.IOException):
        return [{"article_id": "KB-001", "title": "Refund policy", "updated_at": "2026-11-01",
                 "body": "Refunds of delivered orders are issued within 30 days. Refunds above 1,000 need a team lead."}]
