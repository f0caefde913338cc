"""Feature tables for Feast, computed in DuckDB and written as one Parquet file per day.

Point in time: `customer_daily` for day D holds each customer's state from everything known by the
end of D and is stamped D 23:59:59.999999 UTC, so a ticket opened during D joins the snapshot of D-1
and never sees its own day's future. `ticket_features` rows are stamped with the ticket's creation
time. Files are written to a temporary name and renamed, so Feast never reads half a file.

Reading them as of a moment: an agent deciding a ticket must see each feature as it was when the ticket
came in, also when a backfill runs long after the online store moved on. `ViewTimes` says what a
point-in-time read of one feature view returns (its source, keys and TTL), `online_is_as_of` whether an
online row is that same row, `event_times_sql` the event times a historical read used, and
`AsOfFeatures` serves one run's per-entity reads from one bulk read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from factory_pipelines.lib.sql import lit, q

ORDER_REF = r"\b[Oo]-[0-9]{4,}\b"  # an order reference in free text (O-1000042, any case): Python and SQL
EVENT_TIME_SUFFIX = "__ts"  # Feast's suffix for a feature's event time (epoch seconds) in online responses


def day_window(partition: date) -> tuple[datetime, datetime]:
    """[start, end) of a daily partition in UTC."""
    start = datetime.combine(partition, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def customer_daily_sql(partition: date, with_orders: bool = True, with_tickets: bool = True) -> str:
    """One day's customer snapshot; order or ticket counts are zero when that source is not fed."""
    as_of = f"(DATE {lit(partition)} + INTERVAL 1 DAY)::TIMESTAMP"
    d = f"DATE {lit(partition)}"
    order_stats = f"""
        SELECT customer_id,
            count(*) FILTER (WHERE ordered_at >= {as_of} - INTERVAL 30 DAY AND status <> 'cancelled') AS orders_30d,
            sum(amount_usd) FILTER (WHERE ordered_at >= {as_of} - INTERVAL 30 DAY AND status <> 'cancelled') AS spend_30d,
            sum(amount_usd) FILTER (WHERE ordered_at >= {as_of} - INTERVAL 90 DAY AND status <> 'cancelled') AS spend_90d,
            count(*) FILTER (WHERE status = 'refunded' AND updated_at >= {as_of} - INTERVAL 90 DAY) AS refunds_90d,
            sum(coalesce(refund_amount_usd, amount_usd))
                FILTER (WHERE status = 'refunded' AND updated_at >= {as_of} - INTERVAL 90 DAY) AS refund_amount_90d
        FROM (
            SELECT * FROM staging.orders WHERE _partition <= {d} AND updated_at < {as_of}
            QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC, _partition DESC) = 1
        ) GROUP BY customer_id""" if with_orders else (
        "SELECT NULL::VARCHAR AS customer_id, 0 AS orders_30d, 0.0 AS spend_30d, 0.0 AS spend_90d, "
        "0 AS refunds_90d, 0.0 AS refund_amount_90d WHERE false"
    )
    ticket_stats = f"""
        SELECT customer_id,
            count(*) FILTER (WHERE created_at >= {as_of} - INTERVAL 7 DAY) AS tickets_7d,
            count(*) FILTER (WHERE created_at >= {as_of} - INTERVAL 30 DAY) AS tickets_30d
        FROM staging.tickets WHERE _partition <= {d} AND created_at < {as_of} GROUP BY customer_id""" if with_tickets else (
        "SELECT NULL::VARCHAR AS customer_id, 0 AS tickets_7d, 0 AS tickets_30d WHERE false"
    )
    return f"""
    WITH customers AS (
        SELECT * FROM staging.customers WHERE _partition <= {d}
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, _partition DESC) = 1
    ), order_stats AS ({order_stats}
    ), ticket_stats AS ({ticket_stats}
    )
    SELECT c.customer_id, c.plan, c.region,
        date_diff('day', c.signup_date, {d})::BIGINT AS tenure_days,
        c.lifetime_spend,
        coalesce(o.orders_30d, 0)::BIGINT AS orders_30d,
        round(coalesce(o.spend_30d, 0), 2)::DOUBLE AS spend_30d,
        round(coalesce(o.spend_90d, 0), 2)::DOUBLE AS spend_90d,
        coalesce(o.refunds_90d, 0)::BIGINT AS refunds_90d,
        round(coalesce(o.refund_amount_90d, 0), 2)::DOUBLE AS refund_amount_90d,
        coalesce(t.tickets_7d, 0)::BIGINT AS tickets_7d,
        coalesce(t.tickets_30d, 0)::BIGINT AS tickets_30d,
        timezone('UTC', {as_of} - INTERVAL 1 MICROSECOND) AS event_timestamp
    FROM customers c LEFT JOIN order_stats o USING (customer_id) LEFT JOIN ticket_stats t USING (customer_id)
    ORDER BY c.customer_id
    """


