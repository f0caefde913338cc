"""Readers of landing files into a partition load's stage: CSV, Parquet and JSON Lines.

Each reader matches the file's columns to the declaration by name (case-insensitive), fills the columns a
file lacks from their declared `default`, and inserts parseable rows into the raw table; records that do not parse
(malformed CSV lines, bad encodings, invalid JSON, failed casts, a file missing a required column) go
straight to quarantine with their file, row or line and raw payload. Columns beyond the declaration are kept
as JSON in `_extra`.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from factory_pipelines.lib.data.partition_load import IngestError, PartitionLoad
from factory_pipelines.lib.data.sources import ColumnSpec, CsvOptions
from factory_pipelines.lib.sql import lit, q

# DuckDB's CSV reject types, mapped to the quarantine rule they break.
CSV_REJECT_RULES = {
    "CAST": "type",
    "MISSING COLUMNS": "malformed_row",
    "TOO MANY COLUMNS": "malformed_row",
    "UNQUOTED VALUE": "malformed_row",
    "INVALID STATE": "malformed_row",
    "LINE SIZE OVER MAXIMUM": "max_line_size",
    "INVALID ENCODING": "encoding",
}
PYTHON_CODECS = {"utf-8": "utf-8", "utf-16": "utf-16", "latin-1": "latin-1", "windows-1252": "cp1252"}
DUCKDB_ENCODINGS = {"utf-8", "utf-16", "latin-1"}  # read by DuckDB itself; others are transcoded first
Access = Callable[[str, ColumnSpec | None], str]


def match_columns(load: PartitionLoad, path: Path, file_columns: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map declared column -> file column (case-insensitive); also the file's extra columns."""
    by_name = {c.lower().strip(): c for c in file_columns}
    mapping = {c.name: by_name[c.file_name.lower()] for c in load.spec.columns if c.file_name.lower() in by_name}
    used = set(mapping.values())
    extra = [c for c in file_columns if c not in used]
    if extra:
        load.report.extra_columns[str(path)] = extra
    return mapping, extra


def missing_required(load: PartitionLoad, mapping: dict[str, str]) -> list[str]:
    """Required columns a file lacks and no declared default fills."""
    return [c.name for c in load.spec.columns if c.required and c.name not in mapping and c.default is None]


def column_values(load: PartitionLoad, path: Path, mapping: dict[str, str], access: Access) -> dict[str, str]:
    """SQL expression of each declared column: the file's value (value-mapped), else the declared default."""
    columns = {c.name: c for c in load.spec.columns}
    values = {name: _mapped(access(file_column, columns[name]), columns[name]) for name, file_column in mapping.items()}
    constants = {c.name: default_sql(c) for c in load.spec.columns
                 if c.name not in values and c.default is not None and c.default_from is None}
    values |= constants
    copied = {c.name: f"CAST({values[c.default_from]} AS {c.type})" for c in load.spec.columns
              if c.name not in values and c.default_from in values}
    values |= copied
    if constants or copied:
        load.report.defaulted_columns[str(path)] = sorted([*constants, *copied])
    return values


def default_sql(column: ColumnSpec) -> str:
    """A constant default as a typed SQL literal."""
    value = column.default
    if column.type == "VARCHAR[]":
        return f"[{', '.join(lit(v) for v in value)}]::VARCHAR[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else (
        value.isoformat() if isinstance(value, date) else str(value))
    return f"CAST({lit(text)} AS {column.type})"


def missing_detail(load: PartitionLoad, path: Path, missing: list[str], found: list[str]) -> str:
    """Why a file's rows are quarantined as `missing_column`: the headers looked for and the ones found, and a
    hint when the found ones look mis-decoded (a file in another encoding than the declaration says)."""
    declared = {c.name: c for c in load.spec.columns}
    looked = ", ".join(f"{name} (header {declared[name].file_name!r})" if declared[name].file_name != name else name
                       for name in missing)
    detail = f"{path.name} lacks required column(s) {looked}; its columns are {', '.join(map(repr, found)) or 'none'}"
    if any(mark in header for header in found for mark in ("\ufffd", "Ã", "Â")):
        detail += (f"; the headers look mis-decoded: is the file really {load.spec.csv.encoding}? (csv.encoding in "
                   "the declaration)")
    return detail


