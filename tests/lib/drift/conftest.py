"""Seeded daily tables for the drift tests: features, ticket texts, decisions and confidences, one row per
ticket with a `partition` day; from `drift_from` on the distributions shift (as the demo's drift date does)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from factory_pipelines.lib.drift.config import DriftConfig

START = date(2026, 10, 1)
PLANS, SHIFTED_PLANS = [0.5, 0.3, 0.15, 0.05], [0.15, 0.2, 0.3, 0.35]
CALM = ("order delivery package tracking late arrived parcel shipping address courier week status update "
        "warehouse label carrier depot signature neighbour doorstep weekend monday friday expected estimate "
        "portal account login password reset email confirmation receipt size colour exchange return").split()
ANGRY = ("refund charged twice broken furious cancel money back lawyer damaged wrong invoice scam unacceptable "
         "complaint chargeback dispute fraud manager immediately worst terrible useless").split()


def days(n: int, start: date = START) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def tickets(n_days: int, per_day: int, drift_from: date | None = None, seed: int = 7,
            start: date = START) -> pd.DataFrame:
    """Every family's columns in one frame (each family reads its own columns)."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in days(n_days, start):
        drifted = drift_from is not None and day >= drift_from
        frames.append(_day(rng, day, per_day, drifted))
    return pd.concat(frames, ignore_index=True)


def _day(rng: np.random.Generator, day: date, n: int, drifted: bool) -> pd.DataFrame:
    words = [rng.choice(ANGRY if drifted and rng.random() < 0.6 else CALM, 8) for _ in range(n)]
    confidence = rng.beta(2.0 if drifted else 6.0, 2.0, n)
    return pd.DataFrame({
        "partition": pd.Timestamp(day), "ticket_id": [f"T-{day:%Y%m%d}-{i:05d}" for i in range(n)],
        "body_chars": rng.lognormal(6.5 if drifted else 5.5, 0.4, n), "sentiment": rng.normal(0.0, 0.3, n),
        "plan": rng.choice(["free", "basic", "pro", "enterprise"], n, p=SHIFTED_PLANS if drifted else PLANS),
        "is_follow_up": rng.random(n) < 0.2,
        "subject": [" ".join(w[:3]) for w in words], "body": [" ".join(w) for w in words],
        "category": rng.choice(["billing", "shipping", "technical"], n, p=[0.3, 0.5, 0.2]),
        "action": rng.choice(["reply", "escalate", "refund"], n, p=[0.7, 0.2, 0.1]),
        "escalated": rng.random(n) < (0.45 if drifted else 0.2),
        "cost_usd": rng.gamma(2.0, 0.002, n),
        "confidence": confidence, "correct": (rng.random(n) < confidence).astype(float),
    })


def config(**overrides: Any) -> DriftConfig:
    """The tests' configuration: bounds above a stable 400-ticket day's noise, every family on."""
    data: dict[str, Any] = {
        "agent": "support_triage",
        "bounds": {"wasserstein": {"warn": 0.2, "error": 0.3}, "psi": {"warn": 0.15, "error": 0.25},
                   "jensenshannon": {"warn": 0.1, "error": 0.2}},
        "features": {"table": "features/support_agent_v1", "numeric": ["body_chars", "sentiment"],
                     "categorical": ["plan", "is_follow_up"]},
        "text": {"table": "staging.tickets", "columns": ["subject", "body"], "bound": {"warn": 0.6, "error": 0.7}},
        "decisions": {"categorical": ["category", "action"], "rates": ["escalated"], "cost": "cost_usd"},
        "quality": {},
    }
    data.update(overrides)
    return DriftConfig.model_validate(data)


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """20 days of 400 tickets, drifting from day 18 (2026-10-18): 14 reference days, 3 stable nights before."""
    return tickets(20, 400, drift_from=date(2026, 10, 18))
