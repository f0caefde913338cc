"""Quoting for the SQL the factory builds from declarations (identifiers and literals)."""

from typing import Any


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def lit(value: Any) -> str:
    """An SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"
