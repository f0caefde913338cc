"""Source declarations: the keys a user bringing their own data sets are validated when the code location
loads, and a mistake names the file and the field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from factory_pipelines.lib.data.sources import SourceSpecError, load_source, load_sources
from factory_pipelines.settings import PACKAGE_DIR

SHIPPED = PACKAGE_DIR / "defs" / "ingestion" / "sources"


def declaration(tmp_path: Path, edit) -> Path:
    """The shipped tickets declaration with `edit(data)` applied, written to the user's folder."""
    data = yaml.safe_load((SHIPPED / "tickets.yaml").read_text())
    edit(data)
    path = tmp_path / "tickets.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def column(data: dict, name: str) -> dict:
    return next(c for c in data["columns"] if c["name"] == name)


def test_shipped_declarations_state_their_quiet_days_and_timestamps() -> None:
    specs = load_sources(SHIPPED)
    assert {n: s.allow_empty_days for n, s in specs.items()} == {
        "customers": True, "kb_articles": True, "orders": False, "tickets": False}
    assert {n: (s.partition_time.column, s.partition_time.out_of_partition, s.partition_time.lag_days)
            for n, s in specs.items() if s.partition_time} == {
        "tickets": ("created_at", "error", 1), "orders": ("updated_at", "error", 1)}
    assert specs["tickets"].csv.encoding == "utf-8" and specs["tickets"].csv.null_values == []


@pytest.mark.parametrize(("written", "read"), [("Latin-1", "latin-1"), ("ISO-8859-1", "latin-1"),
                                               ("cp1252", "windows-1252"), ("UTF_16", "utf-16"), ("utf8", "utf-8")])
def test_encoding_spellings_are_normalised(tmp_path: Path, written: str, read: str) -> None:
    spec = load_source(declaration(tmp_path, lambda d: d.update(csv={"encoding": written})))
    assert spec.csv.encoding == read


def test_unknown_encoding_names_file_and_field(tmp_path: Path) -> None:
    path = declaration(tmp_path, lambda d: d.update(csv={"encoding": "ebcdic"}))
    with pytest.raises(SourceSpecError, match=r"tickets\.yaml: csv\.encoding: .*'ebcdic' is not one of"):
        load_source(path)


def test_null_values_always_include_the_empty_field(tmp_path: Path) -> None:
    spec = load_source(declaration(tmp_path, lambda d: d.update(csv={"null_values": ["None", "N/A"]})))
    assert spec.csv.null_strings == ["", "None", "N/A"]


def test_constant_and_copied_defaults(tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        column(d, "customer_id").update(required=False, default="C-00000")
        column(d, "subject").update(default={"from": "body"})
        column(d, "created_at").update(default="2026-11-01 00:00:00")

    spec = load_source(declaration(tmp_path, edit))
    assert spec.column("customer_id").default == "C-00000"
    assert spec.column("subject").default_from == "body"
    assert spec.column("created_at").default.isoformat() == "2026-11-01T00:00:00"


@pytest.mark.parametrize(("name", "default", "message"), [
    ("customer_id", "X-1", r"columns\.1: Value error, default 'X-1' breaks the column's own rule: pattern"),
    ("channel", "fax", r"columns\.3: .*default 'fax' breaks the column's own rule: enum"),
    ("created_at", "yesterday", r"columns\.2: .*default 'yesterday' is not a TIMESTAMP value"),
    ("subject", {"from": "nowhere"}, r"default from 'nowhere' must name another declared column"),
    ("subject", {"form": "body"}, r"columns\.4\.default: Value error, a default that is a mapping must be \{from: <column>\}"),
    ("ticket_id", "T-20261101-00001", r"primary_key columns cannot have a default"),
    ("created_at", {"from": "body"}, r"created_at' \(TIMESTAMP\): default from 'body' \(VARCHAR\) needs the same type"),
])
def test_bad_default_names_file_column_and_reason(tmp_path: Path, name: str, default, message: str) -> None:
    path = declaration(tmp_path, lambda d: column(d, name).update(default=default))
    with pytest.raises(SourceSpecError, match=rf"tickets\.yaml: .*{message}"):
        load_source(path)


def test_partition_time_must_name_a_timestamp_column(tmp_path: Path) -> None:
    path = declaration(tmp_path, lambda d: d.update(partition_time={"column": "subject"}))
    with pytest.raises(SourceSpecError, match=r"partition_time\.column 'subject' must be a declared TIMESTAMP or DATE"):
        load_source(path)
    path = declaration(tmp_path, lambda d: d.update(partition_time={"column": "created_at", "out_of_partition": "x"}))
    with pytest.raises(SourceSpecError, match=r"partition_time\.out_of_partition: Input should be 'error' or 'warn'"):
        load_source(path)


def test_yaml_dates_are_accepted_as_date_defaults(tmp_path: Path) -> None:
    path = tmp_path / "customers.yaml"
    text = (SHIPPED / "customers.yaml").read_text().replace(
        "{name: signup_date, type: DATE, required: true,", "{name: signup_date, type: DATE, required: true, "
        "default: 2026-01-01,")
    path.write_text(text)
    assert load_source(path).column("signup_date").default == date(2026, 1, 1)
