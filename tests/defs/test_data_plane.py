"""The whole data plane for two days with the real DuckDB, Great Expectations, Feast and Dagster
instance, then what a bad day does: blocking contracts stop everything downstream in that run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from factory_pipelines.definitions import build_definitions
from factory_pipelines.defs.resources import build_resources
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import prepare_instance
from factory_pipelines.runs import PartitionOutcome, run_partitions
from factory_pipelines.settings import Settings, get_settings
from tests.conftest import use_home

DAYS = ["2026-11-01", "2026-11-02"]
ALL_ASSETS = {
    "raw/tickets", "raw/customers", "raw/orders", "raw/kb_articles",
    "staging/tickets", "staging/customers", "staging/orders", "staging/kb_articles",
    "features/customer_daily", "features/ticket_features", "features/feast_registry", "features/online_store",
}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list[PartitionOutcome]]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = use_home(monkeypatch, tmp_path_factory.mktemp("plane"), start_date="2026-11-01",
                            end_date="2026-11-02")
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 1), date(2026, 11, 2),
                        tickets_per_day=60, customers=80, defect_rate=0.02)
        prepare_instance(settings)
        outcomes = run_partitions("data_plane_job", DAYS, definitions=build_definitions(settings))
        yield settings, outcomes
    get_settings.cache_clear()


def test_every_asset_and_check_of_both_days(plane) -> None:
    _, outcomes = plane
    for outcome in outcomes:
        assert outcome.success, (outcome.partition, outcome.failed_steps, outcome.error)
        assert set(outcome.materialized) == ALL_ASSETS
        assert len(outcome.checks) == 12 and all(outcome.checks.values()), outcome.checks


def test_counts_reconcile_in_asset_metadata(plane) -> None:
    settings, outcomes = plane
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        for outcome in outcomes:
            for source in ("tickets", "customers", "orders", "kb_articles"):
                meta = outcome.materialized[f"raw/{source}"]
                assert meta["rows_read"] == meta["rows_loaded"] + meta["rows_quarantined"]
                loaded = con.execute(f"SELECT count(*) FROM raw.{source} WHERE _partition = ?",
                                     [outcome.partition]).fetchone()[0]
                assert loaded == meta["rows_loaded"]
            staged = con.execute("SELECT count(*) FROM staging.tickets WHERE _partition = ?",
                                 [outcome.partition]).fetchone()[0]
            assert staged == outcome.materialized["staging/tickets"]["rows_out"] > 0


def test_online_features_for_one_and_many_customers(plane) -> None:
    settings, _ = plane
    store = build_resources(settings)["feature_store"]
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        pairs = con.execute("SELECT customer_id, ticket_id FROM staging.tickets WHERE _partition = '2026-11-02' "
                            "ORDER BY ticket_id LIMIT 20").fetchall()
        plan = dict(con.execute("SELECT customer_id, plan FROM staging.customers "
                                "QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC) = 1"
                                ).fetchall())
    one = store.online_features([{"customer_id": pairs[0][0], "ticket_id": pairs[0][1]}])
    assert one["plan"] == [plan[pairs[0][0]]] and one["body_chars"][0] > 0
    many = store.online_features([{"customer_id": c, "ticket_id": t} for c, t in pairs])
    assert many["customer_id"] == [c for c, _ in pairs]
    assert all(p is not None for p in many["plan"]) and all(b is not None for b in many["body_chars"])


def test_historical_features_are_point_in_time_correct(plane) -> None:
    settings, _ = plane
    store = build_resources(settings)["feature_store"]
    customer = pd.read_parquet(Path(settings.feature_data_dir) / "customer_daily" / "2026-11-01.parquet")
    customer_id = customer["customer_id"].iloc[0]
    entity_df = pd.DataFrame({
        "customer_id": [customer_id] * 2,
        "ticket_id": ["T-none", "T-none"],
        "event_timestamp": [datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC)],
    })
    frame = store.historical_features(entity_df).sort_values("event_timestamp")
    assert frame["plan"].isna().tolist() == [True, False], "day 1 noon must not see the snapshot taken at its end"
    assert frame["plan"].iloc[1] == customer["plan"].iloc[0]


def test_feature_files_are_utc_microseconds(plane) -> None:
    settings, _ = plane
    path = Path(settings.feature_data_dir) / "ticket_features" / "2026-11-01.parquet"
    assert str(pd.read_parquet(path)["event_timestamp"].dtype) == "datetime64[us, UTC]"


def test_rerunning_a_day_replaces_it(plane) -> None:
    settings, outcomes = plane
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        before = con.execute("SELECT count(*) FROM raw.tickets").fetchone()[0]
    again = run_partitions("data_plane_job", ["2026-11-01"], definitions=build_definitions(settings))[0]
    assert again.success
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.tickets").fetchone()[0] == before
        assert con.execute("SELECT count(*) FROM raw.quarantine WHERE partition = '2026-11-01'").fetchone()[0] == (
            sum(m["rows_quarantined"] for k, m in outcomes[0].materialized.items() if k.startswith("raw/"))
        )


def _bad_day(settings: Settings, day: str, tickets_csv: str | None) -> PartitionOutcome:
    write_demo_data(Path(settings.landing_dir), date.fromisoformat(day), date.fromisoformat(day),
                    tickets_per_day=40, customers=50, defect_rate=0.0)
    folder = Path(settings.landing_dir) / "tickets" / day
    for path in folder.glob("*"):
        path.unlink()
    if tickets_csv is None:
        folder.rmdir()
    else:
        (folder / "tickets.csv").write_text(tickets_csv)
    prepare_instance(settings)
    return run_partitions("data_plane_job", [day], definitions=build_definitions(settings))[0]


def test_failed_contract_blocks_everything_downstream(settings: Settings) -> None:
    header = "ticket_id,customer_id,created_at,channel,subject,body,order_id,in_reply_to\n"
    rows = [f"T-20261103-{i:05d},C-{i:05d},2026-11-03 10:00:00,{'fax' if i % 3 == 0 else 'web'},Hi,Help me,,\n"
            for i in range(1, 31)]
    outcome = _bad_day(settings, "2026-11-03", header + "".join(rows))
    assert not outcome.success
    assert outcome.checks["raw/tickets:quarantine_rate_within_bound"] is False
    assert "10 of 30 rows quarantined" in outcome.check_descriptions["raw/tickets:quarantine_rate_within_bound"]
    assert "raw/tickets" in outcome.materialized, "the checked asset itself is still materialized"
    for blocked in ("staging/tickets", "features/ticket_features", "features/customer_daily", "features/online_store"):
        assert blocked not in outcome.materialized
    assert "staging/orders" in outcome.materialized, "unrelated branches still run"
    import duckdb  # the failed check is an alert row already, with no daemon running the alert sensor

    with duckdb.connect(settings.warehouse, read_only=True) as con:
        alerts = con.execute("SELECT check_name, asset_key, partition, run_id FROM alerts.check_failures").fetchall()
    assert ("quarantine_rate_within_bound", "raw/tickets", "2026-11-03", outcome.run_id) in alerts
    assert outcome.alerts == len(alerts) >= 1


def test_empty_day_fails_the_row_count_contract(settings: Settings) -> None:
    outcome = _bad_day(settings, "2026-11-04", "ticket_id,customer_id,created_at,channel,subject,body,order_id,in_reply_to\n")
    assert outcome.checks["raw/tickets:contract_tickets_v1"] is False
    assert "expect_table_row_count_to_be_between" in outcome.check_descriptions["raw/tickets:contract_tickets_v1"]
    assert "staging/tickets" not in outcome.materialized


def test_missing_partition_folder_fails_the_step_with_a_clear_error(settings: Settings) -> None:
    outcome = _bad_day(settings, "2026-11-05", None)
    assert "raw__tickets" in outcome.failed_steps
    assert "no landing folder" in outcome.error and "tickets/2026-11-05" in outcome.error
    assert "raw/orders" in outcome.materialized
