"""Data contracts: the suite files are valid GX suites that match the declared sources, clean data passes,
and each kind of defect fails the right expectation with counts and row examples a data owner can act on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from factory_pipelines.lib.data import contracts
from factory_pipelines.lib.data.contracts import (
    ContractError,
    ContractResult,
    declared_expectations,
    load_suite,
    validate_frame,
)
from factory_pipelines.lib.data.sources import load_source

PACKAGE = Path(contracts.__file__).resolve().parents[2]
SUITES = PACKAGE / "defs" / "contracts" / "suites"
SOURCES = PACKAGE / "defs" / "ingestion" / "sources"
RAW = ["tickets_v1", "customers_v1", "orders_v1", "kb_articles_v1"]
STAGING = [f"staging_{name}" for name in RAW]
KEYS = {"tickets": "ticket_id", "customers": "customer_id", "orders": "order_id", "kb_articles": "article_id"}
N = 10
DAY = pd.Timestamp("2026-11-01")


def lineage(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Add the lineage columns raw tables carry, so tests prove extra columns are allowed."""
    return df.assign(
        _partition=DAY,
        _source_file=f"{name}/2026-11-01/part-0",
        _source_row=range(1, len(df) + 1),
        _loaded_at=DAY + pd.Timedelta(hours=6),
        _run_id="run-1",
        _extra=None,
    )


def tickets_frame() -> pd.DataFrame:
    return lineage(
        pd.DataFrame(
            {
                "ticket_id": [f"T-20261101-{i:05d}" for i in range(N)],
                "customer_id": [f"C-{i % 7:05d}" for i in range(N)],
                "created_at": [DAY + pd.Timedelta(minutes=17 * i) for i in range(N)],
                "channel": [["email", "chat", "phone", "web"][i % 4] for i in range(N)],
                "subject": [f"Question {i}" for i in range(N)],
                "body": [f"Hello, my order {i} has not arrived." for i in range(N)],
                "order_id": [f"O-{i:07d}" if i % 2 else None for i in range(N)],
                "in_reply_to": [None] * (N - 1) + ["T-20261101-00000"],
            }
        ),
        "tickets",
    )


def customers_frame() -> pd.DataFrame:
    return lineage(
        pd.DataFrame(
            {
                "customer_id": [f"C-{i:05d}" for i in range(N)],
                "name": [f"Customer {i}" for i in range(N)],
                "email": [f"user{i}@example.com" for i in range(N)],
                "plan": [["free", "basic", "pro", "enterprise"][i % 4] for i in range(N)],
                "region": [["na", "eu", "apac", "latam"][i % 4] for i in range(N)],
                "signup_date": [DAY - pd.Timedelta(days=30 * i) for i in range(N)],
                "lifetime_spend": [120.5 * i for i in range(N)],
                "updated_at": [DAY + pd.Timedelta(hours=i) for i in range(N)],
            }
        ),
        "customers",
    )


def orders_frame() -> pd.DataFrame:
    status = [["placed", "shipped", "delivered", "cancelled", "refunded"][i % 5] for i in range(N)]
    amount = [19.99 + 10 * i for i in range(N)]
    return lineage(
        pd.DataFrame(
            {
                "order_id": [f"O-{i:07d}" for i in range(N)],
                "customer_id": [f"C-{i % 4:05d}" for i in range(N)],
                "product": [f"Widget {i % 3}" for i in range(N)],
                "amount": amount,
                "currency": [["USD", "EUR", "GBP"][i % 3] for i in range(N)],
                "status": status,
                "refund_amount": [a / 2 if s == "refunded" else None for a, s in zip(amount, status, strict=True)],
                "ordered_at": [DAY + pd.Timedelta(minutes=5 * i) for i in range(N)],
                "updated_at": [DAY + pd.Timedelta(minutes=5 * i + 60) for i in range(N)],
            }
        ),
        "orders",
    )


def kb_articles_frame() -> pd.DataFrame:
    return lineage(
        pd.DataFrame(
            {
                "article_id": [f"KB-{100 + i}" for i in range(N)],
                "title": [f"How to fix problem {i}" for i in range(N)],
                "body": [f"Step one. Step two. ({i})" for i in range(N)],
                "category": [
                    ["billing", "refund", "shipping", "technical", "account", "product"][i % 6]
                    for i in range(N)
                ],
                "tags": [["faq", f"t{i}"] for i in range(N)],
                "updated_at": [DAY + pd.Timedelta(hours=i) for i in range(N)],
            }
        ),
        "kb_articles",
    )


RAW_FRAMES = {
    "tickets": tickets_frame,
    "customers": customers_frame,
    "orders": orders_frame,
    "kb_articles": kb_articles_frame,
}
LINEAGE = ["_source_file", "_source_row", "_loaded_at", "_run_id", "_extra"]


