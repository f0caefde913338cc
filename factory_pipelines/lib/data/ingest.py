"""Load one day of landing files into `raw.<source>`, quarantining every row that cannot be used.

Schema on read: files are read against the declared source schema. Rows that do not parse (malformed
CSV lines, wrong types, bad encodings, invalid JSON, a file missing a required column) and rows that
break a row rule (nulls in required fields, enums, ranges, patterns, lengths, duplicate keys) go to
`raw.quarantine` with file, row or line, raw payload and the rule broken. Columns a file has beyond the
declaration are kept as JSON in `_extra`, so nothing is dropped. The load of a partition is one
transaction that first deletes the partition: re-running replaces it and never duplicates.

Each file is read by DuckDB's own readers into an in-memory staging table (CSV rows are numbered by
their position there, which costs nothing, where a window over the read would serialise it). The rules
run on the stage and only good rows are written to the raw table: deleting rows inside the load's
transaction would make its commit rewrite the new data.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from factory_pipelines.lib.data.sources import ColumnSpec, SourceSpec
from factory_pipelines.lib.sql import lit, q

LINEAGE_COLUMNS = {
    "_partition": "DATE NOT NULL",
    "_source_file": "VARCHAR",
    "_source_row": "BIGINT",
    "_extra": "JSON",
    "_run_id": "VARCHAR",
    "_loaded_at": "TIMESTAMPTZ",
}
QUARANTINE_TABLE = "raw.quarantine"
QUARANTINE_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
    source VARCHAR NOT NULL, partition DATE NOT NULL, source_file VARCHAR, source_row BIGINT,
    source_line BIGINT, rule VARCHAR NOT NULL, column_name VARCHAR, detail VARCHAR, payload VARCHAR,
    run_id VARCHAR, quarantined_at TIMESTAMPTZ DEFAULT current_timestamp)
"""
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


class IngestError(RuntimeError):
    """A partition cannot be loaded at all (missing folder, unreadable file); names file and rule."""


@dataclass
class LoadReport:
    """What one partition load read, kept and quarantined; `rows_read` always reconciles."""

    source: str
    partition: date
    files: list[str]
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    data_version: str = ""

    @property
    def quarantine_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


def raw_table_ddl(spec: SourceSpec) -> str:
    columns = [f"{q(c.name)} {c.type}" for c in spec.columns]
    columns += [f"{name} {kind}" for name, kind in LINEAGE_COLUMNS.items()]
    return f"CREATE TABLE IF NOT EXISTS {spec.table} ({', '.join(columns)})"


def ensure_tables(con: Any, spec: SourceSpec) -> None:
    """Create the raw and quarantine tables; add columns a source declaration gained since."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(QUARANTINE_DDL)
    con.execute(raw_table_ddl(spec))
    existing = {
        row[0]: row[1]
        for row in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw' "
            "AND table_name = ?",
            [spec.name],
        ).fetchall()
    }
    for column in spec.columns:
        if column.name not in existing:
            con.execute(f"ALTER TABLE {spec.table} ADD COLUMN {q(column.name)} {column.type}")
        elif existing[column.name] != column.type:
            raise IngestError(
                f"{spec.table}.{column.name} is {existing[column.name]} but the declaration says "
                f"{column.type}: migrate the table or wipe it (`factory clean`)"
            )


def partition_files(spec: SourceSpec, landing_dir: Path, partition: date) -> list[Path]:
    """The files of one partition; a missing folder or one without matching files is an error."""
    folder = Path(landing_dir) / spec.name / partition.isoformat()
    if not folder.is_dir():
        raise IngestError(
            f"{spec.name}: no landing folder {folder} for partition {partition} "
            f"(rule: every partition needs its folder; an empty day is a folder with an empty file)"
        )
    files = sorted(p for p in folder.glob(spec.file_pattern) if p.is_file())
    if not files:
        raise IngestError(f"{spec.name}: {folder} has no files matching {spec.file_pattern!r}")
    return files


def data_version(spec: SourceSpec, files: list[Path]) -> str:
    """Content hash of a partition: its files' names and bytes plus the declaration read against."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def load_partition(con: Any, spec: SourceSpec, landing_dir: Path, partition: date, run_id: str) -> LoadReport:
    """Replace one partition of `raw.<source>` and its quarantine rows; returns the reconciled counts."""
    files = partition_files(spec, landing_dir, partition)
    with ThreadPoolExecutor(max_workers=1) as pool:  # hashing the files overlaps with DuckDB's reads
        version = pool.submit(data_version, spec, files)
        report = _load(con, spec, files, partition, run_id)
        report.data_version = version.result()
    return report


