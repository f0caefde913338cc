"""Feature tables for Feast, computed in DuckDB and written as one Parquet file per day.

Point in time: `customer_daily` for day D holds each customer's state from everything known by the
end of D and is stamped D 23:59:59.999999 UTC, so a ticket opened during D joins the snapshot of D-1
and never sees its own day's future. `ticket_features` rows are stamped with the ticket's creation
time. Files are written to a temporary name and renamed, so Feast never reads half a file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from factory_pipelines.lib.sql import lit


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
        (order_id IS NOT NULL OR regexp_matches({text}, 'O-[0-9]{{7}}')) AS has_order_ref,
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