def staging_frame(name: str) -> pd.DataFrame:
    df = RAW_FRAMES[name]().drop(columns=LINEAGE)
    if name == "tickets":
        df = df.assign(is_follow_up=df["in_reply_to"].notna(), body_chars=df["body"].str.len())
    if name == "orders":
        df = df.assign(amount_usd=df["amount"] * 1.1, refund_amount_usd=df["refund_amount"] * 1.1)
    return df


def frame_for(suite: str) -> tuple[pd.DataFrame, str]:
    base = suite.removeprefix("staging_").removesuffix("_v1")
    df = staging_frame(base) if suite.startswith("staging_") else RAW_FRAMES[base]()
    return df, KEYS[base]


def run(suite: str, df: pd.DataFrame, index: list[str]) -> ContractResult:
    """Validate as the contract check does: raw suites get the rules derived from the declaration."""
    declared = declared_expectations(load_source(SOURCES / f"{suite.removesuffix('_v1')}.yaml")) if suite in RAW else None
    return validate_frame(df, SUITES / f"{suite}.json", index, declared)


def failed_types(result: ContractResult) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in result.failed}


# --- suite files ---------------------------------------------------------------------------------


def test_suite_folder_holds_exactly_the_contracts():
    assert sorted(p.stem for p in SUITES.glob("*.json")) == sorted(RAW + STAGING)


