"""Long-lived servers (the Dagster webserver and daemon, the MLflow server) run as children in one process
group, stopped together by one SIGINT or SIGTERM, with or without a terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from rich.console import Console

from factory_pipelines.settings import REPO_ROOT

STOP_GRACE_S = 5.0  # after forwarding a stop signal, how long the servers get before they are killed


def serve(commands: dict[str, list[str]], env: dict[str, str], console: Console) -> int:
    """Run long-lived servers as children in one process group of their own until a SIGINT or SIGTERM arrives
    or one of them exits, then stop them all and return the exit code.

    `dagster dev` started without a terminal (by a service manager, a script, a test) ignores SIGINT and
    SIGTERM, so this does what it does by hand: the signal is forwarded to the whole group (the servers and
    the code servers they start), whatever is left after STOP_GRACE_S is killed, and nothing outlives us.
    """
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen] = {}
    group = 0
    try:
        for name, command in commands.items():
            if received:
                break
            child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, process_group=group)
            group = group or child.pid
            children[name] = child
        while not received and all(c.poll() is None for c in children.values()):
            time.sleep(0.2)
    finally:
        stop_group(group, children, received[0] if received else signal.SIGTERM)
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    codes = {name: c.returncode for name, c in children.items()}
    if received:
        console.print(f"[red]Stopped by {signal.Signals(received[0]).name}[/red]: "
                      + ", ".join(f"{n} exited {c}" for n, c in codes.items()) + ".")
        return 128 + received[0]
    gone = [(n, c) for n, c in codes.items() if c is not None and c != -signal.SIGTERM]
    name, code = gone[0] if gone else next(iter(codes.items()))
    console.print(f"[red]{name} exited with code {code}[/red]; stopped the others. Its output above says why.")
    return code or 1


def stop_group(group: int, children: dict[str, subprocess.Popen], signum: int) -> None:
    """Forward `signum` to the process group, wait up to STOP_GRACE_S for the children, then kill what is left
    of the group (grandchildren included)."""
    if not group:
        return
    for sig in (signum, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break  # the group is empty
        deadline = time.monotonic() + (STOP_GRACE_S if sig != signal.SIGKILL else 5.0)
        for child in children.values():
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                pass
        if sig == signum and all(c.poll() is not None for c in children.values()):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break  # every member is gone
