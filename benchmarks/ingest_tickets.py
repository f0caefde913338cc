"""Ingestion of 1,000,000 ticket rows: the raw asset's load vs a bare DuckDB `read_csv` into a table.

Project: `factory_pipelines.lib.data.ingest.load_partition` with the declared `tickets` source (typed read,
rejects table, lineage columns, row rules and duplicate keys moved to quarantine, reconciliation), on a
fresh DuckDB file opened like `WarehouseResource` opens it (`threads=2`). Contracts (Great Expectations
checks) are not part of the load and are excluded.
Bare: `CREATE TABLE t AS SELECT * FROM read_csv(file, columns={declared types}, header=true,
auto_detect=false)` on a fresh DuckDB file with the same config. Same CSV file for both.

Each case: one warm-up of each, then 3 repetitions of each in alternating order, fresh files every time;
the time of a load includes closing the connection (the data is on disk). Goal: project throughput is
at least 0.8 of bare throughput. A clean file and one with ~1 % defects (bad enums, nulls in required
columns, duplicate keys) are measured separately. The CPU seconds of both sides (all threads, the
project's hashing thread included) are reported too, as a diagnostic: on a shared machine they move less
than wall time. `--diagnose` times bare DuckDB with one ingredient of the project's load at a time.

    .venv/bin/python -m benchmarks.ingest_tickets [--rows N] [--repeat N] [--diagnose]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks import (
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    print_summary_rows,
    verdict,
    write_result,
)

NAME = "ingest_tickets"
GOAL = 0.8  # project rows/s divided by bare rows/s, at least
PARTITION = date(2026, 11, 1)
THREADS = 2  # WarehouseResource opens DuckDB with config={"threads": 2}

# Fragments of realistic ticket bodies (commas, quotes, apostrophes, a newline, a few non-ASCII letters).
_FRAGMENTS = [
    "Hi support, my order still hasn't arrived, the tracking page says \"in transit\" since Monday.",
    "I was charged twice for the same order, once on the 3rd and again on the 5th - please refund one.",
    "The \"Nimbus Wireless Earbuds\" keep disconnecting from Bluetooth, I already tried a factory reset.",
    "Could you send me an invoice with VAT? I need it for my expense report, thanks in advance.",
    "This is UNACCEPTABLE!! Third time I'm writing about this, nobody replies.",
    "Kind regards,\nJosé O'Brien",
    "The espresso machine leaks water from the base, it's only two weeks old; I want a replacement.",
    "How long does shipping to Germany take? I'm thinking of ordering the \"Atlas Standing Desk\".",
    "I forgot my password and the reset email never arrives, I checked spam too.",
    "Søren here: the app crashes with error ERR-502 whenever I open my order history.",
    "Please update the delivery address on my order, I'm moving this week (new flat, 3rd floor).",
]
_SUBJECTS = ["Where is my order?", "Refund request", "Charged twice", "Problem with my earbuds",
             "Invoice needed", "Password reset not working", "Shipping times to Germany", "App error ERR-502",
             "Change delivery address", "Espresso machine, \"leaking\""]


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def generate_csv(path: Path, rows: int, defects: bool) -> dict[str, int]:
    """Write the tickets CSV with DuckDB itself (deterministic); returns the injected defect counts.

    Ids: `T-<yyyymmdd>-<5 digits>` with 10 dates x 100,000 numbers, so 1,000,000 ids are unique and match
    the declared pattern. With `defects`, 1 row in 100 breaks a rule: channel not in the enum, a null in a
    required column, or a copy of the previous row's ticket id (a duplicate key).
    """
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    f = _sql_list(_FRAGMENTS)
    n = len(_FRAGMENTS)
    body = (
        f"left({f}[1 + i % {n}] || ' ' || {f}[1 + (i // 7) % {n}] || ' ' || {f}[1 + (i // 53) % {n}] || ' ' || "
        f"{f}[1 + (i // 401) % {n}] || ' ' || {f}[1 + (i // 3001) % {n}], 100 + (i * 131) % 301)"
    )
    ticket_id = "'T-' || strftime(DATE '2026-10-22' + (i // 100000)::INTEGER, '%Y%m%d') || '-' || lpad((i % 100000)::VARCHAR, 5, '0')"
    prev_id = ticket_id.replace("i //", "(i - 1) //").replace("i %", "(i - 1) %")
    defect = "(CASE WHEN i % 100 = 50 THEN (i // 100) % 3 END)" if defects else "NULL::INTEGER"
    sql = f"""
    COPY (
        SELECT
            CASE WHEN d = 2 THEN {prev_id} ELSE {ticket_id} END AS ticket_id,
            CASE WHEN d = 1 THEN NULL ELSE 'C-' || lpad((10000 + (i * 7919) % 90000)::VARCHAR, 5, '0') END AS customer_id,
            strftime(TIMESTAMP '2026-11-01 00:00:00' + to_seconds((i * 86399 // {rows})::BIGINT), '%Y-%m-%d %H:%M:%S') AS created_at,
            CASE WHEN d = 0 THEN ['fax', 'sms', 'telegram'][1 + (i // 100) % 3]
                 ELSE ['email', 'chat', 'phone', 'web'][1 + (i * 31) % 4] END AS channel,
            {_sql_list(_SUBJECTS)}[1 + (i * 17) % {len(_SUBJECTS)}] AS subject,
            {body} AS body,
            CASE WHEN i % 3 = 0 THEN 'O-' || lpad(((i * 104729) % 10000000)::VARCHAR, 7, '0') END AS order_id,
            CASE WHEN i % 20 = 7 AND i > 1000 THEN {ticket_id.replace("i //", "(i - 1000) //").replace("i %", "(i - 1000) %")} END AS in_reply_to
        FROM (SELECT range AS i, {defect} AS d FROM range({rows}))
        ORDER BY i
    ) TO '{path}' (HEADER, DELIMITER ',')
    """
    con = duckdb.connect(config={"threads": THREADS})
    try:
        con.execute(sql)
    finally:
        con.close()
    if not defects:
        return {}
    injected = [k for k in range(rows) if k % 100 == 50]
    kinds = {"invalid_enum": 0, "null_required": 0, "duplicate_key": 0}
    for k in injected:
        kinds[("invalid_enum", "null_required", "duplicate_key")[(k // 100) % 3]] += 1
    return kinds


def _declared_columns(spec: Any) -> str:
    return "{" + ", ".join(f"'{c.file_name}': '{c.type}'" for c in spec.columns) + "}"


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads: DuckDB's workers and the hashing thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_project(spec: Any, landing: Path, db: Path, run_id: str) -> tuple[float, Any, float]:
    """Seconds, the load report and the CPU seconds of one project load."""
    from factory_pipelines.lib.data.ingest import load_partition
    from factory_pipelines.resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(database=str(db))
    with warehouse.connect() as con:  # opened before the clock starts, like the bare side
        start, cpu = time.perf_counter(), cpu_seconds()
        report = load_partition(con, spec, landing, PARTITION, run_id)
        con.close()  # the context manager closes again: a no-op
        elapsed = time.perf_counter() - start
    return elapsed, report, cpu_seconds() - cpu


def run_bare(csv_file: Path, columns: str, db: Path) -> tuple[float, int, float]:
    """Seconds, rows and CPU seconds of one bare `read_csv` CTAS."""
    import duckdb

    con = duckdb.connect(str(db), config={"threads": THREADS})
    start, cpu = time.perf_counter(), cpu_seconds()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv_file}', columns={columns}, header=true, "
                "auto_detect=false)")
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    return time.perf_counter() - start, rows, cpu_seconds() - cpu


def phase_breakdown(spec: Any, landing: Path, db: Path) -> dict[str, float]:
    """One extra, instrumented project load: seconds spent per phase (not part of the measurement)."""
    from factory_pipelines.lib.data import ingest
    from factory_pipelines.lib.data.partition_load import PartitionLoad

    spent: dict[str, float] = {}

    def wrap(owner: Any, attr: str, label: str) -> tuple[Any, str, Any]:
        original = owner[attr] if isinstance(owner, dict) else getattr(owner, attr)

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start

        if isinstance(owner, dict):
            owner[attr] = timed_call
        else:
            setattr(owner, attr, timed_call)
        return owner, attr, original

    patched = [
        wrap(ingest, "data_version", "data_version (XXH3 of the file, in a thread)"),
        wrap(ingest, "ensure_tables", "ensure_tables"),
        wrap(PartitionLoad, "discard", "delete the partition"),
        wrap(ingest.READERS, "csv", "csv_file (typed read_csv into raw + rejects)"),
        wrap(PartitionLoad, "number_rows", "number_rows (after the commit)"),
        wrap(ingest, "apply_row_rules", "apply_row_rules (rules + duplicate keys)"),
        wrap(PartitionLoad, "reconcile", "reconcile (counts)"),
    ]
    try:
        total, _, _ = run_project(spec, landing, db, "bench-breakdown")
    finally:
        for owner, attr, original in patched:
            if isinstance(owner, dict):
                owner[attr] = original
            else:
                setattr(owner, attr, original)
    spent["other (commits, close)"] = total - sum(v for k, v in spent.items() if not k.startswith("data_version"))
    spent["total"] = total
    return spent


def diagnose(csv_file: Path, columns: str, work: Path, repeat: int = 2) -> dict[str, float]:
    """Bare DuckDB with one ingredient of the project's load added at a time (best of `repeat`, seconds).

    Not part of the measurement: it points at what makes the project's load slower than the bare read.
    """
    import duckdb

    src = f"read_csv('{csv_file}', columns={columns}, header=true, auto_detect=false"
    table = ("CREATE TABLE t (ticket_id VARCHAR, customer_id VARCHAR, created_at TIMESTAMP, channel VARCHAR, "
             "subject VARCHAR, body VARCHAR, order_id VARCHAR, in_reply_to VARCHAR, _partition DATE NOT NULL, "
             "_source_file VARCHAR, _source_row BIGINT, _extra JSON, _run_id VARCHAR, _loaded_at TIMESTAMPTZ)")
    insert = "INSERT INTO t SELECT *, DATE '2026-11-01', 'file', {row}, NULL, 'run', current_timestamp FROM {src}) t"
    variants = {
        "bare CTAS": [f"CREATE TABLE t AS SELECT * FROM {src})"],
        "+ store_rejects": [f"CREATE TABLE t AS SELECT * FROM {src}, store_rejects=true)"],
        "+ max_line_size=64MiB": [f"CREATE TABLE t AS SELECT * FROM {src}, max_line_size={64 * 2**20})"],
        "INSERT with lineage columns": [table, insert.format(row="NULL", src=src)],
        "INSERT with lineage columns + row_number() OVER ()": [table, insert.format(row="row_number() OVER ()",
                                                                                    src=src)],
        "CTAS, delete 1 %, autocommit": [f"CREATE TABLE t AS SELECT * FROM {src})",
                                         "DELETE FROM t WHERE hash(ticket_id) % 100 = 0"],
        "BEGIN; CTAS; delete 1 %; COMMIT": ["BEGIN", f"CREATE TABLE t AS SELECT * FROM {src})",
                                            "DELETE FROM t WHERE hash(ticket_id) % 100 = 0", "COMMIT"],
        "in-memory stage, then INSERT with rowid": [table, f"CREATE TEMP TABLE s AS SELECT * FROM {src})",
                                                     "INSERT INTO t SELECT *, DATE '2026-11-01', 'file', rowid + 1, "
                                                     "NULL, 'run', current_timestamp FROM s"],
        "INSERT NULL rows; COMMIT; UPDATE rowid; delete 1 %": [
            table, "BEGIN", insert.format(row="NULL", src=src), "COMMIT",
            "UPDATE t SET _source_row = rowid + 1", "DELETE FROM t WHERE hash(ticket_id) % 100 = 0"],
    }
    seconds: dict[str, float] = {}
    for label, statements in variants.items():
        best = float("inf")
        for k in range(repeat):
            db = work / f"diagnose-{k}.duckdb"
            con = duckdb.connect(str(db), config={"threads": THREADS})
            start = time.perf_counter()
            for statement in statements:
                con.execute(statement)
            con.close()
            best = min(best, time.perf_counter() - start)
            for path in work.glob("diagnose-*"):
                path.unlink()
        seconds[label] = best
        print(f"  diagnose: {label:52s} {best:.3f} s")
    return seconds


def measure_case(label: str, spec: Any, landing: Path, work: Path, repeat: int) -> dict[str, Any]:
    csv_file = landing / spec.name / PARTITION.isoformat() / "tickets.csv"
    columns = _declared_columns(spec)
    counter = iter(range(10_000))

    def fresh(kind: str) -> Path:
        return work / f"{label}-{kind}-{next(counter)}.duckdb"

    def project() -> tuple[float, Any, float]:
        return run_project(spec, landing, fresh("project"), f"bench-{label}")

    def bare() -> tuple[float, int, float]:
        return run_bare(csv_file, columns, fresh("bare"))

    project()  # warm-up (page cache, DuckDB extension loading, first-call costs)
    bare()
    samples: dict[str, list[float]] = {"project": [], "bare": [], "project_cpu": [], "bare_cpu": []}
    report, bare_rows = None, 0
    for rep in range(repeat):
        for side in ((project, bare) if rep % 2 == 0 else (bare, project)):
            seconds, value, cpu = side()
            name = "project" if side is project else "bare"
            samples[name].append(seconds)
            samples[f"{name}_cpu"].append(cpu)
            if side is project:
                report = value
            else:
                bare_rows = value
        for path in work.glob(f"{label}-*.duckdb*"):
            path.unlink()
    breakdown = phase_breakdown(spec, landing, fresh("breakdown"))
    for path in work.glob(f"{label}-*.duckdb*"):
        path.unlink()
    return _case_result(label, csv_file, samples, report, bare_rows, breakdown)


def _case_result(label: str, csv_file: Path, samples: dict[str, list[float]], report: Any, bare_rows: int,
                 breakdown: dict[str, float]) -> dict[str, Any]:
    """Print one case and return its record for the results file."""
    project_times, bare_times = samples["project"], samples["bare"]
    p_median, b_median = median(project_times), median(bare_times)
    cpu_ratio = median(samples["bare_cpu"]) / median(samples["project_cpu"])
    p_rate, b_rate = report.rows_read / p_median, bare_rows / b_median
    ratio = p_rate / b_rate
    print(f"\n[{label}] {csv_file.stat().st_size / 2**20:.0f} MiB CSV, {report.rows_read:,} rows read")
    print(f"  project load_partition: median {p_median:.3f} s ({', '.join(f'{t:.3f}' for t in project_times)}) "
          f"= {p_rate:,.0f} rows/s; loaded {report.rows_loaded:,}, quarantined {report.rows_quarantined:,} "
          f"{report.quarantined_by_rule}")
    print(f"  bare read_csv CTAS:     median {b_median:.3f} s ({', '.join(f'{t:.3f}' for t in bare_times)}) "
          f"= {b_rate:,.0f} rows/s; {bare_rows:,} rows")
    print(f"  ratio project/bare throughput: {ratio:.3f}  (goal >= {GOAL}) -> {verdict(ratio >= GOAL)}")
    print(f"  CPU seconds (diagnostic, no goal): project median {median(samples['project_cpu']):.2f}, bare "
          f"{median(samples['bare_cpu']):.2f}, bare/project {cpu_ratio:.3f}")
    print("  project phases (one instrumented extra run): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in breakdown.items()))
    return {
        "csv_bytes": csv_file.stat().st_size,
        "project_seconds": project_times,
        "bare_seconds": bare_times,
        "project_median_seconds": p_median,
        "bare_median_seconds": b_median,
        "project_rows_per_second": p_rate,
        "bare_rows_per_second": b_rate,
        "ratio": ratio,
        "goal": GOAL,
        "met": ratio >= GOAL,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "quarantined_by_rule": report.quarantined_by_rule,
        "bare_rows": bare_rows,
        "project_phase_seconds": breakdown,
        "project_cpu_seconds": samples["project_cpu"],
        "bare_cpu_seconds": samples["bare_cpu"],
        "cpu_ratio": cpu_ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--diagnose", action="store_true",
                        help="also time bare DuckDB with one ingredient of the project's load at a time")
    args = parser.parse_args()

    home = isolated_home(NAME)
    try:
        from factory_pipelines.lib.data.sources import load_sources

        settings, info = isolated_settings(home, f"{NAME}: load_partition vs bare DuckDB read_csv, {args.rows:,} rows")
        spec = load_sources(settings.sources_dir)["tickets"]
        work = home / "work"
        work.mkdir(parents=True)
        cases, injected = {}, {}
        for label, defects in (("clean", False), ("defects_1pct", True)):
            landing = home / f"landing_{label}"
            start = time.perf_counter()
            injected[label] = generate_csv(landing / spec.name / PARTITION.isoformat() / "tickets.csv", args.rows,
                                           defects)
            print(f"\ngenerated {label} CSV in {time.perf_counter() - start:.1f} s; injected defects: "
                  f"{injected[label] or 'none'}")
            cases[label] = measure_case(label, spec, landing, work, args.repeat)
            cases[label]["injected_defects"] = injected[label]
            if args.diagnose and label == "clean":  # the ingredients cost the same on either file
                cases[label]["diagnose_seconds"] = diagnose(
                    landing / spec.name / PARTITION.isoformat() / "tickets.csv", _declared_columns(spec), work)
        summary = [
            {"case": f"{label}, {args.rows:,} rows", "metric": "throughput", "unit": "rows/s",
             "project": c["project_rows_per_second"], "bare": c["bare_rows_per_second"], "ratio": c["ratio"],
             "goal": f">= {GOAL}", "met": c["met"]}
            for label, c in cases.items()
        ]
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "rows": args.rows, "repeat": args.repeat, "threads": THREADS,
                            "cases": cases, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
