"""Features as agents read them, on the real Feast, DuckDB and Dagster: after a backfill of several days the
online store holds the last day, and an agent deciding a ticket of an early day must still see each feature as
it was when the ticket came in (issue 11), with the real event times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from factory_pipelines.definitions import build_definitions
from factory_pipelines.defs.resources import build_resources
from factory_pipelines.demo import write_demo_data
from factory_pipelines.instance import prepare_instance
from factory_pipelines.lib.agents.manifests import load_manifest
from factory_pipelines.runs import run_partitions
from factory_pipelines.settings import PACKAGE_DIR, Settings, get_settings
from tests.conftest import use_home

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
MANIFEST = PACKAGE_DIR / "defs" / "agents" / "manifests" / "support_triage.yaml"
CUSTOMER_FEATURES = ["plan", "region", "tenure_days", "lifetime_spend", "orders_30d", "spend_30d", "spend_90d",
                     "refunds_90d", "refund_amount_90d", "tickets_7d", "tickets_30d"]


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The data plane for three days, in order: the online store ends up holding the third."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = use_home(monkeypatch, tmp_path_factory.mktemp("features"), start_date=DAYS[0], end_date=DAYS[-1])
        write_demo_data(Path(settings.landing_dir), date(2026, 11, 1), date(2026, 11, 3), tickets_per_day=30,
                        customers=25, defect_rate=0.0)
        prepare_instance(settings)
        outcomes = run_partitions("data_plane_job", DAYS, definitions=build_definitions(settings))
        assert all(o.success for o in outcomes), [(o.partition, o.failed_steps, o.error) for o in outcomes]
        yield settings
    get_settings.cache_clear()


def tickets_of(settings: Settings, day: str) -> list[dict[str, Any]]:
    """The day's tickets as the agent asset reads them (created_at as text, UTC)."""
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        return con.execute(
            "SELECT ticket_id, customer_id, strftime(created_at, '%Y-%m-%d %H:%M:%S') AS created_at "
            "FROM staging.tickets WHERE _partition = ? ORDER BY created_at, ticket_id", [day]).df().to_dict("records")


def snapshot(settings: Settings, day: str) -> dict[str, dict[str, Any]]:
    frame = pd.read_parquet(Path(settings.feature_data_dir) / "customer_daily" / f"{day}.parquet")
    return {row["customer_id"]: row for row in frame.to_dict("records")}


def created(ticket: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(ticket["created_at"]).replace(tzinfo=UTC).timestamp())


class CountingStore:
    """The feature store resource, counting the bulk reads the agent's callables make."""

    def __init__(self, store: Any) -> None:
        self.store, self.reads = store, 0

    def features_as_of(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.reads += 1
        return self.store.features_as_of(*args, **kwargs)


def test_an_early_day_reads_each_feature_as_of_its_ticket_not_the_last_day(backfilled: Settings) -> None:
    from factory_pipelines.defs.agents.assets import day_features

    settings = backfilled
    resource = build_resources(settings)["feature_store"]
    tickets = tickets_of(settings, DAYS[1])
    store = CountingStore(resource)
    features = day_features(store, load_manifest(MANIFEST), tickets, DAYS[1])
    assert store.reads == 1, "the day is read in one bulk read"

    before, last = snapshot(settings, DAYS[0]), snapshot(settings, DAYS[-1])
    end_of_day_1 = int(datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC).timestamp())
    online = resource.online_features([{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]}
                                       for t in tickets], timestamps=True)
    assert set(online["plan__ts"]) == {int(datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC).timestamp())}, \
        "the online store holds the last day's snapshot (what the agents read before the fix)"
    differs = 0
    for ticket in tickets:
        row = features.one({"customer_id": ticket["customer_id"], "ticket_id": ticket["ticket_id"]})
        times = {k: v for k, v in row.items() if k.endswith("__ts") and v}
        assert times and max(times.values()) <= created(ticket), (ticket, times)
        assert row["body_chars__ts"] == created(ticket), "the ticket's own features, stamped at its creation"
        expected = before.get(ticket["customer_id"])
        if expected is None:  # a customer who signed up on the ticket's day: nothing known the day before
            assert all(row[f] is None and row[f"{f}__ts"] == 0 for f in CUSTOMER_FEATURES)
            continue
        assert {f: row[f] for f in CUSTOMER_FEATURES} == {f: expected[f] for f in CUSTOMER_FEATURES}
        assert all(row[f"{f}__ts"] == end_of_day_1 for f in CUSTOMER_FEATURES), "day 1's snapshot, not day 3's"
        differs += any(row[f] != last[ticket["customer_id"]][f] for f in CUSTOMER_FEATURES)
    assert differs > 0, "the last day's values differ for some customers, so the test tells the two apart"
    assert store.reads == 1, "every per-ticket read was served from the day's bulk read"


