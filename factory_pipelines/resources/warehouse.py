"""The DuckDB warehouse: short-lived connections, retried while another process holds the file lock.

DuckDB lets one process write a database file at a time. Dagster may run steps or runs side by side,
so each unit of work opens a connection, does its work in a transaction and closes it; a step that
finds the file locked waits and retries instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


@retry(
    retry=retry_if_exception(_is_lock_conflict),
    wait=wait_random_exponential(multiplier=0.05, max=2),
    stop=stop_after_delay(300),
    reraise=True,
)
def _open(database: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    if "://" not in database and not database.startswith("md:") and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(database, read_only=read_only, config={"threads": 2})
    con.execute("SET TimeZone = 'UTC'")  # the factory's clock is UTC, whatever the machine's zone
    return con


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse (a file in the embedded profile, MotherDuck or another file in production)."""

    database: str = Field(description="DuckDB database path or URI.")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = _open(self.database, read_only)
        try:
            yield con
        finally:
            con.close()

    def query_df(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run a read query and return a pandas DataFrame."""
        with self.connect() as con:
            return con.execute(sql, params or []).df()