def ticket_features_sql(partition: date, positive: list[str], negative: list[str]) -> str:
    text = "(subject || ' ' || body)"
    words = f"string_split_regex(lower({text}), '[^a-z]+')"
    pos = "[" + ", ".join(lit(w) for w in positive) + "]"
    neg = "[" + ", ".join(lit(w) for w in negative) + "]"
    return f"""
    WITH scored AS (
        SELECT *, len(list_filter({words}, lambda w: list_contains({pos}, w))) AS pos_words,
            len(list_filter({words}, lambda w: list_contains({neg}, w))) AS neg_words,
            length(regexp_replace({text}, '[^A-Za-z]', '', 'g')) AS letters
        FROM staging.tickets WHERE _partition = DATE {lit(partition)}
    )
    SELECT ticket_id, customer_id, channel,
        body_chars::BIGINT AS body_chars,
        length(subject)::BIGINT AS subject_chars,
        hour(created_at)::BIGINT AS hour_of_day,
        isodow(created_at)::BIGINT AS day_of_week,
        (length({text}) - length(replace({text}, '!', '')))::BIGINT AS exclamations,
        round(length(regexp_replace({text}, '[^A-Z]', '', 'g')) / greatest(letters, 1), 4)::DOUBLE AS uppercase_ratio,
        round((pos_words - neg_words) / greatest(pos_words + neg_words, 1), 4)::DOUBLE AS sentiment,
        regexp_matches(lower({text}), 'refund|money back|reimburs|chargeback') AS mentions_refund,
        regexp_matches({text}, '[$€£] ?[0-9]|[0-9]+([.,][0-9]{{2}})? ?(usd|eur|gbp|dollars|euros)') AS mentions_amount,
        (order_id IS NOT NULL OR regexp_matches({text}, {lit(ORDER_REF)})) AS has_order_ref,
        is_follow_up,
        timezone('UTC', created_at) AS event_timestamp
    FROM scored ORDER BY ticket_id
    """


def write_feature_partition(con: Any, sql: str, directory: Path, partition: date) -> dict[str, Any]:
    """Write one day of a feature table to <directory>/<day>.parquet atomically; returns its stats."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{partition.isoformat()}.parquet"
    temporary = target.with_suffix(".parquet.tmp")
    con.execute(f"COPY ({sql}) TO {lit(temporary)} (FORMAT parquet)")
    temporary.replace(target)
    rows = con.execute(f"SELECT count(*) FROM read_parquet({lit(target)})").fetchone()[0]
    return {"path": str(target), "rows": rows}


@dataclass(frozen=True)
class ViewTimes:
    """What decides the event time a point-in-time read of one feature view returns for an entity row: the
    latest source row of that entity stamped at or before the row's time and not older than the TTL."""

    name: str
    features: tuple[str, ...]
    keys: tuple[tuple[str, str], ...]  # (source column, entity-row column) per join key
    source_path: str  # Parquet file or glob
    timestamp_field: str
    ttl_seconds: int  # 0: no TTL


