"""One agent over one day of tickets: gather context, decide, act, record, trace. Declared, not coded.

Per ticket, in one MLflow trace: the manifest's `context` tools (features, KB passages, the order), a
first pass by a registered classifier, the manifest's rules, the model for the fields still open (its
JSON schema narrowed to what is left to decide), the rules again (policy has the last word), a reply
from templates or a prompt, then the manifest's `actions` through the toolbox (the single tool path).

Faults are contained per ticket where they belong to one ticket (a tool that raises, arguments that
break a contract, an answer that breaks the schema) and stop the run where they belong to the run (the
provider is down, the budget is spent): tickets not decided are reported with their reason, and a
re-run of the day picks them up; side effects already done are never repeated (outbox).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from factory_pipelines.lib.agents.manifests import AgentManifest
from factory_pipelines.lib.agents.outbox import canonical
from factory_pipelines.lib.agents.prompts import VARIABLE, PromptError
from factory_pipelines.lib.agents.providers import ChatProvider, ChatResult, ModelError, SchemaViolation
from factory_pipelines.lib.agents.rules import Rule, apply_rules, fill
from factory_pipelines.lib.agents.toolbox import BudgetExhausted, Toolbox, ToolCallError

ORDER_REF = re.compile(r"\bO-[0-9]{4,}\b")
AMOUNT = re.compile(r"[$€£]\s?([0-9][0-9,]*(?:\.[0-9]{1,2})?)|\b([0-9][0-9,]*(?:\.[0-9]{1,2})?)\s?(?:USD|EUR|GBP)\b")
BUILTIN_VARIABLES = ("text", "passages", "amount", "order", "decision")
CHARS_PER_TOKEN = 3  # a cautious estimate for English text; used to keep prompts inside the context window

DECISIONS_DDL = """
CREATE TABLE IF NOT EXISTS agents.decisions (
    agent VARCHAR, agent_version VARCHAR, partition DATE, ticket_id VARCHAR, status VARCHAR,
    category VARCHAR, priority VARCHAR, action VARCHAR, decision JSON, decided_by JSON, rules_fired VARCHAR[],
    tool_calls VARCHAR[], reply VARCHAR, cited_passages VARCHAR[], prompt_name VARCHAR, prompt_version INTEGER,
    model_provider VARCHAR, model_version VARCHAR, first_pass_model VARCHAR, model_calls INTEGER,
    cache_hits INTEGER, tokens_in INTEGER, tokens_out INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    truncated BOOLEAN, error VARCHAR, trace_id VARCHAR, run_id VARCHAR, decided_at TIMESTAMPTZ)
"""
TOOL_CALLS_DDL = """
CREATE TABLE IF NOT EXISTS agents.tool_calls (
    agent VARCHAR, ticket_id VARCHAR, tool VARCHAR, tool_version VARCHAR, arguments JSON, status VARCHAR,
    verdict VARCHAR, reason VARCHAR, policies VARCHAR[], executed BOOLEAN, error VARCHAR, latency_s DOUBLE,
    run_id VARCHAR, partition DATE, called_at TIMESTAMPTZ DEFAULT current_timestamp)
"""
TOOL_CALLS_GOVERNANCE = {  # columns added by the policy gate (kept as ALTERs so older warehouses upgrade in place)
    "policy_hash": "VARCHAR", "shadow_verdict": "VARCHAR", "shadow_policies": "VARCHAR[]", "cedar_request": "JSON",
    "output": "JSON"}
CACHE_DDL = """
CREATE TABLE IF NOT EXISTS agents.model_cache (
    key VARCHAR PRIMARY KEY, model_version VARCHAR, prompt VARCHAR, result JSON,
    created_at TIMESTAMPTZ DEFAULT current_timestamp)
