"""The run's knobs and the seeded random streams every module draws from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class Ctx:
    """One run's settings; hashable, so per-day results can be cached by (ctx, day)."""

    seed: int
    tickets_per_day: int
    customers: int
    drift_date: date | None

    def drifted(self, day: date) -> bool:
        return self.drift_date is not None and day >= self.drift_date

    def rng(self, *parts: object) -> random.Random:
        """A stream per (seed, purpose, day...): string seeds are stable across processes."""
        return random.Random("/".join([str(self.seed), *map(str, parts)]))


def at(day: date, seconds: int) -> datetime:
    """UTC time `seconds` after midnight of `day`."""
    return datetime.combine(day, time(), UTC) + timedelta(seconds=seconds)


def pick(rng: random.Random, items: tuple[str, ...], weights: tuple[int, ...]) -> str:
    return rng.choices(items, weights)[0]
