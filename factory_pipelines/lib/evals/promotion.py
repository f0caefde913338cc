"""Promotion and rollback of an agent's configuration: its prompt and its first-pass classifier move between
the registry aliases `challenger` and `champion` only through here.

A promotion moves exactly the versions the latest promotion gate compared (`factory eval` or the
`evals/<agent>` asset logs each comparison as an MLflow run tagged with both sides' versions and the
verdict), only when that gate passed on the suite's current dataset version and Cedar permits the operator
(`governance.operators`). It is all or nothing: the aliases are read first, moved one by one, and restored
if MLflow fails half-way or the audit event cannot be written. Every promotion, refusal and rollback is an
audit event; the alias history that rollback restores comes from those events, not from MLflow, whose
registry keeps no history of aliases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from factory_pipelines.lib.agents.manifests import MODEL_URI, PROMPT_URI
from factory_pipelines.lib.evals.rollout import STAGES, Stages, live_days, stage_versions
from factory_pipelines.lib.governance.audit.chain import AuditEvent, append, ensure_audit_log
from factory_pipelines.lib.governance.operators import authorize
from factory_pipelines.lib.sql import transaction

KINDS = {"prompt": "prompt", "first_pass": "model"}  # configuration key -> registry kind
ROLE_TAG, GATE_TAG, DATASET_TAG = "eval.role", "eval.gate", "dataset_version"
PROMOTED, REFUSED, ROLLED_BACK, FAILED = "promoted", "promotion_refused", "rolled_back", "alias_move_failed"
STAGED, WITHDRAWN = "promotion_staged", "stage_withdrawn"  # into shadow or canary; a staged challenger taken out


class PromotionError(RuntimeError):
    """A promotion or rollback that did not happen; the message says why and what (if anything) moved."""


class PromotionRefused(PromotionError):
    """The gate, its absence or the policies refused the promotion; nothing moved. `failures` are the gate's."""

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


def side_tags(label: str, versions: Mapping[str, str]) -> dict[str, str]:
    """The tags naming one side's versions on a comparison run (`eval.champion.prompt = support_triage/1`)."""
    return {f"eval.{label}.{key}": value for key, value in versions.items()}


def comparison_tags(champion: Mapping[str, str], challenger: Mapping[str, str], passed: bool) -> dict[str, str]:
    return {ROLE_TAG: "comparison", GATE_TAG: "passed" if passed else "failed",
            **side_tags("champion", champion), **side_tags("challenger", challenger)}


@dataclass(frozen=True)
class Slot:
    """One registered thing an agent's configuration names (its prompt, or its classifier) and its aliases."""

    key: str  # prompt | first_pass
    name: str
    champion: int | None
    challenger: int | None

    @property
    def kind(self) -> str:
        return KINDS[self.key]

    def ref(self, version: int | None) -> str:
        return f"{self.name}/{version}"


class Aliases:
    """Read and move the aliases of prompts and registered models through one MLflow client."""

    def __init__(self, client: Any, where: str) -> None:
        self.client, self.where = client, where

    def get(self, kind: str, name: str, alias: str) -> int | None:
        try:
            found = (self.client.get_prompt_version_by_alias(name, alias) if kind == "prompt"
                     else self.client.get_model_version_by_alias(name, alias))
        except Exception as exc:  # an unknown alias or name is "none"; anything else is MLflow failing
            if "not found" in str(exc).lower():
                return None
            raise PromotionError(f"MLflow at {self.where} could not be read ({_first_line(exc)}): no alias moved") from exc
        return int(found.version)

    def set(self, kind: str, name: str, alias: str, version: int | None) -> None:
        if kind == "prompt":
            self.client.set_prompt_alias(name, alias, int(version)) if version is not None \
                else self.client.delete_prompt_alias(name, alias)
        else:
            self.client.set_registered_model_alias(name, alias, str(version)) if version is not None \
                else self.client.delete_registered_model_alias(name, alias)


def slots(aliases: Aliases, manifest: Any) -> dict[str, Slot]:
    """The agent's prompt, and its first-pass classifier when it has one, with their current aliases."""
    names = {"prompt": PROMPT_URI.match(manifest.prompt)["name"]}  # type: ignore[index]
    if manifest.decision.first_pass:
        names["first_pass"] = MODEL_URI.match(manifest.decision.first_pass)["name"]  # type: ignore[index]
    return {key: Slot(key, name, aliases.get(KINDS[key], name, "champion"), aliases.get(KINDS[key], name, "challenger"))
            for key, name in names.items()}


@dataclass(frozen=True)
class AliasMove:
    kind: str
    name: str
    alias: str
    version: int | None  # None: the alias is removed
    before: int | None


