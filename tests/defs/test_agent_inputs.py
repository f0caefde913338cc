"""What an agent run reads of a day's tickets: a ticket's creation time keeps its sub-seconds, since the
features of the ticket are read as of that time (a truncated time would miss the ticket's own row)."""

from __future__ import annotations

from datetime import datetime

import duckdb

from factory_pipelines.defs.agents.assets import TICKETS_SQL


def test_ticket_times_keep_their_sub_seconds_and_whole_seconds_read_as_before() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.tickets AS SELECT * FROM (VALUES
        ('T-1', 'C-1', TIMESTAMP '2026-11-02 10:00:00', 'email', 's', 'b', NULL, NULL, DATE '2026-11-02'),
        ('T-2', 'C-2', TIMESTAMP '2026-11-02 10:00:00.25', 'chat', 's', 'b', 'O-1000001', NULL, DATE '2026-11-02'))
        t(ticket_id, customer_id, created_at, channel, subject, body, order_id, in_reply_to, _partition)""")
    rows = con.execute(TICKETS_SQL, {"day": "2026-11-02"}).df().to_dict("records")
    assert [(r["ticket_id"], r["created_at"], r["order_id"]) for r in rows] == [
        ("T-1", "2026-11-02 10:00:00", ""), ("T-2", "2026-11-02 10:00:00.250000", "O-1000001")]
    assert datetime.fromisoformat(rows[1]["created_at"]) == datetime(2026, 11, 2, 10, 0, 0, 250000)
