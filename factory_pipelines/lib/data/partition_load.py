"""The state of one partition load: its report, and the writers of raw and quarantine rows.

`ingest.load_partition` creates one `PartitionLoad` per partition; the readers (`readers.py`) insert each
file's parsed rows into the raw table (or straight into quarantine when a row cannot be parsed), the row
rules (`row_rules.py`) then move rule breakers from the raw table to quarantine, and `reconcile` proves
that every record read ended in exactly one of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from factory_pipelines.lib.data.sources import SourceSpec
from factory_pipelines.lib.sql import lit, q

QUARANTINE_TABLE = "raw.quarantine"
QUARANTINE_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
    source VARCHAR NOT NULL, partition DATE NOT NULL, source_file VARCHAR, source_row BIGINT,
    source_line BIGINT, rule VARCHAR NOT NULL, column_name VARCHAR, detail VARCHAR, payload VARCHAR,
    run_id VARCHAR, quarantined_at TIMESTAMPTZ DEFAULT current_timestamp)
"""
LINEAGE_COLUMNS = {
    "_partition": "DATE NOT NULL",
    "_source_file": "VARCHAR",
    "_source_row": "BIGINT",
    "_extra": "JSON",
    "_run_id": "VARCHAR",
    "_loaded_at": "TIMESTAMPTZ",
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
    defaulted_columns: dict[str, list[str]] = field(default_factory=dict)
    out_of_partition: dict[str, Any] = field(default_factory=dict)  # warn mode: loaded rows of other days
    data_version: str = ""

    @property
    def quarantine_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


class PartitionLoad:
    """One partition being loaded into `raw.<source>`: the counts, and the raw and quarantine writers."""

    def __init__(self, con: Any, spec: SourceSpec, partition: date, run_id: str, report: LoadReport):
        self.con, self.spec, self.partition, self.run_id, self.report = con, spec, partition, run_id, report
        self.parsed_rows = 0  # rows inserted into the raw table by the readers, before row rules
        self.unparsed_rows = 0  # rows quarantined while reading, never in the raw table
        self.unnumbered: dict[str, tuple[int, int]] = {}  # CSV file -> its rows' first and last row id
        self.rejected_records: dict[str, list[int]] = {}  # CSV file -> the record numbers its reader rejected

    def where(self, alias: str = "") -> str:
        """SQL condition selecting this partition's rows of the raw table."""
        return f"{alias}_partition = DATE {lit(self.partition)}"

    def insert_rows(self, path: Path, values: list[str], row_expr: str, extra: str, source: str) -> None:
        """Insert parsed rows (values in declaration order) with their lineage; `row_expr` NULL numbers them
        later from their position (`number_rows`). `_loaded_at` stays NULL until the row rules have run: a
        row without it is not loaded yet (staging skips it, should a load die between its transactions)."""
        names = ", ".join(q(c.name) for c in self.spec.columns)
        sql = (f"INSERT INTO {self.spec.table} ({names}, {', '.join(LINEAGE_COLUMNS)}) SELECT {', '.join(values)}, "
               f"DATE {lit(self.partition)}, {lit(path)}, {row_expr}, {extra}, {lit(self.run_id)}, NULL FROM {source}")
        self.parsed_rows += self.con.execute(sql).fetchone()[0]

    def find_unnumbered(self) -> None:
        """Where each CSV file's rows (inserted without a number) start in the table.

        Each file is one INSERT with insertion order preserved, so its rows hold consecutive row ids in file
        order: a row's number is its row id minus its file's first one, plus one (`row_number`).
        """
        table = self.spec.table
        self.unnumbered = {}
        for path, first, last, rows in self.con.execute(
            f"SELECT _source_file, min(rowid), max(rowid), count(*) FROM {table} WHERE {self.where()} "
            f"AND _source_row IS NULL GROUP BY _source_file"
        ).fetchall():
            if last - first + 1 != rows:  # never expected: the numbering would be wrong, so refuse it
                raise IngestError(f"{self.spec.name}: rows of {path} are not consecutive in {table} "
                                  f"({rows} rows over row ids {first}..{last}): cannot number them")
            self.unnumbered[path] = (first, last)
        for path in [p for p in self.unnumbered if self.rejected_records.get(p)]:
            self._number_around_rejects(path)

    def _number_around_rejects(self, path: str) -> None:
        """Number the rows of a file some of whose records were rejected: the k-th loaded row is record k plus
        the rejected records before it. Stored at once (a rare path), so the rules and quarantine read it."""
        table, (first, _) = self.spec.table, self.unnumbered.pop(path)
        rejected = sorted(self.rejected_records[path])
        # from loaded position k on, `skipped[k]` records were rejected before the row (adjacent rejects give the
        # same k: the last one, the most skipped, holds)
        skipped = {record - i: i + 1 for i, record in enumerate(rejected)}
        self.con.execute(
            f"""UPDATE {table} SET _source_row = m.n FROM (
                SELECT r.id, r.k + coalesce(s.skipped, 0) AS n
                FROM (SELECT rowid AS id, rowid - {first} + 1 AS k FROM {table}
                      WHERE {self.where()} AND _source_file = $3 AND _source_row IS NULL) r
                ASOF LEFT JOIN (SELECT unnest($1::BIGINT[]) AS k, unnest($2::BIGINT[]) AS skipped) s ON r.k >= s.k
            ) m WHERE {table}.rowid = m.id""",
            [list(skipped), list(skipped.values()), path],
        )

    def row_number(self, alias: str = "") -> str:
        """SQL of a row's number in its file, before `number_rows` has stored it."""
        if not self.unnumbered:
            return f"{alias}_source_row"
        cases = " ".join(f"WHEN {lit(path)} THEN {alias}rowid - {first} + 1"
                         for path, (first, _) in self.unnumbered.items())
        return f"coalesce({alias}_source_row, CASE {alias}_source_file {cases} END)"

    def number_rows(self) -> None:
        """Store the row numbers of the CSV rows still in the table, and mark every row of the load loaded.

        Last, and after the rows were committed: updating them inside the inserting transaction would make its
        commit rewrite every new row, and scanning values updated in this transaction costs more than
        computing them (`row_number`)."""
        table, now = self.spec.table, "current_timestamp"
        for first, last in self.unnumbered.values():
            self.con.execute(f"UPDATE {table} SET _source_row = rowid - {first} + 1, _loaded_at = {now} "
                             f"WHERE rowid BETWEEN {first} AND {last}")
        self.con.execute(f"UPDATE {table} SET _loaded_at = {now} WHERE {self.where()} AND _loaded_at IS NULL")

    def discard(self) -> None:
        """Remove whatever this load wrote (its partition's raw and quarantine rows), after a failure."""
        self.con.execute(f"DELETE FROM {self.spec.table} WHERE {self.where()}")
        self.con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND partition = ?",
                         [self.spec.name, self.partition])

    def quarantine(self, select_sql: str) -> int:
        """Insert rows shaped (source_file, source_row, source_line, rule, column_name, detail, payload)."""
        return self.con.execute(
            f"INSERT INTO {QUARANTINE_TABLE} (source, partition, source_file, source_row, source_line, rule, "
            f"column_name, detail, payload, run_id) SELECT {lit(self.spec.name)}, DATE {lit(self.partition)}, "
            f"source_file, source_row, source_line, rule, column_name, detail, payload, {lit(self.run_id)} "
            f"FROM ({select_sql})"
        ).fetchone()[0]

    def unparsed(self, path: Path, row: str, line: str, rule: str, column: str, detail: str, payload: str,
                 source: str) -> None:
        """Quarantine rows that never reached the stage (they count as read, not loaded)."""
        self.unparsed_rows += self.quarantine(
            f"SELECT {lit(path)} AS source_file, {row} AS source_row, {line} AS source_line, {rule} AS rule, "
            f"{column} AS column_name, {detail} AS detail, {payload} AS payload FROM {source}"
        )

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
