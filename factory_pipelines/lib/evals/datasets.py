"""Golden datasets: the cases an agent is scored on (how it is scored: `suites.py`).

A dataset is a JSONL file (`evals/datasets/<suite>.jsonl`), one `{id, inputs, expectations, tags}` case a line:
what the agent would find about a ticket in production (the ticket, the customer's features, the orders the
ticket can reach, the moment it is decided) and what it must do (labels, the gate's verdict on each side-effect
call, facts its reply must or must not hold). Its version is a hash of the file's bytes, so every run can name
the exact cases it used.

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
    model_validator,
)

from factory_pipelines.lib.agents.tools import CATALOG, order_refs
from factory_pipelines.lib.config_files import (
    ConfigError,
    SnakeName,
    problems,
)

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


def case_day(case: GoldenCase) -> str:
    """The day (YYYY-MM-DD, UTC) a case's ticket was created."""
    return moment(case.inputs.ticket.created_at).astimezone(UTC).date().isoformat()