"""


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt as the registry served it: the version every decision records."""

    name: str
    version: int
    template: str
    response_schema: dict[str, Any]

    @property
    def variables(self) -> list[str]:
        return sorted(set(VARIABLE.findall(self.template)))

    def render(self, values: dict[str, Any]) -> str:
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise PromptError(f"prompt {self.name} v{self.version} needs input variable(s) {missing}; the agent "
                              f"provides {sorted(values)}")
        return VARIABLE.sub(lambda m: str(values[m.group(1)]), self.template)


@dataclass(frozen=True)
class FirstPass:
    """A registered classifier and the version the alias resolved to."""

    uri: str
    version: str
    model: Any  # TicketClassifier

    def predict_many(self, tickets: list[dict[str, Any]], features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One batch for a day of tickets: the text is vectorized in one go, about 100x faster than per row."""
        import pandas as pd

        return self.model.predict(pd.DataFrame([{**f, **t} for t, f in zip(tickets, features, strict=True)]))


class ProviderDown(RuntimeError):
    """The model provider failed after its retries: the run stops and reports the tickets left."""


@dataclass
class RunReport:
    """What one agent run did over one day, for asset metadata and the CLI summary."""

    agent: str
    partition: str
    tickets: int = 0
    statuses: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    tool_calls: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)  # policy gate: allow / deny / escalate per call
    policy_alerts: int = 0
    policy_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    cache_hits: int = 0
    latencies: list[float] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    labelled: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: str = ""
    wall_s: float = 0.0
    prompt_version: str = ""
    model_version: str = ""
    first_pass: str = ""

    @property
    def not_done(self) -> list[str]:
        return [t for t, _ in self.errors]

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q * 100) - 1]


def schema_fields(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("properties", {}))


def field_enums(schema: dict[str, Any]) -> dict[str, list[str]]:
    return {k: list(v["enum"]) for k, v in schema.get("properties", {}).items() if "enum" in v}


def narrowed(schema: dict[str, Any], fixed: dict[str, Any], choices: dict[str, list[str]]) -> dict[str, Any]:
    """The answer schema with decided fields pinned and open ones limited to the first pass's likeliest labels."""
    out = copy.deepcopy(schema)
    props = out.get("properties", {})
    for name, value in fixed.items():
        if name in props:
            props[name] = {**props[name], "enum": [value]}
    for name, labels in choices.items():
        allowed = [v for v in props.get(name, {}).get("enum", []) if v in labels]
        if allowed:
            props[name] = {**props[name], "enum": allowed}
    return out


def parse_amount(text: str) -> float | None:
    match = AMOUNT.search(text)
    if not match:
        return None
    return float((match.group(1) or match.group(2)).replace(",", ""))


def passages_text(passages: list[dict[str, Any]]) -> str:
    """Passages quoted with their ids, for a prompt: material, not instructions."""
    return "\n".join(f'[{p["article_id"]}] {p["title"]}: "{p["text"][:400]}"' for p in passages) or "(none found)"


CONTEXT_ARGS = {  # how a read tool gets its arguments from a ticket; None: nothing to look up
    "customer_features": lambda f: {"customer_id": f["ticket"]["customer_id"], "ticket_id": f["ticket"]["ticket_id"]}
    if f["ticket"].get("customer_id") else None,
    "kb_search": lambda f: {"query": f["text"][:2000], "k": 3} if f["text"].strip() else None,
    "order_lookup": lambda f: {"order_id": ref} if (ref := f["ticket"].get("order_id") or next(
        iter(ORDER_REF.findall(f["text"])), None)) else None,
}


@dataclass
class AgentRunner:
    """Everything one agent run needs, resolved once; `run` processes a day of tickets."""

    manifest: AgentManifest
    prompt: ResolvedPrompt
    provider: ChatProvider
    model_version: str
    toolbox: Toolbox
    rules: list[Rule] = field(default_factory=list)
    first_pass: FirstPass | None = None
    reply_templates: dict[str, Any] | None = None
    reply_prompt: ResolvedPrompt | None = None
    use_cache: bool = True
    trace_tags: dict[str, str] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    _scores: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def check_prompts(self, ticket_columns: list[str]) -> None:
        """Every variable of the prompts must be something the agent knows; else no ticket is worth trying."""
        provided = set(ticket_columns) | set(BUILTIN_VARIABLES) | (
            set(self.feature_names) if "customer_features" in self.manifest.context else set())
        for prompt in filter(None, (self.prompt, self.reply_prompt)):
            missing = sorted(set(prompt.variables) - provided)
            if missing:
                raise PromptError(f"prompt {prompt.name} v{prompt.version} uses input variable(s) {missing} that agent "
                                  f"{self.manifest.name} does not provide; it provides {sorted(provided)}")

    @property
    def con(self) -> Any:
        return self.toolbox.env.con

    def run(self, tickets: list[dict[str, Any]], labels: dict[str, dict[str, Any]] | None = None) -> tuple[RunReport, list[dict[str, Any]]]:
        """Decide every ticket; returns the report and one decision row per ticket (decided or not)."""
        ensure_agent_tables(self.con)
        if tickets:
            self.check_prompts(list(tickets[0]))
        self._scores = self._score_first_pass(tickets)
        prefetch = getattr(self.toolbox.gate, "prefetch", None)  # the gate's own lookups, in bulk
        if prefetch is not None and tickets:
            prefetch(tickets)
        report = RunReport(self.manifest.name, self.toolbox.partition, tickets=len(tickets),
                           prompt_version=f"{self.prompt.name}/{self.prompt.version}", model_version=self.model_version,
                           first_pass=f"{self.first_pass.uri} v{self.first_pass.version}" if self.first_pass else "")
        started = time.perf_counter()
        rows = []
        for n, ticket in enumerate(tickets):
            if report.stopped:
                rows.append(self._row(ticket, "unprocessed" if "provider" in report.stopped else "deferred",
                                      error=report.stopped))
                continue
            try:
                rows.append(self.decide(ticket))
            except (ToolCallError, SchemaViolation) as exc:
                rows.append(self._row(ticket, "failed", error=str(exc)))
            except ProviderDown as exc:
                report.stopped = f"provider down at ticket {n + 1} of {len(tickets)}: {exc}"
                rows.append(self._row(ticket, "unprocessed", error=str(exc)))
            except BudgetExhausted as exc:
                report.stopped = f"budget spent at ticket {n + 1} of {len(tickets)}: {exc}"
                rows.append(self._row(ticket, "deferred", error=str(exc)))
            except Exception as exc:  # anything else fails its ticket, so the day's calls are still written
                rows.append(self._row(ticket, "failed", error=f"unexpected {type(exc).__name__}: {exc}"))
        report.wall_s = time.perf_counter() - started
        report.verdicts = Counter(r["verdict"] or "error" for r in self.toolbox.records)
        report.policy_alerts = sum(1 for r in self.toolbox.records if "cedar/error" in (r["policies"] or []))
        report.policy_hash = getattr(self.toolbox.gate, "policy_hash", "")
        self._summarize(report, rows, labels or {})
        return report, rows

    def decide(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """One ticket, one trace: context, first pass, rules, model, rules, reply, actions."""
        import mlflow
        from mlflow.entities import SpanType

        started = time.perf_counter()
        tid = str(ticket["ticket_id"])
        usage = {"model_calls": 0, "cache_hits": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
        with mlflow.start_span(name=f"{self.manifest.name} {tid}", span_type=SpanType.AGENT) as root:
            root.set_inputs({"ticket_id": tid, "subject": ticket.get("subject"), "channel": ticket.get("channel")})
            mlflow.update_current_trace(tags={**self.trace_tags, "ticket_id": tid})
            facts: dict[str, Any] = {"ticket": ticket, "text": f"{ticket.get('subject') or ''}\n{ticket.get('body') or ''}",
                                     "features": {}, "order": None, "retrieval": {"top_score": 0.0, "passages": []}}
            calls_before = len(self.toolbox.records)
            for tool in self.manifest.context:
                self._gather(tool, tid, facts)
            facts["amount"] = (facts["order"] or {}).get("amount") or parse_amount(facts["text"])

            decision, decided_by, fired, truncated = self._decide_fields(tid, ticket, facts, usage)
            facts["decision"] = decision
            facts["why"] = ", ".join(fired) or f"{decided_by.get('action', 'the decision')} chose it"

            if self.manifest.reply is not None:
                facts["reply"] = self._reply(tid, facts, usage)
            for action in self.manifest.actions:
                if action.when.holds(facts):
                    if facts.get("held") and action.tool == "send_reply":  # say what did not happen
                        facts["reply"] = self._reply(tid, facts, usage)
                    args = {k: fill(v, facts) for k, v in action.args.items()}
                    result = self.toolbox.call(action.tool, tid, args, context={"facts": facts})
                    if result.status in ("escalated", "denied"):
                        facts["held"] = result.status
            calls = [f"{r['tool']}:{r['status']}" for r in self.toolbox.records[calls_before:]]
            root.set_outputs({"decision": decision, "rules_fired": fired, "tool_calls": calls})
            root.set_attributes({"tokens_in": usage["tokens_in"], "tokens_out": usage["tokens_out"],
                                 "cost_usd": usage["cost_usd"]})
            trace_id = root.trace_id
        reply = facts.get("reply") or {}
        return self._row(ticket, "decided", decision=decision, decided_by=decided_by, rules_fired=fired,
                         tool_calls=calls, reply=reply.get("body"), cited=reply.get("cited", []), truncated=truncated,
                         trace_id=trace_id, latency_s=time.perf_counter() - started, **usage)

    def _decide_fields(self, tid: str, ticket: dict[str, Any], facts: dict[str, Any],
                       usage: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str], bool]:
        """First pass, rules, the model for the fields still open, rules again; and who decided what."""
        schema = self.prompt.response_schema
        enums = field_enums(schema)
        decision, decided_by, confidence, top = self._first_pass(ticket, facts)
        fixed, fired = apply_rules(self.rules, facts, decision, enums)
        decision |= fixed
        decided_by |= {k: "rule" for k in fixed}
        threshold = self.manifest.decision.model_below_confidence
        ask = [f for f in schema_fields(schema)
               if f not in fixed and (f not in decision or confidence.get(f, 0.0) < threshold)]
        truncated = False
        if ask:
            pinned = {k: v for k, v in decision.items() if k not in ask and k in enums}
            open_choices = {f: top[f] for f in ask if f in top}
            answer, truncated = self._ask(tid, facts, narrowed(schema, pinned, open_choices), self.prompt, usage)
            decision |= {f: answer[f] for f in ask if f in answer}
            decided_by |= {f: "model" for f in ask if f in answer}
        final, fired_after = apply_rules(self.rules, facts, decision, enums)
        decision |= final
        decided_by |= {k: "rule" for k in final}
        return decision, decided_by, list(dict.fromkeys(fired + fired_after)), truncated

    def _gather(self, tool: str, tid: str, facts: dict[str, Any]) -> None:
        args = CONTEXT_ARGS[tool](facts)
        if args is None:
            return
        result = self.toolbox.call(tool, tid, args, context={"facts": facts})
        if result.status != "ok" or result.output is None:
            return
        if tool == "customer_features":
            facts["features"] = dict(result.output["features"])
            facts["feature_times"] = dict(result.output.get("event_times") or {})
        elif tool == "kb_search":
            passages = result.output["passages"]
            facts["retrieval"] = {"top_score": passages[0]["score"] if passages else 0.0, "passages": passages,
                                  "ids": [p["article_id"] for p in passages]}
        elif tool == "order_lookup" and result.output["found"]:
            facts["order"] = result.output

    def _score_first_pass(self, tickets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The first pass over the whole day in one batch, on the online features the agent reads."""
        if self.first_pass is None or not tickets:
            return {}
        entities = [{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets]
        features = self.toolbox.env.online_features_many(entities)
        predictions = self.first_pass.predict_many(tickets, features)
        return {str(t["ticket_id"]): p for t, p in zip(tickets, predictions, strict=True)}

    def _first_pass(self, ticket: dict[str, Any], facts: dict[str, Any]) -> tuple[dict, dict, dict, dict]:
        prediction = self._scores.get(str(ticket["ticket_id"]))
        if self.first_pass is None or prediction is None:
            return {}, {}, {}, {}
        import mlflow
        from mlflow.entities import SpanType

        with mlflow.start_span(name="first pass", span_type=SpanType.LLM) as span:
            span.set_attributes({"model": self.first_pass.uri, "version": self.first_pass.version,
                                 "scored": "in the day's batch"})
            span.set_outputs(prediction)
        targets = [k for k in prediction if f"{k}_confidence" in prediction]
        facts["first_pass"] = {t: {"label": prediction[t], "confidence": prediction[f"{t}_confidence"]} for t in targets}
        fields = set(schema_fields(self.prompt.response_schema))
        decision = {t: prediction[t] for t in targets if t in fields}
        return (decision, {t: "first_pass" for t in decision},
                {t: prediction[f"{t}_confidence"] for t in decision}, {t: prediction[f"{t}_top"] for t in decision})

    def _variables(self, facts: dict[str, Any], prompt: ResolvedPrompt, budget_chars: int) -> tuple[dict[str, Any], bool]:
        """Prompt variables from the facts; the body, then the passages, are cut to fit the context window."""
        ticket = {k: ("" if v is None else v) for k, v in facts["ticket"].items()}
        features = {name: "unknown" for name in self.feature_names} | {
            k: ("unknown" if v is None else v) for k, v in facts["features"].items()}
        values = {**features, **ticket, "text": facts["text"],
                  "passages": passages_text(facts["retrieval"]["passages"]), "amount": facts.get("amount") or "",
                  "order": json.dumps(facts["order"]) if facts["order"] else "(no order)",
                  "decision": json.dumps(facts.get("decision") or {})}
        truncated = False
        for name in ("body", "text", "passages"):
            overflow = len(prompt.render(values)) - budget_chars
            if overflow <= 0:
                break
            if name in prompt.variables:
                keep = max(0, len(str(values[name])) - overflow - 20)
                values[name] = str(values[name])[:keep] + " [cut to fit]"
                truncated = True
        return values, truncated

    def _ask(self, tid: str, facts: dict[str, Any], schema: dict[str, Any], prompt: ResolvedPrompt,
             usage: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        window = getattr(self.provider, "n_ctx", None) or self.manifest.model.context_window
        budget_chars = max(200, (window - self.manifest.model.max_tokens - 64) * CHARS_PER_TOKEN)
        values, truncated = self._variables(facts, prompt, budget_chars)
        messages = [{"role": "user", "content": prompt.render(values)}]
        result = self._chat(messages, schema, prompt, usage)
        if result.data is None:
            raise SchemaViolation(f"{result.provider}/{result.model}: no structured answer for ticket {tid}")
        return result.data, truncated

    def _chat(self, messages: list[dict[str, str]], schema: dict[str, Any], prompt: ResolvedPrompt,
              usage: dict[str, Any]) -> ChatResult:
        """One model call: budget, cache, provider, span. A provider failure stops the run."""
        import mlflow
        from mlflow.entities import SpanType

        model = self.manifest.model
        key = hashlib.sha256(canonical({"model": self.model_version, "prompt": f"{prompt.name}/{prompt.version}",
                                        "messages": messages, "schema": schema, "temperature": model.temperature,
                                        "seed": model.seed, "max_tokens": model.max_tokens}).encode()).hexdigest()
        self.toolbox.budget.check_model_call()
        with mlflow.start_span(name=f"model {prompt.name}", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs({"messages": messages})
            cached = self.con.execute("SELECT result FROM agents.model_cache WHERE key = ?", [key]).fetchone() \
                if self.use_cache else None
            if cached is not None:
                result = ChatResult.model_validate_json(cached[0]).model_copy(update={"cost_usd": 0.0, "latency_s": 0.0})
                usage["cache_hits"] += 1
            else:
                try:
                    result = self.provider.chat(messages, schema=schema, temperature=model.temperature,
                                                seed=model.seed, max_tokens=model.max_tokens)
                except SchemaViolation:
                    raise
                except ModelError as exc:
                    span.set_status("ERROR")
                    raise ProviderDown(str(exc)) from exc
                if self.use_cache:
                    self.con.execute("INSERT OR REPLACE INTO agents.model_cache (key, model_version, prompt, result) "
                                     "VALUES (?, ?, ?, ?)", [key, self.model_version, f"{prompt.name}/{prompt.version}",
                                                             result.model_dump_json()])
            span.set_outputs({"content": result.content})
            span.set_attributes({"provider": result.provider, "model": result.model, "model_version": self.model_version,
                                 "prompt": prompt.name, "prompt_version": prompt.version,
                                 "tokens_in": result.prompt_tokens, "tokens_out": result.completion_tokens,
                                 "latency_s": result.latency_s, "cost_usd": result.cost_usd,
                                 "cache_hit": cached is not None})
        self.toolbox.budget.charge_model_call(result.prompt_tokens + result.completion_tokens, result.cost_usd)
        usage["model_calls"] += 1
        usage["tokens_in"] += result.prompt_tokens
        usage["tokens_out"] += result.completion_tokens
        usage["cost_usd"] += result.cost_usd
        return result

    def _reply(self, tid: str, facts: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        """A reply citing the retrieved passages: a prompt with a capable model, else a template."""
        cited = list(facts["retrieval"].get("ids", []))[:2]
        if self.reply_prompt is not None and self.manifest.model.provider != "local" and not facts.get("held"):
            answer, _ = self._ask(tid, facts, self.reply_prompt.response_schema, self.reply_prompt, usage)
            cited = [c for c in answer.get("cited_article_ids", []) if c in facts["retrieval"].get("ids", [])]
            return {"body": answer["body"], "cited": cited}
        templates = self.reply_templates or {}
        key = str(fill(templates.get("key", ""), facts))
        template = templates.get("held", {}).get(facts.get("held")) or templates.get("templates", {}).get(key) \
            or templates.get("default", "")
        quote = facts["retrieval"]["passages"][0]["text"][:300] if facts["retrieval"]["passages"] else ""
        body = str(fill(template, {**facts, "citations": ", ".join(f"[{c}]" for c in cited), "quote": quote})).strip()
        return {"body": body, "cited": cited}

    def _row(self, ticket: dict[str, Any], status: str, *, decision: dict[str, Any] | None = None, error: str = "",
             **values: Any) -> dict[str, Any]:
        decision = decision or {}
        return {
            "agent": self.manifest.name, "agent_version": self.manifest.version, "partition": self.toolbox.partition,
            "ticket_id": str(ticket["ticket_id"]), "status": status, "category": decision.get("category"),
            "priority": decision.get("priority"), "action": decision.get("action"),
            "decision": json.dumps(decision), "decided_by": json.dumps(values.get("decided_by", {})),
            "rules_fired": values.get("rules_fired", []), "tool_calls": values.get("tool_calls", []),
            "reply": values.get("reply"), "cited_passages": values.get("cited", []),
            "prompt_name": self.prompt.name, "prompt_version": self.prompt.version,
            "model_provider": self.manifest.model.provider, "model_version": self.model_version,
            "first_pass_model": f"{self.first_pass.uri} (v{self.first_pass.version})" if self.first_pass else None,
            "model_calls": values.get("model_calls", 0), "cache_hits": values.get("cache_hits", 0),
            "tokens_in": values.get("tokens_in", 0), "tokens_out": values.get("tokens_out", 0),
            "cost_usd": round(values.get("cost_usd", 0.0), 8), "latency_s": round(values.get("latency_s", 0.0), 6),
            "truncated": values.get("truncated", False), "error": error[:1000] or None,
            "trace_id": values.get("trace_id"), "run_id": self.toolbox.run_id, "decided_at": datetime.now(UTC),
        }

    def _summarize(self, report: RunReport, rows: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> None:
        fields = schema_fields(self.prompt.response_schema)
        hits: Counter = Counter()
        for row in rows:
            report.statuses[row["status"]] += 1
            if row["status"] != "decided":
                report.errors.append((row["ticket_id"], row["error"] or row["status"]))
                continue
            report.latencies.append(row["latency_s"])
            for key in ("tokens_in", "tokens_out", "model_calls", "cache_hits"):
                setattr(report, key, getattr(report, key) + row[key])
            report.cost_usd += row["cost_usd"]
            report.tool_calls.update(row["tool_calls"])
            if row["action"]:
                report.actions[row["action"]] += 1
            truth = labels.get(row["ticket_id"])
            if truth:
                report.labelled += 1
                decision = json.loads(row["decision"])
                hits.update(f for f in fields if f in truth and str(truth[f]) == str(decision.get(f)))
        if report.labelled:
            measured = [f for f in fields if any(f in t for t in labels.values())]
            report.accuracy = {f"{f}_accuracy": round(hits[f] / report.labelled, 4) for f in measured}


def ensure_agent_tables(con: Any) -> None:
    from factory_pipelines.lib.agents.outbox import ensure_outbox
    from factory_pipelines.lib.agents.toolbox import ensure_effect_tables

    ensure_outbox(con)
    ensure_effect_tables(con)
    for ddl in (DECISIONS_DDL, TOOL_CALLS_DDL, CACHE_DDL):
        con.execute(ddl)
    for column, kind in TOOL_CALLS_GOVERNANCE.items():
        con.execute(f"ALTER TABLE agents.tool_calls ADD COLUMN IF NOT EXISTS {column} {kind}")


def write_results(con: Any, agent: str, partition: str, rows: list[dict[str, Any]], tool_calls: list[dict[str, Any]],
                  anchor: Path | None = None) -> None:
    """Replace the day's decisions of the agent; append its tool calls, and one audit event per call (policy
    decision and result) to the hash-chained audit log, in the same commit."""
    import pandas as pd

    from factory_pipelines.lib.governance.audit import append, ensure_audit_log, save_anchor, transaction

    ensure_agent_tables(con)
    ensure_audit_log(con)
    with transaction(con):
        con.execute("DELETE FROM agents.decisions WHERE agent = ? AND partition = ?", [agent, partition])
        for table, records in (("decisions", rows), ("tool_calls", tool_calls)):
            if records:
                con.register("new_rows", pd.DataFrame(records))
                con.execute(f"INSERT INTO agents.{table} BY NAME SELECT * FROM new_rows")
                con.unregister("new_rows")
        append(con, [tool_call_event(r) for r in tool_calls])
    if anchor is not None:
        save_anchor(con, anchor)


def tool_call_event(record: dict[str, Any]) -> Any:
    """The audit event of one tool call: who called what, the policy decision, and what happened."""
    from factory_pipelines.lib.governance.audit import AuditEvent

    keys = ("agent", "tool", "tool_version", "ticket_id", "status", "verdict", "reason", "policies", "policy_hash",
            "shadow_verdict", "executed", "error", "run_id", "partition")
    payload = {k: record.get(k) for k in keys} | {"arguments": json.loads(record["arguments"])}
    return AuditEvent("tool_call", f"agent:{record['agent']}", f"ticket:{record['ticket_id']}", payload)
