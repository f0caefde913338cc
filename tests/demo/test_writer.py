"""The written files: layout and summary, clean files obey the declared source rules, deterministic bytes,
days independent of each other, bad arguments refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory_pipelines.demo import DemoDataSummary, write_demo_data
from tests.demo.readers import D1, FILES, KEYS, SMALL, SPECS, days, read_rows, read_tickets, violations


def test_layout_and_summary(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, truth_dir, summary = clean
    assert summary.days == days(6)
    expected = {landing / s / str(d) / FILES[s] for d in days(6) for s in FILES}
    assert set(summary.files) == expected and all(p.is_file() for p in expected)
    assert summary.truth_files == [truth_dir / "tickets" / f"{d}.jsonl" for d in days(6)]
    assert summary.total_defects == 0 and summary.defect_records == []
    for source, name in FILES.items():
        written = sum(len(read_rows(source, landing / source / str(d) / name)) for d in days(6))
        assert summary.rows[source] == written > 0


def test_clean_files_satisfy_every_declared_rule(clean: tuple[Path, Path, DemoDataSummary]) -> None:
    landing, _, _ = clean
    for day in days(6):
        header, _ = read_tickets(landing / "tickets" / str(day) / "tickets.csv", strict=True)
        assert header == [c["name"] for c in SPECS["tickets"]["columns"]]
        for source, name in FILES.items():
            rows = read_rows(source, landing / source / str(day) / name)
            bad = [(row[KEYS[source]], v) for row in rows if (v := violations(source, row))]
            assert bad == [], (source, day, bad[:5])
            keys = [row[KEYS[source]] for row in rows]
            assert len(keys) == len(set(keys)), (source, day)
        for row in read_rows("tickets", landing / "tickets" / str(day) / "tickets.csv"):
            assert row["ticket_id"].startswith(f"T-{day:%Y%m%d}-")
            assert datetime.fromisoformat(row["created_at"]).date() == day
    orders = pq.read_table(landing / "orders" / str(D1) / "orders.parquet")
    customers = pq.read_table(landing / "customers" / str(D1) / "customers.parquet")
    assert orders.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert orders.schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    assert customers.schema.field("signup_date").type == pa.date32()
    assert orders.schema.metadata is None or b"pandas" not in orders.schema.metadata


def test_rerun_writes_identical_bytes(tmp_path: Path) -> None:
    args = {"seed": 11, "defect_rate": 0.05, "drift_date": D1 + timedelta(days=1), **SMALL}
    first = write_demo_data(tmp_path / "a", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "ta", **args)
    before = {p: p.read_bytes() for p in first.files + first.truth_files}
    again = write_demo_data(tmp_path / "a", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "ta", **args)
    other = write_demo_data(tmp_path / "b", D1, D1 + timedelta(days=2), truth_dir=tmp_path / "tb", **args)
    assert again == first and {p: p.read_bytes() for p in again.files + again.truth_files} == before
    assert other.rows == first.rows and other.defects == first.defects
    for p, data in before.items():
        twin = Path(str(p).replace(str(tmp_path / "a"), str(tmp_path / "b")).replace(
            str(tmp_path / "ta"), str(tmp_path / "tb")))
        assert twin.read_bytes() == data, p
    changed = write_demo_data(tmp_path / "c", D1, D1, **{**args, "seed": 12})
    assert changed.files[0].read_bytes() != before[first.files[0]]


def test_days_are_generated_independently(tmp_path: Path) -> None:
    args = {"defect_rate": 0.05, **SMALL}
    d3 = D1 + timedelta(days=2)
    write_demo_data(tmp_path / "all", D1, D1 + timedelta(days=4), truth_dir=tmp_path / "t_all", **args)
    write_demo_data(tmp_path / "one", d3, d3, truth_dir=tmp_path / "t_one", **args)
    write_demo_data(tmp_path / "mid", D1 + timedelta(days=1), D1 + timedelta(days=3), **args)
    for source in ("tickets", "orders"):
        rel = Path(source) / str(d3) / FILES[source]
        assert (tmp_path / "all" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes(), source
    rel = Path("tickets") / f"{d3}.jsonl"
    assert (tmp_path / "t_all" / rel).read_bytes() == (tmp_path / "t_one" / rel).read_bytes()
    for source in ("customers", "kb_articles"):  # not the first day: only changes, whatever the start
        rel = Path(source) / str(d3) / FILES[source]
        assert (tmp_path / "all" / rel).read_bytes() == (tmp_path / "mid" / rel).read_bytes(), source
    snapshot = pq.read_table(tmp_path / "one" / "customers" / str(d3) / "customers.parquet")
    assert len(set(snapshot.column("customer_id").to_pylist())) == SMALL["customers"]  # start: full table


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, D1, D1 - timedelta(days=1))
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, D1, D1, defect_rate=1.5)
