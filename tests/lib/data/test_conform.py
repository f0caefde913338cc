"""Conformed tables: a ticket belongs to the day it was first delivered, whatever the build order."""

from __future__ import annotations

from datetime import date

import duckdb

from factory_pipelines.lib.data.conform import conform_partition

DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)


def test_redelivered_ticket_stays_with_its_first_day_in_any_build_order() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.tickets AS SELECT * FROM (VALUES
        ('T-1', 'C-1', TIMESTAMP '2026-11-01 09:00', 'Email ', 'Hi', ' Body ', NULL, NULL, DATE '2026-11-01'),
        ('T-1', 'C-1', TIMESTAMP '2026-11-01 09:00', 'email', 'Hi', 'Body', NULL, NULL, DATE '2026-11-02'),
        ('T-2', 'C-2', TIMESTAMP '2026-11-02 10:00', 'chat', 'Yo', 'Text', 'O-1', 'T-1', DATE '2026-11-02'))
        t(ticket_id, customer_id, created_at, channel, subject, body, order_id, in_reply_to, _partition)""")
    second = conform_partition(con, "tickets", DAY2, {})  # the later day first, as in a backfill
    first = conform_partition(con, "tickets", DAY1, {})
    assert second == {"rows_in": 2, "rows_out": 1, "redelivered_skipped": 1}
    assert first == {"rows_in": 1, "rows_out": 1, "redelivered_skipped": 0}
    rows = con.execute("SELECT ticket_id, channel, body, is_follow_up, body_chars, _partition::VARCHAR "
                       "FROM staging.tickets ORDER BY 1").fetchall()
    assert rows == [("T-1", "email", "Body", False, 4, "2026-11-01"), ("T-2", "chat", "Text", True, 4, "2026-11-02")]


def test_orders_get_usd_amounts_from_the_configured_rates() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.orders AS SELECT * FROM (VALUES
        ('O-1', 'C-1', 'Lamp', 100.0, 'EUR', 'refunded', 50.0, TIMESTAMP '2026-11-01 09:00', TIMESTAMP '2026-11-01 10:00',
         DATE '2026-11-01')) t(order_id, customer_id, product, amount, currency, status, refund_amount, ordered_at,
         updated_at, _partition)""")
    conform_partition(con, "orders", DAY1, {"EUR": 1.08})
    assert con.execute("SELECT amount_usd, refund_amount_usd FROM staging.orders").fetchone() == (108.0, 54.0)


def test_rows_of_a_load_that_did_not_finish_are_not_conformed() -> None:
    """A load marks its rows loaded (`_loaded_at`) in its last step; rows left without it by a load that died
    before are not taken into staging."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.tickets AS SELECT * FROM (VALUES
        ('T-1', 'C-1', TIMESTAMP '2026-11-01 09:00', 'email', 'Hi', 'Body', NULL, NULL, DATE '2026-11-01',
         TIMESTAMPTZ '2026-11-01 10:00:00+00'),
        ('T-2', 'C-2', TIMESTAMP '2026-11-01 10:00', 'chat', 'Yo', 'Text', NULL, NULL, DATE '2026-11-01', NULL))
        t(ticket_id, customer_id, created_at, channel, subject, body, order_id, in_reply_to, _partition, _loaded_at)""")
    assert conform_partition(con, "tickets", DAY1, {}) == {"rows_in": 1, "rows_out": 1, "redelivered_skipped": 0}
    assert con.execute("SELECT ticket_id FROM staging.tickets").fetchall() == [("T-1",)]


def test_a_column_the_declaration_leaves_out_is_null_in_staging() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.tickets AS SELECT * FROM (VALUES
        ('T-1', TIMESTAMP '2026-11-01 09:00', 'email', 'Body', DATE '2026-11-01'))
        t(ticket_id, created_at, channel, body, _partition)""")
    conform_partition(con, "tickets", DAY1, {})
    assert con.execute("SELECT customer_id, subject, body, body_chars FROM staging.tickets").fetchall() == [
        (None, None, "Body", 4)]
