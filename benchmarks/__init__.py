"""Performance benchmarks of the factory: each compares the project's code with the bare library doing
the same work in the same run and reports the ratio (see README.md). Run one with
`.venv/bin/python -m benchmarks.<name>`, all with `.venv/bin/python -m benchmarks`.

Helpers shared by the benchmark modules live here. They import nothing from `factory_pipelines`: each
benchmark first points `FACTORY_HOME` at a fresh temporary folder (`isolated_home`), then imports.

Smoke runs (`--smoke`, or BENCH_SMOKE=1 in the environment): every benchmark at a few rows, one
repetition, goals not judged, results written to BENCH_RESULTS_DIR when set, else benchmarks/results/smoke
(never over the real figures in benchmarks/results). The test suite runs each one that way (tests/test_benchmarks.py), so a benchmark that
no longer runs fails CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RESULTS_DIR = PACKAGE_DIR / "results"
LIBRARIES = ("duckdb", "dagster", "feast", "great-expectations", "pandas", "pyarrow", "pydantic")
SMOKE_ENV, RESULTS_ENV = "BENCH_SMOKE", "BENCH_RESULTS_DIR"


def smoke() -> bool:
    """Whether this is a smoke run: the benchmark must run end to end, its figures mean nothing."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="a few rows, one repetition, goals not judged, "
                        f"results in ${RESULTS_ENV} (also: {SMOKE_ENV}=1)")


def parse_args(parser: argparse.ArgumentParser, **smoke_sizes: Any) -> argparse.Namespace:
    """The arguments, with `smoke_sizes` (dest -> value) taking over the sizes in a smoke run."""
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        os.environ[SMOKE_ENV] = "1"
    if smoke():
        for dest, value in smoke_sizes.items():
            setattr(args, dest, value)
    return args


def results_dir() -> Path:
    """Where results go: BENCH_RESULTS_DIR when set, else benchmarks/results (smoke runs: its `smoke/` folder,
    so a smoke run never replaces the figures of a real one)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return RESULTS_DIR / "smoke" if smoke() else RESULTS_DIR


def isolated_home(name: str) -> Path:
    """A fresh state folder for one benchmark; set before any `factory_pipelines` import.

    `FACTORY_SETTINGS_FILE` points at a file that does not exist, so a developer's `factory.yaml`
    cannot move state back into the repo; `check_isolated` verifies the derived paths afterwards.
    """
    home = Path(tempfile.mkdtemp(prefix=f"factory-bench-{name}-"))
    os.environ["FACTORY_HOME"] = str(home)
    os.environ["FACTORY_SETTINGS_FILE"] = str(home / "no-settings-file.yaml")
    for key in ("DAGSTER_HOME",):
        os.environ.pop(key, None)
    if "factory_pipelines.settings" in sys.modules:
        sys.modules["factory_pipelines.settings"].get_settings.cache_clear()
    return home


def check_isolated(settings: Any, home: Path) -> None:
    """Refuse to run if any state path of the settings lies outside the temporary home."""
    paths = [settings.home, settings.warehouse, settings.landing_dir, settings.feature_data_dir,
             settings.feast_registry, settings.feast_online_path, settings.dagster_home]
    outside = [str(p) for p in paths if not Path(str(p)).resolve().is_relative_to(home.resolve())]
    if outside or settings.dagster_postgres_url or settings.feast_online_store != "sqlite":
        raise SystemExit(f"benchmark state is not isolated under {home}: {outside} (check .env / env vars)")


def isolated_settings(home: Path, title: str) -> tuple[Any, dict[str, Any]]:
    """The factory settings for `home` (checked to stay inside it) and the machine, printed under a title."""
    from factory_pipelines.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    check_isolated(settings, home)
    info = machine()
    print(f"== {title}, state in {home}")
    print_machine(info)
    return settings, info


def cleanup(home: Path) -> None:
    if os.environ.get("BENCH_KEEP"):
        print(f"state kept in {home} (BENCH_KEEP set)")
        return
    shutil.rmtree(home, ignore_errors=True)


def build_demo_factory(settings: Any, days: list[Any], jobs: tuple[str, ...] = ("data_plane_job",),
                       labels: bool = False) -> tuple[Any, dict[str, list[Any]]]:
    """Setup shared by the benchmarks: demo files (and labels) for `days`, then each job in process (daily
    jobs per day, `models_job` once); exits naming the run that failed. Returns the demo summary and the
    outcomes per job."""
    from factory_pipelines.demo import write_demo_data
    from factory_pipelines.instance import prepare_instance
    from factory_pipelines.runs import run_partitions

    summary = write_demo_data(
        settings.landing_dir, days[0], days[-1], seed=settings.demo_seed, defect_rate=settings.demo_defect_rate,
        drift_date=settings.demo_drift_date, truth_dir=Path(settings.home) / "demo_truth" if labels else None,
        tickets_per_day=settings.demo_tickets_per_day, customers=settings.demo_customers,
    )
    prepare_instance(settings)
    outcomes = {}
    for job in jobs:
        outcomes[job] = run_partitions(job, [None] if job == "models_job" else [d.isoformat() for d in days])
        for outcome in outcomes[job]:
            if not outcome.success:
                failed = [k for k, ok in outcome.checks.items() if not ok]
                raise SystemExit(f"setup run {job} {outcome.partition} failed: steps {outcome.failed_steps}, "
                                 f"skipped {outcome.skipped_steps}, checks failed {failed}, error {outcome.error!r}")
    return summary, outcomes


def machine() -> dict[str, Any]:
    """Cores, CPU, memory, Python and library versions of this run."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    memory_gb = None
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    versions: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "libraries": versions,
    }


def print_machine(info: dict[str, Any]) -> None:
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    print(f"machine: {info['usable_cores']}/{info['cores']} cores, {info['cpu']}, {info['memory_gb']} GB, "
          f"{info['platform']}")
    print(f"python {info['python']} ({info['python_executable']}); {libs}")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of fn() and its value."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def side_order(sides: Sequence[str], r: int) -> list[str]:
    """The sides in the order of round `r`, rotated by one each round (two sides alternate): no side always
    goes first, on cold caches, or last, after the others' work."""
    k = r % len(sides)
    return [*sides[k:], *sides[:k]]


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(met: bool) -> str:
    if smoke():
        return "not judged (smoke run)"
    return "met" if met else "MISSED"


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write `benchmarks/results/<name>.json`; `result["summary"]` rows feed the table of `-m benchmarks`.

    A summary row: case, metric, unit, project, bare, ratio (or None), goal (text), met (bool).
    """
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    payload = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": smoke(), **result}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"result written to {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return path


def number(value: float) -> str:
    """Readable figure: thousands separated above 1,000, else 4 significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def print_summary_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        ratio = "" if row["ratio"] is None else f", ratio {row['ratio']:.3f}"
        print(f"  {row['case']}: project {number(row['project'])} {row['unit']}, bare {number(row['bare'])} "
              f"{row['unit']}{ratio} (goal {row['goal']}) -> {verdict(row['met'])}")
