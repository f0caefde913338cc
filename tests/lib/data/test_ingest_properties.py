"""Property: whatever mix of defects the landing files carry, every row is either loaded or
quarantined, each injected defect is caught, and nothing else is."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory_pipelines.demo import write_demo_data
from factory_pipelines.lib.data.ingest import load_partition
from factory_pipelines.lib.data.sources import load_sources
from factory_pipelines.settings import PACKAGE_DIR

SOURCES = load_sources(PACKAGE_DIR / "defs" / "ingestion" / "sources")
DAY = date(2026, 11, 1)


def records_in(path: Path) -> int:
    """Count records independently of DuckDB: CSV rows after the header, Parquet rows, JSONL lines."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    if path.suffix == ".parquet":
        return pq.read_metadata(path).num_rows
    return sum(1 for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), defect_rate=st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5]))
def test_every_row_is_loaded_or_quarantined(tmp_path_factory, seed: int, defect_rate: float) -> None:
    root = tmp_path_factory.mktemp("prop")
    summary = write_demo_data(root / "landing", DAY, DAY, seed=seed, defect_rate=defect_rate,
                              tickets_per_day=60, customers=80)
    con = duckdb.connect(str(root / "w.duckdb"))
    for name, spec in SOURCES.items():
        report = load_partition(con, spec, root / "landing", DAY, "prop")
        files = [Path(f) for f in report.files]
        assert report.rows_read == sum(records_in(f) for f in files), name
        assert report.rows_read == report.rows_loaded + report.rows_quarantined, name
        injected = sum(summary.defects[name].values())
        assert report.rows_quarantined == injected, (name, report.quarantined_by_rule, summary.defects[name])
        keys = [r.key for r in summary.defect_records if r.source == name and r.key]
        payloads = " ".join(p for (p,) in con.execute(
            "SELECT payload FROM raw.quarantine WHERE source = ?", [name]).fetchall())
        assert all(key in payloads for key in keys), name
        assert con.execute(f"SELECT count(*) FROM {spec.table}").fetchone()[0] == report.rows_loaded
    assert json.dumps(summary.defects)  # the mix really varies across examples
