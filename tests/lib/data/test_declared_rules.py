"""The contracts follow the source declaration: the shipped suites, run on a table shaped by a user's
declaration (a column made optional, left out or filled from a default; quiet days allowed), drop or relax
exactly the expectations the declaration no longer promises, and say so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from factory_pipelines.lib.data.conform import STAGING_ORIGIN
from factory_pipelines.lib.data.contracts import (
    Declaration,
    declared_expectations,
    load_suite,
    validate_frame,
)
from factory_pipelines.lib.data.declared_rules import follow_declaration
from factory_pipelines.lib.data.sources import SourceSpec, load_source
from tests.lib.data.test_contracts import SOURCES, SUITES, customers_frame, staging_frame, tickets_frame


def declaration(tmp_path: Path, source: str, edit: Callable[[dict], Any]) -> SourceSpec:
    data = yaml.safe_load((SOURCES / f"{source}.yaml").read_text())
    edit(data)
    path = tmp_path / f"{source}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_source(path)


def column(data: dict, name: str) -> dict:
    return next(c for c in data["columns"] if c["name"] == name)


def raw(spec: SourceSpec, df: pd.DataFrame, suite: str = "tickets_v1"):
    return validate_frame(df, SUITES / f"{suite}.json", ["ticket_id"], declared_expectations(spec), Declaration(spec))


def staging(spec: SourceSpec, df: pd.DataFrame, suite: str = "staging_tickets_v1"):
    return validate_frame(df, SUITES / f"{suite}.json", ["ticket_id"], None,
                          Declaration(spec, STAGING_ORIGIN[spec.name]))


def test_shipped_declarations_change_nothing_on_a_normal_day() -> None:
    for source in ("tickets", "customers", "orders", "kb_articles"):
        spec = load_source(SOURCES / f"{source}.yaml")
        for suite in (f"{source}_v1", f"staging_{source}_v1"):
            expectations = load_suite(SUITES / f"{suite}.json")["expectations"]
            origin = STAGING_ORIGIN[source] if suite.startswith("staging_") else {}
            kept, notes = follow_declaration(expectations, Declaration(spec, origin), 10, set(), set())
            assert (kept, notes) == (expectations, []), suite


def test_optional_customer_id_the_export_lacks_passes_raw_and_staging(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: column(d, "customer_id").update(required=False))
    raw_day = tickets_frame().assign(customer_id=None)
    result = raw(spec, raw_day)
    assert result.success, result.summary()
    assert result.adjustments == [
        "dropped expect_column_proportion_of_unique_values_to_be_between(customer_id): customer_id has no values "
        "on this day (optional in sources/tickets.yaml)"]
    assert "1 adjusted by the source declaration" in result.summary()
    staged = staging(spec, staging_frame("tickets").assign(customer_id=None))
    assert staged.success, staged.summary()
    assert [n.split(":")[0] for n in staged.adjustments] == [
        "dropped expect_column_values_to_not_be_null(customer_id)",
        "dropped expect_column_proportion_of_unique_values_to_be_between(customer_id)"]


def one_customer_day() -> pd.DataFrame:
    """30 tickets all stamped with one customer id: a share of distinct ids under the suite's 5 %."""
    day = pd.concat([tickets_frame()] * 3, ignore_index=True).assign(customer_id="C-00001")
    return day.assign(ticket_id=[f"T-20261101-{i:05d}" for i in range(len(day))])


def test_optional_column_keeps_its_rules_on_the_values_it_has(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: column(d, "customer_id").update(required=False))
    day = one_customer_day()
    result = raw(spec, day)
    assert [f.expectation for f in result.failed] == ["expect_column_proportion_of_unique_values_to_be_between"]


def test_optional_subject_may_be_empty_in_staging(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: column(d, "subject").update(required=False))
    day = staging_frame("tickets")
    day.loc[2, "subject"] = ""
    result = staging(spec, day)
    assert result.success, result.summary()
    assert "relaxed expect_column_value_lengths_to_be_between(subject): min_value 0: subject is optional" in (
        "\n".join(result.adjustments))
    assert not staging(load_source(SOURCES / "tickets.yaml"), day).success, "the shipped declaration requires it"


def test_a_column_left_out_of_the_declaration_drops_its_rules(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: d.update(columns=[c for c in d["columns"] if c["name"] != "subject"]))
    result = staging(spec, staging_frame("tickets").assign(subject=None))
    assert result.success, result.summary()
    assert {n.split(":")[0] for n in result.adjustments} == {
        "dropped expect_column_values_to_not_be_null(subject)",
        "dropped expect_column_value_lengths_to_be_between(subject)"}
    assert all("subject is not declared in sources/tickets.yaml" in n for n in result.adjustments)


def test_a_defaulted_column_loses_its_whole_column_rules(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: column(d, "customer_id").update(default="C-00000"))
    day = tickets_frame().assign(customer_id="C-00000")
    result = raw(spec, day)
    assert result.success, result.summary()
    assert result.adjustments == [
        "dropped expect_column_proportion_of_unique_values_to_be_between(customer_id): customer_id may be filled by "
        "its declared default in sources/tickets.yaml, a constant for a whole file"]
    staged = staging(spec, staging_frame("tickets").assign(customer_id="C-00000"))
    assert staged.success and len(staged.adjustments) == 1, "not-null still holds: the default fills it"


@pytest.mark.parametrize("suite", ["tickets_v1", "staging_tickets_v1"])
def test_empty_day_passes_only_when_the_declaration_allows_it(tmp_path: Path, suite: str) -> None:
    empty = (tickets_frame() if suite == "tickets_v1" else staging_frame("tickets")).iloc[:0]
    check = raw if suite == "tickets_v1" else staging
    shipped = check(load_source(SOURCES / "tickets.yaml"), empty, suite)
    assert not shipped.success
    assert "expect_table_row_count_to_be_between" in {f.expectation for f in shipped.failed}
    quiet = check(declaration(tmp_path, "tickets", lambda d: d.update(allow_empty_days=True)), empty, suite)
    assert quiet.success, quiet.summary()
    assert all("an empty day is allowed (allow_empty_days in sources/tickets.yaml)" in n for n in quiet.adjustments)
    assert "dropped expect_table_row_count_to_be_between" in quiet.adjustments[0]


def test_allowed_empty_days_still_bound_a_day_with_rows(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "tickets", lambda d: d.update(allow_empty_days=True))
    assert not raw(spec, one_customer_day()).success, "the share of distinct customers still applies"


def test_a_suite_that_allows_empty_days_follows_a_declaration_that_does_not(tmp_path: Path) -> None:
    spec = declaration(tmp_path, "customers", lambda d: d.update(allow_empty_days=False))
    empty = customers_frame().iloc[:0]
    result = validate_frame(empty, SUITES / "customers_v1.json", ["customer_id"], declared_expectations(spec),
                            Declaration(spec))
    assert not result.success
    assert result.adjustments == [
        "relaxed expect_table_row_count_to_be_between: min_value 1: a day needs rows unless allow_empty_days is true "
        "in sources/customers.yaml"]
