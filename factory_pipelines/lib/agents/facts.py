"""What an agent knows about one ticket while it decides, as one typed object.

Rules, reply templates, prompts and the gate's risk signals read it by dotted path (`ticket.channel`,
`features.refunds_90d`, `order.amount`, `retrieval.top_score`, `first_pass.action.confidence`,
`decision.action`): see `rules.lookup`. `AgentRunner.decide` fills it in order: the ticket row, then what
the context tools returned, the first pass, the decision, the reply, and whether an action was held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from factory_pipelines.lib.agents.tools import order_refs

AMOUNT = re.compile(r"[$€£]\s?([0-9][0-9,]*(?:\.[0-9]{1,2})?)|\b([0-9][0-9,]*(?:\.[0-9]{1,2})?)\s?(?:USD|EUR|GBP)\b")


def _no_passages() -> dict[str, Any]:
    return {"top_score": 0.0, "passages": [], "ids": []}


@dataclass
class TicketFacts:
    ticket: dict[str, Any]  # the staging row, as loaded
    text: str  # subject and body, what retrieval and the text rules read
    features: dict[str, Any] = field(default_factory=dict)  # customer_features, as of the ticket
    feature_times: dict[str, str] = field(default_factory=dict)  # feature -> event time (ISO, UTC)
    order: dict[str, Any] | None = None  # order_lookup, as of the run's day
    retrieval: dict[str, Any] = field(default_factory=_no_passages)  # kb_search: top_score, passages, ids
    amount: float | None = None  # the order's amount, else the first amount the text names
    first_pass: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> {label, confidence}
    decision: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # the rules that fired, for templates
    reply: dict[str, Any] | None = None  # {body, cited}
    held: Literal["escalated", "denied"] | None = None  # a side effect that did not run

    @classmethod
    def of(cls, ticket: dict[str, Any]) -> TicketFacts:
        return cls(ticket=ticket, text=f"{ticket.get('subject') or ''}\n{ticket.get('body') or ''}")

    @property
    def ticket_id(self) -> str:
        return str(self.ticket["ticket_id"])

    @property
    def customer_id(self) -> str:
        return str(self.ticket.get("customer_id") or "")

    @property
    def order_id(self) -> str | None:
        """The order the ticket names: its own column, else the first reference in its text."""
        return self.ticket.get("order_id") or next(iter(order_refs(self.text)), None)

    def values(self, **extra: Any) -> dict[str, Any]:
        """The facts as a mapping (for templates), with `extra` names added."""
        return {**vars(self), **extra}


def parse_amount(text: str) -> float | None:
    match = AMOUNT.search(text)
    if not match:
        return None
    return float((match.group(1) or match.group(2)).replace(",", ""))