def move_all(aliases: Aliases, moves: list[AliasMove]) -> None:
    """Every move, or none: on a failure the moves already made are undone, last first."""
    done: list[AliasMove] = []
    for move in moves:
        try:
            aliases.set(move.kind, move.name, move.alias, move.version)
        except Exception as exc:
            stuck = _undo(aliases, done)
            what = f"moving {move.kind} {move.name}@{move.alias} to {move.version}"
            if stuck:
                raise PromotionError(f"MLflow at {aliases.where} failed {what} ({_first_line(exc)}), and restoring "
                                     f"failed too; set these by hand: {'; '.join(stuck)}") from exc
            raise PromotionError(f"MLflow at {aliases.where} failed {what} ({_first_line(exc)}): the "
                                 f"{len(done)} alias(es) moved before were restored, no alias moved") from exc
        done.append(move)


def _undo(aliases: Aliases, done: list[AliasMove]) -> list[str]:
    stuck = []
    for move in reversed(done):
        try:
            aliases.set(move.kind, move.name, move.alias, move.before)
        except Exception:
            stuck.append(f"{move.kind} {move.name}@{move.alias} should be {move.before}, is {move.version}")
    return stuck


@dataclass(frozen=True)
class GateRecord:
    """The latest comparison of exactly two configurations: its verdict and the runs behind it."""

    run_id: str
    passed: bool
    failures: list[str]
    champion_run: str
    challenger_run: str
    dataset_version: str


