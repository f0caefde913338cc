"""Run every benchmark (each in its own process, one after the other) and print a summary table.

    .venv/bin/python -m benchmarks                 # all
    .venv/bin/python -m benchmarks online_features # some, by name
    .venv/bin/python -m benchmarks --smoke         # each at a few rows, once, goals not judged (see SMOKE_ARGS)

Exit code 0 when every benchmark ran, whether or not its goal was met (they are measurements, not
tests); 1 when a benchmark crashed or wrote no result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

from benchmarks import REPO_ROOT, SMOKE_ENV, machine, number, print_machine, results_dir

BENCHMARKS = ("ingest_tickets", "online_features", "code_location_load", "agent_run", "audit_verify",
              "policy_gate", "paired_stats", "eval_overhead", "routing_sweep", "drift")
# How each benchmark is run small: its own `--smoke`, or the sizes of those that take them as flags.
SMOKE_ARGS = {
    "ingest_tickets": ["--rows", "2000", "--repeat", "1"],
    "online_features": ["--calls-1", "4", "--calls-100", "2", "--rounds", "1"],
}


def command(name: str, smoke: bool) -> list[str]:
    return [sys.executable, "-m", f"benchmarks.{name}", *(SMOKE_ARGS.get(name, ["--smoke"]) if smoke else [])]


def main(argv: list[str]) -> int:
    smoke = "--smoke" in argv
    names = [a for a in argv if a != "--smoke"] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
        return 2
    if smoke:
        os.environ[SMOKE_ENV] = "1"  # the children run small, and `results_dir` here finds their results
    console = Console(width=None if sys.stdout.isatty() else 140)
    outcomes: dict[str, tuple[int, float, dict | None]] = {}
    for name in names:
        console.rule(f"benchmarks.{name}" + (" (smoke run)" if smoke else ""))
        started = time.time()
        code = subprocess.run(command(name, smoke), cwd=REPO_ROOT).returncode
        elapsed = time.time() - started
        path = results_dir() / f"{name}.json"
        result = json.loads(path.read_text()) if path.exists() and path.stat().st_mtime >= started else None
        outcomes[name] = (code, elapsed, result)

    console.rule("summary")
    print_machine(machine())
    table = Table(title="Benchmarks: the project vs the bare library, same run")
    for column, justify in (("benchmark", "left"), ("case", "left"), ("metric", "left"), ("project", "right"),
                            ("bare", "right"), ("ratio", "right"), ("goal", "right"), ("status", "left"),
                            ("run time", "right")):
        table.add_column(column, justify=justify)
    failed = []
    for name, (code, elapsed, result) in outcomes.items():
        if code != 0 or result is None:
            failed.append(name)
            table.add_row(name, "-", "-", "-", "-", "-", "-", f"[red]ERROR (exit {code}, no result)[/red]",
                          f"{elapsed:.0f} s")
            continue
        for k, row in enumerate(result["summary"]):
            unit = row["unit"]
            status = "ran (smoke)" if result.get("smoke") else \
                "[green]met[/green]" if row["met"] else "[bold red]MISSED[/bold red]"
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
            table.add_row(name if k == 0 else "", row["case"], row["metric"], f"{number(row['project'])} {unit}",
                          f"{number(row['bare'])} {unit}", ratio, row["goal"], status,
                          f"{elapsed:.0f} s" if k == 0 else "")
    console.print(table)
    where = results_dir()
    console.print(f"results: {where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where}/<name>.json")
    if failed:
        console.print(f"[red]benchmark(s) that did not complete: {', '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
