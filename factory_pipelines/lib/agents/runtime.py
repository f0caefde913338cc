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

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from factory_pipelines.lib.agents.answer_schema import field_enums, labelled, narrowed, schema_fields
from factory_pipelines.lib.agents.facts import TicketFacts, parse_amount
from factory_pipelines.lib.agents.manifests import AgentManifest
from factory_pipelines.lib.agents.models.classifier import FirstPass
from factory_pipelines.lib.agents.models.prompts import PromptError, ResolvedPrompt
from factory_pipelines.lib.agents.models.providers import (
    ChatProvider,
    ChatResult,
    ModelError,
    SchemaViolation,
)
from factory_pipelines.lib.agents.outbox import canonical
from factory_pipelines.lib.agents.records import RunReport, charge_tier, ensure_agent_tables
from factory_pipelines.lib.agents.rules import Rule, apply_rules, fill
from factory_pipelines.lib.agents.toolbox import BudgetExhausted, Toolbox, ToolCallError

BUILTIN_VARIABLES = ("text", "passages", "amount", "order", "decision")
CHARS_PER_TOKEN = 3  # a cautious estimate for English text; used to keep prompts inside the context window


class ProviderDown(RuntimeError):
    """The model provider failed after its retries: the run stops and reports the tickets left."""


def passages_text(passages: list[dict[str, Any]]) -> str:
    """Passages quoted with their ids, for a prompt: material, not instructions."""
    return "\n".join(f'[{p["article_id"]}] {p["title"]}: "{p["text"][:400]}"' for p in passages) or "(none found)"


