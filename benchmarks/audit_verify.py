"""Verifying the audit log's hash chain: the project's `verify` vs a bare hashlib loop over the same rows.

Setup (timed, reported, no goal): 1,000,000 entries appended with `factory_pipelines.lib.governance.audit.append`
in blocks of 100,000 to `governance.audit_log` of the warehouse in a temporary FACTORY_HOME, opened by
`WarehouseResource.connect()` (threads=2). Each entry is a tool-call decision of about 200 bytes of
JSON: tool, verdict, policies, a policy hash, the arguments, the run id; deterministic.

Project: `verify(con)`: rows streamed in seq order as Arrow record batches, every hash recomputed, links
and seqs checked, the classification of problems (none here).
Bare: DuckDB and hashlib doing the same work with nothing around: one Arrow read of the same rows
(`con.sql(...).to_arrow_table()`, the same SELECT), then a plain loop recomputing each SHA-256 over the
same text (`prev_hash` + the JSON list of the fields, built with the escaper `json.dumps` uses) and
comparing it and the link. Both must find the chain intact and end on the same head hash.
Diagnostic (no goal): the read alone (the project's query, batches turned into Python lists, no hashing).

One warm-up of each side, then --repeat repetitions each, the order of the sides rotating; median
seconds. Goal: project / bare <= 1.5. Reported: entries per second of both. After the timing, one entry
in the middle is edited and `verify` must name it (timed, reported).

    .venv/bin/python -m benchmarks.audit_verify [--entries N] [--repeat N] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from benchmarks import (
    cleanup,
    isolated_home,
    isolated_settings,
    median,
    number,
    parse_args,
    print_summary_rows,
    side_order,
    verdict,
    write_result,
)

NAME = "audit_verify"
GOAL = 1.5  # project verify seconds / bare loop seconds, at most
BLOCK = 100_000
GENESIS = "0" * 64
BARE_SQL = (
    "SELECT seq, strftime(\"at\" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), kind, actor, subject, "
    "payload::VARCHAR, prev_hash, hash FROM governance.audit_log ORDER BY seq"
)
VERDICTS = ("allow", "allow", "allow", "deny", "needs_approval")
TOOLS = (("issue_refund", "refund_limit_v3"), ("send_reply", "tone_guard_v2"), ("escalate", "sla_policy_v1"))


def events(first: int, count: int) -> list[Any]:
    """`count` tool-call decisions, entry `first` on; about 200 bytes of payload each."""
    from factory_pipelines.lib.governance.audit.chain import AuditEvent

    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    out = []
    for i in range(first, first + count):
        tool, policy = TOOLS[i % 3]
        payload = {
            "tool": tool, "verdict": VERDICTS[i % 5], "policies": [policy, "pii_guard_v1"],
            "policy_hash": hashlib.sha256(policy.encode()).hexdigest()[:16], "run_id": f"r-{i // 5000:05d}",
            "arguments": {"order_id": f"O-{i:07d}", "amount": round(5 + (i * 7919) % 50000 / 100, 2),
                          "currency": "EUR"},
        }
        out.append(AuditEvent("tool_call.decision", "agent:support_triage", f"T-20261101-{i % 100000:05d}",
                              payload, t0 + timedelta(milliseconds=37 * i)))
    return out


def build(con: Any, entries: int) -> dict[str, float]:
    """Append `entries` events in blocks; returns the seconds spent building events and appending."""
    from factory_pipelines.lib.governance.audit.chain import append, ensure_audit_log

    ensure_audit_log(con)
    making = appending = 0.0
    for first in range(1, entries + 1, BLOCK):
        start = time.perf_counter()
        block = events(first, min(BLOCK, entries + 1 - first))
        making += time.perf_counter() - start
        start = time.perf_counter()
        append(con, block)
        appending += time.perf_counter() - start
    return {"making_events_s": making, "append_s": appending}


def bare_verify(con: Any) -> tuple[int, int, str]:
    """Plain DuckDB + hashlib: one Arrow read, then the hash chain in a loop. (rows, bad rows, last hash)."""
    table = con.sql(BARE_SQL).to_arrow_table()
    sha, esc = hashlib.sha256, encode_basestring
    last, bad, rows = GENESIS, 0, 0
    for batch in table.to_batches():
        columns = [c.to_pylist() for c in batch.columns]
        for seq, at, kind, actor, subject, payload, prev, stored in zip(*columns, strict=True):
            subject_json = "null" if subject is None else esc(subject)
            text = f"{prev}[{seq},{esc(at)},{esc(kind)},{esc(actor)},{subject_json},{esc(payload)}]"
            if sha(text.encode()).hexdigest() != stored or prev != last:
                bad += 1
            last = stored
        rows += batch.num_rows
    return rows, bad, last


def read_only(con: Any) -> int:
    """The project's query and conversion to Python lists, without hashing (diagnostic)."""
    from factory_pipelines.lib.governance.audit.verify import _SCAN_SQL, BATCH_ROWS

    rows = 0
    for batch in con.sql(_SCAN_SQL).to_arrow_reader(BATCH_ROWS):
        columns = [c.to_pylist() for c in batch.columns]
        rows += len(columns[0])
    return rows