@pytest.mark.parametrize("suite", RAW + STAGING)
def test_suite_loads_and_every_rule_explains_itself(suite):
    spec = load_suite(SUITES / f"{suite}.json")
    assert spec["name"] == suite
    rules = [(e["type"], json.dumps(e["kwargs"], sort_keys=True)) for e in spec["expectations"]]
    assert len(rules) == len(set(rules)), "duplicate expectation"
    for e in spec["expectations"]:
        assert e["meta"]["notes"].strip(), e
    types = {e["type"] for e in spec["expectations"]}
    assert "expect_table_row_count_to_be_between" in types
    if suite.startswith("staging_"):  # raw suites get their key rule from the declaration
        assert types & {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


@pytest.mark.parametrize("suite", RAW)
def test_declared_rules_cover_the_source_yaml(suite):
    """Columns, required, enums, patterns, ranges and the key of the source YAML all become expectations."""
    source = yaml.safe_load((SOURCES / f"{suite.removesuffix('_v1')}.yaml").read_text())
    assert source["contract"] == suite
    rules = {
        (e["type"], e["kwargs"].get("column")): e["kwargs"]
        for e in declared_expectations(load_source(SOURCES / f"{suite.removesuffix('_v1')}.yaml"))
    }
    declared = [c["name"] for c in source["columns"]]
    column_set = rules[("expect_table_columns_to_match_set", None)]
    assert sorted(column_set["column_set"]) == sorted(declared) and column_set["exact_match"] is False
    key = source["primary_key"]
    if len(key) == 1:
        assert ("expect_column_values_to_be_unique", key[0]) in rules
    else:
        assert rules[("expect_compound_columns_to_be_unique", None)]["column_list"] == key
    for col in source["columns"]:
        name = col["name"]
        assert (("expect_column_values_to_not_be_null", name) in rules) == col["required"], name
        if "enum" in col:
            assert rules[("expect_column_values_to_be_in_set", name)]["value_set"] == col["enum"]
        if "pattern" in col:
            assert rules[("expect_column_values_to_match_regex", name)]["regex"] == col["pattern"]
        if "min" in col:
            bounds = rules[("expect_column_values_to_be_between", name)]
            assert (bounds["min_value"], bounds["max_value"]) == (col["min"], col["max"])
        if "max_length" in col:
            assert rules[("expect_column_value_lengths_to_be_between", name)]["max_value"] == col["max_length"]


@pytest.mark.parametrize("suite", RAW)
def test_suite_files_do_not_repeat_declared_rules(suite):
    """One place to edit a row rule: the declaration, never the suite file too."""
    spec = load_source(SOURCES / f"{suite.removesuffix('_v1')}.yaml")
    derived = {(e["type"], json.dumps(e["kwargs"], sort_keys=True)) for e in declared_expectations(spec)}
    in_file = {(e["type"], json.dumps(e["kwargs"], sort_keys=True)) for e in load_suite(SUITES / f"{suite}.json")["expectations"]}
    assert not derived & in_file


# --- clean data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", RAW + STAGING)
def test_clean_frame_passes(suite):
    df, key = frame_for(suite)
    result = run(suite, df, [key])
    assert result.success, result.summary()
    assert result.failed == [] and result.rows == N
    in_file = len(load_suite(SUITES / f"{suite}.json")["expectations"])
    if suite in RAW:
        spec = load_source(SOURCES / f"{suite.removesuffix('_v1')}.yaml")
        assert result.evaluated == in_file + len(declared_expectations(spec))
    else:
        assert result.evaluated == in_file
    assert "passed" in result.summary()


# --- defects -------------------------------------------------------------------------------------


def test_bad_enum_fails_in_set_with_examples_and_summary():
    df = tickets_frame()
    df.loc[[2, 5], "channel"] = "fax"
    result = run("tickets_v1", df, ["ticket_id", "_source_row"])
    assert not result.success
    assert failed_types(result) == {("expect_column_values_to_be_in_set", "channel")}
    (failure,) = result.failed
    assert failure.unexpected_count == 2 and failure.unexpected_percent == pytest.approx(20.0)
    assert failure.examples == [
        {"ticket_id": "T-20261101-00002", "_source_row": 3, "channel": "fax"},
        {"ticket_id": "T-20261101-00005", "_source_row": 6, "channel": "fax"},
    ]
    assert list(failure.examples[0]) == ["ticket_id", "_source_row", "channel"], "index columns first"
    assert failure.kwargs["value_set"] == ["email", "chat", "phone", "web"]
    assert failure.notes and "channel" in failure.notes.lower()
    summary = result.summary()
    assert summary.count("\n") == 0
    assert "expect_column_values_to_be_in_set(channel): 2 unexpected (20.0%)" in summary
    assert "ticket_id=T-20261101-00002" in summary and "value='fax'" in summary and "value_set=" in summary


def test_null_in_required_column_fails_not_null():
    df = customers_frame()
    df.loc[3, "email"] = None
    result = run("customers_v1", df, ["customer_id"])
    assert failed_types(result) == {("expect_column_values_to_not_be_null", "email")}
    assert result.failed[0].unexpected_count == 1
    assert result.failed[0].examples == [{"customer_id": "C-00003", "email": None}]


def test_duplicate_key_fails_unique_naming_both_rows():
    df = tickets_frame()
    df.loc[7, "ticket_id"] = df.loc[4, "ticket_id"]
    result = run("tickets_v1", df, ["ticket_id", "_source_row"])
    assert failed_types(result) == {("expect_column_values_to_be_unique", "ticket_id")}
    failure = result.failed[0]
    assert failure.unexpected_count == 2
    assert [e["_source_row"] for e in failure.examples] == [5, 8]
    assert "expect_column_values_to_be_unique(ticket_id)" in result.summary()


def test_same_order_change_twice_fails_compound_key():
    df = orders_frame()
    df.loc[7, ["order_id", "updated_at"]] = df.loc[4, ["order_id", "updated_at"]].values
    result = run("orders_v1", df, ["order_id", "_source_row"])
    assert failed_types(result) == {("expect_compound_columns_to_be_unique", "order_id,updated_at")}
    assert result.failed[0].unexpected_count == 2


def test_out_of_range_amount_fails_between_and_is_json_serialisable():
    df = orders_frame()
    df.loc[6, "amount"] = 10_000.5
    result = run("orders_v1", df, ["order_id"])
    assert failed_types(result) == {("expect_column_values_to_be_between", "amount")}
    failure = result.failed[0]
    assert failure.unexpected_count == 1 and failure.examples == [
        {"order_id": "O-0000006", "amount": 10_000.5}
    ]
    assert (failure.kwargs["min_value"], failure.kwargs["max_value"]) == (0.01, 10_000)
    assert ContractResult.model_validate_json(result.model_dump_json()) == result


def test_statistical_rule_reports_observed_value():
    df = orders_frame().assign(amount=5000.0, refund_amount=None)
    result = run("orders_v1", df, ["order_id"])
    assert failed_types(result) == {("expect_column_mean_to_be_between", "amount")}
    assert result.failed[0].observed == pytest.approx(5000.0) and result.failed[0].unexpected_count is None
    assert "observed 5000.0" in result.summary()


def test_pair_rule_with_timestamps_gives_plain_examples():
    df = orders_frame()
    df.loc[1, "updated_at"] = df.loc[1, "ordered_at"] - pd.Timedelta(hours=1)
    result = run("orders_v1", df, ["order_id"])
    assert failed_types(result) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "updated_at,ordered_at")
    }
    assert result.failed[0].examples == [
        {"order_id": "O-0000001", "updated_at": "2026-10-31T23:05:00", "ordered_at": "2026-11-01T00:05:00"}
    ]
    json.dumps(result.model_dump())


def test_empty_frame_fails_row_count():
    df = tickets_frame().iloc[:0]
    result = run("tickets_v1", df, ["ticket_id"])
    assert not result.success and result.rows == 0
    row_count = [f for f in result.failed if f.expectation == "expect_table_row_count_to_be_between"]
    assert len(row_count) == 1 and row_count[0].observed == 0


