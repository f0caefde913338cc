"""Helpdesk tickets and their truth labels: normal requests, injections, duplicates and follow-ups.

Truth rules (kept in `decide` so labels always follow from the text): every intent has a default action;
prompt injections, legal threats, fraud, security incidents, angry customers disputing >= 500 (refund or
order lookups) and refunds above 1,000 (the KB refund policy limit) are escalated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from factory_pipelines.demo.context import Ctx, at, pick
from factory_pipelines.demo.shop import Customer, Order, order_pool, universe
from factory_pipelines.demo.vocabulary import catalog, ticket_words

TICKET_COLUMNS = ("ticket_id", "customer_id", "created_at", "channel", "subject", "body", "order_id",
                  "in_reply_to")
REFUND_LIMIT = 1000.0  # refunds above this go to a team lead (KB refund policy)
HIGH_VALUE = 500.0  # angry customer disputing at least this amount -> escalate


@dataclass(frozen=True)
class Ticket:
    row: tuple[str, ...]  # the CSV fields, in TICKET_COLUMNS order
    truth: dict[str, Any] = field(hash=False)
    intent: str
    gist: str
    customer: Customer


@lru_cache(maxsize=128)
def ticket_times(ctx: Ctx, day: date) -> tuple[datetime, ...]:
    """Creation times of the day's tickets, busiest in working hours; their count is the day's volume."""
    rng = ctx.rng("ticket-times", day)
    count = max(1, round(ctx.tickets_per_day * rng.uniform(0.9, 1.1)))
    hours = rng.choices(range(24), ticket_words().hour_weights, k=count)
    return tuple(sorted(at(day, h * 3600 + rng.randrange(3600)) for h in hours))


def kind(ctx: Ctx, day: date, n: int) -> str:
    """Own stream per ticket, so a duplicate or follow-up can find earlier normal tickets cheaply."""
    r = ctx.rng("ticket-kind", day, n).random()
    return "injection" if r < 0.02 else "duplicate" if r < 0.05 else "follow_up" if r < 0.11 else "normal"


def decide(intent: str, sentiment: str, amount: float | None, legal: bool,
           injection: bool) -> tuple[str, str]:
    """Truth action and priority from what the text says (see module docstring)."""
    spec, value = ticket_words().intents[intent], amount or 0.0
    action = spec.action
    if injection or legal or (sentiment == "angry" and value >= HIGH_VALUE and action != "reply") or (
            action == "refund" and value > REFUND_LIMIT):
        action = "escalate"
    if spec.action == "escalate" or legal:
        priority = "urgent"
    elif action == "escalate" or sentiment == "angry" or value >= HIGH_VALUE:
        priority = "high"
    else:
        priority = "low" if spec.info else "medium"
    return action, priority


def wrap(rng: random.Random, core: str, sentiment: str, first: str, channel: str, extra: list[str]) -> str:
    """Tone, details and sign-off around the request; chat messages are one line, no signature."""
    words = ticket_words()
    if sentiment == "angry" and rng.random() < 0.5:
        core = core.upper()
    elif sentiment == "angry":
        core = core.rstrip(".") + "!!"
    parts = [rng.choice(words.openings[sentiment]), core, *extra,
             rng.choice(words.closings[sentiment]).format(first=first)]
    if channel == "chat":
        return " ".join(p for p in parts if p and "\n" not in p)
    return "\n\n".join(p for p in parts if p)


def _request(ctx: Ctx, day: date, rng: random.Random) -> tuple[str, dict[str, Any], Customer, Order | None,
                                                                 float | None]:
    """Choose intent, order and customer, then the values the intent's templates are filled with."""
    words, shop = ticket_words(), catalog()
    category = pick(rng, words.categories.names, words.categories.weights(ctx.drifted(day)))
    names = [k for k, v in words.intents.items() if v.category == category]
    intent = rng.choices(names, [words.intents[k].weight for k in names])[0]
    order = None
    if words.intents[intent].statuses:
        pool = order_pool(ctx, day, words.intents[intent].statuses)
        if pool:
            order = rng.choice(pool)
        else:
            intent = next(k for k in names if not words.intents[k].statuses)
    cust = order.customer if order else rng.choice(universe(ctx.seed, ctx.customers))
    product = (next(p for p in shop.products if p.name == order.product) if order
               else rng.choice(shop.products))
    plans, prices = shop.plan_names, {p.name: p.price for p in shop.plans}
    plan = {"free": "basic", "enterprise": "pro"}.get(cust.plan, cust.plan) if intent == "product_plan" else (
        cust.plan if cust.plan != "free" else "basic")
    amount: float | None = None
    if order:
        last = order.status_before(at(day, 0))
        amount = last[2] if intent == "refund_status" else order.amount
        since, sym = max(1, (day - last[1].date()).days), shop.currency_symbols[cust.currency]
    elif intent in ("refund_subscription", "billing_plan"):
        amount, since, sym = prices[plan], 1, shop.currency_symbols[cust.currency]
    else:
        since, sym = 1, "$"
    oid = order.id if order else ""
    values = {"p": product.name, "p2": rng.choice([p.name for p in shop.products if p.name != product.name]),
              "oid": oid, "o": rng.choice(words.order_references).format(oid=oid),
              "amt": f"{sym}{amount:,.2f}" if amount is not None else "", "n": since, "plan": plan.title(),
              "plan2": plans[min(3, plans.index(plan) + 1)].title(),
              "fault": rng.choice(shop.faults[product.kind]),
              "compat": rng.choice(shop.compatibility[product.kind]),
              "err": rng.choice(words.errors), "country": rng.choice(words.countries),
              "when": order.ordered_at.strftime("%b %d").replace(" 0", " ") if order else ""}
    return intent, values, cust, order, amount


