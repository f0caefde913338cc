"""Files in shapes nobody here wrote, read through a declaration that says how: encodings, null tokens,
columns the export lacks (defaults), and rows whose timestamp belongs to another day. Every row still
ends loaded or quarantined with its rule, and the counts reconcile."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from factory_pipelines.lib.data.ingest import IngestError, load_partition
from factory_pipelines.lib.data.sources import SourceSpec, load_source
from factory_pipelines.settings import PACKAGE_DIR

SHIPPED = PACKAGE_DIR / "defs" / "ingestion" / "sources"
DAY = date(2026, 11, 1)
HEADER = "ticket_id,customer_id,created_at,channel,subject,body,order_id,in_reply_to"


def spec(tmp_path: Path, source: str = "tickets", edit: Callable[[dict], Any] | None = None) -> SourceSpec:
    data = yaml.safe_load((SHIPPED / f"{source}.yaml").read_text())
    if edit:
        edit(data)
    path = tmp_path / "decl" / f"{source}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_source(path)


def column(data: dict, name: str) -> dict:
    return next(c for c in data["columns"] if c["name"] == name)


def write(tmp_path: Path, name: str, content: bytes | str, source: str = "tickets") -> Path:
    folder = tmp_path / "landing" / source / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def load(tmp_path: Path, declared: SourceSpec):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_partition(con, declared, tmp_path / "landing", DAY, "run-1")
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    quarantine = con.execute(
        "SELECT source_row, source_line, rule, column_name, detail, payload FROM raw.quarantine "
        "ORDER BY coalesce(source_row, source_line)").fetchall()
    return con, report, quarantine


def rows(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


# --- encodings ------------------------------------------------------------------------------------

LATIN1 = rows(
    "T-20261101-00001,C-00001,2026-11-01 09:00:00,email,Réclamation,\"Bonjour, je suis très déçu. José\",,",
    "T-20261101-00002,C-00002,2026-11-01 10:00:00,web,Größe,Søren: ½ Preis? Ça va.,,",
)


def test_latin1_export_loads_with_its_accents_when_declared(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", LATIN1.encode("latin-1"))
    con, report, quarantine = load(tmp_path, spec(tmp_path, edit=lambda d: d.update(csv={"encoding": "latin-1"})))
    assert (report.rows_loaded, quarantine) == (2, [])
    assert con.execute("SELECT subject, body FROM raw.tickets ORDER BY ticket_id").fetchall() == [
        ("Réclamation", "Bonjour, je suis très déçu. José"), ("Größe", "Søren: ½ Preis? Ça va."),
    ]


def test_latin1_export_without_the_declaration_is_quarantined_as_encoding(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", LATIN1.encode("latin-1"))
    _, report, quarantine = load(tmp_path, spec(tmp_path))
    assert (report.rows_loaded, {q[2] for q in quarantine}) == (0, {"encoding"})


def test_windows_1252_export_with_curly_quotes_and_euro(tmp_path: Path) -> None:
    text = rows('T-20261101-00001,C-00001,2026-11-01 09:00:00,email,“Refund” – now,I paid €49 for José’s lamp,,')
    write(tmp_path, "export.csv", text.encode("cp1252"))
    declared = spec(tmp_path, edit=lambda d: d.update(csv={"encoding": "windows-1252"}))
    con, report, quarantine = load(tmp_path, declared)
    assert (report.rows_loaded, quarantine) == (1, [])
    assert con.execute("SELECT subject, body, _source_file FROM raw.tickets").fetchone() == (
        "“Refund” – now", "I paid €49 for José’s lamp", str(tmp_path / "landing/tickets/2026-11-01/export.csv"))


def test_windows_1252_bytes_declared_as_latin1_fail_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    text = rows('T-20261101-00001,C-00001,2026-11-01 09:00:00,email,“Refund”,Body,,')
    write(tmp_path, "export.csv", text.encode("cp1252"))
    with pytest.raises(IngestError, match=r"cannot read .*export\.csv as latin-1 \(rule: encoding; csv\.encoding"):
        load(tmp_path, spec(tmp_path, edit=lambda d: d.update(csv={"encoding": "latin-1"})))


def test_undefined_windows_1252_byte_quarantines_only_its_line(tmp_path: Path) -> None:
    good = "T-20261101-00001,C-00001,2026-11-01 09:00:00,email,Café,Body,,"
    bad = "T-20261101-00002,C-00002,2026-11-01 09:00:00,email,Oops,Byte X here,,"
    write(tmp_path, "export.csv", rows(good, bad).encode("cp1252").replace(b"Byte X", b"Byte \x81"))
    _, report, quarantine = load(tmp_path, spec(tmp_path, edit=lambda d: d.update(csv={"encoding": "cp1252"})))
    assert (report.rows_loaded, [(q[1], q[2]) for q in quarantine]) == (1, [(3, "encoding")])


def test_utf16_export(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", LATIN1.encode("utf-16"))
    con, report, _ = load(tmp_path, spec(tmp_path, edit=lambda d: d.update(csv={"encoding": "utf-16"})))
    assert report.rows_loaded == 2
    assert con.execute("SELECT subject FROM raw.tickets ORDER BY 1").fetchall() == [("Größe",), ("Réclamation",)]


# --- null tokens ----------------------------------------------------------------------------------

def test_declared_null_tokens_are_nulls_not_strings(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", rows(
        "T-20261101-00001,C-00001,2026-11-01 09:00:00,email,Hi,Body,None,N/A",
        "T-20261101-00002,None,2026-11-01 09:00:00,email,Hi,Body,,",  # a required value that is "None"
        "T-20261101-00003,C-00003,NULL,email,Hi,Body,,",  # a timestamp that is "NULL": null, not a bad type
    ))
    declared = spec(tmp_path, edit=lambda d: d.update(csv={"null_values": ["None", "NULL", "N/A"]}))
    con, report, quarantine = load(tmp_path, declared)
    assert con.execute("SELECT order_id, in_reply_to FROM raw.tickets").fetchall() == [(None, None)]
    assert [(q[0], q[2], q[3]) for q in quarantine] == [(2, "not_null", "customer_id"), (3, "not_null", "created_at")]


def test_a_required_text_of_spaces_only_is_quarantined_as_missing(tmp_path: Path) -> None:
    """Staging trims it to '' and its contract would fail the day; the row rule takes the row out instead."""
    write(tmp_path, "export.csv", rows(
        "T-20261101-00001,C-00001,2026-11-01 09:00:00,email,   ,Body,,",
        "T-20261101-00002,C-00002,2026-11-01 09:00:00,email, Hi ,Body,,",
        "T-20261101-00003,C-00003,2026-11-01 09:00:00,email,\u00a0\u2002,Body,,",  # Unicode spaces only
        "T-20261101-00004,C-00004,2026-11-01 09:00:00,email,Über,Body,,",
    ))
    con, report, quarantine = load(tmp_path, spec(tmp_path))
    assert [(q[0], q[2], q[3]) for q in quarantine] == [(1, "not_null", "subject"), (3, "not_null", "subject")]
    assert "blank" in quarantine[0][4]
    assert con.execute("SELECT ticket_id FROM raw.tickets ORDER BY 1").fetchall() == [
        ("T-20261101-00002",), ("T-20261101-00004",)]


def test_without_null_tokens_none_is_a_value(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", rows("T-20261101-00001,None,2026-11-01 09:00:00,email,Hi,Body,,"))
    declared = spec(tmp_path, edit=lambda d: column(d, "customer_id").pop("pattern"))
    con, report, _ = load(tmp_path, declared)
    assert con.execute("SELECT customer_id FROM raw.tickets").fetchone() == ("None",)


# --- defaults -------------------------------------------------------------------------------------

NO_CUSTOMER = "ticket_id,created_at,channel,body,order_id,in_reply_to"


def test_columns_the_export_lacks_come_from_their_defaults(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", rows("T-20261101-00001,2026-11-01 09:00:00,email,Where is my parcel?,,",
                                       "T-20261101-00002,2026-11-01 10:00:00,chat,Refund please,,", header=NO_CUSTOMER))

    def edit(d: dict) -> None:
        column(d, "customer_id").update(default="C-00000")
        column(d, "subject").update(default={"from": "body"})

    con, report, quarantine = load(tmp_path, spec(tmp_path, edit=edit))
    assert (report.rows_loaded, quarantine) == (2, [])
    assert con.execute("SELECT customer_id, subject FROM raw.tickets ORDER BY ticket_id").fetchall() == [
        ("C-00000", "Where is my parcel?"), ("C-00000", "Refund please")]
    assert list(report.defaulted_columns.values()) == [["customer_id", "subject"]]


def test_a_default_does_not_hide_nulls_in_a_file_that_has_the_column(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", rows("T-20261101-00001,,2026-11-01 09:00:00,email,Hi,Body,,"))
    _, report, quarantine = load(tmp_path, spec(tmp_path, edit=lambda d: column(d, "customer_id").update(
        default="C-00000")))
    assert [(q[2], q[3]) for q in quarantine] == [("not_null", "customer_id")] and report.defaulted_columns == {}


def test_a_copied_default_still_obeys_the_target_rules(tmp_path: Path) -> None:
    write(tmp_path, "export.csv", rows("T-20261101-00001,C-00001,2026-11-01 09:00:00,email," + "x" * 600 + ",,",
                                       header="ticket_id,customer_id,created_at,channel,body,order_id,in_reply_to"))
    _, _, quarantine = load(tmp_path, spec(tmp_path, edit=lambda d: column(d, "subject").update(
        default={"from": "body"})))
    assert [(q[2], q[3]) for q in quarantine] == [("max_length", "subject")]


def test_parquet_and_jsonl_fill_defaults_too(tmp_path: Path) -> None:
    stamp = pa.array([datetime(2026, 11, 1, 9, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC"))
    table = pa.table({"order_id": ["O-0000001", "O-0000002"], "customer_id": ["C-00001"] * 2, "product": ["Lamp"] * 2,
                      "amount": [10.0, 20.0], "status": ["placed"] * 2, "ordered_at": stamp, "updated_at": stamp})
    pq.write_table(table, write(tmp_path, "o.parquet", b"", source="orders"))
    con, report, quarantine = load(tmp_path, spec(tmp_path, "orders", lambda d: column(d, "currency").update(
        default="EUR")))
    assert (report.rows_loaded, quarantine) == (2, [])
    assert con.execute("SELECT DISTINCT currency FROM raw.orders").fetchall() == [("EUR",)]
    article = {"article_id": "KB-001", "title": "Refunds", "body": "How refunds work.", "updated_at": "2026-11-01T08:00:00Z"}
    write(tmp_path, "a.jsonl", json.dumps(article) + "\n", source="kb_articles")
    con.close()
    con, report, _ = load(tmp_path, spec(tmp_path, "kb_articles", lambda d: column(d, "category").update(
        default="product")))
    assert con.execute("SELECT category FROM raw.kb_articles").fetchone() == ("product",)


# --- the row's day --------------------------------------------------------------------------------

def dated(*stamps: str) -> str:
    return rows(*(f"T-20261101-{n:05d},C-{n:05d},{stamp},email,Hi,Body,," for n, stamp in enumerate(stamps, 1)))


def test_rows_of_other_days_are_quarantined_as_out_of_partition(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", dated("2026-11-01 09:00:00", "2026-10-31 23:59:00", "2026-03-14 10:00:00",
                                   "2026-11-02 00:00:01", "2026-10-30 12:00:00"))
    con, report, quarantine = load(tmp_path, spec(tmp_path))  # shipped: error, lag_days 1
    assert (report.rows_loaded, report.quarantined_by_rule) == (2, {"out_of_partition": 3})
    assert [(q[0], q[3]) for q in quarantine] == [(3, "created_at"), (4, "created_at"), (5, "created_at")]
    assert "2026-03-14 10:00:00 is not in 2026-10-31 .. 2026-11-01" in quarantine[0][4]
    assert json.loads(quarantine[0][5])["created_at"] == "2026-03-14 10:00:00", "the row is kept whole"


def test_lag_days_zero_keeps_only_the_folder_day(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", dated("2026-11-01 09:00:00", "2026-10-31 23:59:00"))
    _, report, quarantine = load(tmp_path, spec(tmp_path, edit=lambda d: d["partition_time"].update(lag_days=0)))
    assert report.rows_loaded == 1 and "not in 2026-11-01, the days of landing folder" in quarantine[0][4]


def test_warn_loads_rows_of_other_days_and_reports_them(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", dated("2026-11-01 09:00:00", "2026-03-14 10:00:00", "2026-04-01 08:00:00"))
    declared = spec(tmp_path, edit=lambda d: d["partition_time"].update(out_of_partition="warn"))
    _, report, quarantine = load(tmp_path, declared)
    assert (report.rows_loaded, quarantine) == (3, [])
    found = report.out_of_partition
    assert (found["rows"], found["earliest"], found["latest"]) == (2, "2026-03-14 10:00:00", "2026-04-01 08:00:00")
    assert [e["ticket_id"] for e in found["examples"]] == ["T-20261101-00002", "T-20261101-00003"]


def test_no_partition_time_checks_nothing(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", dated("2026-03-14 10:00:00"))
    _, report, _ = load(tmp_path, spec(tmp_path, edit=lambda d: d.pop("partition_time")))
    assert report.rows_loaded == 1 and report.out_of_partition == {}
