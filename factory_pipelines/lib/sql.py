"""SQL helpers every layer shares: quoting for the SQL built from declarations, and the one transaction helper."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

WRITE_LOCK = threading.RLock()
"""Held by `transaction` and by the audit log's appender: a thread reading the chain's head while another's
transaction is open would fork the chain. DuckDB lets one process write a file, so a process lock suffices."""


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def lit(value: Any) -> str:
    """An SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def table_exists(con: Any, schema: str, table: str) -> bool:
    """Whether `schema.table` exists in the connected database."""
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchall()  # fetched to the end: a pending result blocks the next con.sql
    return rows[0][0] > 0


@contextmanager
def transaction(con: Any) -> Iterator[Any]:
    """BEGIN .. COMMIT on `con` (ROLLBACK on any error, KeyboardInterrupt included), holding `WRITE_LOCK`."""
    with WRITE_LOCK:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
