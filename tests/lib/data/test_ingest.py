"""Bad input at ingestion: every row ends loaded or quarantined with its rule, and counts reconcile."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory_pipelines.lib.data.ingest import IngestError, load_partition
from factory_pipelines.lib.data.sources import SourceSpecError, load_source, load_sources
from factory_pipelines.settings import PACKAGE_DIR

SOURCES = load_sources(PACKAGE_DIR / "defs" / "ingestion" / "sources")
DAY = date(2026, 11, 1)
HEADER = "ticket_id,customer_id,created_at,channel,subject,body,order_id,in_reply_to"


def ticket(n: int, **overrides: str) -> str:
    row = {
        "ticket_id": f"T-20261101-{n:05d}", "customer_id": f"C-{n:05d}", "created_at": "2026-11-01 09:00:00",
        "channel": "email", "subject": "Where is my order?", "body": f'Order "{n}", please, thanks', "order_id": "",
        "in_reply_to": "",
    }
    row.update(overrides)
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(row.values())  # quotes values with a newline
    return line.getvalue()[:-1]


def write(landing: Path, source: str, name: str, content: bytes | str) -> Path:
    folder = landing / source / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def load(tmp_path: Path, source: str = "tickets"):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_partition(con, SOURCES[source], tmp_path / "landing", DAY, "run-1")
    quarantine = con.execute(
        "SELECT source_file, source_row, source_line, rule, column_name, detail, payload FROM raw.quarantine "
        "WHERE source = ? ORDER BY source_file, coalesce(source_row, source_line)", [source]
    ).fetchall()
    return con, report, quarantine


def csv_file(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def test_clean_csv_loads_every_row(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "a.csv", csv_file(*(ticket(i) for i in range(1, 6))))
    con, report, quarantine = load(tmp_path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (5, 5, 0)
    assert quarantine == []
    assert con.execute("SELECT body FROM raw.tickets WHERE ticket_id = 'T-20261101-00002'").fetchone() == (
        'Order "2", please, thanks',
    )
    assert len(report.data_version) == 16


def test_each_bad_csv_row_is_quarantined_with_its_rule(tmp_path: Path) -> None:
    rows = [
        ticket(1),
        ticket(2) + ",surplus",  # malformed: too many columns
        ticket(3, created_at="yesterday"),  # wrong type
        ticket(4, customer_id=""),  # null in a required field
        ticket(5, channel="fax"),  # invalid enum
        ticket(6, order_id="O-12"),  # pattern
        ticket(1, body="sent twice"),  # duplicate id within the file
        ticket(7),
    ]
    path = write(tmp_path / "landing", "tickets", "a.csv", csv_file(*rows))
    con, report, quarantine = load(tmp_path)
    assert report.rows_read == 8 and report.rows_loaded == 2 and report.rows_quarantined == 6
    assert report.quarantined_by_rule == {
        "duplicate_key": 1, "enum": 1, "malformed_row": 1, "not_null": 1, "pattern": 1, "type": 1,
    }
    by_rule = {r[3]: r for r in quarantine}
    assert all(r[0] == str(path) for r in quarantine), "every quarantine row names its file"
    assert by_rule["malformed_row"][2] == 3 and "surplus" in by_rule["malformed_row"][6]
    assert by_rule["type"][4] == "created_at" and "yesterday" in by_rule["type"][5]
    assert by_rule["not_null"][4] == "customer_id"
    assert by_rule["enum"][4] == "channel" and "fax" in by_rule["enum"][5]
    assert by_rule["pattern"][4] == "order_id"
    assert "already loaded from" in by_rule["duplicate_key"][5]
    assert json.loads(by_rule["duplicate_key"][6])["body"] == "sent twice"
    loaded = [r[0] for r in con.execute("SELECT ticket_id FROM raw.tickets ORDER BY 1").fetchall()]
    assert loaded == ["T-20261101-00001", "T-20261101-00007"]


def test_duplicate_ids_across_files_keep_the_first(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "tickets", "a.csv", csv_file(ticket(1), ticket(2)))
    write(landing, "tickets", "b.csv", csv_file(ticket(2, body="again"), ticket(3)))
    con, report, quarantine = load(tmp_path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (4, 3, 1)
    assert quarantine[0][0].endswith("b.csv") and quarantine[0][3] == "duplicate_key"
    assert "a.csv row 2" in quarantine[0][5]


def test_missing_required_column_quarantines_the_whole_file(tmp_path: Path) -> None:
    header = HEADER.replace("customer_id,", "")
    body = "\n".join([header, "T-20261101-00001,2026-11-01 09:00:00,email,Hi,Body,,"]) + "\n"
    write(tmp_path / "landing", "tickets", "nocust.csv", body)
    write(tmp_path / "landing", "tickets", "ok.csv", csv_file(ticket(2)))
    _, report, quarantine = load(tmp_path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (2, 1, 1)
    assert quarantine[0][3] == "missing_column" and quarantine[0][4] == "customer_id"
    assert "nocust.csv lacks required column(s) customer_id" in quarantine[0][5]
    assert "T-20261101-00001" in quarantine[0][6]


def test_a_renamed_or_mis_decoded_header_is_named_with_the_headers_found(tmp_path: Path) -> None:
    """The detail says which header was looked for, which were there, and suspects the encoding when the
    headers hold the marks of a mis-decoded file (UTF-8 'é' read as Latin-1 is 'Ã©')."""
    header = HEADER.replace("customer_id", "cliÃ©nt")
    write(tmp_path / "landing", "tickets", "export.csv", f"{header}\nT-20261101-00001,C-1,2026-11-01 09:00:00,web,S,B,,\n")
    _, _, quarantine = load(tmp_path)
    detail = quarantine[0][5]
    assert "export.csv lacks required column(s) customer_id; its columns are 'ticket_id', " in detail
    assert "'cliÃ©nt'" in detail and "is the file really utf-8? (csv.encoding" in detail


def test_rows_keep_their_record_number_and_rejects_their_line_after_multi_line_values(tmp_path: Path) -> None:
    """DuckDB counts records, an editor lines: a rejected record gets both (`source_row`, `source_line`), and
    the loaded rows after it keep their own record number (not their position among the loaded)."""
    rows = [ticket(1), ticket(2, body="multi\nline\nbody"), ticket(3, created_at="not-a-time"), ticket(4),
            ticket(5) + ",,extra", ticket(6)]
    content = csv_file(*rows)
    assert content.count("\n") == 9  # header, 6 records, 2 more lines inside the quoted body
    write(tmp_path / "landing", "tickets", "a.csv", content)
    con, report, quarantine = load(tmp_path)
    loaded = con.execute("SELECT ticket_id, _source_row FROM raw.tickets ORDER BY 2").fetchall()
    assert loaded == [(f"T-20261101-{n:05d}", n) for n in (1, 2, 4, 6)]
    assert [(q[1], q[2], q[3]) for q in quarantine] == [(3, 6, "type"), (5, 8, "malformed_row")]
    assert report.rows_read == 6


def test_rows_after_adjacent_rejected_records_keep_their_record_number(tmp_path: Path) -> None:
    rows = [ticket(1), ticket(2, created_at="never"), ticket(3, created_at="later"), ticket(4), ticket(5),
            ticket(6, created_at="nope"), ticket(7)]
    write(tmp_path / "landing", "tickets", "a.csv", csv_file(*rows))
    con, _, quarantine = load(tmp_path)
    assert con.execute("SELECT _source_row FROM raw.tickets ORDER BY 1").fetchall() == [(1,), (4,), (5,), (7,)]
    assert [q[1] for q in quarantine] == [2, 3, 6]


def test_extra_and_reordered_columns_are_kept_not_dropped(tmp_path: Path) -> None:
    header = "customer_id,ticket_id,created_at,channel,subject,body,order_id,in_reply_to,mood"
    write(tmp_path / "landing", "tickets", "a.csv", f"{header}\nC-00001,T-20261101-00001,2026-11-01 09:00:00,web,S,B,,,angry\n")
    con, report, _ = load(tmp_path)
    assert report.rows_loaded == 1 and report.extra_columns
    assert con.execute("SELECT ticket_id, customer_id, _extra->>'$.mood' FROM raw.tickets").fetchone() == (
        "T-20261101-00001", "C-00001", "angry",
    )


def test_non_utf8_bytes_are_quarantined_as_encoding(tmp_path: Path) -> None:
    content = (csv_file(ticket(1)) + ticket(2, body="caf_") + "\n").encode().replace(b"caf_", b"caf\xe9")
    write(tmp_path / "landing", "tickets", "a.csv", content)
    _, report, quarantine = load(tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert quarantine[0][3] == "encoding"


def test_one_megabyte_body_is_quarantined_by_max_length(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "a.csv", csv_file(ticket(1), ticket(2, body="x" * 1_000_000)))
    _, report, quarantine = load(tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert quarantine[0][3] == "max_length" and quarantine[0][4] == "body"
    assert len(json.loads(quarantine[0][6])["body"]) == 1_000_000, "the raw payload is kept whole"


def test_empty_and_header_only_files_load_nothing_and_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "a.csv", "")
    write(tmp_path / "landing", "tickets", "b.csv", HEADER + "\n")
    write(tmp_path / "landing", "tickets", "c.csv", csv_file(ticket(1)))
    _, report, _ = load(tmp_path)
    assert (report.rows_read, report.rows_loaded) == (1, 1)
    assert [Path(f).name for f in report.empty_files] == ["a.csv", "b.csv"]


def test_missing_partition_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"no landing folder .*tickets/2026-11-01 for partition 2026-11-01"):
        load(tmp_path)


def test_folder_without_matching_files_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "notes.txt", "hello")
    with pytest.raises(IngestError, match=r"has no files matching '\*\.csv'"):
        load(tmp_path)


def test_reloading_a_partition_replaces_it(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "a.csv", csv_file(ticket(1), ticket(2, channel="fax")))
    con, first, _ = load(tmp_path)
    con.close()
    con, second, _ = load(tmp_path)
    assert (second.rows_loaded, second.rows_quarantined) == (first.rows_loaded, first.rows_quarantined) == (1, 1)
    assert con.execute("SELECT count(*) FROM raw.tickets").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 1
    assert second.data_version == first.data_version


def orders_table(**columns) -> pa.Table:
    stamp = pa.array([datetime(2026, 11, 1, 9, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC"))
    base = {
        "order_id": ["O-0000001", "O-0000002", "O-0000003"], "customer_id": ["C-00001"] * 3,
        "product": ["Lamp"] * 3, "amount": [10.0, 20.0, 30.0], "currency": ["USD", "EUR", "GBP"],
        "status": ["placed"] * 3, "refund_amount": [None, None, None], "ordered_at": stamp, "updated_at": stamp,
    }
    base.update(columns)
    return pa.table(base)


def test_parquet_rules_out_of_range_bad_enum_and_nulls(tmp_path: Path) -> None:
    table = orders_table(amount=[10.0, 20_000.0, 30.0], currency=["USD", "EUR", "XXX"])
    pq.write_table(table, write(tmp_path / "landing", "orders", "o.parquet", b""))
    _, report, quarantine = load(tmp_path, "orders")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 1, 2)
    assert {(r[1], r[3], r[4]) for r in quarantine} == {(2, "range", "amount"), (3, "enum", "currency")}


def test_parquet_with_wrong_types_casts_what_it_can(tmp_path: Path) -> None:
    table = orders_table(amount=["10.5", "abc", "30"])  # amounts written as strings
    pq.write_table(table, write(tmp_path / "landing", "orders", "o.parquet", b""))
    con, report, quarantine = load(tmp_path, "orders")
    assert (report.rows_loaded, report.rows_quarantined) == (2, 1)
    assert quarantine[0][3] == "type" and quarantine[0][4] == "amount" and quarantine[0][1] == 2
    assert con.execute("SELECT sum(amount) FROM raw.orders").fetchone()[0] == pytest.approx(40.5)


def test_parquet_missing_required_column_quarantines_its_rows(tmp_path: Path) -> None:
    table = orders_table().drop_columns(["currency"])
    pq.write_table(table, write(tmp_path / "landing", "orders", "o.parquet", b""))
    _, report, quarantine = load(tmp_path, "orders")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 0, 3)
    assert {r[3] for r in quarantine} == {"missing_column"} and [r[1] for r in quarantine] == [1, 2, 3]


def test_unreadable_parquet_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "landing", "orders", "broken.parquet", b"PAR1 this is not parquet")
    with pytest.raises(IngestError, match=r"cannot read Parquet file .*broken\.parquet"):
        load(tmp_path, "orders")


def test_jsonl_invalid_lines_and_types(tmp_path: Path) -> None:
    good = {"article_id": "KB-001", "title": "Refunds", "body": "How refunds work.", "category": "refund",
            "tags": ["refund"], "updated_at": "2026-11-01T08:00:00Z", "locale": "en"}
    lines = [
        json.dumps(good), "", "{not json", "[1, 2]",
        json.dumps(good | {"article_id": "KB-002", "updated_at": "soon"}),
        json.dumps(good | {"article_id": "KB-003", "category": "gossip"}),
        json.dumps(good | {"article_id": "KB-004", "tags": None}),
    ]
    write(tmp_path / "landing", "kb_articles", "a.jsonl", "\n".join(lines) + "\n")
    con, report, quarantine = load(tmp_path, "kb_articles")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (6, 2, 4)
    assert [(r[2] or r[1], r[3]) for r in quarantine] == [(3, "invalid_json"), (4, "invalid_json"), (5, "type"), (6, "enum")]
    assert con.execute("SELECT tags, _extra->>'$.locale' FROM raw.kb_articles WHERE article_id = 'KB-001'").fetchone() == (
        ["refund"], "en",
    )


def test_bad_source_declaration_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "tickets.yaml"
    path.write_text((PACKAGE_DIR / "defs/ingestion/sources/tickets.yaml").read_text().replace("type: TIMESTAMP", "type: WHEN"))
    with pytest.raises(SourceSpecError, match=r"tickets\.yaml: columns\.2\.type: .*'WHEN' is not one of"):
        load_source(path)


def test_line_over_the_reader_limit_is_quarantined(tmp_path: Path) -> None:
    write(tmp_path / "landing", "tickets", "a.csv", csv_file(ticket(1, body="y" * 3_000_000), ticket(2)))
    _, report, quarantine = load(tmp_path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (2, 1, 1)
    assert quarantine[0][3] == "max_line_size"


def test_byte_order_mark_and_windows_line_endings(tmp_path: Path) -> None:
    content = "\ufeff" + csv_file(ticket(1), ticket(2)).replace("\n", "\r\n")
    write(tmp_path / "landing", "tickets", "a.csv", content.encode("utf-8"))
    con, report, _ = load(tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 0)
    assert con.execute("SELECT ticket_id, in_reply_to FROM raw.tickets ORDER BY 1").fetchall() == [
        ("T-20261101-00001", None), ("T-20261101-00002", None),
    ]


def test_zoned_timestamps_load_as_utc_whatever_the_session_zone(tmp_path: Path) -> None:
    stamp = pa.array([datetime(2026, 11, 1, 9, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC"))
    pq.write_table(orders_table(ordered_at=stamp), write(tmp_path / "landing", "orders", "o.parquet", b""))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'America/New_York'")
    load_partition(con, SOURCES["orders"], tmp_path / "landing", DAY, "run-1")
    assert con.execute("SELECT DISTINCT ordered_at::VARCHAR FROM raw.orders").fetchall() == [("2026-11-01 09:00:00",)]


def test_every_row_keeps_its_file_and_row_across_files_and_quarantine(tmp_path: Path) -> None:
    """Rows are inserted straight into the raw table and numbered after: each keeps its position in its file,
    bad rows in the middle included, and every loaded row is marked loaded."""
    landing = tmp_path / "landing"
    write(landing, "tickets", "a.csv", csv_file(ticket(1), ticket(2, channel="fax"), ticket(3), ticket(1)))
    write(landing, "tickets", "b.csv", csv_file(*(ticket(n) for n in range(10, 14))))
    con, report, quarantine = load(tmp_path)
    rows = con.execute("SELECT split_part(_source_file, '/', -1), _source_row, ticket_id FROM raw.tickets "
                       "ORDER BY 1, 2").fetchall()
    assert rows == [("a.csv", 1, "T-20261101-00001"), ("a.csv", 3, "T-20261101-00003"),
                    *(("b.csv", n - 9, f"T-20261101-{n:05d}") for n in range(10, 14))]
    assert [(q[1], q[3]) for q in quarantine] == [(2, "enum"), (4, "duplicate_key")]
    assert "already loaded from" in quarantine[1][5] and "a.csv row 1" in quarantine[1][5]
    assert con.execute("SELECT count(*) FROM raw.tickets WHERE _loaded_at IS NULL").fetchone()[0] == 0
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (8, 6, 2)


def test_a_pattern_duckdb_cannot_run_is_a_declaration_error(tmp_path: Path) -> None:
    path = tmp_path / "tickets.yaml"
    path.write_text((PACKAGE_DIR / "defs/ingestion/sources/tickets.yaml").read_text().replace(
        'pattern: "^O-[0-9]{7}$"', 'pattern: "^(?=O-)O-[0-9]{7}$"'))
    with pytest.raises(SourceSpecError, match=r"tickets\.yaml: columns\.6\.pattern: .*DuckDB"):
        load_source(path)
