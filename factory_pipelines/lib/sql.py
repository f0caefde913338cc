"""Quoting for the SQL the factory builds from declarations (identifiers and literals)."""

from typing import Any


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def lit(value: Any) -> str:
    """An SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def table_exists(con: Any, schema: str, table: str) -> bool:
    """Whether `schema.table` exists in the connected database."""
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0
