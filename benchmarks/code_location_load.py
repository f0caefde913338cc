"""Loading the code location in a fresh process: `import factory_pipelines.definitions` vs `import dagster`.

Each side is a new process of the same interpreter (`python -c "import ..."`), with the same environment
(FACTORY_HOME in a temporary folder, telemetry off). One warm-up of each (bytecode caches), then 7
repetitions of each, alternating which goes first; median wall time of the whole process. A bare
`python -c pass` is timed too, for reference. A separate process reports which heavy modules (feast,
great_expectations, mlflow, sklearn and their submodules) are in `sys.modules` after loading the
definitions: there must be none, they are imported inside asset bodies only. Goal: ratio <= 2.

    .venv/bin/python -m benchmarks.code_location_load [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import (
    REPO_ROOT,
    cleanup,
    isolated_home,
    machine,
    median,
    parse_args,
    print_machine,
    print_summary_rows,
    smoke,
    verdict,
    write_result,
)
from factory_pipelines.settings import TELEMETRY_OFF  # reads no environment at import

NAME = "code_location_load"
GOAL = 2.0  # definitions import time / dagster import time, at most
HEAVY = ("feast", "great_expectations", "mlflow", "sklearn")
SIDES = {
    "project": "import factory_pipelines.definitions",
    "bare": "import dagster",
    "python": "pass",
}
PROBE = (
    "import sys, json; import factory_pipelines.definitions as d; "
    f"heavy = {HEAVY!r}; "
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
    "print(json.dumps({'heavy': loaded, 'modules': len(sys.modules), "
    "'assets': len(list(d.defs.resolve_asset_graph().get_all_asset_keys()))}))"
)


def run(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def top_imports(env: dict[str, str], limit: int = 10) -> list[tuple[str, float]]:
    """Packages by import time when loading the definitions (`-X importtime`): the self time of every
    module summed per top-level package, so nested imports are not counted twice."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", SIDES["project"]], cwd=REPO_ROOT, env=env,
                          check=True, capture_output=True, text=True)
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if own.isdigit():
            package = name.split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(own) / 1e6
    return [(k, round(v, 3)) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parse_args(parser, repeat=1)

    home = isolated_home(NAME)
    try:
        env = {**os.environ, **TELEMETRY_OFF, "FACTORY_HOME": str(home),
               "FACTORY_SETTINGS_FILE": str(home / "no-settings-file.yaml")}
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        info = machine()
        print(f"== {NAME}: `{SIDES['project']}` vs `{SIDES['bare']}` in fresh processes, state in {home}")
        print_machine(info)
        for code in SIDES.values() if not smoke() else ():  # warm-up: bytecode caches, page cache
            run(code, env)
        times: dict[str, list[float]] = {name: [] for name in SIDES}
        names = list(SIDES)
        for rep in range(args.repeat):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                times[name].append(run(SIDES[name], env))
        probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1])
        slowest = top_imports(env)

        med = {name: median(values) for name, values in times.items()}
        ratio = med["project"] / med["bare"]
        heavy_ok = not probe["heavy"]
        for name, label in (("project", "import factory_pipelines.definitions"), ("bare", "import dagster"),
                            ("python", "python -c pass (reference)")):
            print(f"  {label:40s} median {med[name]:.3f} s  ({', '.join(f'{t:.3f}' for t in times[name])})")
        print(f"  definitions on top of dagster: {med['project'] - med['bare']:.3f} s; "
              f"{probe['assets']} asset keys, {probe['modules']} modules loaded")
        print(f"  heavy modules after loading the definitions: {probe['heavy'] or 'none'} -> {verdict(heavy_ok)}")
        print("  import time by package (-X importtime, self time summed): "
              + ", ".join(f"{n} {s:.2f} s" for n, s in slowest))
        print(f"  ratio definitions/dagster: {ratio:.2f}  (goal <= {GOAL}) -> {verdict(ratio <= GOAL)}")
        summary = [
            {"case": "fresh-process load", "metric": "median wall time", "unit": "s", "project": med["project"],
             "bare": med["bare"], "ratio": ratio, "goal": f"<= {GOAL}", "met": ratio <= GOAL},
            {"case": "heavy modules loaded", "metric": "count", "unit": "modules", "project": len(probe["heavy"]),
             "bare": 0, "ratio": None, "goal": "none", "met": heavy_ok},
        ]
        print("\nsummary")
        print_summary_rows(summary)
        write_result(NAME, {"machine": info, "repeat": args.repeat, "commands": SIDES, "seconds": times,
                            "median_seconds": med, "ratio": ratio, "goal": GOAL, "met": ratio <= GOAL,
                            "heavy_modules_loaded": probe["heavy"], "modules_loaded": probe["modules"],
                            "asset_keys": probe["assets"], "slowest_top_level_imports": slowest,
                            "summary": summary})
    finally:
        cleanup(home)


if __name__ == "__main__":
    main()
