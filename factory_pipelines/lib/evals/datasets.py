"""Golden datasets and evaluation suites: the cases an agent is scored on, and how it is scored.

A dataset is a JSONL file (`evals/datasets/<suite>.jsonl`), one `{id, inputs, expectations, tags}` case a line:
what the agent would find about a ticket in production (the ticket, the customer's features, the orders the
ticket can reach, the moment it is decided) and what it must do (labels, the gate's verdict on each side-effect
call, facts its reply must or must not hold). Its version is a hash of the file's bytes, so every run can name
the exact cases it used. A suite (`evals/suites/<suite>.yaml`) names the agent, the dataset, the scorers with
their thresholds and tolerated regressions, trials, budgets and the knowledge base the cases are decided with.

Errors name the file, the line (datasets) or the field, and the reason: a golden set that does not load must
never score as an empty pass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from factory_pipelines.lib.agents.tools import CATALOG, order_refs
from factory_pipelines.lib.config_files import (
    ConfigError,
    SnakeName,
    known_names,
    problems,
    read_mapping,
    validate_named,
)
from factory_pipelines.lib.evals.rollout import Stages

HIGHER, LOWER = "higher", "lower"
KNOWN_SCORERS: dict[str, str] = {  # scorer (metric) name -> which direction is better
    "category_accuracy": HIGHER, "priority_accuracy": HIGHER, "action_accuracy": HIGHER,
    "category_macro_f1": HIGHER, "priority_macro_f1": HIGHER, "action_macro_f1": HIGHER,
    "policy_compliance": HIGHER, "forbidden_actions": LOWER, "groundedness": HIGHER, "schema_validity": HIGHER,
    "answered_accuracy": HIGHER, "gap_precision": HIGHER, "gap_recall": HIGHER,
    "latency_p50_s": LOWER, "latency_p95_s": LOWER, "cost_per_ticket_usd": LOWER,
}
AGENT_SCORERS: dict[str, tuple[str, ...]] = {  # what each shipped agent's cases can be scored on
    "support_triage": ("category_accuracy", "priority_accuracy", "action_accuracy", "category_macro_f1",
                       "priority_macro_f1", "action_macro_f1", "policy_compliance", "forbidden_actions",
                       "groundedness", "schema_validity", "latency_p50_s", "latency_p95_s", "cost_per_ticket_usd"),
    "knowledge_gap": ("answered_accuracy", "gap_precision", "gap_recall", "policy_compliance", "latency_p95_s",
                      "cost_per_ticket_usd"),
}
# The support-triage answer schema (defs/registry/prompts/support_triage.yaml; a test keeps them equal).
CATEGORIES = ("billing", "refund", "shipping", "technical", "account", "product")
PRIORITIES = ("low", "medium", "high", "urgent")
ACTIONS = ("reply", "refund", "lookup_order", "escalate")
CHANNELS = ("email", "chat", "phone", "web")
ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "refunded")
SIDE_EFFECT_TOOLS = tuple(name for name, spec in CATALOG.items() if spec.side_effect)
CASE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

Outcome = Literal["allow", "deny", "escalate"]


class DatasetError(ConfigError):
    """A golden dataset is missing or invalid; the message names the file, the line and the field."""


class SuiteError(ConfigError):
    """An evaluation suite is missing or invalid; the message names the file and the field."""


def moment(value: str | datetime) -> datetime:
    """A case's time (ISO text or a datetime, naive = UTC) as an aware datetime."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: str) -> str:
    try:
        moment(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO time (YYYY-MM-DD HH:MM:SS, optionally with an offset)") from exc
    return value


IsoTime = Annotated[str, AfterValidator(_iso)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ticket(_Strict):
    """A ticket as the helpdesk exports it (staging.tickets columns); "" means no order / not a follow-up."""

    ticket_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    created_at: IsoTime
    channel: Literal["email", "chat", "phone", "web"]
    subject: str
    body: str
    order_id: str | None
    in_reply_to: str | None


class CustomerFeatures(_Strict):
    """The customer's features as `support_agent_v1` serves them as of the ticket (null: the store has none)."""

    plan: str | None
    region: str | None
    tenure_days: int | None
    lifetime_spend: float | None
    orders_30d: int | None
    spend_30d: float | None
    spend_90d: float | None
    refunds_90d: int | None
    refund_amount_90d: float | None
    tickets_7d: int | None
    tickets_30d: int | None
    name: str | None = None
    email: str | None = None


class Order(_Strict):
    """One order as staging.orders holds it when the case is decided (amounts in the order's currency)."""

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    product: str
    amount: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount_usd: float = Field(ge=0)
    status: Literal["placed", "shipped", "delivered", "cancelled", "refunded"]
    refund_amount: float | None = Field(ge=0)
    updated_at: IsoTime
    ordered_at: IsoTime | None = None


class _Inputs(_Strict):
    ticket: Ticket
    as_of: IsoTime = Field(description="When the case is decided (not before the ticket).")

    @model_validator(mode="after")
    def _not_before_ticket(self) -> _Inputs:
        if moment(self.as_of) < moment(self.ticket.created_at):
            raise ValueError(f"as_of {self.as_of} is before the ticket's created_at {self.ticket.created_at}")
        return self


class SupportInputs(_Inputs):
    customer: CustomerFeatures
    orders: list[Order]

    @model_validator(mode="after")
    def _reachable_orders(self) -> SupportInputs:
        reachable = {str(self.ticket.order_id or "").upper(), *order_refs(f"{self.ticket.subject}\n{self.ticket.body}")}
        ids = [o.order_id for o in self.orders]
        for order_id in ids:
            if order_id.upper() not in reachable:
                raise ValueError(f"order {order_id} is neither the ticket's order_id nor named in its text")
        if len(set(ids)) != len(ids):
            raise ValueError(f"orders repeat an order id: {ids}")
        return self


class KnowledgeGapInputs(_Inputs):
    pass


def _tools(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(value) - set(SIDE_EFFECT_TOOLS))
    if unknown:
        raise ValueError(f"{unknown} are not side-effect tools; known: {list(SIDE_EFFECT_TOOLS)}")
    return value


class _Expectations(_Strict):
    tool_outcomes: Annotated[dict[str, Outcome], AfterValidator(_tools)] = Field(
        description="Each side-effect tool the agent calls in this case -> the gate's verdict on the call.")
    deciding_policies: Annotated[dict[str, list[str]], AfterValidator(_tools)] = Field(
        default_factory=dict, description="Tool -> the policy ids behind its expected verdict (for reviewers).")


class SupportExpectations(_Expectations):
    category: Literal["billing", "refund", "shipping", "technical", "account", "product"]
    priority: Literal["low", "medium", "high", "urgent"]
    action: Literal["reply", "refund", "lookup_order", "escalate"]
    reply_must_contain: list[str] = Field(default_factory=list)
    reply_must_not_contain: list[str] = Field(default_factory=list)


class KnowledgeGapExpectations(_Expectations):
    answered: bool = Field(description="Whether the shipped knowledge-base articles answer the ticket.")


class _Case(_Strict):
    id: str = Field(pattern=CASE_ID)
    tags: list[SnakeName] = Field(default_factory=list)


class SupportCase(_Case):
    """One golden support-triage case."""

    inputs: SupportInputs
    expectations: SupportExpectations


class KnowledgeGapCase(_Case):
    """One golden knowledge-gap case."""

    inputs: KnowledgeGapInputs
    expectations: KnowledgeGapExpectations


CASE_MODELS: dict[str, type[SupportCase] | type[KnowledgeGapCase]] = {
    "support_triage": SupportCase, "knowledge_gap": KnowledgeGapCase}

GoldenCase = SupportCase | KnowledgeGapCase


@dataclass(frozen=True)
class Dataset:
    """A golden dataset as loaded: `version` is the first 12 hex digits of the sha256 of the file's bytes."""

    name: str
    version: str
    path: Path
    agent: str
    cases: list[GoldenCase]

    def records(self) -> list[dict[str, Any]]:
        """The cases as plain dicts (`id`, `inputs`, `expectations`, `tags`), what the harness and MLflow take."""
        return [case.model_dump(mode="json") for case in self.cases]


def content_version(data: bytes) -> str:
    """A dataset version: the same bytes give the same version on every machine."""
    return hashlib.sha256(data).hexdigest()[:12]


def _agent_of(path: Path, agent: str | None, first: dict[str, Any]) -> str:
    if agent is not None:
        if agent not in CASE_MODELS:
            raise DatasetError(f"{path}: no case schema for agent {agent!r}; known: {sorted(CASE_MODELS)}")
        return agent
    expectations = first.get("expectations")
    return "knowledge_gap" if isinstance(expectations, dict) and "answered" in expectations else "support_triage"


def load_dataset(path: Path, agent: str | None = None) -> Dataset:
    """Every case of a golden JSONL file, validated (schema by `agent`, else by the first case's expectations)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read golden dataset: {exc}") from exc
    rows = _rows(path, text)
    if not rows:
        raise DatasetError(f"{path}: no cases (a golden dataset needs at least one JSON line)")
    kind = _agent_of(path, agent, rows[0][1])
    model = CASE_MODELS[kind]
    cases: list[GoldenCase] = []
    first_line: dict[str, int] = {}
    for number, row in rows:
        label = f"case {row['id']!r}: " if isinstance(row.get("id"), str) else ""
        try:
            case = model.model_validate(row)
        except ValidationError as exc:
            raise DatasetError(f"{path}:{number}: {label}{problems(exc)}") from exc
        if case.id in first_line:
            raise DatasetError(f"{path}:{number}: duplicate id {case.id!r} (first on line {first_line[case.id]})")
        first_line[case.id] = number
        cases.append(case)
    return Dataset(path.stem, content_version(data), path, kind, cases)


def _rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of every non-blank line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


class Threshold(_Strict):
    """A bound a suite metric must meet: `at_least` for a higher-is-better scorer, `at_most` for a lower one."""

    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least (higher is better) or at_most (lower is better)")
        return self

    @property
    def bound(self) -> float:
        return self.at_least if self.at_least is not None else float(self.at_most)  # type: ignore[arg-type]

    @property
    def higher_is_better(self) -> bool:
        return self.at_least is not None

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.bound if self.higher_is_better else value <= self.bound


class SuiteBudgets(_Strict):
    max_cost_per_ticket_usd: float = Field(ge=0, description="Mean cost per ticket the challenger may spend.")
    max_latency_p95_s: float = Field(gt=0, description="95th percentile of the per-ticket latency, seconds.")


ThresholdValue = Annotated[float, Field(ge=0, le=1.01)]
DEFAULT_SWEEP = {"model_below_confidence": (0.0, 0.3, 0.45, 0.6, 0.8, 1.01),
                 "escalate_below_confidence": (0.0, 0.2, 0.5, 0.8, 1.01)}


class SweepGrid(_Strict):
    """The routing thresholds `factory eval --sweep` tries (each in [0, 1.01]: 0 never asks the next tier,
    above 1 always does); every combination is one point of the frontier."""

    model_below_confidence: list[ThresholdValue] = Field(
        default_factory=lambda: list(DEFAULT_SWEEP["model_below_confidence"]), min_length=1)
    escalate_below_confidence: list[ThresholdValue] = Field(
        default_factory=lambda: list(DEFAULT_SWEEP["escalate_below_confidence"]), min_length=1)


class Suite(_Strict):
    """`evals/suites/<name>.yaml`. Paths (`dataset`, `kb`) are relative to the evals folder (the suites' parent)."""

    name: SnakeName
    agent: SnakeName
    description: str = ""
    dataset: str = Field(description="The golden JSONL file, e.g. datasets/support_triage_golden.jsonl.")
    kb: str = Field(description="The knowledge-base articles the cases are decided with (a YAML file).")
    scorers: list[str] = Field(min_length=1)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    tolerances: dict[str, float] = Field(default_factory=dict,
                                         description="Scorer -> allowed regression of the challenger (paired).")
    trials: int = Field(1, ge=1, description="Runs per case (more for a non-deterministic configuration).")
    budgets: SuiteBudgets
    stages: Stages | None = Field(None, description="Live days in shadow, then canary, after the offline gate; "
                                  "none: a passed gate promotes to champion at once.")
    sweep: SweepGrid = Field(default_factory=SweepGrid, description="The routing thresholds --sweep evaluates.")
    root: Path = Field(Path("."), exclude=True, description="The evals folder; set by load_suite.")

    @field_validator("scorers")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return known_names(value, KNOWN_SCORERS, "scorer")

    @field_validator("tolerances")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        negative = sorted(k for k, v in value.items() if v < 0)
        if negative:
            raise ValueError(f"tolerances must be >= 0 (an allowed regression): {negative}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        for field, names in (("thresholds", self.thresholds), ("tolerances", self.tolerances)):
            stray = sorted(set(names) - set(self.scorers))
            if stray:
                raise ValueError(f"{field} name scorers the suite does not run: {stray}")
        for scorer, threshold in self.thresholds.items():
            if threshold.higher_is_better != (KNOWN_SCORERS[scorer] == HIGHER):
                word = "at_least" if KNOWN_SCORERS[scorer] == HIGHER else "at_most"
                raise ValueError(f"thresholds.{scorer}: {KNOWN_SCORERS[scorer]} is better, so its bound is {word}")
        return self

    @property
    def dataset_path(self) -> Path:
        return self.root / self.dataset

    @property
    def kb_path(self) -> Path:
        return self.root / self.kb

    @property
    def bounds(self) -> dict[str, float]:
        """Scorer -> bound, as the promotion gate takes them (direction from the scorer's name)."""
        return {name: t.bound for name, t in self.thresholds.items()}

    @property
    def budget_limits(self) -> dict[str, float]:
        return self.budgets.model_dump()

    def load_dataset(self) -> Dataset:
        return load_dataset(self.dataset_path, self.agent if self.agent in CASE_MODELS else None)


def load_suite(path: Path) -> Suite:
    """A suite file, validated; its dataset and knowledge base must exist."""
    path = Path(path)
    data = read_mapping(path, "evaluation suite", SuiteError)
    suite = validate_named(path, {**data, "root": path.parent.parent}, Suite, "suite", SuiteError)
    known = AGENT_SCORERS.get(suite.agent)
    if known is not None and (stray := [s for s in suite.scorers if s not in known]):
        raise SuiteError(f"{path}: scorers: {stray} do not apply to agent {suite.agent}; it has {list(known)}")
    for field, target in (("dataset", suite.dataset_path), ("kb", suite.kb_path)):
        if not target.is_file():
            raise SuiteError(f"{path}: {field}: {getattr(suite, field)!r} does not exist (looked for {target})")
    return suite


def case_day(case: GoldenCase) -> str:
    """The day (YYYY-MM-DD, UTC) a case's ticket was created."""
    return moment(case.inputs.ticket.created_at).astimezone(UTC).date().isoformat()

