"""The demo's words and weights, read once from the YAML files in `data/`.

Texts live in data files so that a person can read and edit them without touching the generator; the
loaders turn them into typed, frozen values and check the cross-references (categories, product kinds,
article ids) so a broken file fails at first use and names itself. YAML is imported lazily: importing the
package stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
KB_INJECTED_ARTICLE_IDS = ("KB-006", "KB-021")  # carry an indirect prompt injection in their body


@dataclass(frozen=True)
class Weighted:
    """Names with their draw weights before and after the drift date (and for follow-ups, if given)."""

    names: tuple[str, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    follow_up: tuple[int, ...] = ()

    def weights(self, drifted: bool) -> tuple[int, ...]:
        return self.after if drifted else self.before


@dataclass(frozen=True)
class Product:
    name: str
    price: float
    kind: str  # picks the faults and compatibility questions


@dataclass(frozen=True)
class Plan:
    name: str
    price: float
    weight: int
    spend: tuple[float, float]  # lifetime spend at signup, drawn uniformly
    spend_per_day: tuple[float, float]  # added per day since signup


@dataclass(frozen=True)
class Catalog:
    products: tuple[Product, ...]
    faults: dict[str, tuple[str, ...]]
    compatibility: dict[str, tuple[str, ...]]
    plans: tuple[Plan, ...]  # in upgrade order
    regions: dict[str, int]  # region -> weight
    currency_symbols: dict[str, str]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    email_domains: tuple[str, ...]

    @property
    def plan_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.plans)


@dataclass(frozen=True)
class Intent:
    category: str
    action: str
    statuses: tuple[str, ...]  # order statuses the ticket needs; () = no order
    weight: int
    info: bool  # a plain question: low priority unless angry
    gist: str  # what a follow-up says the ticket was about
    subjects: tuple[str, ...]
    bodies: tuple[str, ...]


@dataclass(frozen=True)
class TicketWords:
    categories: Weighted
    sentiments: Weighted
    channels: Weighted
    hour_weights: tuple[int, ...]
    intents: dict[str, Intent]
    openings: dict[str, tuple[str, ...]]
    closings: dict[str, tuple[str, ...]]
    legal_threats: tuple[str, ...]
    details: tuple[str, ...]
    injections: tuple[str, ...]
    errors: tuple[str, ...]
    countries: tuple[str, ...]
    order_references: tuple[str, ...]
    follow_ups: tuple[str, ...]
    follow_up_subjects: tuple[str, ...]
    phone_subject: str


@dataclass(frozen=True)
class Article:
    id: str
    category: str
    title: str
    tags: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class KnowledgeBase:
    articles: tuple[Article, ...]
    policies: dict[str, tuple[str, ...]]  # paragraphs after every article of the category
    injections: dict[str, str]  # article id -> planted paragraph
    closings: tuple[str, ...]
    updates: dict[str, tuple[str, ...]]  # revision notes by category


def _read(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8"))


def _weighted(spec: dict[str, dict[str, int]]) -> Weighted:
    def column(key: str) -> tuple[int, ...]:
        return tuple(w[key] for w in spec.values() if key in w)

    return Weighted(tuple(spec), column("before"), column("after"), column("follow_up"))


def _strings(spec: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in spec.items()}


def _check(name: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(f"{DATA_DIR / name}: {problem}")


@cache
def catalog() -> Catalog:
    """Products, plans, regions and the names customers are made of (`data/catalog.yaml`)."""
    raw = _read("catalog.yaml")
    plans = tuple(Plan(k, v["price"], v["weight"], tuple(v["spend"]), tuple(v["spend_per_day"]))
                  for k, v in raw["plans"].items())
    out = Catalog(tuple(Product(**p) for p in raw["products"]), _strings(raw["faults"]),
                  _strings(raw["compatibility"]), plans, raw["regions"], raw["currency_symbols"],
                  tuple(raw["first_names"]), tuple(raw["last_names"]), tuple(raw["email_domains"]))
    kinds = {p.kind for p in out.products}
    _check("catalog.yaml", kinds <= set(out.faults) and kinds <= set(out.compatibility),
           f"every product kind needs faults and compatibility entries: {sorted(kinds)}")
    _check("catalog.yaml", out.plan_names == ("free", "basic", "pro", "enterprise"),
           "the generator knows the plans free, basic, pro, enterprise, in that order")
    _check("catalog.yaml", {"USD", "EUR", "GBP"} <= set(out.currency_symbols), "needs USD, EUR and GBP")
    return out


@cache
def ticket_words() -> TicketWords:
    """Categories, intents and the phrases tickets are written with (`data/tickets.yaml`)."""
    raw = _read("tickets.yaml")
    intents = {k: Intent(v["category"], v["action"], tuple(v["statuses"]), v["weight"], v["info"], v["gist"],
                         tuple(v["subjects"]), tuple(v["bodies"])) for k, v in raw["intents"].items()}
    lists = {k: tuple(raw[k]) for k in ("hour_weights", "legal_threats", "details", "injections", "errors",
                                        "countries", "order_references", "follow_ups", "follow_up_subjects")}
    out = TicketWords(_weighted(raw["categories"]), _weighted(raw["sentiments"]), _weighted(raw["channels"]),
                      intents=intents, openings=_strings(raw["openings"]), closings=_strings(raw["closings"]),
                      phone_subject=raw["phone_subject"], **lists)
    for category in out.categories.names:
        _check("tickets.yaml", any(i.category == category and not i.statuses for i in intents.values()),
               f"category {category} needs an intent without order statuses")
    _check("tickets.yaml", {i.category for i in intents.values()} <= set(out.categories.names),
           "an intent names an unknown category")
    _check("tickets.yaml", len(out.hour_weights) == 24 and len(out.sentiments.follow_up) == 3,
           "needs 24 hour weights and a follow_up weight per sentiment")
    return out


@cache
def knowledge_base() -> KnowledgeBase:
    """Help-center articles and the paragraphs shared between them (`data/kb_articles.yaml`)."""
    raw = _read("kb_articles.yaml")
    articles = tuple(Article(a["id"], a["category"], a["title"], tuple(a["tags"]), a["text"])
                     for a in raw["articles"])
    out = KnowledgeBase(articles, _strings(raw["policies"]), raw["injections"], tuple(raw["closings"]),
                        _strings(raw["updates"]))
    ids, categories = [a.id for a in articles], {a.category for a in articles}
    _check("kb_articles.yaml", len(set(ids)) == len(ids), "article ids must be unique")
    _check("kb_articles.yaml", sorted(out.injections) == sorted(KB_INJECTED_ARTICLE_IDS),
           f"injections must be planted in exactly {KB_INJECTED_ARTICLE_IDS}")
    _check("kb_articles.yaml", categories <= set(out.policies) and categories <= set(out.updates),
           "every article category needs policies and updates")
    return out