def test_the_first_day_has_no_customer_snapshot_yet(backfilled: Settings) -> None:
    from factory_pipelines.defs.agents.assets import day_features

    tickets = tickets_of(backfilled, DAYS[0])
    features = day_features(build_resources(backfilled)["feature_store"], load_manifest(MANIFEST), tickets, DAYS[0])
    rows = features.many([{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets],
                         timestamps=True)
    for ticket, row in zip(tickets, rows, strict=True):
        assert all(row[f] is None for f in CUSTOMER_FEATURES), "the first snapshot is taken at the end of day 1"
        assert row["channel"] is not None and row["channel__ts"] == created(ticket)


def test_as_of_values_are_feasts_point_in_time_values(backfilled: Settings) -> None:
    resource = build_resources(backfilled)["feature_store"]
    tickets = tickets_of(backfilled, DAYS[1])[:10]
    at = [datetime.fromisoformat(t["created_at"]).replace(tzinfo=UTC) for t in tickets]
    rows = resource.features_as_of([{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets], at)
    frame = resource.historical_features(pd.DataFrame({
        "customer_id": [t["customer_id"] for t in tickets], "ticket_id": [t["ticket_id"] for t in tickets],
        "event_timestamp": pd.to_datetime(at, utc=True)}))
    for row, expected in zip(rows, frame.set_index("ticket_id").loc[[t["ticket_id"] for t in tickets]].to_dict("records"),
                             strict=True):
        for name in resource.feature_names():
            value = expected[name]
            assert row[name] == (None if pd.isna(value) else value), name
    assert all(type(row["tenure_days"]) is int for row in rows if row["tenure_days"] is not None), "Python types"


def test_the_live_day_is_read_from_the_online_store_alone(backfilled: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = build_resources(backfilled)["feature_store"]
    tickets = tickets_of(backfilled, DAYS[-1])[:5]
    entities = [{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets]
    entities.append({"customer_id": "C-99999", "ticket_id": "T-unknown"})  # nothing known: nothing newer either
    online = resource.online_features(entities, timestamps=True)

    def no_historical_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a live read must not go to the offline store")

    monkeypatch.setattr(resource.store, "get_historical_features", no_historical_read)
    later = datetime(2026, 11, 4, 10, tzinfo=UTC)  # the next morning: every online value is in its past
    rows = resource.features_as_of(entities, [later] * len(entities))
    assert rows == [{k: v[i] for k, v in online.items()} for i in range(len(entities))]
    assert rows[-1]["plan"] is None and rows[-1]["plan__ts"] == 0


def test_the_online_read_answers_exactly_what_feast_does(backfilled: Settings) -> None:
    resource = build_resources(backfilled)["feature_store"]
    tickets = tickets_of(backfilled, DAYS[-1])[:20]
    entities = [{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"]} for t in tickets]
    entities.append({"customer_id": "C-99999", "ticket_id": "T-unknown"})  # no row: None values, event time 0
    service = resource.store.get_feature_service("support_agent_v1")
    for timestamps in (False, True):
        expected = resource.store.get_online_features(features=service, entity_rows=entities).to_dict(
            include_event_timestamps=timestamps)
        got = resource.online_features(entities, timestamps=timestamps)
        assert got == expected and list(got) == list(expected)
        assert all(type(a) is type(b) for k in expected for a, b in zip(got[k], expected[k], strict=True))


def test_a_stale_view_of_the_online_windows_still_never_reads_the_future(backfilled: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from factory_pipelines.resources import feature_store

    resource = build_resources(backfilled)["feature_store"]
    ticket = tickets_of(backfilled, DAYS[1])[0]
    entity = {"customer_id": ticket["customer_id"], "ticket_id": ticket["ticket_id"]}
    at = datetime.fromisoformat(ticket["created_at"]).replace(tzinfo=UTC)
    expected = resource.features_as_of([entity], [at])[0]
    resolved = feature_store._resolve(resource.store, "support_agent_v1")
    key = next(k for k, v in feature_store._services.items() if v is resolved)
    # as if the registry had been read before any day was materialized online but the third
    monkeypatch.setitem(feature_store._services, key, dataclasses.replace(resolved, online_until=0.0))
    row = resource.features_as_of([entity], [at])[0]
    assert row == expected and max(v for k, v in row.items() if k.endswith("__ts")) <= created(ticket)
