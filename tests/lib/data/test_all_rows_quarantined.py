"""A day whose every row was quarantined is not a quiet day: `allow_empty_days` lets a day whose files hold no
rows pass, not one whose rows all broke (a UTF-8 export read as windows-1252 renames every accented header,
so the whole file is quarantined as `missing_column`). Real files, real DuckDB, real Great Expectations."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import yaml

from factory_pipelines.lib.data.contracts import Declaration, declared_expectations, validate_frame
from factory_pipelines.lib.data.ingest import load_partition
from factory_pipelines.lib.data.sources import SourceSpec, load_source
from tests.lib.data.test_contracts import SOURCES, SUITES

DAY = date(2026, 11, 6)
HEADER = "N° ticket;Créé le;Canal;Objet;Message"
ROWS = ["ZD-20001;06/11/2026 09:00;web;Sujet;Corps", "ZD-20002;06/11/2026 10:00;web;Sujet;Corps €"]


def quiet_days_allowed(tmp_path: Path) -> SourceSpec:
    data = yaml.safe_load((SOURCES / "tickets.yaml").read_text())
    data.update(allow_empty_days=True, partition_time=None,
                csv={"delimiter": ";", "encoding": "windows-1252", "timestamp_format": "%d/%m/%Y %H:%M"})
    names = {"ticket_id": "N° ticket", "created_at": "Créé le", "channel": "Canal", "subject": "Objet",
             "body": "Message"}
    data["columns"] = [{**c, "source_name": names[c["name"]]} if c["name"] in names
                       else {**c, "required": False} for c in data["columns"]]
    for c in data["columns"]:
        c.pop("pattern", None)
    path = tmp_path / "tickets.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return load_source(path)


def load_day(tmp_path: Path, spec: SourceSpec, content: bytes):
    folder = tmp_path / "landing" / "tickets" / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export.csv").write_bytes(content)
    con = duckdb.connect()
    report = load_partition(con, spec, tmp_path / "landing", DAY, "run")
    frame = con.execute("SELECT * FROM raw.tickets WHERE _partition = ?", [DAY]).df()
    return report, frame


def contract(spec: SourceSpec, frame, rows_read: int | None):
    return validate_frame(frame, SUITES / "tickets_v1.json", ["ticket_id"], declared_expectations(spec),
                          Declaration(spec, rows_read=rows_read))


def test_a_file_quarantined_whole_fails_the_contract_although_quiet_days_are_allowed(tmp_path: Path) -> None:
    spec = quiet_days_allowed(tmp_path)
    report, frame = load_day(tmp_path, spec, ("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("utf-8"))
    assert (report.rows_read, report.rows_loaded, report.quarantined_by_rule) == (2, 0, {"missing_column": 2})

    result = contract(spec, frame, report.rows_read)

    assert not result.success
    assert [f.expectation for f in result.failed] == ["expect_table_row_count_to_be_between"]
    assert result.failed[0].observed == 0 and result.failed[0].kwargs["min_value"] == 1
    assert result.adjustments[0] == ("not a quiet day: 2 rows read, none loaded (all quarantined), so "
                                     "allow_empty_days in sources/tickets.yaml does not apply")
    assert not any("an empty day is allowed" in note for note in result.adjustments)


def test_a_suite_without_a_row_minimum_gets_one_on_such_a_day(tmp_path: Path) -> None:
    spec = quiet_days_allowed(tmp_path)
    suite = yaml.safe_load((SUITES / "tickets_v1.json").read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"]["min_value"] = 0
    lenient = tmp_path / "tickets_v1.json"
    lenient.write_text(json.dumps(suite))
    empty = load_day(tmp_path, spec, (HEADER + "\r\n").encode("cp1252"))[1]

    result = validate_frame(empty, lenient, ["ticket_id"], declared_expectations(spec), Declaration(spec, rows_read=3))

    assert not result.success
    assert "relaxed expect_table_row_count_to_be_between: min_value 1: every row read was quarantined, which is " \
           "not a quiet day" in result.adjustments


def test_a_header_only_file_is_still_a_quiet_day(tmp_path: Path) -> None:
    spec = quiet_days_allowed(tmp_path)
    report, frame = load_day(tmp_path, spec, (HEADER + "\r\n").encode("cp1252"))
    assert report.rows_read == 0
    for rows_read in (report.rows_read, None):
        result = contract(spec, frame, rows_read)
        assert result.success, result.summary()
        assert any("an empty day is allowed" in note for note in result.adjustments)


def test_the_same_file_in_the_declared_encoding_loads_and_passes(tmp_path: Path) -> None:
    spec = quiet_days_allowed(tmp_path)
    report, frame = load_day(tmp_path, spec, ("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("cp1252"))
    assert (report.rows_read, report.rows_loaded) == (2, 2)
    assert frame["body"].tolist() == ["Corps", "Corps €"]
    assert contract(spec, frame, report.rows_read).success