def latest_gate(client: Any, experiment_id: str, dataset_version: str, champion: Mapping[str, str],
                challenger: Mapping[str, str]) -> GateRecord | None:
    """The most recent comparison run of these two configurations on this dataset version, if any."""
    wanted = {ROLE_TAG: "comparison", DATASET_TAG: dataset_version, **side_tags("champion", champion),
              **side_tags("challenger", challenger)}
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in wanted.items())
    runs = client.search_runs([experiment_id], filter_string=where, order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        return None
    run = runs[0]
    failures = []
    if run.data.tags.get(GATE_TAG) != "passed":
        failures = list(_artifact_json(client, run.info.run_id, "comparison.json").get("failures", []))
    return GateRecord(run.info.run_id, run.data.tags.get(GATE_TAG) == "passed", failures,
                      run.data.tags.get("eval.champion_run_id", ""), run.data.tags.get("eval.challenger_run_id", ""),
                      dataset_version)


def _artifact_json(client: Any, run_id: str, path: str) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        try:
            return json.loads(Path(client.download_artifacts(run_id, path, scratch)).read_text())
        except Exception:  # the verdict is on the run's tags; the reasons are a courtesy
            return {}


@dataclass
class Promotion:
    """What a promotion moved (or would have), judged by which gate, decided by whom."""

    action: str  # promote | rollback
    agent: str
    operator: str
    role: str
    changes: dict[str, dict[str, Any]]  # key -> {kind, name, from, to}
    gate: GateRecord | None = None
    audit_seq: int | None = None
    policies: list[str] = field(default_factory=list)
    stage: dict[str, Any] = field(default_factory=dict)  # {from, to, days}: offline, shadow, canary, champion

    def payload(self) -> dict[str, Any]:
        return {"action": self.action, "agent": self.agent, "operator": self.operator, "role": self.role, "changes": self.changes,
                "policies": self.policies, "gate": asdict(self.gate) if self.gate else None, "stage": self.stage}


def promote(*, client: Any, where: str, con: Any, policies_dir: Path, operator: str, manifest: Any,
            experiment_id: str | None, dataset_version: str, only: set[str] | None = None,
            stages: Stages | None = None) -> Promotion:
    """Move the challenger one stage on (`only`: a subset of {"prompt", "first_pass"}): from offline to shadow,
    canary or champion as the suite's `stages` say, when the latest gate for exactly those versions passed, the
    stage it leaves has its passing live days, and the policies permit it; else PromotionRefused. `con` is a
    writable warehouse connection (the audit log, the live days)."""
    aliases = Aliases(client, where)
    current = slots(aliases, manifest)
    moving = {k: s for k, s in current.items() if s.challenger is not None and s.challenger != s.champion
              and (only is None or k in only)}
    if not moving:
        named = ", ".join(f"{s.kind} {s.name} (champion {s.champion})" for k, s in current.items()
                          if only is None or k in only)
        raise PromotionError(f"{manifest.name}: nothing to promote, no challenger for {named}; register one "
                             "(change a prompt file or retrain, then `factory run --job models_job`); a provider parity comparison "
                             "(`factory eval --provider`) is never promoted: a provider is chosen in the manifest")
    promotion = Promotion("promote", manifest.name, operator, "", {k: {"kind": s.kind, "name": s.name, "from": s.champion,
                                                            "to": s.challenger} for k, s in moving.items()})
    champion = {k: s.ref(s.champion) if s.champion else "none" for k, s in current.items()}
    challenger = {**champion, **{k: s.ref(s.challenger) for k, s in moving.items()}}
    gate = latest_gate(client, experiment_id, dataset_version, champion, challenger) if experiment_id else None
    promotion.gate = gate
    stage = next((st for st in STAGES if stage_versions(aliases, moving, st) == {k: s.challenger for k, s in
                                                                                  moving.items()}), "offline")
    promotion.stage = {"from": stage, "to": stages.after(stage) if stages else "champion"}
    decision, promotion.role = authorize(policies_dir, operator, "promote", manifest,
                                         {"changes": sorted(KINDS[k] for k in moving), "gate_passed": bool(gate and gate.passed),
                                          "open_drift_alerts": open_drift_alerts(con, manifest.name)})
    promotion.policies = list(decision.policies)
    failures = gate.failures if gate else []
    reason = _refusal(manifest.name, champion, challenger, dataset_version, gate, decision) \
        if gate is None or not gate.passed or decision.outcome != "allow" else None
    if reason is None and stage in STAGES and stages is not None:
        days = live_days(con, manifest.name, stage, challenger)
        promotion.stage["days"] = [{"day": d, "passed": ok} for d, ok, _ in days]
        passed = sum(ok for _, ok, _ in days)
        if passed < stages.days(stage):
            reason = (f"{manifest.name}: {passed} of the {stages.days(stage)} passing {stage} "
                      f"day(s) the suite asks for ({len(days)} live day(s) judged); run more agent days")
            failures = [f"{d}: {'; '.join(why)}" for d, ok, why in days if not ok]
    if reason is not None:
        _record(con, REFUSED, promotion, reason=reason)
        raise PromotionRefused(reason, failures)
    moves = _stage_moves(aliases, current, moving, promotion.stage["to"])
    _moved_and_recorded(aliases, moves, con, PROMOTED if promotion.stage["to"] == "champion" else STAGED, promotion)
    return promotion


def open_drift_alerts(con: Any, agent: str) -> int:
    """How many of the agent's drift alerts at error level nobody acknowledged (any night): while there is one,
    the shipped policy `operations/promote_needs_no_open_drift` forbids promoting."""
    from factory_pipelines.lib.alerts.store import list_alerts

    return len(list_alerts(con, asset=f"drift/{agent}", severity="error"))


def _stage_moves(aliases: Aliases, current: dict[str, Slot], moving: dict[str, Slot], target: str) -> list[AliasMove]:
    """The alias moves that put the moving versions at `target` (a stage, or champion), clearing the other stages."""
    if target == "champion":
        moves = [AliasMove(s.kind, s.name, "champion", s.challenger, s.champion) for s in moving.values()]
        moves += [AliasMove(s.kind, s.name, "challenger", None, s.challenger) for s in moving.values()]
    else:
        moves = [AliasMove(s.kind, s.name, target, s.challenger, aliases.get(s.kind, s.name, target))
                 for s in moving.values()]
    for stage in STAGES:
        if stage != target:
            moves += [AliasMove(current[k].kind, current[k].name, stage, None, v)
                      for k, v in stage_versions(aliases, current, stage).items()]
    return moves


def _refusal(agent: str, champion: Mapping[str, str], challenger: Mapping[str, str], dataset_version: str,
             gate: GateRecord | None, decision: Any) -> str:
    versions = ", ".join(f"{k} {champion[k]} -> {challenger[k]}" for k in challenger if challenger[k] != champion[k])
    if gate is None:
        return (f"{agent}: no promotion gate compared exactly {versions} on dataset version {dataset_version}; "
                f"run `factory eval {agent}` first")
    if not gate.passed:
        return f"{agent}: the latest promotion gate for {versions} failed (MLflow run {gate.run_id})"
    if "operations/promote_needs_no_open_drift" in decision.policies:
        return (f"{agent}: drift has error alerts nobody acknowledged ({decision.reason}); read the drift report "
                f"(`factory alerts list --asset drift/{agent}`), then `factory alerts ack <id>` and promote again")
    return f"{agent}: the policies do not permit this promotion: {decision.reason}"


def _moved_and_recorded(aliases: Aliases, moves: list[AliasMove], con: Any, kind: str, change: Promotion) -> None:
    """Move the aliases, then write the audit event; if the event cannot be written, move them back."""
    try:
        move_all(aliases, moves)
    except PromotionError as exc:
        _record(con, FAILED, change, reason=str(exc))
        raise
    try:
        change.audit_seq = _record(con, kind, change)
    except Exception as exc:
        stuck = _undo(aliases, moves)
        raise PromotionError(f"the audit event could not be written ({_first_line(exc)}); "
                             + (f"restoring failed, set by hand: {'; '.join(stuck)}" if stuck else "no alias moved")) from exc


def _record(con: Any, kind: str, change: Promotion, **extra: Any) -> int:
    ensure_audit_log(con)
    with transaction(con):
        (seq,) = append(con, [AuditEvent(kind, f"operator:{change.operator}", f"agent:{change.agent}",
                                         {**change.payload(), **extra})])
    return seq


def champion_history(con: Any, agent: str) -> list[dict[str, Any]]:
    """The agent's promotions and rollbacks, oldest first: {seq, kind, changes}."""
    ensure_audit_log(con)
    rows = con.execute("SELECT seq, kind, payload FROM governance.audit_log WHERE subject = ? AND kind IN (?, ?) "
                       "ORDER BY seq", [f"agent:{agent}", PROMOTED, ROLLED_BACK]).fetchall()
    return [{"seq": seq, "kind": kind, **json.loads(payload)} for seq, kind, payload in rows]


def restorable(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The promotion a rollback undoes: the latest one not undone yet (each rollback undoes the one before)."""
    stack: list[dict[str, Any]] = []
    for event in history:
        if event["kind"] == PROMOTED:
            stack.append(event)
        elif stack:
            stack.pop()
    return stack[-1] if stack else None


def rollback(*, client: Any, where: str, con: Any, policies_dir: Path, operator: str, manifest: Any) -> Promotion:
    """Take out a challenger in shadow or canary (the champion stays), else restore the champion the latest
    promotion replaced; the demoted versions get the alias `rolled_back` (not `challenger`: its passed gate
    must not promote it again)."""
    aliases = Aliases(client, where)
    current = slots(aliases, manifest)
    staged_now = {stage: stage_versions(aliases, current, stage) for stage in STAGES}
    if any(staged_now.values()):
        return _withdraw(aliases, current, staged_now, con, policies_dir, operator, manifest)
    undo = restorable(champion_history(con, manifest.name))
    if undo is None:
        raise PromotionError(f"{manifest.name}: no earlier champion to restore: the audit log has no promotion of "
                             "this agent that was not rolled back already")
    changes = {k: {**c, "from": c["to"], "to": c["from"]} for k, c in undo["changes"].items()}
    rollback_ = Promotion("rollback", manifest.name, operator, "", changes)
    moved_outside = [f"{c['kind']} {c['name']} champion is {current[k].champion}, promotion {undo['seq']} set {c['from']}"
                     for k, c in changes.items() if k not in current or current[k].champion != c["from"]]
    if moved_outside:
        raise PromotionError(f"{manifest.name}: the champion changed since the promotion being undone "
                             f"({'; '.join(moved_outside)}); nothing moved")
    decision, rollback_.role = authorize(policies_dir, operator, "rollback", manifest)
    rollback_.policies = list(decision.policies)
    if decision.outcome != "allow":
        _record(con, REFUSED, rollback_, reason=decision.reason)
        raise PromotionRefused(f"{manifest.name}: the policies do not permit this rollback: {decision.reason}")
    moves = [AliasMove(c["kind"], c["name"], "champion", c["to"], c["from"]) for c in changes.values()]
    moves += [AliasMove(c["kind"], c["name"], "rolled_back", c["from"],
                        aliases.get(c["kind"], c["name"], "rolled_back")) for c in changes.values()]
    _moved_and_recorded(aliases, moves, con, ROLLED_BACK, rollback_)
    return rollback_


def _withdraw(aliases: Aliases, current: dict[str, Slot], staged_now: dict[str, dict[str, int]], con: Any,
              policies_dir: Path, operator: str, manifest: Any) -> Promotion:
    """Remove the `shadow`/`canary` aliases: from the next agent day the champion alone decides and acts."""
    changes = {k: {"kind": current[k].kind, "name": current[k].name, "from": v, "to": current[k].champion,
                   "stage": stage} for stage, found in staged_now.items() for k, v in found.items()}
    withdrawal = Promotion("withdraw", manifest.name, operator, "", changes,
                           stage={"from": next(st for st, found in staged_now.items() if found), "to": "offline"})
    decision, withdrawal.role = authorize(policies_dir, operator, "rollback", manifest)
    withdrawal.policies = list(decision.policies)
    if decision.outcome != "allow":
        _record(con, REFUSED, withdrawal, reason=decision.reason)
        raise PromotionRefused(f"{manifest.name}: the policies do not permit this rollback: {decision.reason}")
    moves = [AliasMove(current[k].kind, current[k].name, stage, None, v)
             for stage, found in staged_now.items() for k, v in found.items()]
    _moved_and_recorded(aliases, moves, con, WITHDRAWN, withdrawal)
    return withdrawal


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