def _duplicate(ctx: Ctx, day: date, n: int, rng: random.Random, tid: str, stamp: str) -> Ticket | None:
    """A re-send of an earlier normal ticket of the same day (same customer, channel, text)."""
    start = rng.randrange(n)
    m = next((m for m in range(start, -1, -1) if kind(ctx, day, m) == "normal"), None)
    if m is None:
        return None
    orig = ticket(ctx, day, m)
    row = (tid, orig.row[1], stamp, orig.row[3], *orig.row[4:7], "")
    return replace(orig, row=row, truth={**orig.truth, "ticket_id": tid, "is_duplicate_of": orig.row[0]})


def _follow_up(ctx: Ctx, day: date, n: int, rng: random.Random, tid: str, stamp: str,
               channel: str) -> Ticket | None:
    """A chase-up of a normal ticket from the last 0-3 days, labelled from the original's intent."""
    words = ticket_words()
    tday = day - timedelta(days=rng.randint(0, 3))
    limit = n if tday == day else len(ticket_times(ctx, tday))
    cand = [m for m in range(limit) if kind(ctx, tday, m) == "normal"]
    if not cand:
        return None
    target = ticket(ctx, tday, rng.choice(cand))
    sentiment = pick(rng, words.sentiments.names, words.sentiments.follow_up)
    legal = sentiment == "angry" and rng.random() < 0.1
    core = rng.choice(words.follow_ups).format(t=target.row[0], g=target.gist)
    extra = [rng.choice(words.legal_threats)] if legal else []
    body = wrap(rng, core, sentiment, target.customer.first, channel, extra)
    action, priority = decide(target.intent, sentiment, target.truth["amount"], legal, False)
    subject = rng.choice(words.follow_up_subjects).format(subject=target.row[4], t=target.row[0])
    row = (tid, target.row[1], stamp, channel, subject, body, target.truth["order_id"] or "", target.row[0])
    truth = {**target.truth, "ticket_id": tid, "priority": priority, "action": action, "sentiment": sentiment,
             "is_injection": False, "is_duplicate_of": None, "is_follow_up": True}
    return Ticket(row, truth, target.intent, target.gist, target.customer)


def _fresh(ctx: Ctx, day: date, rng: random.Random, tid: str, stamp: str, channel: str,
           injection: bool) -> Ticket:
    """A new request in the customer's tone; drifted days write longer, angrier messages."""
    words, drift = ticket_words(), ctx.drifted(day)
    intent, values, cust, order, amount = _request(ctx, day, rng)
    spec = words.intents[intent]
    sentiment = pick(rng, words.sentiments.names, words.sentiments.weights(drift))
    disputes = spec.category in ("refund", "billing", "shipping")
    legal = sentiment == "angry" and disputes and rng.random() < 0.15
    core = rng.choice(spec.bodies).format(**values)
    mentioned = bool(order) and values["oid"] in core
    extra = rng.sample(words.details, rng.randint(2, 4) if drift else rng.randint(0, 1))
    if legal:
        extra.append(rng.choice(words.legal_threats))
    if injection:
        extra.insert(rng.randrange(len(extra) + 1), rng.choice(words.injections))
    body = wrap(rng, core, sentiment, cust.first, channel, extra)
    subject = rng.choice(spec.subjects).format(**values)
    if channel == "phone":
        subject = words.phone_subject.format(subject=subject)
    field_order = values["oid"] if order and (not mentioned or rng.random() < 0.7) else ""
    action, priority = decide(intent, sentiment, amount, legal, injection)
    truth = {"ticket_id": tid, "category": spec.category, "priority": priority, "action": action,
             "sentiment": sentiment, "is_injection": injection, "is_duplicate_of": None,
             "is_follow_up": False, "order_id": order.id if order else None, "amount": amount}
    row = (tid, cust.id, stamp, channel, subject, body, field_order, "")
    return Ticket(row, truth, intent, spec.gist.format(**values), cust)


@lru_cache(maxsize=4096)
def ticket(ctx: Ctx, day: date, n: int) -> Ticket:
    """Ticket n of `day`: a normal request, an injection, a same-day duplicate or a follow-up."""
    rng, what = ctx.rng("ticket", day, n), kind(ctx, day, n)
    tid, created = f"T-{day:%Y%m%d}-{n + 1:05d}", ticket_times(ctx, day)[n]
    channel = pick(rng, ticket_words().channels.names, ticket_words().channels.weights(ctx.drifted(day)))
    stamp = created.strftime("%Y-%m-%d %H:%M:%S")
    if what == "duplicate" and n > 0 and (dup := _duplicate(ctx, day, n, rng, tid, stamp)):
        return dup
    if what == "follow_up" and (chase := _follow_up(ctx, day, n, rng, tid, stamp, channel)):
        return chase
    return _fresh(ctx, day, rng, tid, stamp, channel, what == "injection")