def _load(con: Any, spec: SourceSpec, files: list[Path], partition: date, run_id: str) -> LoadReport:
    report = LoadReport(spec.name, partition, [str(p) for p in files])
    con.execute("SET TimeZone = 'UTC'")  # zoned timestamps in files become UTC, whatever the machine's zone
    ensure_tables(con, spec)
    loader = _Loader(con, spec, partition, run_id, report)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {spec.table} WHERE _partition = ?", [partition])
        con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND partition = ?", [spec.name, partition])
        loader.create_stage()
        for path in files:
            {"csv": loader.csv_file, "parquet": loader.parquet_file, "jsonl": loader.jsonl_file}[spec.format](path)
        loader.apply_row_rules()
        loader.reconcile()
        con.execute("DROP TABLE _stage; DROP TABLE IF EXISTS _bad")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


class _Loader:
    """The per-format readers and the row-rule pass of one partition load."""

    def __init__(self, con: Any, spec: SourceSpec, partition: date, run_id: str, report: LoadReport):
        self.con, self.spec, self.partition, self.run_id, self.report = con, spec, partition, run_id, report
        self.parsed_rows = 0  # rows read into the stage, before row rules
        self.unparsed_rows = 0  # rows quarantined while reading, never staged

    # -- helpers -------------------------------------------------------------------------------
    def create_stage(self) -> None:
        """A temporary table of the day's parsed rows; rules run on it and only good rows reach raw."""
        columns = ", ".join(f"{q(c.name)} {c.type}" for c in self.spec.columns)
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _stage ({columns}, _source_file VARCHAR, _source_row BIGINT, _extra JSON)"
        )

    def _insert_stage(self, path: Path, values: list[str], row_expr: str, extra: str, source: str) -> None:
        sql = f"INSERT INTO _stage SELECT {', '.join(values)}, {lit(path)}, {row_expr}, {extra} FROM {source}"
        self.parsed_rows += self.con.execute(sql).fetchone()[0]

    def _quarantine(self, select_sql: str) -> int:
        """Insert rows shaped (source_file, source_row, source_line, rule, column_name, detail, payload)."""
        return self.con.execute(
            f"INSERT INTO {QUARANTINE_TABLE} (source, partition, source_file, source_row, source_line, rule, "
            f"column_name, detail, payload, run_id) SELECT {lit(self.spec.name)}, DATE {lit(self.partition)}, "
            f"source_file, source_row, source_line, rule, column_name, detail, payload, {lit(self.run_id)} "
            f"FROM ({select_sql})"
        ).fetchone()[0]

    def _unparsed(self, path: Path, row: str, line: str, rule: str, column: str, detail: str, payload: str,
                  source: str) -> None:
        """Quarantine rows that never reached the stage (they count as read, not loaded)."""
        self.unparsed_rows += self._quarantine(
            f"SELECT {lit(path)} AS source_file, {row} AS source_row, {line} AS source_line, {rule} AS rule, "
            f"{column} AS column_name, {detail} AS detail, {payload} AS payload FROM {source}"
        )

    def _match_columns(self, path: Path, file_columns: list[str]) -> tuple[dict[str, str], list[str]]:
        """Map declared column -> file column (case-insensitive); also the file's extra columns."""
        by_name = {c.lower().strip(): c for c in file_columns}
        mapping = {c.name: by_name[c.file_name.lower()] for c in self.spec.columns if c.file_name.lower() in by_name}
        used = set(mapping.values())
        extra = [c for c in file_columns if c not in used]
        if extra:
            self.report.extra_columns[str(path)] = extra
        return mapping, extra

    def _load_or_quarantine(
        self, path: Path, source: str, row: str, payload: str, mapping: dict[str, str], extra: list[str],
        access: Callable[[str, ColumnSpec | None], str], check_casts: bool,
    ) -> None:
        """Insert the rows of one file; a missing required column or a failed cast quarantines the row."""
        missing = [c.name for c in self.spec.columns if c.required and c.name not in mapping]
        if missing:
            detail = f"{path.name} lacks required column(s) {', '.join(missing)}"
            self._unparsed(path, row, "NULL::BIGINT", "'missing_column'", lit(missing[0]), lit(detail), payload, source)
            return
        columns = {c.name: c for c in self.spec.columns}
        raw = {name: _mapped(access(file_column, columns[name]), columns[name]) for name, file_column in mapping.items()}
        failed = [
            f"CASE WHEN {raw[name]} IS NOT NULL AND TRY_CAST({raw[name]} AS {columns[name].type}) IS NULL "
            f"THEN {lit(name)} END"
            for name in mapping
            if check_casts
        ]
        where = ""
        if failed:
            failures = f"list_filter([{', '.join(failed)}], lambda x: x IS NOT NULL)"
            self._unparsed(
                path, row, "NULL::BIGINT", "'type'", "f[1]",
                "'value does not cast to the declared type: ' || array_to_string(f, ', ')", payload,
                f"(SELECT {failures} AS f, * FROM {source}) t WHERE len(f) > 0",
            )
            where = f" WHERE len({failures}) = 0"
        values = [
            (f"TRY_CAST({raw[c.name]} AS {c.type})" if check_casts else raw[c.name]) if c.name in raw else f"NULL::{c.type}"
            for c in self.spec.columns
        ]
        extra_json = "json_object(" + ", ".join(f"{lit(c)}, {access(c, None)}" for c in extra) + ")" if extra else "NULL"
        self._insert_stage(path, values, row, extra_json, source + where)

    # -- readers -------------------------------------------------------------------------------
    def csv_file(self, path: Path) -> None:
        """CSV read with DuckDB's typed reader; unparseable lines come back from its rejects table."""
        options = self.spec.csv
        header = _csv_header(path, options.delimiter, options.quote)
        if header is None:
            self.report.empty_files.append(str(path))
            return
        mapping, extra = self._match_columns(path, header)
        declared = {mapping[c.name]: c.type for c in self.spec.columns if c.name in mapping}
        complete = all(c.name in mapping for c in self.spec.columns if c.required)
        types = {h: declared.get(h, "VARCHAR") if complete else "VARCHAR" for h in header}
        settings = [
            "header=true", "auto_detect=false", f"delim={lit(options.delimiter)}", f"quote={lit(options.quote)}",
            f"escape={lit(options.escape)}", "store_rejects=true",
            "rejects_table='_rejects'", "rejects_scan='_rejects_scan'",
        ]
        if options.timestamp_format:
            settings.append(f"timestampformat={lit(options.timestamp_format)}")
        if options.date_format:
            settings.append(f"dateformat={lit(options.date_format)}")
        struct = "{" + ", ".join(f"{lit(h)}: {lit(t)}" for h, t in types.items()) + "}"
        _drop_rejects(self.con)
        source = f"read_csv({lit(path)}, columns={struct}, {', '.join(settings)}) t"
        self._load_or_quarantine(  # rows are numbered below from their position in the stage
            path, source, "NULL::BIGINT", "to_json(t)::VARCHAR", mapping, extra,
            lambda column, _: f"t.{q(column)}", check_casts=False,
        )
        # One INSERT per file keeps file order in the stage: the n-th record has the n-th rowid of the file.
        self.con.execute(
            "UPDATE _stage SET _source_row = rowid - (SELECT min(rowid) FROM _stage WHERE _source_file = $f) + 1 "
            "WHERE _source_file = $f AND _source_row IS NULL", {"f": str(path)}
        )
        rules = " ".join(f"WHEN list_contains(kinds, {lit(k)}) THEN {lit(v)}" for k, v in CSV_REJECT_RULES.items())
        renames = " ".join(f"WHEN {lit(file_column)} THEN {lit(name)}" for name, file_column in mapping.items())
        declared_name = f"CASE min(column_name) {renames} ELSE min(column_name) END" if renames else "min(column_name)"
        self._unparsed(
            path, "NULL::BIGINT", "line::BIGINT", f"CASE {rules} ELSE 'malformed_row' END", "column_name", "detail",
            "payload",
            f"(SELECT line, list(DISTINCT error_type::VARCHAR) AS kinds, {declared_name} AS column_name, "
            "string_agg(error_message, '; ') AS detail, any_value(csv_line) AS payload FROM _rejects GROUP BY line)",
        )

    def parquet_file(self, path: Path) -> None:
        """Parquet read by column name; values of another type are cast, and failed casts quarantined."""
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(path)})").fetchall()
        except Exception as exc:  # duckdb raises several error classes for a broken file
            raise IngestError(f"{self.spec.name}: cannot read Parquet file {path} (rule: readable_file): {exc}") from exc
        file_types = {row[0]: row[1] for row in described}
        mapping, extra = self._match_columns(path, list(file_types))
        payload = "json_object(" + ", ".join(f"{lit(c)}, t.{q(c)}" for c in file_types) + ")::VARCHAR"
        mismatched = any(file_types[mapping[c.name]] != c.type for c in self.spec.columns if c.name in mapping)
        self._load_or_quarantine(
            path, f"read_parquet({lit(path)}, file_row_number=true) t", "file_row_number + 1", payload, mapping,
            extra, lambda column, _: f"t.{q(column)}", check_casts=mismatched,
        )

    def jsonl_file(self, path: Path) -> None:
        """JSON Lines read line by line, so a broken line is quarantined with its number."""
        _drop_rejects(self.con)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _lines AS SELECT * FROM (SELECT row_number() OVER () AS line_no, line "
            f"FROM read_csv({lit(path)}, columns={{'line': 'VARCHAR'}}, header=false, auto_detect=false, "
            "delim=E'\\x1f', quote='', escape='', store_rejects=true, "
            "rejects_table='_rejects', rejects_scan='_rejects_scan')) WHERE line IS NOT NULL AND trim(line) <> ''"
        )
        invalid = "NOT CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END"
        self._unparsed(path, "NULL::BIGINT", "line_no", "'invalid_json'", "NULL", "'line is not a JSON object'",
                       "line", f"_lines WHERE {invalid}")
        self._unparsed(path, "NULL::BIGINT", "line::BIGINT", "'encoding'", "NULL", "string_agg(error_message, '; ')",
                       "any_value(csv_line)", "_rejects GROUP BY line")
        self.con.execute(f"DELETE FROM _lines WHERE {invalid}")
        keys = [r[0] for r in self.con.execute("SELECT DISTINCT unnest(json_keys(line)) FROM _lines ORDER BY 1").fetchall()]
        if not keys:
            self.report.empty_files.append(str(path))
            return
        mapping, extra = self._match_columns(path, keys)

        def access(key: str, column: ColumnSpec | None) -> str:
            json_path = lit('$."' + key.replace('"', '\\"') + '"')
            if column is None or column.type.endswith("[]"):  # JSON null is SQL NULL, not a failed cast
                return f"CASE WHEN json_type(line, {json_path}) <> 'NULL' THEN json_extract(line, {json_path}) END"
            return f"json_extract_string(line, {json_path})"

        self._load_or_quarantine(path, "_lines", "line_no", "line", mapping, extra, access, check_casts=True)

    # -- row rules -----------------------------------------------------------------------------
    def apply_row_rules(self) -> None:
        """Quarantine staged rows that break a declared rule, and later copies of a key; load the rest.

        Cheap filters first: the rules as one WHERE clause (labels built for the few bad rows only), then
        keys seen twice by a hash aggregate, ranked by position only where they repeat.
        """
        spec = self.spec
        checks = [check for column in spec.columns for check in _column_checks(column)]
        if checks:
            labels = ", ".join(f"CASE WHEN coalesce({cond}, false) THEN {label} END" for cond, label in checks)
            broken = " OR ".join(f"coalesce({cond}, false)" for cond, _ in checks)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _bad AS SELECT rowid AS id, list_filter([{labels}], "
                f"lambda x: x IS NOT NULL) AS v FROM _stage WHERE {broken}"
            )
        else:
            self.con.execute("CREATE OR REPLACE TEMP TABLE _bad (id BIGINT, v VARCHAR[])")
        key = ", ".join(q(k) for k in spec.primary_key)
        key_text = " || '/' || ".join(f"{q(k)}::VARCHAR" for k in spec.primary_key)
        self.con.execute(
            f"""
            INSERT INTO _bad
            WITH candidates AS (
                SELECT rowid AS id, _source_file, _source_row, {key} FROM _stage WHERE rowid NOT IN (SELECT id FROM _bad)
            ), repeated AS (
                SELECT {key} FROM candidates GROUP BY {key} HAVING count(*) > 1
            ), ranked AS (
                SELECT id, {key_text} AS key_text, row_number() OVER w AS n,
                       first_value(_source_file || ' row ' || _source_row) OVER w AS first_seen
                FROM candidates SEMI JOIN repeated USING ({key})
                WINDOW w AS (PARTITION BY {key} ORDER BY _source_file, _source_row)
            )
            SELECT id, ['duplicate_key|{spec.primary_key[0]}|key ' || key_text || ' already loaded from ' || first_seen]
            FROM ranked WHERE n > 1
            """
        )
        payload_columns = ", ".join(f"{lit(c.name)}, s.{q(c.name)}" for c in spec.columns)
        self._quarantine(
            f"SELECT s._source_file AS source_file, s._source_row AS source_row, NULL::BIGINT AS source_line, "
            f"split_part(b.v[1], '|', 1) AS rule, split_part(b.v[1], '|', 2) AS column_name, "
            f"array_to_string(list_transform(b.v, lambda x: split_part(x, '|', 1) || '(' || split_part(x, '|', 2) "
            f"|| '): ' || split_part(x, '|', 3)), '; ') AS detail, "
            f"json_object({payload_columns}, '_extra', s._extra)::VARCHAR AS payload "
            f"FROM _stage s JOIN _bad b ON s.rowid = b.id"
        )
        names = ", ".join(q(c.name) for c in spec.columns)
        self.con.execute("SET preserve_insertion_order = false")  # rows carry their file and row already
        self.con.execute(
            f"INSERT INTO {spec.table} ({names}, {', '.join(LINEAGE_COLUMNS)}) "
            f"SELECT {', '.join(f's.{q(c.name)}' for c in spec.columns)}, DATE {lit(self.partition)}, s._source_file, "
            f"s._source_row, s._extra, {lit(self.run_id)}, current_timestamp FROM _stage s "
            f"WHERE s.rowid NOT IN (SELECT id FROM _bad)"
        )
        self.con.execute("RESET preserve_insertion_order")

    def reconcile(self) -> None:
        """Count what landed where; rows read must equal rows loaded plus rows quarantined."""
        report, spec = self.report, self.spec
        report.rows_loaded = self.con.execute(
            f"SELECT count(*) FROM {spec.table} WHERE _partition = ?", [self.partition]
        ).fetchone()[0]
        by_rule = self.con.execute(
            f"SELECT rule, count(*) FROM {QUARANTINE_TABLE} WHERE source = ? AND partition = ? GROUP BY rule ORDER BY rule",
            [spec.name, self.partition],
        ).fetchall()
        report.quarantined_by_rule = {rule: n for rule, n in by_rule}
        report.rows_quarantined = sum(report.quarantined_by_rule.values())
        report.rows_read = self.parsed_rows + self.unparsed_rows
        if report.rows_read != report.rows_loaded + report.rows_quarantined:
            raise IngestError(
                f"{spec.name} {self.partition}: counts do not reconcile: read {report.rows_read}, loaded "
                f"{report.rows_loaded}, quarantined {report.rows_quarantined}"
            )