CONTEXT_ARGS = {  # how a read tool gets its arguments from a ticket; None: nothing to look up
    "customer_features": lambda f: {"customer_id": f.customer_id, "ticket_id": f.ticket_id} if f.customer_id else None,
    "kb_search": lambda f: {"query": f.text[:2000], "k": 3} if f.text.strip() else None,
    "order_lookup": lambda f: {"order_id": f.order_id} if f.order_id else None,
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
    escalate_provider: ChatProvider | None = None  # the cascade's last tier (manifest decision.escalate_model)
    escalate_model_version: str = ""
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

    @cached_property
    def answer_schema(self) -> dict[str, Any]:
        """The prompt's schema with the first pass's labels (`answer_schema.labelled`), built once per runner."""
        return labelled(self.prompt.response_schema, self.first_pass.classes if self.first_pass else {})

    @property
    def con(self) -> Any:
        return self.toolbox.env.con

    def run(self, tickets: list[dict[str, Any]], labels: dict[str, dict[str, Any]] | None = None) -> tuple[RunReport, list[dict[str, Any]]]:
        """Decide every ticket; returns the report and one decision row per ticket (decided or not)."""
        ensure_agent_tables(self.con)
        if tickets:
            self.check_prompts(list(tickets[0]))
        self._scores = self._score_first_pass(tickets)
        if tickets:
            self.toolbox.gate.prefetch(tickets)  # the gate's own lookups, in bulk
        report = RunReport(self.manifest.name, self.toolbox.partition, tickets=len(tickets),
                           prompt_version=f"{self.prompt.name}/{self.prompt.version}", model_version=self.model_version,
                           first_pass=f"{self.first_pass.uri} v{self.first_pass.version}" if self.first_pass else "")
        started, first_call = time.perf_counter(), len(self.toolbox.records)  # a toolbox may serve two runners
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
        calls = self.toolbox.records[first_call:]
        report.verdicts = Counter(r["verdict"] or "error" for r in calls)
        report.policy_alerts = sum(1 for r in calls if "cedar/error" in (r["policies"] or []))
        report.policy_hash = self.toolbox.gate.policy_hash
        report.add_rows(rows, labels or {}, schema_fields(self.prompt.response_schema))
        return report, rows

    def decide(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """One ticket, one trace: context, first pass, rules, model, rules, reply, actions."""
        import mlflow
        from mlflow.entities import SpanType

        started = time.perf_counter()
        tid = str(ticket["ticket_id"])
        usage = {"model_calls": 0, "cache_hits": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "tiers": {}}
        with mlflow.start_span(name=f"{self.manifest.name} {tid}", span_type=SpanType.AGENT) as root:
            root.set_inputs({"ticket_id": tid, "subject": ticket.get("subject"), "channel": ticket.get("channel")})
            mlflow.update_current_trace(tags={**self.trace_tags, "ticket_id": tid})
            facts = TicketFacts.of(ticket)
            calls_before = len(self.toolbox.records)
            for tool in self.manifest.context:
                self._gather(tool, facts)
            facts.amount = (facts.order or {}).get("amount") or parse_amount(facts.text)

            decision, decided_by, fired, truncated = self._decide_fields(tid, facts, usage)
            facts.decision = decision
            facts.why = ", ".join(fired) or f"{decided_by.get('action', 'the decision')} chose it"

            if self.manifest.reply is not None:
                facts.reply = self._reply(tid, facts, usage)
            for action in self.manifest.actions:
                if action.when.holds(facts):
                    if facts.held and action.tool == "send_reply":  # say what did not happen
                        facts.reply = self._reply(tid, facts, usage)
                    args = {k: fill(v, facts) for k, v in action.args.items()}
                    result = self.toolbox.call(action.tool, tid, args, facts)
                    if result.status in ("escalated", "denied"):
                        facts.held = result.status
            calls = [f"{r['tool']}:{r['status']}" for r in self.toolbox.records[calls_before:]]
            root.set_outputs({"decision": decision, "rules_fired": fired, "tool_calls": calls})
            root.set_attributes({"tokens_in": usage["tokens_in"], "tokens_out": usage["tokens_out"],
                                 "cost_usd": usage["cost_usd"]})
            trace_id = root.trace_id
        reply = facts.reply or {}
        return self._row(ticket, "decided", decision=decision, decided_by=decided_by, first_pass=facts.first_pass,
                         rules_fired=fired,
                         tool_calls=calls, reply=reply.get("body"), cited=reply.get("cited", []), truncated=truncated,
                         trace_id=trace_id, latency_s=time.perf_counter() - started, **usage)

    def _decide_fields(self, tid: str, facts: TicketFacts,
                       usage: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str], bool]:
        """First pass, rules, the model for the fields still open, rules again; and who decided what."""
        schema = self.answer_schema
        enums = field_enums(schema)
        decision, decided_by, confidence, top = self._first_pass(facts)
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
            answer, truncated, sure = self._ask(tid, facts, narrowed(schema, pinned, open_choices), self.prompt, usage)
            decision |= {f: answer[f] for f in ask if f in answer}
            decided_by |= {f: "model" for f in ask if f in answer}
            unsure = self._unsure([f for f in ask if f in answer and f in enums], sure)
            if unsure:
                pinned = {k: v for k, v in decision.items() if k not in unsure and k in enums}
                answer, _, _ = self._ask(tid, facts, narrowed(schema, pinned, {}), self.prompt, usage,
                                         tier="escalated_model")
                decision |= {f: answer[f] for f in unsure if f in answer}
                decided_by |= {f: "escalated_model" for f in unsure if f in answer}
        final, fired_after = apply_rules(self.rules, facts, decision, enums)
        decision |= final
        decided_by |= {k: "rule" for k in final}
        return decision, decided_by, list(dict.fromkeys(fired + fired_after)), truncated

    def _unsure(self, fields: list[str], confidence: dict[str, float]) -> list[str]:
        """The model's fields for the escalation tier: those it wrote with a probability (logprob of the label's
        first token, `providers.value_confidence`) below `escalate_below_confidence`. A field with no
        probability (a provider that returns no logprobs, or a cached answer from before) counts as sure: the
        expensive tier is paid for on evidence, not by default. No tier configured: none."""
        if self.escalate_provider is None:
            return []
        threshold = self.manifest.decision.escalate_below_confidence
        return [f for f in fields if confidence.get(f, 1.0) < threshold]

    def _gather(self, tool: str, facts: TicketFacts) -> None:
        """One context tool's answer into the facts (nothing when it was not called, denied or empty)."""
        args = CONTEXT_ARGS[tool](facts)
        if args is None:
            return
        result = self.toolbox.call(tool, facts.ticket_id, args, facts)
        if result.status != "ok" or result.output is None:
            return
        if tool == "customer_features":
            facts.features = dict(result.output["features"])
            facts.feature_times = dict(result.output.get("event_times") or {})
        elif tool == "kb_search":
            passages = result.output["passages"]
            facts.retrieval = {"top_score": passages[0]["score"] if passages else 0.0, "passages": passages,
                               "ids": [p["article_id"] for p in passages]}
        elif tool == "order_lookup" and result.output["found"]:
            facts.order = result.output

    def _score_first_pass(self, tickets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The first pass over the whole day in one batch, on the online features the agent reads."""
        if self.first_pass is None or not tickets:
            return {}
        entities = [{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets]
        features = self.toolbox.env.online_features_many(entities)
        predictions = self.first_pass.predict_many(tickets, features)
        return {str(t["ticket_id"]): p for t, p in zip(tickets, predictions, strict=True)}

    def _first_pass(self, facts: TicketFacts) -> tuple[dict, dict, dict, dict]:
        """The day's batch prediction for this ticket: its decision, who decided, confidences, top labels."""
        prediction = self._scores.get(facts.ticket_id)
        if self.first_pass is None or prediction is None:
            return {}, {}, {}, {}
        import mlflow
        from mlflow.entities import SpanType

        with mlflow.start_span(name="first pass", span_type=SpanType.LLM) as span:
            span.set_attributes({"model": self.first_pass.uri, "version": self.first_pass.version,
                                 "scored": "in the day's batch"})
            span.set_outputs(prediction)
        targets = [k for k in prediction if f"{k}_confidence" in prediction]
        facts.first_pass = {t: {"label": prediction[t], "confidence": prediction[f"{t}_confidence"]} for t in targets}
        fields = set(schema_fields(self.prompt.response_schema))
        decision = {t: prediction[t] for t in targets if t in fields}
        return (decision, {t: "first_pass" for t in decision},
                {t: prediction[f"{t}_confidence"] for t in decision}, {t: prediction[f"{t}_top"] for t in decision})

    def _variables(self, facts: TicketFacts, prompt: ResolvedPrompt, budget_chars: int) -> tuple[dict[str, Any], bool]:
        """Prompt variables from the facts; the body, then the passages, are cut to fit the context window."""
        ticket = {k: ("" if v is None else v) for k, v in facts.ticket.items()}
        features = {name: "unknown" for name in self.feature_names} | {
            k: ("unknown" if v is None else v) for k, v in facts.features.items()}
        values = {**features, **ticket, "text": facts.text,
                  "passages": passages_text(facts.retrieval["passages"]), "amount": facts.amount or "",
                  "order": json.dumps(facts.order) if facts.order else "(no order)",
                  "decision": json.dumps(facts.decision)}
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

    def _ask(self, tid: str, facts: TicketFacts, schema: dict[str, Any], prompt: ResolvedPrompt,
             usage: dict[str, Any], tier: str = "model") -> tuple[dict[str, Any], bool, dict[str, float]]:
        """One structured question to the tier's model: its answer, whether the prompt was cut, its confidences."""
        provider, config, _ = self._tier(tier)
        window = getattr(provider, "n_ctx", None) or config.context_window
        budget_chars = max(200, (window - config.max_tokens - 64) * CHARS_PER_TOKEN)
        values, truncated = self._variables(facts, prompt, budget_chars)
        messages = [{"role": "user", "content": prompt.render(values)}]
        result = self._chat(messages, schema, prompt, usage, tier)
        if result.data is None:
            raise SchemaViolation(f"{result.provider}/{result.model}: no structured answer for ticket {tid}")
        return result.data, truncated, result.confidence

    def _tier(self, tier: str) -> tuple[ChatProvider, Any, str]:
        """The provider, model configuration and model version of a cascade tier (`model`, `escalated_model`)."""
        if tier == "escalated_model" and self.escalate_provider is not None:
            return self.escalate_provider, self.manifest.decision.escalate_model, self.escalate_model_version
        return self.provider, self.manifest.model, self.model_version

    def _chat(self, messages: list[dict[str, str]], schema: dict[str, Any], prompt: ResolvedPrompt,
              usage: dict[str, Any], tier: str = "model") -> ChatResult:
        """One model call: budget, cache, provider, span. A provider failure stops the run."""
        import mlflow
        from mlflow.entities import SpanType

        provider, model, model_version = self._tier(tier)
        key = hashlib.sha256(canonical({"model": model_version, "prompt": f"{prompt.name}/{prompt.version}",
                                        "messages": messages, "schema": schema, "temperature": model.temperature,
                                        "seed": model.seed, "max_tokens": model.max_tokens}).encode()).hexdigest()
        self.toolbox.budget.check_model_call()
        with mlflow.start_span(name=f"model {prompt.name}", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs({"messages": messages})
            cached = self.con.execute("SELECT result FROM agents.model_cache WHERE key = ?", [key]).fetchone() \
                if self.use_cache else None
            uncached = ChatResult.model_validate_json(cached[0]) if cached is not None else None
            if uncached is not None:
                result = uncached.model_copy(update={"cost_usd": 0.0, "latency_s": 0.0})
                usage["cache_hits"] += 1
            else:
                try:
                    result = provider.chat(messages, schema=schema, temperature=model.temperature,
                                                seed=model.seed, max_tokens=model.max_tokens)
                except SchemaViolation:
                    raise
                except ModelError as exc:
                    span.set_status("ERROR")
                    raise ProviderDown(str(exc)) from exc
                if self.use_cache:
                    self.con.execute("INSERT OR REPLACE INTO agents.model_cache (key, model_version, prompt, result) "
                                     "VALUES (?, ?, ?, ?)", [key, model_version, f"{prompt.name}/{prompt.version}",
                                                             result.model_dump_json()])
            span.set_outputs({"content": result.content})
            span.set_attributes({"provider": result.provider, "model": result.model, "model_version": model_version,
                                 "tier": tier, "confidence": result.confidence,
                                 "prompt": prompt.name, "prompt_version": prompt.version,
                                 "tokens_in": result.prompt_tokens, "tokens_out": result.completion_tokens,
                                 "latency_s": result.latency_s, "cost_usd": result.cost_usd,
                                 "cache_hit": cached is not None})
        self.toolbox.budget.charge_model_call(result.prompt_tokens + result.completion_tokens, result.cost_usd)
        usage["model_calls"] += 1
        usage["tokens_in"] += result.prompt_tokens
        usage["tokens_out"] += result.completion_tokens
        usage["cost_usd"] += result.cost_usd
        charge_tier(usage["tiers"], tier, result, uncached or result)
        return result

    def _reply(self, tid: str, facts: TicketFacts, usage: dict[str, Any]) -> dict[str, Any]:
        """A reply citing the retrieved passages: a prompt with a capable model, else a template."""
        retrieved = list(facts.retrieval.get("ids", []))
        if self.reply_prompt is not None and self.manifest.model.composes_replies and not facts.held:
            answer, _, _ = self._ask(tid, facts, self.reply_prompt.response_schema, self.reply_prompt, usage)
            return {"body": answer["body"], "cited": [c for c in answer.get("cited_article_ids", []) if c in retrieved]}
        cited = retrieved[:2]
        templates = self.reply_templates or {}
        key = str(fill(templates.get("key", ""), facts))
        template = templates.get("held", {}).get(facts.held) or templates.get("templates", {}).get(key) \
            or templates.get("default", "")
        passages = facts.retrieval["passages"]
        values = facts.values(citations=", ".join(f"[{c}]" for c in cited),
                              quote=passages[0]["text"][:300] if passages else "")
        return {"body": str(fill(template, values)).strip(), "cited": cited}

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
            "cost_usd": round(values.get("cost_usd", 0.0), 8), "tier_costs": json.dumps(values.get("tiers", {})),
            "first_pass": json.dumps(values.get("first_pass") or {}),
            "latency_s": round(values.get("latency_s", 0.0), 6),
            "truncated": values.get("truncated", False), "error": error[:1000] or None,
            "trace_id": values.get("trace_id"), "run_id": self.toolbox.run_id, "decided_at": datetime.now(UTC),
        }
