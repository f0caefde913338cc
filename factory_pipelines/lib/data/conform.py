"""Conformed (staging) tables: typed, trimmed, de-duplicated across days, amounts in USD.

One partition of `staging.<source>` is rebuilt from the same partition of `raw.<source>` in one
transaction, so re-running replaces it; raw rows of a load that did not finish (`_loaded_at` NULL) are
not taken, nor do they make a later day's ticket look like a re-delivery. A declared column the raw table
lacks (the user's declaration leaves it out) is NULL in staging, and `STAGING_ORIGIN` says which raw column
each staging column comes from, so the staging contracts follow the source declaration too. A ticket (or
article revision) belongs to the day it was first delivered: a re-delivery on a later day is not loaded
again (the count is returned), whatever order the days are built in. Order amounts get a USD value from
configured rates.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from factory_pipelines.lib.sql import lit, q, transaction

STAGING_DDL = {
    "tickets": """ticket_id VARCHAR, customer_id VARCHAR, created_at TIMESTAMP, channel VARCHAR, subject VARCHAR,
        body VARCHAR, order_id VARCHAR, in_reply_to VARCHAR, is_follow_up BOOLEAN, body_chars INTEGER,
        _partition DATE""",
    "customers": """customer_id VARCHAR, name VARCHAR, email VARCHAR, plan VARCHAR, region VARCHAR,
        signup_date DATE, lifetime_spend DOUBLE, updated_at TIMESTAMP, _partition DATE""",
    "orders": """order_id VARCHAR, customer_id VARCHAR, product VARCHAR, amount DOUBLE, currency VARCHAR,
        amount_usd DOUBLE, status VARCHAR, refund_amount DOUBLE, refund_amount_usd DOUBLE, ordered_at TIMESTAMP,
        updated_at TIMESTAMP, _partition DATE""",
    "kb_articles": """article_id VARCHAR, title VARCHAR, body VARCHAR, category VARCHAR, tags VARCHAR[],
        updated_at TIMESTAMP, _partition DATE""",
}


# Staging column -> the raw (declared) column it is computed from; a column not named here comes from the raw
# column of the same name, and None marks a column computed in staging whatever the declaration says.
STAGING_ORIGIN: dict[str, dict[str, str | None]] = {
    "tickets": {"is_follow_up": None, "body_chars": "body"},
    "customers": {},
    "orders": {"amount_usd": "amount", "refund_amount_usd": "refund_amount"},
    "kb_articles": {},
}


def _select(source: str, fx_rates: dict[str, float], present: set[str]) -> str:
    """The conforming SELECT; `c(name)` is the raw column, or a typed NULL when the raw table lacks it."""
    def c(name: str, kind: str = "VARCHAR") -> str:
        return q(name) if name in present else f"NULL::{kind}"

    loaded = " AND _loaded_at IS NOT NULL" if "_loaded_at" in present else ""  # rows whose load finished
    earlier_loaded = " AND e._loaded_at IS NOT NULL" if "_loaded_at" in present else ""  # so are earlier days'

    if source == "tickets":
        return f"""SELECT trim(ticket_id), trim({c('customer_id')}), {c('created_at', 'TIMESTAMP')},
            lower(trim({c('channel')})), trim({c('subject')}), trim({c('body')}), nullif(trim({c('order_id')}), ''),
            nullif(trim({c('in_reply_to')}), ''), nullif(trim({c('in_reply_to')}), '') IS NOT NULL,
            length(trim({c('body')})), _partition
            FROM raw.tickets r WHERE _partition = $d{loaded} AND NOT EXISTS (
                SELECT 1 FROM raw.tickets e WHERE trim(e.ticket_id) = trim(r.ticket_id) AND e._partition < $d{earlier_loaded})"""
    if source == "customers":
        return f"""SELECT trim(customer_id), trim({c('name')}), lower(trim({c('email')})), {c('plan')}, {c('region')},
            {c('signup_date', 'DATE')}, {c('lifetime_spend', 'DOUBLE')}, updated_at, _partition FROM raw.customers
            WHERE _partition = $d{loaded}"""
    if source == "orders":
        rate = f"CASE {c('currency')} " + " ".join(f"WHEN {lit(k)} THEN {float(v)}" for k, v in fx_rates.items()) + " END"
        amount, refund = c("amount", "DOUBLE"), c("refund_amount", "DOUBLE")
        return f"""SELECT trim(order_id), trim({c('customer_id')}), trim({c('product')}), {amount}, {c('currency')},
            round({amount} * {rate}, 2), {c('status')}, {refund}, round({refund} * {rate}, 2),
            {c('ordered_at', 'TIMESTAMP')}, updated_at, _partition FROM raw.orders WHERE _partition = $d{loaded}"""
    if source == "kb_articles":
        return f"""SELECT trim(article_id), trim({c('title')}), {c('body')}, {c('category')},
            coalesce({c('tags', 'VARCHAR[]')}, []::VARCHAR[]), updated_at, _partition FROM raw.kb_articles r
            WHERE _partition = $d{loaded} AND NOT EXISTS (
                SELECT 1 FROM raw.kb_articles e WHERE trim(e.article_id) = trim(r.article_id)
                AND e.updated_at = r.updated_at AND e._partition < $d{earlier_loaded})"""
    raise KeyError(f"no conformance rule for source {source!r}")


def conform_partition(con: Any, source: str, partition: date, fx_rates: dict[str, float]) -> dict[str, int]:
    """Rebuild one partition of `staging.<source>`; returns rows in, rows out and re-deliveries skipped."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(f"CREATE TABLE IF NOT EXISTS staging.{source} ({STAGING_DDL[source]})")
    with transaction(con):
        con.execute(f"DELETE FROM staging.{source} WHERE _partition = $d", {"d": partition})
        present = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ?",
            [source]).fetchall()}
        loaded = " AND _loaded_at IS NOT NULL" if "_loaded_at" in present else ""
        rows_in = con.execute(f"SELECT count(*) FROM raw.{source} WHERE _partition = $d{loaded}",
                              {"d": partition}).fetchone()[0]
        select = _select(source, fx_rates, present)
        rows_out = con.execute(f"INSERT INTO staging.{source} {select}", {"d": partition}).fetchone()[0]
    return {"rows_in": rows_in, "rows_out": rows_out, "redelivered_skipped": rows_in - rows_out}