def load_or_quarantine(load: PartitionLoad, path: Path, source: str, row: str, payload: str, mapping: dict[str, str],
                       extra: list[str], access: Access, check_casts: bool) -> None:
    """Insert the rows of one file; a missing required column or a failed cast quarantines the row."""
    missing = missing_required(load, mapping)
    if missing:
        detail = missing_detail(load, path, missing, [*mapping.values(), *extra])
        load.unparsed(path, row, "NULL::BIGINT", "'missing_column'", lit(missing[0]), lit(detail), payload, source)
        return
    raw = column_values(load, path, mapping, access)
    declared = {c.name: c for c in load.spec.columns}
    failed = [
        f"CASE WHEN {raw[name]} IS NOT NULL AND TRY_CAST({raw[name]} AS {declared[name].type}) IS NULL "
        f"THEN {lit(name)} END"
        for name in mapping
        if check_casts
    ]
    where = ""
    if failed:
        failures = f"list_filter([{', '.join(failed)}], lambda x: x IS NOT NULL)"
        load.unparsed(
            path, row, "NULL::BIGINT", "'type'", "f[1]",
            "'value does not cast to the declared type: ' || array_to_string(f, ', ')", payload,
            f"(SELECT {failures} AS f, * FROM {source}) t WHERE len(f) > 0",
        )
        where = f" WHERE len({failures}) = 0"
    values = [
        (f"TRY_CAST({raw[c.name]} AS {c.type})" if check_casts else raw[c.name]) if c.name in raw else f"NULL::{c.type}"
        for c in load.spec.columns
    ]
    extra_json = "json_object(" + ", ".join(f"{lit(c)}, {access(c, None)}" for c in extra) + ")" if extra else "NULL"
    load.insert_rows(path, values, row, extra_json, source + where)


# -- CSV -------------------------------------------------------------------------------------------
def csv_file(load: PartitionLoad, path: Path) -> None:
    """CSV read with DuckDB's typed reader; unparseable lines come back from its rejects table."""
    options = load.spec.csv
    with _readable(path, options.encoding) as (readable, encoding):
        header = _csv_header(readable, options, encoding)
        if header is None:
            return
        mapping, extra = match_columns(load, path, header)
        complete = not missing_required(load, mapping)
        declared = {mapping[c.name]: c.type for c in load.spec.columns if c.name in mapping}
        types = {h: declared.get(h, "VARCHAR") if complete else "VARCHAR" for h in header}
        _drop_rejects(load.con)
        source = f"read_csv({lit(readable)}, {csv_settings(options, types, encoding)}) t"
        try:  # one INSERT per file, in file order: rows are numbered from their position later (`number_rows`)
            load_or_quarantine(load, path, source, "NULL::BIGINT", "to_json(t)::VARCHAR", mapping, extra,
                               lambda column, _: f"t.{q(column)}", check_casts=False)
        except Exception as exc:  # duckdb raises several error classes for a file it cannot decode
            if "encod" in str(exc).lower():
                raise IngestError(f"{load.spec.name}: cannot read {path} as {options.encoding} (rule: encoding; "
                                  f"csv.encoding in the declaration): {_first_line(exc)}") from exc
            raise
        csv_rejects(load, path, readable, mapping)  # inside: byte positions refer to the file DuckDB read