def test_missing_column_fails_every_rule_on_it_with_the_error():
    df = kb_articles_frame().drop(columns=["category"])
    result = run("kb_articles_v1", df, ["article_id"])
    assert failed_types(result) == {
        ("expect_table_columns_to_match_set", None),
        ("expect_column_values_to_not_be_null", "category"),
        ("expect_column_values_to_be_in_set", "category"),
    }
    errors = [f for f in result.failed if f.column == "category"]
    assert all(
        isinstance(f.observed, str) and "category" in f.observed and "exist" in f.observed for f in errors
    )


def test_failures_come_back_in_suite_order():
    df = customers_frame()
    df.loc[0, "region"] = "mars"
    df.loc[1, "plan"] = "gold"
    df.loc[2, "customer_id"] = "X-1"
    df.loc[3, "lifetime_spend"] = -1.0
    result = run("customers_v1", df, ["customer_id"])
    spec = load_source(SOURCES / "customers.yaml")
    order = [
        (e["type"], e["kwargs"].get("column"))
        for e in load_suite(SUITES / "customers_v1.json")["expectations"] + declared_expectations(spec)
    ]
    got = [(f.expectation, f.column) for f in result.failed]
    assert len(got) == 4 and got == sorted(got, key=order.index)


def test_index_columns_absent_from_frame_fall_back_to_row_positions():
    df = tickets_frame()
    df.loc[4, "customer_id"] = "bad"
    result = run("tickets_v1", df, ["no_such_column"])
    assert result.failed[0].examples == [{"_row": 4, "customer_id": "bad"}]
    orders = orders_frame()
    orders.loc[2, "refund_amount"] = 1000.0
    (failure,) = run("orders_v1", orders, []).failed
    assert failure.column == "amount,refund_amount"
    assert failure.examples == [{"_row": 2, "amount": orders.loc[2, "amount"], "refund_amount": 1000.0}]


def test_nullable_duckdb_dtypes_are_checked():
    """Frames read from DuckDB carry pandas nullable dtypes (boolean, Int32) with <NA>."""
    con = duckdb.connect()
    df = staging_frame("tickets")
    con.register("frame", df)
    read = con.execute(
        "SELECT * REPLACE (CASE WHEN ticket_id LIKE '%3' THEN NULL ELSE is_follow_up END AS is_follow_up, "
        "CAST(CASE WHEN ticket_id LIKE '%4' THEN 0 ELSE body_chars END AS INTEGER) AS body_chars) FROM frame"
    ).df()
    assert str(read["is_follow_up"].dtype) == "boolean"
    result = run("staging_tickets_v1", read, ["ticket_id"])
    assert failed_types(result) == {
        ("expect_column_values_to_not_be_null", "is_follow_up"),
        ("expect_column_values_to_be_between", "body_chars"),
    }
    by_rule = {f.expectation: f for f in result.failed}
    assert by_rule["expect_column_values_to_not_be_null"].examples == [
        {"ticket_id": "T-20261101-00003", "is_follow_up": None}
    ]
    assert by_rule["expect_column_values_to_be_between"].examples == [
        {"ticket_id": "T-20261101-00004", "body_chars": 0}
    ]


# --- malformed suites ----------------------------------------------------------------------------

GOOD = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps([GOOD]), "JSON object"),
        (json.dumps({"expectations": [GOOD]}), "name"),
        (json.dumps({"name": "x", "expectations": []}), "expectations"),
        (json.dumps({"name": "x", "expectations": [GOOD], "rules": 1}), "unknown suite keys"),
        (json.dumps({"name": "x", "expectations": [{"kwargs": {}}]}), "type"),
        (
            json.dumps(
                {"name": "x", "expectations": [{"type": "expect_column_values_to_be_purple", "kwargs": {}}]}
            ),
            "unknown type 'expect_column_values_to_be_purple'",
        ),
        (json.dumps({"name": "x", "expectations": [{"type": GOOD["type"]}]}), "kwargs"),
        (
            json.dumps(
                {
                    "name": "x",
                    "expectations": [
                        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a"}}
                    ],
                }
            ),
            "value_set",
        ),
        (
            json.dumps({"name": "x", "expectations": [{**GOOD, "kwargs": {"column": "a", "bogus": 1}}]}),
            "bogus",
        ),
    ],
)
def test_malformed_suite_raises_contract_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken_v1.json"
    path.write_text(content)
    with pytest.raises(ContractError) as info:
        load_suite(path)
    assert "broken_v1.json" in str(info.value) and message in str(info.value)
    with pytest.raises(ContractError):
        validate_frame(pd.DataFrame({"a": [1]}), path, [])


def test_missing_suite_file_raises_contract_error(tmp_path):
    with pytest.raises(ContractError, match="nope_v1.json"):
        load_suite(tmp_path / "nope_v1.json")


def test_module_imports_without_great_expectations():
    code = "import sys, factory_pipelines.lib.data.contracts; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
