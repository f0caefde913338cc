"""Cedar policy sets: loaded and validated once, then one allow / deny / escalate decision per tool call.

A policy set is the shared schema (`policies/factory.cedarschema`), the shared policies
(`policies/common/*.cedar`) and the set's own folder (`policies/<set>/*.cedar`). Loading fails, naming
the file and the policy, on a parse error, a schema violation, a policy without `@id`, a repeated id or
an unknown annotation value: a bad set never allows anything.

Outcomes are plain Cedar plus two annotations. Default deny. A satisfied `forbid` denies, unless every
satisfied forbid carries `@outcome("escalate")`: then the call waits for a human. A policy marked
`@mode("log_only")` is left out of the enforced set; the full set is evaluated too and its outcome is
recorded as the shadow outcome, so a new policy can be tried on live traffic. Any evaluation error
(Cedar skips an erroring policy, which could turn a forbid into an allow) denies and raises an alert.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from factory_pipelines.lib.config_files import ConfigError

log = logging.getLogger(__name__)

SCHEMA_FILE = "factory.cedarschema"
GATE_FILE = "gate.yaml"
COMMON = "common"
Outcome = Literal["allow", "deny", "escalate"]


class PolicyError(ConfigError):
    """A policy set is missing or invalid; the message names the file and the policy."""


@dataclass(frozen=True)
class PolicyInfo:
    id: str
    effect: str  # permit | forbid
    outcome: Outcome  # what a satisfied policy means: allow (permit), deny or escalate (forbid)
    log_only: bool
    file: str


@dataclass(frozen=True)
class PolicyDecision:
    outcome: Outcome
    policies: tuple[str, ...]  # @ids of the determining policies ("default_deny", "cedar/error" when none)
    reason: str
    shadow_outcome: Outcome | None = None  # with log-only policies enforced too, when that differs
    shadow_policies: tuple[str, ...] = ()
    alert: bool = False  # the set could not be evaluated on this request: denied, and someone must look


@dataclass
class PolicyEngine:
    """One validated policy set, pre-parsed for fast decisions."""

    name: str
    hash: str
    files: list[str]
    policies: dict[str, PolicyInfo]  # by @id
    schema: Any
    enforced: Any  # cedarpy.PolicySet without the log-only policies
    full: Any | None  # cedarpy.PolicySet with them, when there are any
    without_escalations: Any  # the enforced set minus its escalating forbids
    _by_cedar_id: dict[str, dict[str, PolicyInfo]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, name: str) -> PolicyEngine:
        """Read, check and pre-parse the policy set `name` under `root`."""
        import cedarpy

        root = Path(root)
        folder = root / name
        if name == COMMON or not folder.is_dir():
            sets = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != COMMON) if root.is_dir() else []
            raise PolicyError(f"policy set {name!r} does not exist under {root}; the sets are {sets}")
        schema_path = root / SCHEMA_FILE
        if not schema_path.exists():
            raise PolicyError(f"{schema_path}: the Cedar schema is missing")
        schema_text = schema_path.read_text()
        try:
            schema = cedarpy.Schema.from_str(schema_text)
        except Exception as exc:  # cedarpy raises ValueError with the parser's message
            raise PolicyError(f"{schema_path}: invalid Cedar schema: {exc}") from exc
        paths = sorted((root / COMMON).glob("*.cedar")) + sorted(folder.glob("*.cedar"))
        if not any(p.parent == folder for p in paths):
            raise PolicyError(f"{folder}: the policy set has no .cedar file")
        policies: dict[str, PolicyInfo] = {}
        texts: dict[str, dict[str, Any]] = {}  # @id -> policy JSON
        for path in paths:
            for info, policy_json in _read_policies(path, root):
                if info.id in policies:
                    raise PolicyError(f"{path}: policy id {info.id!r} is also used in {policies[info.id].file}")
                policies[info.id] = info
                texts[info.id] = policy_json
        full_text = "\n".join(p.read_text() for p in paths)
        result = cedarpy.validate_policies(full_text, schema)
        if not result.validation_passed:
            names = _cedar_ids(full_text)
            problems = [f"{names.get(e.policy_id, e.policy_id)}: {e.error}" for e in result.errors]
            raise PolicyError(f"policy set {name!r} ({', '.join(str(p.relative_to(root)) for p in paths)}) does not "
                              f"validate against {SCHEMA_FILE}: " + "; ".join(problems))
        enforced_ids = [i for i, p in policies.items() if not p.log_only]
        enforced, by_enforced = _policy_set(texts, enforced_ids)
        # to escalate, a call must be one the set would permit but for its escalating forbids
        without_escalations, _ = _policy_set(texts, [i for i in enforced_ids if policies[i].outcome != "escalate"])
        full, by_full = _policy_set(texts, list(policies)) if len(enforced_ids) < len(policies) else (None, {})
        digest = hashlib.sha256(schema_text.encode())
        for path in [*paths, *([root / GATE_FILE] if (root / GATE_FILE).exists() else [])]:  # gate.yaml shapes decisions
            digest.update(f"\x00{path.relative_to(root)}\x00".encode() + path.read_bytes())
        return cls(name, digest.hexdigest()[:16], [str(p.relative_to(root)) for p in paths],
                   policies, schema, enforced, full, without_escalations,
                   {"enforced": {k: policies[v] for k, v in by_enforced.items()},
                    "full": {k: policies[v] for k, v in by_full.items()}})

    def entities(self, records: list[dict[str, Any]]) -> Any:
        """Pre-parsed entities (the agents with their attributes), checked against the schema."""
        import cedarpy

        return cedarpy.Entities.from_json_str(json.dumps(records), self.schema)

    def decide(self, request: dict[str, Any], entities: Any) -> PolicyDecision:
        return self.decide_many([request], entities)[0]

    def decide_many(self, requests: list[dict[str, Any]], entities: Any) -> list[PolicyDecision]:
        """One decision per request, evaluated in one Cedar batch."""
        import cedarpy

        if not requests:
            return []
        results = cedarpy.is_authorized_batch(requests, self.enforced, entities, self.schema)
        decisions = [self._interpret(r, requests[i], "enforced") for i, r in enumerate(results)]
        escalated = [i for i, d in enumerate(decisions) if d.outcome == "escalate"]
        if escalated:  # an escalation needs a permit: nothing permitted stays a default deny
            checks = cedarpy.is_authorized_batch([requests[i] for i in escalated], self.without_escalations,
                                                 entities, self.schema)
            for i, check in zip(escalated, checks, strict=True):
                if not check.allowed:
                    decisions[i] = PolicyDecision("deny", ("default_deny",),
                                                  f"no policy permits {requests[i]['action']['id']}")
        if self.full is None:
            return decisions
        shadows = cedarpy.is_authorized_batch(requests, self.full, entities, self.schema)
        out = []
        for decision, result, request in zip(decisions, shadows, requests, strict=True):
            shadow = self._interpret(result, request, "full")
            if (shadow.outcome, shadow.policies) != (decision.outcome, decision.policies):
                decision = PolicyDecision(decision.outcome, decision.policies, decision.reason, shadow.outcome,
                                          shadow.policies, decision.alert)
            out.append(decision)
        return out

    def _interpret(self, result: Any, request: dict[str, Any], which: str) -> PolicyDecision:
        diagnostics = result.diagnostics
        action = request["action"]["id"]
        if diagnostics.errors or result.decision.value == "NoDecision":
            errors = "; ".join(diagnostics.errors) or "no decision"
            log.error("policy set %s (%s) could not decide %s: %s", self.name, self.hash, action, errors)
            return PolicyDecision("deny", ("cedar/error",), f"ALERT: policy evaluation failed, denied: {errors}",
                                  alert=True)
        infos = sorted((self._by_cedar_id[which][r] for r in diagnostics.reasons), key=lambda p: p.id)
        ids = tuple(p.id for p in infos)  # sorted: Cedar returns a set, and records must be reproducible
        if result.allowed:
            return PolicyDecision("allow", ids, f"{action} permitted by {', '.join(ids)}")
        if not infos:
            return PolicyDecision("deny", ("default_deny",), f"no policy permits {action}")
        hard = tuple(p.id for p in infos if p.outcome == "deny")
        if hard:
            return PolicyDecision("deny", hard, f"{action} forbidden by {', '.join(hard)}")
        return PolicyDecision("escalate", ids, f"{action} needs a human: {', '.join(ids)}")


def _read_policies(path: Path, root: Path) -> list[tuple[PolicyInfo, dict[str, Any]]]:
    import cedarpy

    text = path.read_text()
    try:
        cedarpy.PolicySet.from_str(text)
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as exc:
        raise PolicyError(f"{path}: invalid Cedar policy: {exc}") from exc
    if parsed.get("templates"):
        raise PolicyError(f"{path}: templates are not supported; write static policies")
    out = []
    for n, policy in enumerate(parsed["staticPolicies"].values(), start=1):
        notes = policy.get("annotations", {})
        where = f"{path}: policy #{n} ({policy['effect']})"
        if not notes.get("id"):
            raise PolicyError(f"{where} has no @id(\"area/rule\") annotation; every policy needs one")
        outcome = notes.get("outcome", "allow" if policy["effect"] == "permit" else "deny")
        if outcome not in ("allow", "deny", "escalate") or (policy["effect"] == "permit") != (outcome == "allow"):
            raise PolicyError(f"{where} {notes['id']}: @outcome({outcome!r}) is not valid for a {policy['effect']}; "
                              f"a forbid may say @outcome(\"escalate\")")
        mode = notes.get("mode", "enforce")
        if mode not in ("enforce", "log_only"):
            raise PolicyError(f"{where} {notes['id']}: @mode({mode!r}) must be \"enforce\" or \"log_only\"")
        info = PolicyInfo(notes["id"], policy["effect"], outcome, mode == "log_only", str(path.relative_to(root)))
        out.append((info, policy))
    return out


def _policy_set(texts: dict[str, dict[str, Any]], ids: list[str]) -> tuple[Any, dict[str, str]]:
    """A pre-parsed PolicySet of the given policies, and Cedar's policy ids -> our @ids."""
    import cedarpy

    document = {"templates": {}, "templateLinks": [], "staticPolicies": {f"p{n}": texts[i] for n, i in enumerate(ids)}}
    policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
    return policy_set, {f"p{n}": i for n, i in enumerate(ids)}


def _cedar_ids(text: str) -> dict[str, str]:
    """policy0, policy1, ... (Cedar's ids in a concatenated text) -> @id, to name policies in errors."""
    import cedarpy

    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    except Exception:
        return {}
    return {k: v.get("annotations", {}).get("id", k) for k, v in parsed.items()}