def csv_settings(options: CsvOptions, types: dict[str, str], encoding: str) -> str:
    """The `read_csv` options of a declaration (typed columns, no sniffing, rejects kept)."""
    struct = "{" + ", ".join(f"{lit(h)}: {lit(t)}" for h, t in types.items()) + "}"
    settings = [
        f"columns={struct}", "header=true", "auto_detect=false", f"delim={lit(options.delimiter)}",
        f"quote={lit(options.quote)}", f"escape={lit(options.escape)}",
        "store_rejects=true", "rejects_table='_rejects'", "rejects_scan='_rejects_scan'",
    ]
    if encoding != "utf-8":  # DuckDB's default; naming it anyway costs ~15 % more parsing
        settings.append(f"encoding={lit(encoding)}")
    if options.null_values:
        settings.append(f"nullstr=[{', '.join(lit(v) for v in options.null_strings)}]")
    if options.timestamp_format:
        settings.append(f"timestampformat={lit(options.timestamp_format)}")
    if options.date_format:
        settings.append(f"dateformat={lit(options.date_format)}")
    return ", ".join(settings)


def csv_rejects(load: PartitionLoad, path: Path, readable: Path, mapping: dict[str, str]) -> None:
    """Quarantine the records DuckDB's reader rejected (one row per record, whatever the number of errors),
    with their record number (`source_row`, as loaded rows have it) and the line an editor shows
    (`source_line`: DuckDB counts records, so after a quoted value over several lines its count is behind)."""
    records = load.con.execute("SELECT line, min(line_byte_position) FROM _rejects GROUP BY line ORDER BY line").fetchall()
    if not records:
        return
    load.rejected_records[str(path)] = [line - 1 for line, _ in records]  # the header is DuckDB's line 1
    lines = _lines_at(readable, [position for _, position in records])
    rules = " ".join(f"WHEN list_contains(kinds, {lit(k)}) THEN {lit(v)}" for k, v in CSV_REJECT_RULES.items())
    renames = " ".join(f"WHEN {lit(file_column)} THEN {lit(name)}" for name, file_column in mapping.items())
    declared_name = f"CASE min(column_name) {renames} ELSE min(column_name) END" if renames else "min(column_name)"
    load.con.execute("CREATE OR REPLACE TEMP TABLE _reject_lines AS SELECT unnest($1::UBIGINT[]) AS line, "
                     "unnest($2::BIGINT[]) AS file_line", [[line for line, _ in records], lines])
    load.unparsed(
        path, "r.line::BIGINT - 1", "l.file_line", f"CASE {rules} ELSE 'malformed_row' END", "column_name", "detail",
        "payload",
        f"(SELECT line, list(DISTINCT error_type::VARCHAR) AS kinds, {declared_name} AS column_name, "
        "string_agg(error_message, '; ') AS detail, any_value(csv_line) AS payload FROM _rejects GROUP BY line) r "
        "JOIN _reject_lines l USING (line)",
    )
    load.con.execute("DROP TABLE _reject_lines")


def _lines_at(path: Path, positions: list[int]) -> list[int]:
    """The 1-based line of each byte position (ascending) in `path`, in one pass over the file."""
    lines, newlines, offset, i = [], 0, 0, 0
    with path.open("rb") as handle:
        while i < len(positions) and (chunk := handle.read(1 << 22)):
            while i < len(positions) and positions[i] < offset + len(chunk):
                lines.append(newlines + chunk.count(b"\n", 0, positions[i] - offset) + 1)
                i += 1
            newlines += chunk.count(b"\n")
            offset += len(chunk)
    return lines + [newlines + 1] * (len(positions) - i)


@contextmanager
def _readable(path: Path, encoding: str) -> Iterator[tuple[Path, str]]:
    """The file DuckDB reads and the encoding it reads it in: the file itself, or a UTF-8 copy of a file in an
    encoding DuckDB does not read (bytes that do not decode are kept, so DuckDB rejects just their line)."""
    if encoding in DUCKDB_ENCODINGS:
        yield path, encoding
        return
    with tempfile.TemporaryDirectory(prefix="factory-transcode-") as folder:
        copy = Path(folder) / path.name
        decoder = codecs.getincrementaldecoder(PYTHON_CODECS[encoding])(errors="surrogateescape")
        with path.open("rb") as source, copy.open("w", encoding="utf-8", errors="surrogateescape", newline="") as target:
            while chunk := source.read(1 << 22):
                target.write(decoder.decode(chunk))
            target.write(decoder.decode(b"", final=True))
        yield copy, "utf-8"


