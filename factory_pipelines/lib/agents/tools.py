"""The tool catalog: every tool an agent may call, with a typed, versioned contract.

A tool is named in agent manifests by its name; its input and output are pydantic models validated on
every call, in and out. Tools with a side effect go through the outbox (idempotency key: agent, ticket,
tool, canonical arguments), so a retried or re-run partition never acts twice. This module holds the
contracts; `toolbox` binds implementations to them behind one call path.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from factory_pipelines.lib.data.features import ORDER_REF as ORDER_REF_PATTERN

ORDER_REF = re.compile(ORDER_REF_PATTERN)
"""An order reference in free text (`O-1000042`, any case); `order_refs` gives them as order ids."""


def order_refs(text: str) -> list[str]:
    """The order ids a text names, upper-cased, in order of appearance, each once."""
    return list(dict.fromkeys(ref.upper() for ref in ORDER_REF.findall(text)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerFeaturesIn(_Strict):
    customer_id: str = Field(min_length=1)
    ticket_id: str | None = Field(None, description="Also the ticket's own features, when the service has them.")


class CustomerFeaturesOut(_Strict):
    customer_id: str
    ticket_id: str | None = None
    features: dict[str, str | int | float | bool | None]
    feature_service: str
    event_times: dict[str, str] = Field(default_factory=dict, description="Feature -> event time (ISO, UTC).")


class KbSearchIn(_Strict):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(3, ge=1, le=20)


class Passage(_Strict):
    article_id: str
    title: str
    text: str
    score: float


class KbSearchOut(_Strict):
    passages: list[Passage]


class OrderLookupIn(_Strict):
    order_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")


class OrderLookupOut(_Strict):
    order_id: str
    found: bool
    customer_id: str | None = None
    product: str | None = None
    amount: float | None = None
    currency: str | None = None
    amount_usd: float | None = None
    status: Literal["placed", "shipped", "delivered", "cancelled", "refunded"] | None = None
    refund_amount: float | None = None


class IssueRefundIn(_Strict):
    order_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")
    amount: float = Field(gt=0, le=10_000)
    currency: Literal["USD", "EUR", "GBP"]
    reason: str = Field(min_length=3, max_length=500)


class IssueRefundOut(_Strict):
    refund_id: str
    status: Literal["issued", "queued"]


class SendReplyIn(_Strict):
    ticket_id: str = Field(min_length=1)
    body: str = Field(min_length=1, max_length=5000)
    cited_article_ids: list[str] = Field(default_factory=list)


class SendReplyOut(_Strict):
    message_id: str


class EscalateIn(_Strict):
    ticket_id: str = Field(min_length=1)
    reason: str = Field(min_length=3, max_length=500)
    priority: Literal["low", "medium", "high", "urgent"] = "medium"


class EscalateOut(_Strict):
    queue_item_id: str


class ToolSpec(_Strict):
    """A tool's contract: what it takes, what it returns, and whether it changes the world."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    version: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    side_effect: bool


CATALOG: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(name="customer_features", version="1.2.0", input=CustomerFeaturesIn, output=CustomerFeaturesOut,
                 side_effect=False, description="The customer's (and ticket's) online features from the agent's Feast service."),
        ToolSpec(name="kb_search", version="1.0.0", input=KbSearchIn, output=KbSearchOut, side_effect=False,
                 description="BM25 search over the knowledge base; passages with article ids to cite."),
        ToolSpec(name="order_lookup", version="1.1.0", input=OrderLookupIn, output=OrderLookupOut,
                 side_effect=False, description="An order's latest state from staging.orders (found: false when unknown)."),
        ToolSpec(name="issue_refund", version="1.0.0", input=IssueRefundIn, output=IssueRefundOut, side_effect=True,
                 description="Refund (part of) an order; goes through the outbox, at most once per key."),
        ToolSpec(name="send_reply", version="1.0.0", input=SendReplyIn, output=SendReplyOut, side_effect=True,
                 description="Send the reply to the customer; goes through the outbox, at most once per key."),
        ToolSpec(name="escalate_to_human", version="1.0.0", input=EscalateIn, output=EscalateOut, side_effect=True,
                 description="Hand the ticket to a human queue with a reason."),
    )
}