def _mapped(expression: str, column: ColumnSpec) -> str:
    """Apply a column's declared value map (file value -> declared value) to an SQL expression."""
    if not column.value_map:
        return expression
    cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in column.value_map.items())
    return f"(CASE {expression}::VARCHAR {cases} ELSE {expression} END)"


def _column_checks(column: ColumnSpec) -> list[tuple[str, str]]:
    """(condition, label) pairs: the condition holds when a value breaks a declared rule, and the label is
    an SQL expression 'rule|column|detail' saying which and why."""
    name, c = column.name, q(column.name)
    checks: list[tuple[str, str]] = []

    def check(condition: str, rule: str, detail: str) -> None:
        checks.append((condition, lit(f"{rule}|{name}|{detail}")))

    if column.required:
        empty = f" OR {c} = ''" if column.type == "VARCHAR" else ""
        check(f"{c} IS NULL{empty}", "not_null", "required value is null, empty or missing")
    if column.enum is not None:
        allowed = ", ".join(lit(v) for v in column.enum)
        checks.append((
            f"{c}::VARCHAR NOT IN ({allowed})",
            f"{lit(f'enum|{name}|')} || {c}::VARCHAR || {lit(f' not in {column.enum}')}",
        ))
    if column.min is not None:
        check(f"{c} < {column.min}", "range", f"below minimum {column.min}")
    if column.max is not None:
        check(f"{c} > {column.max}", "range", f"above maximum {column.max}")
    if column.pattern is not None:
        check(f"NOT regexp_full_match({c}::VARCHAR, {lit(column.pattern)})", "pattern", f"does not match {column.pattern}")
    if column.max_length is not None:
        check(f"length({c}::VARCHAR) > {column.max_length}", "max_length", f"longer than {column.max_length} characters")
    return checks


def _drop_rejects(con: Any) -> None:
    """DuckDB keeps the last rejects table when a read has none: clear it before every read."""
    con.execute("DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _rejects_scan")


def _csv_header(path: Path, delimiter: str, quote: str) -> list[str] | None:
    """The header row of a CSV file, or None for an empty file."""
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        row = next(csv.reader(handle, delimiter=delimiter, quotechar=quote), None)
    if not row:
        return None
    row[0] = row[0].lstrip("\ufeff")
    return row