def build_log(con: Any, entries: int) -> tuple[dict[str, float], float, float]:
    """The setup, timed and printed: `entries` appended in blocks. Its seconds, payload bytes, entries/s."""
    start = time.perf_counter()
    setup = build(con, entries)
    setup["build_s"] = time.perf_counter() - start
    sql = "SELECT avg(strlen(payload::VARCHAR)) FROM governance.audit_log"
    payload_bytes = con.execute(sql).fetchall()[0][0]
    append_rate = entries / setup["append_s"]
    print(f"setup: {entries:,} entries in {setup['build_s']:.1f} s (making events "
          f"{setup['making_events_s']:.1f} s, append {setup['append_s']:.1f} s = "
          f"{number(append_rate)} entries/s); payload {payload_bytes:.0f} bytes on average")
    return setup, payload_bytes, append_rate


def check_sides_agree(sides: dict[str, Callable[[], Any]], entries: int) -> None:
    """Warm-up of every side; project and bare must find the same intact chain, or nothing is measured."""
    outcomes = {name: fn() for name, fn in sides.items()}
    report, (rows, bad, last) = outcomes["project"], outcomes["bare"]
    same = (report.ok and bad == 0 and rows == report.entries == entries
            and last == report.head_hash)
    print(f"project: {report.summary()}")
    print(f"bare: {rows:,} rows, {bad} bad, last hash {last[:12]}; both intact, same head: {same}")
    if not same:
        raise SystemExit("the sides disagree on the chain: not measuring")


def time_sides(sides: dict[str, Callable[[], Any]], entries: int, repeat: int) -> dict[str, Any]:
    """`repeat` timed runs of each side, the order rotating; median seconds, entries/s and the ratio, printed."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(repeat):
        for name in side_order(list(sides), r):
            start = time.perf_counter()
            sides[name]()
            seconds[name].append(time.perf_counter() - start)
    med = {name: median(values) for name, values in seconds.items()}
    rate = {name: entries / med[name] for name in sides}
    ratio = med["project"] / med["bare"]
    print(f"\n[{entries:,} entries] {repeat} repetitions per side, median:")
    for name, label in (("project", "project verify"), ("bare", "bare arrow read + hashlib"),
                        ("read_only", "read alone (diagnostic)")):
        print(f"  {label + ':':28}{med[name]:7.2f} s  {number(rate[name])} entries/s")
    print(f"  ratio project/bare: {ratio:.2f}  (goal <= {GOAL}) -> {verdict(ratio <= GOAL)}")
    return {"seconds": seconds, "median_s": med, "entries_per_s": rate, "ratio": ratio}


def tampered_case(con: Any, entries: int) -> dict[str, Any]:
    """One entry in the middle edited: `verify` must name it, and only it."""
    from factory_pipelines.lib.governance.audit.verify import verify

    middle = entries // 2
    patch = "UPDATE governance.audit_log SET payload = json_merge_patch(payload, ?) WHERE seq = ?"
    con.execute(patch, ['{"verdict":"approved_by_admin"}', middle])
    tampered = verify(con)
    caught = [(p.kind, p.seq) for p in tampered.problems] == [("edited", middle)]
    print(f"  one entry edited (seq {middle}): {tampered.summary().splitlines()[-1].strip()} in "
          f"{tampered.seconds:.2f} s -> {verdict(caught)}")
    return {"seq": middle, "caught": caught, "seconds": tampered.seconds,
            "problems": [p.__dict__ for p in tampered.problems]}


def summary_rows(entries: int, timing: dict[str, Any], tampered: dict[str, Any],
                 append_rate: float) -> list[dict[str, Any]]:
    med, rate, ratio = timing["median_s"], timing["entries_per_s"], timing["ratio"]
    return [
        {"case": f"verify, {entries:,} entries", "metric": "median time", "unit": "s",
         "project": med["project"], "bare": med["bare"], "ratio": ratio, "goal": f"<= {GOAL}",
         "met": ratio <= GOAL},
        {"case": f"verify, {entries:,} entries", "metric": "throughput", "unit": "entries/s",
         "project": rate["project"], "bare": rate["bare"], "ratio": None, "goal": "reported",
         "met": True},
        {"case": f"edited entry {tampered['seq']} found", "metric": "verify time", "unit": "s",
         "project": tampered["seconds"], "bare": 0, "ratio": None, "goal": "named", "met": tampered["caught"]},
        {"case": f"append, blocks of {BLOCK:,}", "metric": "throughput", "unit": "entries/s",
         "project": append_rate, "bare": 0, "ratio": None, "goal": "reported", "met": True},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries in the log")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions per side")
    args = parse_args(parser, entries=2000, repeat=1)

    home = isolated_home(NAME)
    try:
        settings, info = isolated_settings(home, f"{NAME}: audit.verify vs a bare hashlib chain")
        from factory_pipelines.lib.governance.audit.verify import verify
        from factory_pipelines.resources.warehouse import WarehouseResource

        with WarehouseResource(database=settings.warehouse).connect() as con:
            setup, payload_bytes, append_rate = build_log(con, args.entries)
            sides = {"project": lambda: verify(con), "bare": lambda: bare_verify(con),
                     "read_only": lambda: read_only(con)}
            check_sides_agree(sides, args.entries)
            timing = time_sides(sides, args.entries, args.repeat)
            tampered = tampered_case(con, args.entries)

        summary = summary_rows(args.entries, timing, tampered, append_rate)
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "entries": args.entries, "repeat": args.repeat,
                            "payload_bytes_avg": payload_bytes, **setup, **timing, "goal": GOAL,
                            "met": timing["ratio"] <= GOAL, "tampered": tampered, "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
