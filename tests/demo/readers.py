"""Shared by the demo tests: the declared source rules and readers for the four landing formats."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

import factory_pipelines

SOURCES_DIR = Path(factory_pipelines.__file__).resolve().parent / "defs" / "ingestion" / "sources"
SPECS = {p.stem: yaml.safe_load(p.read_text()) for p in SOURCES_DIR.glob("*.yaml")}
KEYS = {"tickets": "ticket_id", "customers": "customer_id", "orders": "order_id", "kb_articles": "article_id"}
FILES = {"tickets": "tickets.csv", "customers": "customers.parquet", "orders": "orders.parquet",
         "kb_articles": "articles.jsonl"}
D1 = date(2026, 11, 1)
SMALL = {"tickets_per_day": 60, "customers": 120}
INJECTION_CUES = re.compile(r"(?i)ignore|i g n o r e|1gn0re|system:|assistant instructions|decode and follow|"
                            r"admin override")


def days(n: int, start: date = D1) -> list[date]:
    return [start + timedelta(days=k) for k in range(n)]


def violations(source: str, row: dict[str, Any]) -> list[str]:
    """Every declared rule the row breaks, as 'column:rule' (empty CSV fields count as null)."""
    out = []
    for col in SPECS[source]["columns"]:
        name, value = col["name"], row.get(col["name"])
        if value is None or value == "":
            if col.get("required"):
                out.append(f"{name}:required")
            continue
        kind = col["type"]
        if kind == "VARCHAR" and not isinstance(value, str):
            out.append(f"{name}:type")
            continue
        if kind == "DOUBLE" and (isinstance(value, bool) or not isinstance(value, int | float)):
            out.append(f"{name}:type")
            continue
        if kind == "DATE" and (isinstance(value, datetime) or not isinstance(value, date)):
            out.append(f"{name}:type")
        if kind == "TIMESTAMP":
            if isinstance(value, str):
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    out.append(f"{name}:type")
            elif not (isinstance(value, datetime) and value.utcoffset() == timedelta(0)):
                out.append(f"{name}:type")
        if kind == "VARCHAR[]" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            out.append(f"{name}:type")
        if "enum" in col and value not in col["enum"]:
            out.append(f"{name}:enum")
        if "min" in col and isinstance(value, int | float) and value < col["min"]:
            out.append(f"{name}:min")
        if "max" in col and isinstance(value, int | float) and value > col["max"]:
            out.append(f"{name}:max")
        if "pattern" in col and isinstance(value, str) and not re.search(col["pattern"], value):
            out.append(f"{name}:pattern")
        if "max_length" in col and isinstance(value, str) and len(value) > col["max_length"]:
            out.append(f"{name}:max_length")
    return out


def read_tickets(path: Path, strict: bool = False) -> tuple[list[str], list[list[str]]]:
    """CSV records; non-UTF-8 bytes become surrogates (\\udcXX) unless strict."""
    text = path.read_bytes().decode("utf-8", "strict" if strict else "surrogateescape")
    header, *records = list(csv.reader(io.StringIO(text, newline="")))
    return header, records


def read_rows(source: str, path: Path) -> list[dict[str, Any]]:
    if source == "tickets":
        header, records = read_tickets(path, strict=True)
        assert all(len(r) == len(header) for r in records)
        return [dict(zip(header, r, strict=True)) for r in records]
    if source == "kb_articles":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def parse_json(line: str) -> dict[str, Any] | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def truth(truth_dir: Path, day: date) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (truth_dir / "tickets" / f"{day}.jsonl").read_text().splitlines()]