def _csv_header(path: Path, options: CsvOptions, encoding: str) -> list[str] | None:
    """The header row of a CSV file, or None for an empty file."""
    with path.open(encoding=PYTHON_CODECS[encoding], errors="replace", newline="") as handle:
        row = next(csv.reader(handle, delimiter=options.delimiter, quotechar=options.quote), None)
    if not row:
        return None
    row[0] = row[0].lstrip("\ufeff")
    return row


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- Parquet and JSON Lines ------------------------------------------------------------------------
def parquet_file(load: PartitionLoad, path: Path) -> None:
    """Parquet read by column name; values of another type are cast, and failed casts quarantined."""
    try:
        described = load.con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(path)})").fetchall()
    except Exception as exc:  # duckdb raises several error classes for a broken file
        raise IngestError(f"{load.spec.name}: cannot read Parquet file {path} (rule: readable_file): {exc}") from exc
    file_types = {row[0]: row[1] for row in described}
    mapping, extra = match_columns(load, path, list(file_types))
    payload = "json_object(" + ", ".join(f"{lit(c)}, t.{q(c)}" for c in file_types) + ")::VARCHAR"
    mismatched = any(file_types[mapping[c.name]] != c.type for c in load.spec.columns if c.name in mapping)
    load_or_quarantine(
        load, path, f"read_parquet({lit(path)}, file_row_number=true) t", "file_row_number + 1", payload, mapping,
        extra, lambda column, _: f"t.{q(column)}", check_casts=mismatched,
    )


def jsonl_file(load: PartitionLoad, path: Path) -> None:
    """JSON Lines read line by line, so a broken line is quarantined with its number."""
    con = load.con
    _drop_rejects(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _lines AS SELECT * FROM (SELECT row_number() OVER () AS line_no, line "
        f"FROM read_csv({lit(path)}, columns={{'line': 'VARCHAR'}}, header=false, auto_detect=false, "
        "delim=E'\\x1f', quote='', escape='', store_rejects=true, "
        "rejects_table='_rejects', rejects_scan='_rejects_scan')) WHERE line IS NOT NULL AND trim(line) <> ''"
    )
    invalid = "NOT CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END"
    load.unparsed(path, "NULL::BIGINT", "line_no", "'invalid_json'", "NULL", "'line is not a JSON object'",
                  "line", f"_lines WHERE {invalid}")
    load.unparsed(path, "NULL::BIGINT", "line::BIGINT", "'encoding'", "NULL", "string_agg(error_message, '; ')",
                  "any_value(csv_line)", "_rejects GROUP BY line")
    con.execute(f"DELETE FROM _lines WHERE {invalid}")
    keys = [r[0] for r in con.execute("SELECT DISTINCT unnest(json_keys(line)) FROM _lines ORDER BY 1").fetchall()]
    if not keys:
        return
    mapping, extra = match_columns(load, path, keys)

    def access(key: str, column: ColumnSpec | None) -> str:
        json_path = lit('$."' + key.replace('"', '\\"') + '"')
        if column is None or column.type.endswith("[]"):  # JSON null is SQL NULL, not a failed cast
            return f"CASE WHEN json_type(line, {json_path}) <> 'NULL' THEN json_extract(line, {json_path}) END"
        return f"json_extract_string(line, {json_path})"

    load_or_quarantine(load, path, "_lines", "line_no", "line", mapping, extra, access, check_casts=True)


def _mapped(expression: str, column: ColumnSpec) -> str:
    """Apply a column's declared value map (file value -> declared value) to an SQL expression."""
    if not column.value_map:
        return expression
    cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in column.value_map.items())
    return f"(CASE {expression}::VARCHAR {cases} ELSE {expression} END)"


def _drop_rejects(con: Any) -> None:
    """DuckDB keeps the last rejects table when a read has none: clear it before every read."""
    con.execute("DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _rejects_scan")
