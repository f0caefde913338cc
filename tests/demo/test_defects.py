"""Injected defects are really in the files, counted right, and never change the clean content."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factory_pipelines.demo import DEFECT_KINDS, write_demo_data
from tests.demo.readers import (
    D1,
    FILES,
    KEYS,
    SMALL,
    SPECS,
    days,
    parse_json,
    read_tickets,
    truth,
    violations,
)


def test_injected_defects_are_in_the_files(tmp_path: Path) -> None:
    summary = write_demo_data(tmp_path / "l", D1, D1 + timedelta(days=1), defect_rate=0.1,
                              truth_dir=tmp_path / "t", **SMALL)
    clean = write_demo_data(tmp_path / "c", D1, D1 + timedelta(days=1), defect_rate=0.0,
                            truth_dir=tmp_path / "tc", **SMALL)
    assert set(summary.defects["tickets"]) == set(DEFECT_KINDS["tickets"])
    assert set(summary.defects["orders"]) == set(DEFECT_KINDS["orders"])
    found: dict[str, Counter[str]] = {s: Counter() for s in FILES}
    width = len(SPECS["tickets"]["columns"])
    for day in days(2):
        raw = (tmp_path / "l" / "tickets" / str(day) / "tickets.csv").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        header, records = read_tickets(tmp_path / "l" / "tickets" / str(day) / "tickets.csv")
        ids = Counter(r[0] for r in records)
        found["tickets"]["duplicate_row"] += sum(1 for k, n in ids.items() if k and n == 2)
        for r in records:
            row = dict(zip(header, r, strict=False))
            v = violations("tickets", row)
            found["tickets"]["malformed_row"] += len(r) > width
            found["tickets"]["bad_encoding"] += bool(re.search("[\udc80-\udcff]", r[5]))
            found["tickets"]["null_required"] += any(x.endswith(":required") for x in v)
            found["tickets"]["invalid_enum"] += any(x.endswith(":enum") for x in v)
            found["tickets"]["wrong_type"] += any(x.endswith(":type") for x in v)
        for source in ("customers", "orders", "kb_articles"):
            path = tmp_path / "l" / source / str(day) / FILES[source]
            lines = path.read_text().splitlines() if source == "kb_articles" else []
            good = [row for x in lines if (row := parse_json(x)) is not None]
            found[source]["malformed_row"] += len(lines) - len(good)
            rows = good if source == "kb_articles" else pq.read_table(path).to_pylist()
            keys = Counter(r[KEYS[source]] for r in rows)
            found[source]["duplicate_row"] += sum(1 for n in keys.values() if n == 2)
            for row in rows:
                v = violations(source, row)
                found[source]["null_required"] += any(x.endswith(":required") for x in v)
                found[source]["invalid_enum"] += any(x.endswith(":enum") for x in v)
                found[source]["out_of_range"] += any(x.endswith((":min", ":max")) for x in v)
                found[source]["wrong_type"] += any(x.endswith(":type") for x in v)
    for source in FILES:
        assert dict(+found[source]) == summary.defects[source], source
    assert summary.total_defects == len(summary.defect_records) > 0
    assert summary.rows["tickets"] == clean.rows["tickets"] + summary.defects["tickets"]["duplicate_row"]
    # defects never change the content: truth is the same as for the clean run, minus nulled ids
    for day in days(2):
        dirty = {t["ticket_id"]: t for t in truth(tmp_path / "t", day)}
        pure = {t["ticket_id"]: t for t in truth(tmp_path / "tc", day)}
        records = [r for r in summary.defect_records if r.source == "tickets" and r.day == day]
        nulled = [r for r in records if r.key is None]
        assert dirty.items() <= pure.items() and len(pure) - len(dirty) == len(nulled)
