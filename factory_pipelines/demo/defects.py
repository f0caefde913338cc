"""Injected defects: the broken rows each source's contract must catch, logged so tests can count them.

Defects draw from their own streams, so the clean content of a file is the same at any defect rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from factory_pipelines.demo.context import Ctx

DEFECT_KINDS = {  # per source: what its file format can carry (parquet has no per-row wrong types)
    "tickets": ("malformed_row", "null_required", "invalid_enum", "duplicate_row", "bad_encoding",
                "wrong_type"),
    "customers": ("null_required", "invalid_enum", "duplicate_row", "out_of_range"),
    "orders": ("null_required", "invalid_enum", "duplicate_row", "out_of_range"),
    "kb_articles": ("malformed_row", "null_required", "invalid_enum", "duplicate_row", "wrong_type"),
}
_KEYS = {"customers": "customer_id", "orders": "order_id", "kb_articles": "article_id"}
_REQUIRED = {"customers": ["name", "email", "plan", "region", "updated_at"],
             "orders": ["customer_id", "product", "currency", "status", "ordered_at"],
             "kb_articles": ["title", "body", "category"]}
_BAD_ENUMS = {"customers": [("plan", "platinum"), ("region", "emea")], "kb_articles": [("category", "misc")],
              "orders": [("currency", "BTC"), ("status", "lost")]}


@dataclass(frozen=True)
class DefectRecord:
    """One injected defect: which file (source, day), what kind and the row's primary key (None if nulled)."""

    source: str
    day: date
    kind: str
    key: str | None


def chosen_defects(ctx: Ctx, source: str, day: date, n_rows: int, rate: float) -> dict[int, str]:
    """Row index -> defect kind, cycling through the source's kinds so every kind shows up."""
    rng = ctx.rng("defects", source, day)
    count = min(n_rows, int(n_rows * rate + rng.random()))
    kinds = list(DEFECT_KINDS[source])
    rng.shuffle(kinds)
    return {i: kinds[j % len(kinds)] for j, i in enumerate(sorted(rng.sample(range(n_rows), count)))}


def break_ticket(rng: random.Random, fields: list[str], kind: str | None) -> str:
    """Damage one CSV record in place; returns the word the writer must encode latin-1 ('' if none)."""
    if kind == "malformed_row":
        fields += ["", "unexpected column"]
    elif kind == "null_required":
        fields[rng.choice([0, 1, 2, 3, 4, 5])] = ""
    elif kind == "invalid_enum":
        fields[3] = rng.choice(["fax", "sms", "telegram", "carrier-pigeon"])
    elif kind == "wrong_type":
        fields[2] = rng.choice(["yesterday", "N/A", "last tuesday", "2026-02-30 25:61:00"])
    elif kind == "bad_encoding":
        word = rng.choice(["café", "naïve", "crème brûlée"])
        fields[5] += f" (sent from the {word} next door)"
        return word
    return ""


def _break_row(rng: random.Random, source: str, row: dict[str, Any], kind: str | None) -> None:
    if kind == "null_required":
        row[rng.choice(_REQUIRED[source])] = None
    elif kind == "invalid_enum":
        col, bad = rng.choice(_BAD_ENUMS[source])
        row[col] = bad
    elif kind == "out_of_range" and source == "orders":
        row["amount"] = rng.choice([25000.0, 0.0, -19.99])
    elif kind == "out_of_range":
        row["lifetime_spend"] = -125.0
    elif kind == "wrong_type":
        row["updated_at"] = rng.choice(["last week", "unknown", 20261101])
    elif kind == "malformed_row":
        row["_malformed"] = True


def apply_table_defects(ctx: Ctx, source: str, day: date, rows: list[dict[str, Any]], rate: float,
                        log: list[DefectRecord]) -> list[dict[str, Any]]:
    """Nulls, bad enums, out-of-range numbers, duplicates (parquet and JSONL); wrong types and truncated
    lines (JSONL only, marked here and cut when the line is written)."""
    rng, out = ctx.rng(f"{source}-defect-values", day), []
    chosen = chosen_defects(ctx, source, day, len(rows), rate)
    for i, row in enumerate(rows):
        kind, row = chosen.get(i), dict(row)
        _break_row(rng, source, row, kind)
        out.append(row)
        if kind == "duplicate_row":
            out.append(row)
        if kind:
            log.append(DefectRecord(source, day, kind, row[_KEYS[source]]))
    return out
