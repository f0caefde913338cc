"""Money in cents, rounded once: `int(x * 100)` truncated (19.99 became 1998), in budgets and in the gate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from factory_pipelines.lib.agents.toolbox import Budget
from factory_pipelines.lib.money import cents


@pytest.mark.parametrize(("amount", "expected"), [
    (19.99, 1999), (0.125, 13), (0.1 + 0.2, 30), (540.0, 54000), (1e-3, 0), (0.005, 1), (-19.99, -1999),
    (None, 0), (0, 0), (4.35, 435), (1_000_000.01, 100_000_001),
])
def test_cents_rounds_the_decimal_amount(amount: float | None, expected: int) -> None:
    assert cents(amount) == expected


def test_budgets_in_cents_round_instead_of_truncating() -> None:
    budgets = SimpleNamespace(max_tokens=1, max_tool_calls=1, max_cost_usd=1.0, max_refund_usd_per_run=19.99,
                              max_refund_usd_per_day=4.35)
    budget = Budget.from_manifest(budgets)
    assert (budget.refund_run_max_cents, budget.refund_day_max_cents) == (1999, 435)