def online_is_as_of(row: Mapping[str, Any], at: int, views: tuple[ViewTimes, ...]) -> bool:
    """Whether an online row (features and their `__ts` epoch seconds) can stand for a point-in-time read at `at`
    (epoch seconds): no view's values are newer than `at` or past the view's TTL. A view with no online row for
    the entity (event time 0: a customer the CRM does not know) has no value newer than `at` either."""
    for view in views:
        ts = row.get(view.features[0] + EVENT_TIME_SUFFIX) or 0
        if ts > at or (ts and view.ttl_seconds and ts < at - view.ttl_seconds):
            return False
    return True


def event_times_sql(view: ViewTimes, entities: str = "entities", row_id: str = "__row",
                    at: str = "event_timestamp") -> str:
    """Per entity row of the relation `entities`, the event time (epoch seconds) of the source row a point-in-time
    read of `view` joins: Feast's rule (`timestamp <= at`, `timestamp + ttl >= at`), latest first."""
    ts = f"f.{q(view.timestamp_field)}"
    on = [f"f.{q(source)} = e.{q(column)}" for source, column in view.keys] + [f"{ts} <= e.{q(at)}"]
    if view.ttl_seconds:
        on.append(f"{ts} + INTERVAL {int(view.ttl_seconds)} SECOND >= e.{q(at)}")
    return (f"SELECT e.{q(row_id)} AS row_id, CAST(floor(epoch(max({ts}))) AS BIGINT) AS ts "
            f"FROM {q(entities)} e JOIN read_parquet({lit(view.source_path)}) f ON {' AND '.join(on)} "
            f"GROUP BY e.{q(row_id)}")


Reader = Callable[[list[dict[str, Any]], list[datetime]], list[dict[str, Any]]]


class AsOfFeatures:
    """The features one agent run reads, each entity as of its ticket's creation time, read in bulk.

    `read(entity_rows, times)` returns one row per entity (features and `<feature>__ts`). Entities are keyed by
    their join-key values; the time of an entity is its ticket's (`times[ticket_id]`), else `default` (the start of
    the run's day: nothing of the day is known yet). Rows already read are served from memory, so reading a day
    once (`many`) makes every later per-ticket read (`one`) free.
    """

    def __init__(self, read: Reader, times: Mapping[str, datetime], default: datetime) -> None:
        self._read, self._times, self._default = read, times, default
        self._rows: dict[tuple, dict[str, Any]] = {}

    def time_of(self, entity: Mapping[str, Any]) -> datetime:
        return self._times.get(entity.get("ticket_id"), self._default)  # type: ignore[arg-type]

    def many(self, entities: list[dict[str, Any]], timestamps: bool = False) -> list[dict[str, Any]]:
        """One row per entity, in order (event times only with `timestamps`); unread ones in one read per key set."""
        keys = [tuple(sorted(e.items())) for e in entities]
        todo: dict[tuple, dict[str, Any]] = {k: e for k, e in zip(keys, entities, strict=True) if k not in self._rows}
        groups: dict[tuple, list[tuple]] = {}
        for key in todo:
            groups.setdefault(tuple(name for name, _ in key), []).append(key)
        for group in groups.values():  # Feast reads only entity rows that all have the same keys
            rows = self._read([todo[k] for k in group], [self.time_of(todo[k]) for k in group])
            self._rows.update(zip(group, rows, strict=True))
        if timestamps:
            return [dict(self._rows[k]) for k in keys]
        return [{n: v for n, v in self._rows[k].items() if not n.endswith(EVENT_TIME_SUFFIX)} for k in keys]

    def one(self, entity: dict[str, Any]) -> dict[str, Any]:
        """One entity's features with their event times (what the customer_features tool reads)."""
        return self.many([entity], timestamps=True)[0]
