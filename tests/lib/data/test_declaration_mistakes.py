"""The mistakes a newcomer makes in a source declaration fail when it loads, naming the file, the key and the
column, with the closest right spelling; before, some of them loaded and then quarantined every row (a
strptime format without %-codes, a value map outside the enum), or crashed the load (`min` on text, a
two-character delimiter)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from factory_pipelines.lib.data.ingest import load_partition
from factory_pipelines.lib.data.sources import SourceSpecError, load_source
from factory_pipelines.settings import PACKAGE_DIR

SHIPPED = PACKAGE_DIR / "defs" / "ingestion" / "sources"
DAY = date(2026, 11, 3)
HELPDESK = {
    "name": "tickets", "description": "A French helpdesk export.", "format": "csv", "file_pattern": "*.csv",
    "contract": "tickets_v1", "primary_key": ["ticket_id"], "allow_empty_days": True,
    "csv": {"delimiter": ";", "encoding": "windows-1252", "null_values": ["NULL", "N/A"],
            "timestamp_format": "%d/%m/%Y %H:%M"},
    "columns": [
        {"name": "ticket_id", "type": "VARCHAR", "required": True, "source_name": "N° ticket"},
        {"name": "customer_id", "type": "VARCHAR", "default": "C-00000"},
        {"name": "created_at", "type": "TIMESTAMP", "required": True, "source_name": "Créé le"},
        {"name": "channel", "type": "VARCHAR", "required": True, "enum": ["email", "chat", "phone", "web"],
         "source_name": "Canal", "value_map": {"E-mail": "email", "Téléphone": "phone"}},
        {"name": "subject", "type": "VARCHAR", "required": True, "source_name": "Objet"},
        {"name": "body", "type": "VARCHAR", "required": True, "source_name": "Message"},
        {"name": "order_id", "type": "VARCHAR", "source_name": "Commande"},
    ],
}


def declared(tmp_path: Path, edit: Callable[[dict], Any] | None = None) -> Path:
    data = yaml.safe_load(yaml.safe_dump(HELPDESK, allow_unicode=True))
    if edit:
        edit(data)
    path = tmp_path / "my_sources" / "tickets.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def col(data: dict, name: str) -> dict:
    return next(c for c in data["columns"] if c["name"] == name)


def refused(tmp_path: Path, edit: Callable[[dict], Any], message: str) -> None:
    path = declared(tmp_path, edit)
    with pytest.raises(SourceSpecError, match=message) as info:
        load_source(path)
    assert str(info.value).startswith(f"{path}: "), "the error names the file first"


def test_the_helpdesk_declaration_itself_loads(tmp_path: Path) -> None:
    spec = load_source(declared(tmp_path))
    assert (spec.csv.encoding, spec.column("customer_id").default) == ("windows-1252", "C-00000")


@pytest.mark.parametrize(("written", "hint"), [("TIMESTMP", "TIMESTAMP"), ("DATETIME", "TIMESTAMP"),
                                               ("STRING", "VARCHAR"), ("TEXT", "VARCHAR"), ("INT", "INTEGER")])
def test_a_wrong_type_names_the_column_and_the_right_type(tmp_path: Path, written: str, hint: str) -> None:
    refused(tmp_path, lambda d: col(d, "created_at").update(type=written),
            rf"columns\.2\.type: Value error, column 'created_at': type '{written}' is not one of \[.*\]; "
            rf"did you mean '{hint}'\?")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: col(d, "body").update(requried=True),
     r"columns\.5: Value error, column 'body': unknown key 'requried'; did you mean 'required'\? \(the keys are "),
    (lambda d: col(d, "order_id").update(sourcename="Commande"),
     r"columns\.6: .*column 'order_id': unknown key 'sourcename'; did you mean 'source_name'\?"),
    (lambda d: d["csv"].update(delimeter=","),
     r"csv: Value error, unknown key 'delimeter'; did you mean 'delimiter'\?"),
    (lambda d: d["csv"].update(null_value=["NULL"]),
     r"csv: .*unknown key 'null_value'; did you mean 'null_values'\?"),
    (lambda d: d.update(primary_keys=["ticket_id"]),
     r"\(top\): .*unknown key 'primary_keys'; did you mean 'primary_key'\?"),
    (lambda d: d.update(partition_time={"column": "created_at", "lag_day": 1}),
     r"partition_time: .*unknown key 'lag_day'; did you mean 'lag_days'\?"),
])
def test_a_misspelt_key_names_the_closest_one(tmp_path: Path, edit: Callable[[dict], Any], message: str) -> None:
    refused(tmp_path, edit, message)


@pytest.mark.parametrize(("written", "read"), [("windows1252", "windows-1252"), ("Windows_1252", "windows-1252"),
                                               ("win-1252", "windows-1252"), ("utf-8-sig", "utf-8"),
                                               ("ASCII", "utf-8"), ("ISO 8859-1", "latin-1"), ("latin_1", "latin-1")])
def test_more_encoding_spellings_are_read(tmp_path: Path, written: str, read: str) -> None:
    assert load_source(declared(tmp_path, lambda d: d["csv"].update(encoding=written))).csv.encoding == read


@pytest.mark.parametrize(("written", "hint"), [
    ("ANSI", r"Windows' \"ANSI\" is windows-1252"),
    ("iso-8859-15", r"ISO-8859-15 \(Latin-9\) is not read"),
])
def test_an_encoding_that_is_not_read_says_what_to_write(tmp_path: Path, written: str, hint: str) -> None:
    refused(tmp_path, lambda d: d["csv"].update(encoding=written),
            rf"csv\.encoding: .*encoding '{written}' is not one of \['latin-1', 'utf-16', 'utf-8', 'windows-1252'\] "
            rf"\({hint}")


def test_windows1252_spelt_without_its_dash_reads_the_euro_sign(tmp_path: Path) -> None:
    """Before, `windows1252` was refused; now it names the same encoding, and the file loads (real DuckDB)."""
    spec = load_source(declared(tmp_path, lambda d: d["csv"].update(encoding="windows1252")))
    folder = tmp_path / "landing" / "tickets" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "export.csv").write_bytes(
        "N° ticket;Créé le;Canal;Objet;Message;Commande\r\n"
        "ZD-1;03/11/2026 14:05;Téléphone;Remboursement;\"Je veux mes 49,99 €\r\nmerci\";NULL\r\n".encode("cp1252"))
    con = duckdb.connect()
    report = load_partition(con, spec, tmp_path / "landing", DAY, "run")
    assert (report.rows_read, report.rows_loaded) == (1, 1)
    assert con.execute("SELECT channel, body, order_id FROM raw.tickets").fetchone() == (
        "phone", "Je veux mes 49,99 €\r\nmerci", None)


@pytest.mark.parametrize(("key", "written", "message"), [
    ("timestamp_format", "dd/mm/yyyy HH:MM", r"csv\.timestamp_format: .*'dd/mm/yyyy HH:MM' has no %-code: write it "
                                             r"in strptime codes, e\.g\. '%d/%m/%Y %H:%M'"),
    ("date_format", "%d/%m/%Q", r"csv\.date_format: .*'%d/%m/%Q' is not a format DuckDB reads"),
    ("delimiter", ";;", r"csv\.delimiter: .*delimiter ';;' must be exactly one character"),
    ("quote", "", r"csv\.quote: .*quote '' must be exactly one character"),
    ("delimiter", '"', r"csv: .*delimiter and quote are both '\"'"),
])
def test_csv_options_that_would_quarantine_or_crash_everything_are_refused(tmp_path: Path, key: str, written: str,
                                                                            message: str) -> None:
    refused(tmp_path, lambda d: d["csv"].update({key: written}), message)


def test_min_on_a_text_column_is_refused_instead_of_crashing_the_load(tmp_path: Path) -> None:
    refused(tmp_path, lambda d: col(d, "order_id").update(min=3),
            r"columns\.6: .*column 'order_id' \(VARCHAR\): min and max apply to numbers \(BIGINT, DOUBLE, INTEGER\); "
            r"for text use max_length or pattern")
    refused(tmp_path, lambda d: col(d, "created_at").update(max=5), r"column 'created_at' \(TIMESTAMP\): min and max")


def test_min_above_max_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((SHIPPED / "orders.yaml").read_text())
    col(data, "amount").update(min=100, max=10)
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SourceSpecError, match=r"orders\.yaml: columns\.\d+: .*column 'amount': min 100\.0 is above "
                                              r"max 10\.0"):
        load_source(path)


def test_a_value_map_into_values_the_enum_refuses_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, lambda d: col(d, "channel")["value_map"].update({"Web": "www"}),
            r"columns\.3: .*column 'channel': value_map gives values outside its enum \['email', 'chat', 'phone', "
            r"'web'\]: \{'Web': 'www'\} \(every such row would be quarantined as enum\)")


def test_a_bad_default_names_its_column(tmp_path: Path) -> None:
    refused(tmp_path, lambda d: col(d, "customer_id").update(pattern="C-[0-9]{5}", default="C-1"),
            r"columns\.1: Value error, default 'C-1' breaks the column's own rule: pattern C-\[0-9\]\{5\} "
            r"\(column 'customer_id'\)")


def test_the_shipped_declarations_still_load() -> None:
    for path in sorted(SHIPPED.glob("*.yaml")):
        assert load_source(path) is not None, path
