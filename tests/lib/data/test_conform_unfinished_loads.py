"""Rows of a load that died before it finished (`_loaded_at` NULL) are not conformed, and neither do they make
the same ticket (or article revision) delivered on a later day look like a re-delivery: until their own day
is re-run, nothing says they were loaded at all."""

from __future__ import annotations

from datetime import date

import duckdb

from factory_pipelines.lib.data.conform import conform_partition

DAY1, DAY2 = date(2026, 11, 3), date(2026, 11, 4)


def test_a_ticket_of_an_unfinished_earlier_load_is_not_a_redelivery() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.tickets AS SELECT * FROM (VALUES
        ('ZD-1', 'C-1', TIMESTAMP '2026-11-03 23:50', 'web', 'Hi', 'Body', NULL, NULL, DATE '2026-11-03',
         NULL::TIMESTAMPTZ),
        ('ZD-1', 'C-1', TIMESTAMP '2026-11-03 23:50', 'web', 'Hi', 'Body', NULL, NULL, DATE '2026-11-04',
         TIMESTAMPTZ '2026-11-05 02:00:00+00'),
        ('ZD-2', 'C-2', TIMESTAMP '2026-11-03 10:00', 'chat', 'Yo', 'Text', NULL, NULL, DATE '2026-11-03',
         TIMESTAMPTZ '2026-11-04 02:00:00+00'),
        ('ZD-2', 'C-2', TIMESTAMP '2026-11-03 10:00', 'chat', 'Yo', 'Text', NULL, NULL, DATE '2026-11-04',
         TIMESTAMPTZ '2026-11-05 02:00:00+00'))
        t(ticket_id, customer_id, created_at, channel, subject, body, order_id, in_reply_to, _partition, _loaded_at)""")

    assert conform_partition(con, "tickets", DAY2, {}) == {"rows_in": 2, "rows_out": 1, "redelivered_skipped": 1}
    assert conform_partition(con, "tickets", DAY1, {}) == {"rows_in": 1, "rows_out": 1, "redelivered_skipped": 0}
    assert con.execute("SELECT ticket_id, _partition::VARCHAR FROM staging.tickets ORDER BY 1").fetchall() == [
        ("ZD-1", "2026-11-04"), ("ZD-2", "2026-11-03")], "ZD-2 was loaded on the 3rd; ZD-1 only on the 4th"


def test_an_article_revision_of_an_unfinished_earlier_load_is_not_a_redelivery() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("""CREATE TABLE raw.kb_articles AS SELECT * FROM (VALUES
        ('KB-100', 'Refunds', 'How to', 'refund', ['a'], TIMESTAMP '2026-11-03 08:00', DATE '2026-11-03',
         NULL::TIMESTAMPTZ),
        ('KB-100', 'Refunds', 'How to', 'refund', ['a'], TIMESTAMP '2026-11-03 08:00', DATE '2026-11-04',
         TIMESTAMPTZ '2026-11-05 02:00:00+00'))
        t(article_id, title, body, category, tags, updated_at, _partition, _loaded_at)""")

    assert conform_partition(con, "kb_articles", DAY2, {})["rows_out"] == 1
