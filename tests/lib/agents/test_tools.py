"""One order-reference pattern: the agents' Python (`order_refs`) and the feature SQL (DuckDB's RE2) find the
same references, in any case."""

from __future__ import annotations

import duckdb
import pytest

from factory_pipelines.lib.agents.tools import order_refs
from factory_pipelines.lib.data.features import ORDER_REF
from factory_pipelines.lib.sql import lit

TEXTS = {
    "Order O-1234567 arrived broken.": ["O-1234567"],
    "see o-1234 and O-1234, then O-7654321": ["O-1234", "O-7654321"],
    "NO-12345 is a part number, O-123 too short, xO-12345 glued": [],
    "(O-2000001),O-2000002.": ["O-2000001", "O-2000002"],
}


@pytest.mark.parametrize("text", TEXTS)
def test_python_and_sql_find_the_same_order_references(text: str) -> None:
    assert order_refs(text) == TEXTS[text]
    found = duckdb.connect().execute(
        f"SELECT regexp_matches(?, {lit(ORDER_REF)}), list_distinct(list_transform(regexp_extract_all(?, ?), "
        "lambda x: upper(x)))", [text, text, ORDER_REF]).fetchone()
    assert found[0] == bool(TEXTS[text])
    assert sorted(found[1]) == sorted(TEXTS[text])
