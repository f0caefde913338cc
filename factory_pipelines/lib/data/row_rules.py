"""The declared row rules of a source, as SQL over the rows a partition load inserted.

Required values, enums, ranges, patterns, lengths, the row's day (`partition_time`) and duplicate keys: a
row that breaks one moves to quarantine with every rule it broke in `detail` (the first one is its `rule`);
the others stay in the raw table. Cheap filters first: the rules as one WHERE clause (labels built for the
few bad rows only), then keys seen twice by a hash aggregate, ranked by position only where they repeat.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from factory_pipelines.lib.data.partition_load import PartitionLoad
from factory_pipelines.lib.data.sources import ColumnSpec, SourceSpec
from factory_pipelines.lib.sql import lit, q

MAX_EXAMPLES = 5


def column_checks(column: ColumnSpec) -> list[tuple[str, str]]:
    """(condition, label) pairs: the condition holds when a value breaks a declared rule, and the label is
    an SQL expression 'rule|column|detail' saying which and why."""
    name, c = column.name, q(column.name)
    checks: list[tuple[str, str]] = []

    def check(condition: str, rule: str, detail: str) -> None:
        checks.append((condition, lit(f"{rule}|{name}|{detail}")))

    if column.required:
        # blank text counts as missing: staging trims it to '' and its contract would block the whole day. Only
        # values that start below '!' (empty, a space, a control character) or outside ASCII (a no-break or
        # other Unicode space, which trim() strips too) are trimmed: comparing the inlined prefix is free,
        # trimming every body of a day is not (0.3 s per million)
        blank = f" OR (({c} < '!' OR {c} >= chr(128)) AND trim({c}) = '')" if column.type == "VARCHAR" else ""
        check(f"{c} IS NULL{blank}", "not_null", "required value is null, blank or missing")
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


def partition_window(spec: SourceSpec, partition: date) -> tuple[date, date] | None:
    """The first and last day a row of `partition` may be dated, when the declaration names its timestamp."""
    if spec.partition_time is None:
        return None
    return partition - timedelta(days=spec.partition_time.lag_days), partition


def outside_partition(spec: SourceSpec, partition: date) -> str | None:
    """SQL condition: the row's declared timestamp falls outside its partition's window (None: no rule)."""
    window = partition_window(spec, partition)
    if window is None:
        return None
    first, last = window
    column = q(spec.partition_time.column)
    return f"{column}::DATE NOT BETWEEN DATE {lit(first)} AND DATE {lit(last)}"


def row_checks(spec: SourceSpec, partition: date) -> list[tuple[str, str]]:
    """Every declared rule of a row, with `out_of_partition` when the declaration makes it an error."""
    checks = [check for column in spec.columns for check in column_checks(column)]
    outside = outside_partition(spec, partition)
    if outside is not None and spec.partition_time.out_of_partition == "error":
        name, (first, last) = spec.partition_time.column, partition_window(spec, partition)
        span = f"{first} .. {last}" if first != last else f"{last}"
        checks.append((outside, f"'out_of_partition|{name}|' || {q(name)}::VARCHAR || "
                                f"{lit(f' is not in {span}, the days of landing folder {partition}')}"))
    return checks


def apply_row_rules(load: PartitionLoad) -> None:
    """Move the partition's rows that break a declared rule, and later copies of a key, to quarantine.

    Runs on the rows the readers inserted (committed, so removing the few bad ones is cheap). A clean day
    costs two scans: the rules as a WHERE clause that stops at the first bad row, and the keys seen twice.
    """
    spec, con = load.spec, load.con
    table, day = spec.table, load.where()
    checks = row_checks(spec, load.partition)
    broken = " OR ".join(f"({cond})" for cond, _ in checks)  # a NULL condition (a missing value) is not broken
    any_broken = bool(checks) and con.execute(
        f"SELECT 1 FROM {table} WHERE {day} AND ({broken}) LIMIT 1").fetchone() is not None
    repeated = _repeated_keys(con, spec, day)
    if any_broken or repeated:
        labels = ", ".join(f"CASE WHEN {cond} THEN {label} END" for cond, label in checks)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _bad AS SELECT rowid AS id, list_filter([{labels}], lambda x: x IS NOT "
            f"NULL) AS v FROM {table} WHERE {day} AND ({broken if any_broken else 'false'})"
        )
        if repeated:
            _duplicate_keys(load)
        _quarantine_bad(load)
        con.execute("DROP TABLE _bad")
    con.execute("DROP TABLE _repeated")
    _warn_out_of_partition(load)


def _repeated_keys(con: Any, spec: SourceSpec, day: str) -> int:
    """`_repeated`: the keys seen more than once that day; how many. Grouping the keys' 64-bit hashes first is
    cheaper than grouping the keys, and a key seen twice has its hash seen twice."""
    key = ", ".join(q(k) for k in spec.primary_key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _repeated AS SELECT hash({key}) AS h FROM {spec.table} WHERE {day} "
                f"GROUP BY h HAVING count(*) > 1")
    if not con.execute("SELECT count(*) FROM _repeated").fetchone()[0]:
        return 0
    return con.execute(f"CREATE OR REPLACE TEMP TABLE _repeated AS SELECT {key} FROM {spec.table} WHERE {day} "
                       f"AND hash({key}) IN (SELECT h FROM _repeated) GROUP BY {key} HAVING count(*) > 1").fetchone()[0]


def _duplicate_keys(load: PartitionLoad) -> None:
    """Add to `_bad` every later copy of a key in `_repeated` (the first one, by file and row, stays)."""
    spec = load.spec
    key = ", ".join(q(k) for k in spec.primary_key)
    key_text = " || '/' || ".join(f"{q(k)}::VARCHAR" for k in spec.primary_key)
    load.con.execute(
        f"""
        INSERT INTO _bad
        WITH candidates AS (
            SELECT rowid AS id, _source_file, {load.row_number()} AS source_row, {key} FROM {spec.table}
            SEMI JOIN _repeated USING ({key}) WHERE {load.where()} AND rowid NOT IN (SELECT id FROM _bad)
        ), ranked AS (
            SELECT id, {key_text} AS key_text, row_number() OVER w AS n,
                   first_value(_source_file || ' row ' || source_row) OVER w AS first_seen
            FROM candidates WINDOW w AS (PARTITION BY {key} ORDER BY _source_file, source_row)
        )
        SELECT id, ['duplicate_key|{spec.primary_key[0]}|key ' || key_text || ' already loaded from ' || first_seen]
        FROM ranked WHERE n > 1
        """
    )


def _quarantine_bad(load: PartitionLoad) -> None:
    """Copy the rows listed in `_bad` to quarantine, with every rule each broke, then delete them from raw."""
    table = load.spec.table
    payload_columns = ", ".join(f"{lit(c.name)}, s.{q(c.name)}" for c in load.spec.columns)
    load.quarantine(
        f"SELECT s._source_file AS source_file, {load.row_number('s.')} AS source_row, NULL::BIGINT AS source_line, "
        f"split_part(b.v[1], '|', 1) AS rule, split_part(b.v[1], '|', 2) AS column_name, "
        f"array_to_string(list_transform(b.v, lambda x: split_part(x, '|', 1) || '(' || split_part(x, '|', 2) "
        f"|| '): ' || split_part(x, '|', 3)), '; ') AS detail, "
        f"json_object({payload_columns}, '_extra', s._extra)::VARCHAR AS payload "
        f"FROM {table} s JOIN _bad b ON s.rowid = b.id"
    )
    load.con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT id FROM _bad)")


def _warn_out_of_partition(load: PartitionLoad) -> None:
    spec = load.spec
    if outside_partition(spec, load.partition) is not None and spec.partition_time.out_of_partition == "warn":
        load.report.out_of_partition = loaded_out_of_partition(load.con, spec, load.partition)


def loaded_out_of_partition(con: Any, spec: SourceSpec, partition: date) -> dict[str, Any]:
    """Loaded rows of `partition` dated outside it (warn mode): how many, the dates seen, a few examples."""
    outside = outside_partition(spec, partition)
    if outside is None:
        return {}
    column = q(spec.partition_time.column)
    where = f"FROM {spec.table} WHERE _partition = ? AND coalesce({outside}, false)"
    rows, first, last = con.execute(f"SELECT count(*), min({column})::VARCHAR, max({column})::VARCHAR {where}",
                                    [partition]).fetchone()
    first_day, last_day = partition_window(spec, partition)
    summary: dict[str, Any] = {"rows": rows, "column": spec.partition_time.column, "allowed_from": str(first_day),
                               "allowed_to": str(last_day)}
    if rows:
        keys = ", ".join(q(k) for k in spec.primary_key)
        examples = con.execute(
            f"SELECT {keys}, {column}::VARCHAR, _source_file, _source_row {where} ORDER BY _source_file, _source_row "
            f"LIMIT {MAX_EXAMPLES}", [partition]).fetchall()
        summary |= {"earliest": first, "latest": last, "examples": [
            dict(zip([*spec.primary_key, spec.partition_time.column, "_source_file", "_source_row"], row, strict=True))
            for row in examples]}
    return summary
