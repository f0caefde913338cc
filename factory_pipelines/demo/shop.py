"""Customers (the CRM export) and orders (the shop export), with each order's whole status history.

The customer universe is a function of the seed only, anchored to signups in 2023-2025 rather than to the
run's start, so a day's files do not depend on which other days are generated.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from factory_pipelines.demo.context import Ctx, at, pick
from factory_pipelines.demo.vocabulary import catalog

SIGNUP_FROM = date(2023, 1, 1)
ORDER_EPOCH = date(2020, 1, 1)  # order ids count days from here

Event = tuple[str, datetime, float | None]  # (status, at, refund_amount)


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    first: str
    email: str
    plan: str
    region: str
    currency: str
    signup: date
    base_spend: float
    rate: float

    def spend(self, day: date) -> float:
        return round(self.base_spend + self.rate * max(0, (day - self.signup).days), 2)


@dataclass(frozen=True)
class Order:
    id: str
    customer: Customer
    product: str
    amount: float
    ordered_at: datetime
    events: tuple[Event, ...]  # first is placed

    def status_before(self, t: datetime) -> Event:
        return [e for e in self.events if e[1] < t][-1]


def mailbox(first: str, last: str) -> str:
    """ASCII local part derived from the name (José O'Brien -> jose.obrien)."""
    folded = unicodedata.normalize("NFKD", f"{first}.{last}".replace("ø", "o")).encode("ascii", "ignore")
    return folded.decode().lower().replace("'", "")


@lru_cache(maxsize=8)
def universe(seed: int, count: int) -> tuple[Customer, ...]:
    """The CRM's customers, a function of the seed only (same prefix for any count)."""
    shop = catalog()
    plans = {p.name: p for p in shop.plans}
    rng, out = random.Random(f"{seed}/customers"), []
    for i in range(1, count + 1):
        first, last = rng.choice(shop.first_names), rng.choice(shop.last_names)
        email = f"{mailbox(first, last)}{i}@{rng.choice(shop.email_domains)}"
        plan = plans[pick(rng, shop.plan_names, tuple(p.weight for p in shop.plans))]
        region = pick(rng, tuple(shop.regions), tuple(shop.regions.values()))
        currency = ("EUR" if rng.random() < 0.75 else "GBP") if region == "eu" else "USD"
        (lo, hi), (rlo, rhi) = plan.spend, plan.spend_per_day
        signup = SIGNUP_FROM + timedelta(days=rng.randrange(1095))
        out.append(Customer(f"C-{i:05d}", f"{first} {last}", first, email, plan.name, region, currency,
                            signup, round(rng.uniform(lo, hi), 2), rng.uniform(rlo, rhi)))
    return tuple(out)


def _history(rng: random.Random, day: date, placed: datetime, amount: float,
             drift: bool) -> tuple[Event, ...]:
    """Placed, then cancelled or shipped (-> delivered -> maybe refunded), each change on a later day."""
    def later(base: date, lo: int, hi: int) -> datetime:
        return at(base + timedelta(days=rng.randint(lo, hi)), rng.randrange(86400))

    events: list[Event] = [("placed", placed, None)]
    if rng.random() < 0.06:
        events.append(("cancelled", later(day, 1, 2), None))
    else:
        events.append(("shipped", later(day, 1, 3), None))
        if rng.random() < 0.97:
            events.append(("delivered", later(events[-1][1].date(), 2, 6), None))
            if rng.random() < (0.16 if drift else 0.06):
                refund = amount if rng.random() < 0.8 else round(amount / 2, 2)
                events.append(("refunded", later(events[-1][1].date(), 1, 14), refund))
    return tuple(events)


@lru_cache(maxsize=512)
def placed_orders(ctx: Ctx, day: date) -> tuple[Order, ...]:
    """Orders placed on `day` with their whole (future) status history; drift buys pricier and more."""
    rng, drift = ctx.rng("orders", day), ctx.drifted(day)
    products, customers = catalog().products, universe(ctx.seed, ctx.customers)
    count = min(999, max(1, round(ctx.tickets_per_day * 0.8 * rng.uniform(0.9, 1.1))))
    weights = [p.price ** (0.2 if drift else -0.3) for p in products]
    base_id = ((day - ORDER_EPOCH).days % 10000) * 1000  # O-<day number><3-digit sequence>
    stamps = sorted(rng.randrange(86400) for _ in range(count))
    orders = []
    for k, sec in enumerate(stamps):
        cust = rng.choice(customers)
        product = rng.choices(products, weights)[0]
        qty = rng.choices((1, 2, 3), (60, 25, 15) if drift else (80, 15, 5))[0]
        amount = round(product.price * qty * (0.9 if rng.random() < 0.1 else 1.0), 2)
        placed = at(day, sec)
        orders.append(Order(f"O-{base_id + k:07d}", cust, product.name, amount, placed,
                            _history(rng, day, placed, amount, drift)))
    return tuple(orders)


@lru_cache(maxsize=128)
def order_pool(ctx: Ctx, day: date, statuses: tuple[str, ...]) -> tuple[Order, ...]:
    """Orders of the last 30 days whose status at the start of `day` is one of `statuses`."""
    midnight = at(day, 0)
    return tuple(o for back in range(30, 0, -1) for o in placed_orders(ctx, day - timedelta(days=back))
                 if o.status_before(midnight)[0] in statuses)


def _customer_changes(ctx: Ctx, day: date) -> list[tuple[Customer, str, float, datetime]]:
    """A few percent of customers changed (sometimes their plan), plus 0-2 signups of the day."""
    shop, customers = catalog(), universe(ctx.seed, ctx.customers)
    plans = shop.plan_names
    rng, rows = ctx.rng("crm", day), []
    count = max(1, round(ctx.customers * 0.03 * rng.uniform(0.5, 1.5)))
    for c in sorted(rng.sample(customers, min(count, len(customers))), key=lambda c: c.id):
        step = rng.choice([-1, 1]) if rng.random() < 0.2 else 0
        plan = plans[max(0, min(3, plans.index(c.plan) + step))]
        rows.append((c, plan, c.spend(day), at(day, rng.randrange(86400))))
    for k in range(rng.randint(0, 2)):
        first, last = rng.choice(shop.first_names), rng.choice(shop.last_names)
        num = 90000 + (day.toordinal() * 3 + k) % 10000
        new = Customer(f"C-{num:05d}", f"{first} {last}", first,
                       f"{mailbox(first, last)}{num}@{rng.choice(shop.email_domains)}",
                       rng.choice(plans[:2]), rng.choice(tuple(shop.regions)), "USD", day, 0.0, 0.0)
        rows.append((new, new.plan, 0.0, at(day, rng.randrange(86400))))
    return rows


def customer_rows(ctx: Ctx, day: date, start: date) -> list[dict[str, Any]]:
    """Full table on the start day; afterwards only the day's changes and signups."""
    if day == start:
        rng, rows = ctx.rng("crm-snapshot", day), []
        for c in universe(ctx.seed, ctx.customers):
            back = rng.randint(0, max(0, min(365, (day - c.signup).days)))
            rows.append((c, c.plan, c.spend(day), at(day - timedelta(days=back), rng.randrange(86400))))
    else:
        rows = _customer_changes(ctx, day)
    return [{"customer_id": c.id, "name": c.name, "email": c.email, "plan": plan, "region": c.region,
             "signup_date": c.signup, "lifetime_spend": spend, "updated_at": t}
            for c, plan, spend, t in rows]


def order_rows(ctx: Ctx, day: date) -> list[dict[str, Any]]:
    """New orders of the day, then status changes of the last 30 days' orders (one row per order)."""
    def row(o: Order, status: str, t: datetime, refund: float | None) -> dict[str, Any]:
        return {"order_id": o.id, "customer_id": o.customer.id, "product": o.product, "amount": o.amount,
                "currency": o.customer.currency, "status": status, "refund_amount": refund,
                "ordered_at": o.ordered_at, "updated_at": t}

    new = [row(o, *o.events[0]) for o in placed_orders(ctx, day)]
    earlier = (o for back in range(30, 0, -1) for o in placed_orders(ctx, day - timedelta(days=back)))
    changes = [row(o, *e) for o in earlier for e in o.events[1:] if e[1].date() == day]
    return new + sorted(changes, key=lambda r: (r["updated_at"], r["order_id"]))
