"""Reading features as of a moment: which online rows are point-in-time rows, the event times of a
point-in-time read (on a real DuckDB over real Parquet), and one bulk read serving a run's per-entity reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from factory_pipelines.lib.data.features import AsOfFeatures, ViewTimes, event_times_sql, online_is_as_of

DAY = 86_400
CUSTOMER = ViewTimes("customer_daily_profile", ("plan", "tenure_days"), (("customer_id", "customer_id"),),
                     "unused.parquet", "event_timestamp", 7 * DAY)
TICKET = ViewTimes("ticket_text_stats", ("channel",), (("ticket_id", "ticket_id"),), "unused.parquet",
                   "event_timestamp", 0)
AT = int(datetime(2026, 11, 3, 10, tzinfo=UTC).timestamp())


def _row(customer_ts: int, ticket_ts: int) -> dict:
    return {"customer_id": "C-1", "ticket_id": "T-1", "plan": "pro", "plan__ts": customer_ts, "tenure_days": 3,
            "tenure_days__ts": customer_ts, "channel": "web", "channel__ts": ticket_ts}


@pytest.mark.parametrize(("customer_ts", "ticket_ts", "expected", "why"), [
    (AT - 10 * 3600, AT, True, "yesterday's snapshot and the ticket itself: what a point-in-time read joins"),
    (AT + 14 * 3600, AT, False, "the snapshot taken at the end of the ticket's day knows its future"),
    (AT + 5 * DAY, AT, False, "a later day's snapshot (a backfill after the online store moved on)"),
    (AT - 8 * DAY, AT, False, "older than the view's TTL: a point-in-time read returns nothing"),
    (0, AT, True, "no online row (a customer the CRM does not know): nothing newer than the ticket"),
    (0, 0, True, "no row at all"),
    (AT - 3600, AT - 400 * DAY, True, "no TTL on the ticket view"),
])
def test_an_online_row_is_trusted_only_when_it_is_the_point_in_time_row(customer_ts, ticket_ts, expected, why) -> None:
    assert online_is_as_of(_row(customer_ts, ticket_ts), AT, (CUSTOMER, TICKET)) is expected, why


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    """Three daily customer snapshots stamped at the last microsecond of their day, as features.customer_daily."""
    directory = tmp_path / "customer_daily"
    directory.mkdir()
    for day in (1, 2, 3):
        stamp = datetime(2026, 11, day, tzinfo=UTC) + timedelta(days=1) - timedelta(microseconds=1)
        frame = pd.DataFrame({"customer_id": ["C-1", "C-2"], "spend": [10.0 * day, 1.0],
                              "event_timestamp": [stamp, stamp]})
        frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
        frame.to_parquet(directory / f"2026-11-0{day}.parquet")
    return directory


def test_event_times_are_those_of_the_rows_a_point_in_time_read_joins(snapshots: Path) -> None:
    view = ViewTimes("customer_daily_profile", ("spend",), (("customer_id", "customer_id"),),
                     str(snapshots / "*.parquet"), "event_timestamp", 2 * DAY)
    end_of = {d: int((datetime(2026, 11, d + 1, tzinfo=UTC) - timedelta(microseconds=1)).timestamp()) for d in (1, 2, 3)}
    entities = pd.DataFrame({
        "__row": [0, 1, 2, 3, 4, 5],
        "customer_id": ["C-1", "C-1", "C-1", "C-1", "C-9", "C-2"],
        "event_timestamp": pd.to_datetime([
            "2026-11-01 10:00", "2026-11-02 10:00", "2026-11-03 23:59:59.999999", "2026-11-06 10:00",
            "2026-11-03 10:00", "2026-11-04 10:00"], utc=True, format="ISO8601"),
    })
    with duckdb.connect() as con:
        con.register("entities", entities)
        times = dict(con.execute(event_times_sql(view)).fetchall())
    assert times == {
        1: end_of[1],  # a ticket on day 2 joins day 1's snapshot
        2: end_of[3],  # a row stamped exactly at the entity's time is joined (Feast's <=)
        5: end_of[3],  # day 3's snapshot is one day old on day 4: within the TTL
    }, "day 1 10:00 has no earlier snapshot; day 6 is past the 2-day TTL; C-9 has no row"


class CountingReader:
    def __init__(self) -> None:
        self.calls: list[tuple[list[dict], list[datetime]]] = []

    def __call__(self, rows: list[dict], times: list[datetime]) -> list[dict]:
        self.calls.append((rows, times))
        return [{**r, "plan": f"plan-of-{r['customer_id']}", "plan__ts": int(t.timestamp()) - 60} for r, t in
                zip(rows, times, strict=True)]


def test_a_day_is_read_once_and_each_ticket_then_served_from_memory() -> None:
    created = {"T-1": datetime(2026, 11, 2, 9, tzinfo=UTC), "T-2": datetime(2026, 11, 2, 15, tzinfo=UTC)}
    start = datetime(2026, 11, 2, tzinfo=UTC)
    read = CountingReader()
    features = AsOfFeatures(read, created, default=start)
    day = [{"customer_id": "C-1", "ticket_id": "T-1"}, {"customer_id": "C-2", "ticket_id": "T-2"}]
    batch = features.many(day)
    assert batch == [{"customer_id": "C-1", "ticket_id": "T-1", "plan": "plan-of-C-1"},
                     {"customer_id": "C-2", "ticket_id": "T-2", "plan": "plan-of-C-2"}], "no event times unless asked"
    assert read.calls == [(day, [created["T-1"], created["T-2"]])], "one read, each entity at its ticket's time"

    one = features.one({"ticket_id": "T-2", "customer_id": "C-2"})  # key order does not matter
    assert one["plan__ts"] == int(created["T-2"].timestamp()) - 60 and len(read.calls) == 1
    one["plan"] = "changed by a caller"
    assert features.one({"customer_id": "C-2", "ticket_id": "T-2"})["plan"] == "plan-of-C-2", "callers get copies"

    features.many([{"customer_id": "C-3", "ticket_id": "T-elsewhere"}, {"customer_id": "C-4"}])
    assert [c[1] for c in read.calls[1:]] == [[start], [start]], \
        "an entity of no ticket of the day is read as of the day's start; one read per set of keys"
