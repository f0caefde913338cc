"""Money as whole cents: what budgets, policies and the audit log compare (floats do not add up exactly)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def cents(amount: float | None) -> int:
    """`amount` in cents, rounded half up from its shortest decimal text (19.99 -> 1999, where
    `int(19.99 * 100)` gives 1998; 0.125 -> 13)."""
    if not amount:
        return 0
    return int(Decimal(repr(float(amount))).scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_UP))
